//! Forwarding figures for the embedded SFU, with Rust participants (`CallSession`) on loopback
//! in this process, each a synthetic 720p-sized H.264 stream (30 fps, a 40 KB keyframe every
//! 2 s, 5 KB deltas: 1.34 Mbit/s of payload) whose frames carry their send time:
//!
//! (a) join to first remote frame: `CallSession::connect` of a subscriber to its first frame
//!     (any kind, and the first video frame) from a participant already publishing;
//! (b) frame latency through the SFU: the time the whole frame reaches the subscriber's reader
//!     minus the frame's own send stamp, p50/p95 (and p99, max);
//! (c) the SFU thread's CPU per forwarded stream in a call of 4 (12 streams), of 8 (56) and
//!     one publisher to 50 subscribers (50), over a window of steady state;
//! (d) (b) and the call of 4 again with a share of each subscriber's incoming datagrams
//!     dropped (`CallSession::simulate_receive_loss`), so NACK and retransmission run.
//!
//!   cargo bench -p confab-sfu --bench forwarding             (about 2 minutes)
//!   cargo bench -p confab-sfu --bench forwarding -- --quick  (under 40 s; or CONFAB_BENCH_QUICK=1)
//!
//! Prints figures and a table against the targets; asserts nothing about them. The
//! participants share this machine's cores with the SFU, so only the SFU thread's own CPU time
//! (`EngineStats::cpu_time`) is used for (c), which is what the target is about.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use confab_client::media::synthetic::{self, FrameStamp};
use confab_client::media::{
    CallEvent, CallSession, CallSessionOptions, EncodedFrame, LocalTrack, MediaKind,
    SfuCredentials, TrackSpec, VideoCodec,
};
use confab_sfu::loopback::LoopbackSfu;
use confab_sfu::{ApiSecret, EngineStats, SfuConfig};
use tokio::sync::watch;
use tokio::task::JoinHandle;

const KEY: &str = "bench-key";
const SECRET: &str = "a-bench-secret-of-enough-length";

/// The synthetic 720p stream.
const FPS: u64 = 30;
const KEYFRAME_EVERY: u64 = 2 * FPS;
const KEYFRAME_PERIOD: Duration = Duration::from_secs(KEYFRAME_EVERY / FPS);
const KEYFRAME_BYTES: usize = 40_000;
const DELTA_BYTES: usize = 5_000;

/// Targets from the issue.
const FIRST_FRAME_TARGET_MS: f64 = 500.0;
const CPU_PER_STREAM_TARGET_PCT: f64 = 0.5;

/// How long each part runs.
struct Plan {
    quick: bool,
    joins: usize,
    latency_window: Duration,
    warmup: Duration,
    cpu_window: Duration,
    fanout: usize,
    /// Shares of datagrams dropped for (d)'s latency runs; the first also for its CPU run.
    losses: Vec<f32>,
}

impl Plan {
    fn new() -> Self {
        let quick = std::env::args().any(|a| a == "--quick")
            || std::env::var("CONFAB_BENCH_QUICK").is_ok_and(|v| v == "1");
        if quick {
            Plan {
                quick,
                joins: 3,
                latency_window: Duration::from_secs(2),
                warmup: Duration::from_secs(1),
                cpu_window: Duration::from_secs(2),
                fanout: 50,
                losses: vec![0.02],
            }
        } else {
            Plan {
                quick,
                joins: 10,
                latency_window: Duration::from_secs(12),
                warmup: Duration::from_secs(3),
                cpu_window: Duration::from_secs(10),
                fanout: 50,
                losses: vec![0.02, 0.05],
            }
        }
    }
}

// --- the SFU and participants -----------------------------------------------------------

struct TestSfu(LoopbackSfu);

impl TestSfu {
    async fn start() -> TestSfu {
        let config = SfuConfig::loopback(KEY, ApiSecret::new(SECRET));
        TestSfu(LoopbackSfu::start(config, 0).await.expect("the SFU starts"))
    }

    async fn join(&self, room: &str, identity: &str) -> CallSession {
        let credentials = SfuCredentials {
            url: self.0.url.clone(),
            token: self.0.token(room, identity, identity, true),
        };
        CallSession::connect(credentials, CallSessionOptions::default())
            .await
            .unwrap_or_else(|e| panic!("{identity} could not join: {e}"))
    }

    async fn stop(self) {
        self.0.stop().await;
    }
}

/// Sends the synthetic 720p stream at 30 fps until `stop`; returns the frames sent. A keyframe
/// goes out every `KEYFRAME_EVERY` frames, and at once when `keyframe_wanted` is set (the
/// SFU asked for one, as a real encoder would be told).
fn send_video(
    track: LocalTrack,
    mut stop: watch::Receiver<bool>,
    keyframe_wanted: Arc<AtomicBool>,
) -> JoinHandle<u64> {
    tokio::spawn(async move {
        let mut ticker = tokio::time::interval(Duration::from_micros(1_000_000 / FPS));
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
        let mut seq = 0u64;
        loop {
            tokio::select! {
                _ = stop.changed() => return seq,
                _ = ticker.tick() => {}
            }
            let keyframe =
                seq % KEYFRAME_EVERY == 0 || keyframe_wanted.swap(false, Ordering::Relaxed);
            let stamp = FrameStamp {
                seq,
                sent_at_micros: synthetic::now_micros(),
            };
            let size = if keyframe {
                KEYFRAME_BYTES
            } else {
                DELTA_BYTES
            };
            let frame = EncodedFrame {
                data: synthetic::video_frame(VideoCodec::H264, stamp, keyframe, size).into(),
                timestamp: Duration::from_micros(seq * 1_000_000 / FPS),
                rid: None,
                audio_level: None,
            };
            if track.send_frame(frame).is_err() {
                return seq;
            }
            seq += 1;
        }
    })
}

/// Reads a publisher's events until `stop`, flagging the SFU's keyframe requests for its
/// video sender; hands the session back to leave with.
fn answer_keyframe_requests(
    mut session: CallSession,
    wanted: Arc<AtomicBool>,
    mut stop: watch::Receiver<bool>,
) -> JoinHandle<CallSession> {
    tokio::spawn(async move {
        loop {
            tokio::select! {
                _ = stop.changed() => return session,
                event = session.next_event() => match event {
                    Some(CallEvent::KeyframeRequested { .. }) => wanted.store(true, Ordering::Relaxed),
                    Some(_) => {}
                    None => return session,
                },
            }
        }
    })
}

/// Sends 20 ms audio frames until `stop`.
fn send_audio(track: LocalTrack, mut stop: watch::Receiver<bool>) -> JoinHandle<u64> {
    tokio::spawn(async move {
        let mut ticker = tokio::time::interval(Duration::from_millis(20));
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
        let mut seq = 0u64;
        loop {
            tokio::select! {
                _ = stop.changed() => return seq,
                _ = ticker.tick() => {}
            }
            let stamp = FrameStamp {
                seq,
                sent_at_micros: synthetic::now_micros(),
            };
            let frame = EncodedFrame {
                data: synthetic::audio_frame(stamp, 100).into(),
                timestamp: Duration::from_millis(seq * 20),
                rid: None,
                audio_level: Some(-30),
            };
            if track.send_frame(frame).is_err() {
                return seq;
            }
            seq += 1;
        }
    })
}

async fn publish_camera(session: &CallSession) -> LocalTrack {
    session
        .publish(TrackSpec::camera(VideoCodec::H264, 1280, 720))
        .await
        .expect("the camera is published")
}

/// Video frames received per publisher identity.
type Tally = Arc<Mutex<HashMap<String, u64>>>;

/// A participant that may publish the 720p stream and counts the video frames it receives,
/// until told to stop; then it leaves.
struct Member {
    received: Tally,
    stop: watch::Sender<bool>,
    task: JoinHandle<()>,
}

impl Member {
    async fn join(sfu: &TestSfu, room: &str, identity: &str, publish: bool, loss: f32) -> Member {
        let mut session = sfu.join(room, identity).await;
        if loss > 0.0 {
            session.simulate_receive_loss(loss).await;
        }
        let track = if publish {
            Some(publish_camera(&session).await)
        } else {
            None
        };
        let (stop, mut stopped) = watch::channel(false);
        let sender =
            track.map(|t| send_video(t, stop.subscribe(), Arc::new(AtomicBool::new(false))));
        let received: Tally = Arc::default();
        let tally = received.clone();
        let task = tokio::spawn(async move {
            loop {
                tokio::select! {
                    _ = stopped.changed() => break,
                    event = session.next_event() => match event {
                        Some(CallEvent::Frame(f)) if f.kind == MediaKind::Video => {
                            *tally.lock().unwrap().entry(f.identity).or_default() += 1;
                        }
                        Some(_) => {}
                        None => break,
                    },
                }
            }
            if let Some(sender) = sender {
                let _ = sender.await;
            }
            session.leave().await;
        });
        Member {
            received,
            stop,
            task,
        }
    }

    fn total(&self) -> u64 {
        self.received.lock().unwrap().values().sum()
    }

    fn sources(&self) -> usize {
        self.received.lock().unwrap().len()
    }

    async fn leave(self) {
        let _ = self.stop.send(true);
        let _ = tokio::time::timeout(Duration::from_secs(5), self.task).await;
    }
}

// --- figures --------------------------------------------------------------------------------

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// The value at quantile `q` (nearest rank) of unsorted samples.
fn quantile(samples: &[f64], q: f64) -> f64 {
    if samples.is_empty() {
        return f64::NAN;
    }
    let mut sorted = samples.to_vec();
    sorted.sort_by(f64::total_cmp);
    sorted[((sorted.len() - 1) as f64 * q).round() as usize]
}

fn cpu(stats: &EngineStats) -> Duration {
    stats.cpu_time.unwrap_or_default()
}

/// One row of the closing table.
struct Row {
    what: String,
    value: String,
    target: String,
    verdict: &'static str,
}

fn verdict(ok: bool) -> &'static str {
    if ok {
        "met"
    } else {
        "MISSED"
    }
}

// --- (a) join to first frame ------------------------------------------------------------

struct JoinFigures {
    connect_ms: Vec<f64>,
    first_any_ms: Vec<f64>,
    first_video_ms: Vec<f64>,
    /// PLIs the SFU sent the publisher for the new subscribers.
    keyframe_requests: u64,
}

async fn join_to_first_frame(plan: &Plan) -> JoinFigures {
    let sfu = TestSfu::start().await;
    let room = "default:first-frame";
    let publisher = sfu.join(room, "publisher").await;
    let video = publish_camera(&publisher).await;
    let audio = publisher
        .publish(TrackSpec::microphone())
        .await
        .expect("the microphone is published");
    let (stop, _) = watch::channel(false);
    // The first tick is at once: keyframes go at video_started + k * KEYFRAME_PERIOD.
    let video_started = Instant::now();
    let wanted = Arc::new(AtomicBool::new(false));
    let publisher = answer_keyframe_requests(publisher, wanted.clone(), stop.subscribe());
    let senders = [
        send_video(video, stop.subscribe(), wanted),
        send_audio(audio, stop.subscribe()),
    ];
    // The publisher is well under way before anyone joins.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let before = sfu.0.sfu.stats().await;
    let mut figures = JoinFigures {
        connect_ms: Vec::new(),
        first_any_ms: Vec::new(),
        first_video_ms: Vec::new(),
        keyframe_requests: 0,
    };
    for i in 0..plan.joins {
        // Join i starts at (i + 0.5) / joins of the way through a keyframe cycle, so the
        // joins sample the cycle evenly instead of falling into step with it.
        let phase = KEYFRAME_PERIOD.mul_f64((i as f64 + 0.5) / plan.joins as f64);
        let into_cycle = Duration::from_nanos(
            (video_started.elapsed().as_nanos() % KEYFRAME_PERIOD.as_nanos()) as u64,
        );
        let wait = if phase >= into_cycle {
            phase - into_cycle
        } else {
            KEYFRAME_PERIOD - into_cycle + phase
        };
        tokio::time::sleep(wait).await;
        let started = Instant::now();
        let mut session = sfu.join(room, &format!("viewer-{i}")).await;
        figures.connect_ms.push(ms(started.elapsed()));
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        let mut first_any = None;
        while let Ok(Some(event)) = tokio::time::timeout_at(deadline, session.next_event()).await {
            if let CallEvent::Frame(f) = event {
                let at = ms(started.elapsed());
                first_any.get_or_insert(at);
                if f.kind == MediaKind::Video {
                    figures.first_video_ms.push(at);
                    break;
                }
            }
        }
        match first_any {
            Some(at) => figures.first_any_ms.push(at),
            None => println!("  viewer-{i}: no frame within 10 s"),
        }
        session.leave().await;
    }
    figures.keyframe_requests =
        sfu.0.sfu.stats().await.keyframe_requests_sent - before.keyframe_requests_sent;
    let _ = stop.send(true);
    for s in senders {
        let _ = s.await;
    }
    if let Ok(publisher) = publisher.await {
        publisher.leave().await;
    }
    sfu.stop().await;
    figures
}

// --- (b) latency --------------------------------------------------------------------------

struct LatencyFigures {
    all_ms: Vec<f64>,
    keyframe_ms: Vec<f64>,
    sent: u64,
    received_whole: u64,
    damaged: u64,
    not_contiguous: u64,
    keyframe_requests: u64,
    cpu_pct: f64,
    /// NACKs the viewer sent, and its incoming bitrate (RTP payload and headers), over the
    /// window.
    nacks: u64,
    wire_bps: u64,
}

async fn latency(plan: &Plan, loss: f32) -> LatencyFigures {
    let sfu = TestSfu::start().await;
    let room = "default:latency";
    let publisher = sfu.join(room, "publisher").await;
    let mut viewer = sfu.join(room, "viewer").await;
    if loss > 0.0 {
        viewer.simulate_receive_loss(loss).await;
    }
    let track = publish_camera(&publisher).await;
    let (stop, _) = watch::channel(false);
    let sender = send_video(track, stop.subscribe(), Arc::new(AtomicBool::new(false)));
    // Wait for the stream to flow, then measure over the window.
    let flowing = tokio::time::Instant::now() + Duration::from_secs(10);
    while let Ok(Some(event)) = tokio::time::timeout_at(flowing, viewer.next_event()).await {
        if matches!(event, CallEvent::Frame(ref f) if f.kind == MediaKind::Video) {
            break;
        }
    }
    let before = sfu.0.sfu.stats().await;
    let incoming = |stats: confab_client::media::CallStats| {
        stats
            .tracks
            .into_iter()
            .find(|t| !t.outgoing)
            .map_or((0, 0), |t| (t.bytes, t.nacks))
    };
    let (bytes_before, nacks_before) = incoming(viewer.stats().await);
    let started = Instant::now();
    let mut figures = LatencyFigures {
        all_ms: Vec::new(),
        keyframe_ms: Vec::new(),
        sent: 0,
        received_whole: 0,
        damaged: 0,
        not_contiguous: 0,
        keyframe_requests: 0,
        cpu_pct: 0.0,
        nacks: 0,
        wire_bps: 0,
    };
    let mut first_seq = None;
    let mut last_seq = 0;
    let window_end = tokio::time::Instant::now() + plan.latency_window;
    while let Ok(Some(event)) = tokio::time::timeout_at(window_end, viewer.next_event()).await {
        let CallEvent::Frame(f) = event else { continue };
        if f.kind != MediaKind::Video {
            continue;
        }
        if !f.contiguous {
            figures.not_contiguous += 1;
        }
        match synthetic::read_frame(&f.data) {
            Some(stamp) => {
                // When the whole frame reached the reader: str0m's `received_at` is its first packet's
                // arrival, which would hide the wait for a large frame's last packet or a
                // retransmission.
                let latency =
                    synthetic::now_micros().saturating_sub(stamp.sent_at_micros) as f64 / 1000.0;
                figures.all_ms.push(latency);
                if f.keyframe {
                    figures.keyframe_ms.push(latency);
                }
                figures.received_whole += 1;
                first_seq.get_or_insert(stamp.seq);
                last_seq = stamp.seq;
            }
            None => figures.damaged += 1,
        }
    }
    let after = sfu.0.sfu.stats().await;
    let wall = started.elapsed();
    // str0m's figures behind these are refreshed once a second: good to a few percent here.
    let (bytes_after, nacks_after) = incoming(viewer.stats().await);
    figures.nacks = nacks_after - nacks_before;
    figures.wire_bps = ((bytes_after - bytes_before) as f64 * 8.0 / wall.as_secs_f64()) as u64;
    figures.sent = first_seq.map_or(0, |first| last_seq - first + 1);
    figures.keyframe_requests = after.keyframe_requests_sent - before.keyframe_requests_sent;
    figures.cpu_pct = (cpu(&after) - cpu(&before)).as_secs_f64() / wall.as_secs_f64() * 100.0;
    let _ = stop.send(true);
    let _ = sender.await;
    viewer.leave().await;
    publisher.leave().await;
    sfu.stop().await;
    figures
}

fn print_latency(label: &str, f: &LatencyFigures) {
    println!(
        "  {label}: p50 {:.1} ms, p95 {:.1} ms, p99 {:.1} ms, max {:.1} ms (keyframes p50 {:.1} ms, max {:.1} ms)",
        quantile(&f.all_ms, 0.5),
        quantile(&f.all_ms, 0.95),
        quantile(&f.all_ms, 0.99),
        quantile(&f.all_ms, 1.0),
        quantile(&f.keyframe_ms, 0.5),
        quantile(&f.keyframe_ms, 1.0),
    );
    println!(
        "    {} of {} frames whole, {} damaged, {} after a gap; viewer sent {} NACKs; {} keyframe requests to the publisher; {:.2} Mbit/s on the wire; SFU thread {:.1} % of a core",
        f.received_whole,
        f.sent,
        f.damaged,
        f.not_contiguous,
        f.nacks,
        f.keyframe_requests,
        f.wire_bps as f64 / 1e6,
        f.cpu_pct,
    );
}

// --- (c) CPU per forwarded stream -----------------------------------------------------------

struct CpuFigures {
    label: String,
    streams: u64,
    cpu_pct: f64,
    forwarded_per_s: f64,
    delivered_per_s: f64,
    datagrams_out_per_s: f64,
    keyframe_requests: u64,
}

impl CpuFigures {
    fn per_stream(&self) -> f64 {
        self.cpu_pct / self.streams as f64
    }

    /// Per stream actually flowing (forwarded frames / 30 per second), when the machine could
    /// not keep every stream at full rate.
    fn per_flowing_stream(&self) -> f64 {
        self.cpu_pct / (self.forwarded_per_s / FPS as f64).max(1e-9)
    }
}

/// `publishers` each publish the stream; `viewers` only subscribe. Everyone receives every
/// other publisher's stream.
async fn cpu_per_stream(
    plan: &Plan,
    label: &str,
    publishers: usize,
    viewers: usize,
    loss: f32,
) -> CpuFigures {
    let sfu = TestSfu::start().await;
    let room = "default:cpu";
    let mut members = Vec::new();
    for i in 0..publishers {
        members.push(Member::join(&sfu, room, &format!("pub-{i}"), true, loss).await);
    }
    // Viewers join ten at a time.
    let sfu = Arc::new(sfu);
    for batch in (0..viewers).collect::<Vec<_>>().chunks(10) {
        let joins: Vec<_> = batch
            .iter()
            .map(|i| {
                let sfu = sfu.clone();
                let identity = format!("viewer-{i}");
                tokio::spawn(async move { Member::join(&sfu, room, &identity, false, loss).await })
            })
            .collect();
        for join in joins {
            members.push(join.await.expect("a viewer joins"));
        }
    }
    let streams = (publishers * (publishers - 1) + viewers * publishers) as u64;
    // Everyone receives from every publisher (bounded), then a warm-up.
    let flowing_by = Instant::now() + Duration::from_secs(20);
    loop {
        let ready = members.iter().enumerate().all(|(i, m)| {
            m.sources()
                >= if i < publishers {
                    publishers - 1
                } else {
                    publishers
                }
        });
        if ready || Instant::now() > flowing_by {
            if !ready {
                println!("  {label}: not every subscriber received every stream within 20 s");
            }
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    tokio::time::sleep(plan.warmup).await;
    let delivered_before: u64 = members.iter().map(Member::total).sum();
    let before = sfu.0.sfu.stats().await;
    let started = Instant::now();
    tokio::time::sleep(plan.cpu_window).await;
    let after = sfu.0.sfu.stats().await;
    let wall = started.elapsed().as_secs_f64();
    let delivered_after: u64 = members.iter().map(Member::total).sum();
    let figures = CpuFigures {
        label: label.to_owned(),
        streams,
        cpu_pct: (cpu(&after) - cpu(&before)).as_secs_f64() / wall * 100.0,
        forwarded_per_s: (after.frames_forwarded - before.frames_forwarded) as f64 / wall,
        delivered_per_s: (delivered_after - delivered_before) as f64 / wall,
        datagrams_out_per_s: (after.datagrams_out - before.datagrams_out) as f64 / wall,
        keyframe_requests: after.keyframe_requests_sent - before.keyframe_requests_sent,
    };
    // Everyone leaves at once; each waits for its own leave.
    let leaving: Vec<_> = members
        .into_iter()
        .map(|m| tokio::spawn(m.leave()))
        .collect();
    for l in leaving {
        let _ = l.await;
    }
    if let Ok(sfu) = Arc::try_unwrap(sfu) {
        sfu.stop().await;
    }
    figures
}

fn print_cpu(f: &CpuFigures) {
    let expected = f.streams as f64 * FPS as f64;
    println!(
        "  {}: {} streams; SFU thread {:.1} % of a core = {:.3} % per stream ({:.3} % per stream actually flowing); forwarded {:.0} frames/s of {:.0} expected, delivered {:.0}/s; {:.0} datagrams/s out; {} keyframe requests",
        f.label,
        f.streams,
        f.cpu_pct,
        f.per_stream(),
        f.per_flowing_stream(),
        f.forwarded_per_s,
        expected,
        f.delivered_per_s,
        f.datagrams_out_per_s,
        f.keyframe_requests,
    );
}

// --- main -------------------------------------------------------------------------------------

fn main() {
    let plan = Plan::new();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a runtime");
    let started = Instant::now();
    runtime.block_on(run(&plan));
    println!(
        "\n(whole run {:.0} s{})",
        started.elapsed().as_secs_f64(),
        if plan.quick { ", --quick" } else { "" }
    );
}

async fn run(plan: &Plan) {
    println!(
        "SFU forwarding on loopback: synthetic 720p stream, {FPS} fps, {} KB keyframe every {} s, {} KB deltas ({:.2} Mbit/s of payload){}",
        KEYFRAME_BYTES / 1000,
        KEYFRAME_EVERY / FPS,
        DELTA_BYTES / 1000,
        (KEYFRAME_BYTES as f64 + (KEYFRAME_EVERY - 1) as f64 * DELTA_BYTES as f64) * 8.0
            / (KEYFRAME_EVERY / FPS) as f64
            / 1e6,
        if plan.quick { " [quick]" } else { "" }
    );
    let mut rows = Vec::new();

    println!("\n(a) join to first remote frame, {} joins", plan.joins);
    let joins = join_to_first_frame(plan).await;
    let connect = quantile(&joins.connect_ms, 0.5);
    let any = quantile(&joins.first_any_ms, 0.5);
    let video = quantile(&joins.first_video_ms, 0.5);
    println!(
        "  connect (join answer) median {connect:.0} ms; first frame of any kind median {any:.0} ms (max {:.0}); first video frame median {video:.0} ms (max {:.0})",
        quantile(&joins.first_any_ms, 1.0),
        quantile(&joins.first_video_ms, 1.0),
    );
    println!(
        "  the SFU asked the publisher for {} keyframes (PLI) for these joins; the publisher answers each with a keyframe at its next frame (periodic keyframes every {} s besides)",
        joins.keyframe_requests,
        KEYFRAME_EVERY / FPS
    );
    rows.push(Row {
        what: "join to first frame (any kind), median".into(),
        value: format!("{any:.0} ms"),
        target: format!("<= {FIRST_FRAME_TARGET_MS:.0} ms"),
        verdict: verdict(any <= FIRST_FRAME_TARGET_MS),
    });
    rows.push(Row {
        what: "join to first video frame, median".into(),
        value: format!("{video:.0} ms"),
        target: format!("<= {FIRST_FRAME_TARGET_MS:.0} ms"),
        verdict: verdict(video <= FIRST_FRAME_TARGET_MS),
    });

    println!(
        "\n(b) frame latency through the SFU, {:?} of one stream",
        plan.latency_window
    );
    let clean = latency(plan, 0.0).await;
    print_latency("no loss", &clean);
    rows.push(Row {
        what: "frame latency p50 / p95".into(),
        value: format!(
            "{:.1} / {:.1} ms",
            quantile(&clean.all_ms, 0.5),
            quantile(&clean.all_ms, 0.95)
        ),
        target: "(reported)".into(),
        verdict: "",
    });

    println!(
        "\n(c) SFU thread CPU per forwarded stream, {:?} of steady state",
        plan.cpu_window
    );
    let scenarios: [(&str, usize, usize); 3] = [
        ("call of 4", 4, 0),
        ("call of 8", 8, 0),
        ("1 to 50", 1, plan.fanout),
    ];
    let mut cpu_rows = Vec::new();
    for (label, publishers, viewers) in scenarios {
        let f = cpu_per_stream(plan, label, publishers, viewers, 0.0).await;
        print_cpu(&f);
        cpu_rows.push(f);
    }
    for f in &cpu_rows {
        rows.push(Row {
            what: format!("CPU per stream, {} ({} streams)", f.label, f.streams),
            value: format!("{:.3} %", f.per_stream()),
            target: format!("<= {CPU_PER_STREAM_TARGET_PCT} % of a core"),
            verdict: verdict(f.per_stream() <= CPU_PER_STREAM_TARGET_PCT),
        });
    }

    println!("\n(d) with a share of each subscriber's incoming datagrams dropped (NACK/RTX recover them)");
    for &loss in &plan.losses {
        let loss_pct = loss * 100.0;
        let lossy = latency(plan, loss).await;
        print_latency(&format!("latency, {loss_pct:.0} % loss"), &lossy);
        rows.push(Row {
            what: format!("frame latency p50 / p95, {loss_pct:.0} % loss"),
            value: format!(
                "{:.1} / {:.1} ms",
                quantile(&lossy.all_ms, 0.5),
                quantile(&lossy.all_ms, 0.95)
            ),
            target: "(reported)".into(),
            verdict: "",
        });
        rows.push(Row {
            what: format!("frames whole, {loss_pct:.0} % loss"),
            value: format!(
                "{:.1} %",
                lossy.received_whole as f64 / lossy.sent.max(1) as f64 * 100.0
            ),
            target: "(reported)".into(),
            verdict: "",
        });
    }
    let loss_pct = plan.losses[0] * 100.0;
    let lossy_cpu = cpu_per_stream(
        plan,
        &format!("call of 4, {loss_pct:.0} % loss"),
        4,
        0,
        plan.losses[0],
    )
    .await;
    print_cpu(&lossy_cpu);
    rows.push(Row {
        what: format!("CPU per stream, call of 4, {loss_pct:.0} % loss"),
        value: format!("{:.3} %", lossy_cpu.per_stream()),
        target: format!("<= {CPU_PER_STREAM_TARGET_PCT} % of a core"),
        verdict: verdict(lossy_cpu.per_stream() <= CPU_PER_STREAM_TARGET_PCT),
    });

    println!(
        "\n{:<44} {:>16}  {:<20} verdict",
        "figure", "value", "target"
    );
    for row in rows {
        println!(
            "{:<44} {:>16}  {:<20} {}",
            row.what, row.value, row.target, row.verdict
        );
    }
}
