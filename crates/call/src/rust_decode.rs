//! Decoding in Rust, for a webview without WebCodecs' `VideoDecoder` (or one that cannot
//! decode H.264): frames are decoded with OpenH264 on a thread of their own, scaled to the
//! tile's size, and sent to the page as RGBA (docs/call-media.md, message 2). VP8 has no
//! decoder here: such a tile shows its placeholder.

use std::collections::HashMap;
use std::sync::mpsc::{sync_channel, SyncSender, TrySendError};
use std::sync::{Arc, RwLock};

use openh264::decoder::Decoder;
use openh264::formats::YUVSource;

use crate::frames;
use crate::video::scale_rgba;
use crate::MediaSink;

/// The page's message for a decoded frame.
pub const DECODED_FRAME: u8 = 2;

/// Frames waiting for the decoder; beyond this the newest are dropped until a keyframe.
const QUEUE: usize = 8;

pub(crate) type SharedSink = Arc<RwLock<Arc<dyn MediaSink>>>;

struct Job {
    track_sid: String,
    keyframe: bool,
    lost_before: bool,
    data: Arc<[u8]>,
    /// The tile's size: the picture is scaled down to fit it.
    fit: (u32, u32),
}

/// What became of a frame handed to the decoder.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Pushed {
    Queued,
    /// Dropped, as the frames before it since the queue overflowed.
    Skipped,
    /// The queue was full: this frame and the ones after it are dropped until a keyframe.
    StartedWaitingForKeyframe,
    /// Not H.264: this decoder has nothing for it.
    OtherCodec,
}

/// The decoding thread, until dropped.
pub(crate) struct RustDecoder {
    jobs: SyncSender<Job>,
    /// Tracks whose frames were dropped: skipped until their next keyframe.
    broken: HashMap<String, bool>,
}

impl RustDecoder {
    pub(crate) fn start(sink: SharedSink) -> Option<Self> {
        let (jobs, queue) = sync_channel::<Job>(QUEUE);
        std::thread::Builder::new()
            .name("confab-call-decode".into())
            .spawn(move || {
                let mut tracks: HashMap<String, TrackDecoder> = HashMap::new();
                while let Ok(job) = queue.recv() {
                    let track = match tracks.entry(job.track_sid.clone()) {
                        std::collections::hash_map::Entry::Occupied(e) => e.into_mut(),
                        std::collections::hash_map::Entry::Vacant(e) => match TrackDecoder::new() {
                            Some(d) => e.insert(d),
                            None => continue,
                        },
                    };
                    if let Some(message) = track.decode(&job) {
                        let sink = sink.read().unwrap_or_else(|p| p.into_inner()).clone();
                        sink.video_frame(message);
                    }
                }
            })
            .ok()?;
        Some(Self {
            jobs,
            broken: HashMap::new(),
        })
    }

    /// Queues an H.264 frame.
    pub(crate) fn push(
        &mut self,
        codec: u8,
        track_sid: &str,
        keyframe: bool,
        lost_before: bool,
        data: Arc<[u8]>,
        fit: (u32, u32),
    ) -> Pushed {
        if codec != frames::CODEC_H264 {
            return Pushed::OtherCodec;
        }
        let broken = self.broken.entry(track_sid.to_owned()).or_default();
        if *broken && !keyframe {
            return Pushed::Skipped;
        }
        let job = Job {
            track_sid: track_sid.to_owned(),
            keyframe,
            lost_before: lost_before || *broken,
            data,
            fit,
        };
        *broken = matches!(self.jobs.try_send(job), Err(TrySendError::Full(_)));
        if *broken {
            Pushed::StartedWaitingForKeyframe
        } else {
            Pushed::Queued
        }
    }
}

struct TrackDecoder {
    decoder: Decoder,
    rgba: Vec<u8>,
    scaled: Vec<u8>,
    waiting_for_keyframe: bool,
}

impl TrackDecoder {
    fn new() -> Option<Self> {
        Some(Self {
            decoder: Decoder::new().ok()?,
            rgba: Vec::new(),
            scaled: Vec::new(),
            waiting_for_keyframe: true,
        })
    }

    fn decode(&mut self, job: &Job) -> Option<Vec<u8>> {
        if job.lost_before && !job.keyframe {
            self.waiting_for_keyframe = true;
        }
        if self.waiting_for_keyframe && !job.keyframe {
            return None;
        }
        self.waiting_for_keyframe = false;
        let picture = match self.decoder.decode(&job.data) {
            Ok(Some(picture)) => picture,
            Ok(None) => return None,
            Err(e) => {
                tracing::debug!(target: "confab::call", error = %e, "an H.264 frame did not decode");
                self.waiting_for_keyframe = true;
                return None;
            }
        };
        let (w, h) = picture.dimensions();
        self.rgba.resize(w * h * 4, 0);
        picture.write_rgba8(&mut self.rgba);
        let (w, h) = (w as u32, h as u32);
        let (out_w, out_h) = fit_within(w, h, job.fit);
        let pixels = if (out_w, out_h) == (w, h) {
            &self.rgba
        } else {
            scale_rgba(&self.rgba, w, h, &mut self.scaled, out_w, out_h);
            &self.scaled
        };
        Some(decoded_message(
            &job.track_sid,
            job.keyframe,
            out_w,
            out_h,
            pixels,
        ))
    }
}

/// The largest size with the picture's aspect that fits the tile (never larger than the
/// picture: the page scales up for free).
pub fn fit_within(w: u32, h: u32, tile: (u32, u32)) -> (u32, u32) {
    let (tw, th) = tile;
    if tw == 0 || th == 0 || (tw >= w && th >= h) || w == 0 || h == 0 {
        return (w, h);
    }
    let scale = (f64::from(tw) / f64::from(w)).min(f64::from(th) / f64::from(h));
    let out_w = ((f64::from(w) * scale) as u32).max(2);
    let out_h = ((f64::from(h) * scale) as u32).max(2);
    (out_w, out_h)
}

/// Message 2: `[2, 0, flags, n, width u32 LE, height u32 LE, 0 u32, sid (n bytes), RGBA]`.
pub fn decoded_message(track_sid: &str, keyframe: bool, w: u32, h: u32, rgba: &[u8]) -> Vec<u8> {
    let mut fields = [0; 12];
    fields[..4].copy_from_slice(&w.to_le_bytes());
    fields[4..8].copy_from_slice(&h.to_le_bytes());
    frames::message(
        [DECODED_FRAME, 0, u8::from(keyframe)],
        fields,
        track_sid,
        rgba,
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use confab_devices::fake::{read_timestamp_code, TestPattern};
    use confab_media::encoder::{EncoderSettings, H264Encoder};

    #[test]
    fn tiles_get_the_picture_scaled_to_fit_with_its_aspect() {
        assert_eq!(fit_within(1280, 720, (640, 360)), (640, 360));
        assert_eq!(fit_within(1280, 720, (400, 400)), (400, 225));
        assert_eq!(fit_within(320, 180, (1280, 720)), (320, 180));
        assert_eq!(fit_within(1280, 720, (0, 0)), (1280, 720));
    }

    #[test]
    fn an_h264_stream_decodes_to_the_pattern_with_its_time_code() {
        let mut encoder = H264Encoder::new(640, 360, EncoderSettings::default()).unwrap();
        let mut pattern = TestPattern::new(640, 360);
        let mut track = TrackDecoder::new().unwrap();
        let mut last = None;
        for i in 0..5u64 {
            let frame = pattern.next_frame(1_764_000_000_000 + i * 33);
            let out = encoder
                .encode_rgba(&frame.rgba, 640, 360, i == 0)
                .unwrap()
                .unwrap();
            let job = Job {
                track_sid: "TR_x".into(),
                keyframe: out.keyframe,
                lost_before: false,
                data: out.annex_b.into(),
                fit: (640, 360),
            };
            if let Some(message) = track.decode(&job) {
                last = Some((message, frame.captured_at_ms));
            }
        }
        let (message, drawn_at) = last.expect("decoded frames");
        assert_eq!(message[0], DECODED_FRAME);
        let w = u32::from_le_bytes(message[4..8].try_into().unwrap()) as usize;
        let h = u32::from_le_bytes(message[8..12].try_into().unwrap()) as usize;
        assert_eq!((w, h), (640, 360));
        let rgba = &message[16 + 4..];
        assert_eq!(rgba.len(), w * h * 4);
        assert_eq!(read_timestamp_code(rgba, w, h), Some(drawn_at));
        // The first bar is near white, the last near blue (lossy, so within a margin).
        let near = |px: &[u8], want: [u8; 3]| px.iter().zip(want).all(|(a, b)| a.abs_diff(b) < 40);
        let row = 20 * w * 4;
        assert!(near(&rgba[row + 40..row + 43], [235, 235, 235]));
        assert!(near(
            &rgba[row + (w - 10) * 4..row + (w - 10) * 4 + 3],
            [16, 16, 235]
        ));
    }

    #[test]
    fn deltas_before_a_keyframe_and_after_a_loss_are_skipped() {
        let mut encoder = H264Encoder::new(320, 180, EncoderSettings::default()).unwrap();
        let mut pattern = TestPattern::new(320, 180);
        let mut frames = Vec::new();
        for i in 0..3u64 {
            let f = pattern.next_frame(1_000 + i);
            frames.push(
                encoder
                    .encode_rgba(&f.rgba, 320, 180, i == 0)
                    .unwrap()
                    .unwrap(),
            );
        }
        let mut track = TrackDecoder::new().unwrap();
        let job = |i: usize, lost: bool| Job {
            track_sid: "T".into(),
            keyframe: frames[i].keyframe,
            lost_before: lost,
            data: frames[i].annex_b.clone().into(),
            fit: (0, 0),
        };
        assert!(track.decode(&job(1, false)).is_none(), "a delta first");
        assert!(track.decode(&job(0, false)).is_some());
        assert!(track.decode(&job(1, false)).is_some());
        assert!(
            track.decode(&job(2, true)).is_none(),
            "a delta after a loss"
        );
    }
}
