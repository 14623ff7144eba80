//! Devices end to end: the fake devices, PulseAudio's null sink and source (real cpal
//! devices in the test session), hot-plug, remembered choices and the live signals.

use std::sync::Arc;
use std::time::Duration;

use confab_devices::catalog::{FAKE_CAMERA_KEY, FAKE_MICROPHONE_KEY};
use confab_devices::media::{self, MediaError, PreviewFormat};
use confab_devices::{
    DeviceEvent, DeviceKind, DeviceManager, DeviceSource, FakeDevices, PreferencesFile,
    SystemDevices, DEFAULT_KEY,
};

// The audio-hardware tests are `#[ignore]`d for a plain `cargo test`: they need the PulseAudio
// null sink and source of the test session, which runs them with `--include-ignored`.

#[test]
fn fake_devices_are_listed_with_a_default_per_kind() {
    let devices = FakeDevices::new().list_all();
    let keys: Vec<(DeviceKind, &str)> = devices.iter().map(|d| (d.kind, d.key.as_str())).collect();
    assert_eq!(
        keys,
        [
            (DeviceKind::Camera, DEFAULT_KEY),
            (DeviceKind::Microphone, DEFAULT_KEY),
            (DeviceKind::Speaker, DEFAULT_KEY),
            (DeviceKind::Camera, FAKE_CAMERA_KEY),
            (DeviceKind::Microphone, FAKE_MICROPHONE_KEY),
        ]
    );
    assert_eq!(devices[0].label, "Default (Confab test pattern)");
    assert!(devices[3].fake);
}

trait ListAll {
    fn list_all(&self) -> Vec<confab_devices::DeviceInfo>;
}

impl<T: DeviceSource> ListAll for T {
    fn list_all(&self) -> Vec<confab_devices::DeviceInfo> {
        DeviceSource::list(self).unwrap()
    }
}

#[test]
#[ignore = "needs PulseAudio's null devices: run inside scripts/test-session.sh"]
fn pulseaudio_null_devices_are_real_cpal_devices() {
    let devices = SystemDevices::new(None).list_all();
    let mic = devices
        .iter()
        .find(|d| {
            d.kind == DeviceKind::Microphone
                && d.key != DEFAULT_KEY
                && d.label.contains("Confab-Test-Microphone")
        })
        .unwrap_or_else(|| panic!("the null source is listed: {devices:#?}"));
    let speaker = devices
        .iter()
        .find(|d| {
            d.kind == DeviceKind::Speaker
                && d.key != DEFAULT_KEY
                && d.label.contains("Confab-Test-Speaker")
        })
        .unwrap_or_else(|| panic!("the null sink is listed: {devices:#?}"));
    assert_ne!(mic.key, speaker.key, "{mic:?} {speaker:?}");
    assert!(
        !mic.key.chars().all(|c| c.is_ascii_digit()),
        "a key, not an index: {}",
        mic.key
    );
    // Listing twice gives the same keys.
    let again = SystemDevices::new(None).list_all();
    assert!(again.iter().any(|d| d.key == mic.key) && again.iter().any(|d| d.key == speaker.key));
    // No camera here, and that is not an error.
    assert!(devices
        .iter()
        .filter(|d| d.kind == DeviceKind::Camera)
        .all(|d| d.key == DEFAULT_KEY));
}

/// The next `n` device events, each within 5 s.
async fn next_events(
    events: &mut tokio::sync::broadcast::Receiver<DeviceEvent>,
    n: usize,
) -> Vec<DeviceEvent> {
    let mut seen = Vec::with_capacity(n);
    while seen.len() < n {
        let event = tokio::time::timeout(Duration::from_secs(5), events.recv()).await;
        seen.push(event.unwrap().unwrap());
    }
    seen
}

#[tokio::test(start_paused = true)]
async fn an_unplugged_selection_falls_back_to_default_and_comes_back() {
    let fakes = FakeDevices::new();
    let manager = DeviceManager::new(Arc::new(fakes.clone()), None);
    let mut events = manager.events();
    manager
        .select(DeviceKind::Camera, FAKE_CAMERA_KEY, Some(false))
        .unwrap();
    let _watcher = manager.watch(Duration::from_secs(1));

    let camera = fakes.unplug(FAKE_CAMERA_KEY).unwrap();
    tokio::time::advance(Duration::from_millis(1100)).await;
    let seen = next_events(&mut events, 2).await;
    assert!(
        seen.contains(&DeviceEvent::Removed {
            device: camera.clone()
        }),
        "{seen:?}"
    );
    assert!(
        seen.contains(&DeviceEvent::SelectionLost {
            kind: DeviceKind::Camera,
            lost: camera.clone()
        }),
        "{seen:?}"
    );
    assert_eq!(manager.selection().key(DeviceKind::Camera), DEFAULT_KEY);

    fakes.plug(camera.clone());
    tokio::time::advance(Duration::from_millis(1100)).await;
    let seen = next_events(&mut events, 2).await;
    assert!(
        seen.contains(&DeviceEvent::SelectionRestored {
            kind: DeviceKind::Camera,
            device: camera.clone()
        }),
        "{seen:?}"
    );
    assert_eq!(manager.selection().key(DeviceKind::Camera), FAKE_CAMERA_KEY);
}

#[test]
fn choices_are_remembered_and_matched_by_id_then_label() {
    let dir = tempfile::tempdir().unwrap();
    let file = || Some(PreferencesFile::new(dir.path().join("devices.json")));
    let fakes = FakeDevices::new();
    let manager = DeviceManager::new(Arc::new(fakes.clone()), file());
    manager
        .select(DeviceKind::Microphone, FAKE_MICROPHONE_KEY, Some(true))
        .unwrap();
    assert!(manager
        .select(DeviceKind::Microphone, "no-such-mic", None)
        .is_err());

    // A restart: the choice comes back by id.
    let restarted = DeviceManager::new(Arc::new(fakes.clone()), file());
    assert_eq!(
        restarted.selection().key(DeviceKind::Microphone),
        FAKE_MICROPHONE_KEY
    );

    // The device came back under a new id but the same label: matched by label.
    let mic = fakes.unplug(FAKE_MICROPHONE_KEY).unwrap();
    fakes.plug(FakeDevices::device(
        DeviceKind::Microphone,
        "fake:microphone:replugged",
        &mic.label,
    ));
    let relabelled = DeviceManager::new(Arc::new(fakes.clone()), file());
    assert_eq!(
        relabelled.selection().key(DeviceKind::Microphone),
        "fake:microphone:replugged"
    );

    // Gone entirely: the default, no error.
    fakes.unplug("fake:microphone:replugged");
    let gone = DeviceManager::new(Arc::new(fakes), file());
    assert_eq!(gone.selection().key(DeviceKind::Microphone), DEFAULT_KEY);
}

#[test]
fn a_corrupt_file_means_defaults_and_disabled_persistence_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("devices.json");
    std::fs::write(&path, b"{ this is not json").unwrap();
    let manager = DeviceManager::new(
        Arc::new(FakeDevices::new()),
        Some(PreferencesFile::new(&path)),
    );
    assert_eq!(manager.selection().key(DeviceKind::Camera), DEFAULT_KEY);
    // Choosing again repairs the file.
    manager
        .select(DeviceKind::Camera, FAKE_CAMERA_KEY, None)
        .unwrap();
    assert!(PreferencesFile::new(&path).load().is_ok());

    let empty = tempfile::tempdir().unwrap();
    let manager = DeviceManager::new(Arc::new(FakeDevices::new()), None);
    manager
        .select(DeviceKind::Camera, FAKE_CAMERA_KEY, None)
        .unwrap();
    assert_eq!(std::fs::read_dir(empty.path()).unwrap().count(), 0);
}

#[tokio::test]
async fn the_fake_camera_previews_at_its_rate() {
    let (tx, mut rx) = tokio::sync::mpsc::channel(4);
    let format = PreviewFormat {
        width: 320,
        height: 240,
        fps: 30,
    };
    let running = media::start_camera(FAKE_CAMERA_KEY, format, tx).unwrap();
    let mut frames = Vec::new();
    let started = std::time::Instant::now();
    while started.elapsed() < Duration::from_secs(1) {
        if let Ok(Some(frame)) = tokio::time::timeout(Duration::from_millis(200), rx.recv()).await {
            frames.push(frame);
        }
    }
    drop(running);
    assert!(
        (20..=33).contains(&frames.len()),
        "{} frames in a second",
        frames.len()
    );
    assert!(frames.windows(2).all(|w| w[1].sequence > w[0].sequence));
    assert_eq!((frames[0].width, frames[0].height), (320, 240));
}

#[test]
fn opening_a_vanished_device_is_an_error_not_a_panic() {
    let (tx, _rx) = tokio::sync::mpsc::channel(1);
    assert!(matches!(
        media::start_camera("camera:unplugged@usb-1", PreviewFormat::default(), tx),
        Err(MediaError::NotFound(_) | MediaError::Open { .. })
    ));
    let (tx, _rx) = tokio::sync::mpsc::channel(1);
    assert!(matches!(
        media::start_microphone_level("pulseaudio:gone", 20, tx),
        Err(MediaError::NotFound(_))
    ));
    assert!(matches!(
        media::play_test_tone("pulseaudio:gone", Duration::from_millis(10)),
        Err(MediaError::NotFound(_))
    ));
}

#[tokio::test]
async fn the_microphone_level_arrives_20_times_a_second() {
    // The tone microphone: a 0.25 sine reads about -15 dBFS RMS and -12 dBFS peak.
    let (tx, mut rx) = tokio::sync::mpsc::channel(64);
    let running = media::start_microphone_level(FAKE_MICROPHONE_KEY, 20, tx).unwrap();
    tokio::time::sleep(Duration::from_secs(1)).await;
    drop(running);
    let mut levels = Vec::new();
    while let Ok(level) = rx.try_recv() {
        levels.push(level);
    }
    assert!(levels.len() >= 18, "{} levels", levels.len());
    let l = levels[levels.len() / 2];
    assert!(
        (l.rms_dbfs + 15.05).abs() < 0.5 && (l.peak_dbfs + 12.04).abs() < 0.5,
        "{l:?}"
    );
}

#[tokio::test]
#[ignore = "needs PulseAudio's null devices: run inside scripts/test-session.sh"]
async fn the_null_source_level_arrives_in_real_time() {
    // PulseAudio's null source: real time, silence.
    let (tx, mut rx) = tokio::sync::mpsc::channel(256);
    let running = media::start_microphone_level(DEFAULT_KEY, 20, tx).unwrap();
    tokio::time::sleep(Duration::from_secs(1)).await;
    drop(running);
    let mut count = 0;
    while let Ok(level) = rx.try_recv() {
        assert!(
            level.rms_dbfs <= -60.0,
            "the null source is silent: {level:?}"
        );
        count += 1;
    }
    assert!(
        count >= 15,
        "{count} levels from the null source in a second"
    );
}

#[test]
#[ignore = "needs PulseAudio's null devices: run inside scripts/test-session.sh"]
fn a_test_tone_plays_on_the_null_sink() {
    let frames = media::play_test_tone(DEFAULT_KEY, Duration::from_millis(500)).unwrap();
    // At least half a second of audio at the sink's rate (PulseAudio also asks for a buffer
    // ahead, so more is normal).
    assert!(frames >= 20_000, "{frames} frames in 0.5 s");
}
