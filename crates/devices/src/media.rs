//! Live signals for the lobby: the selected camera's frames, the microphone's level, and a
//! test tone on the selected speaker. Each runs on its own thread or task and stops when its
//! handle is dropped; opening a busy or vanished device returns an error, never panics.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use cpal::traits::{DeviceTrait, StreamTrait};
use tokio::sync::mpsc;

use crate::catalog::{audio_device, FAKE_CAMERA_KEY, FAKE_MICROPHONE_KEY};
use crate::fake::{fake_tone_hz, Frame, TestPattern, Tone};
use crate::level::{AudioLevel, LevelMeter};
use crate::preferences::DeviceKind;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MediaError {
    #[error("the device {0:?} is not connected")]
    NotFound(String),
    #[error("the device {key:?} could not be opened: {reason}")]
    Open { key: String, reason: String },
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or_default()
}

/// A fake device's clock: each wait ends at the next deadline, so late wake-ups do not add up
/// (a thread that slept one period after each piece of work would run slow on a busy machine).
struct Beat {
    next: std::time::Instant,
    period: Duration,
}

impl Beat {
    fn new(period: Duration) -> Self {
        Beat {
            next: std::time::Instant::now(),
            period,
        }
    }

    fn wait(&mut self) {
        self.next += self.period;
        let now = std::time::Instant::now();
        if self.next > now {
            std::thread::sleep(self.next - now);
        } else {
            self.next = now; // fell behind: do not burst to catch up
        }
    }
}

/// Stops a running signal when dropped.
pub struct Running {
    stop: Arc<AtomicBool>,
    delivered: Arc<AtomicU64>,
    dropped: Arc<AtomicU64>,
}

impl Running {
    fn new() -> Self {
        Self {
            stop: Arc::default(),
            delivered: Arc::default(),
            dropped: Arc::default(),
        }
    }

    /// Frames (or levels) handed to the consumer so far.
    pub fn delivered(&self) -> u64 {
        self.delivered.load(Ordering::Relaxed)
    }

    /// Frames skipped because the consumer was still busy with the previous ones.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PreviewFormat {
    pub width: u32,
    pub height: u32,
    pub fps: u32,
}

impl Default for PreviewFormat {
    fn default() -> Self {
        Self {
            width: 1280,
            height: 720,
            fps: 30,
        }
    }
}

/// Sends the camera's frames to `consumer` at the camera's rate. A consumer that falls behind
/// loses frames (the newest wins), never stalls the camera.
pub fn start_camera(
    key: &str,
    format: PreviewFormat,
    consumer: mpsc::Sender<Frame>,
) -> Result<Running, MediaError> {
    let running = Running::new();
    if key == FAKE_CAMERA_KEY {
        let (stop, delivered, dropped) = (
            running.stop.clone(),
            running.delivered.clone(),
            running.dropped.clone(),
        );
        let period = Duration::from_secs_f64(1.0 / f64::from(format.fps.clamp(1, 120)));
        let mut pattern = TestPattern::new(format.width, format.height);
        std::thread::Builder::new()
            .name("confab-fake-camera".into())
            .spawn(move || {
                let mut beat = Beat::new(period);
                while !stop.load(Ordering::Relaxed) && !consumer.is_closed() {
                    let frame = pattern.next_frame(now_ms());
                    match consumer.try_send(frame) {
                        Ok(()) => delivered.fetch_add(1, Ordering::Relaxed),
                        Err(_) => dropped.fetch_add(1, Ordering::Relaxed),
                    };
                    beat.wait();
                }
            })
            .map_err(|e| MediaError::Open {
                key: key.to_owned(),
                reason: e.to_string(),
            })?;
        return Ok(running);
    }
    start_real_camera(key, format, consumer, running)
}

fn start_real_camera(
    key: &str,
    format: PreviewFormat,
    consumer: mpsc::Sender<Frame>,
    running: Running,
) -> Result<Running, MediaError> {
    use nokhwa::pixel_format::RgbAFormat;
    use nokhwa::utils::{
        ApiBackend, CameraFormat, FrameFormat, RequestedFormat, RequestedFormatType, Resolution,
    };

    let cameras = nokhwa::query(ApiBackend::Auto).map_err(|e| MediaError::Open {
        key: key.to_owned(),
        reason: e.to_string(),
    })?;
    let info = cameras
        .into_iter()
        .find(|c| {
            let bus = c.description().trim();
            let k = if bus.is_empty() {
                format!("camera:{}", c.human_name())
            } else {
                format!("camera:{}@{bus}", c.human_name())
            };
            k == key
        })
        .ok_or_else(|| MediaError::NotFound(key.to_owned()))?;
    let requested =
        RequestedFormat::new::<RgbAFormat>(RequestedFormatType::Closest(CameraFormat::new(
            Resolution::new(format.width, format.height),
            FrameFormat::MJPEG,
            format.fps,
        )));
    let index = info.index().clone();
    let (ready_tx, ready_rx) = std::sync::mpsc::channel();
    let (stop, delivered, dropped) = (
        running.stop.clone(),
        running.delivered.clone(),
        running.dropped.clone(),
    );
    let key_owned = key.to_owned();
    std::thread::Builder::new()
        .name("confab-camera".into())
        .spawn(move || {
            // The camera handle stays on this thread for its whole life.
            let mut camera = match nokhwa::Camera::new(index, requested).and_then(|mut c| c.open_stream().map(|_| c)) {
                Ok(c) => {
                    let _ = ready_tx.send(Ok(()));
                    c
                }
                Err(e) => {
                    let _ = ready_tx.send(Err(e.to_string()));
                    return;
                }
            };
            let mut sequence = 0;
            while !stop.load(Ordering::Relaxed) && !consumer.is_closed() {
                let Ok(buffer) = camera.frame() else {
                    tracing::warn!(target: "devices", key = %key_owned, "camera stopped delivering frames");
                    break;
                };
                let Ok(image) = buffer.decode_image::<RgbAFormat>() else { continue };
                let frame = Frame {
                    width: image.width(),
                    height: image.height(),
                    sequence,
                    captured_at_ms: now_ms(),
                    rgba: image.into_raw(),
                };
                sequence += 1;
                match consumer.try_send(frame) {
                    Ok(()) => delivered.fetch_add(1, Ordering::Relaxed),
                    Err(_) => dropped.fetch_add(1, Ordering::Relaxed),
                };
            }
            let _ = camera.stop_stream();
        })
        .map_err(|e| MediaError::Open { key: key.to_owned(), reason: e.to_string() })?;
    match ready_rx.recv_timeout(Duration::from_secs(5)) {
        Ok(Ok(())) => Ok(running),
        Ok(Err(reason)) => Err(MediaError::Open {
            key: key.to_owned(),
            reason,
        }),
        Err(_) => Err(MediaError::Open {
            key: key.to_owned(),
            reason: "the camera did not start within 5 s".into(),
        }),
    }
}

/// The cpal device of a microphone or speaker key as the catalog lists it (`default` for the
/// system's default), for code that opens its own streams (the call's audio). `None` when it
/// is not connected; fake keys have no cpal device.
pub fn cpal_audio_device(kind: DeviceKind, key: &str) -> Option<cpal::Device> {
    audio_device(kind, key)
}

/// Sends the microphone's level (RMS and peak, dBFS) `updates_per_second` times a second.
pub fn start_microphone_level(
    key: &str,
    updates_per_second: u32,
    consumer: mpsc::Sender<AudioLevel>,
) -> Result<Running, MediaError> {
    let running = Running::new();
    let (stop, delivered) = (running.stop.clone(), running.delivered.clone());
    if key == FAKE_MICROPHONE_KEY {
        let rate = 48_000;
        std::thread::Builder::new()
            .name("confab-fake-microphone".into())
            .spawn(move || {
                let mut tone = Tone::new(fake_tone_hz(), rate, 0.25);
                let mut meter = LevelMeter::new(rate, 1, updates_per_second);
                let chunk = (rate / updates_per_second.max(1)) as usize;
                let mut samples = vec![0.0; chunk];
                let period = Duration::from_secs_f64(chunk as f64 / f64::from(rate));
                let mut beat = Beat::new(period);
                while !stop.load(Ordering::Relaxed) && !consumer.is_closed() {
                    tone.fill(&mut samples, 1);
                    meter.push(&samples, |level| {
                        if consumer.try_send(level).is_ok() {
                            delivered.fetch_add(1, Ordering::Relaxed);
                        }
                    });
                    beat.wait();
                }
            })
            .map_err(|e| MediaError::Open {
                key: key.to_owned(),
                reason: e.to_string(),
            })?;
        return Ok(running);
    }
    let device = audio_device(DeviceKind::Microphone, key)
        .ok_or_else(|| MediaError::NotFound(key.to_owned()))?;
    let open_err = |reason: String| MediaError::Open {
        key: key.to_owned(),
        reason,
    };
    let config = device
        .default_input_config()
        .map_err(|e| open_err(e.to_string()))?;
    let (ready_tx, ready_rx) = std::sync::mpsc::channel();
    std::thread::Builder::new()
        .name("confab-microphone".into())
        .spawn(move || {
            // cpal streams are not Send: build, run and drop this one on this thread.
            let mut meter = LevelMeter::new(config.sample_rate(), config.channels(), updates_per_second);
            let mut emit = move |samples: &[f32]| {
                meter.push(samples, |level| {
                    if consumer.try_send(level).is_ok() {
                        delivered.fetch_add(1, Ordering::Relaxed);
                    }
                })
            };
            let on_error = |e: cpal::Error| tracing::warn!(target: "devices", error = %e, "microphone stream error");
            let stream = match config.sample_format() {
                cpal::SampleFormat::F32 => device.build_input_stream(
                    config.config(),
                    move |data: &[f32], _: &cpal::InputCallbackInfo| emit(data),
                    on_error,
                    None,
                ),
                cpal::SampleFormat::I16 => {
                    let mut converted = Vec::new();
                    device.build_input_stream(
                        config.config(),
                        move |data: &[i16], _: &cpal::InputCallbackInfo| {
                            converted.clear();
                            converted.extend(data.iter().map(|s| f32::from(*s) / 32768.0));
                            emit(&converted)
                        },
                        on_error,
                        None,
                    )
                }
                other => {
                    let _ = ready_tx.send(Err(format!("sample format {other:?} is not supported")));
                    return;
                }
            };
            let stream = match stream {
                Ok(s) => s,
                Err(e) => {
                    let _ = ready_tx.send(Err(e.to_string()));
                    return;
                }
            };
            if let Err(e) = stream.play() {
                let _ = ready_tx.send(Err(e.to_string()));
                return;
            }
            let _ = ready_tx.send(Ok(()));
            while !stop.load(Ordering::Relaxed) {
                std::thread::sleep(Duration::from_millis(20));
            }
            drop(stream);
        })
        .map_err(|e| open_err(e.to_string()))?;
    match ready_rx.recv_timeout(Duration::from_secs(5)) {
        Ok(Ok(())) => Ok(running),
        Ok(Err(reason)) => Err(open_err(reason)),
        Err(_) => Err(open_err("the microphone did not start within 5 s".into())),
    }
}

/// Plays a 440 Hz tone on a speaker for `duration`; returns how many frames it played.
pub fn play_test_tone(key: &str, duration: Duration) -> Result<u64, MediaError> {
    let device = audio_device(DeviceKind::Speaker, key)
        .ok_or_else(|| MediaError::NotFound(key.to_owned()))?;
    let open_err = |reason: String| MediaError::Open {
        key: key.to_owned(),
        reason,
    };
    let config = device
        .default_output_config()
        .map_err(|e| open_err(e.to_string()))?;
    let channels = config.channels() as usize;
    let played = Arc::new(AtomicU64::new(0));
    let counter = played.clone();
    let mut tone = Tone::new(440.0, config.sample_rate(), 0.2);
    let on_error =
        |e: cpal::Error| tracing::warn!(target: "devices", error = %e, "speaker stream error");
    let stream = match config.sample_format() {
        cpal::SampleFormat::F32 => device.build_output_stream(
            config.config(),
            move |data: &mut [f32], _: &cpal::OutputCallbackInfo| {
                tone.fill(data, channels);
                counter.fetch_add((data.len() / channels.max(1)) as u64, Ordering::Relaxed);
            },
            on_error,
            None,
        ),
        cpal::SampleFormat::I16 => {
            let mut scratch = Vec::new();
            device.build_output_stream(
                config.config(),
                move |data: &mut [i16], _: &cpal::OutputCallbackInfo| {
                    scratch.resize(data.len(), 0.0);
                    tone.fill(&mut scratch, channels);
                    for (out, s) in data.iter_mut().zip(&scratch) {
                        *out = (s * 32767.0) as i16;
                    }
                    counter.fetch_add((data.len() / channels.max(1)) as u64, Ordering::Relaxed);
                },
                on_error,
                None,
            )
        }
        other => {
            return Err(open_err(format!(
                "sample format {other:?} is not supported"
            )))
        }
    }
    .map_err(|e| open_err(e.to_string()))?;
    stream.play().map_err(|e| open_err(e.to_string()))?;
    std::thread::sleep(duration);
    drop(stream);
    Ok(played.load(Ordering::Relaxed))
}
