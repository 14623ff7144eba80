//! Calls from the lobby: join, the participant list (from the coordinator's events), leave;
//! hosting a livestream (backstage, go live, stop) and watching one anonymously.

use confab_client::{Call, Roster, TokenSource};
use confab_credentials::Backend;
use serde::Serialize;
use tauri::{AppHandle, Emitter, State};

use crate::error::CommandError;
use crate::local_mode::LocalMode;
use crate::session::{client_for, connect_error, valid_backend, Session};

/// A joined call, the task that keeps its participant list, and the host's broadcast.
pub struct JoinedCall {
    call: Call,
    roster_task: tauri::async_runtime::JoinHandle<()>,
    broadcast: Option<confab_media::Broadcast>,
}

impl JoinedCall {
    pub async fn leave(mut self) {
        self.roster_task.abort();
        if let Some(broadcast) = self.broadcast.take() {
            broadcast.stop().await;
        }
        if let Err(e) = self.call.leave().await {
            tracing::warn!(target: "confab::shell", error = %e, "leaving the call failed");
        }
    }
}

/// What the call screen shows (`confab:call` carries the same shape on every change).
#[derive(Debug, Clone, Serialize)]
pub struct CallView {
    pub cid: String,
    pub call_type: String,
    pub backstage: bool,
    pub participants: Vec<confab_client::RosterEntry>,
    /// The caller may take this livestream live (or stop it).
    pub can_go_live: bool,
    pub hls_playlist_url: Option<String>,
}

fn view(roster: &Roster, can_go_live: bool, hls: Option<String>) -> CallView {
    CallView {
        cid: roster.cid.clone(),
        call_type: roster.cid.split(':').next().unwrap_or_default().to_owned(),
        backstage: roster.backstage,
        participants: roster.participants.clone(),
        can_go_live,
        hls_playlist_url: hls,
    }
}

pub(crate) fn valid_call_id(id: &str) -> Result<String, CommandError> {
    let id = id.trim();
    let ok = !id.is_empty()
        && id.len() <= 64
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
    if ok {
        Ok(id.to_owned())
    } else {
        Err(CommandError::InvalidInput(
            "A call id is 1 to 64 letters, digits, '-' or '_'.".into(),
        ))
    }
}

fn valid_call_type(t: &str) -> Result<&'static str, CommandError> {
    match t {
        "default" => Ok("default"),
        "livestream" => Ok("livestream"),
        _ => Err(CommandError::InvalidInput(
            "A call is a meeting (default) or a livestream.".into(),
        )),
    }
}

fn api_error(e: confab_client::ApiError, cid: &str) -> CommandError {
    let what = if cid.starts_with("livestream:") {
        "livestream"
    } else {
        "call"
    };
    let (code, message) = match e.code() {
        Some(16) => ("not_found", format!("There is no {what} {cid}.")),
        Some(17) => (
            "not_allowed",
            format!("This token does not let you watch {cid}: it is for another call. Ask the host for a token for {cid}."),
        ),
        Some(40) => ("token_expired", "The token has expired. Ask the host for a new one.".to_owned()),
        Some(43) => ("token_rejected", "The token was rejected. Ask the host for a new one.".to_owned()),
        _ => ("request_failed", e.to_string()),
    };
    CommandError::Session { code, message }
}

fn not_signed_in(what: &str) -> CommandError {
    CommandError::Session {
        code: "not_signed_in",
        message: format!("Sign in or join as a guest to {what}."),
    }
}

/// Joins (creating if needed) a call from the lobby. The roster is sent again as
/// `confab:call` whenever someone joins or leaves or the call goes live.
#[tauri::command]
pub async fn join_call(
    app: AppHandle,
    session: State<'_, Session>,
    call_type: String,
    call_id: String,
) -> Result<CallView, CommandError> {
    let call_type = valid_call_type(&call_type)?;
    let call_id = valid_call_id(&call_id)?;
    let mut slot = session.active.lock().await;
    let active = slot.as_mut().ok_or_else(|| not_signed_in("join a call"))?;
    if let Some(previous) = active.call.take() {
        previous.leave().await;
    }
    let call = active.client.call(call_type, &call_id);
    let cid = call.cid();
    // Listen before joining, so no event between the two is missed.
    let mut events = active.client.events();
    let joined = call.join(true).await.map_err(|e| api_error(e, &cid))?;
    let can_go_live = joined.can("go-live");
    let hls = joined.hls_playlist_url().map(str::to_owned);
    let mut roster = Roster::from_call(&joined.call);
    let first = view(&roster, can_go_live, hls.clone());
    let roster_task = tauri::async_runtime::spawn(async move {
        loop {
            match events.recv().await {
                Ok(event) => {
                    if roster.apply(&event) {
                        let _ = app.emit("confab:call", view(&roster, can_go_live, hls.clone()));
                    }
                }
                Err(tokio::sync::broadcast::error::RecvError::Lagged(n)) => {
                    tracing::warn!(target: "confab::shell", missed = n, "call events lagged");
                }
                Err(_) => return,
            }
        }
    });
    active.call = Some(JoinedCall {
        call,
        roster_task,
        broadcast: None,
    });
    Ok(first)
}

#[tauri::command]
pub async fn leave_call(session: State<'_, Session>) -> Result<(), CommandError> {
    let mut slot = session.active.lock().await;
    if let Some(call) = slot.as_mut().and_then(|a| a.call.take()) {
        call.leave().await;
    }
    Ok(())
}

/// Takes the joined livestream live (`live: true`) or back to backstage. In local mode going
/// live also starts the broadcast: the selected camera, encoded and uploaded as HLS to the
/// embedded coordinator; its progress arrives as `confab:broadcast` events.
#[tauri::command]
pub async fn set_live(
    app: AppHandle,
    local: State<'_, LocalMode>,
    devices: State<'_, crate::devices::Devices>,
    session: State<'_, Session>,
    live: bool,
) -> Result<bool, CommandError> {
    let mut slot = session.active.lock().await;
    let active = slot.as_mut().ok_or_else(|| not_signed_in("go live"))?;
    let local_mode = active.backend == Backend::Local;
    let tokens = active.client.token_manager();
    let joined = active
        .call
        .as_mut()
        .ok_or_else(|| not_signed_in("go live"))?;
    let cid = joined.call.cid();
    if !live {
        if let Some(broadcast) = joined.broadcast.take() {
            broadcast.stop().await;
        }
    }
    let response = if live {
        joined.call.go_live().await
    } else {
        joined.call.stop_live().await
    }
    .map_err(|e| api_error(e, &cid))?;
    if live && local_mode && joined.broadcast.is_none() {
        let tokens = tokens.ok_or_else(|| not_signed_in("go live"))?;
        let broadcast = start_broadcast(&local, &devices, &joined.call, tokens).await?;
        forward_broadcast(app, &broadcast);
        joined.broadcast = Some(broadcast);
    }
    Ok(!response.backstage())
}

async fn start_broadcast(
    local: &LocalMode,
    devices: &crate::devices::Devices,
    call: &Call,
    tokens: std::sync::Arc<confab_client::TokenManager>,
) -> Result<confab_media::Broadcast, CommandError> {
    let cid = call.cid();
    let (call_type, call_id) = cid.split_once(':').unwrap_or(("livestream", ""));
    let target = confab_media::Target {
        base_url: local.coordinator.base_url().to_owned(),
        api_key: local.coordinator.api_key().to_owned(),
        call_type: call_type.to_owned(),
        call_id: call_id.to_owned(),
        token: std::sync::Arc::new(move || {
            let tokens = tokens.clone();
            Box::pin(async move {
                match tokens.token().await {
                    Ok(Some(t)) => Ok(t.expose().to_owned()),
                    Ok(None) => Err("no token".to_owned()),
                    Err(e) => Err(e.to_string()),
                }
            })
        }),
    };
    let options = confab_media::BroadcastOptions {
        camera_key: crate::devices::selected_camera(devices)?,
        ..Default::default()
    };
    match confab_media::start(target.clone(), options.clone()).await {
        Ok(b) => Ok(b),
        // A real camera opens once at a time: let the broadcast have it instead of the preview.
        Err(confab_media::BroadcastError::Camera(_)) => {
            crate::devices::release_preview_camera(devices);
            confab_media::start(target, options)
                .await
                .map_err(|e| CommandError::Device(e.to_string()))
        }
        Err(e) => Err(CommandError::Device(e.to_string())),
    }
}

/// Sends the broadcast's progress to the page until it ends.
fn forward_broadcast(app: AppHandle, broadcast: &confab_media::Broadcast) {
    let mut status = broadcast.status();
    tauri::async_runtime::spawn(async move {
        loop {
            let now = status.borrow_and_update().clone();
            let _ = app.emit("confab:broadcast", &now);
            if matches!(
                now,
                confab_media::BroadcastStatus::Stopped { .. }
                    | confab_media::BroadcastStatus::Failed { .. }
            ) || status.changed().await.is_err()
            {
                return;
            }
        }
    });
}

#[derive(Debug, Serialize)]
pub struct Livestream {
    pub cid: String,
    pub backstage: bool,
    /// A broadcast runs: `hls_playlist_url` plays it.
    pub broadcasting: bool,
    pub hls_playlist_url: Option<String>,
    /// Players watching now, as the coordinator counts them.
    pub viewers: u64,
}

/// A token for anonymous viewers of one livestream (local mode only: it needs the secret).
#[tauri::command]
pub async fn viewer_token(
    local: State<'_, LocalMode>,
    session: State<'_, Session>,
) -> Result<Option<String>, CommandError> {
    let slot = session.active.lock().await;
    let active = slot
        .as_ref()
        .ok_or_else(|| not_signed_in("share a livestream"))?;
    let Some(joined) = active.call.as_ref() else {
        return Ok(None);
    };
    if active.backend != Backend::Local {
        return Ok(None);
    }
    Ok(Some(local.coordinator.sign(&confab_coordinator::Claims {
        user_id: Some(confab_client::user::ANONYMOUS_USER_ID.into()),
        role: Some("viewer".into()),
        call_cids: Some(vec![joined.call.cid()]),
        ..Default::default()
    })))
}

/// Watches a livestream anonymously (no socket), with an optional call token.
#[tauri::command]
pub async fn watch_livestream(
    local: State<'_, LocalMode>,
    backend: Backend,
    call_id: String,
    call_token: Option<String>,
) -> Result<Livestream, CommandError> {
    let backend = valid_backend(backend)?;
    let call_id = valid_call_id(&call_id)?;
    let cid = format!("livestream:{call_id}");
    let viewer = client_for(&local, &backend);
    let token = call_token
        .map(|t| t.trim().to_owned())
        .filter(|t| !t.is_empty())
        .map(TokenSource::token);
    viewer
        .connect_anonymous(token)
        .await
        .map_err(connect_error)?;
    let call = viewer
        .call("livestream", &call_id)
        .get()
        .await
        .map_err(|e| api_error(e, &cid))?;
    Ok(Livestream {
        cid,
        backstage: call.backstage(),
        broadcasting: call.call["egress"]["broadcasting"]
            .as_bool()
            .unwrap_or(false),
        hls_playlist_url: call.hls_playlist_url().map(str::to_owned),
        viewers: call.call["session"]["anonymous_participant_count"]
            .as_u64()
            .unwrap_or(0),
    })
}
