//! Sharing's send side at its largest: a 1920x1080 window (confab-pattern-window, its own
//! process) captured at 15 fps through the X server and encoded to H.264 for screen content,
//! as a call shares it. Prints the time per frame (capture, encode) and this process's share
//! of a core. Needs an X server of at least 1920x1080: scripts/bench.sh share runs one.
//!
//!   xvfb-run -a -s "-screen 0 1920x1080x24" cargo bench -p confab-screen --bench capture_encode

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use confab_media::encoder::{EncoderSettings, H264Encoder, PixelOrder};
use confab_screen::{start_capture, CaptureSettings, FrameSlot};

const SECONDS: u64 = 20;
const FPS: u32 = 15;

fn cpu_seconds() -> f64 {
    // utime and stime (fields 14 and 15) of /proc/self/stat, in clock ticks (100 a second).
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let after = stat.rsplit_once(')').map(|(_, rest)| rest).unwrap_or("");
    let fields: Vec<&str> = after.split_whitespace().collect();
    let tick = |i: usize| {
        fields
            .get(i)
            .and_then(|f| f.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    (tick(11) + tick(12)) / 100.0
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

fn main() {
    if std::env::var_os("DISPLAY").is_none() {
        eprintln!(
            "capture_encode: no X server (DISPLAY); run it under xvfb-run (scripts/bench.sh share)"
        );
        std::process::exit(1);
    }
    let mut window = Command::new(env!("CARGO_BIN_EXE_confab-pattern-window"))
        .args([
            "--title",
            "Bench pattern",
            "--size",
            "1920x1080",
            "--seconds",
            "120",
        ])
        .stdout(Stdio::piped())
        .spawn()
        .expect("the pattern window starts");
    let mut line = String::new();
    BufReader::new(window.stdout.take().expect("stdout"))
        .read_line(&mut line)
        .expect("it prints its window");
    let id = format!("x11:window:{}", line.trim().trim_start_matches("window "));
    std::thread::sleep(Duration::from_millis(500));

    let slot = FrameSlot::new();
    let settings = CaptureSettings {
        fps: FPS,
        max_width: 1920,
        max_height: 1080,
    };
    let capture = start_capture(&id, settings, slot.clone(), Box::new(|_| {})).expect("capture");
    let mut encoder = H264Encoder::for_screen(
        1920,
        1080,
        EncoderSettings {
            fps: FPS,
            bitrate_bps: 2_500_000,
            keyframe_interval: 60,
        },
    )
    .expect("encoder");

    // Warm up for a second, then measure.
    let warm_until = Instant::now() + Duration::from_secs(1);
    while Instant::now() < warm_until {
        if let Some(frame) = slot.take_timeout(Duration::from_millis(200)) {
            let _ = encoder.encode(
                &frame.bgrx,
                PixelOrder::Bgrx,
                frame.width,
                frame.height,
                false,
            );
        }
    }
    let before = capture.stats();
    let cpu_start = cpu_seconds();
    let started = Instant::now();
    let mut encode_ms = Vec::new();
    let mut bytes = 0usize;
    let mut sizes = Vec::new();
    while started.elapsed() < Duration::from_secs(SECONDS) {
        let Some(frame) = slot.take_timeout(Duration::from_millis(500)) else {
            continue;
        };
        sizes.push((frame.width, frame.height));
        let t = Instant::now();
        if let Ok(Some(out)) = encoder.encode(
            &frame.bgrx,
            PixelOrder::Bgrx,
            frame.width,
            frame.height,
            false,
        ) {
            bytes += out.annex_b.len();
        }
        encode_ms.push(t.elapsed().as_secs_f64() * 1000.0);
    }
    let wall = started.elapsed().as_secs_f64();
    let cpu = cpu_seconds() - cpu_start;
    let after = capture.stats();
    drop(capture);
    let _ = window.kill();
    let _ = window.wait();

    encode_ms.sort_by(f64::total_cmp);
    let captured = after.frames_captured - before.frames_captured;
    let dropped = after.frames_dropped - before.frames_dropped;
    let (w, h) = sizes.first().copied().unwrap_or((0, 0));
    println!("screen share send side: {w}x{h} at {FPS} fps for {wall:.1} s (X server shared memory, Composite window capture, OpenH264 screen content)");
    println!(
        "  capture (grab into shared memory and copy out): mean {:.2} ms a frame",
        after.mean_grab_micros as f64 / 1000.0
    );
    println!(
        "  encode: median {:.2} ms, p95 {:.2} ms a frame ({} frames)",
        percentile(&encode_ms, 0.5),
        percentile(&encode_ms, 0.95),
        encode_ms.len()
    );
    println!(
        "  frames: {captured} captured ({:.1}/s), {} encoded, {dropped} dropped, {} beats missed",
        captured as f64 / wall,
        encode_ms.len(),
        after.missed_ticks - before.missed_ticks
    );
    println!(
        "  CPU: {:.1} % of one core for capture and encode ({:.2} s over {:.1} s)",
        100.0 * cpu / wall,
        cpu,
        wall
    );
    println!("  sent: {:.0} kbit/s", bytes as f64 * 8.0 / wall / 1000.0);
}
