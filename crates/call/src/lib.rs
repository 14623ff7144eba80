//! `confab-call`: a call's media in the app (see docs/call-media.md).
//!
//! [`CallMedia::start`] runs one task that owns the SFU session: it connects (again and again,
//! with a countdown, while the SFU cannot be reached), publishes the microphone and the
//! camera, plays what it receives, hands video on still encoded to a [`MediaSink`] (the page),
//! and keeps the [`MediaView`] the page draws. Handles send it requests.

pub mod audio;
pub mod frames;
pub mod rust_decode;
pub mod screen;
pub mod video;
mod view;

use std::collections::HashMap;
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use confab_client::media::{
    frame_size, CallEvent, CallSession, CallSessionOptions, ConnectionQuality, LocalTrack,
    MediaKind, RemoteFrame, RemoteTrack, SfuCredentials, TrackSpec, VideoCodec,
};
use tokio::sync::{mpsc, oneshot, watch};

pub use confab_audio::AudioSettings;
pub use view::{
    AudioTrackView, LocalView, MediaState, MediaView, ParticipantView, TrackStatsView,
    VideoTrackView,
};

use audio::{AudioEngine, AudioFault, OpusPacket};
use video::{CameraSender, CameraStopped};

/// Where the page is: views and video frames go there. Called from the media task; must not
/// block (a page that falls behind should lose frames, not stall the call).
pub trait MediaSink: Send + Sync + 'static {
    fn view(&self, view: &MediaView);
    fn video_frame(&self, message: Vec<u8>);
}

/// A sink that drops everything (before the page attaches).
struct NoSink;

impl MediaSink for NoSink {
    fn view(&self, _: &MediaView) {}
    fn video_frame(&self, _: Vec<u8>) {}
}

/// How to reach the call's media.
#[derive(Debug, Clone)]
pub enum MediaAccess {
    /// A LiveKit-protocol SFU (Confab's coordinator, or a livekit-server cluster).
    Sfu(SfuCredentials),
    /// A service whose media protocol Confab does not speak: the reason, for the page.
    Unsupported(String),
}

impl MediaAccess {
    /// Reads the coordinator's join answer: Confab's coordinator (and a livekit-server
    /// cluster behind it) hands out a LiveKit signalling endpoint, `…/rtc/v1`; Stream's
    /// service hands out its own SFU, whose protocol Confab does not speak.
    pub fn from_credentials(credentials: Option<&confab_protocol::CallCredentials>) -> Self {
        match credentials {
            Some(c) if c.server.ws_endpoint.trim_end_matches('/').ends_with("/rtc/v1") => {
                MediaAccess::Sfu(c.into())
            }
            Some(_) => MediaAccess::Unsupported(
                "Media on Stream's service isn't supported yet: you're in the call without audio or video.".to_owned(),
            ),
            None => MediaAccess::Unsupported(
                "The service gave no media credentials for this call: you're in it without audio or video.".to_owned(),
            ),
        }
    }
}

/// The devices the call starts with (device keys as confab-devices lists them).
#[derive(Debug, Clone)]
pub struct CallDevices {
    pub camera: String,
    pub microphone: String,
    pub speaker: String,
}

#[derive(Debug, Clone)]
pub struct CallMediaOptions {
    pub devices: CallDevices,
    pub identity: String,
    pub name: String,
    pub microphone_muted: bool,
    pub camera_enabled: bool,
    pub audio: AudioSettings,
    /// Whether to send the camera and microphone. A livestream's viewers only receive: no
    /// device of theirs opens but the speaker.
    pub publish: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeviceRole {
    Camera,
    Microphone,
    Speaker,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CallMediaError {
    #[error("{0}")]
    Device(String),
    #[error("the call's media has ended")]
    Ended,
    #[error("{0}")]
    Share(#[from] confab_screen::ScreenError),
    #[error("sharing starts once the call's media is connected")]
    NotConnected,
    #[error("your screen could not be shared: {0}")]
    ShareRefused(String),
}

impl CallMediaError {
    /// A stable code for the page.
    pub fn code(&self) -> &'static str {
        match self {
            CallMediaError::Device(_) => "device_unavailable",
            CallMediaError::Ended => "call_media_ended",
            CallMediaError::Share(e) => e.code(),
            CallMediaError::NotConnected => "not_connected",
            CallMediaError::ShareRefused(_) => "share_refused",
        }
    }
}

enum Command {
    SetMicrophoneMuted(bool, oneshot::Sender<MediaView>),
    SetCameraEnabled(bool, oneshot::Sender<MediaView>),
    VideoView {
        track_sid: String,
        width: u32,
        height: u32,
    },
    KeyframeWanted(String),
    StartShare {
        source_id: String,
        title: String,
        reply: oneshot::Sender<Result<MediaView, CallMediaError>>,
    },
    StopShare(oneshot::Sender<MediaView>),
    ShareStats(oneshot::Sender<Option<screen::ShareStats>>),
    Switch(
        DeviceRole,
        String,
        oneshot::Sender<Result<(), CallMediaError>>,
    ),
    Stats(oneshot::Sender<Vec<TrackStatsView>>),
    SetAudio(AudioSettings),
    DecodeInRust(bool),
    SimulateCameraFailure,
    Attach(Arc<dyn MediaSink>),
    Stop(oneshot::Sender<()>),
}

/// What the task's own helpers (the camera's thread, the audio engine) report.
enum Internal {
    CameraStopped(CameraStopped),
    ShareStopped(screen::ShareStopped),
    Audio(AudioFault),
    AudioStarted(Result<AudioEngine, audio::AudioError>),
    /// A microphone switch finished: `None` when it worked, else why not.
    MicrophoneSwitched(Option<String>),
    /// A capture to share was opened (or not): on Wayland after the desktop's dialog, which
    /// the call does not wait for. `reply` is the page's request; none when sharing again
    /// after a reconnect.
    ShareOpened {
        source_id: String,
        title: String,
        opened: Result<screen::OpenedCapture, CallMediaError>,
        reply: Option<oneshot::Sender<Result<MediaView, CallMediaError>>>,
    },
}

/// A handle on a call's media. Cheap to clone; [`CallMedia::stop`] ends it.
#[derive(Clone)]
pub struct CallMedia {
    commands: mpsc::Sender<Command>,
    view: watch::Receiver<MediaView>,
}

impl std::fmt::Debug for CallMedia {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CallMedia").finish_non_exhaustive()
    }
}

impl CallMedia {
    /// Starts the call's media on the current tokio runtime.
    pub fn start(access: MediaAccess, options: CallMediaOptions) -> Self {
        let (commands, requests) = mpsc::channel(64);
        let first = MediaView::new(
            &options.identity,
            &options.name,
            options.microphone_muted,
            options.camera_enabled,
        );
        let mut first = first;
        if let MediaAccess::Unsupported(reason) = &access {
            first.media = MediaState::Unsupported;
            first.message = Some(reason.clone());
        }
        let (view_tx, view) = watch::channel(first);
        tokio::spawn(run(access, options, requests, view_tx));
        Self { commands, view }
    }

    /// The view as it is now.
    pub fn view(&self) -> MediaView {
        self.view.borrow().clone()
    }

    /// Changes of the view.
    pub fn watch(&self) -> watch::Receiver<MediaView> {
        self.view.clone()
    }

    /// Sends views and frames to `sink` from now on (the current view at once).
    pub async fn attach(&self, sink: Arc<dyn MediaSink>) {
        let _ = self.commands.send(Command::Attach(sink)).await;
    }

    async fn ask<T>(&self, make: impl FnOnce(oneshot::Sender<T>) -> Command) -> Option<T> {
        let (reply, answer) = oneshot::channel();
        self.commands.send(make(reply)).await.ok()?;
        answer.await.ok()
    }

    pub async fn set_microphone_muted(&self, muted: bool) -> Result<MediaView, CallMediaError> {
        self.ask(|r| Command::SetMicrophoneMuted(muted, r))
            .await
            .ok_or(CallMediaError::Ended)
    }

    pub async fn set_camera_enabled(&self, enabled: bool) -> Result<MediaView, CallMediaError> {
        self.ask(|r| Command::SetCameraEnabled(enabled, r))
            .await
            .ok_or(CallMediaError::Ended)
    }

    /// The size a remote video is shown at, in device pixels; `0x0` when it is not visible
    /// (it is then unsubscribed: nothing is received or decoded for it).
    pub async fn set_video_view(&self, track_sid: &str, width: u32, height: u32) {
        let _ = self
            .commands
            .send(Command::VideoView {
                track_sid: track_sid.to_owned(),
                width,
                height,
            })
            .await;
    }

    /// The page's decoder of a remote video lost its place (an error, a backlog it dropped):
    /// asks the publisher for a keyframe instead of waiting for one it may never send.
    pub async fn request_keyframe(&self, track_sid: &str) {
        let _ = self
            .commands
            .send(Command::KeyframeWanted(track_sid.to_owned()))
            .await;
    }

    /// Shares a screen or window (an id from confab-screen's list) as a second video track,
    /// marked as a screen share; `title` is what your own view calls it.
    pub async fn start_share(
        &self,
        source_id: &str,
        title: &str,
    ) -> Result<MediaView, CallMediaError> {
        self.ask(|reply| Command::StartShare {
            source_id: source_id.to_owned(),
            title: title.to_owned(),
            reply,
        })
        .await
        .unwrap_or(Err(CallMediaError::Ended))
    }

    /// Stops sharing: the others' tile of it goes.
    pub async fn stop_share(&self) -> Result<MediaView, CallMediaError> {
        self.ask(Command::StopShare)
            .await
            .ok_or(CallMediaError::Ended)
    }

    /// Figures of the running share, if any (benchmarks).
    pub async fn share_stats(&self) -> Option<screen::ShareStats> {
        self.ask(Command::ShareStats).await.flatten()
    }

    /// Changes a device during the call.
    pub async fn switch_device(&self, role: DeviceRole, key: &str) -> Result<(), CallMediaError> {
        self.ask(|r| Command::Switch(role, key.to_owned(), r))
            .await
            .unwrap_or(Err(CallMediaError::Ended))
    }

    /// Decodes H.264 in Rust and sends the page pictures (for a webview without WebCodecs'
    /// `VideoDecoder`); off again sends frames still encoded.
    pub async fn set_decode_in_rust(&self, enabled: bool) {
        let _ = self.commands.send(Command::DecodeInRust(enabled)).await;
    }

    /// Makes the camera stop as an unplugged one does (tests of the fault).
    pub async fn simulate_camera_failure(&self) {
        let _ = self.commands.send(Command::SimulateCameraFailure).await;
    }

    pub async fn set_audio_settings(&self, settings: AudioSettings) {
        let _ = self.commands.send(Command::SetAudio(settings)).await;
    }

    pub async fn stats(&self) -> Vec<TrackStatsView> {
        self.ask(Command::Stats).await.unwrap_or_default()
    }

    /// Leaves the SFU and stops the devices.
    pub async fn stop(&self) {
        let _ = self.ask(Command::Stop).await;
    }
}

/// How long to wait before the next attempt to reach the SFU: 1, 2, 4, then 8 s.
fn connect_delay(attempt: u32) -> Duration {
    Duration::from_secs(1u64 << attempt.saturating_sub(1).min(3))
}

/// A remote video track's figures for the stats panel.
#[derive(Default)]
struct IncomingVideo {
    size: Option<(u32, u32)>,
    frames_this_second: u32,
    second_started: Option<Instant>,
    fps: Option<f32>,
}

/// The task's state.
struct Media {
    options: CallMediaOptions,
    view: MediaView,
    view_tx: watch::Sender<MediaView>,
    sink: rust_decode::SharedSink,
    rust_decoder: Option<rust_decode::RustDecoder>,
    internal: mpsc::UnboundedSender<Internal>,
    /// Opening and closing audio devices blocks (up to seconds): done on blocking threads.
    audio: Option<Arc<AudioEngine>>,
    /// The microphone's published track, where the audio engine's thread sends its packets.
    audio_track_slot: Arc<Mutex<Option<LocalTrack>>>,
    video_track: Option<LocalTrack>,
    camera: Option<CameraSender>,
    /// The shared screen: its sender and track, and what to share again after a rejoin.
    screen: Option<screen::ScreenSender>,
    screen_track: Option<LocalTrack>,
    share_choice: Option<(String, String)>,
    /// Remote videos shown at a size (absent: not told yet, so sent).
    video_sizes: HashMap<String, (u32, u32)>,
    incoming: HashMap<String, IncomingVideo>,
    bandwidth_bps: Option<u64>,
}

async fn run(
    access: MediaAccess,
    options: CallMediaOptions,
    mut commands: mpsc::Receiver<Command>,
    view_tx: watch::Sender<MediaView>,
) {
    let (internal, mut internal_rx) = mpsc::unbounded_channel();
    let first = view_tx.borrow().clone();
    let mut media = Media {
        view: first,
        options,
        view_tx,
        sink: Arc::new(RwLock::new(Arc::new(NoSink))),
        rust_decoder: None,
        internal,
        audio: None,
        audio_track_slot: Arc::default(),
        video_track: None,
        camera: None,
        screen: None,
        screen_track: None,
        share_choice: None,
        video_sizes: HashMap::new(),
        incoming: HashMap::new(),
        bandwidth_bps: None,
    };
    let credentials = match access {
        MediaAccess::Sfu(credentials) => credentials,
        MediaAccess::Unsupported(reason) => {
            media.view.media = MediaState::Unsupported;
            media.view.message = Some(reason);
            media.publish();
            media.idle(&mut commands, None).await;
            return;
        }
    };
    media.start_audio();
    let session_options = CallSessionOptions::default()
        .with_bandwidth_estimation(3_000_000)
        // The call comes back by itself however long the SFU is away.
        .with_max_rejoin_attempts(u32::MAX);
    let mut attempt = 0;
    loop {
        let connecting = CallSession::connect(credentials.clone(), session_options.clone());
        let session = tokio::select! {
            result = connecting => result,
            stop = wait_for_stop(&mut commands, &mut media) => {
                media.end(stop).await;
                return;
            }
        };
        let mut session = match session {
            Ok(session) => session,
            Err(e) if e.is_terminal() => {
                tracing::warn!(target: "confab::call", error = %e, "the SFU refused the call's media");
                media.view.media = MediaState::Failed;
                media.view.message = Some(format!("Audio and video are not available: {e}"));
                media.publish();
                media.idle(&mut commands, None).await;
                return;
            }
            Err(e) => {
                attempt += 1;
                let delay = connect_delay(attempt);
                tracing::info!(target: "confab::call", attempt, error = %e, "the SFU could not be reached");
                media.view.media = MediaState::Reconnecting;
                media.view.attempt = attempt;
                media.view.retry_in_ms = delay.as_millis() as u64;
                media.publish();
                let wait = tokio::time::sleep(delay);
                tokio::pin!(wait);
                loop {
                    tokio::select! {
                        _ = &mut wait => break,
                        command = commands.recv() => match command {
                            None => return media.end(None).await,
                            Some(Command::Stop(reply)) => return media.end(Some(reply)).await,
                            Some(command) => media.command(command, None).await,
                        },
                    }
                }
                continue;
            }
        };
        attempt = 0;
        media.view.media = MediaState::Connected;
        media.view.attempt = 0;
        media.view.retry_in_ms = 0;
        media.publish();
        media.publish_tracks(&session).await;
        let mut tick = tokio::time::interval(Duration::from_millis(200));
        loop {
            tokio::select! {
                command = commands.recv() => match command {
                    None => { session.leave().await; return media.end(None).await; }
                    Some(Command::Stop(reply)) => {
                        media.drop_devices();
                        session.leave().await;
                        return media.end(Some(reply)).await;
                    }
                    Some(command) => media.command(command, Some(&session)).await,
                },
                event = session.next_event() => match event {
                    Some(CallEvent::Disconnected { reason }) => {
                        tracing::info!(target: "confab::call", %reason, "call media disconnected; joining again");
                        media.lost_session();
                        break;
                    }
                    None => {
                        media.lost_session();
                        break;
                    }
                    Some(event) => media.event(event, &session).await,
                },
                Some(report) = internal_rx.recv() => media.internal(report, &session).await,
                _ = tick.tick() => media.tick(),
            }
        }
    }
}

/// Waits for a stop request while connecting, answering the others.
async fn wait_for_stop(
    commands: &mut mpsc::Receiver<Command>,
    media: &mut Media,
) -> Option<oneshot::Sender<()>> {
    loop {
        match commands.recv().await {
            None => return None,
            Some(Command::Stop(reply)) => return Some(reply),
            Some(command) => media.command(command, None).await,
        }
    }
}

impl Media {
    /// Sends the view to the page and the watchers, if it changed.
    fn publish(&mut self) {
        let changed = self.view_tx.send_if_modified(|shown| {
            if *shown == self.view {
                false
            } else {
                *shown = self.view.clone();
                true
            }
        });
        if changed {
            self.sink().view(&self.view);
        }
    }

    fn audio_track(&self) -> Option<LocalTrack> {
        self.audio_track_slot
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    fn sink(&self) -> Arc<dyn MediaSink> {
        self.sink.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    fn start_audio(&mut self) {
        let slot = self.audio_track_slot.clone();
        let send = Box::new(move |packet: OpusPacket| {
            let track = slot.lock().unwrap_or_else(|p| p.into_inner()).clone();
            if let Some(track) = track {
                // A full queue drops the packet; Opus conceals a lost 20 ms.
                let _ = track.send_frame(confab_client::media::EncodedFrame {
                    data: packet.data.into(),
                    timestamp: packet.timestamp,
                    rid: None,
                    audio_level: Some(packet.audio_level),
                });
            }
        });
        let internal = self.internal.clone();
        let faults = Box::new(move |fault: AudioFault| {
            let _ = internal.send(Internal::Audio(fault));
        });
        let mut devices = self.options.devices.clone();
        if !self.options.publish {
            devices.microphone.clear();
        }
        let settings = self.options.audio;
        let started = self.internal.clone();
        // Opening devices waits for them (seconds for an idle PulseAudio sink): meanwhile the
        // call connects, and early audio frames are dropped.
        tokio::task::spawn_blocking(move || {
            let engine = AudioEngine::start(
                &devices.speaker,
                &devices.microphone,
                settings,
                send,
                faults,
            );
            let _ = started.send(Internal::AudioStarted(engine));
        });
    }

    /// Publishes the microphone and the camera (after each join: a rejoin republishes them
    /// itself, so this runs once per session object).
    async fn publish_tracks(&mut self, session: &CallSession) {
        if !self.options.publish {
            return;
        }
        if self.audio_track().is_none() {
            let mut spec = TrackSpec::microphone();
            spec.muted = self.view.local.microphone_muted;
            match session.publish(spec).await {
                Ok(track) => {
                    *self
                        .audio_track_slot
                        .lock()
                        .unwrap_or_else(|p| p.into_inner()) = Some(track);
                }
                Err(e) => {
                    self.view.local.microphone_error =
                        Some(format!("Your microphone could not be shared: {e}"))
                }
            }
        }
        if self.video_track.is_none() {
            let mut spec = TrackSpec::camera(
                VideoCodec::H264,
                video::CAMERA_FORMAT.width,
                video::CAMERA_FORMAT.height,
            );
            spec.layers = video::layers();
            spec.muted = !self.view.local.camera_enabled;
            match session.publish(spec).await {
                Ok(track) => self.video_track = Some(track),
                Err(e) => {
                    self.view.local.camera_error =
                        Some(format!("Your camera could not be shared: {e}"))
                }
            }
        }
        if self.view.local.camera_enabled && self.camera.is_none() {
            self.start_camera();
        }
        if self.screen.is_none() {
            // Taken while it opens, so a second reconnect meanwhile does not open it twice.
            if let Some((source_id, title)) = self.share_choice.take() {
                self.open_share(source_id, title, None);
            }
        }
        self.publish();
    }

    /// Opens a capture of `source_id` off the call task and reports it as
    /// [`Internal::ShareOpened`]: on Wayland opening waits on the desktop's dialog for as long
    /// as the user takes, and the call goes on meanwhile.
    fn open_share(
        &self,
        source_id: String,
        title: String,
        reply: Option<oneshot::Sender<Result<MediaView, CallMediaError>>>,
    ) {
        let internal = self.internal.clone();
        tokio::spawn(async move {
            let id = source_id.clone();
            let opened = tokio::task::spawn_blocking(move || screen::open_capture(&id))
                .await
                .map_err(|e| CallMediaError::ShareRefused(e.to_string()))
                .and_then(|opened| opened.map_err(CallMediaError::from));
            let _ = internal.send(Internal::ShareOpened {
                source_id,
                title,
                opened,
                reply,
            });
        });
    }

    /// Publishes an opened capture as the share (replacing one running).
    async fn finish_share(
        &mut self,
        session: &CallSession,
        opened: screen::OpenedCapture,
        source_id: &str,
        title: &str,
    ) -> Result<(), CallMediaError> {
        self.stop_share().await;
        let (width, height) = opened.size();
        // On Wayland the portal's dialog chose; the page could not name it beforehand.
        let title = opened.label().unwrap_or(title).to_owned();
        let resume_id = opened.resume_id().unwrap_or(source_id).to_owned();
        let track = session
            .publish(screen::share_track_spec(width, height))
            .await
            .map_err(|e| CallMediaError::ShareRefused(e.to_string()))?;
        let internal = self.internal.clone();
        let stopped = Box::new(move |why| {
            let _ = internal.send(Internal::ShareStopped(why));
        });
        match screen::ScreenSender::start(opened, track.clone(), stopped) {
            Ok(sender) => {
                self.screen = Some(sender);
                self.screen_track = Some(track);
                self.share_choice = Some((resume_id, title.clone()));
                self.view.local.sharing = Some(title);
                self.view.local.share_error = None;
                Ok(())
            }
            Err(e) => {
                track.unpublish().await;
                Err(e.into())
            }
        }
    }

    async fn stop_share(&mut self) {
        self.screen = None;
        self.share_choice = None;
        self.view.local.sharing = None;
        if let Some(track) = self.screen_track.take() {
            track.unpublish().await;
        }
    }

    /// The share stopped by itself: the others are told (its track goes), and you are.
    fn share_stopped(&mut self, message: String) {
        self.screen = None;
        self.share_choice = None;
        self.view.local.sharing = None;
        self.view.local.share_error = Some(message);
        if let Some(track) = self.screen_track.take() {
            tokio::spawn(async move { track.unpublish().await });
        }
    }

    fn start_camera(&mut self) {
        let Some(track) = self.video_track.clone() else {
            return;
        };
        let internal = self.internal.clone();
        let stopped = Box::new(move |why| {
            let _ = internal.send(Internal::CameraStopped(why));
        });
        match CameraSender::start(&self.options.devices.camera, track, stopped) {
            Ok(camera) => {
                if let Some(bps) = self.bandwidth_bps {
                    camera.set_budget(bps);
                }
                self.camera = Some(camera);
                self.view.local.camera_error = None;
            }
            Err(e) => {
                tracing::warn!(target: "confab::call", error = %e, "the camera could not start");
                self.camera_failed(format!(
                    "Your camera could not start ({e}): it is off for everyone."
                ));
            }
        }
    }

    fn camera_failed(&mut self, message: String) {
        self.camera = None;
        self.view.local.camera_enabled = false;
        self.view.local.camera_error = Some(message);
        if let Some(track) = self.video_track.clone() {
            tokio::spawn(async move { track.set_muted(true).await });
        }
    }

    fn drop_devices(&mut self) {
        self.camera = None;
        self.screen = None;
        if let Some(audio) = self.audio.take() {
            // Closing a PulseAudio stream can take a second.
            tokio::task::spawn_blocking(move || drop(audio));
        }
    }

    /// The session ended by itself: a new one is made, which publishes afresh.
    fn lost_session(&mut self) {
        self.camera = None;
        self.video_track = None;
        // Shared again (share_choice) once a new session is joined.
        self.screen = None;
        self.screen_track = None;
        *self
            .audio_track_slot
            .lock()
            .unwrap_or_else(|p| p.into_inner()) = None;
        for participant in std::mem::take(&mut self.view.participants) {
            if let Some(audio) = &self.audio {
                audio.remove_remote(&participant.identity);
            }
        }
        self.view.dominant_speaker = None;
        self.view.media = MediaState::Reconnecting;
        self.view.attempt = 1;
        self.view.retry_in_ms = 0;
        self.publish();
    }

    async fn end(&mut self, reply: Option<oneshot::Sender<()>>) {
        self.drop_devices();
        self.view.media = MediaState::Ended;
        self.view.participants.clear();
        self.publish();
        if let Some(reply) = reply {
            let _ = reply.send(());
        }
    }

    /// Answers requests without a session, until stopped.
    async fn idle(
        &mut self,
        commands: &mut mpsc::Receiver<Command>,
        session: Option<&CallSession>,
    ) {
        while let Some(command) = commands.recv().await {
            if let Command::Stop(reply) = command {
                return self.end(Some(reply)).await;
            }
            self.command(command, session).await;
        }
    }

    async fn command(&mut self, command: Command, session: Option<&CallSession>) {
        match command {
            Command::SetMicrophoneMuted(muted, reply) => {
                self.view.local.microphone_muted = muted;
                if !muted {
                    self.view.local.speaking_while_muted = false;
                }
                if let Some(audio) = &self.audio {
                    audio.set_muted(muted);
                }
                if let Some(track) = self.audio_track() {
                    track.set_muted(muted).await;
                }
                self.publish();
                let _ = reply.send(self.view.clone());
            }
            Command::SetCameraEnabled(enabled, reply) => {
                self.view.local.camera_enabled = enabled;
                if enabled {
                    self.view.local.camera_error = None;
                    if let Some(track) = self.video_track.clone() {
                        track.set_muted(false).await;
                    }
                    if self.camera.is_none() && session.is_some() {
                        self.start_camera();
                    }
                } else {
                    self.camera = None;
                    if let Some(track) = &self.video_track {
                        track.set_muted(true).await;
                    }
                }
                self.publish();
                let _ = reply.send(self.view.clone());
            }
            Command::VideoView {
                track_sid,
                width,
                height,
            } => {
                let before = self.video_sizes.insert(track_sid.clone(), (width, height));
                let Some(session) = session else { return };
                let was_hidden = matches!(before, Some((0, _)) | Some((_, 0)));
                if width == 0 || height == 0 {
                    session.set_subscribed(&track_sid, false).await;
                } else {
                    if was_hidden {
                        session.set_subscribed(&track_sid, true).await;
                    }
                    session.set_video_size(&track_sid, width, height).await;
                }
            }
            Command::StartShare {
                source_id,
                title,
                reply,
            } => {
                if session.is_none() {
                    let _ = reply.send(Err(CallMediaError::NotConnected));
                    return;
                }
                self.open_share(source_id, title, Some(reply));
            }
            Command::StopShare(reply) => {
                self.stop_share().await;
                self.publish();
                let _ = reply.send(self.view.clone());
            }
            Command::ShareStats(reply) => {
                let _ = reply.send(self.screen.as_ref().map(|s| s.stats()));
            }
            Command::KeyframeWanted(track_sid) => {
                if let Some(session) = session {
                    session.request_keyframe(&track_sid).await;
                }
            }
            Command::Switch(role, key, reply) => self.switch(role, key, reply),
            Command::SetAudio(settings) => {
                self.options.audio = settings;
                if let Some(audio) = &self.audio {
                    audio.set_settings(settings);
                }
            }
            Command::Stats(reply) => {
                let rows = match session {
                    Some(session) => self.stats(session).await,
                    None => Vec::new(),
                };
                let _ = reply.send(rows);
            }
            Command::Attach(sink) => {
                *self.sink.write().unwrap_or_else(|p| p.into_inner()) = sink;
                self.sink().view(&self.view);
            }
            Command::SimulateCameraFailure => {
                if let Some(camera) = &self.camera {
                    camera.simulate_camera_failure();
                }
            }
            Command::DecodeInRust(enabled) => {
                self.rust_decoder = if enabled {
                    rust_decode::RustDecoder::start(self.sink.clone())
                } else {
                    None
                };
            }
            Command::Stop(reply) => {
                // Handled by the loops; answered here too in case one forwards it.
                let _ = reply.send(());
            }
        }
    }

    /// Switches a device. Audio devices open on a blocking thread, answering from there, so
    /// the call's frames keep flowing meanwhile.
    fn switch(
        &mut self,
        role: DeviceRole,
        key: String,
        reply: oneshot::Sender<Result<(), CallMediaError>>,
    ) {
        if role == DeviceRole::Camera {
            self.options.devices.camera = key;
            let mut result = Ok(());
            if self.camera.take().is_some() {
                self.start_camera();
                if let Some(error) = &self.view.local.camera_error {
                    result = Err(CallMediaError::Device(error.clone()));
                }
            }
            self.publish();
            let _ = reply.send(result);
            return;
        }
        let Some(audio) = self.audio.clone() else {
            let _ = reply.send(Err(CallMediaError::Device(
                "call audio is not running".to_owned(),
            )));
            return;
        };
        match role {
            DeviceRole::Microphone => self.options.devices.microphone = key.clone(),
            _ => self.options.devices.speaker = key.clone(),
        }
        let internal = self.internal.clone();
        tokio::task::spawn_blocking(move || {
            let result = match role {
                DeviceRole::Microphone => audio.switch_microphone(&key),
                _ => audio.switch_speaker(&key),
            }
            .map_err(|e| CallMediaError::Device(e.to_string()));
            if role == DeviceRole::Microphone {
                let error = result.as_ref().err().map(|e| e.to_string());
                let _ = internal.send(Internal::MicrophoneSwitched(error));
            }
            let _ = reply.send(result);
        });
    }

    async fn internal(&mut self, report: Internal, session: &CallSession) {
        match report {
            Internal::ShareOpened {
                source_id,
                title,
                opened,
                reply,
            } => {
                let result = match opened {
                    Ok(opened) => self.finish_share(session, opened, &source_id, &title).await,
                    Err(e) => Err(e),
                };
                if let Err(e) = &result {
                    tracing::info!(target: "confab::call", error = %e, "screen sharing did not start");
                }
                // Sharing again after a reconnect: a failure is shown like any stop.
                if let (Err(e), None) = (&result, &reply) {
                    self.share_stopped(format!("Sharing stopped: {e}"));
                }
                self.publish();
                if let Some(reply) = reply {
                    let _ = reply.send(result.map(|()| self.view.clone()));
                }
            }
            Internal::CameraStopped(CameraStopped::CameraFailed) => {
                tracing::warn!(target: "confab::call", "the camera stopped during the call");
                self.camera_failed("Your camera stopped: it is off for everyone.".to_owned());
            }
            Internal::CameraStopped(CameraStopped::SessionEnded) => self.camera = None,
            Internal::ShareStopped(screen::ShareStopped::SourceClosed) => {
                tracing::info!(target: "confab::call", "the shared window was closed");
                self.share_stopped("The shared window was closed: sharing stopped.".to_owned());
            }
            Internal::ShareStopped(screen::ShareStopped::EndedByDesktop) => {
                tracing::info!(target: "confab::call", "the desktop ended the screen cast");
                self.share_stopped(
                    "Sharing stopped: the shared window closed, or your desktop ended the share."
                        .to_owned(),
                );
            }
            Internal::ShareStopped(screen::ShareStopped::Failed(reason)) => {
                tracing::warn!(target: "confab::call", %reason, "screen sharing failed");
                self.share_stopped(format!("Sharing stopped: {reason}"));
            }
            Internal::ShareStopped(screen::ShareStopped::SessionEnded) => self.screen = None,
            Internal::Audio(fault) => {
                tracing::warn!(target: "confab::call", ?fault, "call audio device fault");
                self.view.message = Some(fault.to_string());
                if let AudioFault::MicrophoneLost { .. }
                | AudioFault::MicrophoneUnavailable { .. } = fault
                {
                    self.view.local.microphone_error = Some(fault.to_string());
                }
            }
            Internal::AudioStarted(Ok(engine)) => {
                engine.set_muted(self.view.local.microphone_muted);
                engine.set_settings(self.options.audio);
                if self.view.media == MediaState::Ended {
                    tokio::task::spawn_blocking(move || drop(engine));
                } else {
                    self.audio = Some(Arc::new(engine));
                }
            }
            Internal::AudioStarted(Err(e)) => {
                tracing::warn!(target: "confab::call", error = %e, "call audio could not start");
                self.view.local.microphone_error = Some(format!("Audio could not start: {e}"));
            }
            Internal::MicrophoneSwitched(error) => self.view.local.microphone_error = error,
        }
        self.publish();
    }

    fn tick(&mut self) {
        if let Some(audio) = &self.audio {
            let speaking = audio.speaking();
            self.view.local.speaking = speaking && !self.view.local.microphone_muted;
            self.view.local.speaking_while_muted = speaking && self.view.local.microphone_muted;
        }
        self.publish();
    }

    async fn event(&mut self, event: CallEvent, session: &CallSession) {
        match event {
            CallEvent::Frame(frame) => {
                if let Some(track_sid) = self.frame(frame) {
                    session.request_keyframe(&track_sid).await;
                }
                return;
            }
            CallEvent::Joined { .. } => {}
            CallEvent::ParticipantJoined(p) => {
                let mut view = ParticipantView {
                    identity: p.identity.clone(),
                    name: if p.name.is_empty() {
                        p.identity.clone()
                    } else {
                        p.name.clone()
                    },
                    sid: p.sid.clone(),
                    speaking: false,
                    quality: "excellent",
                    audio: None,
                    video: None,
                    screen: None,
                };
                for track in &p.tracks {
                    set_track(&mut view, track);
                }
                self.view.participants.retain(|q| q.identity != p.identity);
                self.view.participants.push(view);
            }
            CallEvent::ParticipantLeft { identity, .. } => {
                self.view.participants.retain(|p| p.identity != identity);
                if let Some(audio) = &self.audio {
                    audio.remove_remote(&identity);
                }
                if self.view.dominant_speaker.as_deref() == Some(identity.as_str()) {
                    self.view.dominant_speaker = None;
                }
            }
            CallEvent::TrackPublished { identity, track } => {
                if let Some(p) = self.view.participant_mut(&identity) {
                    set_track(p, &track);
                }
            }
            CallEvent::TrackUnpublished {
                identity,
                track_sid,
            } => {
                if let Some(p) = self.view.participant_mut(&identity) {
                    if p.audio.as_ref().is_some_and(|a| a.track_sid == track_sid) {
                        p.audio = None;
                    }
                    if p.video.as_ref().is_some_and(|v| v.track_sid == track_sid) {
                        p.video = None;
                    }
                    if p.screen.as_ref().is_some_and(|v| v.track_sid == track_sid) {
                        p.screen = None;
                    }
                }
                self.incoming.remove(&track_sid);
                self.video_sizes.remove(&track_sid);
            }
            CallEvent::TrackMuted {
                identity,
                track_sid,
                muted,
            } => {
                if let Some(p) = self.view.participant_mut(&identity) {
                    if let Some(a) = p.audio.as_mut().filter(|a| a.track_sid == track_sid) {
                        a.muted = muted;
                    }
                    if let Some(v) = p.video.as_mut().filter(|v| v.track_sid == track_sid) {
                        v.muted = muted;
                    }
                    if let Some(v) = p.screen.as_mut().filter(|v| v.track_sid == track_sid) {
                        v.muted = muted;
                    }
                }
            }
            CallEvent::Speaking {
                identity, speaking, ..
            } => {
                if let Some(p) = self.view.participant_mut(&identity) {
                    p.speaking = speaking;
                }
            }
            CallEvent::DominantSpeaker { identity } => {
                // Only remote speakers take the large tile; you see yourself in yours.
                if identity.as_deref() != Some(session.identity()) {
                    self.view.dominant_speaker = identity;
                }
            }
            CallEvent::Quality {
                identity, quality, ..
            } => {
                if let Some(p) = self.view.participant_mut(&identity) {
                    p.quality = quality_name(quality);
                }
            }
            CallEvent::KeyframeRequested { track_sid, rid } => {
                // Audio has no keyframes: a request not for the microphone's track is for
                // the screen share's or the camera's.
                let audio = self.audio_track().is_some_and(|t| t.sid() == track_sid);
                let shared = self
                    .screen_track
                    .as_ref()
                    .is_some_and(|t| t.sid() == track_sid);
                if shared {
                    if let Some(screen) = &self.screen {
                        screen.request_keyframe();
                    }
                } else if let (false, Some(camera)) = (audio, &self.camera) {
                    camera.request_keyframe(rid.as_deref());
                }
            }
            CallEvent::BandwidthEstimate { bps } => {
                tracing::debug!(target: "confab::call", bps, "send bandwidth estimate");
                self.bandwidth_bps = Some(bps);
                if let Some(camera) = &self.camera {
                    // A screen being shared comes first: the camera's layers fit what is left.
                    let share = self.screen.as_ref().map_or(0, |s| s.bitrate_bps());
                    camera.set_budget(bps.saturating_sub(share).max(1));
                }
            }
            CallEvent::Reconnecting { attempt, retry_in } => {
                self.view.media = MediaState::Reconnecting;
                self.view.attempt = attempt.max(1);
                self.view.retry_in_ms = retry_in.as_millis() as u64;
            }
            CallEvent::Reconnected => {
                self.view.media = MediaState::Connected;
                self.view.attempt = 0;
                self.view.retry_in_ms = 0;
            }
            CallEvent::Disconnected { .. } => {}
        }
        self.publish();
    }

    /// Routes one remote frame; returns a video track whose decoder now waits for a keyframe.
    fn frame(&mut self, frame: RemoteFrame) -> Option<String> {
        match frame.kind {
            MediaKind::Audio => {
                if let Some(audio) = &self.audio {
                    audio.push_remote(
                        &frame.identity,
                        frame.rtp_time,
                        &frame.data,
                        frame.received_at,
                    );
                }
            }
            MediaKind::Video => {
                if matches!(
                    self.video_sizes.get(&frame.track_sid),
                    Some((0, _)) | Some((_, 0))
                ) {
                    return None; // hidden: unsubscribing is under way
                }
                let codec = frames::codec_byte(&frame.mime)?;
                let incoming = self.incoming.entry(frame.track_sid.clone()).or_default();
                if frame.keyframe {
                    let size = match codec {
                        frames::CODEC_VP8 => frame_size::vp8_size(&frame.data),
                        _ => frame_size::h264_size(&frame.data),
                    };
                    if size.is_some() {
                        incoming.size = size;
                    }
                }
                let now = frame.received_at;
                let started = *incoming.second_started.get_or_insert(now);
                incoming.frames_this_second += 1;
                if now.duration_since(started) >= Duration::from_secs(1) {
                    let secs = now.duration_since(started).as_secs_f32();
                    incoming.fps = Some(incoming.frames_this_second as f32 / secs);
                    incoming.frames_this_second = 0;
                    incoming.second_started = Some(now);
                }
                if let Some(decoder) = &mut self.rust_decoder {
                    // Tiles not measured yet get a middling size.
                    let fit = self
                        .video_sizes
                        .get(&frame.track_sid)
                        .copied()
                        .unwrap_or((640, 360));
                    let pushed = decoder.push(
                        codec,
                        &frame.track_sid,
                        frame.keyframe,
                        !frame.contiguous,
                        frame.data,
                        fit,
                    );
                    return (pushed == rust_decode::Pushed::StartedWaitingForKeyframe)
                        .then_some(frame.track_sid);
                }
                let message = frames::video_message(
                    codec,
                    frame.keyframe,
                    !frame.contiguous,
                    frame.rtp_time,
                    &frame.track_sid,
                    &frame.data,
                );
                self.sink().video_frame(message);
            }
        }
        None
    }

    async fn stats(&self, session: &CallSession) -> Vec<TrackStatsView> {
        let stats = session.stats().await;
        let own = session.identity().to_owned();
        let layers = video::layers();
        let mut rows = Vec::new();
        for track in stats.tracks {
            let audio_out = self
                .audio_track()
                .is_some_and(|t| t.sid() == track.track_sid);
            let remote = self.view.participants.iter().find_map(|p| {
                if p.audio
                    .as_ref()
                    .is_some_and(|a| a.track_sid == track.track_sid)
                {
                    Some((p, false))
                } else if [&p.video, &p.screen]
                    .iter()
                    .any(|v| v.as_ref().is_some_and(|v| v.track_sid == track.track_sid))
                {
                    Some((p, true))
                } else {
                    None
                }
            });
            let (identity, kind, codec, size, fps) = if track.outgoing {
                if audio_out {
                    (own.clone(), "audio", "audio/opus".to_owned(), None, None)
                } else if self
                    .screen_track
                    .as_ref()
                    .is_some_and(|t| t.sid() == track.track_sid)
                {
                    let fps = Some(screen::SHARE_SETTINGS.fps as f32);
                    (own.clone(), "video", "video/H264".to_owned(), None, fps)
                } else {
                    let layer = layers.iter().find(|l| Some(&l.rid) == track.rid.as_ref());
                    let fps = self
                        .camera
                        .as_ref()
                        .map(|_| video::CAMERA_FORMAT.fps as f32);
                    (
                        own.clone(),
                        "video",
                        "video/H264".to_owned(),
                        layer.map(|l| (l.width, l.height)),
                        fps,
                    )
                }
            } else {
                match remote {
                    Some((p, false)) => (
                        p.identity.clone(),
                        "audio",
                        "audio/opus".to_owned(),
                        None,
                        None,
                    ),
                    Some((p, true)) => {
                        let incoming = self.incoming.get(&track.track_sid);
                        (
                            p.identity.clone(),
                            "video",
                            [&p.video, &p.screen]
                                .iter()
                                .find_map(|v| v.as_ref().filter(|v| v.track_sid == track.track_sid))
                                .map(|v| v.codec.clone())
                                .unwrap_or_default(),
                            incoming.and_then(|i| i.size),
                            incoming.and_then(|i| i.fps),
                        )
                    }
                    None => continue,
                }
            };
            rows.push(TrackStatsView {
                track_sid: track.track_sid,
                identity,
                direction: if track.outgoing { "out" } else { "in" },
                kind,
                codec,
                rid: track.rid,
                width: size.map(|s| s.0),
                height: size.map(|s| s.1),
                fps,
                bitrate_bps: track.bitrate_bps,
                loss: track.loss,
                rtt_ms: track.rtt.or(stats.rtt).map(|d| d.as_secs_f64() * 1000.0),
                available_bps: if track.outgoing {
                    self.bandwidth_bps
                } else {
                    None
                },
            });
        }
        rows
    }
}

fn quality_name(quality: ConnectionQuality) -> &'static str {
    match quality {
        ConnectionQuality::Excellent => "excellent",
        ConnectionQuality::Good => "good",
        ConnectionQuality::Poor => "poor",
        ConnectionQuality::Lost => "lost",
    }
}

/// Files a remote track under its participant: the microphone as audio, the camera as video,
/// a shared screen as screen (its sound, if a browser shares one, is not played yet).
fn set_track(view: &mut ParticipantView, track: &RemoteTrack) {
    let screen = track.source.to_ascii_lowercase().contains("screen");
    if screen {
        if track.kind == MediaKind::Video {
            view.screen = Some(VideoTrackView {
                track_sid: track.sid.clone(),
                muted: track.muted,
                codec: track.mime.clone(),
                width: track.width,
                height: track.height,
            });
        }
        return;
    }
    match track.kind {
        MediaKind::Audio => {
            view.audio = Some(AudioTrackView {
                track_sid: track.sid.clone(),
                muted: track.muted,
            })
        }
        MediaKind::Video => {
            view.video = Some(VideoTrackView {
                track_sid: track.sid.clone(),
                muted: track.muted,
                codec: track.mime.clone(),
                width: track.width,
                height: track.height,
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reaching_the_sfu_again_backs_off_to_ten_seconds() {
        let delays: Vec<u64> = (1..=6).map(|a| connect_delay(a).as_secs()).collect();
        assert_eq!(delays, vec![1, 2, 4, 8, 8, 8]);
    }
}
