//! `confab-sfu`: the selective forwarding unit embedded in Confab's local coordinator.
//!
//! It speaks LiveKit's open signalling protocol (protobuf over a WebSocket, the single peer
//! connection "v1" path that `livekit-client` 2.x uses by default), so LiveKit's own web client
//! can join a Confab call, and Confab's Rust participant could join a livekit-server instead.
//! Media runs over str0m on one UDP port: RTP is forwarded frame by frame without transcoding.
//!
//! Modules: `token` (access tokens), `signal` (the WebSocket endpoint and message decoding),
//! `engine` (one task owning the UDP socket, every peer connection and every room).

mod engine;
pub mod loopback;
mod sdp;
pub mod signal;
pub mod token;

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{broadcast, mpsc};

pub use engine::tap::{TapCodec, TapFrame, TapKind};
pub use engine::{EngineStats, RoomAudience};
pub use token::{AccessToken, ApiSecret, TokenError, VideoGrant};

/// The version reported in `server_info.version` (livekit-client compares it numerically).
pub const SERVER_VERSION: &str = "1.9.0";

#[derive(Debug, Clone)]
pub struct SfuConfig {
    /// Where the media socket binds. Port 0 picks a free one.
    pub udp_bind: SocketAddr,
    /// Addresses announced as ICE host candidates (with the bound port). Empty: the bind
    /// address, or 127.0.0.1 when it is unspecified.
    pub announce: Vec<IpAddr>,
    pub api_key: String,
    pub api_secret: ApiSecret,
    pub limits: SfuLimits,
}

impl SfuConfig {
    /// An SFU on loopback with a free port: what the app and the tests embed.
    pub fn loopback(api_key: impl Into<String>, api_secret: ApiSecret) -> Self {
        Self {
            udp_bind: SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 0),
            announce: Vec::new(),
            api_key: api_key.into(),
            api_secret,
            limits: SfuLimits::default(),
        }
    }
}

#[derive(Debug, Clone)]
pub struct SfuLimits {
    pub max_participants_per_room: usize,
    pub max_tracks_per_participant: usize,
    /// Largest signal message accepted, compressed or not.
    pub max_signal_message_bytes: usize,
    /// A participant whose media transport has been silent this long is removed.
    pub transport_timeout: Duration,
    /// Time a new participant has to finish ICE and DTLS.
    pub connect_timeout: Duration,
    /// Keyframe requests sent to one publisher's track at most this often.
    pub keyframe_request_interval: Duration,
    /// Seconds between client pings (`ping_interval`) and before a silent signal socket counts
    /// as lost (`ping_timeout`), as the JoinResponse announces them.
    pub ping_interval_secs: i32,
    pub ping_timeout_secs: i32,
}

impl Default for SfuLimits {
    fn default() -> Self {
        Self {
            max_participants_per_room: 100,
            max_tracks_per_participant: 8,
            max_signal_message_bytes: 256 * 1024,
            transport_timeout: Duration::from_secs(8),
            connect_timeout: Duration::from_secs(15),
            keyframe_request_interval: Duration::from_millis(500),
            ping_interval_secs: 5,
            ping_timeout_secs: 15,
        }
    }
}

/// Who came and went, for the coordinator's call sessions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RoomEvent {
    ParticipantJoined {
        room: String,
        sid: String,
        identity: String,
        name: String,
    },
    ParticipantLeft {
        room: String,
        sid: String,
        identity: String,
    },
}

#[derive(Debug, thiserror::Error)]
pub enum SfuStartError {
    #[error("could not bind the media socket on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("the media engine's thread could not start: {0}")]
    Thread(std::io::Error),
}

/// A running SFU. Dropping it stops the engine.
#[derive(Clone)]
pub struct Sfu {
    inner: Arc<SfuInner>,
}

struct SfuInner {
    config: SfuConfig,
    udp_addr: SocketAddr,
    engine: engine::EngineHandle,
    events: broadcast::Sender<RoomEvent>,
}

impl Sfu {
    /// Binds the media socket and starts the engine on a thread of its own (so its CPU time
    /// can be measured apart from the rest of the process).
    pub async fn start(config: SfuConfig) -> Result<Sfu, SfuStartError> {
        let socket =
            std::net::UdpSocket::bind(config.udp_bind).map_err(|source| SfuStartError::Bind {
                addr: config.udp_bind,
                source,
            })?;
        let udp_addr = socket.local_addr().map_err(|source| SfuStartError::Bind {
            addr: config.udp_bind,
            source,
        })?;
        let announce: Vec<SocketAddr> = if config.announce.is_empty() {
            let ip = if udp_addr.ip().is_unspecified() {
                IpAddr::V4(Ipv4Addr::LOCALHOST)
            } else {
                udp_addr.ip()
            };
            vec![SocketAddr::new(ip, udp_addr.port())]
        } else {
            config
                .announce
                .iter()
                .map(|ip| SocketAddr::new(*ip, udp_addr.port()))
                .collect()
        };
        let (events, _) = broadcast::channel(256);
        let engine = engine::spawn(socket, announce, config.limits.clone(), events.clone())
            .map_err(SfuStartError::Thread)?;
        Ok(Sfu {
            inner: Arc::new(SfuInner {
                config,
                udp_addr,
                engine,
                events,
            }),
        })
    }

    /// The signalling routes (`/rtc/v1`, `/rtc/v1/validate`, `/rtc`, `/rtc/validate`), to nest
    /// under the URL handed out in join credentials.
    pub fn router(&self) -> axum::Router {
        signal::router(self.clone())
    }

    pub fn udp_addr(&self) -> SocketAddr {
        self.inner.udp_addr
    }

    pub fn api_key(&self) -> &str {
        &self.inner.config.api_key
    }

    pub fn subscribe_events(&self) -> broadcast::Receiver<RoomEvent> {
        self.inner.events.subscribe()
    }

    /// Counters and the engine thread's CPU time, for benchmarks and diagnostics.
    pub async fn stats(&self) -> EngineStats {
        self.inner.engine.stats().await
    }

    /// The identities in `room` right now.
    pub async fn participants(&self, room: &str) -> Vec<String> {
        self.inner.engine.participants(room).await
    }

    /// Who is in `room` right now: publishers, and viewers who may only subscribe.
    pub async fn audience(&self, room: &str) -> RoomAudience {
        self.inner.engine.audience(room).await
    }

    /// A copy of the frames `room`'s first publisher sends (camera and microphone), for
    /// packaging them elsewhere. It lasts until the tap is dropped.
    pub async fn tap(&self, room: &str) -> RoomTap {
        // About 4 s of 30 fps video and 50 Opus packets a second.
        let (frames, rx) = mpsc::channel(320);
        let command = engine::Command::Tap {
            room: room.to_owned(),
            frames,
        };
        // A stopped engine drops the sender: the tap then ends at once.
        self.inner.engine.send(command).await;
        RoomTap {
            room: room.to_owned(),
            frames: rx,
            engine: self.inner.engine.clone(),
        }
    }

    /// Ends every session (clients are asked to reconnect, as to a restarted server) and
    /// stops the engine and its UDP port. Never waits; safe to call from `Drop`.
    pub fn shutdown(&self) {
        self.inner.engine.shutdown();
    }

    pub(crate) fn config(&self) -> &SfuConfig {
        &self.inner.config
    }

    pub(crate) fn engine(&self) -> &engine::EngineHandle {
        &self.inner.engine
    }
}

/// A room's publisher's frames, as the SFU forwards them.
pub struct RoomTap {
    room: String,
    frames: mpsc::Receiver<TapFrame>,
    engine: engine::EngineHandle,
}

impl RoomTap {
    /// The next frame; `None` once the SFU stopped.
    pub async fn next(&mut self) -> Option<TapFrame> {
        self.frames.recv().await
    }

    /// Asks the publisher for a keyframe of the layer the tap carries (throttled like
    /// subscribers' requests).
    pub async fn request_keyframe(&self) {
        let command = engine::Command::TapKeyframe {
            room: self.room.clone(),
        };
        self.engine.send(command).await;
    }
}

pub(crate) type SignalTx = mpsc::Sender<livekit_protocol::SignalResponse>;
