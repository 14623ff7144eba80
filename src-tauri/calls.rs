//! Calls from the lobby and watching a livestream: each command hands over to confab-session.

use confab_credentials::Backend;
use confab_session::{CallView, Livestream, SessionHandle, Watch, WatchForm, WatchMediaSetup};
use tauri::State;

use crate::error::CommandError;

#[tauri::command]
pub async fn join_call(
    session: State<'_, SessionHandle>,
    devices: State<'_, crate::devices::Devices>,
    processing: State<'_, crate::call_media::AudioProcessingChoice>,
    call_type: String,
    call_id: String,
) -> Result<CallView, CommandError> {
    let media = crate::call_media::setup(&devices, &processing);
    Ok(session.join_call(&call_type, &call_id, Some(media)).await?)
}

#[tauri::command]
pub async fn leave_call(session: State<'_, SessionHandle>) -> Result<(), CommandError> {
    Ok(session.leave_call().await?)
}

/// Takes the joined livestream live (`live: true`) or back to backstage; in local mode going
/// live also starts the HLS broadcast of what the host publishes.
#[tauri::command]
pub async fn set_live(session: State<'_, SessionHandle>, live: bool) -> Result<bool, CommandError> {
    Ok(session.set_live(live).await?)
}

#[tauri::command]
pub async fn viewer_token(
    session: State<'_, SessionHandle>,
) -> Result<Option<String>, CommandError> {
    Ok(session.viewer_token().await?)
}

#[tauri::command]
pub async fn watch_livestream(
    session: State<'_, SessionHandle>,
    backend: Backend,
    call_id: String,
    call_token: Option<String>,
) -> Result<Livestream, CommandError> {
    let form = WatchForm {
        backend,
        call_id,
        call_token,
    };
    Ok(session.watch_livestream(form).await?)
}

/// Starts playing a live livestream over WebRTC (with a call token: the host's picture and
/// sound through the SFU, on the selected speaker). The answer says whether it plays that
/// way or over HLS, and why.
#[tauri::command]
pub async fn start_watching(
    session: State<'_, SessionHandle>,
    devices: State<'_, crate::devices::Devices>,
    processing: State<'_, crate::call_media::AudioProcessingChoice>,
    backend: Backend,
    call_id: String,
    call_token: Option<String>,
) -> Result<Watch, CommandError> {
    let form = WatchForm {
        backend,
        call_id,
        call_token,
    };
    // Only the speaker: a viewer opens no camera (whose lookup may wait for the device list).
    let media = WatchMediaSetup {
        speaker: devices
            .manager
            .selection()
            .key(confab_devices::DeviceKind::Speaker)
            .to_owned(),
        audio: processing.settings(),
    };
    Ok(session.start_watching(form, media).await?)
}

#[tauri::command]
pub async fn stop_watching(session: State<'_, SessionHandle>) -> Result<(), CommandError> {
    session.stop_watching().await;
    Ok(())
}
