//! What every handler shares: the app's key, the store, the socket hub, sessions, faults,
//! broadcasts and the SFU's access. It imports only the modules that own those parts, never
//! a handler.

use std::sync::Arc;
use std::time::Duration;

use crate::faults::Faults;
use crate::hls::{Broadcasts, Budget};
use crate::hub::Hub;
use crate::jwt::SigningKey;
use crate::packager::Packagers;
pub use crate::rate::Rate;
use crate::rate::RateLimiter;
use crate::sessions::Sessions;
use crate::sfu::SfuAccess;
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
    pub broadcasts: Arc<Broadcasts>,
    /// Livestreams being packaged as HLS from the embedded SFU.
    pub packagers: Packagers,
    /// The SFU embedded in this coordinator (`None` when joins go to an external one): HLS
    /// taps its rooms, and viewers are counted from it.
    pub embedded_sfu: Option<confab_sfu::Sfu>,
    /// Per-address token buckets for the endpoints that create things.
    pub rate: RateLimiter,
    /// Where joins send people for media, and how their SFU tokens are signed.
    pub sfu: SfuAccess,
}

#[derive(Debug, Clone)]
pub struct Limits {
    /// Time a new socket has to send its auth frame.
    pub auth_timeout: Duration,
    /// A socket that sends nothing for this long is closed (clients ping every 25 s).
    pub idle_timeout: Duration,
    pub max_body_bytes: usize,
    pub max_frame_bytes: usize,
    /// Lifetime of the tokens the coordinator issues (guests, the dev endpoint), and the
    /// longest one the dev endpoint grants when asked for more.
    pub issued_token_ttl: Duration,
    /// `POST /guest` per client address.
    pub guest_rate: Rate,
    /// Calls created (get-or-create or join that creates) per client address.
    pub call_create_rate: Rate,
    /// `GET /api/token` per client address.
    pub dev_token_rate: Rate,
    /// Custom data of a user, call or member, as JSON: Stream's documented 5 KB.
    pub max_custom_bytes: usize,
    /// Members added or removed by one request.
    pub max_members_per_request: usize,
    /// Members one call may have in all.
    pub max_members_per_call: usize,
    /// Memory all HLS broadcasts may hold together (playlists and segments).
    pub hls_total_bytes: usize,
    /// Memory one broadcast may hold: a share, so one host cannot take the whole budget.
    pub hls_call_bytes: usize,
    /// Largest single HLS upload.
    pub hls_max_upload_bytes: usize,
    /// How long a stopped broadcast's ended playlist and last segments stay served (viewers
    /// finish the tail) before its memory is freed.
    pub hls_ended_grace: Duration,
    /// Distinct viewer ids one client address may count at a time.
    pub hls_viewers_per_address: usize,
    /// Viewers a livestream takes over WebRTC (through the SFU); the next ones are sent to
    /// its HLS playlist.
    pub livestream_webrtc_viewers: usize,
    /// How long a live livestream waits for its host to come back to the SFU (a dropped
    /// transport, a restarted app) before it ends.
    pub host_return_grace: Duration,
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
            // A household or office behind one address still gets a few dozen guests a
            // minute; a script does not get thousands a second.
            guest_rate: Rate {
                burst: 20,
                per_minute: 60,
            },
            call_create_rate: Rate {
                burst: 60,
                per_minute: 300,
            },
            dev_token_rate: Rate {
                burst: 60,
                per_minute: 600,
            },
            max_custom_bytes: 5 * 1024,
            max_members_per_request: 100,
            max_members_per_call: 1000,
            hls_total_bytes: 256 * 1024 * 1024,
            hls_call_bytes: 64 * 1024 * 1024,
            hls_max_upload_bytes: 8 * 1024 * 1024,
            hls_ended_grace: Duration::from_secs(30),
            hls_viewers_per_address: 2,
            livestream_webrtc_viewers: 100,
            host_return_grace: Duration::from_secs(10),
            header_read_timeout: Duration::from_secs(10),
            http_idle_timeout: Duration::from_secs(5),
            max_connections: 128,
            max_requests_per_connection: 1000,
        }
    }
}

impl Limits {
    /// The broadcasts' memory rules.
    pub fn hls_budget(&self) -> Budget {
        Budget {
            total_bytes: self.hls_total_bytes,
            call_bytes: self.hls_call_bytes.min(self.hls_total_bytes),
            upload_bytes: self.hls_max_upload_bytes,
            ended_grace: self.hls_ended_grace,
        }
    }
}
