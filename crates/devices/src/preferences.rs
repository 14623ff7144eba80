//! Remembered device choices, with the semantics of Stream's device persistence: per kind, the
//! most recent choice first, at most three, matched on start by id and then by label.
//!
//! Stored as a versioned JSON file written atomically (a temp file in the same folder, then a
//! rename), so a crash mid-write leaves the previous file intact.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// How many choices are kept per kind, as in the official client.
pub const MAX_CHOICES_PER_KIND: usize = 3;
/// The file format this code writes; older versions are migrated on read.
pub const FORMAT_VERSION: u32 = 1;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DeviceKind {
    Camera,
    Microphone,
    Speaker,
}

/// One remembered choice. `muted` is absent for speakers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeviceChoice {
    pub device_id: String,
    pub label: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub muted: Option<bool>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DevicePreferences {
    #[serde(default)]
    pub camera: Vec<DeviceChoice>,
    #[serde(default)]
    pub microphone: Vec<DeviceChoice>,
    #[serde(default)]
    pub speaker: Vec<DeviceChoice>,
}

impl DevicePreferences {
    pub fn choices(&self, kind: DeviceKind) -> &[DeviceChoice] {
        match kind {
            DeviceKind::Camera => &self.camera,
            DeviceKind::Microphone => &self.microphone,
            DeviceKind::Speaker => &self.speaker,
        }
    }

    fn choices_mut(&mut self, kind: DeviceKind) -> &mut Vec<DeviceChoice> {
        match kind {
            DeviceKind::Camera => &mut self.camera,
            DeviceKind::Microphone => &mut self.microphone,
            DeviceKind::Speaker => &mut self.speaker,
        }
    }

    /// Records a choice as the most recent. An older entry with the same id, or the same
    /// non-empty label (the same device under a new id), is replaced.
    pub fn remember(&mut self, kind: DeviceKind, choice: DeviceChoice) {
        let list = self.choices_mut(kind);
        list.retain(|old| {
            old.device_id != choice.device_id
                && (choice.label.is_empty() || old.label != choice.label)
        });
        list.insert(0, choice);
        list.truncate(MAX_CHOICES_PER_KIND);
    }

    /// Picks the remembered device among those present: the first entry (most recent first)
    /// whose id is present, else whose label is present. Entries whose device is gone are
    /// skipped. `available` is `(device_id, label)` pairs.
    pub fn preferred<'a>(
        &self,
        kind: DeviceKind,
        available: &'a [(String, String)],
    ) -> Option<(&'a (String, String), &DeviceChoice)> {
        self.choices(kind).iter().find_map(|choice| {
            available
                .iter()
                .find(|(id, _)| *id == choice.device_id)
                .or_else(|| {
                    available
                        .iter()
                        .find(|(_, label)| !choice.label.is_empty() && *label == choice.label)
                })
                .map(|device| (device, choice))
        })
    }
}

#[derive(Debug, thiserror::Error)]
pub enum PreferencesError {
    #[error("could not read device preferences from {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("device preferences in {path} are not valid: {reason}")]
    Corrupt { path: PathBuf, reason: String },
    #[error("could not save device preferences to {path}: {source}")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
}

#[derive(Serialize, Deserialize)]
struct OnDisk {
    version: u32,
    #[serde(flatten)]
    preferences: DevicePreferences,
}

/// The preferences file at one path.
#[derive(Debug, Clone)]
pub struct PreferencesFile {
    path: PathBuf,
}

impl PreferencesFile {
    pub fn new(path: impl Into<PathBuf>) -> Self {
        Self { path: path.into() }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The file for a storage key (Stream's `devicePersistence.storageKey`) in a folder:
    /// the key made safe as a file name, with `.json`.
    pub fn for_storage_key(dir: &Path, storage_key: &str) -> Self {
        let name: String = storage_key
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                    c
                } else {
                    '_'
                }
            })
            .collect();
        let name = name.trim_matches('_');
        let name = if name.is_empty() {
            "device-preferences"
        } else {
            name
        };
        Self::new(dir.join(format!("{name}.json")))
    }

    /// Reads the file. A missing file is empty preferences; anything unreadable is an error
    /// the caller reports as a warning before carrying on with defaults.
    pub fn load(&self) -> Result<DevicePreferences, PreferencesError> {
        let bytes = match fs::read(&self.path) {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Ok(DevicePreferences::default())
            }
            Err(source) => {
                return Err(PreferencesError::Read {
                    path: self.path.clone(),
                    source,
                })
            }
        };
        let corrupt = |reason: String| PreferencesError::Corrupt {
            path: self.path.clone(),
            reason,
        };
        let on_disk: OnDisk = serde_json::from_slice(&bytes).map_err(|e| corrupt(e.to_string()))?;
        if on_disk.version > FORMAT_VERSION {
            return Err(corrupt(format!(
                "format version {} is newer than this app understands ({FORMAT_VERSION})",
                on_disk.version
            )));
        }
        Ok(on_disk.preferences)
    }

    /// Writes the whole file atomically: a temp file beside it, flushed, then renamed over it.
    pub fn save(&self, preferences: &DevicePreferences) -> Result<(), PreferencesError> {
        let write_err = |source| PreferencesError::Write {
            path: self.path.clone(),
            source,
        };
        let dir = self
            .path
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        fs::create_dir_all(dir).map_err(write_err)?;
        let on_disk = OnDisk {
            version: FORMAT_VERSION,
            preferences: preferences.clone(),
        };
        let json = serde_json::to_vec_pretty(&on_disk).expect("preferences serialize to JSON");
        let tmp = self.temp_path();
        let result = (|| {
            let mut file = fs::File::create(&tmp)?;
            file.write_all(&json)?;
            file.sync_all()?;
            fs::rename(&tmp, &self.path)
        })();
        if result.is_err() {
            let _ = fs::remove_file(&tmp);
        }
        result.map_err(write_err)
    }

    fn temp_path(&self) -> PathBuf {
        let mut name = self.path.file_name().unwrap_or_default().to_os_string();
        name.push(format!(".tmp-{}", std::process::id()));
        self.path.with_file_name(name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn choice(id: &str, label: &str) -> DeviceChoice {
        DeviceChoice {
            device_id: id.into(),
            label: label.into(),
            muted: Some(false),
        }
    }

    fn present(devices: &[(&str, &str)]) -> Vec<(String, String)> {
        devices
            .iter()
            .map(|(id, label)| (id.to_string(), label.to_string()))
            .collect()
    }

    #[test]
    fn keeps_the_three_most_recent_choices_newest_first() {
        let mut prefs = DevicePreferences::default();
        for n in 1..=5 {
            prefs.remember(
                DeviceKind::Camera,
                choice(&format!("cam{n}"), &format!("Cam {n}")),
            );
        }
        let ids: Vec<_> = prefs.camera.iter().map(|c| c.device_id.as_str()).collect();
        assert_eq!(ids, ["cam5", "cam4", "cam3"]);
    }

    #[test]
    fn choosing_again_moves_a_device_to_the_front_without_duplicates() {
        let mut prefs = DevicePreferences::default();
        prefs.remember(DeviceKind::Microphone, choice("a", "Mic A"));
        prefs.remember(DeviceKind::Microphone, choice("b", "Mic B"));
        // Same label, new id: the device was re-plugged and got another id.
        prefs.remember(DeviceKind::Microphone, choice("a2", "Mic A"));
        let ids: Vec<_> = prefs
            .microphone
            .iter()
            .map(|c| c.device_id.as_str())
            .collect();
        assert_eq!(ids, ["a2", "b"]);
    }

    #[test]
    fn matches_by_id_then_by_label_and_skips_missing_devices() {
        let mut prefs = DevicePreferences::default();
        prefs.remember(DeviceKind::Camera, choice("old", "Old Cam"));
        prefs.remember(DeviceKind::Camera, choice("usb-1", "USB Cam"));
        prefs.remember(DeviceKind::Camera, choice("gone", "Gone Cam"));

        // "gone" is skipped; "usb-1" is found by its label under a new id.
        let available = present(&[("old", "Old Cam"), ("usb-7", "USB Cam")]);
        let (device, entry) = prefs.preferred(DeviceKind::Camera, &available).unwrap();
        assert_eq!(device.0, "usb-7");
        assert_eq!(entry.device_id, "usb-1");

        // By id first, even when another device has the label.
        let available = present(&[("usb-1", "Renamed"), ("x", "USB Cam")]);
        let (device, _) = prefs.preferred(DeviceKind::Camera, &available).unwrap();
        assert_eq!(device.0, "usb-1");

        assert!(prefs
            .preferred(DeviceKind::Camera, &present(&[("z", "Z")]))
            .is_none());
    }

    #[test]
    fn storage_keys_become_safe_file_names() {
        let dir = Path::new("/cfg");
        let file = PreferencesFile::for_storage_key(dir, "@stream-io/device-preferences");
        assert_eq!(
            file.path(),
            Path::new("/cfg/stream-io_device-preferences.json")
        );
        let file = PreferencesFile::for_storage_key(dir, "../../etc/passwd");
        assert_eq!(file.path().parent(), Some(dir));
        assert_eq!(
            PreferencesFile::for_storage_key(dir, "///").path(),
            Path::new("/cfg/device-preferences.json")
        );
    }

    #[test]
    fn a_saved_file_loads_back() {
        let dir = tempfile::tempdir().unwrap();
        let file = PreferencesFile::new(dir.path().join("nested/devices.json"));
        assert_eq!(file.load().unwrap(), DevicePreferences::default());

        let mut prefs = DevicePreferences::default();
        prefs.remember(
            DeviceKind::Speaker,
            DeviceChoice {
                device_id: "spk".into(),
                label: "Speakers".into(),
                muted: None,
            },
        );
        file.save(&prefs).unwrap();
        assert_eq!(file.load().unwrap(), prefs);
        let text = std::fs::read_to_string(file.path()).unwrap();
        assert!(text.contains("\"version\": 1"), "{text}");
    }

    #[test]
    fn a_corrupt_file_is_a_typed_error_not_a_panic() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("devices.json");
        for junk in ["{not json", "[]", r#"{"version": 99}"#, "\u{0}\u{1}"] {
            std::fs::write(&path, junk).unwrap();
            let err = PreferencesFile::new(&path).load().unwrap_err();
            assert!(
                matches!(err, PreferencesError::Corrupt { .. }),
                "{junk:?}: {err}"
            );
        }
    }

    #[test]
    fn an_interrupted_write_leaves_the_old_file() {
        let dir = tempfile::tempdir().unwrap();
        let file = PreferencesFile::new(dir.path().join("devices.json"));
        let mut prefs = DevicePreferences::default();
        prefs.remember(DeviceKind::Camera, choice("first", "First"));
        file.save(&prefs).unwrap();

        // A crash after writing the temp file but before the rename: the temp file exists,
        // the real one is untouched and still loads.
        std::fs::write(file.temp_path(), b"{\"version\":1,\"camera\":[{\"dev").unwrap();
        assert_eq!(file.load().unwrap(), prefs);

        // The next save replaces the leftover temp file and succeeds.
        prefs.remember(DeviceKind::Camera, choice("second", "Second"));
        file.save(&prefs).unwrap();
        assert_eq!(file.load().unwrap().camera[0].device_id, "second");
        assert!(!file.temp_path().exists());
    }
}
