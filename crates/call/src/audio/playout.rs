//! The speaker's side of the engine: received packets wait in an inbox (so the network task
//! never waits for a decode), the speaker's thread moves them into the [`Mixer`], mixes 10 ms,
//! hands the mix to the echo canceller as its reference, and plays it.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use confab_audio::{CallAudioProcessor, FRAME_SAMPLES, SAMPLE_RATE};

use super::capture::SettingsCell;
use super::convert::LinearResampler;
use super::jitter::RemoteAudioStats;
use super::mixer::Mixer;

/// Packets waiting for the speaker's thread at most: about 1 s for 50 senders. Past it (the
/// speaker stopped pulling) new packets are dropped, and counted.
const INBOX_LIMIT: usize = 2500;
/// Stats are copied out every this many frames (100 ms).
const STATS_EVERY_FRAMES: u64 = 10;

pub(crate) enum Incoming {
    Packet {
        identity: String,
        rtp_time: u64,
        data: Vec<u8>,
        received_at: Instant,
    },
    Remove(String),
}

/// Packets and removals from the network side, in order.
#[derive(Default)]
pub(crate) struct Inbox {
    queue: Mutex<Vec<Incoming>>,
    dropped: AtomicU64,
}

impl Inbox {
    pub(crate) fn push(&self, identity: &str, rtp_time: u64, data: &[u8], received_at: Instant) {
        let mut queue = self.queue.lock().unwrap_or_else(|p| p.into_inner());
        if queue.len() >= INBOX_LIMIT {
            self.dropped.fetch_add(1, Ordering::Relaxed);
            return;
        }
        queue.push(Incoming::Packet {
            identity: identity.to_owned(),
            rtp_time,
            data: data.to_vec(),
            received_at,
        });
    }

    pub(crate) fn remove(&self, identity: &str) {
        let mut queue = self.queue.lock().unwrap_or_else(|p| p.into_inner());
        // Its waiting packets go too, so a removal always fits.
        queue.retain(|m| !matches!(m, Incoming::Packet { identity: i, .. } if i == identity));
        queue.push(Incoming::Remove(identity.to_owned()));
    }

    pub(crate) fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }

    fn take_into(&self, out: &mut Vec<Incoming>) {
        let mut queue = self.queue.lock().unwrap_or_else(|p| p.into_inner());
        std::mem::swap(&mut *queue, out);
    }
}

/// Figures the playout thread publishes for [`super::AudioEngine::stats`].
#[derive(Default)]
pub(crate) struct PlayoutFigures {
    pub(crate) frames: AtomicU64,
    pub(crate) remotes: Mutex<Vec<RemoteAudioStats>>,
}

/// Mixes and echo-references 10 ms at a time; shared by whichever speaker stream runs.
pub(crate) struct Playout {
    mixer: Mixer,
    inbox: Arc<Inbox>,
    incoming: Vec<Incoming>,
    processor: CallAudioProcessor,
    settings: Arc<SettingsCell>,
    settings_seen: u64,
    frame: Vec<f32>,
    figures: Arc<PlayoutFigures>,
}

impl Playout {
    pub(crate) fn new(
        processor: CallAudioProcessor,
        settings: Arc<SettingsCell>,
        inbox: Arc<Inbox>,
        figures: Arc<PlayoutFigures>,
    ) -> Self {
        Self {
            mixer: Mixer::new(),
            inbox,
            incoming: Vec::new(),
            processor,
            settings,
            settings_seen: 0,
            frame: vec![0.0; FRAME_SAMPLES],
            figures,
        }
    }

    /// The next 10 ms of the mix, 48 kHz mono.
    pub(crate) fn render(&mut self, now: Instant) -> &[f32] {
        self.inbox.take_into(&mut self.incoming);
        for message in self.incoming.drain(..) {
            match message {
                Incoming::Packet {
                    identity,
                    rtp_time,
                    data,
                    received_at,
                } => self.mixer.push(&identity, rtp_time, &data, received_at),
                Incoming::Remove(identity) => self.mixer.remove(&identity),
            }
        }
        if let Some(settings) = self.settings.changed_since(&mut self.settings_seen) {
            self.processor.set_settings(settings);
        }
        self.mixer.pull(now, &mut self.frame);
        if let Err(e) = self.processor.process_playout(&self.frame) {
            tracing::debug!(target: "call::audio", error = %e, "echo reference not taken");
        }
        let frames = self.mixer.frames();
        self.figures.frames.store(frames, Ordering::Relaxed);
        if frames % STATS_EVERY_FRAMES == 0 {
            if let Ok(mut remotes) = self.figures.remotes.try_lock() {
                *remotes = self.mixer.stats();
            }
        }
        &self.frame
    }
}

/// One speaker stream's adapter: pulls 10 ms mixes and serves the device's buffer sizes at its
/// rate (a leftover of under 10 ms waits for the next callback).
pub(crate) struct OutputFeeder {
    queue: VecDeque<f32>,
    resampler: Option<LinearResampler>,
}

impl OutputFeeder {
    pub(crate) fn new(device_rate: u32) -> Self {
        Self {
            queue: VecDeque::with_capacity(FRAME_SAMPLES * 4),
            resampler: (device_rate != SAMPLE_RATE)
                .then(|| LinearResampler::new(SAMPLE_RATE, device_rate)),
        }
    }

    /// `frames` mono samples at the device's rate, each given to `write`.
    pub(crate) fn fill(
        &mut self,
        playout: &Mutex<Playout>,
        frames: usize,
        mut write: impl FnMut(f32),
    ) {
        while self.queue.len() < frames {
            let mut playout = playout.lock().unwrap_or_else(|p| p.into_inner());
            let mix = playout.render(Instant::now());
            match self.resampler.as_mut() {
                Some(r) => r.process(mix, |s| self.queue.push_back(s)),
                None => self.queue.extend(mix.iter().copied()),
            }
        }
        self.queue.drain(..frames).for_each(&mut write);
    }
}
