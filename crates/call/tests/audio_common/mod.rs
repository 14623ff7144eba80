//! Helpers shared by the audio tests: Opus tones and a repeatable random source.

#![allow(dead_code)]

use confab_call::audio::PACKET_SAMPLES;
use confab_devices::fake::Tone;

pub const RATE: u32 = 48_000;

/// A tone encoded as 20 ms Opus packets, as a sender would make them.
pub struct ToneSender {
    encoder: opus_rs::OpusEncoder,
    tone: Tone,
    pcm: Vec<f32>,
    out: Vec<u8>,
}

impl ToneSender {
    pub fn new(frequency_hz: f32, amplitude: f32) -> Self {
        let mut encoder =
            opus_rs::OpusEncoder::new(RATE as i32, 1, opus_rs::Application::Voip).unwrap();
        encoder.bitrate_bps = 32_000;
        Self {
            encoder,
            tone: Tone::new(frequency_hz, RATE, amplitude),
            pcm: vec![0.0; PACKET_SAMPLES],
            out: vec![0; 1500],
        }
    }

    /// The next 20 ms of tone (or of silence when `silent`), encoded.
    pub fn next_packet(&mut self, silent: bool) -> Vec<u8> {
        self.tone.fill(&mut self.pcm, 1);
        if silent {
            self.pcm.fill(0.0);
        }
        let n = self
            .encoder
            .encode(&self.pcm, PACKET_SAMPLES, &mut self.out)
            .unwrap();
        self.out[..n].to_vec()
    }
}

/// xorshift: the same "random" network on every run.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Self(seed.max(1))
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    /// Uniform in [0, 1).
    pub fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// Mean power of `freq` over 100 ms windows: a pitch's presence, undisturbed by the phase
/// jumps that concealment and delay trims leave (which cancel out over one long window).
pub fn windowed_tone_power(samples: &[f32], freq: f32) -> f32 {
    let windows: Vec<f32> = samples
        .chunks_exact(RATE as usize / 10)
        .map(|w| confab_audio::tone::tone_power(w, freq, RATE))
        .collect();
    windows.iter().sum::<f32>() / windows.len().max(1) as f32
}

/// Percentile (0..=100) of `values`.
pub fn percentile(values: &[f64], p: f64) -> f64 {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    if sorted.is_empty() {
        return f64::NAN;
    }
    let index = ((sorted.len() as f64 * p / 100.0).ceil() as usize).clamp(1, sorted.len()) - 1;
    sorted[index]
}
