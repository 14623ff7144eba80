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

/// The longest window title kept: task bars and share pickers show little more.
const MAX_TITLE_CHARS: usize = 120;

/// Sets the window's title as the desktop shows it (task bar, window switcher, other apps'
/// screen-share pickers, ours included): the page names what is on screen, so two Confab
/// windows (two calls, two people) can be told apart.
#[tauri::command]
pub fn set_window_title(window: WebviewWindow, title: String) -> Result<(), CommandError> {
    let title = window_title(&title)?;
    window
        .set_title(&title)
        .map_err(|e| CommandError::Bridge(e.to_string()))
}

/// `title` without control characters (a title is one line), trimmed, at most
/// `MAX_TITLE_CHARS` characters; nothing left is refused.
fn window_title(title: &str) -> Result<String, CommandError> {
    let one_line: String = title.chars().filter(|c| !c.is_control()).collect();
    let trimmed = one_line.trim();
    if trimmed.is_empty() {
        return Err(CommandError::InvalidInput(
            "a window title needs some text".into(),
        ));
    }
    Ok(trimmed.chars().take(MAX_TITLE_CHARS).collect())
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_window_title_is_one_trimmed_line_of_bounded_length() {
        assert_eq!(
            window_title("  Call standup — Ada\n — Confab ").unwrap(),
            "Call standup — Ada — Confab"
        );
        let long = "é".repeat(500);
        assert_eq!(
            window_title(&long).unwrap().chars().count(),
            MAX_TITLE_CHARS
        );
        let refused = window_title(" \t\n ").unwrap_err();
        assert_eq!(refused.code(), "invalid_input");
    }
}
