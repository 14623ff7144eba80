//! What every handler shares.

use std::time::Duration;

use crate::faults::Faults;
use crate::hub::Hub;
use crate::jwt::SigningKey;
use crate::sessions::Sessions;
use crate::store::Store;

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
    pub broadcasts: crate::broadcast::Broadcasts,
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

pub fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or_default()
}
