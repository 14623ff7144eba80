//! A call's audio: the microphone through echo cancellation, noise suppression and gain control
//! into 20 ms Opus packets; each remote participant's packets through a jitter buffer and the
//! Opus decoder into one mix, which the speaker plays and the echo canceller takes as its
//! reference. Everything runs at 48 kHz mono in 10 ms frames.
//!
//! Threads: the microphone's stream (or the fake tone's thread) runs [`CapturePipeline`] and
//! calls the sender; the speaker's stream pulls the [`Mixer`]. Both feed one
//! [`confab_audio::CallAudioProcessor`] (two clones of one WebRTC processor, which is made to
//! be driven from a capture and a render thread). [`AudioEngine`] is the handle: cheap calls
//! that never wait for either thread's work.
//!
//! The building blocks ([`JitterBuffer`], [`Mixer`], [`CapturePipeline`], [`FakeMicrophone`])
//! run without devices, so tests drive them with their own clock.

mod capture;
mod convert;
mod device;
mod jitter;
mod mixer;
mod playout;

use std::fmt;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use confab_audio::{AudioProcessingError, AudioSettings, CallAudioProcessor};
use serde::Serialize;

pub use capture::{
    CaptureControl, CapturePipeline, FakeMicrophone, PACKET_SAMPLES, SPEAKING_THRESHOLD_DB,
};
pub use convert::LinearResampler;
pub use jitter::{opus_packet_samples, JitterBuffer, RemoteAudioStats, INITIAL_TARGET, MAX_TARGET};
pub use mixer::{soft_clip, Mixer};

use capture::SettingsCell;
use device::{DeviceContext, DeviceSlot, Endpoint, Runner};
use playout::{Inbox, Playout, PlayoutFigures};

/// 48 kHz samples per millisecond.
pub(crate) const SAMPLES_PER_MS: f64 = 48.0;

/// A speaker key that plays nowhere, at real-time pace: for a call without a speaker and for
/// tests without audio devices.
pub const NULL_SPEAKER_KEY: &str = "null:speaker";

/// One encoded 20 ms of the microphone.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OpusPacket {
    pub data: Vec<u8>,
    /// Capture time of its first sample, from the start of sending (the sample clock: muted
    /// time counts, so the RTP time jumps over a mute).
    pub timestamp: Duration,
    /// RFC 6464: 0 is loudest, -127 silence.
    pub audio_level: i8,
}

/// The microphone or the speaker.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum AudioDevice {
    Microphone,
    Speaker,
}

impl AudioDevice {
    pub(crate) fn word(self) -> &'static str {
        match self {
            AudioDevice::Microphone => "microphone",
            AudioDevice::Speaker => "speaker",
        }
    }

    pub(crate) fn fault(self, key: String, fell_back_to: Option<String>) -> AudioFault {
        match self {
            AudioDevice::Microphone => AudioFault::MicrophoneLost { key, fell_back_to },
            AudioDevice::Speaker => AudioFault::SpeakerLost { key, fell_back_to },
        }
    }
}

impl fmt::Display for AudioDevice {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.word())
    }
}

/// A device went away during the call. Reported from the device's thread.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum AudioFault {
    /// `fell_back_to` is the key now in use (`default`), or `None` when no microphone could be
    /// opened (retried every 2 s; a later fault says when one was).
    MicrophoneLost {
        key: String,
        fell_back_to: Option<String>,
    },
    SpeakerLost {
        key: String,
        fell_back_to: Option<String>,
    },
    /// The microphone could not be opened when the call started: the call goes on
    /// listen-only until another is picked.
    MicrophoneUnavailable { key: String, reason: String },
}

impl fmt::Display for AudioFault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AudioFault::MicrophoneLost {
                fell_back_to: Some(_),
                ..
            } => f.write_str("Your microphone was disconnected: using the default microphone."),
            AudioFault::MicrophoneLost { .. } => f.write_str(
                "Your microphone was disconnected and no other could be opened: plug one in or pick another.",
            ),
            AudioFault::SpeakerLost {
                fell_back_to: Some(_),
                ..
            } => f.write_str("Your speaker was disconnected: playing on the default speaker."),
            AudioFault::SpeakerLost { .. } => f.write_str(
                "Your speaker was disconnected and no other could be opened: plug one in or pick another.",
            ),
            AudioFault::MicrophoneUnavailable { reason, .. } => write!(
                f,
                "Your microphone could not be opened ({reason}): you can listen; pick another microphone to talk."
            ),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum AudioError {
    #[error("the {role} {key:?} is not connected: pick another device")]
    NotFound { role: AudioDevice, key: String },
    #[error("the {role} {key:?} could not be opened ({reason}): it may be in use by another app")]
    Open {
        role: AudioDevice,
        key: String,
        reason: String,
    },
    #[error("the Opus codec could not start: {0}")]
    Codec(String),
    #[error(transparent)]
    Processing(#[from] AudioProcessingError),
    #[error("an audio thread could not start: {0}")]
    Thread(String),
}

/// The engine's figures, for the stats panel and tests.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct AudioStats {
    pub microphone: String,
    pub speaker: String,
    pub muted: bool,
    pub speaking: bool,
    pub microphone_level_db: f32,
    /// Opus packets handed to the sender.
    pub packets_sent: u64,
    /// 10 ms microphone frames processed (muted or not).
    pub capture_frames: u64,
    /// 10 ms mixes played.
    pub playout_frames: u64,
    /// Received packets dropped because the speaker was not taking them.
    pub dropped_remote_packets: u64,
    pub remotes: Vec<RemoteAudioStats>,
}

/// The call's audio; stops everything when dropped. `Send + Sync`: every method is quick and
/// callable from any thread or task.
pub struct AudioEngine {
    control: Arc<CaptureControl>,
    settings: Arc<SettingsCell>,
    inbox: Arc<Inbox>,
    figures: Arc<PlayoutFigures>,
    microphone: Arc<DeviceContext>,
    speaker: Arc<DeviceContext>,
    // Lock order: microphone, then speaker (only Drop takes both).
    microphone_runner: Mutex<Option<Runner>>,
    speaker_runner: Mutex<Option<Runner>>,
}

impl AudioEngine {
    /// Starts playout on `speaker_key` and capture from `microphone_key` (keys as
    /// confab-devices lists them; `default` is the system's default,
    /// [`confab_devices::catalog::FAKE_MICROPHONE_KEY`] the fake tone at
    /// `CONFAB_FAKE_TONE_HZ`, [`NULL_SPEAKER_KEY`] no speaker). Each 20 ms packet goes to
    /// `send`, on the capture thread: it must not block. Nothing is sent while muted.
    pub fn start(
        speaker_key: &str,
        microphone_key: &str,
        settings: AudioSettings,
        send: Box<dyn FnMut(OpusPacket) + Send>,
        faults: Box<dyn Fn(AudioFault) + Send + Sync>,
    ) -> Result<AudioEngine, AudioError> {
        let faults: Arc<dyn Fn(AudioFault) + Send + Sync> = Arc::from(faults);
        let settings_cell = Arc::new(SettingsCell::new(settings));
        let processor = CallAudioProcessor::new(settings)?;
        let pipeline =
            CapturePipeline::with_processor(processor.clone(), settings_cell.clone(), send)?;
        let control = pipeline.control();
        let inbox = Arc::new(Inbox::default());
        let figures = Arc::new(PlayoutFigures::default());
        let playout = Playout::new(
            processor,
            settings_cell.clone(),
            inbox.clone(),
            figures.clone(),
        );
        let microphone = Arc::new(DeviceContext {
            endpoint: Endpoint::Capture(Arc::new(Mutex::new(pipeline))),
            slot: Arc::new(DeviceSlot::default()),
            faults: faults.clone(),
        });
        let speaker = Arc::new(DeviceContext {
            endpoint: Endpoint::Playout(Arc::new(Mutex::new(playout))),
            slot: Arc::new(DeviceSlot::default()),
            faults,
        });
        let speaker_runner = device::start(&speaker, speaker_key)?;
        // Without a microphone the call is still worth hearing: listen-only, with a fault.
        // No key at all (a livestream's viewer) opens none, and is no fault.
        let opened =
            (!microphone_key.is_empty()).then(|| device::start(&microphone, microphone_key));
        let microphone_runner = match opened {
            None => None,
            Some(Ok(runner)) => Some(runner),
            Some(Err(e)) => {
                (microphone.faults)(AudioFault::MicrophoneUnavailable {
                    key: microphone_key.to_owned(),
                    reason: e.to_string(),
                });
                None
            }
        };
        Ok(AudioEngine {
            control,
            settings: settings_cell,
            inbox,
            figures,
            microphone,
            speaker,
            microphone_runner: Mutex::new(microphone_runner),
            speaker_runner: Mutex::new(Some(speaker_runner)),
        })
    }

    /// A received Opus frame of one remote participant (`rtp_time` in 48 kHz units). Queued
    /// for the speaker's thread; never waits for a decode.
    pub fn push_remote(&self, identity: &str, rtp_time: u64, data: &[u8], received_at: Instant) {
        self.inbox.push(identity, rtp_time, data, received_at);
    }

    /// Forgets a participant (they left, or unpublished their microphone).
    pub fn remove_remote(&self, identity: &str) {
        self.inbox.remove(identity);
    }

    pub fn set_muted(&self, muted: bool) {
        self.control.set_muted(muted);
    }

    /// The microphone's level (dBFS over the last 100 ms, after processing), muted or not.
    pub fn microphone_level_db(&self) -> f32 {
        self.control.level_db()
    }

    /// Local voice activity, muted or not: the level above [`SPEAKING_THRESHOLD_DB`], held
    /// for 300 ms.
    pub fn speaking(&self) -> bool {
        self.control.speaking()
    }

    /// Moves capture to another microphone. On an error the current one keeps running.
    pub fn switch_microphone(&self, key: &str) -> Result<(), AudioError> {
        let mut runner = self
            .microphone_runner
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        let next = device::start(&self.microphone, key)?;
        // The old stream stops here (its thread is joined) after the new one took over.
        *runner = Some(next);
        Ok(())
    }

    /// Moves playout to another speaker. On an error the current one keeps running.
    pub fn switch_speaker(&self, key: &str) -> Result<(), AudioError> {
        let mut runner = self
            .speaker_runner
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        let next = device::start(&self.speaker, key)?;
        *runner = Some(next);
        Ok(())
    }

    /// Turns echo cancellation, noise suppression and gain control on or off, from the next
    /// frame on.
    pub fn set_settings(&self, settings: AudioSettings) {
        self.settings.set(settings);
    }

    pub fn stats(&self) -> AudioStats {
        AudioStats {
            microphone: self.microphone.slot.key(),
            speaker: self.speaker.slot.key(),
            muted: self.control.muted(),
            speaking: self.control.speaking(),
            microphone_level_db: self.control.level_db(),
            packets_sent: self.control.packets_sent(),
            capture_frames: self.control.frames(),
            playout_frames: self.figures.frames.load(Ordering::Relaxed),
            dropped_remote_packets: self.inbox.dropped(),
            remotes: self
                .figures
                .remotes
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .clone(),
        }
    }
}

impl Drop for AudioEngine {
    fn drop(&mut self) {
        // Capture first, so nothing is sent after the engine is gone.
        self.microphone_runner
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take();
        self.speaker_runner
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn assert_send_sync<T: Send + Sync>() {}

    #[test]
    fn the_engine_handle_is_send_and_sync() {
        assert_send_sync::<AudioEngine>();
    }

    #[test]
    fn faults_and_errors_read_as_plain_words() {
        let fault = AudioFault::SpeakerLost {
            key: "usb".into(),
            fell_back_to: Some("default".into()),
        };
        assert!(fault.to_string().contains("default speaker"));
        let e = AudioError::NotFound {
            role: AudioDevice::Microphone,
            key: "usb-mic".into(),
        };
        assert_eq!(
            e.to_string(),
            "the microphone \"usb-mic\" is not connected: pick another device"
        );
    }
}
