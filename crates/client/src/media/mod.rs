//! The media half of a call: a participant in the call's SFU session, speaking LiveKit's open
//! signalling protocol (as the embedded SFU of Confab's local coordinator does, and as a
//! livekit-server would) with media over str0m.
//!
//! It carries encoded frames only: the caller encodes what it publishes and decodes what it
//! receives. One task owns the signal socket, the UDP socket and the peer connection;
//! [`CallSession`] sends it requests and reads its [`CallEvent`]s.

pub mod frame_size;
mod remote;
mod signal;
pub mod synthetic;
mod task;

use std::fmt;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::{mpsc, oneshot};

pub use remote::{RemoteParticipant, RemoteTrack};

/// Where and how to join: the SFU URL and token from the coordinator's join answer.
#[derive(Clone)]
pub struct SfuCredentials {
    /// `credentials.server.url` (http(s) or ws(s)); `/rtc/v1` is appended.
    pub url: String,
    pub token: String,
}

impl fmt::Debug for SfuCredentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SfuCredentials")
            .field("url", &self.url)
            .field("token", &"[redacted]")
            .finish()
    }
}

impl From<&confab_protocol::CallCredentials> for SfuCredentials {
    fn from(c: &confab_protocol::CallCredentials) -> Self {
        Self {
            url: c.server.url.clone(),
            token: c.token.clone(),
        }
    }
}

/// Options for a call session.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct CallSessionOptions {
    /// Subscribe to every track in the call as it appears.
    pub auto_subscribe: bool,
    /// Receiving sections offered up front, per kind (more are added when the SFU asks).
    pub initial_receive_sections: u32,
    /// Time to get the SFU's join answer.
    pub join_timeout: Duration,
    /// Attempts to rejoin after the SFU is lost, before giving up.
    pub max_rejoin_attempts: u32,
    /// Events buffered for a reader that falls behind; frames beyond it are dropped (and
    /// counted in [`CallStats::frames_dropped`]), other events are never dropped.
    pub event_buffer: usize,
    /// Allows plain ws:// to a host on the network (a trusted LAN coordinator).
    pub allow_insecure: bool,
    /// Estimate the bandwidth for sending (TWCC) from this starting figure, in bit/s, and
    /// report it as [`CallEvent::BandwidthEstimate`]. Off by default.
    pub bandwidth_estimation: Option<u64>,
}

impl CallSessionOptions {
    /// Whether to subscribe to every track automatically (otherwise see
    /// [`CallSession::set_subscribed`]).
    pub fn with_auto_subscribe(mut self, auto: bool) -> Self {
        self.auto_subscribe = auto;
        self
    }

    pub fn with_allow_insecure(mut self, allow: bool) -> Self {
        self.allow_insecure = allow;
        self
    }

    /// Turns on send bandwidth estimation, starting from `initial_bps`.
    pub fn with_bandwidth_estimation(mut self, initial_bps: u64) -> Self {
        self.bandwidth_estimation = Some(initial_bps);
        self
    }

    /// How many times to rejoin a lost SFU before giving up.
    pub fn with_max_rejoin_attempts(mut self, attempts: u32) -> Self {
        self.max_rejoin_attempts = attempts;
        self
    }
}

impl Default for CallSessionOptions {
    fn default() -> Self {
        Self {
            auto_subscribe: true,
            initial_receive_sections: 3,
            join_timeout: Duration::from_secs(10),
            max_rejoin_attempts: 10,
            event_buffer: 4096,
            allow_insecure: false,
            bandwidth_estimation: None,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MediaKind {
    Audio,
    Video,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VideoCodec {
    H264,
    Vp8,
}

/// What a published track carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TrackSource {
    Camera,
    Microphone,
    ScreenShare,
    ScreenShareAudio,
}

/// One simulcast layer of a published video track.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Layer {
    /// `q`, `h` or `f` (low, medium, full), as LiveKit names them.
    pub rid: String,
    pub width: u32,
    pub height: u32,
    pub bitrate: u32,
}

/// A track to publish.
#[derive(Debug, Clone)]
pub struct TrackSpec {
    pub name: String,
    pub source: TrackSource,
    pub kind: MediaKind,
    /// Video only.
    pub codec: VideoCodec,
    pub width: u32,
    pub height: u32,
    /// Empty: one layer without a rid.
    pub layers: Vec<Layer>,
    pub muted: bool,
}

impl TrackSpec {
    pub fn microphone() -> Self {
        Self {
            name: "microphone".into(),
            source: TrackSource::Microphone,
            kind: MediaKind::Audio,
            codec: VideoCodec::H264,
            width: 0,
            height: 0,
            layers: Vec::new(),
            muted: false,
        }
    }

    pub fn camera(codec: VideoCodec, width: u32, height: u32) -> Self {
        Self {
            name: "camera".into(),
            source: TrackSource::Camera,
            kind: MediaKind::Video,
            codec,
            width,
            height,
            layers: Vec::new(),
            muted: false,
        }
    }

    /// LiveKit's three layers for this size: `q` (a quarter), `h` (half) and `f` (full).
    pub fn with_simulcast(mut self) -> Self {
        let (w, h) = (self.width, self.height);
        self.layers = vec![
            Layer {
                rid: "q".into(),
                width: w / 4,
                height: h / 4,
                bitrate: 150_000,
            },
            Layer {
                rid: "h".into(),
                width: w / 2,
                height: h / 2,
                bitrate: 500_000,
            },
            Layer {
                rid: "f".into(),
                width: w,
                height: h,
                bitrate: 1_500_000,
            },
        ];
        self
    }
}

/// One encoded frame to send.
#[derive(Debug, Clone)]
pub struct EncodedFrame {
    /// For H.264, an Annex B access unit; for VP8 and Opus, the codec's frame.
    pub data: Arc<[u8]>,
    /// Capture time from the track's start (becomes the RTP timestamp).
    pub timestamp: Duration,
    /// The simulcast layer, for tracks published with layers.
    pub rid: Option<String>,
    /// RFC 6464 audio level (0 loudest, -127 silence), for audio.
    pub audio_level: Option<i8>,
}

/// A frame received on a remote track.
#[derive(Debug, Clone)]
pub struct RemoteFrame {
    pub participant_sid: String,
    pub identity: String,
    pub track_sid: String,
    pub kind: MediaKind,
    /// `video/H264`, `video/VP8`, `audio/opus`.
    pub mime: String,
    pub data: Arc<[u8]>,
    /// RTP time in the codec's clock (90 kHz video, 48 kHz Opus).
    pub rtp_time: u64,
    pub keyframe: bool,
    /// False after packets were lost: a decoder may need the next keyframe.
    pub contiguous: bool,
    /// When the frame's first packet arrived (the last may have come later, after a
    /// retransmission).
    pub received_at: Instant,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConnectionQuality {
    Excellent,
    Good,
    Poor,
    Lost,
}

/// What happens in the call.
#[derive(Debug, Clone)]
pub enum CallEvent {
    /// Joined (or rejoined): this participant's sid.
    Joined {
        sid: String,
    },
    ParticipantJoined(RemoteParticipant),
    ParticipantLeft {
        sid: String,
        identity: String,
    },
    TrackPublished {
        identity: String,
        track: RemoteTrack,
    },
    TrackUnpublished {
        identity: String,
        track_sid: String,
    },
    TrackMuted {
        identity: String,
        track_sid: String,
        muted: bool,
    },
    Speaking {
        identity: String,
        speaking: bool,
        level: f32,
    },
    DominantSpeaker {
        identity: Option<String>,
    },
    Quality {
        identity: String,
        quality: ConnectionQuality,
        score: f32,
    },
    Frame(RemoteFrame),
    /// A receiver needs a keyframe of this published track (of one simulcast layer, or all when
    /// `rid` is `None`): the encoder should make one now. The SFU throttles these.
    KeyframeRequested {
        track_sid: String,
        rid: Option<String>,
    },
    /// The SFU was lost; rejoining (attempt counts from 1; 0 is an ICE restart on the same
    /// session). The next attempt starts after `retry_in`.
    Reconnecting {
        attempt: u32,
        retry_in: Duration,
    },
    /// str0m's estimate of the bandwidth available for sending, from the SFU's transport-wide
    /// congestion control feedback: encoders should keep their total under it.
    BandwidthEstimate {
        bps: u64,
    },
    Reconnected,
    /// The session ended; no more events follow.
    Disconnected {
        reason: String,
    },
}

/// Per track figures, from str0m's stats (every second).
#[derive(Debug, Clone, Default)]
pub struct TrackStats {
    pub track_sid: String,
    pub outgoing: bool,
    pub rid: Option<String>,
    pub bytes: u64,
    pub packets: u64,
    pub bitrate_bps: u64,
    pub loss: Option<f32>,
    pub rtt: Option<Duration>,
    pub nacks: u64,
}

#[derive(Debug, Clone, Default)]
pub struct CallStats {
    pub tracks: Vec<TrackStats>,
    pub rtt: Option<Duration>,
    pub frames_sent: u64,
    pub frames_received: u64,
    /// Frames not delivered because the event reader fell behind.
    pub frames_dropped: u64,
    /// Frames written before their track's media was negotiated.
    pub frames_not_ready: u64,
    pub rejoins: u32,
}

/// Why joining failed.
#[derive(Debug, thiserror::Error)]
pub enum JoinMediaError {
    #[error("the SFU address is not usable: {0}")]
    BadUrl(String),
    #[error("{0}")]
    Insecure(String),
    #[error("the SFU refused the join ({status}): {message}")]
    Refused { status: u16, message: String },
    #[error("the SFU could not be reached: {0}")]
    Unreachable(String),
    #[error("the SFU did not answer the join in time")]
    Timeout,
    #[error("the SFU ended the join: {0}")]
    Ended(String),
    #[error("media could not be set up: {0}")]
    Media(String),
}

impl JoinMediaError {
    /// Refusals no retry with the same token can fix.
    pub fn is_terminal(&self) -> bool {
        matches!(
            self,
            JoinMediaError::BadUrl(_)
                | JoinMediaError::Insecure(_)
                | JoinMediaError::Refused { .. }
        )
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PublishError {
    #[error("the SFU refused the track: {0}")]
    Refused(String),
    #[error("the SFU did not confirm the track within 10 s")]
    Timeout,
    #[error("the call session has ended")]
    Ended,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SendFrameError {
    #[error("the call session has ended")]
    Ended,
    #[error("the session is busy: the frame was dropped")]
    Full,
}

pub(crate) enum Command {
    Publish {
        cid: String,
        spec: TrackSpec,
        reply: oneshot::Sender<Result<String, PublishError>>,
    },
    Frame {
        cid: String,
        frame: EncodedFrame,
    },
    Mute {
        cid: String,
        muted: bool,
    },
    Unpublish {
        cid: String,
    },
    Subscribe {
        track_sid: String,
        subscribe: bool,
    },
    Quality {
        track_sid: String,
        width: u32,
        height: u32,
    },
    /// A receiver's decoder lost its place: ask the track's sender for a keyframe.
    Keyframe {
        track_sid: String,
    },
    Stats(oneshot::Sender<CallStats>),
    Participants(oneshot::Sender<Vec<RemoteParticipant>>),
    /// Drops the UDP path (tests of ICE restarts): datagrams are not sent or read.
    SimulateNetworkBlip(Duration),
    /// Drops this share of incoming datagrams once connected (tests of NACK and RTX).
    SimulateLoss(f32),
    Leave(oneshot::Sender<()>),
}

/// A joined call's media session. Dropping it leaves the call.
pub struct CallSession {
    commands: mpsc::Sender<Command>,
    events: mpsc::Receiver<CallEvent>,
    sid: String,
    identity: String,
}

impl fmt::Debug for CallSession {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CallSession")
            .field("sid", &self.sid)
            .field("identity", &self.identity)
            .finish()
    }
}

/// A published track: send its frames, mute it, unpublish it. Cheap to clone.
#[derive(Clone)]
pub struct LocalTrack {
    cid: String,
    sid: String,
    kind: MediaKind,
    commands: mpsc::Sender<Command>,
}

impl fmt::Debug for LocalTrack {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LocalTrack")
            .field("sid", &self.sid)
            .field("kind", &self.kind)
            .finish()
    }
}

impl CallSession {
    /// Joins the SFU session named by `credentials`.
    pub async fn connect(
        credentials: SfuCredentials,
        options: CallSessionOptions,
    ) -> Result<CallSession, JoinMediaError> {
        let (commands, rx) = mpsc::channel(1024);
        let (events_tx, events) = mpsc::channel(options.event_buffer.max(16));
        let (sid, identity) = task::start(credentials, options, rx, events_tx).await?;
        Ok(CallSession {
            commands,
            events,
            sid,
            identity,
        })
    }

    /// This participant's sid (it changes after a full rejoin; see [`CallEvent::Joined`]).
    pub fn sid(&self) -> &str {
        &self.sid
    }

    pub fn identity(&self) -> &str {
        &self.identity
    }

    /// The next event; `None` once the session has ended.
    pub async fn next_event(&mut self) -> Option<CallEvent> {
        let event = self.events.recv().await;
        if let Some(CallEvent::Joined { sid }) = &event {
            self.sid = sid.clone();
        }
        event
    }

    /// Publishes a track; its frames go through the returned handle.
    pub async fn publish(&self, spec: TrackSpec) -> Result<LocalTrack, PublishError> {
        let (reply, answer) = oneshot::channel();
        let kind = spec.kind;
        let cid = format!("TC_{}", uuid::Uuid::new_v4().simple());
        self.commands
            .send(Command::Publish {
                cid: cid.clone(),
                spec,
                reply,
            })
            .await
            .map_err(|_| PublishError::Ended)?;
        let sid = answer.await.map_err(|_| PublishError::Ended)??;
        Ok(LocalTrack {
            cid,
            sid,
            kind,
            commands: self.commands.clone(),
        })
    }

    /// Subscribes to, or unsubscribes from, a remote track.
    pub async fn set_subscribed(&self, track_sid: &str, subscribe: bool) {
        let _ = self
            .commands
            .send(Command::Subscribe {
                track_sid: track_sid.to_owned(),
                subscribe,
            })
            .await;
    }

    /// Asks for the simulcast layer that fits a tile of this size.
    pub async fn set_video_size(&self, track_sid: &str, width: u32, height: u32) {
        let _ = self
            .commands
            .send(Command::Quality {
                track_sid: track_sid.to_owned(),
                width,
                height,
            })
            .await;
    }

    /// Asks for a keyframe of a remote video track (a decoder that dropped frames or failed
    /// cannot go on before one; a publisher may send none by itself for minutes).
    pub async fn request_keyframe(&self, track_sid: &str) {
        let _ = self
            .commands
            .send(Command::Keyframe {
                track_sid: track_sid.to_owned(),
            })
            .await;
    }

    pub async fn stats(&self) -> CallStats {
        let (reply, answer) = oneshot::channel();
        if self.commands.send(Command::Stats(reply)).await.is_err() {
            return CallStats::default();
        }
        answer.await.unwrap_or_default()
    }

    /// The other participants now, with their tracks.
    pub async fn participants(&self) -> Vec<RemoteParticipant> {
        let (reply, answer) = oneshot::channel();
        if self
            .commands
            .send(Command::Participants(reply))
            .await
            .is_err()
        {
            return Vec::new();
        }
        answer.await.unwrap_or_default()
    }

    /// Stops sending and reading UDP for `duration` (a network blip, for tests).
    pub async fn simulate_network_blip(&self, duration: Duration) {
        let _ = self
            .commands
            .send(Command::SimulateNetworkBlip(duration))
            .await;
    }

    /// Drops `fraction` (0 to 1) of the datagrams arriving from the SFU, as a lossy network
    /// would (tests and benchmarks of retransmission).
    pub async fn simulate_receive_loss(&self, fraction: f32) {
        let _ = self
            .commands
            .send(Command::SimulateLoss(fraction.clamp(0.0, 1.0)))
            .await;
    }

    /// Leaves the call: the others see this participant go at once.
    pub async fn leave(self) {
        let (reply, answer) = oneshot::channel();
        if self.commands.send(Command::Leave(reply)).await.is_ok() {
            let _ = tokio::time::timeout(Duration::from_secs(2), answer).await;
        }
    }
}

impl LocalTrack {
    pub fn sid(&self) -> &str {
        &self.sid
    }

    pub fn kind(&self) -> MediaKind {
        self.kind
    }

    /// Queues a frame. Never waits: a full queue drops the frame (a newer one follows).
    pub fn send_frame(&self, frame: EncodedFrame) -> Result<(), SendFrameError> {
        self.commands
            .try_send(Command::Frame {
                cid: self.cid.clone(),
                frame,
            })
            .map_err(|e| match e {
                mpsc::error::TrySendError::Full(_) => SendFrameError::Full,
                mpsc::error::TrySendError::Closed(_) => SendFrameError::Ended,
            })
    }

    /// Sends a frame, waiting for room in the queue (tests that must not drop any).
    pub async fn send_frame_waiting(&self, frame: EncodedFrame) -> Result<(), SendFrameError> {
        self.commands
            .send(Command::Frame {
                cid: self.cid.clone(),
                frame,
            })
            .await
            .map_err(|_| SendFrameError::Ended)
    }

    pub async fn set_muted(&self, muted: bool) {
        let _ = self
            .commands
            .send(Command::Mute {
                cid: self.cid.clone(),
                muted,
            })
            .await;
    }

    pub async fn unpublish(self) {
        let _ = self
            .commands
            .send(Command::Unpublish { cid: self.cid })
            .await;
    }
}
