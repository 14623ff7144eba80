//! Calls from the lobby and watching a livestream: each command hands over to confab-session.

use std::sync::Arc;

use confab_credentials::Backend;
use confab_session::{CallView, Livestream, SessionHandle, WatchForm};
use tauri::{AppHandle, State};

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

/// Takes the joined livestream live (`live: true`) or back to backstage; in local mode the
/// selected camera is broadcast while live.
#[tauri::command]
pub async fn set_live(
    app: AppHandle,
    session: State<'_, SessionHandle>,
    live: bool,
) -> Result<bool, CommandError> {
    let camera = Arc::new(crate::devices::CameraForBroadcast(app));
    Ok(session.set_live(live, camera).await?)
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
