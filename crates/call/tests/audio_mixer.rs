//! The receive path without devices: two remote participants' Opus packets through jitter
//! buffers, the decoder (with concealment) and the mixer, on a simulated network and clock.

mod audio_common;

use std::time::{Duration, Instant};

use audio_common::{windowed_tone_power, Rng, ToneSender, RATE};
use confab_audio::tone::{db, energy};
use confab_audio::FRAME_SAMPLES;
use confab_call::audio::{Mixer, PACKET_SAMPLES};

struct Arrival {
    at: Duration,
    identity: &'static str,
    rtp_time: u64,
    data: Vec<u8>,
}

/// Packets of two senders (440 Hz as "ann", 660 Hz as "bob") for `seconds`, with up to
/// `jitter_ms` of random delay, 5 % loss and some pairs swapped; sorted by arrival.
fn network(seconds: u64, jitter_ms: f64, rng: &mut Rng) -> (Vec<Arrival>, usize) {
    let mut arrivals = Vec::new();
    let mut dropped = 0;
    for (identity, hz, rtp_base) in [("ann", 440.0, 1_000u64), ("bob", 660.0, 7_777_777)] {
        let mut sender = ToneSender::new(hz, 0.3);
        for k in 0..seconds * 50 {
            let data = sender.next_packet(false);
            if rng.unit() < 0.05 {
                dropped += 1;
                continue;
            }
            // Sent when its 20 ms are captured; 5 ms on the wire plus jitter.
            let mut at_ms = (k as f64 + 1.0) * 20.0 + 5.0 + rng.unit() * jitter_ms;
            if rng.unit() < 0.05 {
                // Reordered: overtaken by the next packet.
                at_ms += 25.0;
            }
            arrivals.push(Arrival {
                at: Duration::from_secs_f64(at_ms / 1000.0),
                identity,
                rtp_time: rtp_base + k * PACKET_SAMPLES as u64,
                data,
            });
        }
    }
    arrivals.sort_by_key(|a| a.at);
    (arrivals, dropped)
}

/// Runs the mixer: delivers packets as they arrive and pulls 10 ms every 10 ms (at a phase
/// of 3 ms) until `until`; returns the mix and how many packets were delivered.
fn run(
    mixer: &mut Mixer,
    start: Instant,
    arrivals: &[Arrival],
    until: Duration,
) -> (Vec<f32>, usize) {
    let mut mix = Vec::new();
    let mut frame = vec![0.0; FRAME_SAMPLES];
    let mut next = arrivals.iter().peekable();
    let mut delivered = 0;
    let mut t = Duration::from_millis(3);
    while t < until {
        while let Some(a) = next.next_if(|a| a.at <= t) {
            mixer.push(a.identity, a.rtp_time, &a.data, start + a.at);
            delivered += 1;
        }
        mixer.pull(start + t, &mut frame);
        mix.extend_from_slice(&frame);
        t += Duration::from_millis(10);
    }
    (mix, delivered)
}

#[test]
fn two_participants_are_both_heard_through_reordering_and_loss() {
    let mut rng = Rng::new(7);
    let (arrivals, dropped) = network(3, 15.0, &mut rng);
    let start = Instant::now();
    let mut mixer = Mixer::new();
    let (mix, delivered) = run(&mut mixer, start, &arrivals, Duration::from_secs(3));
    // Judge the last 2 s (the first second holds the start and the delay settling).
    let tail = &mix[mix.len() - 2 * RATE as usize..];
    let (p440, p660) = (
        windowed_tone_power(tail, 440.0),
        windowed_tone_power(tail, 660.0),
    );
    let off = windowed_tone_power(tail, 550.0);
    let e = energy(tail);
    let stats = mixer.stats();
    println!(
        "mix: 440 Hz {:.4}, 660 Hz {:.4}, 550 Hz {:.6}, energy {e:.4}; dropped on the wire {dropped}",
        p440, p660, off
    );
    for s in &stats {
        println!("{s:?}");
    }
    // A 0.3 sine alone gives 0.0225; concealment and the codec take a little.
    assert!(p440 > 0.01 && p660 > 0.01, "{p440} {p660}");
    assert!(
        db(p440, off) > 20.0 && db(p660, off) > 20.0,
        "{p440} {p660} {off}"
    );
    // The two tones carry nearly all the energy (a sine's power is half its energy share
    // here: tone_power of amplitude a is a²/4, energy a²/2).
    assert!(2.0 * (p440 + p660) > 0.7 * e, "{p440} {p660} {e}");
    assert_eq!(stats.len(), 2);
    let total_lost: u64 = stats.iter().map(|s| s.lost).sum();
    let total_packets: u64 = stats.iter().map(|s| s.packets).sum();
    assert_eq!(total_packets as usize, delivered);
    // The wire lost ~5 %; concealment covered those, and few more arrived too late.
    assert!(
        total_lost as usize >= dropped * 8 / 10,
        "{total_lost} vs {dropped}"
    );
    assert!(
        (total_lost as usize) < dropped * 2 + 10,
        "{total_lost} vs {dropped}"
    );
    for s in &stats {
        assert!(s.playing);
        assert!(s.target_ms <= 200.0);
        assert_eq!(s.invalid, 0);
    }
}

#[test]
fn a_removed_participant_leaves_the_mix_and_garbage_does_not_stop_it() {
    let mut rng = Rng::new(11);
    let (arrivals, _) = network(2, 5.0, &mut rng);
    let start = Instant::now();
    let mut mixer = Mixer::new();
    let (first, second): (Vec<_>, Vec<_>) = arrivals
        .into_iter()
        .partition(|a| a.at < Duration::from_secs(1));
    run(&mut mixer, start, &first, Duration::from_secs(1));
    mixer.remove("bob");
    // Garbage from a third sender is counted and skipped.
    for k in 0..50u64 {
        let junk = [0x7f_u8, 0x00, 0xff, 0x13, (k * 37) as u8];
        mixer.push(
            "mallory",
            k * 960,
            &junk,
            start + Duration::from_millis(1000 + k * 20),
        );
        mixer.push(
            "mallory",
            k * 960 + 480,
            &[],
            start + Duration::from_millis(1000 + k * 20),
        );
    }
    let second: Vec<Arrival> = second.into_iter().filter(|a| a.identity == "ann").collect();
    let mix = {
        let mut frame = vec![0.0; FRAME_SAMPLES];
        let mut out = Vec::new();
        let mut next = second.iter().peekable();
        let mut t = Duration::from_millis(1003);
        while t < Duration::from_secs(2) {
            while let Some(a) = next.next_if(|a| a.at <= t) {
                mixer.push(a.identity, a.rtp_time, &a.data, start + a.at);
            }
            mixer.pull(start + t, &mut frame);
            out.extend_from_slice(&frame);
            t += Duration::from_millis(10);
        }
        out
    };
    let tail = &mix[mix.len() / 2..];
    let (p440, p660) = (
        windowed_tone_power(tail, 440.0),
        windowed_tone_power(tail, 660.0),
    );
    println!("after removing bob: 440 Hz {p440:.4}, 660 Hz {p660:.6}");
    assert!(p440 > 0.01, "{p440}");
    assert!(db(p440, p660) > 25.0, "{p440} {p660}");
    assert!(tail.iter().all(|s| s.is_finite() && s.abs() <= 1.0));
    let stats = mixer.stats();
    assert!(stats.iter().all(|s| s.identity != "bob"));
    let mallory = stats.iter().find(|s| s.identity == "mallory").unwrap();
    assert_eq!(mallory.packets, 100);
    assert!(mallory.invalid >= 50, "{mallory:?}");
}
