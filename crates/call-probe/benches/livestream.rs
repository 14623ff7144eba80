//! Livestream figures through the local coordinator and its embedded SFU, all on loopback in
//! this process: a host publishes the fake camera's pattern (real H.264 from OpenH264, 1280x720,
//! 30 fps, 1.5 Mbit/s) and a tone (Opus) with confab-broadcast's publisher, goes live and
//! starts HLS (the coordinator packages the forwarded packets). Then anonymous viewers with a
//! call token join one by one, as the app's viewers do (coordinator join, subscribe-only SFU
//! session), up to 50:
//!
//! (a) a WebRTC viewer's time to first frame: from the coordinator join to the first video
//!     frame from the host (whole, in the viewer's reader), median and p95 over the joins;
//! (b) the SFU thread's CPU with one host and the 50 viewers watching (`EngineStats::cpu_time`,
//!     percent of one core over a steady window), with frames forwarded and datagrams sent;
//! (c) the HLS side: start_broadcasting to its first segment. (HLS glass to glass, beside
//!     WebRTC's, is the window benchmark's.)
//!
//!   cargo bench -p confab-call-probe --bench livestream              (about 1 minute)
//!   cargo bench -p confab-call-probe --bench livestream -- --quick   (10 viewers, shorter)
//!
//! Glass to glass in real windows (the time code painted by the viewer's page) is
//! tests/e2e/bench-livestream.mjs. Prints figures; asserts nothing about them.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use confab_call_probe::publish::{AudioSignal, Publishing, VideoSettings};
use confab_client::media::{CallEvent, CallSession, CallSessionOptions, MediaKind};
use confab_client::{ClientOptions, TokenSource, User, VideoClient};
use confab_coordinator::{Claims, CoordinatorConfig, Limits, RunningCoordinator};
use confab_protocol::ANONYMOUS_USER_ID;
use tokio::task::JoinHandle;

const FIRST_FRAME_TARGET_MS: f64 = 500.0;

fn client(c: &RunningCoordinator) -> VideoClient {
    VideoClient::new(
        c.api_key(),
        ClientOptions::default().with_base_url(c.base_url()),
    )
}

fn quantile(samples: &[f64], q: f64) -> f64 {
    if samples.is_empty() {
        return f64::NAN;
    }
    let mut sorted = samples.to_vec();
    sorted.sort_by(f64::total_cmp);
    sorted[((sorted.len() - 1) as f64 * q).round() as usize]
}

/// A viewer watching: its session's events drained by a task that counts the host's frames.
struct Viewer {
    _client: VideoClient,
    reader: JoinHandle<CallSession>,
    frames: Arc<std::sync::atomic::AtomicU64>,
    stop: tokio::sync::watch::Sender<bool>,
}

/// Joins as an anonymous viewer; resolves to the viewer and its time to the first video frame.
async fn watch(c: &RunningCoordinator, token: String) -> (Viewer, Duration) {
    let started = Instant::now();
    let viewer = client(c);
    viewer
        .connect_anonymous(Some(TokenSource::token(token)))
        .await
        .expect("a viewer connects");
    let call = viewer.call("livestream", "bench");
    let (_, mut session) = call
        .join_with_media(false, CallSessionOptions::default())
        .await
        .expect("a viewer gets a WebRTC seat");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    let first = loop {
        let event = tokio::time::timeout_at(deadline, session.next_event())
            .await
            .expect("the host's video reaches the viewer within 15 s")
            .expect("the viewer's session lasts");
        if let CallEvent::Frame(frame) = &event {
            if frame.kind == MediaKind::Video {
                break started.elapsed();
            }
        }
    };
    let frames = Arc::new(std::sync::atomic::AtomicU64::new(1));
    let (stop, mut stopped) = tokio::sync::watch::channel(false);
    let counted = frames.clone();
    let reader = tokio::spawn(async move {
        loop {
            tokio::select! {
                _ = stopped.changed() => break,
                event = session.next_event() => match event {
                    Some(CallEvent::Frame(f)) if f.kind == MediaKind::Video => {
                        counted.fetch_add(1, Ordering::Relaxed);
                    }
                    Some(_) => {}
                    None => break,
                }
            }
        }
        session
    });
    (
        Viewer {
            _client: viewer,
            reader,
            frames,
            stop,
        },
        first,
    )
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let quick = std::env::args().any(|a| a == "--quick")
        || std::env::var_os("CONFAB_BENCH_QUICK").is_some();
    let viewers = if quick { 10 } else { 50 };
    let window = Duration::from_secs(if quick { 5 } else { 15 });
    let c = confab_coordinator::start(CoordinatorConfig {
        addr: "127.0.0.1:0".parse().unwrap(),
        limits: Limits {
            livestream_webrtc_viewers: viewers + 10,
            ..Limits::default()
        },
        ..CoordinatorConfig::default()
    })
    .await
    .expect("the coordinator starts");
    let sfu = c.sfu().expect("the embedded SFU").clone();

    // The host: the publisher confab-broadcast uses, through the call's SFU session.
    let host = client(&c);
    host.connect_user(
        User::new("host"),
        TokenSource::token(c.mint_token("host", None)),
    )
    .await
    .expect("the host connects");
    let call = host.call("livestream", "bench");
    let (_, mut host_session) = call
        .join_with_media(true, CallSessionOptions::default())
        .await
        .expect("the host joins");
    let video = VideoSettings {
        width: 1280,
        height: 720,
        fps: 30,
        bitrate_bps: 1_500_000,
        keyframe_interval: 60,
    };
    let publishing = Publishing::start(&host_session, video, AudioSignal::Tone(440))
        .await
        .expect("the host publishes");
    let stats = publishing.stats.clone();
    let (host_stop, mut host_stopped) = tokio::sync::watch::channel(false);
    let host_reader = tokio::spawn(async move {
        loop {
            tokio::select! {
                _ = host_stopped.changed() => break,
                event = host_session.next_event() => match event {
                    Some(CallEvent::KeyframeRequested { .. }) => stats.keyframe_wanted.store(true, Ordering::Relaxed),
                    Some(_) => {}
                    None => break,
                }
            }
        }
        host_session
    });
    call.go_live().await.expect("goes live");
    let hls_asked = Instant::now();
    call.start_hls().await.expect("HLS starts");
    let first_segment = hls_asked.elapsed();
    println!("livestream bench: 1 host (1280x720 H.264 at 30 fps, 1.5 Mbit/s, Opus tone) and {viewers} WebRTC viewers, on loopback");
    println!(
        "  HLS: start_broadcasting to the first segment: {} ms",
        first_segment.as_millis()
    );

    // (a) viewers join one after another, each timed to its first frame.
    let claims = Claims {
        user_id: Some(ANONYMOUS_USER_ID.into()),
        role: Some("viewer".into()),
        call_cids: Some(vec!["livestream:bench".into()]),
        ..Default::default()
    };
    let mut watching = Vec::new();
    let mut first_frames = Vec::new();
    for _ in 0..viewers {
        let (viewer, first) = watch(&c, c.sign(&claims)).await;
        first_frames.push(first.as_secs_f64() * 1000.0);
        watching.push(viewer);
    }
    println!(
        "  (a) WebRTC time to first frame: median {:.0} ms, p95 {:.0} ms, max {:.0} ms over {} joins [target: {FIRST_FRAME_TARGET_MS:.0} ms]",
        quantile(&first_frames, 0.5),
        quantile(&first_frames, 0.95),
        quantile(&first_frames, 1.0),
        first_frames.len()
    );

    // (b) steady state: the SFU thread's CPU with everyone watching.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let delivered_before: u64 = watching
        .iter()
        .map(|v| v.frames.load(Ordering::Relaxed))
        .sum();
    let before = sfu.stats().await;
    let at = Instant::now();
    tokio::time::sleep(window).await;
    let after = sfu.stats().await;
    let wall = at.elapsed().as_secs_f64();
    let delivered_after: u64 = watching
        .iter()
        .map(|v| v.frames.load(Ordering::Relaxed))
        .sum();
    let cpu = after.cpu_time.unwrap_or_default() - before.cpu_time.unwrap_or_default();
    let cpu_pct = cpu.as_secs_f64() / wall * 100.0;
    println!(
        "  (b) SFU thread CPU: {cpu_pct:.1} % of a core with 1 host and {viewers} viewers ({:.3} % per forwarded stream, {} streams); {:.0} frames forwarded/s, {:.0} video frames delivered/s, {:.0} datagrams out/s",
        cpu_pct / (2 * viewers) as f64,
        2 * viewers,
        (after.frames_forwarded - before.frames_forwarded) as f64 / wall,
        (delivered_after - delivered_before) as f64 / wall,
        (after.datagrams_out - before.datagrams_out) as f64 / wall,
    );
    println!(
        "  host sent {} video frames ({} keyframes), dropped {}",
        publishing.stats.video_frames.load(Ordering::Relaxed),
        publishing.stats.video_keyframes.load(Ordering::Relaxed),
        publishing.stats.dropped.load(Ordering::Relaxed)
    );

    for viewer in watching {
        let _ = viewer.stop.send(true);
        if let Ok(session) = viewer.reader.await {
            session.leave().await;
        }
    }
    let _ = call.stop_hls().await;
    publishing.stop();
    let _ = host_stop.send(true);
    if let Ok(session) = host_reader.await {
        session.leave().await;
    }
}
