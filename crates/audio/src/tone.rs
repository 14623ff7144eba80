//! How much of a signal is one pitch (the Goertzel algorithm), and its level: for tests that
//! check who hears whom by the pitch of each participant's tone.

/// Power of `freq` Hz in `samples` (at `rate` Hz), normalised so a full-scale sine at that
/// pitch gives about 0.25 whatever the length.
pub fn tone_power(samples: &[f32], freq: f32, rate: u32) -> f32 {
    if samples.is_empty() {
        return 0.0;
    }
    let n = samples.len() as f32;
    let k = (n * freq / rate as f32).round();
    let omega = 2.0 * std::f32::consts::PI * k / n;
    let coeff = 2.0 * omega.cos();
    let (mut s1, mut s2) = (0.0f32, 0.0f32);
    for &x in samples {
        let s0 = x + coeff * s1 - s2;
        s2 = s1;
        s1 = s0;
    }
    let power = s1 * s1 + s2 * s2 - coeff * s1 * s2;
    power / (n * n)
}

/// Mean power (mean square) of `samples`.
pub fn energy(samples: &[f32]) -> f32 {
    if samples.is_empty() {
        return 0.0;
    }
    samples.iter().map(|x| x * x).sum::<f32>() / samples.len() as f32
}

/// `a` over `b` in decibels (power ratio); a floor keeps silence finite.
pub fn db(a: f32, b: f32) -> f32 {
    10.0 * ((a + 1e-12) / (b + 1e-12)).log10()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sine(freq: f32, amp: f32, n: usize) -> Vec<f32> {
        (0..n)
            .map(|i| amp * (2.0 * std::f32::consts::PI * freq * i as f32 / 48_000.0).sin())
            .collect()
    }

    #[test]
    fn a_pitch_is_found_and_another_is_not() {
        let a = sine(440.0, 0.5, 4800);
        assert!(tone_power(&a, 440.0, 48_000) > 0.05);
        assert!(tone_power(&a, 880.0, 48_000) < 0.001);
        assert!((energy(&a) - 0.125).abs() < 0.01);
        assert!((db(1.0, 0.01) - 20.0).abs() < 0.01);
    }
}
