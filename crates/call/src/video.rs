//! The camera in a call: captured at 720p, scaled to three simulcast layers, each encoded to
//! H.264 by its own OpenH264 encoder, and sent on one published track.
//!
//! The camera thread hands frames to an encoder thread through a one-frame queue: when
//! encoding falls behind, the newest frame wins and the camera never stalls.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use confab_client::media::{EncodedFrame, Layer, LocalTrack, SendFrameError};
use confab_devices::fake::Frame;
use confab_devices::media::{start_camera, MediaError, PreviewFormat, Running};
use confab_media::encoder::{EncoderSettings, H264Encoder};
use tokio::sync::mpsc;

/// The size the camera is asked for; the layers are this, a half and a quarter.
pub const CAMERA_FORMAT: PreviewFormat = PreviewFormat {
    width: 1280,
    height: 720,
    fps: 30,
};

/// A keyframe at least this often, for a receiver whose keyframe request was lost.
const KEYFRAME_INTERVAL_FRAMES: u32 = 90;

/// The three layers LiveKit's clients publish for a 720p camera, lowest first.
pub fn layers() -> Vec<Layer> {
    let full = (CAMERA_FORMAT.width, CAMERA_FORMAT.height);
    [("q", 4, 150_000), ("h", 2, 500_000), ("f", 1, 1_200_000)]
        .into_iter()
        .map(|(rid, divisor, bitrate)| Layer {
            rid: rid.to_owned(),
            width: full.0 / divisor,
            height: full.1 / divisor,
            bitrate,
        })
        .collect()
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CameraError {
    #[error("the camera could not be started: {0}")]
    Open(#[from] MediaError),
    #[error("the video encoder could not be set up: {0}")]
    Encoder(String),
}

/// Why a running camera sender stopped by itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CameraStopped {
    /// The camera stopped delivering frames (unplugged, or taken by another app).
    CameraFailed,
    /// The call session ended.
    SessionEnded,
}

/// What the encoder thread is told from outside.
#[derive(Default)]
struct Control {
    stop: AtomicBool,
    /// Layers (by index) that need a keyframe next.
    keyframe_wanted: [AtomicBool; 3],
    /// The send budget from the bandwidth estimate (bit/s); 0 = no estimate yet.
    budget_bps: AtomicU64,
    frames_sent: AtomicU64,
    frames_skipped: AtomicU64,
}

/// Figures of a running camera sender.
#[derive(Debug, Clone, Copy, Default, serde::Serialize)]
pub struct CameraSendStats {
    pub frames_sent: u64,
    /// Frames the encoder had no time for (the camera's newer frame replaced them).
    pub frames_skipped: u64,
    pub budget_bps: u64,
}

/// The camera feeding a published track, until dropped.
pub struct CameraSender {
    control: Arc<Control>,
    camera: std::sync::Mutex<Option<Running>>,
    encoder_thread: Option<std::thread::JoinHandle<()>>,
}

impl CameraSender {
    /// Opens the camera `key` and starts sending to `track` (published with [`layers`]).
    /// `stopped` is called once if the sender stops by itself.
    pub fn start(
        key: &str,
        track: LocalTrack,
        stopped: Box<dyn FnOnce(CameraStopped) + Send>,
    ) -> Result<Self, CameraError> {
        let mut encoders = Vec::new();
        for layer in layers() {
            let settings = EncoderSettings {
                fps: CAMERA_FORMAT.fps,
                bitrate_bps: layer.bitrate,
                keyframe_interval: KEYFRAME_INTERVAL_FRAMES,
            };
            let encoder = H264Encoder::new(layer.width, layer.height, settings)
                .map_err(|e| CameraError::Encoder(e.to_string()))?;
            encoders.push((layer, encoder));
        }
        let (frames_tx, frames_rx) = mpsc::channel::<Frame>(1);
        let camera = start_camera(key, CAMERA_FORMAT, frames_tx)?;
        let control = Arc::new(Control::default());
        let thread_control = control.clone();
        let encoder_thread = std::thread::Builder::new()
            .name("confab-call-video".into())
            .spawn(move || {
                let why = encode_loop(frames_rx, encoders, track, &thread_control);
                if !thread_control.stop.load(Ordering::Relaxed) {
                    stopped(why);
                }
            })
            .map_err(|e| CameraError::Encoder(e.to_string()))?;
        Ok(Self {
            control,
            camera: std::sync::Mutex::new(Some(camera)),
            encoder_thread: Some(encoder_thread),
        })
    }

    /// A receiver asked for a keyframe of one layer (`None`: every layer).
    pub fn request_keyframe(&self, rid: Option<&str>) {
        for (i, layer) in layers().iter().enumerate() {
            if rid.is_none_or(|r| r == layer.rid) {
                self.control.keyframe_wanted[i].store(true, Ordering::Relaxed);
            }
        }
    }

    /// The bandwidth estimate for sending: layers that do not fit are paused, lowest kept.
    pub fn set_budget(&self, bps: u64) {
        self.control.budget_bps.store(bps, Ordering::Relaxed);
    }

    /// Stops the camera as an unplugged one would stop (for tests of the fault): the sender
    /// then reports [`CameraStopped::CameraFailed`].
    pub fn simulate_camera_failure(&self) {
        self.camera.lock().unwrap_or_else(|p| p.into_inner()).take();
    }

    pub fn stats(&self) -> CameraSendStats {
        CameraSendStats {
            frames_sent: self.control.frames_sent.load(Ordering::Relaxed),
            frames_skipped: self.control.frames_skipped.load(Ordering::Relaxed),
            budget_bps: self.control.budget_bps.load(Ordering::Relaxed),
        }
    }
}

impl Drop for CameraSender {
    fn drop(&mut self) {
        self.control.stop.store(true, Ordering::Relaxed);
        // The camera stops with `camera`; the encoder thread then sees its queue close.
        if let Some(thread) = self.encoder_thread.take() {
            drop(thread); // detached: it ends within one frame
        }
    }
}

/// How many layers (lowest first) fit a send budget. Audio and headroom take 15 %. The
/// lowest layer is always sent: a frozen picture is worse than a soft one.
pub fn layers_within(budget_bps: u64, layers: &[Layer]) -> usize {
    if budget_bps == 0 {
        return layers.len();
    }
    let usable = budget_bps * 85 / 100;
    let mut total = 0u64;
    let mut fitting = 0;
    for layer in layers {
        total += u64::from(layer.bitrate);
        if total > usable {
            break;
        }
        fitting += 1;
    }
    fitting.max(1)
}

fn encode_loop(
    mut frames: mpsc::Receiver<Frame>,
    mut encoders: Vec<(Layer, H264Encoder)>,
    track: LocalTrack,
    control: &Control,
) -> CameraStopped {
    let layer_list: Vec<Layer> = encoders.iter().map(|(l, _)| l.clone()).collect();
    let mut first_capture_ms: Option<u64> = None;
    let mut scaled: Vec<Vec<u8>> = vec![Vec::new(); encoders.len()];
    let mut was_sending = vec![true; encoders.len()];
    loop {
        let Some(mut frame) = frames.blocking_recv() else {
            return CameraStopped::CameraFailed;
        };
        if control.stop.load(Ordering::Relaxed) {
            return CameraStopped::SessionEnded;
        }
        // Take the newest frame if more than one waits.
        while let Ok(newer) = frames.try_recv() {
            frame = newer;
            control.frames_skipped.fetch_add(1, Ordering::Relaxed);
        }
        let start = *first_capture_ms.get_or_insert(frame.captured_at_ms);
        let timestamp = Duration::from_millis(frame.captured_at_ms.saturating_sub(start));
        let sending = layers_within(control.budget_bps.load(Ordering::Relaxed), &layer_list);
        // Scale from the largest down: each layer is half the one above. An empty buffer
        // means the layer is the camera's own size.
        let n = encoders.len();
        for index in (0..n).rev() {
            let (w, h) = (encoders[index].0.width, encoders[index].0.height);
            if (frame.width, frame.height) == (w, h) {
                scaled[index].clear();
                continue;
            }
            let (lower, higher) = scaled.split_at_mut(index + 1);
            let out = &mut lower[index];
            match higher.first().filter(|b| !b.is_empty()) {
                Some(above) => {
                    let (aw, ah) = (encoders[index + 1].0.width, encoders[index + 1].0.height);
                    scale_rgba(above, aw, ah, out, w, h);
                }
                None => scale_rgba(&frame.rgba, frame.width, frame.height, out, w, h),
            }
        }
        for (index, (layer, encoder)) in encoders.iter_mut().enumerate() {
            if index >= sending {
                was_sending[index] = false;
                continue;
            }
            // A layer that resumes starts with a keyframe so receivers can decode it.
            let resume = !was_sending[index];
            was_sending[index] = true;
            let force = control.keyframe_wanted[index].swap(false, Ordering::Relaxed) || resume;
            let pixels: &[u8] = if scaled[index].is_empty() {
                &frame.rgba
            } else {
                &scaled[index]
            };
            match encoder.encode_rgba(pixels, layer.width, layer.height, force) {
                Ok(Some(encoded)) => {
                    let sent = track.send_frame(EncodedFrame {
                        data: encoded.annex_b.into(),
                        timestamp,
                        rid: Some(layer.rid.clone()),
                        audio_level: None,
                    });
                    // A full queue drops the frame: a receiver that needs it asks for a
                    // keyframe.
                    if let Err(SendFrameError::Ended) = sent {
                        return CameraStopped::SessionEnded;
                    }
                }
                Ok(None) => {}
                Err(e) => {
                    tracing::warn!(target: "confab::call", layer = %layer.rid, error = %e, "encoding failed");
                }
            }
        }
        control.frames_sent.fetch_add(1, Ordering::Relaxed);
    }
}

/// Scales RGBA by area averaging (each output pixel is the mean of the source pixels it
/// covers). Exact halves, the common case, average 2x2 blocks.
pub fn scale_rgba(src: &[u8], sw: u32, sh: u32, out: &mut Vec<u8>, dw: u32, dh: u32) {
    let (sw, sh, dw, dh) = (sw as usize, sh as usize, dw as usize, dh as usize);
    out.clear();
    out.resize(dw * dh * 4, 0);
    if sw == 0 || sh == 0 || dw == 0 || dh == 0 || src.len() < sw * sh * 4 {
        return;
    }
    if sw == dw * 2 && sh == dh * 2 {
        let stride = sw * 4;
        for y in 0..dh {
            let top = &src[2 * y * stride..(2 * y + 1) * stride];
            let bottom = &src[(2 * y + 1) * stride..(2 * y + 2) * stride];
            let row = &mut out[y * dw * 4..(y + 1) * dw * 4];
            for x in 0..dw {
                for c in 0..4 {
                    let sum = u16::from(top[8 * x + c])
                        + u16::from(top[8 * x + 4 + c])
                        + u16::from(bottom[8 * x + c])
                        + u16::from(bottom[8 * x + 4 + c]);
                    row[4 * x + c] = ((sum + 2) / 4) as u8;
                }
            }
        }
        return;
    }
    // Any other ratio: nearest source pixel (only odd camera sizes get here).
    for y in 0..dh {
        let sy = y * sh / dh;
        for x in 0..dw {
            let sx = x * sw / dw;
            let from = (sy * sw + sx) * 4;
            out[(y * dw + x) * 4..(y * dw + x) * 4 + 4].copy_from_slice(&src[from..from + 4]);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use confab_devices::fake::{read_timestamp_code, TestPattern};

    #[test]
    fn halving_keeps_the_pattern_and_its_time_code() {
        let mut pattern = TestPattern::new(1280, 720);
        let frame = pattern.next_frame(1_764_000_123_456);
        let mut half = Vec::new();
        scale_rgba(&frame.rgba, 1280, 720, &mut half, 640, 360);
        let mut quarter = Vec::new();
        scale_rgba(&half, 640, 360, &mut quarter, 320, 180);
        assert_eq!(
            read_timestamp_code(&half, 640, 360),
            Some(1_764_000_123_456)
        );
        assert_eq!(
            read_timestamp_code(&quarter, 320, 180),
            Some(1_764_000_123_456)
        );
        // The first bar is white, the last blue, at every size.
        assert_eq!(&quarter[0..3], &[235, 235, 235]);
        let last = (320 - 1) * 4;
        assert_eq!(&quarter[last..last + 3], &[16, 16, 235]);
    }

    #[test]
    fn layers_follow_the_send_budget_and_keep_the_lowest() {
        let all = layers();
        assert_eq!(
            layers_within(0, &all),
            3,
            "no estimate yet: send everything"
        );
        assert_eq!(layers_within(10_000_000, &all), 3);
        assert_eq!(layers_within(1_000_000, &all), 2);
        assert_eq!(layers_within(2_200_000, &all), 3);
        assert_eq!(layers_within(300_000, &all), 1);
        assert_eq!(layers_within(50_000, &all), 1);
    }

    #[test]
    fn each_layer_s_keyframe_declares_its_size() {
        // The SPS of each layer's encoder says its size (360 rows are 23 macroblocks less 8
        // cropped rows): a receiver reading it shows the size in the stats panel.
        for layer in layers() {
            let (w, h) = (layer.width, layer.height);
            let mut encoder = H264Encoder::new(w, h, EncoderSettings::default()).unwrap();
            let frame = TestPattern::new(w, h).next_frame(1_000);
            let out = encoder
                .encode_rgba(&frame.rgba, w, h, true)
                .unwrap()
                .unwrap();
            assert!(out.keyframe);
            let size = confab_client::media::frame_size::h264_size(&out.annex_b);
            assert_eq!(size, Some((w, h)), "{w}x{h}");
        }
    }

    #[test]
    fn the_layers_are_720p_360p_and_180p() {
        let sizes: Vec<_> = layers()
            .iter()
            .map(|l| (l.rid.clone(), l.width, l.height))
            .collect();
        assert_eq!(
            sizes,
            vec![
                ("q".to_owned(), 320, 180),
                ("h".to_owned(), 640, 360),
                ("f".to_owned(), 1280, 720)
            ]
        );
    }
}
