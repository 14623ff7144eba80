//! Going live: camera frames -> H.264 -> 1 s TS segments -> uploaded to the coordinator, which
//! serves the playlist to viewers. One thread encodes (CPU-bound); one task uploads, retrying
//! a failed upload with backoff and saying so in the status.

use confab_protocol::wire;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use confab_devices::media::{start_camera, PreviewFormat};
use serde::Serialize;
use tokio::sync::{mpsc, oneshot, watch};

use crate::encoder::{EncoderSettings, H264Encoder};
use crate::hls::{segment_name, LivePlaylist, Segment, Segmenter};
use crate::ts::CLOCK_HZ;

/// Returns the host's current token (a fresh one when it has expired).
pub type TokenFn =
    Arc<dyn Fn() -> Pin<Box<dyn Future<Output = Result<String, String>> + Send>> + Send + Sync>;

/// Where the broadcast goes: a call on a Stream-compatible coordinator, as its host.
#[derive(Clone)]
pub struct Target {
    /// e.g. `http://127.0.0.1:4880/video`
    pub base_url: String,
    pub api_key: String,
    pub call_type: String,
    pub call_id: String,
    pub token: TokenFn,
}

impl std::fmt::Debug for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Target")
            .field("base_url", &self.base_url)
            .field("call", &format_args!("{}:{}", self.call_type, self.call_id))
            .finish_non_exhaustive()
    }
}

#[derive(Debug, Clone)]
pub struct BroadcastOptions {
    /// A device key from confab-devices (the fake camera's works everywhere).
    pub camera_key: String,
    pub width: u32,
    pub height: u32,
    pub fps: u32,
    pub bitrate_bps: u32,
    pub segment_s: f64,
    /// Segments listed in the live playlist.
    pub window: usize,
    pub first_retry: Duration,
    pub max_retry: Duration,
}

impl Default for BroadcastOptions {
    fn default() -> Self {
        Self {
            camera_key: confab_devices::catalog::FAKE_CAMERA_KEY.into(),
            width: 1280,
            height: 720,
            fps: 30,
            bitrate_bps: 2_500_000,
            segment_s: 1.0,
            window: 6,
            first_retry: Duration::from_millis(250),
            max_retry: Duration::from_secs(4),
        }
    }
}

/// What the host's screen shows about the broadcast.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum BroadcastStatus {
    Starting,
    Live {
        segments: u64,
        playlist_url: String,
    },
    /// An upload failed; the same segment is tried again after a pause.
    Retrying {
        attempt: u32,
        error: String,
    },
    Stopped {
        segments: u64,
    },
    Failed {
        error: String,
    },
}

#[derive(Debug, thiserror::Error)]
pub enum BroadcastError {
    #[error("the camera could not start: {0}")]
    Camera(#[from] confab_devices::media::MediaError),
    #[error("the broadcast settings are not usable: {0}")]
    Settings(String),
}

/// Counters the benchmark and the diagnostics read.
#[derive(Debug, Default)]
pub struct BroadcastStats {
    pub frames_encoded: AtomicU64,
    pub encode_ns: AtomicU64,
    pub segments_uploaded: AtomicU64,
    pub segments_dropped: AtomicU64,
    pub upload_failures: AtomicU64,
}

pub struct Broadcast {
    status: watch::Receiver<BroadcastStatus>,
    stop: Option<oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<()>,
    pub stats: Arc<BroadcastStats>,
}

impl Broadcast {
    pub fn status(&self) -> watch::Receiver<BroadcastStatus> {
        self.status.clone()
    }

    /// Stops the camera, uploads the last segment and the ended playlist, and tells the
    /// coordinator the broadcast is over.
    pub async fn stop(mut self) -> BroadcastStatus {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        let _ = (&mut self.task).await;
        self.status.borrow().clone()
    }
}

impl Drop for Broadcast {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

/// Starts capturing and publishing. The coordinator is told the broadcast runs once the first
/// segment is up, so a viewer never gets an empty playlist.
pub async fn start(target: Target, options: BroadcastOptions) -> Result<Broadcast, BroadcastError> {
    if !(0.25..=10.0).contains(&options.segment_s) || options.fps == 0 || options.fps > 120 {
        return Err(BroadcastError::Settings(
            "segments of 0.25 to 10 s and 1 to 120 frames per second".into(),
        ));
    }
    let stats = Arc::new(BroadcastStats::default());
    let (frames_tx, frames_rx) = mpsc::channel(4);
    let camera = start_camera(
        &options.camera_key,
        PreviewFormat {
            width: options.width,
            height: options.height,
            fps: options.fps,
        },
        frames_tx,
    )?;
    let (segments_tx, segments_rx) = mpsc::channel::<Segment>(32);
    let encoder_stats = stats.clone();
    let encoder_options = options.clone();
    std::thread::Builder::new()
        .name("confab-broadcast-encoder".into())
        .spawn(move || encode_loop(frames_rx, segments_tx, encoder_options, encoder_stats))
        .map_err(|e| BroadcastError::Settings(format!("could not start the encoder: {e}")))?;

    let (status_tx, status_rx) = watch::channel(BroadcastStatus::Starting);
    let (stop_tx, stop_rx) = oneshot::channel();
    let playlist = LivePlaylist::new(options.window);
    let uploader = Uploader {
        http: reqwest::Client::builder()
            .tcp_nodelay(true)
            .timeout(Duration::from_secs(10))
            .build()
            .map_err(|e| BroadcastError::Settings(e.to_string()))?,
        target,
        options,
        status: status_tx,
        stats: stats.clone(),
        playlist,
    };
    let task = tokio::spawn(uploader.run(segments_rx, stop_rx, camera));
    Ok(Broadcast {
        status: status_rx,
        stop: Some(stop_tx),
        task,
        stats,
    })
}

/// Encodes frames until the camera's channel closes, then closes the last segment.
fn encode_loop(
    mut frames: mpsc::Receiver<confab_devices::fake::Frame>,
    segments: mpsc::Sender<Segment>,
    options: BroadcastOptions,
    stats: Arc<BroadcastStats>,
) {
    let settings = EncoderSettings {
        fps: options.fps,
        bitrate_bps: options.bitrate_bps,
        keyframe_interval: ((options.fps as f64 * options.segment_s).round() as u32).max(1),
    };
    let mut encoder: Option<H264Encoder> = None;
    let mut segmenter = Segmenter::new(options.segment_s);
    let mut first_ms: Option<u64> = None;
    let send = |segment: Segment| {
        // A full queue means uploads are failing: drop the oldest news rather than block capture.
        if segments.try_send(segment).is_err() {
            stats.segments_dropped.fetch_add(1, Ordering::Relaxed);
        }
    };
    while let Some(frame) = frames.blocking_recv() {
        if encoder
            .as_ref()
            .is_none_or(|e| e.size() != (frame.width & !1, frame.height & !1))
        {
            match H264Encoder::new(frame.width, frame.height, settings) {
                Ok(e) => encoder = Some(e),
                Err(e) => {
                    tracing::warn!(target: "media", error = %e, "cannot encode this camera's frames");
                    continue;
                }
            }
        }
        let Some(enc) = encoder.as_mut() else {
            continue;
        };
        let started = Instant::now();
        let encoded = enc.encode_rgba(&frame.rgba, frame.width, frame.height, false);
        stats
            .encode_ns
            .fetch_add(started.elapsed().as_nanos() as u64, Ordering::Relaxed);
        match encoded {
            Ok(Some(out)) => {
                stats.frames_encoded.fetch_add(1, Ordering::Relaxed);
                // Timestamps from the capture clock keep playback at the camera's real pace.
                let first = *first_ms.get_or_insert(frame.captured_at_ms);
                let pts = CLOCK_HZ + frame.captured_at_ms.saturating_sub(first) * CLOCK_HZ / 1000;
                if let Some(segment) = segmenter.push(&out.annex_b, pts, out.keyframe) {
                    send(segment);
                }
            }
            Ok(None) => {}
            Err(e) => tracing::warn!(target: "media", error = %e, "a frame failed to encode"),
        }
    }
    if let Some(segment) = segmenter.finish() {
        send(segment);
    }
}

struct Uploader {
    http: reqwest::Client,
    target: Target,
    options: BroadcastOptions,
    status: watch::Sender<BroadcastStatus>,
    stats: Arc<BroadcastStats>,
    playlist: LivePlaylist,
}

#[derive(Debug)]
struct UploadError(String);

impl Uploader {
    async fn run(
        mut self,
        mut segments: mpsc::Receiver<Segment>,
        mut stop: oneshot::Receiver<()>,
        camera: confab_devices::media::Running,
    ) {
        let mut camera = Some(camera);
        loop {
            let segment = tokio::select! {
                s = segments.recv() => s,
                _ = &mut stop, if camera.is_some() => {
                    // Stopping the camera closes the frames channel; the encoder then sends
                    // the last segment and closes the segments channel.
                    camera = None;
                    continue;
                }
            };
            let Some(segment) = segment else { break };
            if !self.publish(&segment, &mut stop, camera.is_none()).await {
                // Stopped while retrying: give up on this and later segments.
                camera = None;
                while segments.recv().await.is_some() {}
                break;
            }
        }
        drop(camera);
        self.finish().await;
    }

    /// Uploads a segment and the playlist naming it, retrying until it works or the broadcast
    /// is stopped. Returns whether it went up.
    async fn publish(
        &mut self,
        segment: &Segment,
        stop: &mut oneshot::Receiver<()>,
        stopping: bool,
    ) -> bool {
        let mut attempt = 0u32;
        let mut delay = self.options.first_retry;
        let mut next_playlist = self.playlist.clone();
        next_playlist.add(segment);
        loop {
            let result = async {
                self.put(
                    &segment_name(segment.sequence),
                    "video/mp2t",
                    segment.bytes.clone(),
                )
                .await?;
                self.put(
                    crate::PLAYLIST,
                    "application/vnd.apple.mpegurl",
                    next_playlist.render().into_bytes(),
                )
                .await?;
                // The coordinator hears the broadcast runs once its first segment is up.
                if !self.running() {
                    self.post("start_broadcasting").await?;
                }
                Ok::<_, UploadError>(())
            }
            .await;
            match result {
                Ok(()) => {
                    self.playlist = next_playlist;
                    let n = self.stats.segments_uploaded.fetch_add(1, Ordering::Relaxed) + 1;
                    self.status.send_replace(BroadcastStatus::Live {
                        segments: n,
                        playlist_url: self.playlist_url(),
                    });
                    return true;
                }
                Err(UploadError(error)) => {
                    attempt += 1;
                    self.stats.upload_failures.fetch_add(1, Ordering::Relaxed);
                    tracing::warn!(target: "media", attempt, %error, "upload failed; retrying");
                    self.status
                        .send_replace(BroadcastStatus::Retrying { attempt, error });
                    if stopping {
                        // Already stopping: one more try at most, then leave it.
                        if attempt >= 2 {
                            return false;
                        }
                        tokio::time::sleep(delay).await;
                    } else {
                        tokio::select! {
                            _ = tokio::time::sleep(delay) => {}
                            _ = &mut *stop => return false,
                        }
                    }
                    delay = (delay * 2).min(self.options.max_retry);
                }
            }
        }
    }

    async fn finish(&mut self) {
        let segments = self.stats.segments_uploaded.load(Ordering::Relaxed);
        if self.running() {
            self.playlist.end();
            let ended = self.playlist.render().into_bytes();
            let sent = async {
                self.put(crate::PLAYLIST, "application/vnd.apple.mpegurl", ended)
                    .await?;
                self.post("stop_broadcasting").await
            }
            .await;
            if let Err(UploadError(error)) = sent {
                tracing::warn!(target: "media", %error, "could not end the broadcast cleanly");
                self.status.send_replace(BroadcastStatus::Failed { error });
                return;
            }
        }
        self.status
            .send_replace(BroadcastStatus::Stopped { segments });
    }

    /// Whether `start_broadcasting` went through: it does with the first uploaded segment.
    fn running(&self) -> bool {
        self.stats.segments_uploaded.load(Ordering::Relaxed) > 0
    }

    fn call_url(&self, tail: &str) -> String {
        format!(
            "{}/call/{}/{}/{tail}?{}={}",
            self.target.base_url.trim_end_matches('/'),
            self.target.call_type,
            self.target.call_id,
            wire::API_KEY_QUERY,
            self.target.api_key
        )
    }

    fn playlist_url(&self) -> String {
        format!(
            "{}/hls/{}/{}/{}",
            self.target.base_url.trim_end_matches('/'),
            self.target.call_type,
            self.target.call_id,
            crate::PLAYLIST
        )
    }

    async fn authorized(&self, request: reqwest::RequestBuilder) -> Result<(), UploadError> {
        let token = (self.target.token)()
            .await
            .map_err(|e| UploadError(format!("no token: {e}")))?;
        let response = request
            .header(wire::AUTHORIZATION_HEADER, token)
            .header(wire::AUTH_TYPE_HEADER, wire::AuthType::Jwt.as_str())
            .send()
            .await
            .map_err(|e| {
                UploadError(if e.is_timeout() {
                    "the coordinator did not answer in time".into()
                } else {
                    "the coordinator could not be reached".into()
                })
            })?;
        let status = response.status();
        if status.is_success() {
            return Ok(());
        }
        let body: serde_json::Value = response.json().await.unwrap_or_default();
        Err(UploadError(format!(
            "the coordinator answered {}: {}",
            status.as_u16(),
            body["message"].as_str().unwrap_or("no reason given")
        )))
    }

    async fn put(&self, name: &str, content_type: &str, bytes: Vec<u8>) -> Result<(), UploadError> {
        let url = self.call_url(&format!("hls/{name}"));
        self.authorized(
            self.http
                .put(url)
                .header("content-type", content_type)
                .body(bytes),
        )
        .await
    }

    async fn post(&self, action: &str) -> Result<(), UploadError> {
        let url = self.call_url(action);
        self.authorized(
            self.http
                .post(url)
                .header("content-type", "application/json")
                .body("{}"),
        )
        .await
    }
}
