//! Screen capture for sharing in calls: what can be shared (screens and windows), a small
//! picture of each for the picker, and a capture thread that delivers frames at a steady rate,
//! dropping (never queueing) the ones its consumer has no time for.
//!
//! On X11 the X server hands over the pixels ([`x11`]: MIT-SHM, and Composite for one
//! window). On Wayland the desktop's portal asks the user what to share, in its own dialog,
//! and hands over a PipeWire stream ([`portal`]). The path is picked from the session at run
//! time ([`display_server`]).

pub mod pattern_window;
mod portal;
mod shm;
mod x11;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde::Serialize;

pub use portal::PORTAL_SOURCE_ID;

/// The display server of this session, which decides how the screen is captured.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum DisplayServer {
    X11,
    Wayland,
    /// Neither (a console, a service): nothing to capture.
    None,
}

/// The session's display server, from its environment: a Wayland session (even one with
/// XWayland, which shows an X client only the X windows) or an X server.
/// `CONFAB_SCREEN_CAPTURE=x11` or `wayland` overrides it.
pub fn display_server() -> DisplayServer {
    let var = |name: &str| std::env::var(name).ok().filter(|v| !v.trim().is_empty());
    match var("CONFAB_SCREEN_CAPTURE").as_deref() {
        Some("x11") => return DisplayServer::X11,
        Some("wayland") => return DisplayServer::Wayland,
        _ => {}
    }
    detect(
        var("WAYLAND_DISPLAY").is_some(),
        var("XDG_SESSION_TYPE").as_deref(),
        var("DISPLAY").is_some(),
    )
}

fn detect(wayland_display: bool, session_type: Option<&str>, x_display: bool) -> DisplayServer {
    if wayland_display || session_type == Some("wayland") {
        DisplayServer::Wayland
    } else if x_display {
        DisplayServer::X11
    } else {
        DisplayServer::None
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SourceKind {
    Screen,
    Window,
    /// The desktop's portal: its own dialog chooses a screen or window (Wayland).
    Portal,
}

/// Something that can be shared.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ShareSource {
    /// Opaque; hand it back to [`thumbnail`] and [`start_capture`].
    pub id: String,
    pub kind: SourceKind,
    pub title: String,
    pub width: u32,
    pub height: u32,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ScreenError {
    #[error("there is no display to capture: this session has neither an X server nor Wayland")]
    NoDisplay,
    #[error("screen sharing was not allowed: the desktop's dialog was cancelled or refused it")]
    PortalDeclined,
    #[error("this desktop has no screen-sharing portal: install xdg-desktop-portal and the one for your desktop (-gnome, -kde or -wlr)")]
    PortalUnavailable,
    #[error("the X server could not be reached: {0}")]
    Unreachable(String),
    #[error("\"{0}\" is not a screen or window that can be shared")]
    UnknownSource(String),
    #[error("that window is no longer open")]
    SourceGone,
    #[error("that window is not shown (minimised?): show it, then share it")]
    SourceHidden,
    #[error("the screen could not be captured: {0}")]
    Capture(String),
}

impl ScreenError {
    /// A stable code for the page.
    pub fn code(&self) -> &'static str {
        match self {
            ScreenError::NoDisplay => "no_display",
            ScreenError::PortalDeclined => "portal_declined",
            ScreenError::PortalUnavailable => "portal_unavailable",
            ScreenError::Unreachable(_) => "display_unreachable",
            ScreenError::UnknownSource(_) => "unknown_source",
            ScreenError::SourceGone => "source_gone",
            ScreenError::SourceHidden => "source_hidden",
            ScreenError::Capture(_) => "capture_failed",
        }
    }
}

impl From<x11::X11Error> for ScreenError {
    fn from(e: x11::X11Error) -> Self {
        match e {
            x11::X11Error::Connect(m) => ScreenError::Unreachable(m),
            x11::X11Error::Gone => ScreenError::SourceGone,
            x11::X11Error::Hidden => ScreenError::SourceHidden,
            other => ScreenError::Capture(other.to_string()),
        }
    }
}

fn x11_session() -> Result<x11::X11, ScreenError> {
    match display_server() {
        DisplayServer::X11 => Ok(x11::X11::connect()?),
        // Only the portal can share here; an X client would see only other X clients.
        DisplayServer::Wayland => Err(ScreenError::UnknownSource(
            "a window of this Wayland session (the desktop's dialog chooses)".into(),
        )),
        DisplayServer::None => Err(ScreenError::NoDisplay),
    }
}

/// The screens and windows that can be shared now, the whole screen first. On Wayland, one
/// source: the desktop's dialog, which lists them itself.
pub fn list_sources() -> Result<Vec<ShareSource>, ScreenError> {
    match display_server() {
        DisplayServer::Wayland => Ok(vec![portal::source()]),
        _ => Ok(x11_session()?.sources()?),
    }
}

/// A small picture of a source for the picker.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Thumbnail {
    pub width: u32,
    pub height: u32,
    pub rgba: Vec<u8>,
}

/// A picture of `source_id` as it is now, scaled to fit `max_width` x `max_height`.
pub fn thumbnail(
    source_id: &str,
    max_width: u32,
    max_height: u32,
) -> Result<Thumbnail, ScreenError> {
    let target = x11::parse_target(source_id)
        .ok_or_else(|| ScreenError::UnknownSource(source_id.to_owned()))?;
    let mut grabber = x11_session()?.grabber(target)?;
    if matches!(target, x11::Target::Window(_)) {
        // A window just given its own off-screen pixmap holds only what was visible of it;
        // the rest comes as its client repaints (at once, on the Expose it is sent).
        std::thread::sleep(Duration::from_millis(120));
    }
    let grab = grabber.grab()?;
    let (width, height) = fit_within(grab.width, grab.height, max_width, max_height);
    let mut bgrx = Vec::new();
    scale_bgrx(grab.bgrx, grab.width, grab.height, &mut bgrx, width, height);
    let mut rgba = bgrx;
    for pixel in rgba.chunks_exact_mut(4) {
        pixel.swap(0, 2);
        pixel[3] = 255;
    }
    Ok(Thumbnail {
        width,
        height,
        rgba,
    })
}

/// One captured frame: BGRX, 4 bytes a pixel, rows without padding.
#[derive(Debug, Clone)]
pub struct ScreenFrame {
    pub width: u32,
    pub height: u32,
    pub bgrx: Vec<u8>,
    pub captured_at: Instant,
    /// Wall-clock milliseconds since the Unix epoch at capture.
    pub captured_unix_ms: u64,
}

#[derive(Debug, Clone, Copy)]
pub struct CaptureSettings {
    pub fps: u32,
    /// Larger sources are scaled down to fit (detail over motion: 1920x1080 at 15 fps).
    pub max_width: u32,
    pub max_height: u32,
}

impl Default for CaptureSettings {
    fn default() -> Self {
        Self {
            fps: 15,
            max_width: 1920,
            max_height: 1080,
        }
    }
}

/// Why a capture stopped by itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CaptureEnded {
    /// The shared window was closed.
    SourceClosed,
    /// The desktop's screen cast ended: its stream went away (on Wayland, the window closed or
    /// sharing was stopped from the desktop; which, the stream does not say).
    EndedByDesktop,
    Failed(String),
}

/// Where the capture leaves frames: room for one, the newest replacing one not yet taken, so
/// a consumer that falls behind always gets the latest picture and never a queue.
#[derive(Debug, Default)]
pub struct FrameSlot {
    state: Mutex<SlotState>,
    filled: Condvar,
}

#[derive(Debug, Default)]
struct SlotState {
    frame: Option<ScreenFrame>,
    closed: bool,
}

impl FrameSlot {
    pub fn new() -> Arc<Self> {
        Arc::new(Self::default())
    }

    /// Leaves a frame; true when it replaced one nobody took.
    fn put(&self, frame: ScreenFrame) -> bool {
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        let replaced = state.frame.replace(frame).is_some();
        self.filled.notify_one();
        replaced
    }

    /// No more frames will come.
    fn close(&self) {
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        state.closed = true;
        self.filled.notify_all();
    }

    /// The newest frame, waiting up to `timeout` for one; `None` on time out or once the
    /// capture has stopped.
    pub fn take_timeout(&self, timeout: Duration) -> Option<ScreenFrame> {
        let deadline = Instant::now() + timeout;
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        loop {
            if let Some(frame) = state.frame.take() {
                return Some(frame);
            }
            let now = Instant::now();
            if state.closed || now >= deadline {
                return None;
            }
            state = self
                .filled
                .wait_timeout(state, deadline - now)
                .unwrap_or_else(|p| p.into_inner())
                .0;
        }
    }

    /// Whether the capture has stopped (a frame may still wait).
    pub fn is_closed(&self) -> bool {
        self.state.lock().unwrap_or_else(|p| p.into_inner()).closed
    }
}

#[derive(Debug, Default)]
struct Counters {
    captured: AtomicU64,
    /// Frames replaced before the consumer took them (it was still busy with the one before).
    dropped: AtomicU64,
    /// Frame times that passed while a grab was still running (capture slower than the rate).
    missed_ticks: AtomicU64,
    grab_micros: AtomicU64,
}

/// Figures of a running capture.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct CaptureStats {
    pub frames_captured: u64,
    pub frames_dropped: u64,
    pub missed_ticks: u64,
    /// Mean time of one grab (and scale), in microseconds.
    pub mean_grab_micros: u64,
}

/// A running capture; dropping it stops the thread within a frame time.
pub struct Capture {
    source_size: (u32, u32),
    stop: Arc<AtomicBool>,
    counters: Arc<Counters>,
    shared_memory: bool,
    /// What the portal's dialog chose ("your screen", "a window"); X11 sources have titles.
    label: Option<String>,
    resume_id: Option<String>,
}

impl Capture {
    /// A capture whose frames come from a PipeWire stream (its thread is started by the
    /// caller with this capture's stop flag and counters).
    fn over_pipewire() -> Self {
        Self {
            source_size: (0, 0),
            stop: Arc::new(AtomicBool::new(false)),
            counters: Arc::new(Counters::default()),
            shared_memory: false,
            label: None,
            resume_id: None,
        }
    }

    pub fn stats(&self) -> CaptureStats {
        let captured = self.counters.captured.load(Ordering::Relaxed);
        CaptureStats {
            frames_captured: captured,
            frames_dropped: self.counters.dropped.load(Ordering::Relaxed),
            missed_ticks: self.counters.missed_ticks.load(Ordering::Relaxed),
            mean_grab_micros: self
                .counters
                .grab_micros
                .load(Ordering::Relaxed)
                .checked_div(captured)
                .unwrap_or(0),
        }
    }

    /// The source's size when the capture started (before any scaling).
    pub fn source_size(&self) -> (u32, u32) {
        self.source_size
    }

    /// Whether the X server writes the pixels into shared memory (MIT-SHM).
    pub fn uses_shared_memory(&self) -> bool {
        self.shared_memory
    }

    /// What was chosen in the portal's dialog, which the caller could not know beforehand.
    pub fn label(&self) -> Option<&str> {
        self.label.as_deref()
    }

    /// The source id that shares the same thing again: for the portal, one that resumes this
    /// choice without its dialog where the portal allows (after a call reconnects).
    pub fn resume_id(&self) -> Option<&str> {
        self.resume_id.as_deref()
    }
}

impl Drop for Capture {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// Starts capturing `source_id` at `settings.fps` on a thread of its own. Each frame goes to
/// `frames`, replacing one not taken yet; `ended` is called once if the capture stops by
/// itself (not when the [`Capture`] is dropped). The slot is closed when the capture stops.
pub fn start_capture(
    source_id: &str,
    settings: CaptureSettings,
    frames: Arc<FrameSlot>,
    ended: Box<dyn FnOnce(CaptureEnded) + Send>,
) -> Result<Capture, ScreenError> {
    if let Some(restore_token) = portal::parse_source(source_id) {
        let mut capture = Capture::over_pipewire();
        let started = portal::start(
            restore_token,
            settings,
            frames,
            capture.stop.clone(),
            capture.counters.clone(),
            ended,
        )?;
        capture.source_size = started.size;
        capture.label = Some(started.label);
        capture.resume_id = started.resume_id;
        return Ok(capture);
    }
    let target = x11::parse_target(source_id)
        .ok_or_else(|| ScreenError::UnknownSource(source_id.to_owned()))?;
    // The connection is made here so a bad source fails the call, then moves to the thread.
    let x = x11_session()?;
    let shared_memory = x.uses_shm();
    let grabber = x.grabber(target)?;
    let source_size = grabber.size();
    let stop = Arc::new(AtomicBool::new(false));
    let counters = Arc::new(Counters::default());
    let (thread_stop, thread_counters) = (stop.clone(), counters.clone());
    std::thread::Builder::new()
        .name("confab-screen-capture".into())
        .spawn(move || {
            let why = capture_loop(grabber, settings, &frames, &thread_stop, &thread_counters);
            // The reason first, then the slot closes: whoever sees it closed can read why.
            if let Some(why) = why {
                if !thread_stop.load(Ordering::Relaxed) {
                    ended(why);
                }
            }
            frames.close();
        })
        .map_err(|e| ScreenError::Capture(e.to_string()))?;
    Ok(Capture {
        source_size,
        stop,
        counters,
        shared_memory,
        label: None,
        resume_id: None,
    })
}

/// Reads PipeWire video node `node_id` of this session's PipeWire as a portal's stream is read
/// (the same reader, without the portal): for tests, where no compositor here can make a
/// portal stream.
#[doc(hidden)]
pub fn capture_pipewire_node(
    node_id: u32,
    settings: CaptureSettings,
    frames: Arc<FrameSlot>,
    ended: Box<dyn FnOnce(CaptureEnded) + Send>,
) -> Result<Capture, ScreenError> {
    let capture = Capture::over_pipewire();
    portal::read_node(
        node_id,
        settings,
        frames,
        capture.stop.clone(),
        capture.counters.clone(),
        ended,
    )?;
    Ok(capture)
}

/// Grabs on a fixed beat. A grab that overruns its frame time skips the beats it missed
/// instead of catching up with a burst.
fn capture_loop(
    mut grabber: x11::Grabber,
    settings: CaptureSettings,
    frames: &FrameSlot,
    stop: &AtomicBool,
    counters: &Counters,
) -> Option<CaptureEnded> {
    let period = Duration::from_secs(1) / settings.fps.clamp(1, 60);
    let mut next = Instant::now();
    loop {
        if stop.load(Ordering::Relaxed) {
            return None;
        }
        let now = Instant::now();
        if next > now {
            std::thread::sleep(next - now);
        }
        let started = Instant::now();
        let captured_unix_ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_millis() as u64)
            .unwrap_or(0);
        match grabber.grab() {
            Ok(grab) => {
                let (width, height) = fit_within(
                    grab.width,
                    grab.height,
                    settings.max_width,
                    settings.max_height,
                );
                let mut bgrx = Vec::new();
                scale_bgrx(grab.bgrx, grab.width, grab.height, &mut bgrx, width, height);
                counters.captured.fetch_add(1, Ordering::Relaxed);
                counters
                    .grab_micros
                    .fetch_add(started.elapsed().as_micros() as u64, Ordering::Relaxed);
                let frame = ScreenFrame {
                    width,
                    height,
                    bgrx,
                    captured_at: started,
                    captured_unix_ms,
                };
                if frames.put(frame) {
                    counters.dropped.fetch_add(1, Ordering::Relaxed);
                }
            }
            // Minimised: nothing to send until it is shown again (a closed window is
            // destroyed, which the next grab sees).
            Err(x11::X11Error::Hidden) => {}
            Err(x11::X11Error::Gone) => return Some(CaptureEnded::SourceClosed),
            Err(e) => return Some(CaptureEnded::Failed(e.to_string())),
        }
        next += period;
        let after = Instant::now();
        if after > next {
            let behind = after - next;
            let missed = (behind.as_nanos() / period.as_nanos().max(1)) as u32 + 1;
            counters
                .missed_ticks
                .fetch_add(u64::from(missed), Ordering::Relaxed);
            next += period * missed;
        }
    }
}

/// The largest size with `width`:`height`'s shape that fits `max_width` x `max_height`,
/// with even sides (as H.264's 4:2:0 wants), never larger than the source.
pub fn fit_within(width: u32, height: u32, max_width: u32, max_height: u32) -> (u32, u32) {
    if width == 0 || height == 0 {
        return (0, 0);
    }
    let scale = f64::min(
        1.0,
        f64::min(
            f64::from(max_width) / f64::from(width),
            f64::from(max_height) / f64::from(height),
        ),
    );
    let w = ((f64::from(width) * scale) as u32).max(2) & !1;
    let h = ((f64::from(height) * scale) as u32).max(2) & !1;
    (w, h)
}

/// Scales 4-byte pixels by averaging the source pixels each output pixel covers (text stays
/// legible when a large screen is made smaller). The same size is a copy.
pub fn scale_bgrx(src: &[u8], sw: u32, sh: u32, out: &mut Vec<u8>, dw: u32, dh: u32) {
    let (sw, sh, dw, dh) = (sw as usize, sh as usize, dw as usize, dh as usize);
    out.clear();
    out.resize(dw * dh * 4, 0);
    if sw == 0 || sh == 0 || dw == 0 || dh == 0 || src.len() < sw * sh * 4 {
        return;
    }
    if dw <= sw && dh <= sh && sw - dw <= 1 && sh - dh <= 1 {
        // The same size, less an odd last column or row.
        for (y, row) in out.chunks_exact_mut(dw * 4).enumerate() {
            row.copy_from_slice(&src[y * sw * 4..y * sw * 4 + dw * 4]);
        }
        return;
    }
    for y in 0..dh {
        let (y0, y1) = (
            y * sh / dh,
            ((y + 1) * sh / dh).max(y * sh / dh + 1).min(sh),
        );
        for x in 0..dw {
            let (x0, x1) = (
                x * sw / dw,
                ((x + 1) * sw / dw).max(x * sw / dw + 1).min(sw),
            );
            let mut sum = [0u32; 4];
            for sy in y0..y1 {
                let row = &src[(sy * sw + x0) * 4..(sy * sw + x1) * 4];
                for pixel in row.chunks_exact(4) {
                    for c in 0..4 {
                        sum[c] += u32::from(pixel[c]);
                    }
                }
            }
            let n = ((y1 - y0) * (x1 - x0)) as u32;
            let at = (y * dw + x) * 4;
            for c in 0..4 {
                out[at + c] = ((sum[c] + n / 2) / n) as u8;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wayland_wins_over_xwayland_and_no_display_is_none() {
        assert_eq!(detect(true, None, true), DisplayServer::Wayland);
        assert_eq!(detect(false, Some("wayland"), true), DisplayServer::Wayland);
        assert_eq!(detect(false, Some("x11"), true), DisplayServer::X11);
        assert_eq!(detect(false, None, false), DisplayServer::None);
    }

    #[test]
    fn sizes_fit_keep_their_shape_and_are_even() {
        assert_eq!(fit_within(3840, 2160, 1920, 1080), (1920, 1080));
        assert_eq!(fit_within(1280, 800, 1920, 1080), (1280, 800));
        assert_eq!(fit_within(2560, 1600, 1920, 1080), (1728, 1080));
        assert_eq!(fit_within(641, 481, 1920, 1080), (640, 480));
        assert_eq!(fit_within(0, 10, 1920, 1080), (0, 0));
    }

    #[test]
    fn halving_averages_and_a_copy_is_exact() {
        // 4x2: a white and a black 2x2 block.
        let mut src = Vec::new();
        for _ in 0..2 {
            src.extend_from_slice(&[255; 8]);
            src.extend_from_slice(&[0; 8]);
        }
        let mut out = Vec::new();
        scale_bgrx(&src, 4, 2, &mut out, 2, 1);
        assert_eq!(out, vec![255, 255, 255, 255, 0, 0, 0, 0]);
        scale_bgrx(&src, 4, 2, &mut out, 4, 2);
        assert_eq!(out, src);
        // Odd width: the last column goes.
        let odd: Vec<u8> = (0..3 * 2 * 4).map(|i| i as u8).collect();
        scale_bgrx(&odd, 3, 2, &mut out, 2, 2);
        assert_eq!(&out[..8], &odd[..8]);
        assert_eq!(&out[8..], &odd[12..20]);
    }

    #[test]
    fn unknown_sources_are_refused_by_name() {
        let err = start_capture(
            "window 7",
            CaptureSettings::default(),
            FrameSlot::new(),
            Box::new(|_| {}),
        )
        .err()
        .map(|e| e.code());
        assert_eq!(err, Some("unknown_source"));
        assert_eq!(
            thumbnail("nope", 160, 90).err().map(|e| e.code()),
            Some("unknown_source")
        );
    }
}
