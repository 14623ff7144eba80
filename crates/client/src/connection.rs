//! The event socket: one task owns it, keeps it healthy and reconnects it.
//!
//! The handshake is Stream's: open `/connect`, send `{token, products, user_details}`, wait for
//! `connection.ok`. Health checks go out as a JSON array; a socket that has been silent for
//! `silence_timeout` (15 s by default, well under the official 35 s) is treated as dead.

use std::sync::Arc;
use std::time::Duration;

use confab_protocol::ErrorCode;
use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio::net::TcpStream;
use tokio::sync::{broadcast, mpsc, oneshot, watch};
use tokio::time::{sleep_until, timeout, Instant};
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::{CloseFrame, WebSocketConfig};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

use crate::backoff::ReconnectPolicy;
use crate::events::Event;
use crate::token_manager::{TokenLoadError, TokenManager};
use crate::user::{ConnectedUser, User};

/// Stream's code for an expired token: the one refusal a provider can turn around.
const TOKEN_EXPIRED: i32 = ErrorCode::TokenExpired.as_i32();

type Socket = WebSocketStream<MaybeTlsStream<TcpStream>>;

const SOCKET_BUFFER_BYTES: usize = 8 * 1024;
/// Events carry whole call objects; 4 MiB leaves room for large member lists.
const MAX_FRAME_BYTES: usize = 4 * 1024 * 1024;

/// The reason the official client gives when it closes the socket on purpose.
pub const MANUAL_CLOSE_REASON: &str = "Manually closed connection by calling client.disconnect()";

#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ConnectionState {
    /// No user, or an anonymous user (REST only, no socket).
    Idle,
    Connecting,
    Connected {
        connection_id: String,
    },
    /// Lost the socket; trying again. `attempt` counts from 1.
    Reconnecting {
        attempt: u32,
        next_retry_in: Duration,
    },
    /// The coordinator said the token expired: getting a new one from the provider, then
    /// reconnecting at once.
    RefreshingToken,
    /// Lost for longer than `offline_after`: still retrying.
    Offline {
        attempt: u32,
        next_retry_in: Duration,
    },
    Disconnected {
        reason: DisconnectReason,
    },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DisconnectReason {
    /// `disconnect_user` was called.
    Manual,
    /// The coordinator refused the user for good (bad signature, unknown key, ...).
    Refused { code: i32, message: String },
    /// No token could be had (the provider kept failing, or a static token expired).
    TokenUnavailable(String),
}

/// Why one handshake failed. Each variant is either terminal (no retry with the same user and
/// credentials can succeed, so `connect_user` gives up at once and reports it) or retryable
/// (`connect_user` tries again up to `max_connect_user_retries`); see [`ConnectError::is_terminal`].
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ConnectError {
    /// Terminal when the token does not fit the user or there is none to be had without a
    /// provider (`Invalid`, `ExpiredWithoutProvider`, `Missing`); retryable when the provider
    /// failed (it may answer next time).
    #[error(transparent)]
    Token(#[from] TokenLoadError),
    /// The coordinator said no. Terminal for refusals that no retry can fix: a bad signature
    /// (43), an unknown API key (2), a token for another user or a call it may not use (17),
    /// bad input (4), an unknown thing (16). Retryable otherwise: an expired token (40, a
    /// provider replaces it), server errors (-1) and rate limits (9).
    #[error("the coordinator refused the connection: {message} (code {code})")]
    Refused { code: i32, message: String },
    /// Retryable: the coordinator may be busy.
    #[error("no answer from the coordinator within {0:?}")]
    Timeout(Duration),
    /// Retryable: the network or the coordinator may come back.
    #[error("could not reach the coordinator: {0}")]
    Network(String),
    /// Creating the guest failed: terminal when the coordinator refused it with a terminal
    /// code, retryable for network and server errors.
    #[error("could not create the guest user: {0}")]
    Guest(crate::rest::ApiError),
    /// Terminal: the coordinator's address would carry the token unencrypted.
    #[error("refusing to connect: {0}")]
    Insecure(String),
    /// Terminal: the client already has another user.
    #[error("{current} is connected: call disconnect_user() before connecting another user")]
    AnotherUserConnected { current: String },
}

impl ConnectError {
    /// Stream's numeric code, when the coordinator gave one.
    pub fn code(&self) -> Option<i32> {
        match self {
            ConnectError::Refused { code, .. } => Some(*code),
            ConnectError::Guest(e) => e.code(),
            _ => None,
        }
    }

    /// Whether trying again with the same user and credentials is pointless.
    pub fn is_terminal(&self) -> bool {
        match self {
            ConnectError::Token(TokenLoadError::Provider { .. }) => false,
            ConnectError::Token(_) => true,
            ConnectError::Refused { code, .. } => {
                ErrorCode::from_i32(*code).is_terminal_for_connect()
            }
            ConnectError::Guest(e) => e
                .code()
                .is_some_and(|code| ErrorCode::from_i32(code).is_terminal_for_connect()),
            ConnectError::Timeout(_) | ConnectError::Network(_) => false,
            ConnectError::AnotherUserConnected { .. } | ConnectError::Insecure(_) => true,
        }
    }
}

#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct ConnectionOptions {
    /// Time from opening the socket to `connection.ok`.
    pub handshake_timeout: Duration,
    pub ping_interval: Duration,
    /// A socket that receives nothing for this long is dropped and reopened.
    pub silence_timeout: Duration,
    /// Lost for this long: `Offline` and `connection.changed {online: false}`.
    pub offline_after: Duration,
    pub reconnect: ReconnectPolicy,
}

impl Default for ConnectionOptions {
    fn default() -> Self {
        Self {
            handshake_timeout: Duration::from_secs(15),
            ping_interval: Duration::from_secs(10),
            silence_timeout: Duration::from_secs(15),
            offline_after: Duration::from_secs(5),
            reconnect: ReconnectPolicy::default(),
        }
    }
}

/// What a handshake needs, kept for reconnects.
pub(crate) struct Handshake {
    pub url: String,
    pub user: User,
    pub tokens: Arc<TokenManager>,
    pub options: ConnectionOptions,
}

pub(crate) struct Connected {
    pub connection_id: String,
    pub me: ConnectedUser,
}

impl Handshake {
    /// One connect: open, authenticate, wait for `connection.ok`. A code 40 with a provider
    /// refreshes the token and tries once more at once.
    async fn connect(&self) -> Result<(Socket, Connected), ConnectError> {
        let mut token = self.tokens.token().await?.ok_or(TokenLoadError::Missing)?;
        let mut refreshed = false;
        loop {
            match self.connect_with(&token).await {
                Err(ConnectError::Refused {
                    code: TOKEN_EXPIRED,
                    ..
                }) if self.tokens.has_provider() && !refreshed => {
                    refreshed = true;
                    token = self.tokens.refresh(Some(&token)).await?;
                }
                other => return other,
            }
        }
    }

    async fn connect_with(
        &self,
        token: &crate::Token,
    ) -> Result<(Socket, Connected), ConnectError> {
        let limit = self.options.handshake_timeout;
        let attempt = async {
            // Coordinator frames are small JSON: small buffers (tungstenite's defaults are
            // 128 KiB each) and no Nagle delay.
            let config = WebSocketConfig::default()
                .read_buffer_size(SOCKET_BUFFER_BYTES)
                .write_buffer_size(SOCKET_BUFFER_BYTES)
                .max_message_size(Some(MAX_FRAME_BYTES))
                .max_frame_size(Some(MAX_FRAME_BYTES));
            let (mut socket, _) =
                tokio_tungstenite::connect_async_with_config(self.url.as_str(), Some(config), true)
                    .await
                    .map_err(|e| ConnectError::Network(e.to_string()))?;
            let auth = json!({
                "token": token.expose(),
                "products": ["video"],
                "user_details": self.user,
            });
            socket
                .send(Message::Text(auth.to_string().into()))
                .await
                .map_err(|e| ConnectError::Network(e.to_string()))?;
            loop {
                match socket.next().await {
                    Some(Ok(Message::Text(text))) => {
                        let frame: Value = serde_json::from_str(&text).map_err(|e| {
                            ConnectError::Network(format!("unreadable first frame: {e}"))
                        })?;
                        return match frame.get("type").and_then(Value::as_str) {
                            Some("connection.ok") => {
                                let connection_id = frame["connection_id"]
                                    .as_str()
                                    .unwrap_or_default()
                                    .to_owned();
                                let me = serde_json::from_value(frame["me"].clone())
                                    .unwrap_or_else(|_| ConnectedUser {
                                        id: self.user.id.clone(),
                                        name: self.user.name.clone(),
                                        image: self.user.image.clone(),
                                        role: String::new(),
                                        custom: self.user.custom.clone(),
                                    });
                                Ok((socket, Connected { connection_id, me }))
                            }
                            Some("connection.error") => {
                                let _ = socket.close(None).await;
                                Err(refusal(&frame))
                            }
                            _ => Err(ConnectError::Network(format!(
                                "unexpected first frame: {}",
                                frame["type"]
                            ))),
                        };
                    }
                    Some(Ok(Message::Close(frame))) => {
                        return Err(ConnectError::Network(format!(
                            "closed during the handshake ({})",
                            frame.map(|f| u16::from(f.code)).unwrap_or(1005)
                        )))
                    }
                    Some(Ok(_)) => continue,
                    Some(Err(e)) => return Err(ConnectError::Network(e.to_string())),
                    None => {
                        return Err(ConnectError::Network("closed during the handshake".into()))
                    }
                }
            }
        };
        timeout(limit, attempt)
            .await
            .map_err(|_| ConnectError::Timeout(limit))?
    }
}

fn refusal(frame: &Value) -> ConnectError {
    let error = &frame["error"];
    ConnectError::Refused {
        code: error.get("code").and_then(Value::as_i64).unwrap_or(-1) as i32,
        message: error
            .get("message")
            .and_then(Value::as_str)
            .unwrap_or("refused")
            .to_owned(),
    }
}

enum Command {
    Close(oneshot::Sender<()>),
}

/// The handle on a running socket task. Dropping it does not close the socket; `close` does.
pub(crate) struct ConnectionHandle {
    commands: mpsc::Sender<Command>,
}

impl ConnectionHandle {
    /// Closes with 1000 and waits (at most `wait`) for the task to finish.
    pub async fn close(&self, wait: Duration) {
        let (tx, rx) = oneshot::channel();
        if self.commands.send(Command::Close(tx)).await.is_ok() {
            let _ = timeout(wait, rx).await;
        }
    }
}

/// Connects once; on success hands the handle to `install` and only then publishes
/// `Connected` (so whoever waits for that state finds the session in place) and spawns the
/// task that owns the socket from then on.
pub(crate) async fn open(
    handshake: Handshake,
    state: Arc<watch::Sender<ConnectionState>>,
    events: broadcast::Sender<Event>,
    install: impl FnOnce(ConnectionHandle),
) -> Result<Connected, ConnectError> {
    state.send_replace(ConnectionState::Connecting);
    let (socket, connected) = match handshake.connect().await {
        Ok(ok) => ok,
        Err(e) => {
            state.send_replace(ConnectionState::Idle);
            return Err(e);
        }
    };
    let (commands, rx) = mpsc::channel(4);
    install(ConnectionHandle { commands });
    state.send_replace(ConnectionState::Connected {
        connection_id: connected.connection_id.clone(),
    });
    let _ = events.send(Event::ConnectionChanged { online: true });
    let task = SocketTask {
        handshake,
        state,
        events,
        commands: rx,
        rng: fastrand::Rng::new(),
    };
    tokio::spawn(task.run(socket));
    Ok(connected)
}

enum Ended {
    Manual(oneshot::Sender<()>),
    Lost(String),
    TokenExpired,
    /// The handle was dropped without closing: stop quietly.
    Abandoned,
}

struct SocketTask {
    handshake: Handshake,
    state: Arc<watch::Sender<ConnectionState>>,
    events: broadcast::Sender<Event>,
    commands: mpsc::Receiver<Command>,
    rng: fastrand::Rng,
}

impl SocketTask {
    async fn run(mut self, mut socket: Socket) {
        loop {
            let ended = self.serve(&mut socket).await;
            let mut token_expired = false;
            match ended {
                Ended::Manual(done) => {
                    let frame = CloseFrame {
                        code: CloseCode::Normal,
                        reason: MANUAL_CLOSE_REASON.into(),
                    };
                    let _ = timeout(Duration::from_secs(1), async {
                        let _ = socket.close(Some(frame)).await;
                        while let Some(Ok(_)) = socket.next().await {}
                    })
                    .await;
                    self.state.send_replace(ConnectionState::Disconnected {
                        reason: DisconnectReason::Manual,
                    });
                    let _ = done.send(());
                    return;
                }
                Ended::Abandoned => return,
                Ended::Lost(why) => {
                    tracing::info!(target: "connection", reason = %why, "socket lost; reconnecting");
                }
                Ended::TokenExpired => token_expired = true,
            }
            match self.reconnect(token_expired).await {
                Some(next) => socket = next,
                None => return,
            }
        }
    }

    /// Runs a healthy socket until it ends.
    async fn serve(&mut self, socket: &mut Socket) -> Ended {
        let options = &self.handshake.options;
        let mut last_received = Instant::now();
        let mut ping = tokio::time::interval_at(
            Instant::now() + options.ping_interval,
            options.ping_interval,
        );
        let client_id = format!("{}--{}", self.handshake.user.id, uuid::Uuid::new_v4());
        loop {
            tokio::select! {
                frame = socket.next() => match frame {
                    Some(Ok(Message::Text(text))) => {
                        last_received = Instant::now();
                        let Ok(raw) = serde_json::from_str::<Value>(&text) else { continue };
                        if raw.get("type").and_then(Value::as_str) == Some("connection.error") {
                            if let ConnectError::Refused { code: TOKEN_EXPIRED, .. } = refusal(&raw) {
                                return Ended::TokenExpired;
                            }
                            continue;
                        }
                        let event = Event::from_frame(raw);
                        tracing::trace!(target: "event-dispatcher", event_type = event.event_type(), call_cid = event.call_cid(), "event");
                        let _ = self.events.send(event);
                    }
                    Some(Ok(Message::Close(frame))) => {
                        return Ended::Lost(format!("closed by the server ({})", frame.map(|f| u16::from(f.code)).unwrap_or(1005)));
                    }
                    Some(Ok(_)) => last_received = Instant::now(),
                    Some(Err(e)) => return Ended::Lost(e.to_string()),
                    None => return Ended::Lost("connection ended".into()),
                },
                _ = ping.tick() => {
                    let check = json!([{"type": "health.check", "client_id": client_id}]);
                    if socket.send(Message::Text(check.to_string().into())).await.is_err() {
                        return Ended::Lost("could not send a health check".into());
                    }
                }
                _ = sleep_until(last_received + options.silence_timeout) => {
                    return Ended::Lost(format!("nothing received for {:?}", options.silence_timeout));
                }
                command = self.commands.recv() => match command {
                    Some(Command::Close(done)) => return Ended::Manual(done),
                    None => return Ended::Abandoned,
                },
            }
        }
    }

    /// Retries until connected (returns the socket) or stopped for good (returns `None`).
    async fn reconnect(&mut self, mut token_expired: bool) -> Option<Socket> {
        let lost_at = Instant::now();
        let mut announced_offline = false;
        let mut attempt: u32 = 0;
        loop {
            let delay = if token_expired {
                Duration::ZERO
            } else {
                self.handshake
                    .options
                    .reconnect
                    .reconnect_delay(attempt, &mut self.rng)
            };
            attempt += 1;
            let offline = lost_at.elapsed() >= self.handshake.options.offline_after;
            if offline && !announced_offline {
                announced_offline = true;
                let _ = self.events.send(Event::ConnectionChanged { online: false });
            }
            self.state.send_replace(if token_expired {
                ConnectionState::RefreshingToken
            } else if offline {
                ConnectionState::Offline {
                    attempt,
                    next_retry_in: delay,
                }
            } else {
                ConnectionState::Reconnecting {
                    attempt,
                    next_retry_in: delay,
                }
            });
            tokio::select! {
                _ = tokio::time::sleep(delay) => {}
                command = self.commands.recv() => {
                    self.state.send_replace(ConnectionState::Disconnected { reason: DisconnectReason::Manual });
                    if let Some(Command::Close(done)) = command {
                        let _ = done.send(());
                    }
                    return None;
                }
            }
            if token_expired {
                token_expired = false;
                let stale = self.handshake.tokens.token().await.ok().flatten();
                if let Err(e) = self.handshake.tokens.refresh(stale.as_ref()).await {
                    return self.stop(DisconnectReason::TokenUnavailable(e.to_string()));
                }
            }
            match self.handshake.connect().await {
                Ok((socket, connected)) => {
                    tracing::info!(target: "connection", attempt, "reconnected");
                    self.state.send_replace(ConnectionState::Connected {
                        connection_id: connected.connection_id,
                    });
                    let _ = self.events.send(Event::ConnectionChanged { online: true });
                    return Some(socket);
                }
                Err(ConnectError::Token(e)) => {
                    return self.stop(DisconnectReason::TokenUnavailable(e.to_string()))
                }
                Err(ConnectError::Refused { code, message }) if code != TOKEN_EXPIRED => {
                    return self.stop(DisconnectReason::Refused { code, message });
                }
                Err(e) => {
                    tracing::debug!(target: "connection", attempt, error = %e, "reconnect attempt failed")
                }
            }
        }
    }

    fn stop(&self, reason: DisconnectReason) -> Option<Socket> {
        tracing::warn!(target: "connection", ?reason, "giving up on the connection");
        self.state
            .send_replace(ConnectionState::Disconnected { reason });
        None
    }
}
