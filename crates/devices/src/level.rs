//! Microphone level for a meter: RMS and peak in dBFS over fixed windows.

use serde::Serialize;

/// The quietest level reported; silence reads as this rather than minus infinity.
pub const FLOOR_DBFS: f32 = -100.0;

#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct AudioLevel {
    pub rms_dbfs: f32,
    pub peak_dbfs: f32,
}

fn dbfs(linear: f32) -> f32 {
    if linear <= 0.0 {
        FLOOR_DBFS
    } else {
        (20.0 * linear.log10()).max(FLOOR_DBFS)
    }
}

/// Folds samples into one level per window (`sample_rate / updates_per_second` frames).
pub struct LevelMeter {
    window: usize,
    channels: usize,
    count: usize,
    sum_squares: f64,
    peak: f32,
}

impl LevelMeter {
    pub fn new(sample_rate: u32, channels: u16, updates_per_second: u32) -> Self {
        Self {
            window: (sample_rate / updates_per_second.max(1)).max(1) as usize,
            channels: channels.max(1) as usize,
            count: 0,
            sum_squares: 0.0,
            peak: 0.0,
        }
    }

    /// Adds interleaved samples; calls `emit` for each window completed.
    pub fn push(&mut self, samples: &[f32], mut emit: impl FnMut(AudioLevel)) {
        for frame in samples.chunks(self.channels) {
            for &s in frame {
                let s = if s.is_finite() { s } else { 0.0 };
                self.sum_squares += f64::from(s * s);
                self.peak = self.peak.max(s.abs());
            }
            self.count += 1;
            if self.count == self.window {
                let rms = (self.sum_squares / (self.window * self.channels) as f64).sqrt() as f32;
                emit(AudioLevel {
                    rms_dbfs: dbfs(rms),
                    peak_dbfs: dbfs(self.peak),
                });
                self.count = 0;
                self.sum_squares = 0.0;
                self.peak = 0.0;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fake::Tone;

    #[test]
    fn a_full_scale_sine_reads_minus_3_rms_and_0_peak() {
        let mut meter = LevelMeter::new(48_000, 1, 20);
        let mut tone = Tone::new(1000.0, 48_000, 1.0);
        let mut samples = vec![0.0; 48_000];
        tone.fill(&mut samples, 1);
        let mut levels = Vec::new();
        meter.push(&samples, |l| levels.push(l));
        assert_eq!(levels.len(), 20, "20 updates a second");
        let l = levels[5];
        assert!((l.rms_dbfs + 3.01).abs() < 0.1, "{l:?}");
        assert!(l.peak_dbfs.abs() < 0.1, "{l:?}");
    }

    #[test]
    fn silence_and_garbage_read_as_the_floor() {
        let mut meter = LevelMeter::new(100, 2, 10);
        let mut levels = Vec::new();
        meter.push(&[0.0, f32::NAN, f32::INFINITY, 0.0].repeat(10), |l| {
            levels.push(l)
        });
        assert_eq!(
            levels,
            vec![
                AudioLevel {
                    rms_dbfs: FLOOR_DBFS,
                    peak_dbfs: FLOOR_DBFS
                };
                2
            ]
        );
    }
}
