//! The events the app sends the page, named in one place, and the task that turns the
//! session's status into them.

use confab_session::{SessionHandle, SessionStatus};
use tauri::{AppHandle, Emitter};

/// The connection changed (`ConnectionStatus`): the status bar.
pub const CONNECTION: &str = "confab:connection";
/// The joined call changed (`CallView`): who is in it, backstage or live.
pub const CALL: &str = "confab:call";
/// The host's broadcast progressed (`BroadcastStatus`).
pub const BROADCAST: &str = "confab:broadcast";
/// A device came or went, or a choice fell back (`DeviceEvent`).
pub const DEVICE: &str = "confab:device";
/// The selected microphone's level, 20 times a second (`Level`).
pub const MIC_LEVEL: &str = "confab:mic-level";
/// The answer to `ping` (`Pong`).
pub const PONG: &str = "confab:pong";
/// A `confab://` link to follow, or why it cannot be (`LinkEvent`).
pub const LINK: &str = "confab:link";

/// Every event name, for the test that checks the page listens to no other.
#[cfg(test)]
pub const ALL: &[&str] = &[CONNECTION, CALL, BROADCAST, DEVICE, MIC_LEVEL, PONG, LINK];

/// Sends each part of the session's status to the page when it changes.
pub fn forward_status(app: AppHandle, session: &SessionHandle) {
    let mut status = session.status();
    tauri::async_runtime::spawn(async move {
        let mut shown = SessionStatus::default();
        loop {
            let now = status.borrow_and_update().clone();
            if now.connection != shown.connection {
                let _ = app.emit(CONNECTION, &now.connection);
            }
            if now.call != shown.call {
                if let Some(call) = &now.call {
                    let _ = app.emit(CALL, call);
                }
            }
            if now.broadcast != shown.broadcast {
                if let Some(broadcast) = &now.broadcast {
                    let _ = app.emit(BROADCAST, broadcast);
                }
            }
            shown = now;
            if status.changed().await.is_err() {
                return;
            }
        }
    });
}
