//! The engine on real PulseAudio devices (the test session's null sink and its monitor): a
//! remote participant's tone played on the speaker comes back through the monitor as the
//! microphone, at its pitch; a speaker that is unplugged mid-call falls back to the default.
//! Run inside scripts/test-session.sh (PULSE_COOKIE set).

mod audio_common;

use std::process::Command;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use audio_common::{percentile, windowed_tone_power, ToneSender, RATE};
use confab_audio::tone::{db, energy};
use confab_audio::AudioSettings;
use confab_call::audio::{AudioEngine, AudioError, AudioFault, OpusPacket};
use confab_devices::catalog::DeviceSource;
use confab_devices::{DeviceKind, SystemDevices};

const NEEDS_PULSE: &str = "needs the test session's PulseAudio (scripts/test-session.sh)";

fn key_of(kind: DeviceKind, contains: &str) -> Option<String> {
    SystemDevices::new(None)
        .list()
        .ok()?
        .into_iter()
        .find(|d| d.kind == kind && d.key.contains(contains))
        .map(|d| d.key)
}

fn pactl(args: &[&str]) -> String {
    let out = Command::new("pactl")
        .args(args)
        .output()
        .expect("pactl runs");
    assert!(out.status.success(), "pactl {args:?}: {out:?}");
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

fn decode(packets: &[OpusPacket]) -> Vec<f32> {
    let mut decoder = opus_rs::OpusDecoder::new(RATE as i32, 1).unwrap();
    let mut out = vec![0.0f32; 5760];
    let mut pcm = Vec::new();
    for p in packets {
        let n = decoder.decode(&p.data, 5760, &mut out).unwrap();
        pcm.extend_from_slice(&out[..n]);
    }
    pcm
}

#[test]
#[ignore = "needs the test session's PulseAudio (scripts/test-session.sh)"]
fn a_remote_tone_plays_on_the_speaker_and_lost_devices_fall_back() {
    let _ = NEEDS_PULSE;
    let monitor = key_of(DeviceKind::Microphone, "confab_speaker.monitor")
        .expect("the null sink's monitor is listed");
    let (tx, rx) = mpsc::channel::<OpusPacket>();
    let (fault_tx, fault_rx) = mpsc::channel::<AudioFault>();
    let engine = AudioEngine::start(
        "default",
        &monitor,
        AudioSettings::off(),
        Box::new(move |p| {
            let _ = tx.send(p);
        }),
        Box::new(move |f| {
            let _ = fault_tx.send(f);
        }),
    )
    .expect("the engine starts on PulseAudio");
    // An idle null sink first wakes up after its idle latency (2 s): wait for the speaker.
    let deadline = Instant::now() + Duration::from_secs(6);
    while engine.stats().playout_frames < 20 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = rx.try_iter().count();
    let started = Instant::now();
    let frames_at_start = engine.stats().playout_frames;

    // A remote participant: 100 ms bursts of 660 Hz every 500 ms for 4 s, at real-time pace.
    let mut bob = ToneSender::new(660.0, 0.3);
    let mut burst_sent_at = Vec::new();
    for k in 0..200u64 {
        let at = started + Duration::from_millis(20 * k);
        if let Some(wait) = at.checked_duration_since(Instant::now()) {
            std::thread::sleep(wait);
        }
        let in_burst = k % 25 < 5;
        if k % 25 == 0 {
            burst_sent_at.push(Instant::now());
        }
        let packet = bob.next_packet(!in_burst);
        engine.push_remote("bob", 5_000 + k * 960, &packet, Instant::now());
    }
    std::thread::sleep(Duration::from_millis(300));
    let packets: Vec<OpusPacket> = rx.try_iter().collect();
    let stats = engine.stats();
    println!("{stats:#?}");
    assert!(
        packets.len() > 150,
        "{} packets from the monitor",
        packets.len()
    );
    let played = stats.playout_frames - frames_at_start;
    assert!(played > 350, "{played} playout frames in 4.3 s");
    let bob_stats = &stats.remotes[0];
    assert_eq!(bob_stats.identity, "bob");
    assert_eq!((bob_stats.lost, bob_stats.invalid), (0, 0), "{bob_stats:?}");

    // What the microphone heard: bob's bursts, at bob's pitch.
    let pcm = decode(&packets);
    let p660 = windowed_tone_power(&pcm, 660.0);
    let p440 = windowed_tone_power(&pcm, 440.0);
    println!("monitor: 660 Hz {p660:.5}, 440 Hz {p440:.7}");
    assert!(db(p660, p440) > 20.0, "{p660} {p440}");
    // Onsets: each burst's arrival in the captured audio, from when it was handed over. The
    // first packet taken here was captured about when `started` was.
    let mut delays = Vec::new();
    let mut loud = false;
    for (i, frame) in pcm.chunks_exact(480).enumerate() {
        let now_loud = energy(frame) > 0.002;
        if now_loud && !loud {
            let heard = started + Duration::from_millis(10 * i as u64);
            if let Some(sent) = burst_sent_at.iter().rev().find(|s| **s <= heard) {
                delays.push((heard - *sent).as_secs_f64() * 1000.0);
            }
        }
        loud = now_loud;
    }
    println!(
        "push-to-capture through PulseAudio (device buffers included): p50 {:.0} ms, p95 {:.0} ms over {} bursts",
        percentile(&delays, 50.0),
        percentile(&delays, 95.0),
        delays.len()
    );
    assert!(delays.len() >= 5, "{delays:?}");

    // A device that is not there: refused, and the current one keeps playing.
    assert!(matches!(
        engine.switch_speaker("pulseaudio:no_such_sink"),
        Err(AudioError::NotFound { .. })
    ));

    // A second speaker, then unplugged mid-call: back to the default, with a fault.
    let module = pactl(&[
        "load-module",
        "module-null-sink",
        "sink_name=confab_unplugged",
    ]);
    std::thread::sleep(Duration::from_millis(200));
    let unplugged = key_of(DeviceKind::Speaker, "confab_unplugged").expect("the new sink");
    engine.switch_speaker(&unplugged).expect("switches to it");
    assert_eq!(engine.stats().speaker, unplugged);
    std::thread::sleep(Duration::from_millis(300));
    let unplugged_at = Instant::now();
    pactl(&["unload-module", &module]);
    let fault = fault_rx
        .recv_timeout(Duration::from_secs(15))
        .expect("a fault for the unplugged speaker");
    println!("after {:?}: {fault:?} ({fault})", unplugged_at.elapsed());
    assert_eq!(
        fault,
        AudioFault::SpeakerLost {
            key: unplugged.clone(),
            fell_back_to: Some("default".into())
        }
    );
    std::thread::sleep(Duration::from_millis(300));
    let frames = engine.stats().playout_frames;
    std::thread::sleep(Duration::from_millis(300));
    let stats = engine.stats();
    assert_eq!(stats.speaker, "default");
    assert!(stats.playout_frames > frames + 10, "playing again");

    // The same for a microphone: a null source, unplugged mid-call.
    let module = pactl(&[
        "load-module",
        "module-null-source",
        "source_name=confab_unplugged_mic",
    ]);
    std::thread::sleep(Duration::from_millis(200));
    let mic = key_of(DeviceKind::Microphone, "confab_unplugged_mic").expect("the new source");
    engine.switch_microphone(&mic).expect("switches to it");
    assert_eq!(engine.stats().microphone, mic);
    std::thread::sleep(Duration::from_millis(300));
    let unplugged_at = Instant::now();
    pactl(&["unload-module", &module]);
    let fault = fault_rx
        .recv_timeout(Duration::from_secs(15))
        .expect("a fault for the unplugged microphone");
    println!("after {:?}: {fault:?}", unplugged_at.elapsed());
    assert_eq!(
        fault,
        AudioFault::MicrophoneLost {
            key: mic,
            fell_back_to: Some("default".into())
        }
    );
    std::thread::sleep(Duration::from_millis(500));
    let frames = engine.stats().capture_frames;
    std::thread::sleep(Duration::from_millis(300));
    let stats = engine.stats();
    assert_eq!(stats.microphone, "default");
    assert!(stats.capture_frames > frames + 10, "capturing again");
    let dropping = Instant::now();
    drop(engine);
    println!("the engine stopped in {:?}", dropping.elapsed());
    assert!(dropping.elapsed() < Duration::from_secs(4));
}
