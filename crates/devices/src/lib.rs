//! `confab-devices`: the user's cameras, microphones and speakers, and the choices they made.

pub mod preferences;

pub use preferences::{
    DeviceChoice, DeviceKind, DevicePreferences, PreferencesError, PreferencesFile,
};
