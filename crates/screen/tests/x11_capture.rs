//! Capture from a real X server (Xvfb in the test session): a window drawing the test pattern
//! is listed, captured with its colours and a recent time code, and its closing ends the
//! capture.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

mod common;

use common::{assert_pattern, bgrx_time_code};
use confab_screen::{
    list_sources, start_capture, thumbnail, CaptureEnded, CaptureSettings, FrameSlot, SourceKind,
};

/// The tests take turns: each has its own 30 fps pattern window and a capture, and side by
/// side on a loaded two-core machine their frame times and rates stop meaning anything.
static ONE_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn take_turn() -> std::sync::MutexGuard<'static, ()> {
    // A test that failed holding it poisons it; the next still runs.
    ONE_AT_A_TIME
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

struct PatternWindow {
    child: Child,
    id: String,
}

impl Drop for PatternWindow {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn pattern_window(title: &str) -> PatternWindow {
    let mut child = Command::new(env!("CARGO_BIN_EXE_confab-pattern-window"))
        .args(["--title", title, "--size", "640x360", "--seconds", "60"])
        .stdout(Stdio::piped())
        .spawn()
        .expect("the pattern window starts");
    let mut line = String::new();
    BufReader::new(child.stdout.take().expect("stdout"))
        .read_line(&mut line)
        .expect("it prints its window");
    let window = line
        .trim()
        .strip_prefix("window ")
        .expect("window 0x…")
        .to_owned();
    PatternWindow {
        child,
        id: format!("x11:window:{window}"),
    }
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64
}

/// Waits (bounded) until the window is listed; the server maps it a moment after it starts.
fn wait_listed(id: &str) -> confab_screen::ShareSource {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let sources = list_sources().expect("sources list");
        assert_eq!(
            sources[0].kind,
            SourceKind::Screen,
            "the screen comes first"
        );
        if let Some(found) = sources.into_iter().find(|s| s.id == id) {
            return found;
        }
        assert!(Instant::now() < deadline, "{id} was never listed");
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
#[ignore = "needs an X server (DISPLAY): the test session (scripts/test-session.sh under xvfb-run) gives one"]
fn a_window_is_listed_captured_at_the_rate_and_its_closing_ends_the_capture() {
    let _turn = take_turn();
    let window = pattern_window("Capture test pattern");
    let source = wait_listed(&window.id);
    assert_eq!(source.kind, SourceKind::Window);
    assert_eq!(source.title, "Capture test pattern");
    assert_eq!((source.width, source.height), (640, 360));

    let thumb = thumbnail(&window.id, 160, 120).expect("a thumbnail");
    assert_eq!((thumb.width, thumb.height), (160, 90));
    assert_eq!(thumb.rgba.len(), 160 * 90 * 4);

    let frames = FrameSlot::new();
    let (ended_tx, ended) = std::sync::mpsc::channel();
    let capture = start_capture(
        &window.id,
        CaptureSettings {
            fps: 15,
            ..CaptureSettings::default()
        },
        frames.clone(),
        Box::new(move |why| {
            let _ = ended_tx.send(why);
        }),
    )
    .expect("capture starts");
    let started = Instant::now();
    let mut received = 0;
    let mut last = None;
    while started.elapsed() < Duration::from_secs(2) {
        if let Some(frame) = frames.take_timeout(Duration::from_millis(500)) {
            received += 1;
            last = Some(frame);
        }
    }
    let frame = last.expect("frames arrive");
    assert_eq!((frame.width, frame.height), (640, 360));
    assert_pattern(&frame.bgrx, frame.width, frame.height);
    let code = bgrx_time_code(&frame.bgrx, 640, 360).expect("the time code reads");
    let age = frame.captured_unix_ms.saturating_sub(code);
    println!("captured time code age {age} ms");
    assert!(age < 500, "the captured time code is {age} ms old");
    // 15 fps for 2 s, the consumer taking each: about 30 (a loaded machine gets fewer).
    assert!(
        (15..=32).contains(&received),
        "{received} frames in 2 s at 15 fps"
    );
    assert!(capture.stats().frames_captured >= received);

    // Closing the window ends the capture, with that reason.
    drop(window);
    let why = ended
        .recv_timeout(Duration::from_secs(3))
        .expect("the capture ends");
    assert_eq!(why, CaptureEnded::SourceClosed);
}

#[test]
#[ignore = "needs an X server (DISPLAY): the test session (scripts/test-session.sh under xvfb-run) gives one"]
fn a_slow_consumer_gets_the_latest_frame_and_the_rest_are_dropped() {
    let _turn = take_turn();
    let window = pattern_window("Slow consumer pattern");
    wait_listed(&window.id);
    let frames = FrameSlot::new();
    let capture = start_capture(
        &window.id,
        CaptureSettings {
            fps: 30,
            ..CaptureSettings::default()
        },
        frames.clone(),
        Box::new(|_| {}),
    )
    .expect("capture starts");
    // Take one frame every 400 ms for 2 s: the capture keeps its beat and drops, and what
    // is taken is the newest (about a frame time old, not a frame left 400 ms ago).
    let mut ages = Vec::new();
    for _ in 0..5 {
        std::thread::sleep(Duration::from_millis(400));
        let frame = frames
            .take_timeout(Duration::from_secs(1))
            .expect("a frame");
        ages.push(now_ms().saturating_sub(frame.captured_unix_ms));
    }
    let stats = capture.stats();
    assert!(stats.frames_dropped >= 20, "dropped {stats:?}");
    ages.sort_unstable();
    // A frame left from the last take would be 400 ms old.
    assert!(ages[2] < 250, "frames taken were {ages:?} ms old");
}

#[test]
#[ignore = "needs an X server (DISPLAY): the test session (scripts/test-session.sh under xvfb-run) gives one"]
fn the_whole_screen_shows_the_window_and_a_closed_window_cannot_be_started() {
    let _turn = take_turn();
    let window = pattern_window("Screen test pattern");
    wait_listed(&window.id);
    // Give it a few frames on screen.
    std::thread::sleep(Duration::from_millis(300));
    let frames = FrameSlot::new();
    let _capture = start_capture(
        "x11:screen",
        CaptureSettings::default(),
        frames.clone(),
        Box::new(|_| {}),
    )
    .expect("screen capture starts");
    let frame = frames
        .take_timeout(Duration::from_secs(2))
        .expect("a frame");
    // No window manager: the window sits at the top left corner.
    assert!(frame.width >= 640 && frame.height >= 360);
    let mut top_left = Vec::new();
    for row in 0..360usize {
        let at = row * frame.width as usize * 4;
        top_left.extend_from_slice(&frame.bgrx[at..at + 640 * 4]);
    }
    assert_pattern(&top_left, 640, 360);

    let id = window.id.clone();
    drop(window);
    std::thread::sleep(Duration::from_millis(300));
    let err = start_capture(
        &id,
        CaptureSettings::default(),
        FrameSlot::new(),
        Box::new(|_| {}),
    )
    .err()
    .map(|e| e.code());
    assert_eq!(err, Some("source_gone"));
}
