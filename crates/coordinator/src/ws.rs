//! The event socket at `/video/connect`: the auth frame, `connection.ok`, health checks, and
//! the events of watched calls. One task owns each socket; the hub holds a sender to it.

use std::sync::Arc;

use axum::extract::ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade};
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::{json, Value};
use tokio::sync::{mpsc, Notify};
use tokio::time::{sleep_until, timeout, Instant};

use confab_protocol::wire::AUTH_TYPE_HEADER;
use confab_protocol::{AuthType, ErrorCode, EventType, ANONYMOUS_USER_ID};

use crate::auth::verify_user_token;
use crate::error::ApiError;
use crate::events::announce_left;
use crate::extract::{check_user_fields, KnownApp, RequestQuery};
use crate::hub::{Outbound, SocketHandle, CLOSE_RECONNECT, OUTBOUND_QUEUE};
use crate::model;
use crate::state::{AppState, Shared};
use crate::store::UserDetails;

/// Per-socket read and write buffer size.
const SOCKET_BUFFER_BYTES: usize = 4 * 1024;

/// The first frame a client sends. Its `Debug` leaves the token out.
#[derive(Deserialize)]
pub struct AuthFrame {
    pub token: String,
    pub user_details: UserDetailsFrame,
    #[serde(default)]
    pub products: Vec<String>,
}

impl std::fmt::Debug for AuthFrame {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuthFrame")
            .field("token", &"[redacted]")
            .field("user_details", &self.user_details)
            .field("products", &self.products)
            .finish()
    }
}

#[derive(Debug, Deserialize)]
pub struct UserDetailsFrame {
    pub id: String,
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub image: Option<String>,
    #[serde(default)]
    pub custom: Option<serde_json::Map<String, Value>>,
}

/// Refuses user details over the stored-size limits, before anything is written.
fn check_user_details(state: &AppState, details: &UserDetailsFrame) -> Result<(), ApiError> {
    check_user_fields(
        details.name.as_deref(),
        details.image.as_deref(),
        details.custom.as_ref(),
        state.limits.max_custom_bytes,
    )
}

/// Parses the auth frame. Public so the fuzz target can drive it.
pub fn parse_auth_frame(text: &str) -> Result<AuthFrame, ApiError> {
    serde_json::from_str(text).map_err(|e| {
        ApiError::input(format!(
            "the first message must be {{token, user_details: {{id, ...}}}}: {e}"
        ))
    })
}

/// What a client sends after connecting: health checks (as an array or alone) and nothing
/// else this coordinator acts on. Public so the fuzz target can drive it.
pub fn is_health_check(text: &str) -> bool {
    let is_check =
        |v: &Value| v.get("type").and_then(Value::as_str) == Some(EventType::HealthCheck.as_str());
    match serde_json::from_str::<Value>(text) {
        Ok(Value::Array(items)) => items.iter().any(is_check),
        Ok(v) => is_check(&v),
        Err(_) => false,
    }
}

pub async fn connect(
    State(state): State<Shared>,
    _: KnownApp,
    RequestQuery(query): RequestQuery,
    upgrade: Result<WebSocketUpgrade, axum::extract::ws::rejection::WebSocketUpgradeRejection>,
) -> Response {
    let upgrade = match upgrade {
        Ok(u) => u,
        Err(_) => return ApiError::input("/connect takes a WebSocket upgrade").into_response(),
    };
    // The socket names its auth type in the query, where the REST calls use a header.
    let anonymous =
        query.get(AUTH_TYPE_HEADER).and_then(AuthType::parse) == Some(AuthType::Anonymous);
    let limits = &state.limits;
    upgrade
        // Frames here are small JSON; tungstenite's default 128 KiB read buffer per socket
        // would cost over a gigabyte at 10,000 sockets.
        .read_buffer_size(SOCKET_BUFFER_BYTES)
        .write_buffer_size(SOCKET_BUFFER_BYTES)
        .max_message_size(limits.max_frame_bytes)
        .max_frame_size(limits.max_frame_bytes)
        .on_upgrade(move |socket| async move {
            SocketTask::run(state, socket, anonymous).await;
        })
}

fn event_frame(event_type: &str, connection_id: &str, extra: Value) -> String {
    let mut v = json!({
        "type": event_type,
        "connection_id": connection_id,
        "created_at": crate::store::now(),
    });
    if let (Some(obj), Value::Object(extra)) = (v.as_object_mut(), extra) {
        obj.extend(extra);
    }
    v.to_string()
}

struct SocketTask {
    state: Arc<AppState>,
    socket: WebSocket,
}

impl SocketTask {
    async fn run(state: Arc<AppState>, socket: WebSocket, anonymous: bool) {
        let mut task = SocketTask { state, socket };
        let Some((connection_id, user_id)) = task.handshake(anonymous).await else {
            return;
        };
        let (tx, rx) = mpsc::channel(OUTBOUND_QUEUE);
        let overflowed = Arc::new(Notify::new());
        // Registered before connection.ok goes out, so no event sent after it is missed.
        task.state.hub.register(
            &connection_id,
            &user_id,
            SocketHandle {
                tx,
                overflowed: overflowed.clone(),
            },
        );
        let me = match task.state.store.user(&user_id).await {
            Ok(Some(user)) => model::own_user_json(&user),
            _ => json!({"id": user_id, "role": "user"}),
        };
        let ok = event_frame(
            EventType::ConnectionOk.as_str(),
            &connection_id,
            json!({"me": me}),
        );
        if task.socket.send(Message::Text(ok.into())).await.is_ok() {
            tracing::debug!(target: "coordinator", %user_id, %connection_id, "socket connected");
            task.serve(&connection_id, rx, overflowed).await;
        }
        task.state.hub.unregister(&connection_id);
        for (cid, participant) in task.state.sessions.leave_connection(&connection_id) {
            let session_id = task
                .state
                .sessions
                .get(&cid)
                .map(|s| s.id)
                .unwrap_or_default();
            let _ = announce_left(&task.state, &cid, &session_id, &participant).await;
        }
        tracing::debug!(target: "coordinator", %user_id, %connection_id, "socket closed");
    }

    /// Reads and checks the auth frame. Returns the new connection id and the user, or sends
    /// `connection.error` and returns `None`.
    async fn handshake(&mut self, anonymous: bool) -> Option<(String, String)> {
        let first = timeout(self.state.limits.auth_timeout, self.socket.recv()).await;
        let text = match first {
            Ok(Some(Ok(Message::Text(text)))) => text,
            Ok(Some(Ok(_))) => {
                self.refuse(ApiError::input(
                    "the first message must be a JSON text frame",
                ))
                .await;
                return None;
            }
            Ok(Some(Err(_))) | Ok(None) => return None,
            Err(_) => {
                self.refuse(ApiError::input("no auth message arrived in time"))
                    .await;
                return None;
            }
        };
        if anonymous {
            self.refuse(ApiError::not_allowed(
                "anonymous users receive no events: use REST only",
            ))
            .await;
            return None;
        }
        if let Some(code) = self.state.faults.take_connect_refusal() {
            let status = if (40..=43).contains(&code) { 401 } else { 500 };
            let status = axum::http::StatusCode::from_u16(status)
                .unwrap_or(axum::http::StatusCode::UNAUTHORIZED);
            self.refuse(ApiError::new(
                ErrorCode::from_i32(code),
                status,
                "refused by fault injection",
            ))
            .await;
            return None;
        }
        let result = async {
            let frame = parse_auth_frame(&text)?;
            let (user_id, token_role) = verify_user_token(&self.state, &frame.token).await?;
            if frame.user_details.id != user_id {
                return Err(ApiError::new(
                    ErrorCode::Input,
                    axum::http::StatusCode::UNAUTHORIZED,
                    "user_details.id does not match the token's user_id",
                ));
            }
            if user_id == ANONYMOUS_USER_ID {
                return Err(ApiError::not_allowed(
                    "anonymous users receive no events: use REST only",
                ));
            }
            check_user_details(&self.state, &frame.user_details)?;
            let details = UserDetails {
                name: frame.user_details.name,
                image: frame.user_details.image,
                custom: frame.user_details.custom.map(Value::Object),
            };
            self.state
                .store
                .upsert_user(&user_id, &details, &token_role)
                .await?;
            Ok::<_, ApiError>(user_id)
        }
        .await;
        let user_id = match result {
            Ok(user_id) => user_id,
            Err(e) => {
                self.refuse(e).await;
                return None;
            }
        };
        if let Some(delay) = self.state.faults.connection_ok_delay() {
            tokio::time::sleep(delay).await;
        }
        Some((uuid::Uuid::new_v4().to_string(), user_id))
    }

    /// Sends `connection.error`, gives the client a moment to close the socket itself (as the
    /// official client does), then closes it.
    async fn refuse(&mut self, error: ApiError) {
        tracing::info!(target: "coordinator", code = error.code.as_i32(), message = %error.message, "socket refused");
        let frame = event_frame(
            EventType::ConnectionError.as_str(),
            "",
            json!({"error": error.body()}),
        );
        if self.socket.send(Message::Text(frame.into())).await.is_err() {
            return;
        }
        let wait = timeout(std::time::Duration::from_secs(2), async {
            while let Some(Ok(msg)) = self.socket.recv().await {
                if matches!(msg, Message::Close(_)) {
                    break;
                }
            }
        });
        if wait.await.is_err() {
            // An expired token is worth reconnecting with a new one; other refusals are final.
            let code = if error.code == ErrorCode::TokenExpired {
                CLOSE_RECONNECT
            } else {
                1000
            };
            let _ = self.close(code, "refused").await;
        }
    }

    async fn close(&mut self, code: u16, reason: &str) -> Result<(), axum::Error> {
        self.socket
            .send(Message::Close(Some(CloseFrame {
                code,
                reason: reason.to_owned().into(),
            })))
            .await
    }

    async fn serve(
        &mut self,
        connection_id: &str,
        mut rx: mpsc::Receiver<Outbound>,
        overflowed: Arc<Notify>,
    ) {
        let idle = self.state.limits.idle_timeout;
        let mut deadline = Instant::now() + idle;
        loop {
            tokio::select! {
                incoming = self.socket.recv() => {
                    let Some(Ok(message)) = incoming else { return };
                    deadline = Instant::now() + idle;
                    match message {
                        Message::Text(text)
                            if is_health_check(&text) && !self.state.faults.ignore_health_checks() =>
                        {
                            let reply = event_frame(EventType::HealthCheck.as_str(), connection_id, json!({"custom": {}}));
                            if self.socket.send(Message::Text(reply.into())).await.is_err() {
                                return;
                            }
                        }
                        Message::Close(_) => return,
                        _ => {}
                    }
                }
                outgoing = rx.recv() => match outgoing {
                    Some(Outbound::Text(text)) => {
                        if self.socket.send(Message::Text(text.into())).await.is_err() {
                            return;
                        }
                    }
                    Some(Outbound::Close { code, reason }) => {
                        let _ = self.close(code, &reason).await;
                        return;
                    }
                    // Dropping the socket without a close frame: the client sees 1006.
                    Some(Outbound::Drop) | None => return,
                },
                _ = overflowed.notified() => {
                    let _ = self.close(CLOSE_RECONNECT, "too slow to receive events").await;
                    return;
                }
                _ = sleep_until(deadline) => {
                    // Not 1000: a client that was only quiet should reconnect.
                    let _ = self.close(CLOSE_RECONNECT, "idle: no message within the timeout").await;
                    return;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn health_checks_arrive_as_arrays_or_objects() {
        assert!(is_health_check(
            r#"[{"type":"health.check","client_id":"a--b"}]"#
        ));
        assert!(is_health_check(r#"{"type":"health.check"}"#));
        assert!(!is_health_check(r#"[{"type":"other"}]"#));
        assert!(!is_health_check("not json"));
        assert!(!is_health_check(r#"{"type":5}"#));
    }

    #[test]
    fn auth_frames_are_parsed_or_refused_with_a_reason() {
        let frame = parse_auth_frame(
            r#"{"token":"t","products":["video"],"user_details":{"id":"alice","name":"Alice","custom":{"a":1}}}"#,
        )
        .unwrap();
        assert_eq!(frame.user_details.id, "alice");
        let printed = format!("{frame:?}");
        assert!(
            printed.contains("alice") && !printed.contains("\"t\""),
            "{printed}"
        );
        for bad in [
            "",
            "{}",
            r#"{"token":1}"#,
            r#"{"token":"t"}"#,
            "[]",
            r#"{"token":"t","user_details":{}}"#,
        ] {
            let err = parse_auth_frame(bad).unwrap_err();
            assert_eq!(err.code, ErrorCode::Input, "{bad}");
        }
    }
}
