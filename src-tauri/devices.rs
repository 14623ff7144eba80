//! Device commands and events: the pickers, the camera preview (frames over a Tauri channel),
//! the microphone meter and the speaker test. The logic lives in `confab-devices`.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use confab_devices::media::{self, PreviewFormat, Running};
use confab_devices::{
    DeviceInfo, DeviceKind, DeviceManager, FakeDevices, PreferencesFile, Selection, SystemDevices,
};
use serde::Serialize;
use tauri::ipc::{Channel, InvokeResponseBody};
use tauri::{AppHandle, Emitter, Manager, State};

use crate::error::CommandError;

/// How often the device list is checked for hot-plug changes.
const WATCH_INTERVAL: Duration = Duration::from_secs(2);

pub struct Devices {
    pub manager: Arc<DeviceManager>,
    preview: Mutex<Option<Running>>,
    /// Set when the page has drawn the last frame sent. One frame in flight at most: a page
    /// that is busy, hidden or gone gets fewer frames instead of a growing queue.
    preview_ready: Mutex<Arc<AtomicBool>>,
    meter: Mutex<Option<Running>>,
}

/// Lists devices (with the fake ones when `CONFAB_FAKE_DEVICES` is set), restores the
/// remembered choices, and forwards hot-plug events to the page as `confab:device`.
/// Choices persist as the client's device persistence options say (on by default).
pub fn start(app: &AppHandle) -> Result<Devices, tauri::Error> {
    let persistence = confab_client::ClientOptions::default().device_persistence;
    let file = persistence.enabled.then(|| {
        app.path()
            .app_config_dir()
            .map(|dir| PreferencesFile::for_storage_key(&dir, &persistence.storage_key))
    });
    let manager = DeviceManager::new(
        Arc::new(SystemDevices::new(FakeDevices::from_env())),
        file.transpose()?,
    );
    let mut events = manager.events();
    let handle = app.clone();
    tauri::async_runtime::spawn(async move {
        while let Ok(event) = events.recv().await {
            let _ = handle.emit(crate::events::DEVICE, &event);
            crate::call_media::follow_device_change(&handle, &event).await;
        }
    });
    let watcher = manager.clone();
    tauri::async_runtime::spawn(async move {
        let _ = watcher.watch(WATCH_INTERVAL).await;
    });
    Ok(Devices {
        manager,
        preview: Mutex::new(None),
        preview_ready: Mutex::new(Arc::new(AtomicBool::new(true))),
        meter: Mutex::new(None),
    })
}

#[derive(Debug, Serialize)]
pub struct DeviceList {
    devices: Vec<DeviceInfo>,
    selection: Selection,
}

#[tauri::command]
pub fn list_devices(devices: State<'_, Devices>) -> DeviceList {
    DeviceList {
        devices: devices.manager.devices(),
        selection: devices.manager.selection(),
    }
}

fn parse_kind(kind: &str) -> Result<DeviceKind, CommandError> {
    match kind {
        "camera" => Ok(DeviceKind::Camera),
        "microphone" => Ok(DeviceKind::Microphone),
        "speaker" => Ok(DeviceKind::Speaker),
        other => Err(CommandError::InvalidInput(format!(
            "{other:?} is not a device kind: use camera, microphone or speaker"
        ))),
    }
}

#[tauri::command]
pub fn select_device(
    devices: State<'_, Devices>,
    kind: String,
    key: String,
) -> Result<DeviceInfo, CommandError> {
    let kind = parse_kind(&kind)?;
    devices
        .manager
        .select(kind, &key, None)
        .map_err(|e| CommandError::Device(e.to_string()))
}

/// Frames go to the page as raw bytes: a 16-byte header (width, height as little-endian
/// u32; sequence as u64) and then RGBA pixels.
/// The selected camera's key, with "Default" resolved to the first connected camera.
pub(crate) fn selected_camera(devices: &Devices) -> Result<String, CommandError> {
    let key = devices
        .manager
        .selection()
        .key(DeviceKind::Camera)
        .to_owned();
    if key != confab_devices::DEFAULT_KEY {
        return Ok(key);
    }
    devices
        .manager
        .devices()
        .into_iter()
        .find(|d| d.kind == DeviceKind::Camera && d.key != confab_devices::DEFAULT_KEY)
        .map(|d| d.key)
        .ok_or_else(|| CommandError::Device("no camera is connected".into()))
}

/// Releases the camera the preview holds (a real camera opens once at a time).
pub(crate) fn release_preview_camera(devices: &Devices) {
    devices
        .preview
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .take();
}

#[tauri::command]
pub fn start_preview(
    devices: State<'_, Devices>,
    frames: Channel<InvokeResponseBody>,
    width: Option<u32>,
    height: Option<u32>,
    fps: Option<u32>,
) -> Result<(), CommandError> {
    let key = selected_camera(&devices)?;
    let format = PreviewFormat {
        width: width.unwrap_or(640).clamp(64, 1920),
        height: height.unwrap_or(360).clamp(48, 1080),
        fps: fps.unwrap_or(30).clamp(1, 60),
    };
    let (tx, mut rx) = tokio::sync::mpsc::channel::<confab_devices::fake::Frame>(2);
    let running =
        media::start_camera(&key, format, tx).map_err(|e| CommandError::Device(e.to_string()))?;
    let ready = Arc::new(AtomicBool::new(true));
    *devices
        .preview_ready
        .lock()
        .unwrap_or_else(|p| p.into_inner()) = ready.clone();
    tauri::async_runtime::spawn(async move {
        while let Some(frame) = rx.recv().await {
            if !ready.swap(false, Ordering::AcqRel) {
                continue; // the page has not drawn the previous frame yet
            }
            let mut bytes = Vec::with_capacity(16 + frame.rgba.len());
            bytes.extend_from_slice(&frame.width.to_le_bytes());
            bytes.extend_from_slice(&frame.height.to_le_bytes());
            bytes.extend_from_slice(&frame.sequence.to_le_bytes());
            bytes.extend_from_slice(&frame.rgba);
            if frames.send(InvokeResponseBody::Raw(bytes)).is_err() {
                break;
            }
        }
    });
    *devices.preview.lock().unwrap_or_else(|p| p.into_inner()) = Some(running);
    Ok(())
}

/// The page drew the last frame: the next one may go.
#[tauri::command]
pub fn preview_shown(devices: State<'_, Devices>) {
    devices
        .preview_ready
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .store(true, Ordering::Release);
}

#[tauri::command]
pub fn stop_preview(devices: State<'_, Devices>) {
    release_preview_camera(&devices);
}

/// Emits `confab:mic-level` ({rms_dbfs, peak_dbfs}) 20 times a second.
#[tauri::command]
pub fn start_mic_meter(app: AppHandle, devices: State<'_, Devices>) -> Result<(), CommandError> {
    let key = devices
        .manager
        .selection()
        .key(DeviceKind::Microphone)
        .to_owned();
    let (tx, mut rx) = tokio::sync::mpsc::channel(32);
    let running = media::start_microphone_level(&key, 20, tx)
        .map_err(|e| CommandError::Device(e.to_string()))?;
    tauri::async_runtime::spawn(async move {
        while let Some(level) = rx.recv().await {
            let _ = app.emit(crate::events::MIC_LEVEL, level);
        }
    });
    *devices.meter.lock().unwrap_or_else(|p| p.into_inner()) = Some(running);
    Ok(())
}

#[tauri::command]
pub fn stop_mic_meter(devices: State<'_, Devices>) {
    devices
        .meter
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .take();
}

/// Plays a one-second tone on the selected speaker.
#[tauri::command]
pub async fn play_test_tone(devices: State<'_, Devices>) -> Result<u64, CommandError> {
    let key = devices
        .manager
        .selection()
        .key(DeviceKind::Speaker)
        .to_owned();
    tauri::async_runtime::spawn_blocking(move || {
        media::play_test_tone(&key, Duration::from_secs(1))
    })
    .await
    .map_err(|e| CommandError::Bridge(e.to_string()))?
    .map_err(|e| CommandError::Device(e.to_string()))
}
