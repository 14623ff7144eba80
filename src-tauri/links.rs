//! `confab://` links from the command line: the first launch's own, and those a second launch
//! hands over before it exits (one instance). confab-session reads them; the page acts on them
//! (`confab:link`), once it listens.

use std::sync::Mutex;

use confab_session::Link;
use serde::Serialize;
use tauri::{AppHandle, Emitter, Manager};

/// The payload of `confab:link`: what a link asks for, or why it cannot be followed.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum LinkEvent {
    Link(Link),
    Error { code: &'static str, message: String },
}

/// Links that arrived before the page listened, sent when it says it is ready.
#[derive(Default)]
pub struct LinkInbox(Mutex<Inbox>);

#[derive(Default)]
struct Inbox {
    page_ready: bool,
    waiting: Vec<LinkEvent>,
}

/// Reads the link among `args` (a launch's command line), if any, and passes it on.
pub fn receive(app: &AppHandle, args: Vec<String>) {
    let Some(text) = Link::find_in_args(args) else {
        return;
    };
    let event = match Link::parse(&text) {
        Ok(link) => LinkEvent::Link(link),
        Err(e) => {
            // The link itself may hold a token: log only why it was refused.
            tracing::info!(target: "confab::shell", reason = %e, "link refused");
            LinkEvent::Error {
                code: "invalid_link",
                message: e.to_string(),
            }
        }
    };
    let Some(inbox) = app.try_state::<LinkInbox>() else {
        return;
    };
    let Ok(mut inbox) = inbox.0.lock() else {
        return;
    };
    if inbox.page_ready {
        let _ = app.emit(crate::events::LINK, &event);
    } else {
        inbox.waiting.push(event);
    }
}

/// A second launch: bring the window forward, then follow its link.
pub fn second_launch(app: &AppHandle, args: Vec<String>) {
    if let Some(window) = app.get_webview_window("main") {
        let _ = window.unminimize();
        let _ = window.set_focus();
    }
    receive(app, args);
}

/// The page listens now: send what waited.
pub fn page_ready(app: &AppHandle) {
    let Some(inbox) = app.try_state::<LinkInbox>() else {
        return;
    };
    let Ok(mut inbox) = inbox.0.lock() else {
        return;
    };
    inbox.page_ready = true;
    for event in inbox.waiting.drain(..) {
        let _ = app.emit(crate::events::LINK, &event);
    }
}

/// A second launch hands its arguments to the running instance and returns true, before GTK,
/// WebKit or the async runtime start: the plugin does the same from inside Tauri's start-up,
/// and exiting there, with all of them running, now and then crashed (SIGSEGV). The plugin
/// stays as the running instance's side, and catches a launch that races this check.
#[cfg(target_os = "linux")]
pub fn hand_over_to_running_instance(identifier: &str) -> bool {
    let name = format!("{}.SingleInstance", instance_id(identifier));
    let path = format!("/{}", name.replace('.', "/").replace('-', "_"));
    let Ok(connection) = zbus::blocking::Connection::session() else {
        return false;
    };
    let args: Vec<String> = std::env::args_os()
        .map(|a| a.to_string_lossy().into_owned())
        .collect();
    let cwd = std::env::current_dir()
        .unwrap_or_default()
        .to_string_lossy()
        .into_owned();
    // Fails (nobody owns the name) when no instance runs: then this launch is the first.
    connection
        .call_method(
            Some(name.as_str()),
            path.as_str(),
            Some("org.SingleInstance.DBus"),
            "ExecuteCallback",
            &(args, cwd),
        )
        .is_ok()
}

#[cfg(not(target_os = "linux"))]
pub fn hand_over_to_running_instance(_identifier: &str) -> bool {
    false
}

/// The name this instance answers second launches under. `CONFAB_INSTANCE` makes a separate
/// instance (its own window and name): for tests, which run several windows in one session.
pub fn instance_id(identifier: &str) -> String {
    let separate: String = std::env::var("CONFAB_INSTANCE")
        .unwrap_or_default()
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || *c == '_')
        .take(64)
        .collect();
    if separate.is_empty() {
        identifier.to_owned()
    } else {
        // A D-Bus name element must not start with a digit.
        format!("{identifier}.i{separate}")
    }
}
