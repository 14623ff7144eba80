//! The joined call's audio and video, as the page sees it (docs/call-media.md): a channel the
//! page attaches for views and encoded video frames, and the call's controls.

use confab_call::{CallMedia, CallMediaError, DeviceRole, MediaSink, MediaView, TrackStatsView};
use confab_devices::DeviceKind;
use confab_session::{CallMediaSetup, SessionHandle};
use tauri::ipc::{Channel, InvokeResponseBody};
use tauri::State;

use crate::devices::Devices;
use crate::error::CommandError;

/// Echo cancellation, noise suppression and gain control: on unless the user turns them off
/// (for a headset, or music).
#[derive(Default)]
pub struct AudioProcessingChoice {
    off: std::sync::atomic::AtomicBool,
}

impl AudioProcessingChoice {
    pub(crate) fn settings(&self) -> confab_call::AudioSettings {
        if self.off.load(std::sync::atomic::Ordering::Relaxed) {
            confab_call::AudioSettings::off()
        } else {
            confab_call::AudioSettings::default()
        }
    }
}

/// Turns the call audio's processing on or off, for this call and the next ones.
#[tauri::command]
pub async fn set_audio_processing(
    session: State<'_, SessionHandle>,
    choice: State<'_, AudioProcessingChoice>,
    enabled: bool,
) -> Result<bool, CommandError> {
    choice
        .off
        .store(!enabled, std::sync::atomic::Ordering::Relaxed);
    if let Some(media) = session.call_media().await {
        media.set_audio_settings(choice.settings()).await;
    }
    Ok(enabled)
}

/// What a call's media starts with: the lobby's devices, camera and microphone on.
pub(crate) fn setup(devices: &Devices, processing: &AudioProcessingChoice) -> CallMediaSetup {
    let selection = devices.manager.selection();
    let camera = crate::devices::selected_camera(devices)
        .unwrap_or_else(|_| selection.key(DeviceKind::Camera).to_owned());
    CallMediaSetup {
        devices: confab_call::CallDevices {
            camera,
            microphone: selection.key(DeviceKind::Microphone).to_owned(),
            speaker: selection.key(DeviceKind::Speaker).to_owned(),
        },
        microphone_muted: false,
        camera_enabled: true,
        audio: processing.settings(),
    }
}

/// Sends to the page's channel. Views go as JSON, frames as raw bytes.
struct PageSink(Channel<InvokeResponseBody>);

impl MediaSink for PageSink {
    fn view(&self, view: &MediaView) {
        match serde_json::to_string(view) {
            Ok(json) => {
                let _ = self.0.send(InvokeResponseBody::Json(json));
            }
            Err(e) => {
                tracing::warn!(target: "confab::call", error = %e, "the media view did not serialise")
            }
        }
    }

    fn video_frame(&self, message: Vec<u8>) {
        let _ = self.0.send(InvokeResponseBody::Raw(message));
    }
}

pub(crate) async fn media(session: &SessionHandle) -> Result<CallMedia, CommandError> {
    session
        .call_media()
        .await
        .ok_or_else(|| CommandError::InvalidInput("no call with audio and video is joined".into()))
}

impl From<CallMediaError> for CommandError {
    fn from(e: CallMediaError) -> Self {
        match e {
            CallMediaError::Device(message) => CommandError::Device(message),
            other => CommandError::Media {
                code: other.code(),
                message: other.to_string(),
            },
        }
    }
}

/// The page's channel for this call's media; answers the view as it is now.
#[tauri::command]
pub async fn call_media_attach(
    session: State<'_, SessionHandle>,
    channel: Channel<InvokeResponseBody>,
) -> Result<MediaView, CommandError> {
    let media = media(&session).await?;
    media.attach(std::sync::Arc::new(PageSink(channel))).await;
    Ok(media.view())
}

#[tauri::command]
pub async fn set_microphone_muted(
    session: State<'_, SessionHandle>,
    muted: bool,
) -> Result<MediaView, CommandError> {
    Ok(media(&session).await?.set_microphone_muted(muted).await?)
}

#[tauri::command]
pub async fn set_camera_enabled(
    session: State<'_, SessionHandle>,
    enabled: bool,
) -> Result<MediaView, CommandError> {
    Ok(media(&session).await?.set_camera_enabled(enabled).await?)
}

/// The size a remote video is shown at (device pixels); 0x0 when it is not visible.
#[tauri::command]
pub async fn set_video_view(
    session: State<'_, SessionHandle>,
    track_sid: String,
    width: u32,
    height: u32,
) -> Result<(), CommandError> {
    if track_sid.is_empty() || track_sid.len() > 255 {
        return Err(CommandError::InvalidInput(
            "a track sid is 1 to 255 characters".into(),
        ));
    }
    let (width, height) = (width.min(7680), height.min(4320));
    media(&session)
        .await?
        .set_video_view(&track_sid, width, height)
        .await;
    Ok(())
}

/// The page's decoder of a remote video waits for a keyframe (after an error or frames it
/// dropped): ask the publisher for one now.
#[tauri::command]
pub async fn request_keyframe(
    session: State<'_, SessionHandle>,
    track_sid: String,
) -> Result<(), CommandError> {
    if track_sid.is_empty() || track_sid.len() > 255 {
        return Err(CommandError::InvalidInput(
            "a track sid is 1 to 255 characters".into(),
        ));
    }
    media(&session).await?.request_keyframe(&track_sid).await;
    Ok(())
}

/// Changes the camera, microphone or speaker during the call (and remembers the choice, as
/// the lobby does).
#[tauri::command]
pub async fn switch_call_device(
    session: State<'_, SessionHandle>,
    devices: State<'_, Devices>,
    kind: String,
    key: String,
) -> Result<(), CommandError> {
    let (role, device_kind) = match kind.as_str() {
        "camera" => (DeviceRole::Camera, DeviceKind::Camera),
        "microphone" => (DeviceRole::Microphone, DeviceKind::Microphone),
        "speaker" => (DeviceRole::Speaker, DeviceKind::Speaker),
        other => {
            return Err(CommandError::InvalidInput(format!(
                "{other:?} is not a device kind: use camera, microphone or speaker"
            )))
        }
    };
    devices
        .manager
        .select(device_kind, &key, None)
        .map_err(|e| CommandError::Device(e.to_string()))?;
    let key = if role == DeviceRole::Camera {
        crate::devices::selected_camera(&devices)?
    } else {
        key
    };
    Ok(media(&session).await?.switch_device(role, &key).await?)
}

#[tauri::command]
pub async fn call_media_stats(
    session: State<'_, SessionHandle>,
) -> Result<Vec<TrackStatsView>, CommandError> {
    Ok(media(&session).await?.stats().await)
}

/// Hot-plug during a call: when the selected device goes away (the selection falls back to
/// the default) or comes back, the call follows, as the lobby does.
pub(crate) async fn follow_device_change(
    app: &tauri::AppHandle,
    event: &confab_devices::DeviceEvent,
) {
    use confab_devices::DeviceEvent;
    use tauri::Manager;
    let kind = match event {
        DeviceEvent::SelectionLost { kind, .. } | DeviceEvent::SelectionRestored { kind, .. } => {
            *kind
        }
        _ => return,
    };
    let Some(session) = app.try_state::<SessionHandle>() else {
        return;
    };
    let Some(media) = session.call_media().await else {
        return;
    };
    let devices = app.state::<Devices>();
    let (role, key) = match kind {
        DeviceKind::Camera => match crate::devices::selected_camera(&devices) {
            Ok(key) => (DeviceRole::Camera, key),
            Err(_) => return,
        },
        DeviceKind::Microphone => (
            DeviceRole::Microphone,
            devices.manager.selection().key(kind).to_owned(),
        ),
        DeviceKind::Speaker => (
            DeviceRole::Speaker,
            devices.manager.selection().key(kind).to_owned(),
        ),
    };
    if let Err(e) = media.switch_device(role, &key).await {
        tracing::warn!(target: "confab::call", error = %e, ?kind, "the call could not follow a device change");
    }
}

/// For a webview without WebCodecs' `VideoDecoder`: H.264 is decoded in Rust and the page
/// gets pictures (message 2 in docs/call-media.md).
#[tauri::command]
pub async fn decode_video_in_rust(
    session: State<'_, SessionHandle>,
    enabled: bool,
) -> Result<(), CommandError> {
    media(&session).await?.set_decode_in_rust(enabled).await;
    Ok(())
}
