//! What every handler shares: the app's key, the store, the socket hub, sessions, faults and
//! broadcasts. It imports only the modules that own those parts, never a handler.

use std::sync::Arc;
use std::time::Duration;

use crate::faults::Faults;
use crate::hls::Broadcasts;
use crate::hub::Hub;
use crate::jwt::SigningKey;
use crate::sessions::Sessions;
use crate::store::Store;

/// The state as axum hands it to handlers and extractors.
pub type Shared = Arc<AppState>;

pub struct AppState {
    pub api_key: String,
    pub signing: SigningKey,
    pub store: Store,
    pub hub: Hub,
    pub sessions: Sessions,
    pub faults: Faults,
    pub limits: Limits,
    /// `http://HOST:PORT/video`, for URLs the coordinator hands out.
    pub base_url: String,
    pub broadcasts: Broadcasts,
}

#[derive(Debug, Clone)]
pub struct Limits {
    /// Time a new socket has to send its auth frame.
    pub auth_timeout: Duration,
    /// A socket that sends nothing for this long is closed (clients ping every 25 s).
    pub idle_timeout: Duration,
    pub max_body_bytes: usize,
    pub max_frame_bytes: usize,
    /// Lifetime of the tokens the coordinator issues (guests, the dev endpoint).
    pub issued_token_ttl: Duration,
    /// Time a client has to send a request's headers. Also bounds the wait for the next
    /// request on a keep-alive connection (hyper arms it whenever it waits for headers).
    pub header_read_timeout: Duration,
    /// A keep-alive HTTP connection with no request for this long is closed. Sockets that
    /// upgraded to the event socket are not HTTP connections any more and keep their own
    /// `idle_timeout`.
    pub http_idle_timeout: Duration,
    /// HTTP connections served at once. Beyond it a new connection waits briefly for a slot
    /// (idle keep-alive connections are closed to make room), then is closed. The embedded
    /// app's default stays well below a 256-descriptor limit; `serve` raises it.
    pub max_connections: usize,
    /// Requests served on one keep-alive connection before it is closed (`Connection: close`).
    pub max_requests_per_connection: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            auth_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(60),
            max_body_bytes: 1024 * 1024,
            max_frame_bytes: 64 * 1024,
            issued_token_ttl: Duration::from_secs(24 * 3600),
            header_read_timeout: Duration::from_secs(10),
            http_idle_timeout: Duration::from_secs(5),
            max_connections: 128,
            max_requests_per_connection: 1000,
        }
    }
}
