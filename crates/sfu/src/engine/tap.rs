//! Room taps: a copy of one publisher's video and microphone frames, as the SFU forwards
//! them, for the coordinator's HLS packaging (what LiveKit does with an egress participant,
//! without the peer connection). A tap follows the room's first publisher; its video is the
//! screen the publisher shares if any, else the camera's best simulcast layer that is flowing,
//! and every switch or loss waits for a keyframe.

use std::sync::Arc;
use std::time::Instant;

use livekit_protocol as lk;
use str0m::format::Codec;
use str0m::media::{MediaData, MediaKind, Rid};
use tokio::sync::mpsc;

use super::participant::{ParticipantKey, PublishedTrack};

/// What a tapped frame carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TapCodec {
    /// An access unit in Annex B.
    H264,
    Vp8,
    /// One Opus packet.
    Opus,
    Other,
}

/// One frame of the tapped publisher.
#[derive(Debug, Clone)]
pub struct TapFrame {
    /// The publisher's participant sid: a new one (a rejoin) starts a new timeline.
    pub publisher: String,
    /// The track the frame is from: the video moves from the camera to a shared screen and
    /// back, each with its own RTP clock.
    pub track_sid: String,
    pub kind: TapKind,
    pub codec: TapCodec,
    pub data: Arc<[u8]>,
    /// RTP time of the frame and its clock rate (90 kHz video, 48 kHz Opus).
    pub rtp_time: u64,
    pub clock_rate: u64,
    /// When the frame's last packet arrived.
    pub arrived: Instant,
    pub keyframe: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TapKind {
    Video,
    Audio,
}

pub(super) struct Tap {
    pub frames: mpsc::Sender<TapFrame>,
    pub publisher: Option<ParticipantKey>,
    pub video_track: Option<String>,
    pub audio_track: Option<String>,
    pub video_rid: Option<Rid>,
    /// Video is held back until a keyframe: at the start, after a layer switch or a loss.
    pub waiting_keyframe: bool,
    /// When the tap first saw the publisher's video: lower layers are taken only after the
    /// top one had time to show up (layers start a few milliseconds apart).
    pub video_seen_at: Option<Instant>,
}

impl Tap {
    pub fn new(frames: mpsc::Sender<TapFrame>) -> Self {
        Self {
            frames,
            publisher: None,
            video_track: None,
            audio_track: None,
            video_rid: None,
            waiting_keyframe: true,
            video_seen_at: None,
        }
    }

    /// A track was unpublished: if it was the tap's, the tap takes the next one that comes
    /// (the camera again, after a shared screen), from a keyframe.
    pub fn track_gone(&mut self, track_sid: &str) {
        if self.video_track.as_deref() == Some(track_sid) {
            self.video_track = None;
            self.video_rid = None;
            self.waiting_keyframe = true;
            self.video_seen_at = None;
        }
        if self.audio_track.as_deref() == Some(track_sid) {
            self.audio_track = None;
        }
    }

    /// Forgets the publisher (it left), so the next one to send is followed.
    pub fn release(&mut self, key: ParticipantKey) {
        if self.publisher == Some(key) {
            *self = Tap::new(self.frames.clone());
        }
    }
}

/// What the engine knows about a forwarded frame, for the taps.
pub(super) struct Forwarded<'a> {
    pub from: ParticipantKey,
    pub publisher_sid: &'a str,
    pub track: &'a PublishedTrack,
    pub active_rids: &'a [Rid],
    pub keyframe: bool,
    pub data: &'a MediaData,
}

/// The best layer flowing: full, then half, then quarter; `None` without simulcast.
fn best_rid(active: &[Rid]) -> Option<Rid> {
    ["f", "h", "q"]
        .into_iter()
        .map(Rid::from)
        .find(|r| active.contains(r))
        .or_else(|| active.first().copied())
}

/// How long a tap waits for the top announced layer before it settles for a lower one.
const TOP_LAYER_WAIT: std::time::Duration = std::time::Duration::from_millis(1500);

fn is_screen(track: &PublishedTrack) -> bool {
    matches!(
        lk::TrackSource::try_from(track.info.source),
        Ok(lk::TrackSource::ScreenShare | lk::TrackSource::ScreenShareAudio)
    )
}

/// Copies a forwarded frame to a tap when it is the tap's to carry. Returns the layer a
/// keyframe is wanted for, if the tap is waiting for one.
pub(super) fn feed(tap: &mut Tap, f: &Forwarded<'_>) -> Option<Option<Rid>> {
    let screen = is_screen(f.track);
    // A shared screen's sound is not carried: the microphone is the playlist's sound.
    if screen && f.track.kind == MediaKind::Audio {
        return None;
    }
    let publisher = *tap.publisher.get_or_insert(f.from);
    if publisher != f.from {
        return None;
    }
    let sid = &f.track.info.sid;
    let (kind, slot) = match f.track.kind {
        MediaKind::Video => (TapKind::Video, &mut tap.video_track),
        MediaKind::Audio => (TapKind::Audio, &mut tap.audio_track),
    };
    if screen && slot.as_deref() != Some(sid.as_str()) {
        // A shared screen takes the picture over from the camera, from its first keyframe.
        *slot = Some(sid.clone());
        tap.video_rid = None;
        tap.waiting_keyframe = true;
        tap.video_seen_at = None;
    }
    if slot.get_or_insert_with(|| sid.clone()) != sid {
        return None;
    }
    if kind == TapKind::Video {
        let seen_at = *tap.video_seen_at.get_or_insert(f.data.network_time);
        let top = best_rid(
            &f.track
                .layer_sizes()
                .iter()
                .map(|(r, _)| *r)
                .collect::<Vec<_>>(),
        );
        let settled = f.data.network_time.saturating_duration_since(seen_at) >= TOP_LAYER_WAIT;
        let best = best_rid(f.active_rids);
        if top.is_some() && best != top && !settled {
            return None;
        }
        if tap.video_rid != best {
            tap.video_rid = best;
            tap.waiting_keyframe = true;
        }
        if f.data.rid != best {
            return tap.waiting_keyframe.then_some(best);
        }
        if !f.data.contiguous {
            tap.waiting_keyframe = true;
        }
        if tap.waiting_keyframe {
            if !f.keyframe {
                return Some(best);
            }
            tap.waiting_keyframe = false;
        }
    }
    let codec = match f.data.params.spec().codec {
        Codec::H264 => TapCodec::H264,
        Codec::Vp8 => TapCodec::Vp8,
        Codec::Opus => TapCodec::Opus,
        _ => TapCodec::Other,
    };
    let frame = TapFrame {
        publisher: f.publisher_sid.to_owned(),
        track_sid: sid.clone(),
        kind,
        codec,
        data: f.data.data.clone(),
        rtp_time: f.data.time.numer(),
        clock_rate: u64::from(f.data.time.frequency().get()),
        arrived: f.data.network_time,
        keyframe: f.keyframe,
    };
    // Never wait on the packager: a full queue loses the frame, and video then restarts
    // at a keyframe.
    if tap.frames.try_send(frame).is_err() && kind == TapKind::Video {
        tap.waiting_keyframe = true;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_best_flowing_layer_is_chosen() {
        let rids = |names: &[&str]| names.iter().map(|n| Rid::from(*n)).collect::<Vec<_>>();
        assert_eq!(best_rid(&rids(&["q", "h", "f"])), Some(Rid::from("f")));
        assert_eq!(best_rid(&rids(&["q", "h"])), Some(Rid::from("h")));
        assert_eq!(best_rid(&rids(&["q"])), Some(Rid::from("q")));
        assert_eq!(best_rid(&[]), None);
    }
}
