//! `confab-devices`: the user's cameras, microphones and speakers, the fake test devices, the
//! choices they made, and the live signals the lobby shows (camera preview, microphone level,
//! speaker test tone).

pub mod catalog;
pub mod fake;
pub mod level;
pub mod media;
pub mod preferences;
pub mod pulse_cookie;
pub mod watcher;

pub use catalog::{DeviceInfo, DeviceSource, FakeDevices, SystemDevices, DEFAULT_KEY};
pub use preferences::{
    DeviceChoice, DeviceKind, DevicePreferences, PreferencesError, PreferencesFile,
};
pub use watcher::{DeviceEvent, DeviceManager, Selection};
