//! The signal endpoint: LiveKit's `/rtc/v1` WebSocket (protobuf `SignalRequest` in,
//! `SignalResponse` out) and the `validate` probes clients send after a failed upgrade.
//!
//! The token is checked and the join request decoded before the upgrade, so a refusal is a
//! plain HTTP status with a text body that livekit-client shows as the reason. After the
//! upgrade, one task per socket relays messages between the client and the engine; it answers
//! pings itself.

use std::collections::HashMap;
use std::io::Read;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::extract::{Query, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use futures_util::{SinkExt, StreamExt};
use livekit_protocol as lk;
use lk::signal_request::Message as Req;
use lk::signal_response::Message as Resp;
use prost::Message as _;
use tokio::sync::{mpsc, oneshot};

use crate::engine::{Command, JoinCommand};
use crate::token::{self, AccessClaims, TokenError};
use crate::Sfu;

pub(crate) fn router(sfu: Sfu) -> Router {
    Router::new()
        .route("/rtc/v1", get(connect))
        .route("/rtc/v1/validate", get(validate))
        .route("/rtc/validate", get(validate))
        .route("/rtc", get(legacy))
        .with_state(sfu)
}

/// Why a signal connection was refused before the upgrade.
#[derive(Debug, thiserror::Error)]
pub enum SignalRefusal {
    #[error("{0}")]
    Token(#[from] TokenError),
    #[error("the join request is missing: this server speaks the /rtc/v1 protocol")]
    MissingJoinRequest,
    #[error("the join request could not be decoded: {0}")]
    BadJoinRequest(#[from] DecodeError),
}

impl SignalRefusal {
    fn status(&self) -> StatusCode {
        match self {
            SignalRefusal::Token(TokenError::Missing | TokenError::Malformed) => {
                StatusCode::UNAUTHORIZED
            }
            SignalRefusal::Token(TokenError::NoRoom | TokenError::NoIdentity) => {
                StatusCode::BAD_REQUEST
            }
            SignalRefusal::Token(_) => StatusCode::UNAUTHORIZED,
            SignalRefusal::MissingJoinRequest | SignalRefusal::BadJoinRequest(_) => {
                StatusCode::BAD_REQUEST
            }
        }
    }
}

impl IntoResponse for SignalRefusal {
    fn into_response(self) -> Response {
        with_cors((self.status(), self.to_string()).into_response())
    }
}

fn with_cors(mut response: Response) -> Response {
    response.headers_mut().insert(
        header::ACCESS_CONTROL_ALLOW_ORIGIN,
        HeaderValue::from_static("*"),
    );
    response
}

/// Why a signal message (or the join request in the URL) could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    #[error("it is larger than {0} bytes")]
    TooLarge(usize),
    #[error("it is not base64url")]
    Base64,
    #[error("it is not a valid protobuf message")]
    Protobuf,
    #[error("its compressed body is not valid gzip")]
    Gzip,
    #[error("it uses an unknown compression ({0})")]
    UnknownCompression(i32),
}

/// Decodes the `join_request` query value: base64url (padded or not) of a
/// `WrappedJoinRequest`, whose body may be gzipped.
pub fn decode_join_request(value: &str, max_bytes: usize) -> Result<lk::JoinRequest, DecodeError> {
    if value.len() > max_bytes.saturating_mul(4) / 3 + 4 {
        return Err(DecodeError::TooLarge(max_bytes));
    }
    let trimmed = value.trim_end_matches('=');
    let normalized: String = trimmed
        .chars()
        .map(|c| match c {
            '+' => '-',
            '/' => '_',
            c => c,
        })
        .collect();
    let bytes = URL_SAFE_NO_PAD
        .decode(normalized.as_bytes())
        .map_err(|_| DecodeError::Base64)?;
    let wrapped =
        lk::WrappedJoinRequest::decode(bytes.as_slice()).map_err(|_| DecodeError::Protobuf)?;
    let body = match lk::wrapped_join_request::Compression::try_from(wrapped.compression) {
        Ok(lk::wrapped_join_request::Compression::None) => wrapped.join_request,
        Ok(lk::wrapped_join_request::Compression::Gzip) => {
            let mut out = Vec::new();
            flate2::read::GzDecoder::new(wrapped.join_request.as_slice())
                .take(max_bytes as u64 + 1)
                .read_to_end(&mut out)
                .map_err(|_| DecodeError::Gzip)?;
            if out.len() > max_bytes {
                return Err(DecodeError::TooLarge(max_bytes));
            }
            out
        }
        Err(_) => return Err(DecodeError::UnknownCompression(wrapped.compression)),
    };
    lk::JoinRequest::decode(body.as_slice()).map_err(|_| DecodeError::Protobuf)
}

/// Decodes one binary signal frame.
pub fn decode_signal_request(
    frame: &[u8],
    max_bytes: usize,
) -> Result<lk::SignalRequest, DecodeError> {
    if frame.len() > max_bytes {
        return Err(DecodeError::TooLarge(max_bytes));
    }
    lk::SignalRequest::decode(frame).map_err(|_| DecodeError::Protobuf)
}

fn bearer(query: &HashMap<String, String>, headers: &HeaderMap) -> String {
    if let Some(t) = query.get("access_token") {
        return t.clone();
    }
    headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or("")
        .to_owned()
}

fn check(
    sfu: &Sfu,
    query: &HashMap<String, String>,
    headers: &HeaderMap,
) -> Result<AccessClaims, SignalRefusal> {
    let config = sfu.config();
    Ok(token::verify(
        &config.api_key,
        &config.api_secret,
        &bearer(query, headers),
    )?)
}

async fn validate(
    State(sfu): State<Sfu>,
    Query(query): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> Response {
    if let Err(refusal) = check(&sfu, &query, &headers) {
        return refusal.into_response();
    }
    if let Some(join) = query.get("join_request") {
        if let Err(e) = decode_join_request(join, sfu.config().limits.max_signal_message_bytes) {
            return SignalRefusal::from(e).into_response();
        }
    }
    with_cors((StatusCode::OK, "success").into_response())
}

/// The dual peer connection protocol is not offered: livekit-client only falls back to it
/// when `/rtc/v1/validate` answers 404, which this server never does.
async fn legacy() -> Response {
    with_cors(
        (
            StatusCode::BAD_REQUEST,
            "this server speaks LiveKit's single peer connection protocol at /rtc/v1",
        )
            .into_response(),
    )
}

async fn connect(
    State(sfu): State<Sfu>,
    Query(query): Query<HashMap<String, String>>,
    headers: HeaderMap,
    upgrade: WebSocketUpgrade,
) -> Result<Response, SignalRefusal> {
    let claims = check(&sfu, &query, &headers)?;
    let limit = sfu.config().limits.max_signal_message_bytes;
    let join = decode_join_request(
        query
            .get("join_request")
            .ok_or(SignalRefusal::MissingJoinRequest)?,
        limit,
    )?;
    Ok(upgrade
        .max_message_size(limit)
        .max_frame_size(limit)
        .on_upgrade(move |socket| session(sfu, socket, claims, join)))
}

fn now_millis() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

fn frame(message: Resp) -> Message {
    Message::Binary(
        lk::SignalResponse {
            message: Some(message),
        }
        .encode_to_vec()
        .into(),
    )
}

/// Malformed frames tolerated on one socket before it is closed.
const MAX_BAD_FRAMES: u32 = 16;

async fn session(sfu: Sfu, socket: WebSocket, claims: AccessClaims, join: lk::JoinRequest) {
    let (mut sink, mut stream) = socket.split();
    let (signal_tx, mut signal_rx) = mpsc::channel(512);
    let (reply, answer) = oneshot::channel();
    let settings = join.connection_settings.unwrap_or_default();
    let resume_sid =
        (join.reconnect && !join.participant_sid.is_empty()).then(|| join.participant_sid.clone());
    let command = JoinCommand {
        room: claims.video.room.clone(),
        identity: claims.sub.clone(),
        name: if claims.name.is_empty() {
            claims.sub.clone()
        } else {
            claims.name.clone()
        },
        grant: claims.video.clone(),
        // LiveKit's default: subscribe to everything unless the client says otherwise.
        auto_subscribe: settings.auto_subscribe || join.client_info.is_none(),
        offer: join.publisher_offer,
        resume_sid,
        signal: signal_tx,
        reply,
    };
    let engine = sfu.engine().clone();
    if !engine.send(Command::Join(Box::new(command))).await {
        let _ = sink.send(Message::Close(None)).await;
        return;
    }
    let key = match answer.await {
        Ok(Ok(key)) => key,
        Ok(Err(refused)) => {
            // Whatever the engine queued first (a leave for an unknown resume) goes out, then
            // the refusal as a leave with its reason.
            while let Ok(message) = signal_rx.try_recv() {
                if let Some(m) = message.message {
                    let _ = sink.send(frame(m)).await;
                }
            }
            tracing::debug!(target: "sfu", "join refused: {refused}");
            let _ = sink
                .send(frame(Resp::Leave(lk::LeaveRequest {
                    reason: lk::DisconnectReason::JoinFailure as i32,
                    action: lk::leave_request::Action::Disconnect as i32,
                    ..Default::default()
                })))
                .await;
            let _ = sink.send(Message::Close(None)).await;
            return;
        }
        Err(_) => return,
    };
    let limits = sfu.config().limits.clone();
    let silence = Duration::from_secs(u64::try_from(limits.ping_timeout_secs.max(1)).unwrap_or(15));
    let mut bad_frames = 0u32;
    loop {
        tokio::select! {
            outgoing = signal_rx.recv() => match outgoing {
                Some(message) => {
                    let Some(m) = message.message else { continue };
                    if sink.send(frame(m)).await.is_err() {
                        break;
                    }
                }
                // The engine removed this participant (left, replaced, timed out).
                None => {
                    let _ = sink.send(Message::Close(None)).await;
                    break;
                }
            },
            incoming = tokio::time::timeout(silence, stream.next()) => {
                let bytes = match incoming {
                    Err(_) => {
                        tracing::debug!(target: "sfu", "signal socket silent for {silence:?}");
                        break;
                    }
                    Ok(None) | Ok(Some(Err(_))) | Ok(Some(Ok(Message::Close(_)))) => break,
                    Ok(Some(Ok(Message::Binary(bytes)))) => bytes,
                    Ok(Some(Ok(_))) => continue,
                };
                let request = match decode_signal_request(&bytes, limits.max_signal_message_bytes) {
                    Ok(request) => request,
                    Err(e) => {
                        bad_frames += 1;
                        tracing::debug!(target: "sfu", "signal frame dropped: {e}");
                        if bad_frames > MAX_BAD_FRAMES {
                            break;
                        }
                        continue;
                    }
                };
                let Some(message) = request.message else { continue };
                match message {
                    Req::Ping(_) => {
                        if sink.send(frame(Resp::Pong(now_millis()))).await.is_err() {
                            break;
                        }
                    }
                    Req::PingReq(ping) => {
                        let pong = lk::Pong { last_ping_timestamp: ping.timestamp, timestamp: now_millis() };
                        if sink.send(frame(Resp::PongResp(pong))).await.is_err() {
                            break;
                        }
                    }
                    message => {
                        let leaving = matches!(message, Req::Leave(_));
                        if !engine.send(Command::Signal { key, message: Box::new(message) }).await {
                            break;
                        }
                        if leaving {
                            let _ = sink.send(Message::Close(None)).await;
                            return;
                        }
                    }
                }
            }
        }
    }
    let _ = engine.send(Command::SignalClosed { key }).await;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn encode(join: &lk::JoinRequest, gzip: bool) -> String {
        use std::io::Write;
        let body = join.encode_to_vec();
        let wrapped = if gzip {
            let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
            enc.write_all(&body).unwrap();
            lk::WrappedJoinRequest {
                compression: lk::wrapped_join_request::Compression::Gzip as i32,
                join_request: enc.finish().unwrap(),
            }
        } else {
            lk::WrappedJoinRequest {
                compression: 0,
                join_request: body,
            }
        };
        base64::engine::general_purpose::URL_SAFE.encode(wrapped.encode_to_vec())
    }

    #[test]
    fn join_requests_decode_plain_and_gzipped() {
        let join = lk::JoinRequest {
            reconnect: true,
            participant_sid: "PA_x".into(),
            ..Default::default()
        };
        for gzip in [false, true] {
            let decoded = decode_join_request(&encode(&join, gzip), 64 * 1024).unwrap();
            assert_eq!(decoded.participant_sid, "PA_x");
            assert!(decoded.reconnect);
        }
    }

    #[test]
    fn bad_join_requests_are_typed_errors() {
        assert_eq!(decode_join_request("%%%", 1024), Err(DecodeError::Base64));
        assert_eq!(
            decode_join_request(&"A".repeat(10_000), 1024),
            Err(DecodeError::TooLarge(1024))
        );
        let junk = URL_SAFE_NO_PAD.encode([0xff, 0xff, 0xff, 0xff]);
        assert_eq!(decode_join_request(&junk, 1024), Err(DecodeError::Protobuf));
        let bad_gzip = lk::WrappedJoinRequest {
            compression: 1,
            join_request: vec![1, 2, 3],
        };
        assert_eq!(
            decode_join_request(&URL_SAFE_NO_PAD.encode(bad_gzip.encode_to_vec()), 1024),
            Err(DecodeError::Gzip)
        );
    }

    #[test]
    fn a_gzip_bomb_stops_at_the_limit() {
        let join = lk::JoinRequest {
            metadata: "x".repeat(200_000),
            ..Default::default()
        };
        assert_eq!(
            decode_join_request(&encode(&join, true), 64 * 1024),
            Err(DecodeError::TooLarge(64 * 1024))
        );
    }
}
