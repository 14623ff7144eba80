//! The fake camera at 1280x720, 30 fps, through the preview path (render, hand-off to the
//! consumer's channel) to a consumer that reads every frame: frames delivered per second and
//! the process's CPU use as a share of one core.
//!
//!   cargo bench -p confab-devices --bench preview
//!
//! Prints figures (median of 3 runs of 5 s); targets: at least 29 fps, at most 20 % of a core.

use std::time::{Duration, Instant};

use confab_devices::catalog::FAKE_CAMERA_KEY;
use confab_devices::media::{start_camera, PreviewFormat};

/// User + system CPU seconds of this process so far.
fn cpu_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // Fields after the command name (which may hold spaces) start after the last ')'.
    let fields: Vec<&str> = stat
        .rsplit(')')
        .next()
        .unwrap_or("")
        .split_whitespace()
        .collect();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    // utime and stime are fields 14 and 15 of the line: 11 and 12 after the name.
    (ticks(11) + ticks(12)) / 100.0
}

async fn run(seconds: u64) -> (f64, f64, u64) {
    let (tx, mut rx) = tokio::sync::mpsc::channel(2);
    let format = PreviewFormat {
        width: 1280,
        height: 720,
        fps: 30,
    };
    let running = start_camera(FAKE_CAMERA_KEY, format, tx).expect("the fake camera starts");
    // Let it settle, then measure.
    tokio::time::sleep(Duration::from_millis(300)).await;
    while rx.try_recv().is_ok() {}
    let (cpu0, wall0) = (cpu_seconds(), Instant::now());
    let mut frames = 0u64;
    let mut checksum = 0u64;
    while wall0.elapsed() < Duration::from_secs(seconds) {
        if let Ok(Some(frame)) = tokio::time::timeout(Duration::from_millis(200), rx.recv()).await {
            // Touch the frame as a consumer would (a copy out, a pixel read).
            checksum = checksum.wrapping_add(u64::from(frame.rgba[frame.rgba.len() / 2]));
            frames += 1;
        }
    }
    let wall = wall0.elapsed().as_secs_f64();
    let cpu = cpu_seconds() - cpu0;
    let dropped = running.dropped();
    drop(running);
    std::hint::black_box(checksum);
    (frames as f64 / wall, cpu / wall * 100.0, dropped)
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let mut results = Vec::new();
    for _ in 0..3 {
        results.push(run(5).await);
    }
    results.sort_by(|a, b| a.0.partial_cmp(&b.0).unwrap());
    let (fps, cpu, dropped) = results[1];
    println!("fake camera 1280x720 @ 30 fps -> preview channel -> consumer (median of 3 x 5 s):");
    println!("  delivered: {fps:.2} frames/s ({dropped} dropped for a busy consumer)");
    println!("  CPU: {cpu:.1} % of one core (render + hand-off + consume)");
    let all: Vec<String> = results
        .iter()
        .map(|(f, c, _)| format!("{f:.2} fps / {c:.1} %"))
        .collect();
    println!("  runs: {}", all.join(", "));
}
