//! What the probe publishes: the fake camera's test pattern (colour bars, a moving square and
//! the frame number) encoded as H.264 with OpenH264, and a tone encoded as Opus (or
//! Opus silence), each paced by its own thread at capture speed.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use confab_client::media::{
    CallSession, EncodedFrame, LocalTrack, SendFrameError, TrackSpec, VideoCodec,
};
use confab_devices::fake::{TestPattern, Tone};
use confab_media::{EncoderSettings, H264Encoder};

use crate::ProbeError;

/// One 20 ms CELT frame of silence (TOC 0xf8: CELT fullband 20 ms, mono, one frame), which
/// every Opus decoder accepts.
pub const OPUS_SILENCE: [u8; 3] = [0xf8, 0xff, 0xfe];

const OPUS_FRAME: Duration = Duration::from_millis(20);
const OPUS_RATE: usize = 48_000;
const OPUS_SAMPLES: usize = OPUS_RATE / 50;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AudioSignal {
    /// A sine at this pitch (Hz).
    Tone(u32),
    Silence,
}

#[derive(Debug, Clone, Copy)]
pub struct VideoSettings {
    pub width: u32,
    pub height: u32,
    pub fps: u32,
    pub bitrate_bps: u32,
    /// Frames between keyframes.
    pub keyframe_interval: u32,
}

/// Counters the publishing threads keep.
#[derive(Debug, Default)]
pub struct PublishStats {
    pub video_frames: AtomicU64,
    pub video_keyframes: AtomicU64,
    pub audio_frames: AtomicU64,
    /// Frames the session's queue had no room for.
    pub dropped: AtomicU64,
    /// The SFU asked for a keyframe: the next video frame is one.
    pub keyframe_wanted: AtomicBool,
}

/// The running publishers; [`Publishing::stop`] ends them.
pub struct Publishing {
    stop: Arc<AtomicBool>,
    threads: Vec<JoinHandle<()>>,
    pub stats: Arc<PublishStats>,
    pub tracks: Vec<LocalTrack>,
}

impl Publishing {
    /// Publishes both tracks and starts feeding them.
    pub async fn start(
        session: &CallSession,
        video: VideoSettings,
        audio: AudioSignal,
    ) -> Result<Publishing, ProbeError> {
        // The encoder is made first, so a bad size fails before anything is announced.
        let encoder = H264Encoder::new(
            video.width,
            video.height,
            EncoderSettings {
                fps: video.fps,
                bitrate_bps: video.bitrate_bps,
                keyframe_interval: video.keyframe_interval,
            },
        )
        .map_err(|e| ProbeError::Setup(e.to_string()))?;
        let opus = match audio {
            AudioSignal::Tone(hz) => Some(ToneEncoder::new(hz)?),
            AudioSignal::Silence => None,
        };
        let (width, height) = encoder.size();
        let video_track = session
            .publish(TrackSpec::camera(VideoCodec::H264, width, height))
            .await
            .map_err(|e| ProbeError::Publish(format!("the camera track: {e}")))?;
        let audio_track = session
            .publish(TrackSpec::microphone())
            .await
            .map_err(|e| ProbeError::Publish(format!("the microphone track: {e}")))?;
        let stop = Arc::new(AtomicBool::new(false));
        let stats = Arc::new(PublishStats::default());
        let mut threads = Vec::new();
        {
            let (track, stop, stats) = (video_track.clone(), stop.clone(), stats.clone());
            let fps = video.fps.max(1);
            threads.push(spawn("confab-probe-video", move || {
                video_loop(encoder, fps, track, &stop, &stats)
            })?);
        }
        {
            let (track, stop, stats) = (audio_track.clone(), stop.clone(), stats.clone());
            threads.push(spawn("confab-probe-audio", move || {
                audio_loop(opus, track, &stop, &stats)
            })?);
        }
        Ok(Publishing {
            stop,
            threads,
            stats,
            tracks: vec![video_track, audio_track],
        })
    }

    /// Stops both threads and waits for them (each notices within one frame).
    pub fn stop(self) {
        self.stop.store(true, Ordering::Relaxed);
        for thread in self.threads {
            let _ = thread.join();
        }
    }
}

fn spawn(name: &str, f: impl FnOnce() + Send + 'static) -> Result<JoinHandle<()>, ProbeError> {
    std::thread::Builder::new()
        .name(name.to_owned())
        .spawn(f)
        .map_err(|e| ProbeError::Setup(format!("could not start a thread: {e}")))
}

/// Sleeps until `due`, in steps short enough to notice `stop`; false once stopped.
fn wait_until(due: Instant, stop: &AtomicBool) -> bool {
    loop {
        if stop.load(Ordering::Relaxed) {
            return false;
        }
        let now = Instant::now();
        if now >= due {
            return true;
        }
        std::thread::sleep((due - now).min(Duration::from_millis(50)));
    }
}

/// Sends a frame; false once the session has ended.
fn send(track: &LocalTrack, frame: EncodedFrame, stats: &PublishStats) -> bool {
    match track.send_frame(frame) {
        Ok(()) => true,
        Err(SendFrameError::Full) => {
            stats.dropped.fetch_add(1, Ordering::Relaxed);
            true
        }
        Err(SendFrameError::Ended) => false,
    }
}

fn video_loop(
    mut encoder: H264Encoder,
    fps: u32,
    track: LocalTrack,
    stop: &AtomicBool,
    stats: &PublishStats,
) {
    let (width, height) = encoder.size();
    let mut pattern = TestPattern::new(width, height);
    let interval = Duration::from_secs(1) / fps;
    let start = Instant::now();
    let mut frame = pattern.next_frame(0);
    for n in 0u32.. {
        let offset = interval * n;
        if !wait_until(start + offset, stop) {
            return;
        }
        pattern.render_into(&mut frame, unix_millis());
        let force = stats.keyframe_wanted.swap(false, Ordering::Relaxed);
        match encoder.encode_rgba(&frame.rgba, width, height, force) {
            Ok(Some(out)) => {
                stats.video_frames.fetch_add(1, Ordering::Relaxed);
                if out.keyframe {
                    stats.video_keyframes.fetch_add(1, Ordering::Relaxed);
                }
                let encoded = EncodedFrame {
                    data: out.annex_b.into(),
                    timestamp: offset,
                    rid: None,
                    audio_level: None,
                };
                if !send(&track, encoded, stats) {
                    return;
                }
            }
            Ok(None) => {}
            Err(e) => eprintln!("a video frame failed to encode: {e}"),
        }
    }
}

fn audio_loop(
    mut tone: Option<ToneEncoder>,
    track: LocalTrack,
    stop: &AtomicBool,
    stats: &PublishStats,
) {
    let start = Instant::now();
    for n in 0u32.. {
        let offset = OPUS_FRAME * n;
        if !wait_until(start + offset, stop) {
            return;
        }
        let (data, level): (Arc<[u8]>, i8) = match tone.as_mut().map(ToneEncoder::next_packet) {
            Some(Ok(packet)) => (packet.into(), -20),
            Some(Err(e)) => {
                eprintln!("the tone failed to encode ({e}); sending silence");
                tone = None;
                (OPUS_SILENCE.as_slice().into(), -127)
            }
            None => (OPUS_SILENCE.as_slice().into(), -127),
        };
        stats.audio_frames.fetch_add(1, Ordering::Relaxed);
        let frame = EncodedFrame {
            data,
            timestamp: offset,
            rid: None,
            audio_level: Some(level),
        };
        if !send(&track, frame, stats) {
            return;
        }
    }
}

/// A tone at 48 kHz, mono, 20 ms Opus packets from the pure-Rust encoder.
pub struct ToneEncoder {
    encoder: opus_rs::OpusEncoder,
    tone: Tone,
    pcm: Vec<f32>,
    out: Vec<u8>,
}

impl ToneEncoder {
    pub fn new(hz: u32) -> Result<Self, ProbeError> {
        let mut encoder =
            opus_rs::OpusEncoder::new(OPUS_RATE as i32, 1, opus_rs::Application::Audio)
                .map_err(|e| ProbeError::Setup(format!("the Opus encoder: {e}")))?;
        encoder.bitrate_bps = 32_000;
        Ok(Self {
            encoder,
            tone: Tone::new(hz as f32, OPUS_RATE as u32, 0.3),
            pcm: vec![0.0; OPUS_SAMPLES],
            out: vec![0; 1500],
        })
    }

    pub fn next_packet(&mut self) -> Result<Vec<u8>, &'static str> {
        self.tone.fill(&mut self.pcm, 1);
        let n = self
            .encoder
            .encode(&self.pcm, OPUS_SAMPLES, &mut self.out)?;
        Ok(self.out[..n].to_vec())
    }
}

fn unix_millis() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The tone decodes (with the same crate's decoder) back to a 440 Hz signal of about the
    /// level it was made at: zero crossings over one second, and RMS.
    #[test]
    fn the_tone_encodes_to_opus_that_decodes_to_440_hz() {
        let mut tone = ToneEncoder::new(440).unwrap();
        let mut decoder = opus_rs::OpusDecoder::new(OPUS_RATE as i32, 1).unwrap();
        let mut decoded = Vec::new();
        let mut pcm = vec![0.0f32; OPUS_SAMPLES];
        for _ in 0..60 {
            let packet = tone.next_packet().unwrap();
            assert!(!packet.is_empty() && packet.len() < 400, "{}", packet.len());
            // The TOC's configuration says 20 ms (SILK, hybrid or CELT; RFC 6716 3.1).
            assert!(
                [1, 5, 9, 13, 15, 19, 23, 27, 31].contains(&(packet[0] >> 3)),
                "{:#x}",
                packet[0]
            );
            let n = decoder.decode(&packet, OPUS_SAMPLES, &mut pcm).unwrap();
            assert_eq!(n, OPUS_SAMPLES);
            decoded.extend_from_slice(&pcm[..n]);
        }
        // Skip the first 10 frames (the codec's warm-up), measure the next second.
        let second = &decoded[10 * OPUS_SAMPLES..60 * OPUS_SAMPLES];
        let crossings = second
            .windows(2)
            .filter(|w| (w[0] < 0.0) != (w[1] < 0.0))
            .count();
        assert!(
            (860..=900).contains(&crossings),
            "{crossings} zero crossings, want ~880"
        );
        let rms = (second.iter().map(|s| s * s).sum::<f32>() / second.len() as f32).sqrt();
        // A sine of amplitude 0.3 has an RMS of 0.212.
        assert!((0.15..0.28).contains(&rms), "rms {rms}");
    }

    #[test]
    fn the_silence_frame_is_a_20_ms_celt_frame() {
        // TOC config 31 (CELT fullband, 20 ms), mono, code 0 (one frame).
        assert_eq!(OPUS_SILENCE[0] >> 3, 31);
        assert_eq!(OPUS_SILENCE[0] & 0x07, 0);
        let mut decoder = opus_rs::OpusDecoder::new(OPUS_RATE as i32, 1).unwrap();
        let mut pcm = vec![1.0f32; OPUS_SAMPLES];
        let n = decoder
            .decode(&OPUS_SILENCE, OPUS_SAMPLES, &mut pcm)
            .unwrap();
        assert_eq!(n, OPUS_SAMPLES);
        assert!(pcm.iter().all(|s| s.abs() < 1e-3));
    }
}
