//! Sharing a screen or a window in a call: frames from confab-screen's capture (at most
//! 1920x1080 at 15 fps: detail over motion) encoded to H.264 tuned for screen content, one
//! layer, on a second video track marked as a screen share.
//!
//! The capture leaves its newest frame in a one-frame slot; the encoder thread takes what is
//! there when it is free, so a slow encode drops frames instead of queueing them.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use confab_client::media::{
    EncodedFrame, LocalTrack, MediaKind, SendFrameError, TrackSource, TrackSpec, VideoCodec,
};
use confab_media::encoder::{EncoderSettings, H264Encoder, PixelOrder};
use confab_screen::{Capture, CaptureEnded, CaptureSettings, FrameSlot, ScreenError};

/// Sharing's frame rate and largest size.
pub const SHARE_SETTINGS: CaptureSettings = CaptureSettings {
    fps: 15,
    max_width: 1920,
    max_height: 1080,
};

/// A keyframe at least this often (4 s at 15 fps), for a receiver whose request was lost.
const KEYFRAME_INTERVAL_FRAMES: u32 = 60;

/// The bitrate for a share of `width` x `height` at 15 fps: 0.08 bit a pixel (2.5 Mbit/s at
/// 1080p), at least 300 kbit/s.
pub fn share_bitrate(width: u32, height: u32) -> u32 {
    let bits = f64::from(width) * f64::from(height) * f64::from(SHARE_SETTINGS.fps) * 0.08;
    (bits as u32).clamp(300_000, 2_500_000)
}

/// The track to publish for a source of this size.
pub fn share_track_spec(width: u32, height: u32) -> TrackSpec {
    let (width, height) = confab_screen::fit_within(
        width,
        height,
        SHARE_SETTINGS.max_width,
        SHARE_SETTINGS.max_height,
    );
    TrackSpec {
        name: "screen".into(),
        source: TrackSource::ScreenShare,
        kind: MediaKind::Video,
        codec: VideoCodec::H264,
        width,
        height,
        layers: Vec::new(),
        muted: false,
    }
}

/// Why a share stopped by itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ShareStopped {
    /// The shared window was closed.
    SourceClosed,
    /// The desktop's screen cast ended (Wayland: its window closed, or sharing was stopped
    /// from the desktop).
    EndedByDesktop,
    /// Capture or encoding failed.
    Failed(String),
    /// The call session ended.
    SessionEnded,
}

#[derive(Default)]
struct Control {
    stop: AtomicBool,
    /// The encoder's target bitrate (it follows the shared size); 0 before the first frame.
    bitrate_bps: AtomicU64,
    keyframe_wanted: AtomicBool,
    frames_sent: AtomicU64,
    encode_micros: AtomicU64,
}

/// Figures of a running share.
#[derive(Debug, Clone, Copy, Default, serde::Serialize)]
pub struct ShareStats {
    pub frames_captured: u64,
    /// Frames the encoder had no time for (a newer one replaced them).
    pub frames_dropped: u64,
    pub frames_sent: u64,
    pub mean_capture_micros: u64,
    pub mean_encode_micros: u64,
}

/// A capture that has started and waits for its track.
pub struct OpenedCapture {
    capture: Capture,
    slot: Arc<FrameSlot>,
    ended: Arc<std::sync::Mutex<Option<CaptureEnded>>>,
}

impl OpenedCapture {
    /// The source's size when opened (frames may later differ: a window can be resized).
    pub fn size(&self) -> (u32, u32) {
        self.capture.source_size()
    }

    /// What the desktop's dialog chose, where it chose (Wayland's portal).
    pub fn label(&self) -> Option<&str> {
        self.capture.label()
    }

    /// The source id that shares the same thing again after the call reconnects.
    pub fn resume_id(&self) -> Option<&str> {
        self.capture.resume_id()
    }
}

/// Opens `source_id` (fails at once for a source that is gone or unknown).
pub fn open_capture(source_id: &str) -> Result<OpenedCapture, ScreenError> {
    let slot = FrameSlot::new();
    let ended = Arc::new(std::sync::Mutex::new(None));
    let ended_in = ended.clone();
    let capture = confab_screen::start_capture(
        source_id,
        SHARE_SETTINGS,
        slot.clone(),
        Box::new(move |why| {
            *ended_in.lock().unwrap_or_else(|p| p.into_inner()) = Some(why);
        }),
    )?;
    Ok(OpenedCapture {
        capture,
        slot,
        ended,
    })
}

/// A share feeding a published track, until dropped.
pub struct ScreenSender {
    capture: Capture,
    control: Arc<Control>,
}

impl ScreenSender {
    /// Starts encoding `opened`'s frames to `track`. `stopped` is called once if the share
    /// stops by itself.
    pub fn start(
        opened: OpenedCapture,
        track: LocalTrack,
        stopped: Box<dyn FnOnce(ShareStopped) + Send>,
    ) -> Result<Self, ScreenError> {
        let OpenedCapture {
            capture,
            slot,
            ended,
        } = opened;
        let control = Arc::new(Control::default());
        let thread_control = control.clone();
        std::thread::Builder::new()
            .name("confab-call-screen".into())
            .spawn(move || {
                let why = encode_loop(&slot, &track, &thread_control);
                if thread_control.stop.load(Ordering::Relaxed) {
                    return;
                }
                let why = why.unwrap_or_else(|| {
                    match ended.lock().unwrap_or_else(|p| p.into_inner()).take() {
                        Some(CaptureEnded::SourceClosed) => ShareStopped::SourceClosed,
                        Some(CaptureEnded::EndedByDesktop) => ShareStopped::EndedByDesktop,
                        Some(CaptureEnded::Failed(m)) => ShareStopped::Failed(m),
                        None => ShareStopped::Failed("the capture stopped".into()),
                    }
                });
                stopped(why);
            })
            .map_err(|e| ScreenError::Capture(e.to_string()))?;
        Ok(Self { capture, control })
    }

    /// What the share sends, in bit/s (0 until its first frame).
    pub fn bitrate_bps(&self) -> u64 {
        self.control.bitrate_bps.load(Ordering::Relaxed)
    }

    pub fn request_keyframe(&self) {
        self.control.keyframe_wanted.store(true, Ordering::Relaxed);
    }

    pub fn stats(&self) -> ShareStats {
        let capture = self.capture.stats();
        let sent = self.control.frames_sent.load(Ordering::Relaxed);
        ShareStats {
            frames_captured: capture.frames_captured,
            frames_dropped: capture.frames_dropped,
            frames_sent: sent,
            mean_capture_micros: capture.mean_grab_micros,
            mean_encode_micros: self
                .control
                .encode_micros
                .load(Ordering::Relaxed)
                .checked_div(sent)
                .unwrap_or(0),
        }
    }
}

impl Drop for ScreenSender {
    fn drop(&mut self) {
        // The capture stops with `capture`; the encoder thread sees the slot close.
        self.control.stop.store(true, Ordering::Relaxed);
    }
}

/// Encodes until the capture stops (`None`: its reason is the capture's) or the session
/// ends.
fn encode_loop(slot: &FrameSlot, track: &LocalTrack, control: &Control) -> Option<ShareStopped> {
    let mut encoder: Option<H264Encoder> = None;
    let mut first: Option<Instant> = None;
    loop {
        if control.stop.load(Ordering::Relaxed) {
            return Some(ShareStopped::SessionEnded);
        }
        let Some(frame) = slot.take_timeout(Duration::from_millis(500)) else {
            if slot.is_closed() {
                return None;
            }
            continue;
        };
        let mut force = control.keyframe_wanted.swap(false, Ordering::Relaxed);
        // A new size (a resized window) needs an encoder of that size, from a keyframe.
        if encoder
            .as_ref()
            .is_none_or(|e| e.size() != (frame.width & !1, frame.height & !1))
        {
            let settings = EncoderSettings {
                fps: SHARE_SETTINGS.fps,
                bitrate_bps: share_bitrate(frame.width, frame.height),
                keyframe_interval: KEYFRAME_INTERVAL_FRAMES,
            };
            match H264Encoder::for_screen(frame.width, frame.height, settings) {
                Ok(e) => {
                    encoder = Some(e);
                    control
                        .bitrate_bps
                        .store(u64::from(settings.bitrate_bps), Ordering::Relaxed);
                }
                Err(e) => return Some(ShareStopped::Failed(e.to_string())),
            }
            force = true;
        }
        let Some(encoder) = encoder.as_mut() else {
            continue;
        };
        let start = *first.get_or_insert(frame.captured_at);
        let started = Instant::now();
        match encoder.encode(
            &frame.bgrx,
            PixelOrder::Bgrx,
            frame.width,
            frame.height,
            force,
        ) {
            Ok(Some(encoded)) => {
                control
                    .encode_micros
                    .fetch_add(started.elapsed().as_micros() as u64, Ordering::Relaxed);
                control.frames_sent.fetch_add(1, Ordering::Relaxed);
                let sent = track.send_frame(EncodedFrame {
                    data: encoded.annex_b.into(),
                    timestamp: frame.captured_at.saturating_duration_since(start),
                    rid: None,
                    audio_level: None,
                });
                if let Err(SendFrameError::Ended) = sent {
                    return Some(ShareStopped::SessionEnded);
                }
            }
            Ok(None) => {}
            Err(e) => {
                tracing::warn!(target: "confab::call", error = %e, "encoding the shared screen failed");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_share_is_one_layer_of_at_most_1080p_with_a_bitrate_for_its_size() {
        let spec = share_track_spec(3840, 2160);
        assert_eq!((spec.width, spec.height), (1920, 1080));
        assert!(spec.layers.is_empty());
        assert!(matches!(spec.source, TrackSource::ScreenShare));
        assert_eq!(share_bitrate(1920, 1080), 2_488_320);
        assert_eq!(share_bitrate(320, 200), 300_000);
        assert_eq!(share_bitrate(7680, 4320), 2_500_000);
    }
}
