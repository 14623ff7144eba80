//! Between the device's format and the engine's (48 kHz mono): channel down- and up-mixing and a
//! linear resampler, for devices that cannot run at 48 kHz themselves.

/// Streaming linear interpolation from one rate to another. Good enough for speech between
/// 44.1 and 48 kHz; it adds one sample of delay.
#[derive(Debug, Clone)]
pub struct LinearResampler {
    /// Input samples per output sample.
    step: f64,
    /// Position of the next output sample, from `previous` (0) towards the next input (1).
    position: f64,
    previous: f32,
}

impl LinearResampler {
    pub fn new(from_rate: u32, to_rate: u32) -> Self {
        Self {
            step: f64::from(from_rate.max(1)) / f64::from(to_rate.max(1)),
            position: 0.0,
            previous: 0.0,
        }
    }

    /// Feeds input samples; emits the output samples they complete.
    pub fn process(&mut self, input: &[f32], mut emit: impl FnMut(f32)) {
        for &x in input {
            while self.position < 1.0 {
                let t = self.position as f32;
                emit(self.previous + (x - self.previous) * t);
                self.position += self.step;
            }
            self.position -= 1.0;
            self.previous = x;
        }
    }
}

/// Averages interleaved frames of `channels` into mono.
pub fn downmix(interleaved: &[f32], channels: usize, mut emit: impl FnMut(f32)) {
    let channels = channels.max(1);
    if channels == 1 {
        interleaved.iter().for_each(|s| emit(*s));
        return;
    }
    let scale = 1.0 / channels as f32;
    for frame in interleaved.chunks_exact(channels) {
        emit(frame.iter().sum::<f32>() * scale);
    }
}

pub fn i16_to_f32(s: i16) -> f32 {
    f32::from(s) / 32768.0
}

pub fn f32_to_i16(s: f32) -> i16 {
    (s.clamp(-1.0, 1.0) * 32767.0) as i16
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resampling_keeps_the_rate_ratio_and_the_pitch() {
        let input: Vec<f32> = (0..44_100)
            .map(|i| (2.0 * std::f32::consts::PI * 1000.0 * i as f32 / 44_100.0).sin())
            .collect();
        let mut out = Vec::new();
        let mut r = LinearResampler::new(44_100, 48_000);
        // In uneven chunks, as a device delivers them.
        for chunk in input.chunks(441 + 7) {
            r.process(chunk, |s| out.push(s));
        }
        assert!((out.len() as i64 - 48_000).abs() <= 2, "{}", out.len());
        let p = confab_audio::tone::tone_power(&out, 1000.0, 48_000);
        assert!(p > 0.2, "{p}");
        let mut back = Vec::new();
        LinearResampler::new(48_000, 44_100).process(&out, |s| back.push(s));
        assert!((back.len() as i64 - 44_100).abs() <= 2, "{}", back.len());
    }

    #[test]
    fn stereo_is_averaged_to_mono() {
        let mut out = Vec::new();
        downmix(&[1.0, 0.0, 0.5, 0.5, 0.2], 2, |s| out.push(s));
        assert_eq!(out, vec![0.5, 0.5]);
        assert_eq!(f32_to_i16(2.0), 32767);
        assert_eq!(i16_to_f32(-32768), -1.0);
    }
}
