//! The playout mix: one [`JitterBuffer`] per remote participant, summed 10 ms at a time with a
//! soft clip. The speaker's thread drives it; tests drive it with their own clock.

use std::collections::HashMap;
use std::time::Instant;

use confab_audio::FRAME_SAMPLES;

use super::jitter::{JitterBuffer, RemoteAudioStats};

/// Where the soft clip starts bending: below it the mix is a plain sum.
const CLIP_KNEE: f32 = 0.75;

/// Keeps a sum of voices within ±1 without the harsh edge of a hard clip: linear up to the
/// knee, then a tanh curve that approaches 1.
pub fn soft_clip(x: f32) -> f32 {
    if !x.is_finite() {
        return 0.0;
    }
    let magnitude = x.abs();
    if magnitude <= CLIP_KNEE {
        return x;
    }
    let room = 1.0 - CLIP_KNEE;
    (CLIP_KNEE + room * ((magnitude - CLIP_KNEE) / room).tanh()).copysign(x)
}

/// Remote participants' audio, mixed.
#[derive(Default)]
pub struct Mixer {
    streams: HashMap<String, JitterBuffer>,
    scratch: Vec<f32>,
    frames: u64,
}

impl Mixer {
    pub fn new() -> Self {
        Self {
            streams: HashMap::new(),
            scratch: vec![0.0; FRAME_SAMPLES],
            frames: 0,
        }
    }

    /// A received Opus packet of `identity` (a new identity gets its own buffer).
    pub fn push(&mut self, identity: &str, rtp_time: u64, data: &[u8], received_at: Instant) {
        match self.streams.get_mut(identity) {
            Some(stream) => stream.push(rtp_time, data, received_at),
            None => {
                let mut stream = JitterBuffer::new();
                stream.push(rtp_time, data, received_at);
                self.streams.insert(identity.to_owned(), stream);
            }
        }
    }

    pub fn remove(&mut self, identity: &str) {
        self.streams.remove(identity);
    }

    /// Mixes the next 10 ms into `out` ([`FRAME_SAMPLES`] long) at `now`. Returns how many
    /// participants were audible in it.
    pub fn pull(&mut self, now: Instant, out: &mut [f32]) -> usize {
        out.fill(0.0);
        self.scratch.resize(out.len(), 0.0);
        let mut playing = 0;
        for stream in self.streams.values_mut() {
            if stream.pull(now, &mut self.scratch) {
                playing += 1;
                for (o, s) in out.iter_mut().zip(&self.scratch) {
                    *o += s;
                }
            }
        }
        for o in out.iter_mut() {
            *o = soft_clip(*o);
        }
        self.frames += 1;
        playing
    }

    /// 10 ms frames mixed so far.
    pub fn frames(&self) -> u64 {
        self.frames
    }

    /// Each participant's figures, sorted by identity.
    pub fn stats(&self) -> Vec<RemoteAudioStats> {
        let mut all: Vec<RemoteAudioStats> = self
            .streams
            .iter()
            .map(|(identity, stream)| RemoteAudioStats {
                identity: identity.clone(),
                ..stream.stats()
            })
            .collect();
        all.sort_by(|a, b| a.identity.cmp(&b.identity));
        all
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_soft_clip_is_linear_below_the_knee_and_bounded_above() {
        assert_eq!(soft_clip(0.5), 0.5);
        assert_eq!(soft_clip(-0.7), -0.7);
        for x in [0.8f32, 1.0, 2.0, 10.0, 1e9] {
            let y = soft_clip(x);
            assert!(y > CLIP_KNEE && y <= 1.0, "{x} -> {y}");
            assert_eq!(soft_clip(-x), -y);
        }
        assert!(soft_clip(1.0) < soft_clip(1.5));
        assert_eq!(soft_clip(f32::NAN), 0.0);
    }
}
