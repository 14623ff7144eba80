//! What devices there are: cameras (nokhwa), microphones and speakers (cpal), the fake test
//! devices when they are switched on, and a "Default" entry per kind.

use std::sync::{Arc, Mutex};

use cpal::traits::{DeviceTrait, HostTrait};
use serde::Serialize;

use crate::preferences::DeviceKind;

/// The key of each kind's "Default" entry: whatever the system's default is at the time.
pub const DEFAULT_KEY: &str = "default";
/// Switches the fake devices on (any value but `0` or empty).
pub const FAKE_DEVICES_ENV: &str = "CONFAB_FAKE_DEVICES";

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DeviceInfo {
    pub kind: DeviceKind,
    /// Stable across restarts and re-plugging where the platform allows: not an index.
    pub key: String,
    pub label: String,
    /// The system's current default of its kind.
    pub is_default: bool,
    pub fake: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum CatalogError {
    #[error("could not list audio devices: {0}")]
    Audio(String),
}

/// Anything that can list devices: the system, or a test's own set.
pub trait DeviceSource: Send + Sync {
    fn list(&self) -> Result<Vec<DeviceInfo>, CatalogError>;
}

/// The fake devices browsers ship for tests, here: a test-pattern camera and a tone
/// microphone. A shared handle, so tests can unplug and re-plug them.
#[derive(Clone)]
pub struct FakeDevices {
    present: Arc<Mutex<Vec<DeviceInfo>>>,
}

pub const FAKE_CAMERA_KEY: &str = "fake:camera:test-pattern";
pub const FAKE_MICROPHONE_KEY: &str = "fake:microphone:tone";

impl FakeDevices {
    pub fn new() -> Self {
        let devices = vec![
            Self::device(DeviceKind::Camera, FAKE_CAMERA_KEY, "Confab test pattern"),
            Self::device(
                DeviceKind::Microphone,
                FAKE_MICROPHONE_KEY,
                "Confab test tone",
            ),
        ];
        Self {
            present: Arc::new(Mutex::new(devices)),
        }
    }

    /// On when `CONFAB_FAKE_DEVICES` is set to something other than `0`.
    pub fn from_env() -> Option<Self> {
        match std::env::var(FAKE_DEVICES_ENV) {
            Ok(v) if !v.is_empty() && v != "0" => Some(Self::new()),
            _ => None,
        }
    }

    pub fn device(kind: DeviceKind, key: &str, label: &str) -> DeviceInfo {
        DeviceInfo {
            kind,
            key: key.to_owned(),
            label: label.to_owned(),
            is_default: false,
            fake: true,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<DeviceInfo>> {
        self.present.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Unplugs a device; returns it.
    pub fn unplug(&self, key: &str) -> Option<DeviceInfo> {
        let mut list = self.lock();
        let index = list.iter().position(|d| d.key == key)?;
        Some(list.remove(index))
    }

    pub fn plug(&self, device: DeviceInfo) {
        let mut list = self.lock();
        list.retain(|d| d.key != device.key);
        list.push(device);
    }

    pub fn list(&self) -> Vec<DeviceInfo> {
        self.lock().clone()
    }
}

impl Default for FakeDevices {
    fn default() -> Self {
        Self::new()
    }
}

impl DeviceSource for FakeDevices {
    fn list(&self) -> Result<Vec<DeviceInfo>, CatalogError> {
        Ok(with_defaults(self.list()))
    }
}

/// The machine's devices, plus the fake ones when switched on.
#[derive(Clone, Default)]
pub struct SystemDevices {
    pub fake: Option<FakeDevices>,
}

impl SystemDevices {
    pub fn new(fake: Option<FakeDevices>) -> Self {
        Self { fake }
    }
}

impl DeviceSource for SystemDevices {
    fn list(&self) -> Result<Vec<DeviceInfo>, CatalogError> {
        let mut devices = cameras();
        devices.extend(audio_devices()?);
        if let Some(fake) = &self.fake {
            devices.extend(fake.list());
        }
        Ok(with_defaults(devices))
    }
}

/// Adds the "Default" entry of each kind, first, labelled after the device it stands for.
pub fn with_defaults(devices: Vec<DeviceInfo>) -> Vec<DeviceInfo> {
    let mut out = Vec::with_capacity(devices.len() + 3);
    for kind in [
        DeviceKind::Camera,
        DeviceKind::Microphone,
        DeviceKind::Speaker,
    ] {
        let current = devices
            .iter()
            .find(|d| d.kind == kind && d.is_default)
            .or_else(|| devices.iter().find(|d| d.kind == kind));
        let label = match current {
            Some(d) => format!("Default ({})", d.label),
            None => "Default".to_owned(),
        };
        out.push(DeviceInfo {
            kind,
            key: DEFAULT_KEY.to_owned(),
            label,
            is_default: false,
            fake: false,
        });
    }
    out.extend(devices);
    out
}

/// Cameras, one per physical camera: V4L2 exposes several nodes (capture, metadata) for one
/// camera, with the same name and bus; they share a key here.
fn cameras() -> Vec<DeviceInfo> {
    let found = match nokhwa::query(nokhwa::utils::ApiBackend::Auto) {
        Ok(found) => found,
        Err(e) => {
            tracing::warn!(target: "devices", error = %e, "could not list cameras");
            return Vec::new();
        }
    };
    let mut out: Vec<DeviceInfo> = Vec::new();
    for info in found {
        let bus = info.description().trim();
        let key = if bus.is_empty() {
            format!("camera:{}", info.human_name())
        } else {
            format!("camera:{}@{bus}", info.human_name())
        };
        if out.iter().any(|d| d.key == key) {
            continue;
        }
        let is_default = out.is_empty();
        out.push(DeviceInfo {
            kind: DeviceKind::Camera,
            key,
            label: info.human_name(),
            is_default,
            fake: false,
        });
    }
    out
}

fn audio_devices() -> Result<Vec<DeviceInfo>, CatalogError> {
    let host = cpal::default_host();
    let default_in = host
        .default_input_device()
        .and_then(|d| d.id().ok())
        .map(|id| id.to_string());
    let default_out = host
        .default_output_device()
        .and_then(|d| d.id().ok())
        .map(|id| id.to_string());
    let mut out = Vec::new();
    let inputs = host
        .input_devices()
        .map_err(|e| CatalogError::Audio(e.to_string()))?;
    let outputs = host
        .output_devices()
        .map_err(|e| CatalogError::Audio(e.to_string()))?;
    for (kind, devices, default) in [
        (
            DeviceKind::Microphone,
            inputs.collect::<Vec<_>>(),
            &default_in,
        ),
        (
            DeviceKind::Speaker,
            outputs.collect::<Vec<_>>(),
            &default_out,
        ),
    ] {
        for device in devices {
            let Ok(id) = device.id() else { continue };
            let id = id.to_string();
            let label = device
                .description()
                .map(|d| d.name().to_owned())
                .unwrap_or_else(|_| id.clone());
            out.push(DeviceInfo {
                kind,
                is_default: default.as_deref() == Some(id.as_str()),
                key: id,
                label,
                fake: false,
            });
        }
    }
    Ok(out)
}

/// Finds the cpal device of a key (`default` for the system default).
pub(crate) fn audio_device(kind: DeviceKind, key: &str) -> Option<cpal::Device> {
    let host = cpal::default_host();
    if key == DEFAULT_KEY {
        return match kind {
            DeviceKind::Microphone => host.default_input_device(),
            _ => host.default_output_device(),
        };
    }
    let mut devices = match kind {
        DeviceKind::Microphone => host.input_devices().ok()?.collect::<Vec<_>>(),
        _ => host.output_devices().ok()?.collect::<Vec<_>>(),
    };
    let index = devices
        .iter()
        .position(|d| d.id().map(|id| id.to_string()).as_deref() == Ok(key))?;
    Some(devices.swap_remove(index))
}
