//! How much delay the receive path adds: a sender's 100 ms tone bursts go through Opus, a
//! simulated network and the jitter buffer; the delay is from a burst's first captured sample
//! to the 10 ms pull that first carries it to the speaker (device buffers excluded). Printed
//! for several jitters; on a loopback-like network the p95 must stay within 60 ms.

mod audio_common;

use std::time::{Duration, Instant};

use audio_common::{percentile, Rng, ToneSender};
use confab_audio::tone::energy;
use confab_audio::FRAME_SAMPLES;
use confab_call::audio::{JitterBuffer, PACKET_SAMPLES};

struct Figures {
    delays_ms: Vec<f64>,
    lost: u64,
    late: u64,
    underruns: u64,
    target_ms: f32,
}

/// `seconds` of bursts (100 ms of tone every 500 ms), `jitter_ms` of uniform random delay
/// on top of 2 ms of transit, pulls every 10 ms at `phase_ms`.
fn measure(seconds: u64, jitter_ms: f64, phase_ms: f64, seed: u64) -> Figures {
    let mut rng = Rng::new(seed);
    let mut sender = ToneSender::new(1000.0, 0.3);
    let mut arrivals = Vec::new();
    for k in 0..seconds * 50 {
        // Packet k holds capture time [20k, 20k + 20) ms; bursts start every 500 ms.
        let in_burst = (k % 25) < 5;
        let data = sender.next_packet(!in_burst);
        let at = (k as f64 + 1.0) * 20.0 + 2.0 + rng.unit() * jitter_ms;
        arrivals.push((at, k * PACKET_SAMPLES as u64, data));
    }
    arrivals.sort_by(|a, b| a.0.total_cmp(&b.0));

    let start = Instant::now();
    let mut jb = JitterBuffer::new();
    let mut frame = vec![0.0; FRAME_SAMPLES];
    let mut next = arrivals.iter().peekable();
    let mut delays_ms = Vec::new();
    let mut loud = false;
    let mut t = phase_ms;
    while t < seconds as f64 * 1000.0 {
        while let Some((at, rtp, data)) = next.next_if(|a| a.0 <= t) {
            jb.push(*rtp, data, start + Duration::from_secs_f64(at / 1000.0));
        }
        jb.pull(start + Duration::from_secs_f64(t / 1000.0), &mut frame);
        let now_loud = energy(&frame) > 0.001;
        if now_loud && !loud {
            // The burst that began at the last multiple of 500 ms of capture time.
            let burst_start = ((t - 20.0) / 500.0).floor() * 500.0;
            // Skip the first second: the buffer is still finding its delay.
            if burst_start >= 1000.0 {
                delays_ms.push(t - burst_start);
            }
        }
        loud = now_loud;
        t += 10.0;
    }
    let stats = jb.stats();
    Figures {
        delays_ms,
        lost: stats.lost,
        late: stats.late,
        underruns: stats.underruns,
        target_ms: stats.target_ms,
    }
}

#[test]
fn the_jitter_buffer_adds_little_delay_on_a_quiet_network_and_adapts_to_jitter() {
    println!("capture-to-playout delay (excluding device buffers), 20 ms Opus packets:");
    let mut loopback_p95 = 0.0;
    for (jitter_ms, phase_ms) in [(0.0, 3.0), (0.0, 8.0), (2.0, 5.0), (20.0, 5.0), (60.0, 5.0)] {
        let f = measure(12, jitter_ms, phase_ms, 42);
        let (p50, p95, max) = (
            percentile(&f.delays_ms, 50.0),
            percentile(&f.delays_ms, 95.0),
            percentile(&f.delays_ms, 100.0),
        );
        println!(
            "  jitter {jitter_ms:>4} ms (pull phase {phase_ms} ms): p50 {p50:.0} ms, p95 {p95:.0} ms, max {max:.0} ms; \
             target {:.1} ms; lost {}, late {}, underruns {} over {} bursts",
            f.target_ms,
            f.lost,
            f.late,
            f.underruns,
            f.delays_ms.len()
        );
        assert!(
            f.delays_ms.len() >= 18,
            "bursts heard: {}",
            f.delays_ms.len()
        );
        if jitter_ms <= 2.0 {
            loopback_p95 = f64::max(loopback_p95, p95);
            assert!(p95 <= 60.0, "loopback p95 {p95} ms");
            assert_eq!(f.late, 0);
        }
        // Whatever the jitter, the delay stays bounded and few packets miss their turn.
        assert!(max <= 20.0 + 200.0 + 30.0, "max {max} ms");
        assert!(f.late <= 1000 / 20, "late {}", f.late);
    }
    println!("loopback p95: {loopback_p95:.0} ms");
}

#[test]
fn the_delay_grows_for_a_jittery_network_and_comes_back_down() {
    // 10 s with 80 ms of jitter, then 10 s of a clean network: the target follows.
    let mut rng = Rng::new(3);
    let mut sender = ToneSender::new(500.0, 0.3);
    let start = Instant::now();
    let mut jb = JitterBuffer::new();
    let mut frame = vec![0.0; FRAME_SAMPLES];
    let mut arrivals = Vec::new();
    for k in 0..1000u64 {
        let jitter = if k < 500 { 80.0 } else { 0.0 };
        let at = (k as f64 + 1.0) * 20.0 + 2.0 + rng.unit() * jitter;
        arrivals.push((at, k * 960, sender.next_packet(false)));
    }
    arrivals.sort_by(|a, b| a.0.total_cmp(&b.0));
    let mut next = arrivals.iter().peekable();
    let mut jittery = None;
    let mut t = 5.0;
    while t < 20_000.0 {
        while let Some((at, rtp, data)) = next.next_if(|a| a.0 <= t) {
            jb.push(*rtp, data, start + Duration::from_secs_f64(at / 1000.0));
        }
        jb.pull(start + Duration::from_secs_f64(t / 1000.0), &mut frame);
        if (t - 9_995.0).abs() < 1.0 {
            jittery = Some(jb.stats());
        }
        t += 10.0;
    }
    let (jittery, clean) = (jittery.unwrap(), jb.stats());
    println!("after 10 s of 80 ms jitter: {jittery:?}");
    println!("after 10 s more of none:    {clean:?}");
    assert!(jittery.target_ms > 50.0, "{jittery:?}");
    assert!(jittery.delay_ms > 50.0, "{jittery:?}");
    assert!(clean.target_ms < 15.0, "{clean:?}");
    assert!(clean.delay_ms < 30.0, "{clean:?}");
    assert!(clean.trimmed_ms > 0);
}

#[test]
fn after_the_speaker_stalls_the_backlog_is_dropped_at_once() {
    // A speaker that takes nothing for 1 s (a device waking up, a busy machine) leaves a
    // second of packets behind; the buffer plays on near its target instead of 1 s late.
    let mut sender = ToneSender::new(500.0, 0.3);
    let start = Instant::now();
    let mut jb = JitterBuffer::new();
    let mut frame = vec![0.0; FRAME_SAMPLES];
    let mut delays = Vec::new();
    let mut t = 5.0;
    let mut k = 0u64;
    while t < 6_000.0 {
        while (k as f64 + 1.0) * 20.0 + 2.0 <= t {
            let at = start + Duration::from_secs_f64(((k as f64 + 1.0) * 20.0 + 2.0) / 1000.0);
            jb.push(k * 960, &sender.next_packet(false), at);
            k += 1;
        }
        let stalled = (2_000.0..3_000.0).contains(&t);
        if !stalled {
            jb.pull(start + Duration::from_secs_f64(t / 1000.0), &mut frame);
            delays.push((t, jb.stats().delay_ms));
        }
        t += 10.0;
    }
    let after = |from: f64| {
        delays
            .iter()
            .filter(|(at, _)| *at >= from)
            .map(|(_, d)| *d)
            .fold(0.0f32, f32::max)
    };
    let stats = jb.stats();
    println!(
        "after a 1 s stall: worst delay from 3.5 s {:.0} ms, from 4 s {:.0} ms; {stats:?}",
        after(3_500.0),
        after(4_000.0)
    );
    assert!(after(3_500.0) < 60.0, "{delays:?}");
    assert!(stats.trimmed_ms >= 900, "{stats:?}");
    assert_eq!(stats.late, 0);
}
