//! Echo cancellation as a call needs it: the far end's audio, played by the speaker and heard
//! again by the microphone 40 ms later, comes out at least 15 dB quieter, while a person
//! talking near the microphone (another pitch) is kept.

use confab_audio::tone::{db, energy, tone_power};
use confab_audio::{AudioSettings, CallAudioProcessor, FRAME_SAMPLES, SAMPLE_RATE};

const ECHO_DELAY_MS: usize = 40;
const NEAR_PITCH: f32 = 660.0;

/// White noise for the far end (a deterministic generator, so the test repeats exactly).
fn far_end(n: usize) -> Vec<f32> {
    let mut state: u32 = 0x1234_5678;
    (0..n)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 17;
            state ^= state << 5;
            (state as f32 / u32::MAX as f32 - 0.5) * 0.5
        })
        .collect()
}

fn near_talker(n: usize, start: usize) -> Vec<f32> {
    (0..n)
        .map(|i| {
            if i < start {
                0.0
            } else {
                0.3 * (2.0 * std::f32::consts::PI * NEAR_PITCH * i as f32 / SAMPLE_RATE as f32)
                    .sin()
            }
        })
        .collect()
}

/// Runs `seconds` of audio through a processor: the far end goes to the playout reference and,
/// delayed and at -6 dB, into the microphone with the near talker (who starts at `talk_from`).
/// Returns (echo alone, near talker alone, processed output), sample-aligned.
fn run(
    settings: AudioSettings,
    seconds: usize,
    talk_from: usize,
) -> (Vec<f32>, Vec<f32>, Vec<f32>) {
    let n = seconds * SAMPLE_RATE as usize;
    let far = far_end(n);
    let delay = ECHO_DELAY_MS * SAMPLE_RATE as usize / 1000;
    let echo: Vec<f32> = (0..n)
        .map(|i| {
            if i >= delay {
                far[i - delay] * 0.5
            } else {
                0.0
            }
        })
        .collect();
    let near = near_talker(n, talk_from);
    let mut processor = CallAudioProcessor::new(settings).expect("the processor starts");
    let mut out = Vec::with_capacity(n);
    for start in (0..n).step_by(FRAME_SAMPLES) {
        let end = start + FRAME_SAMPLES;
        processor.process_playout(&far[start..end]).unwrap();
        let mut mic: Vec<f32> = (start..end).map(|i| echo[i] + near[i]).collect();
        processor.process_capture(&mut mic).unwrap();
        out.extend_from_slice(&mic);
    }
    (echo, near, out)
}

#[test]
fn the_far_end_comes_back_at_least_15_db_quieter_and_the_near_talker_is_kept() {
    let rate = SAMPLE_RATE as usize;
    // 12 s of far-end noise alone (the canceller converges), then 4 s with the near talker too.
    let talk_from = 12 * rate;
    // The near "talker" is a steady tone, which noise suppression rightly treats as noise;
    // this test is about the echo canceller, so the other stages are off.
    let settings = AudioSettings {
        echo_delay_ms: Some(ECHO_DELAY_MS as u16),
        gain_control: false,
        noise_suppression: false,
        ..AudioSettings::default()
    };
    let (echo, near, out) = run(settings, 16, talk_from);

    // Echo only: seconds 8 to 12.
    let window = 8 * rate..talk_from;
    let reduction = db(energy(&echo[window.clone()]), energy(&out[window.clone()]));
    println!("echo reduced by {reduction:.1} dB over the 4 s before the near talker starts");
    assert!(reduction >= 15.0, "echo only {reduction:.1} dB quieter");

    // Near talker (with the far end still playing): its pitch survives.
    let talk = talk_from + rate..16 * rate;
    let kept = db(
        tone_power(&out[talk.clone()], NEAR_PITCH, SAMPLE_RATE),
        tone_power(&near[talk.clone()], NEAR_PITCH, SAMPLE_RATE),
    );
    println!("near talker's pitch kept at {kept:.1} dB of its input level");
    assert!(
        kept > -10.0,
        "the near talker was suppressed ({kept:.1} dB)"
    );
}

#[test]
fn with_echo_cancellation_off_the_echo_is_not_removed() {
    let rate = SAMPLE_RATE as usize;
    let (echo, _, out) = run(AudioSettings::off(), 4, 4 * rate);
    let window = 2 * rate..4 * rate;
    let reduction = db(energy(&echo[window.clone()]), energy(&out[window]));
    assert!(
        reduction.abs() < 0.5,
        "with processing off the microphone passes unchanged ({reduction:.1} dB)"
    );
}
