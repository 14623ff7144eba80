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
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            auth_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(60),
            max_body_bytes: 1024 * 1024,
            max_frame_bytes: 64 * 1024,
            issued_token_ttl: Duration::from_secs(24 * 3600),
        }
    }
}
