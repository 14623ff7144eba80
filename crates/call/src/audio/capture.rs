//! The microphone's way out: 10 ms frames through the audio processor, the level and voice
//! activity measured, then 20 ms Opus packets handed to the sender unless muted.

use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use confab_audio::{AudioSettings, CallAudioProcessor, FRAME_SAMPLES, SAMPLE_RATE};
use opus_rs::{Application, OpusEncoder};

use super::{AudioError, OpusPacket};

/// One Opus packet: 20 ms, two processor frames.
pub const PACKET_SAMPLES: usize = FRAME_SAMPLES * 2;
/// Speech at 32 kb/s is clear and leaves room for in-band FEC.
const BITRATE_BPS: i32 = 32_000;
/// The loss the encoder plans its FEC for.
const EXPECTED_LOSS_PERCENT: i32 = 5;
/// The level meter's span: 10 frames, 100 ms.
const LEVEL_FRAMES: usize = 10;
/// Above this (dBFS over 100 ms) the user is speaking.
pub const SPEAKING_THRESHOLD_DB: f32 = -40.0;
/// Speaking stays true this many 10 ms frames after the level dropped: pauses between words.
const SPEAKING_HOLD_FRAMES: u32 = 30;
/// What silence reads as, rather than minus infinity.
pub const LEVEL_FLOOR_DB: f32 = -100.0;

pub(crate) fn db_of_energy(energy: f64) -> f32 {
    if energy <= 0.0 {
        LEVEL_FLOOR_DB
    } else {
        ((10.0 * energy.log10()) as f32).max(LEVEL_FLOOR_DB)
    }
}

/// Settings shared by the capture and playout threads, each of which applies a change to its
/// own clone of the processor at its next frame.
#[derive(Debug)]
pub(crate) struct SettingsCell {
    value: Mutex<AudioSettings>,
    generation: AtomicU64,
}

impl SettingsCell {
    pub(crate) fn new(settings: AudioSettings) -> Self {
        Self {
            value: Mutex::new(settings),
            generation: AtomicU64::new(0),
        }
    }

    pub(crate) fn set(&self, settings: AudioSettings) {
        *self.value.lock().unwrap_or_else(|p| p.into_inner()) = settings;
        self.generation.fetch_add(1, Ordering::Release);
    }

    /// The settings if they changed since `seen` (which is updated).
    pub(crate) fn changed_since(&self, seen: &mut u64) -> Option<AudioSettings> {
        let now = self.generation.load(Ordering::Acquire);
        if now == *seen {
            return None;
        }
        *seen = now;
        Some(*self.value.lock().unwrap_or_else(|p| p.into_inner()))
    }
}

/// What the engine's handle reads and sets on the capture path without its lock.
#[derive(Debug)]
pub struct CaptureControl {
    muted: AtomicBool,
    level_db_bits: AtomicU32,
    speaking: AtomicBool,
    packets_sent: AtomicU64,
    frames: AtomicU64,
}

impl Default for CaptureControl {
    fn default() -> Self {
        Self {
            muted: AtomicBool::new(false),
            level_db_bits: AtomicU32::new(LEVEL_FLOOR_DB.to_bits()),
            speaking: AtomicBool::new(false),
            packets_sent: AtomicU64::new(0),
            frames: AtomicU64::new(0),
        }
    }
}

impl CaptureControl {
    pub fn set_muted(&self, muted: bool) {
        self.muted.store(muted, Ordering::Relaxed);
    }

    pub fn muted(&self) -> bool {
        self.muted.load(Ordering::Relaxed)
    }

    /// dBFS (RMS) of the last 100 ms after processing, muted or not.
    pub fn level_db(&self) -> f32 {
        f32::from_bits(self.level_db_bits.load(Ordering::Relaxed))
    }

    pub fn speaking(&self) -> bool {
        self.speaking.load(Ordering::Relaxed)
    }

    pub fn packets_sent(&self) -> u64 {
        self.packets_sent.load(Ordering::Relaxed)
    }

    /// 10 ms frames captured (and processed) so far.
    pub fn frames(&self) -> u64 {
        self.frames.load(Ordering::Relaxed)
    }
}

/// Microphone samples (48 kHz mono, any chunk size) in, Opus packets out.
pub struct CapturePipeline {
    processor: CallAudioProcessor,
    settings: Arc<SettingsCell>,
    settings_seen: u64,
    encoder: OpusEncoder,
    control: Arc<CaptureControl>,
    send: Box<dyn FnMut(OpusPacket) + Send>,
    frame: Vec<f32>,
    packet_pcm: Vec<f32>,
    packet_first_frame: u64,
    frames: u64,
    energies: [f64; LEVEL_FRAMES],
    hold: u32,
    out: Vec<u8>,
    was_muted: bool,
    encode_errors: u64,
}

fn new_encoder() -> Result<OpusEncoder, AudioError> {
    let mut encoder = OpusEncoder::new(SAMPLE_RATE as i32, 1, Application::Voip)
        .map_err(|e| AudioError::Codec(e.to_owned()))?;
    encoder.bitrate_bps = BITRATE_BPS;
    encoder.use_inband_fec = true;
    encoder.packet_loss_perc = EXPECTED_LOSS_PERCENT;
    Ok(encoder)
}

impl CapturePipeline {
    /// A pipeline with its own processor. `send` gets each packet, on the caller's thread.
    pub fn new(
        settings: AudioSettings,
        send: Box<dyn FnMut(OpusPacket) + Send>,
    ) -> Result<Self, AudioError> {
        let processor = CallAudioProcessor::new(settings)?;
        Self::with_processor(processor, Arc::new(SettingsCell::new(settings)), send)
    }

    pub(crate) fn with_processor(
        processor: CallAudioProcessor,
        settings: Arc<SettingsCell>,
        send: Box<dyn FnMut(OpusPacket) + Send>,
    ) -> Result<Self, AudioError> {
        Ok(Self {
            processor,
            settings,
            settings_seen: 0,
            encoder: new_encoder()?,
            control: Arc::default(),
            send,
            frame: Vec::with_capacity(FRAME_SAMPLES),
            packet_pcm: Vec::with_capacity(PACKET_SAMPLES),
            packet_first_frame: 0,
            frames: 0,
            energies: [0.0; LEVEL_FRAMES],
            hold: 0,
            out: vec![0; 1500],
            was_muted: false,
            encode_errors: 0,
        })
    }

    pub fn control(&self) -> Arc<CaptureControl> {
        self.control.clone()
    }

    /// Packets the encoder refused (none expected; counted rather than fatal).
    pub fn encode_errors(&self) -> u64 {
        self.encode_errors
    }

    /// Takes microphone samples, 48 kHz mono.
    pub fn push(&mut self, samples: &[f32]) {
        let mut rest = samples;
        while !rest.is_empty() {
            let take = (FRAME_SAMPLES - self.frame.len()).min(rest.len());
            self.frame.extend_from_slice(&rest[..take]);
            rest = &rest[take..];
            if self.frame.len() == FRAME_SAMPLES {
                self.process_frame();
                self.frame.clear();
            }
        }
    }

    fn process_frame(&mut self) {
        if let Some(settings) = self.settings.changed_since(&mut self.settings_seen) {
            self.processor.set_settings(settings);
        }
        for s in self.frame.iter_mut() {
            if !s.is_finite() {
                *s = 0.0;
            }
        }
        if let Err(e) = self.processor.process_capture(&mut self.frame) {
            tracing::debug!(target: "call::audio", error = %e, "capture frame not processed");
        }
        self.measure();
        let frame_index = self.frames;
        self.frames += 1;
        self.control.frames.store(self.frames, Ordering::Relaxed);

        let muted = self.control.muted();
        if muted {
            self.packet_pcm.clear();
            self.was_muted = true;
            return;
        }
        if self.was_muted {
            // Start clean after a mute rather than from audio of before it.
            if let Ok(encoder) = new_encoder() {
                self.encoder = encoder;
            }
            self.was_muted = false;
        }
        if self.packet_pcm.is_empty() {
            self.packet_first_frame = frame_index;
        }
        self.packet_pcm.extend_from_slice(&self.frame);
        if self.packet_pcm.len() == PACKET_SAMPLES {
            self.encode_packet();
            self.packet_pcm.clear();
        }
    }

    fn measure(&mut self) {
        let energy = self
            .frame
            .iter()
            .map(|s| f64::from(*s).powi(2))
            .sum::<f64>()
            / FRAME_SAMPLES as f64;
        self.energies[(self.frames as usize) % LEVEL_FRAMES] = energy;
        let level = db_of_energy(self.energies.iter().sum::<f64>() / LEVEL_FRAMES as f64);
        self.control
            .level_db_bits
            .store(level.to_bits(), Ordering::Relaxed);
        if level > SPEAKING_THRESHOLD_DB {
            self.hold = SPEAKING_HOLD_FRAMES;
        } else {
            self.hold = self.hold.saturating_sub(1);
        }
        self.control
            .speaking
            .store(self.hold > 0, Ordering::Relaxed);
    }

    fn encode_packet(&mut self) {
        match self
            .encoder
            .encode(&self.packet_pcm, PACKET_SAMPLES, &mut self.out)
        {
            Ok(n) if n > 0 => {
                let energy = self
                    .packet_pcm
                    .iter()
                    .map(|s| f64::from(*s).powi(2))
                    .sum::<f64>()
                    / PACKET_SAMPLES as f64;
                // RFC 6464: -dBov, 0 loudest, -127 silence.
                let audio_level = db_of_energy(energy).clamp(-127.0, 0.0).round() as i8;
                let packet = OpusPacket {
                    data: self.out[..n].to_vec(),
                    timestamp: Duration::from_millis(self.packet_first_frame * 10),
                    audio_level,
                };
                self.control.packets_sent.fetch_add(1, Ordering::Relaxed);
                (self.send)(packet);
            }
            Ok(_) | Err(_) => self.encode_errors += 1,
        }
    }
}

/// The fake microphone: a sine tone in 10 ms chunks at real-time pace on its own thread.
pub struct FakeMicrophone {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl FakeMicrophone {
    /// Starts the tone (`frequency_hz`, about -15 dBFS); `sink` gets each 10 ms chunk.
    pub fn start(
        frequency_hz: f32,
        mut sink: impl FnMut(&[f32]) + Send + 'static,
    ) -> Result<Self, AudioError> {
        let stop = Arc::new(AtomicBool::new(false));
        let stopped = stop.clone();
        let thread = std::thread::Builder::new()
            .name("confab-call-fake-mic".into())
            .spawn(move || {
                let mut tone = confab_devices::fake::Tone::new(frequency_hz, SAMPLE_RATE, 0.25);
                let mut chunk = vec![0.0; FRAME_SAMPLES];
                let period = Duration::from_millis(10);
                let mut next = Instant::now();
                while !stopped.load(Ordering::Relaxed) {
                    tone.fill(&mut chunk, 1);
                    sink(&chunk);
                    next += period;
                    let now = Instant::now();
                    if next > now {
                        std::thread::sleep(next - now);
                    } else if now - next > Duration::from_millis(100) {
                        // Far behind (a suspended machine): do not burst to catch up.
                        next = now;
                    }
                }
            })
            .map_err(|e| AudioError::Thread(e.to_string()))?;
        Ok(Self {
            stop,
            thread: Some(thread),
        })
    }
}

impl Drop for FakeMicrophone {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}
