//! Hot-plug: a watcher lists devices on an interval and turns changes into events; the
//! selection falls back to the default when its device goes, and comes back when it returns.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::Serialize;
use tokio::sync::broadcast;

use crate::catalog::{DeviceInfo, DeviceSource, DEFAULT_KEY};
use crate::preferences::{DeviceChoice, DeviceKind, DevicePreferences, PreferencesFile};

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum DeviceEvent {
    Added {
        device: DeviceInfo,
    },
    Removed {
        device: DeviceInfo,
    },
    DefaultChanged {
        kind: DeviceKind,
        key: String,
    },
    /// The selected device went away; the selection is now the default.
    SelectionLost {
        kind: DeviceKind,
        lost: DeviceInfo,
    },
    /// A device chosen before came back and is selected again.
    SelectionRestored {
        kind: DeviceKind,
        device: DeviceInfo,
    },
    /// Listing failed this round (the last known list stays).
    ListFailed {
        message: String,
    },
}

/// Which device of each kind is in use, and which one the user wanted if it is gone.
#[derive(Debug, Default, Clone, PartialEq, Serialize)]
pub struct Selection {
    pub selected: HashMap<DeviceKind, String>,
    /// Chosen but unplugged: restored when it comes back.
    pub wanted: HashMap<DeviceKind, String>,
}

impl Selection {
    pub fn key(&self, kind: DeviceKind) -> &str {
        self.selected
            .get(&kind)
            .map(String::as_str)
            .unwrap_or(DEFAULT_KEY)
    }
}

/// Keeps the device list, the selection and the remembered choices together.
pub struct DeviceManager {
    source: Arc<dyn DeviceSource>,
    preferences: Option<PreferencesFile>,
    state: Mutex<ManagerState>,
    events: broadcast::Sender<DeviceEvent>,
}

struct ManagerState {
    devices: Vec<DeviceInfo>,
    selection: Selection,
    remembered: DevicePreferences,
}

#[derive(Debug, thiserror::Error)]
pub enum SelectError {
    #[error("there is no {kind:?} with key {key:?}: it may have been unplugged")]
    NoSuchDevice { kind: DeviceKind, key: String },
}

impl DeviceManager {
    /// Lists devices and picks, per kind, the remembered choice that is present (by id, then
    /// by label). `preferences` is `None` when persistence is off: nothing is read or written.
    /// A preferences file that cannot be read means defaults and a warning.
    pub fn new(source: Arc<dyn DeviceSource>, preferences: Option<PreferencesFile>) -> Arc<Self> {
        let remembered = match preferences.as_ref().map(PreferencesFile::load) {
            Some(Ok(p)) => p,
            Some(Err(e)) => {
                tracing::warn!(target: "devices", error = %e, "device preferences ignored");
                DevicePreferences::default()
            }
            None => DevicePreferences::default(),
        };
        let devices = source.list().unwrap_or_else(|e| {
            tracing::warn!(target: "devices", error = %e, "could not list devices");
            Vec::new()
        });
        let mut selection = Selection::default();
        for kind in [
            DeviceKind::Camera,
            DeviceKind::Microphone,
            DeviceKind::Speaker,
        ] {
            let available: Vec<(String, String)> = devices
                .iter()
                .filter(|d| d.kind == kind && d.key != DEFAULT_KEY)
                .map(|d| (d.key.clone(), d.label.clone()))
                .collect();
            if let Some(((key, _), _)) = remembered.preferred(kind, &available) {
                selection.selected.insert(kind, key.clone());
            }
        }
        let (events, _) = broadcast::channel(64);
        Arc::new(Self {
            source,
            preferences,
            state: Mutex::new(ManagerState {
                devices,
                selection,
                remembered,
            }),
            events,
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, ManagerState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn devices(&self) -> Vec<DeviceInfo> {
        self.lock().devices.clone()
    }

    pub fn selection(&self) -> Selection {
        self.lock().selection.clone()
    }

    pub fn events(&self) -> broadcast::Receiver<DeviceEvent> {
        self.events.subscribe()
    }

    /// Selects a device (or `default`) and remembers the choice.
    pub fn select(
        &self,
        kind: DeviceKind,
        key: &str,
        muted: Option<bool>,
    ) -> Result<DeviceInfo, SelectError> {
        let mut state = self.lock();
        let device = state
            .devices
            .iter()
            .find(|d| d.kind == kind && d.key == key)
            .cloned()
            .ok_or_else(|| SelectError::NoSuchDevice {
                kind,
                key: key.to_owned(),
            })?;
        state.selection.selected.insert(kind, key.to_owned());
        state.selection.wanted.remove(&kind);
        let muted = if kind == DeviceKind::Speaker {
            None
        } else {
            muted.or(Some(false))
        };
        state.remembered.remember(
            kind,
            DeviceChoice {
                device_id: key.to_owned(),
                label: device.label.clone(),
                muted,
            },
        );
        if let Some(file) = &self.preferences {
            if let Err(e) = file.save(&state.remembered) {
                tracing::warn!(target: "devices", error = %e, "could not save the device choice");
            }
        }
        Ok(device)
    }

    /// Lists devices once and applies the changes. Returns the events it sent.
    pub fn refresh(&self) -> Vec<DeviceEvent> {
        let listed = self.source.list();
        let mut state = self.lock();
        let new = match listed {
            Ok(new) => new,
            Err(e) => {
                let event = DeviceEvent::ListFailed {
                    message: e.to_string(),
                };
                let _ = self.events.send(event.clone());
                return vec![event];
            }
        };
        let mut events = Vec::new();
        for d in &new {
            if !state
                .devices
                .iter()
                .any(|o| o.kind == d.kind && o.key == d.key)
            {
                events.push(DeviceEvent::Added { device: d.clone() });
            }
        }
        for o in &state.devices {
            if !new.iter().any(|d| d.kind == o.kind && d.key == o.key) {
                events.push(DeviceEvent::Removed { device: o.clone() });
            }
        }
        for kind in [
            DeviceKind::Camera,
            DeviceKind::Microphone,
            DeviceKind::Speaker,
        ] {
            let default_of = |list: &[DeviceInfo]| {
                list.iter()
                    .find(|d| d.kind == kind && d.is_default)
                    .map(|d| d.key.clone())
            };
            let (before, after) = (default_of(&state.devices), default_of(&new));
            if before != after {
                if let Some(key) = after {
                    events.push(DeviceEvent::DefaultChanged { kind, key });
                }
            }
            // The selected device went away: fall back to the default, remember the wish.
            let selected = state.selection.key(kind).to_owned();
            if selected != DEFAULT_KEY && !new.iter().any(|d| d.kind == kind && d.key == selected) {
                if let Some(lost) = state
                    .devices
                    .iter()
                    .find(|d| d.kind == kind && d.key == selected)
                    .cloned()
                {
                    events.push(DeviceEvent::SelectionLost { kind, lost });
                }
                state.selection.selected.remove(&kind);
                state.selection.wanted.insert(kind, selected);
            }
            // The wanted device is back: select it again.
            if let Some(wanted) = state.selection.wanted.get(&kind).cloned() {
                if let Some(device) = new.iter().find(|d| d.kind == kind && d.key == wanted) {
                    state.selection.selected.insert(kind, wanted);
                    state.selection.wanted.remove(&kind);
                    events.push(DeviceEvent::SelectionRestored {
                        kind,
                        device: device.clone(),
                    });
                }
            }
        }
        state.devices = new;
        drop(state);
        for event in &events {
            let _ = self.events.send(event.clone());
        }
        events
    }

    /// Refreshes every `interval` until the manager is dropped.
    pub fn watch(self: &Arc<Self>, interval: Duration) -> tokio::task::JoinHandle<()> {
        let weak = Arc::downgrade(self);
        tokio::spawn(async move {
            // The list was just read by `new`: the first look is one interval away.
            let mut ticks =
                tokio::time::interval_at(tokio::time::Instant::now() + interval, interval);
            ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                ticks.tick().await;
                let Some(manager) = weak.upgrade() else {
                    return;
                };
                // Listing devices blocks (ALSA, PulseAudio, V4L): keep it off the runtime's
                // workers, which also serve the window's commands.
                if tokio::task::spawn_blocking(move || manager.refresh())
                    .await
                    .is_err()
                {
                    return;
                }
            }
        })
    }
}
