//! What the probe prints: one JSON object per line on stdout, as things happen, and a
//! per-track summary of everything received at the end.

use std::io::Write;

use confab_client::media::{MediaKind, RemoteFrame, RemoteTrack};
use serde::Serialize;
use serde_json::{json, Value};

use confab_client::media::frame_size as keyframe;

/// Writes one line and flushes it, so a reader sees each event as it happens. A closed
/// stdout (the reader went away) is not an error worth stopping for.
pub fn emit(value: &Value) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{value}");
    let _ = out.flush();
}

pub fn kind_name(kind: MediaKind) -> &'static str {
    match kind {
        MediaKind::Audio => "audio",
        MediaKind::Video => "video",
    }
}

/// What arrived on one remote track.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct TrackTally {
    pub identity: String,
    pub track_sid: String,
    pub kind: &'static str,
    pub mime: String,
    pub frames: u64,
    pub keyframes: u64,
    pub bytes: u64,
    /// The size in the last keyframe whose header could be read (0 when none could).
    pub keyframe_width: u32,
    pub keyframe_height: u32,
}

/// Every remote track seen, in the order first seen.
#[derive(Debug, Default)]
pub struct Received {
    tracks: Vec<TrackTally>,
}

impl Received {
    fn entry(
        &mut self,
        identity: &str,
        track_sid: &str,
        kind: MediaKind,
        mime: &str,
    ) -> &mut TrackTally {
        let at = match self.tracks.iter().position(|t| t.track_sid == track_sid) {
            Some(at) => at,
            None => {
                self.tracks.push(TrackTally {
                    identity: identity.to_owned(),
                    track_sid: track_sid.to_owned(),
                    kind: kind_name(kind),
                    mime: mime.to_owned(),
                    frames: 0,
                    keyframes: 0,
                    bytes: 0,
                    keyframe_width: 0,
                    keyframe_height: 0,
                });
                self.tracks.len() - 1
            }
        };
        &mut self.tracks[at]
    }

    /// A track announced (it may never send a frame).
    pub fn announced(&mut self, identity: &str, track: &RemoteTrack) {
        self.entry(identity, &track.sid, track.kind, &track.mime);
    }

    pub fn frame(&mut self, frame: &RemoteFrame) {
        let tally = self.entry(&frame.identity, &frame.track_sid, frame.kind, &frame.mime);
        // The codec the frames arrive in wins over what was announced.
        if !frame.mime.is_empty() && tally.mime != frame.mime {
            tally.mime = frame.mime.clone();
        }
        tally.frames += 1;
        tally.bytes += frame.data.len() as u64;
        if frame.keyframe {
            tally.keyframes += 1;
            if let Some((w, h)) = keyframe_size(&frame.mime, &frame.data) {
                tally.keyframe_width = w;
                tally.keyframe_height = h;
            }
        }
    }

    pub fn summary(&self) -> Value {
        json!({ "event": "summary", "tracks": self.tracks })
    }
}

fn keyframe_size(mime: &str, data: &[u8]) -> Option<(u32, u32)> {
    if mime.eq_ignore_ascii_case("video/VP8") {
        keyframe::vp8_size(data)
    } else if mime.eq_ignore_ascii_case("video/H264") {
        keyframe::h264_size(data)
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Instant;

    fn frame(track: &str, mime: &str, keyframe: bool, data: Vec<u8>) -> RemoteFrame {
        RemoteFrame {
            participant_sid: "PA_1".into(),
            identity: "ada".into(),
            track_sid: track.into(),
            kind: if mime.starts_with("audio") {
                MediaKind::Audio
            } else {
                MediaKind::Video
            },
            mime: mime.into(),
            data: data.into(),
            rtp_time: 0,
            keyframe,
            contiguous: true,
            received_at: Instant::now(),
        }
    }

    #[test]
    fn frames_are_tallied_per_track_with_the_keyframe_size() {
        let mut received = Received::default();
        received.announced(
            "bob",
            &RemoteTrack {
                sid: "TR_quiet".into(),
                name: "microphone".into(),
                kind: MediaKind::Audio,
                source: "microphone".into(),
                mime: "audio/opus".into(),
                muted: false,
                width: 0,
                height: 0,
            },
        );
        let mut key = vec![0x10, 0x02, 0x00, 0x9d, 0x01, 0x2a];
        key.extend_from_slice(&320u16.to_le_bytes());
        key.extend_from_slice(&240u16.to_le_bytes());
        key.extend_from_slice(&[0; 10]);
        received.frame(&frame("TR_v", "video/VP8", true, key.clone()));
        received.frame(&frame("TR_v", "video/VP8", false, vec![0x11; 40]));
        received.frame(&frame("TR_a", "audio/opus", false, vec![0xf8, 0xff, 0xfe]));
        let summary = received.summary();
        assert_eq!(summary["event"], "summary");
        let tracks = summary["tracks"].as_array().unwrap();
        assert_eq!(tracks.len(), 3);
        assert_eq!(tracks[0]["track_sid"], "TR_quiet");
        assert_eq!(tracks[0]["frames"], 0);
        assert_eq!(tracks[0]["identity"], "bob");
        assert_eq!(tracks[1]["kind"], "video");
        assert_eq!(tracks[1]["mime"], "video/VP8");
        assert_eq!(tracks[1]["frames"], 2);
        assert_eq!(tracks[1]["keyframes"], 1);
        assert_eq!(tracks[1]["bytes"], key.len() as u64 + 40);
        assert_eq!(tracks[1]["keyframe_width"], 320);
        assert_eq!(tracks[1]["keyframe_height"], 240);
        assert_eq!(tracks[2]["kind"], "audio");
        assert_eq!(tracks[2]["keyframe_width"], 0);
    }
}
