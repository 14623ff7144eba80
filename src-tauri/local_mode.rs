//! Local mode: the coordinator embedded in the app, so Confab works without a Stream account.

use confab_coordinator::{CoordinatorConfig, ExtraListener, RunningCoordinator};
use tauri::{AppHandle, Manager};

/// The embedded coordinator, kept in Tauri's state for as long as the app runs.
pub struct LocalMode {
    pub coordinator: RunningCoordinator,
    /// The same coordinator on this computer's network address, while hosting for the
    /// network (hosting.rs); `None` (the default) keeps it on loopback only.
    pub lan: tokio::sync::Mutex<Option<ExtraListener>>,
}

#[derive(Debug, thiserror::Error)]
pub enum LocalModeError {
    #[error("could not find the app's data folder: {0}")]
    DataDir(#[from] tauri::Error),
    #[error("could not start the local coordinator: {0}")]
    Start(#[from] confab_coordinator::StartError),
}

/// Starts the coordinator on a free loopback port with its data in the app's data folder.
pub fn start(app: &AppHandle) -> Result<LocalMode, LocalModeError> {
    let data_dir = app.path().app_data_dir()?.join("coordinator");
    let mut config = CoordinatorConfig {
        data_dir: Some(data_dir),
        ..CoordinatorConfig::default()
    };
    // How many of a livestream's viewers watch over WebRTC before the next go to HLS (tests
    // and demos set a small cap).
    if let Some(cap) = std::env::var("CONFAB_LIVESTREAM_WEBRTC_VIEWERS")
        .ok()
        .and_then(|v| v.trim().parse().ok())
    {
        config.limits.livestream_webrtc_viewers = cap;
    }
    let coordinator = tauri::async_runtime::block_on(confab_coordinator::start(config))?;
    tracing::info!(target: "confab::shell", base_url = coordinator.base_url(), "local mode ready");
    Ok(LocalMode {
        coordinator,
        lan: tokio::sync::Mutex::new(None),
    })
}

/// The session the window drives, on the embedded coordinator and the OS keychain.
pub fn session(local: &LocalMode) -> confab_session::SessionHandle {
    let options = confab_session::SessionOptions {
        local: confab_session::LocalBackend {
            base_url: local.coordinator.base_url().to_owned(),
            api_key: local.coordinator.api_key().to_owned(),
            signing_key: local.coordinator.signing_key(),
        },
        keychain: confab_credentials::Keychain::default(),
    };
    // The session task runs on the app's async runtime.
    tauri::async_runtime::block_on(async move { confab_session::SessionHandle::start(options) })
}
