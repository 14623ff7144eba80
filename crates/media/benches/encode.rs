//! The host's encoder at 1280x720, 30 fps: the fake camera's frames in real time through
//! RGBA->YUV, H.264 and the TS segmenter (the upload is left out: it is loopback I/O).
//! Prints per-frame encode times and the share of one core the whole path used.
//!
//!   cargo bench -p confab-media --bench encode

use std::time::{Duration, Instant};

use confab_devices::fake::TestPattern;
use confab_media::{EncoderSettings, H264Encoder, Segmenter};

fn cpu_seconds() -> f64 {
    // utime + stime of this process, in clock ticks (100 per second on Linux).
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let after = stat.rsplit(')').next().unwrap_or_default();
    let fields: Vec<&str> = after.split_whitespace().collect();
    let ticks: f64 = fields
        .get(11..13)
        .map(|f| f.iter().filter_map(|v| v.parse::<f64>().ok()).sum())
        .unwrap_or(0.0);
    ticks / 100.0
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

fn main() {
    let (w, h, fps) = (1280u32, 720u32, 30u32);
    let seconds = std::env::var("SECONDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(10u64);
    let mut pattern = TestPattern::new(w, h);
    let mut encoder = H264Encoder::new(
        w,
        h,
        EncoderSettings {
            fps,
            keyframe_interval: fps,
            ..Default::default()
        },
    )
    .expect("encoder");
    let mut segmenter = Segmenter::new(1.0);
    let period = Duration::from_secs_f64(1.0 / f64::from(fps));
    let mut times_ms = Vec::new();
    let mut bytes = 0usize;
    let mut segments = 0;
    let start = Instant::now();
    let cpu_start = cpu_seconds();
    let mut next = Instant::now();
    let mut frame_no = 0u64;
    while start.elapsed() < Duration::from_secs(seconds) {
        let now_ms = 1_000 + frame_no * 1000 / u64::from(fps);
        let frame = pattern.next_frame(now_ms);
        let t = Instant::now();
        let out = encoder
            .encode_rgba(&frame.rgba, w, h, false)
            .expect("encode");
        times_ms.push(t.elapsed().as_secs_f64() * 1000.0);
        if let Some(out) = out {
            bytes += out.annex_b.len();
            if segmenter
                .push(&out.annex_b, 90_000 + frame_no * 3000, out.keyframe)
                .is_some()
            {
                segments += 1;
            }
        }
        frame_no += 1;
        next += period;
        if let Some(wait) = next.checked_duration_since(Instant::now()) {
            std::thread::sleep(wait);
        }
    }
    let wall = start.elapsed().as_secs_f64();
    let cpu = cpu_seconds() - cpu_start;
    times_ms.sort_by(f64::total_cmp);
    println!("encode 1280x720 at {fps} fps, real time, {wall:.1} s, {frame_no} frames ({:.1} fps), {segments} segments",
        frame_no as f64 / wall);
    println!(
        "  RGBA->YUV + H.264 per frame: p50 {:.2} ms, p95 {:.2} ms, max {:.2} ms",
        percentile(&times_ms, 0.5),
        percentile(&times_ms, 0.95),
        percentile(&times_ms, 1.0)
    );
    println!(
        "  CPU (pattern + encode + segment): {:.1} % of one core",
        100.0 * cpu / wall
    );
    println!("  bitrate: {:.2} Mbit/s", bytes as f64 * 8.0 / wall / 1e6);
}
