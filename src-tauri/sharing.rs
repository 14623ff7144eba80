//! Sharing a screen or a window in a call: what can be shared, a small live picture of each
//! for the picker, and starting and stopping (confab-screen captures, confab-call sends).

use confab_call::MediaView;
use confab_screen::{DisplayServer, ShareSource};
use confab_session::SessionHandle;
use tauri::ipc::Response;
use tauri::State;

use crate::call_media::media;
use crate::error::CommandError;

#[derive(Debug, serde::Serialize)]
pub struct ShareSourcesView {
    pub display_server: DisplayServer,
    pub sources: Vec<ShareSource>,
}

fn screen_error(e: confab_screen::ScreenError) -> CommandError {
    CommandError::Media {
        code: e.code(),
        message: e.to_string(),
    }
}

fn check_source_id(source_id: &str) -> Result<(), CommandError> {
    if source_id.is_empty() || source_id.len() > 64 {
        return Err(CommandError::InvalidInput(
            "a share source id is 1 to 64 characters".into(),
        ));
    }
    Ok(())
}

/// The screens and windows that can be shared now.
#[tauri::command]
pub async fn share_sources() -> Result<ShareSourcesView, CommandError> {
    let display_server = confab_screen::display_server();
    let sources = tauri::async_runtime::spawn_blocking(confab_screen::list_sources)
        .await
        .map_err(|e| CommandError::Io(e.to_string()))?
        .map_err(screen_error)?;
    Ok(ShareSourcesView {
        display_server,
        sources,
    })
}

/// A picture of a source as it is now, at most `width` x `height`: 8 bytes (width and
/// height, u32 little-endian) then RGBA.
#[tauri::command]
pub async fn share_thumbnail(
    source_id: String,
    width: u32,
    height: u32,
) -> Result<Response, CommandError> {
    check_source_id(&source_id)?;
    let (width, height) = (width.clamp(16, 640), height.clamp(16, 480));
    let thumbnail = tauri::async_runtime::spawn_blocking(move || {
        confab_screen::thumbnail(&source_id, width, height)
    })
    .await
    .map_err(|e| CommandError::Io(e.to_string()))?
    .map_err(screen_error)?;
    let mut bytes = Vec::with_capacity(8 + thumbnail.rgba.len());
    bytes.extend_from_slice(&thumbnail.width.to_le_bytes());
    bytes.extend_from_slice(&thumbnail.height.to_le_bytes());
    bytes.extend_from_slice(&thumbnail.rgba);
    Ok(Response::new(bytes))
}

/// Shares a source in the joined call.
#[tauri::command]
pub async fn start_share(
    session: State<'_, SessionHandle>,
    source_id: String,
    title: String,
) -> Result<MediaView, CommandError> {
    check_source_id(&source_id)?;
    let title: String = title.chars().take(200).collect();
    Ok(media(&session)
        .await?
        .start_share(&source_id, &title)
        .await?)
}

#[tauri::command]
pub async fn stop_share(session: State<'_, SessionHandle>) -> Result<MediaView, CommandError> {
    Ok(media(&session).await?.stop_share().await?)
}
