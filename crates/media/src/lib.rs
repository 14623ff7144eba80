//! `confab-media`: a host's livestream as HLS. Camera frames (confab-devices) are encoded to
//! H.264 (OpenH264), cut into ~1 s MPEG-TS segments with a live playlist, and uploaded to the
//! coordinator, which serves them to viewers (hls.js in the app, or any HLS player).
//!
//! Video only: the webview stalled on audio+video HLS with PulseAudio running (see the platform
//! notes), so audio waits until that is understood.

pub mod encoder;
pub mod hls;
pub mod publisher;
pub mod ts;

pub use encoder::{EncodeError, EncodedFrame, EncoderSettings, H264Encoder};
pub use hls::{LivePlaylist, Segment, Segmenter};
pub use publisher::{
    start, Broadcast, BroadcastError, BroadcastOptions, BroadcastStats, BroadcastStatus, Target,
    TokenFn,
};

/// The HTTP client the publisher uploads with, for callers that talk to the same coordinator.
pub use reqwest;

/// The playlist's file name next to the segments, as the coordinator serves it.
pub use confab_protocol::HLS_PLAYLIST as PLAYLIST;
