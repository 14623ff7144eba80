//! The engine's microphone and speaker streams. Each runs on a thread of its own (cpal streams
//! are not `Send`), which opens the stream, watches it, and when the device goes away falls
//! back to the system default and reports an [`AudioFault`].
//!
//! Switching devices starts the new stream before stopping the old one; a generation number
//! lets only the newest feed the capture pipeline or pull the mix, so the two never interleave.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use confab_audio::{FRAME_SAMPLES, SAMPLE_RATE};
use confab_devices::catalog::FAKE_MICROPHONE_KEY;
use confab_devices::{DeviceKind, DEFAULT_KEY};
use cpal::traits::{DeviceTrait, StreamTrait};

use super::capture::{CapturePipeline, FakeMicrophone};
use super::convert::{downmix, f32_to_i16, i16_to_f32, LinearResampler};
use super::playout::{OutputFeeder, Playout};
use super::{AudioDevice, AudioError, AudioFault, NULL_SPEAKER_KEY};

/// A stream whose callback did not run for this long is treated as lost. Generous: a
/// PulseAudio null sink that was idle first wakes up only after its idle latency (2 s).
const STALL_AFTER: Duration = Duration::from_secs(5);
/// How often a lost device's fallback is tried again when the default cannot open either.
const RETRY_EVERY: Duration = Duration::from_secs(2);
/// How often a chosen (not default) device is looked for: PulseAudio moves the streams of an
/// unplugged device to another by itself, and the stream reports nothing.
const PRESENCE_EVERY: Duration = Duration::from_secs(2);
/// How long stopping waits for a stream's thread. cpal's PulseAudio record stream can take
/// minutes to drop (its latency thread waits on a reply that does not come): past this the
/// thread is left to finish on its own, its stream corked and its callbacks inert.
const STOP_WAIT: Duration = Duration::from_secs(1);
/// How long opening a stream may take.
const OPEN_TIMEOUT: Duration = Duration::from_secs(5);
const POLL: Duration = Duration::from_millis(50);

/// Which stream of a role is the live one, and the key it plays on.
#[derive(Debug, Default)]
pub(crate) struct DeviceSlot {
    next_generation: AtomicU64,
    active: AtomicU64,
    key: Mutex<String>,
}

impl DeviceSlot {
    fn is_active(&self, generation: u64) -> bool {
        self.active.load(Ordering::Acquire) == generation
    }

    fn activate(&self, generation: u64, key: &str) {
        self.active.store(generation, Ordering::Release);
        self.set_key(key);
    }

    fn set_key(&self, key: &str) {
        *self.key.lock().unwrap_or_else(|p| p.into_inner()) = key.to_owned();
    }

    pub(crate) fn key(&self) -> String {
        self.key.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }
}

/// Where a stream's audio goes or comes from.
#[derive(Clone)]
pub(crate) enum Endpoint {
    Capture(Arc<Mutex<CapturePipeline>>),
    Playout(Arc<Mutex<Playout>>),
}

impl Endpoint {
    fn role(&self) -> AudioDevice {
        match self {
            Endpoint::Capture(_) => AudioDevice::Microphone,
            Endpoint::Playout(_) => AudioDevice::Speaker,
        }
    }
}

pub(crate) struct DeviceContext {
    pub(crate) endpoint: Endpoint,
    pub(crate) slot: Arc<DeviceSlot>,
    pub(crate) faults: Arc<dyn Fn(AudioFault) + Send + Sync>,
}

/// A running stream; stops it when dropped (see [`STOP_WAIT`]).
pub(crate) struct Runner {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
    /// Disconnected when the thread ends.
    finished: Option<mpsc::Receiver<()>>,
    _fake: Option<FakeMicrophone>,
}

impl Drop for Runner {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        self._fake.take();
        let Some(thread) = self.thread.take() else {
            return;
        };
        let ended = match self.finished.take() {
            Some(finished) => matches!(
                finished.recv_timeout(STOP_WAIT),
                Err(mpsc::RecvTimeoutError::Disconnected) | Ok(())
            ),
            None => true,
        };
        if ended {
            let _ = thread.join();
        } else {
            tracing::debug!(target: "call::audio", "an audio stream is still closing; not waiting for it");
        }
    }
}

/// Starts the stream of `key` for `ctx`'s role; it becomes the live one once it runs.
pub(crate) fn start(ctx: &Arc<DeviceContext>, key: &str) -> Result<Runner, AudioError> {
    let generation = ctx.slot.next_generation.fetch_add(1, Ordering::Relaxed) + 1;
    match (&ctx.endpoint, key) {
        (Endpoint::Capture(pipeline), FAKE_MICROPHONE_KEY) => {
            let (pipeline, slot) = (pipeline.clone(), ctx.slot.clone());
            let fake = FakeMicrophone::start(confab_devices::fake::fake_tone_hz(), move |s| {
                if slot.is_active(generation) {
                    pipeline.lock().unwrap_or_else(|p| p.into_inner()).push(s);
                }
            })?;
            ctx.slot.activate(generation, key);
            Ok(Runner {
                stop: Arc::default(),
                thread: None,
                finished: None,
                _fake: Some(fake),
            })
        }
        (Endpoint::Playout(playout), NULL_SPEAKER_KEY) => {
            let stop = Arc::new(AtomicBool::new(false));
            let thread = spawn_null_speaker(playout.clone(), ctx.slot.clone(), generation, &stop)?;
            ctx.slot.activate(generation, key);
            Ok(Runner {
                stop,
                thread: Some(thread),
                finished: None,
                _fake: None,
            })
        }
        _ => start_cpal(ctx, key, generation),
    }
}

/// "Plays" the mix nowhere at real-time pace: a call without a speaker, and headless tests.
fn spawn_null_speaker(
    playout: Arc<Mutex<Playout>>,
    slot: Arc<DeviceSlot>,
    generation: u64,
    stop: &Arc<AtomicBool>,
) -> Result<JoinHandle<()>, AudioError> {
    let stop = stop.clone();
    std::thread::Builder::new()
        .name("confab-call-null-speaker".into())
        .spawn(move || {
            let mut next = Instant::now();
            while !stop.load(Ordering::Relaxed) {
                if slot.is_active(generation) {
                    playout
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .render(Instant::now());
                }
                next += Duration::from_millis(10);
                let now = Instant::now();
                if next > now {
                    std::thread::sleep(next - now);
                } else if now - next > Duration::from_millis(100) {
                    next = now;
                }
            }
        })
        .map_err(|e| AudioError::Thread(e.to_string()))
}

fn start_cpal(ctx: &Arc<DeviceContext>, key: &str, generation: u64) -> Result<Runner, AudioError> {
    let stop = Arc::new(AtomicBool::new(false));
    let (ready_tx, ready_rx) = mpsc::channel();
    let (finished_tx, finished_rx) = mpsc::channel::<()>();
    let (ctx2, stop2, key2) = (ctx.clone(), stop.clone(), key.to_owned());
    let role = ctx.endpoint.role();
    let thread = std::thread::Builder::new()
        .name(format!("confab-call-{}", role.word()))
        .spawn(move || {
            let chain = Chain {
                ctx: ctx2,
                generation,
                stop: stop2,
                finished: finished_tx,
            };
            chain.run(key2, Some(ready_tx), None)
        })
        .map_err(|e| AudioError::Thread(e.to_string()))?;
    let runner = Runner {
        stop,
        thread: Some(thread),
        finished: Some(finished_rx),
        _fake: None,
    };
    match ready_rx.recv_timeout(OPEN_TIMEOUT) {
        Ok(Ok(())) => Ok(runner),
        Ok(Err(e)) => Err(e),
        Err(_) => Err(AudioError::Open {
            role,
            key: key.to_owned(),
            reason: format!("it did not start within {} s", OPEN_TIMEOUT.as_secs()),
        }),
    }
}

/// A device's stream threads: the first, and a successor for each fallback. The successor
/// opens the default while its predecessor retires the lost stream, whose drop may hang
/// (see [`STOP_WAIT`]); cpal streams are not `Send`, so each stays on its thread.
struct Chain {
    ctx: Arc<DeviceContext>,
    generation: u64,
    stop: Arc<AtomicBool>,
    /// Held by every thread of the chain: disconnected when the last one ends.
    finished: mpsc::Sender<()>,
}

impl Chain {
    /// Opens `key` and watches it; when it goes, hands over to a successor on the default.
    /// `ready` is answered once (start or switch); `lost` is the key a fallback replaces.
    fn run(
        self,
        mut key: String,
        mut ready: Option<mpsc::Sender<Result<(), AudioError>>>,
        mut lost: Option<String>,
    ) {
        let ctx = &self.ctx;
        let role = ctx.endpoint.role();
        let mut reported_unrecovered = false;
        while !self.stop.load(Ordering::Relaxed) {
            let (failed_tx, failed_rx) = mpsc::channel::<String>();
            let beat = Arc::new(Beat::new());
            let retired = Arc::new(AtomicBool::new(false));
            let live = Live {
                slot: ctx.slot.clone(),
                generation: self.generation,
                stop: self.stop.clone(),
                retired: retired.clone(),
                beat: beat.clone(),
            };
            let stream = match open_stream(ctx, &key, live, failed_tx) {
                Ok(stream) => stream,
                Err(e) => {
                    if let Some(ready) = ready.take() {
                        let _ = ready.send(Err(e));
                        return;
                    }
                    if let Some(lost) = lost.as_ref().filter(|_| !reported_unrecovered) {
                        tracing::warn!(target: "call::audio", role = role.word(), error = %e, "no device to fall back to");
                        (ctx.faults)(role.fault(lost.clone(), None));
                        reported_unrecovered = true;
                    }
                    sleep_unless_stopped(&self.stop, RETRY_EVERY);
                    continue;
                }
            };
            ctx.slot.activate(self.generation, &key);
            if let Some(ready) = ready.take() {
                let _ = ready.send(Ok(()));
            }
            if let Some(lost) = lost.take() {
                tracing::info!(target: "call::audio", role = role.word(), "fell back to the default device");
                (ctx.faults)(role.fault(lost, Some(key.clone())));
            }
            reported_unrecovered = false;
            let Some(reason) = self.watch(&key, &failed_rx, &beat) else {
                // Stopped. Corked first: a drop that hangs then leaves a silent stream.
                retired.store(true, Ordering::Relaxed);
                let _ = stream.pause();
                return;
            };
            tracing::warn!(target: "call::audio", role = role.word(), %reason, "audio device lost");
            retired.store(true, Ordering::Relaxed);
            let _ = stream.pause();
            let successor = Chain {
                ctx: self.ctx.clone(),
                generation: self.generation,
                stop: self.stop.clone(),
                finished: self.finished.clone(),
            };
            let lost_key = key.clone();
            let spawned = std::thread::Builder::new()
                .name(format!("confab-call-{}", role.word()))
                .spawn(move || successor.run(DEFAULT_KEY.to_owned(), None, Some(lost_key)));
            if spawned.is_ok() {
                // This thread only retires the lost stream now.
                drop(stream);
                return;
            }
            drop(stream);
            lost = Some(key);
            key = DEFAULT_KEY.to_owned();
        }
    }

    /// Waits while the stream is fine; the reason it is not, or `None` when stopped.
    fn watch(&self, key: &str, failed: &mpsc::Receiver<String>, beat: &Beat) -> Option<String> {
        let role = self.ctx.endpoint.role();
        let mut presence_checked = Instant::now();
        let mut missing = 0;
        loop {
            if self.stop.load(Ordering::Relaxed) {
                return None;
            }
            match failed.recv_timeout(POLL) {
                Ok(reason) => return Some(reason),
                Err(mpsc::RecvTimeoutError::Timeout)
                | Err(mpsc::RecvTimeoutError::Disconnected) => {
                    if beat.since_last() > STALL_AFTER {
                        return Some("it stopped delivering audio".to_owned());
                    }
                    if key != DEFAULT_KEY && presence_checked.elapsed() >= PRESENCE_EVERY {
                        presence_checked = Instant::now();
                        // Three times in a row: PulseAudio's listing fails now and then
                        // (seen as a false "speaker disconnected" in a long call), and one or
                        // two failed listings are not an unplug.
                        missing = if is_present(role, key) {
                            0
                        } else {
                            missing + 1
                        };
                        if missing >= 3 {
                            return Some("it was unplugged".to_owned());
                        }
                    }
                }
            }
        }
    }
}

fn device_kind(role: AudioDevice) -> DeviceKind {
    match role {
        AudioDevice::Microphone => DeviceKind::Microphone,
        AudioDevice::Speaker => DeviceKind::Speaker,
    }
}

fn is_present(role: AudioDevice, key: &str) -> bool {
    confab_devices::media::cpal_audio_device(device_kind(role), key).is_some()
}

fn sleep_unless_stopped(stop: &AtomicBool, total: Duration) {
    let until = Instant::now() + total;
    while !stop.load(Ordering::Relaxed) && Instant::now() < until {
        std::thread::sleep(POLL);
    }
}

/// When a stream's callback last ran.
struct Beat {
    origin: Instant,
    last_ms: AtomicU64,
}

impl Beat {
    fn new() -> Self {
        Self {
            origin: Instant::now(),
            last_ms: AtomicU64::new(0),
        }
    }

    fn touch(&self) {
        let ms = self.origin.elapsed().as_millis() as u64;
        self.last_ms.store(ms, Ordering::Relaxed);
    }

    fn since_last(&self) -> Duration {
        let last = Duration::from_millis(self.last_ms.load(Ordering::Relaxed));
        self.origin.elapsed().saturating_sub(last)
    }
}

/// Samples cpal may hand over, as f32.
trait Sample: cpal::SizedSample + Send + 'static {
    fn to_f32(self) -> f32;
    fn from_f32(s: f32) -> Self;
}

impl Sample for f32 {
    fn to_f32(self) -> f32 {
        self
    }
    fn from_f32(s: f32) -> Self {
        s.clamp(-1.0, 1.0)
    }
}

impl Sample for i16 {
    fn to_f32(self) -> f32 {
        i16_to_f32(self)
    }
    fn from_f32(s: f32) -> Self {
        f32_to_i16(s)
    }
}

struct Chosen {
    config: cpal::StreamConfig,
    format: cpal::SampleFormat,
}

/// 48 kHz mono f32 if the device offers it, else the closest it does (converted here).
fn choose_config(device: &cpal::Device, role: AudioDevice) -> Result<Chosen, cpal::Error> {
    let ranges: Vec<cpal::SupportedStreamConfigRange> = match role {
        AudioDevice::Microphone => device.supported_input_configs()?.collect(),
        AudioDevice::Speaker => device.supported_output_configs()?.collect(),
    };
    let usable =
        |f: cpal::SampleFormat| matches!(f, cpal::SampleFormat::F32 | cpal::SampleFormat::I16);
    let at_48k = |r: &&cpal::SupportedStreamConfigRange| {
        r.min_sample_rate() <= SAMPLE_RATE && SAMPLE_RATE <= r.max_sample_rate()
    };
    let mut picked = None;
    'search: for format in [cpal::SampleFormat::F32, cpal::SampleFormat::I16] {
        for mono in [true, false] {
            if let Some(range) = ranges
                .iter()
                .filter(at_48k)
                .find(|r| r.sample_format() == format && (!mono || r.channels() == 1))
            {
                picked = Some(range.with_sample_rate(SAMPLE_RATE));
                break 'search;
            }
        }
    }
    let supported = match picked {
        Some(p) => p,
        None => {
            let default = match role {
                AudioDevice::Microphone => device.default_input_config()?,
                AudioDevice::Speaker => device.default_output_config()?,
            };
            if !usable(default.sample_format()) {
                return Err(cpal::Error::with_message(
                    cpal::ErrorKind::UnsupportedConfig,
                    format!("sample format {} is not supported", default.sample_format()),
                ));
            }
            default
        }
    };
    let mut config = supported.config();
    // Short periods keep the device's share of the latency small. Playback gets 30 ms (a
    // 60 ms buffer): with 10 ms cpal's PulseAudio client missed requests and the sink ran at
    // ~80 % speed, and with 20 ms it still fell behind on a busy two-core machine.
    let period = match role {
        AudioDevice::Microphone => supported.sample_rate() / 100,
        AudioDevice::Speaker => supported.sample_rate() * 3 / 100,
    };
    if let cpal::SupportedBufferSize::Range { min, max } = supported.buffer_size() {
        if (*min..=*max).contains(&period) {
            config.buffer_size = cpal::BufferSize::Fixed(period);
        }
    }
    Ok(Chosen {
        config,
        format: supported.sample_format(),
    })
}

fn open_stream(
    ctx: &DeviceContext,
    key: &str,
    live: Live,
    failed: mpsc::Sender<String>,
) -> Result<cpal::Stream, AudioError> {
    let role = ctx.endpoint.role();
    let device =
        confab_devices::media::cpal_audio_device(device_kind(role), key).ok_or_else(|| {
            AudioError::NotFound {
                role,
                key: key.to_owned(),
            }
        })?;
    let open_err = |e: cpal::Error| AudioError::Open {
        role,
        key: key.to_owned(),
        reason: e.to_string(),
    };
    let chosen = choose_config(&device, role).map_err(open_err)?;
    let on_error = move |e: cpal::Error| {
        use cpal::ErrorKind as K;
        match e.kind() {
            K::DeviceNotAvailable
            | K::StreamInvalidated
            | K::HostUnavailable
            | K::BackendError
            | K::Other => {
                let _ = failed.send(e.to_string());
            }
            _ => tracing::debug!(target: "call::audio", error = %e, "audio stream glitch"),
        }
    };
    let (config, generation) = (chosen.config, live.generation);
    let stream = match (&ctx.endpoint, chosen.format) {
        (Endpoint::Capture(p), cpal::SampleFormat::F32) => {
            build_input::<f32>(&device, config, p.clone(), live, on_error)
        }
        (Endpoint::Capture(p), _) => build_input::<i16>(&device, config, p.clone(), live, on_error),
        (Endpoint::Playout(p), cpal::SampleFormat::F32) => {
            build_output::<f32>(&device, config, p.clone(), live, on_error)
        }
        (Endpoint::Playout(p), _) => {
            build_output::<i16>(&device, config, p.clone(), live, on_error)
        }
    }
    .map_err(open_err)?;
    // Live from its first callback (the old stream goes quiet): a device may call back once
    // and then not again for a while.
    let previous = ctx.slot.active.swap(generation, Ordering::AcqRel);
    if let Err(e) = stream.play() {
        let _ = ctx.slot.active.compare_exchange(
            generation,
            previous,
            Ordering::AcqRel,
            Ordering::Relaxed,
        );
        return Err(open_err(e));
    }
    Ok(stream)
}

/// What a stream's callback checks before touching the pipeline or the mix.
struct Live {
    slot: Arc<DeviceSlot>,
    generation: u64,
    /// The whole device stopped (the engine dropped, or switched away).
    stop: Arc<AtomicBool>,
    /// This stream was replaced after its device was lost.
    retired: Arc<AtomicBool>,
    beat: Arc<Beat>,
}

impl Live {
    /// Marks the callback as run; true if this stream is the one to use.
    fn beat(&self) -> bool {
        self.beat.touch();
        !self.stop.load(Ordering::Relaxed)
            && !self.retired.load(Ordering::Relaxed)
            && self.slot.is_active(self.generation)
    }
}

fn build_input<T: Sample>(
    device: &cpal::Device,
    config: cpal::StreamConfig,
    pipeline: Arc<Mutex<CapturePipeline>>,
    live: Live,
    on_error: impl FnMut(cpal::Error) + Send + 'static,
) -> Result<cpal::Stream, cpal::Error> {
    let channels = usize::from(config.channels.max(1));
    let mut resampler = (config.sample_rate != SAMPLE_RATE)
        .then(|| LinearResampler::new(config.sample_rate, SAMPLE_RATE));
    let mut floats = Vec::with_capacity(FRAME_SAMPLES * 2);
    let mut mono = Vec::with_capacity(FRAME_SAMPLES);
    let mut resampled = Vec::with_capacity(FRAME_SAMPLES * 2);
    device.build_input_stream(
        config,
        move |data: &[T], _: &cpal::InputCallbackInfo| {
            if !live.beat() {
                return;
            }
            floats.clear();
            floats.extend(data.iter().map(|s| s.to_f32()));
            mono.clear();
            downmix(&floats, channels, |s| mono.push(s));
            let samples = match resampler.as_mut() {
                Some(r) => {
                    resampled.clear();
                    r.process(&mono, |s| resampled.push(s));
                    &resampled
                }
                None => &mono,
            };
            pipeline
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .push(samples);
        },
        on_error,
        None,
    )
}

fn build_output<T: Sample>(
    device: &cpal::Device,
    config: cpal::StreamConfig,
    playout: Arc<Mutex<Playout>>,
    live: Live,
    on_error: impl FnMut(cpal::Error) + Send + 'static,
) -> Result<cpal::Stream, cpal::Error> {
    let channels = usize::from(config.channels.max(1));
    let mut feeder = OutputFeeder::new(config.sample_rate);
    device.build_output_stream(
        config,
        move |data: &mut [T], _: &cpal::OutputCallbackInfo| {
            if !live.beat() {
                data.fill(T::from_f32(0.0));
                return;
            }
            let frames = data.len() / channels;
            let mut frames_out = data.chunks_exact_mut(channels);
            feeder.fill(&playout, frames, |s| {
                if let Some(frame) = frames_out.next() {
                    frame.fill(T::from_f32(s));
                }
            });
        },
        on_error,
        None,
    )
}
