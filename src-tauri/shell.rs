//! The shell's own commands: what the page learns about the app, the bridge self-check and
//! the ready signal.

use serde::Serialize;
use tauri::{Emitter, State, WebviewWindow};

use crate::error::CommandError;
use crate::local_mode::LocalMode;

/// What the page shows about the running backend.
#[derive(Debug, Serialize)]
pub struct AppInfo {
    pub name: &'static str,
    pub version: &'static str,
    /// "local": the embedded coordinator; "stream": Stream's service.
    pub mode: &'static str,
    /// Where the coordinator in use answers.
    pub coordinator_url: String,
    /// The embedded coordinator's API key (public, like any API key): other apps on this
    /// computer can watch its livestreams in Stream mode with it.
    pub api_key: String,
}

#[tauri::command]
pub fn app_info(local: State<'_, LocalMode>) -> AppInfo {
    AppInfo {
        name: "Confab",
        version: env!("CARGO_PKG_VERSION"),
        mode: "local",
        coordinator_url: local.coordinator.base_url().to_owned(),
        api_key: local.coordinator.api_key().to_owned(),
    }
}

/// Payload of the `confab:pong` event.
#[derive(Debug, Clone, Serialize)]
pub struct Pong {
    pub nonce: String,
    /// Milliseconds since the Unix epoch when the backend handled the ping.
    pub handled_at_ms: u128,
}

/// A backend self-check: answers through an event rather than the return value, so one call
/// proves both directions of the bridge (page to Rust, Rust to page).
#[tauri::command]
pub fn ping(window: WebviewWindow, nonce: String) -> Result<(), CommandError> {
    let nonce = nonce.trim();
    if nonce.is_empty() || nonce.len() > 128 {
        return Err(CommandError::InvalidInput(
            "the self-check needs a nonce of 1 to 128 characters".into(),
        ));
    }
    let handled_at_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis())
        .unwrap_or_default();
    tracing::debug!(target: "confab::shell", nonce, "self-check ping");
    window
        .emit(
            crate::events::PONG,
            Pong {
                nonce: nonce.to_owned(),
                handled_at_ms,
            },
        )
        .map_err(|e| CommandError::Bridge(e.to_string()))
}

/// The page calls this once it has drawn its first screen. With `CONFAB_REPORT_READY` set the
/// app prints a line the start-up benchmark waits for (it times from spawning the process).
#[tauri::command]
pub fn ui_ready(app: tauri::AppHandle, phases: Option<std::collections::BTreeMap<String, f64>>) {
    // When each start-up step finished, in ms on the page's clock (from its navigation).
    let phases = phases.unwrap_or_default();
    tracing::info!(target: "confab::shell", ?phases, "ui ready");
    // The page listens now: links that came before it are sent.
    crate::links::page_ready(&app);
    if std::env::var_os("CONFAB_REPORT_READY").is_some() {
        use std::io::Write;
        let mut out = std::io::stdout().lock();
        let _ = writeln!(out, "confab: ui ready");
        let _ = out.flush();
    }
}
