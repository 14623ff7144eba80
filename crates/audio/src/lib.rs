//! `confab-audio`: what happens to call audio between the microphone and the encoder.
//!
//! [`CallAudioProcessor`] runs WebRTC's audio processing (echo cancellation, noise suppression,
//! automatic gain control) on 10 ms frames at 48 kHz. The microphone's frames go through
//! [`CallAudioProcessor::process_capture`]; the *mixed* playout, what the speaker is about to
//! play, goes through [`CallAudioProcessor::process_playout`] as the echo reference (a
//! per-participant reference cannot cancel a call of several). [`AudioSettings`] turns each
//! stage off; with all off, audio passes through untouched.
//!
//! [`tone`] measures a pitch's share of a signal, for the tests that check who hears whom.

pub mod tone;

use webrtc_audio_processing as wap;

/// Samples per channel in one frame: 10 ms at 48 kHz.
pub const FRAME_SAMPLES: usize = wap::NUM_SAMPLES_PER_FRAME as usize;
pub const SAMPLE_RATE: u32 = 48_000;

/// What the processor does. Each stage can be switched off (a setting in the app).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AudioSettings {
    pub echo_cancellation: bool,
    pub noise_suppression: bool,
    pub gain_control: bool,
    /// Time from a sample being handed to the speaker to its echo reaching the microphone
    /// path: device buffers plus the room. `None` lets the canceller find it.
    pub echo_delay_ms: Option<u16>,
}

impl Default for AudioSettings {
    fn default() -> Self {
        Self {
            echo_cancellation: true,
            noise_suppression: true,
            gain_control: true,
            echo_delay_ms: None,
        }
    }
}

impl AudioSettings {
    /// Every stage off: audio passes through unchanged.
    pub fn off() -> Self {
        Self {
            echo_cancellation: false,
            noise_suppression: false,
            gain_control: false,
            echo_delay_ms: None,
        }
    }

    fn config(&self) -> wap::Config {
        wap::Config {
            echo_cancellation: self.echo_cancellation.then(|| wap::EchoCancellation {
                suppression_level: wap::EchoCancellationSuppressionLevel::High,
                enable_extended_filter: true,
                enable_delay_agnostic: self.echo_delay_ms.is_none(),
                stream_delay_ms: self.echo_delay_ms.map(i32::from),
            }),
            noise_suppression: self.noise_suppression.then_some(wap::NoiseSuppression {
                suppression_level: wap::NoiseSuppressionLevel::Moderate,
            }),
            gain_control: self.gain_control.then_some(wap::GainControl {
                mode: wap::GainControlMode::AdaptiveDigital,
                target_level_dbfs: 3,
                compression_gain_db: 9,
                enable_limiter: true,
            }),
            enable_high_pass_filter: self.echo_cancellation
                || self.noise_suppression
                || self.gain_control,
            ..wap::Config::default()
        }
    }

    fn any(&self) -> bool {
        self.echo_cancellation || self.noise_suppression || self.gain_control
    }
}

#[derive(Debug, thiserror::Error)]
pub enum AudioProcessingError {
    #[error("the audio processor could not start: {0}")]
    Start(String),
    #[error("a frame must hold {expected} samples (10 ms at 48 kHz, mono), not {got}")]
    FrameSize { expected: usize, got: usize },
    #[error("the audio processor refused a frame: {0}")]
    Process(String),
}

/// Echo cancellation, noise suppression and gain control for one call, mono at 48 kHz.
/// Cheap to clone: the capture thread and the playout thread each hold one.
#[derive(Clone)]
pub struct CallAudioProcessor {
    processor: wap::Processor,
    settings: AudioSettings,
}

impl CallAudioProcessor {
    pub fn new(settings: AudioSettings) -> Result<Self, AudioProcessingError> {
        let mut processor = wap::Processor::new(&wap::InitializationConfig {
            num_capture_channels: 1,
            num_render_channels: 1,
            ..wap::InitializationConfig::default()
        })
        .map_err(|e| AudioProcessingError::Start(e.to_string()))?;
        processor.set_config(settings.config());
        Ok(Self {
            processor,
            settings,
        })
    }

    pub fn settings(&self) -> AudioSettings {
        self.settings
    }

    /// Changes the stages at any time (the setting in the app).
    pub fn set_settings(&mut self, settings: AudioSettings) {
        self.settings = settings;
        self.processor.set_config(settings.config());
    }

    fn check(frame: &[f32]) -> Result<(), AudioProcessingError> {
        if frame.len() != FRAME_SAMPLES {
            return Err(AudioProcessingError::FrameSize {
                expected: FRAME_SAMPLES,
                got: frame.len(),
            });
        }
        Ok(())
    }

    /// Processes 10 ms of microphone audio in place, before it is encoded.
    pub fn process_capture(&mut self, frame: &mut [f32]) -> Result<(), AudioProcessingError> {
        Self::check(frame)?;
        if !self.settings.any() {
            return Ok(());
        }
        self.processor
            .process_capture_frame(frame)
            .map_err(|e| AudioProcessingError::Process(e.to_string()))
    }

    /// Hands 10 ms of the mixed playout (what the speaker plays) to the echo canceller.
    pub fn process_playout(&mut self, frame: &[f32]) -> Result<(), AudioProcessingError> {
        Self::check(frame)?;
        if !self.settings.echo_cancellation {
            return Ok(());
        }
        // The library may touch the reference in place; it is a copy, the speaker's is not.
        let mut copy = frame.to_vec();
        self.processor
            .process_render_frame(&mut copy)
            .map_err(|e| AudioProcessingError::Process(e.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_of_the_wrong_size_are_refused_not_processed() {
        let mut p = CallAudioProcessor::new(AudioSettings::default()).unwrap();
        let mut short = vec![0.0f32; 100];
        assert!(matches!(
            p.process_capture(&mut short),
            Err(AudioProcessingError::FrameSize {
                expected: 480,
                got: 100
            })
        ));
        assert!(p.process_playout(&short).is_err());
    }

    #[test]
    fn with_every_stage_off_audio_passes_through_unchanged() {
        let mut p = CallAudioProcessor::new(AudioSettings::off()).unwrap();
        let original: Vec<f32> = (0..FRAME_SAMPLES)
            .map(|i| ((i as f32) * 0.05).sin() * 0.3)
            .collect();
        let mut frame = original.clone();
        p.process_playout(&original).unwrap();
        p.process_capture(&mut frame).unwrap();
        assert_eq!(frame, original);
    }
}
