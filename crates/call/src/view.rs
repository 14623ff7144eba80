//! What the page is told about the call's media: the whole view, sent whenever it changes
//! (docs/call-media.md), and the per-track figures of the stats panel.

use serde::Serialize;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum MediaState {
    Connecting,
    Connected,
    Reconnecting,
    /// The service's media protocol is not one Confab speaks (Stream's own SFU).
    Unsupported,
    /// Refused for good (a bad token): the call goes on without media.
    Failed,
    Ended,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LocalView {
    pub identity: String,
    pub name: String,
    pub microphone_muted: bool,
    pub camera_enabled: bool,
    pub speaking: bool,
    pub speaking_while_muted: bool,
    pub camera_error: Option<String>,
    pub microphone_error: Option<String>,
    /// What you are sharing (its title), while you share.
    pub sharing: Option<String>,
    /// Why sharing stopped by itself, or could not go on.
    pub share_error: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AudioTrackView {
    pub track_sid: String,
    pub muted: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct VideoTrackView {
    pub track_sid: String,
    pub muted: bool,
    /// `video/H264` or `video/VP8`.
    pub codec: String,
    pub width: u32,
    pub height: u32,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ParticipantView {
    pub identity: String,
    pub name: String,
    pub sid: String,
    pub speaking: bool,
    /// `excellent`, `good`, `poor` or `lost`.
    pub quality: &'static str,
    pub audio: Option<AudioTrackView>,
    pub video: Option<VideoTrackView>,
    /// A screen or window this participant shares.
    pub screen: Option<VideoTrackView>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct MediaView {
    /// Always `view`: the page tells this message from a binary frame by it.
    #[serde(rename = "type")]
    pub message_type: &'static str,
    pub media: MediaState,
    pub attempt: u32,
    pub retry_in_ms: u64,
    pub message: Option<String>,
    pub local: LocalView,
    pub participants: Vec<ParticipantView>,
    pub dominant_speaker: Option<String>,
}

impl MediaView {
    pub(crate) fn new(identity: &str, name: &str, muted: bool, camera: bool) -> Self {
        Self {
            message_type: "view",
            media: MediaState::Connecting,
            attempt: 0,
            retry_in_ms: 0,
            message: None,
            local: LocalView {
                identity: identity.to_owned(),
                name: name.to_owned(),
                microphone_muted: muted,
                camera_enabled: camera,
                speaking: false,
                speaking_while_muted: false,
                camera_error: None,
                microphone_error: None,
                sharing: None,
                share_error: None,
            },
            participants: Vec::new(),
            dominant_speaker: None,
        }
    }

    pub(crate) fn participant_mut(&mut self, identity: &str) -> Option<&mut ParticipantView> {
        self.participants
            .iter_mut()
            .find(|p| p.identity == identity)
    }
}

/// One row of the stats panel.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TrackStatsView {
    pub track_sid: String,
    pub identity: String,
    /// `in` or `out`.
    pub direction: &'static str,
    /// `audio` or `video`.
    pub kind: &'static str,
    pub codec: String,
    pub rid: Option<String>,
    pub width: Option<u32>,
    pub height: Option<u32>,
    pub fps: Option<f32>,
    pub bitrate_bps: u64,
    pub loss: Option<f32>,
    pub rtt_ms: Option<f64>,
    /// Outgoing rows: the bandwidth estimate for sending (from the SFU's congestion feedback)
    /// the camera's layers are fitted to.
    pub available_bps: Option<u64>,
}
