//! A joined call: who is in it (kept from the coordinator's events), leaving it, and for a
//! livestream's host going live, with local mode's HLS broadcast of the camera.

use std::sync::{Arc, Mutex};

use confab_client::{Call, Roster, TokenManager, VideoClient};
use confab_coordinator::Claims;
use confab_protocol::ANONYMOUS_USER_ID;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::backend::LocalBackend;
use crate::errors::{SessionError, TokenFrom};
use crate::input::CallChoice;
use crate::status::{CallView, SessionStatus};

/// The camera a broadcast takes, as the app's devices know it.
pub trait BroadcastCameraSource: Send + Sync {
    /// The selected camera's device key.
    fn selected_camera(&self) -> Result<String, String>;
    /// Lets go of the preview's camera: a real camera opens once at a time.
    fn release_preview(&self);
}

pub type BroadcastCamera = Arc<dyn BroadcastCameraSource>;

/// A call joined from the lobby, the task that keeps its participant list, and the host's
/// broadcast.
pub struct JoinedCall {
    call: Call,
    latest: Arc<Mutex<CallView>>,
    roster_task: JoinHandle<()>,
    broadcast: Option<confab_media::Broadcast>,
    /// The call's audio and video (not for livestreams, which #16 brings over the SFU).
    media: Option<confab_call::CallMedia>,
}

/// What a call's media starts with, from the app's devices and settings.
#[derive(Debug, Clone)]
pub struct CallMediaSetup {
    pub devices: confab_call::CallDevices,
    pub microphone_muted: bool,
    pub camera_enabled: bool,
    pub audio: confab_call::AudioSettings,
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

/// Joins (creating if needed) and starts keeping the roster: each change is written to the
/// status while this call is the one it shows.
pub(crate) async fn join(
    client: VideoClient,
    choice: &CallChoice,
    media: Option<CallMediaSetup>,
    status: Arc<watch::Sender<SessionStatus>>,
) -> Result<JoinedCall, SessionError> {
    let call = client.call(choice.call_type.as_str(), choice.call_id.as_str());
    let cid = call.cid();
    // Listen before joining, so no event between the two is missed.
    let mut events = client.events();
    let joined = call
        .join(true)
        .await
        .map_err(|e| SessionError::from_api(&e, &cid, TokenFrom::SignIn))?;
    let can_go_live = joined.can("go-live");
    let media = media
        .filter(|_| choice.call_type.as_str() != "livestream")
        .map(|setup| {
            let identity = client.user_id().unwrap_or_default();
            let access = confab_call::MediaAccess::from_credentials(joined.credentials.as_ref());
            confab_call::CallMedia::start(
                access,
                confab_call::CallMediaOptions {
                    devices: setup.devices,
                    name: identity.clone(),
                    identity,
                    microphone_muted: setup.microphone_muted,
                    camera_enabled: setup.camera_enabled,
                    audio: setup.audio,
                },
            )
        });
    let hls = joined.hls_playlist_url().map(str::to_owned);
    let mut roster = Roster::from_call(&joined.call);
    let latest = Arc::new(Mutex::new(view(&roster, can_go_live, hls.clone())));
    let kept = latest.clone();
    let roster_task = tokio::spawn(async move {
        loop {
            match events.recv().await {
                Ok(event) => {
                    if !roster.apply(&event) {
                        continue;
                    }
                    let now = view(&roster, can_go_live, hls.clone());
                    *kept.lock().unwrap_or_else(|p| p.into_inner()) = now.clone();
                    status.send_if_modified(|s| match &mut s.call {
                        Some(shown) if shown.cid == now.cid => {
                            *shown = now;
                            true
                        }
                        _ => false,
                    });
                }
                Err(tokio::sync::broadcast::error::RecvError::Lagged(n)) => {
                    tracing::warn!(target: "confab::session", missed = n, "call events lagged");
                }
                Err(_) => return,
            }
        }
    });
    Ok(JoinedCall {
        call,
        latest,
        roster_task,
        broadcast: None,
        media,
    })
}

impl JoinedCall {
    pub fn cid(&self) -> String {
        self.call.cid()
    }

    /// The call as it is now.
    pub fn view(&self) -> CallView {
        self.latest
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// The call's media, when it has any.
    pub fn media(&self) -> Option<confab_call::CallMedia> {
        self.media.clone()
    }

    pub async fn leave(mut self) {
        self.roster_task.abort();
        if let Some(media) = self.media.take() {
            media.stop().await;
        }
        if let Some(broadcast) = self.broadcast.take() {
            broadcast.stop().await;
        }
        if let Err(e) = self.call.leave().await {
            tracing::warn!(target: "confab::session", error = %e, "leaving the call failed");
        }
    }

    /// What going live (or back to backstage) takes, to run away from the session task.
    pub(crate) fn live_plan(
        &mut self,
        live: bool,
        broadcast_to: Option<(LocalBackend, Arc<TokenManager>)>,
        camera: BroadcastCamera,
    ) -> LivePlan {
        let stop_first = if live { None } else { self.broadcast.take() };
        let start = (live && self.broadcast.is_none())
            .then_some(broadcast_to)
            .flatten()
            .map(|(local, tokens)| (local, tokens, camera));
        LivePlan {
            call: self.call.clone(),
            live,
            stop_first,
            start,
        }
    }

    /// Keeps a started broadcast and copies its progress into the status until it ends.
    pub(crate) fn adopt_broadcast(
        &mut self,
        broadcast: confab_media::Broadcast,
        status: Arc<watch::Sender<SessionStatus>>,
    ) {
        let mut progress = broadcast.status();
        tokio::spawn(async move {
            loop {
                let now = progress.borrow_and_update().clone();
                let ended = matches!(
                    now,
                    confab_media::BroadcastStatus::Stopped { .. }
                        | confab_media::BroadcastStatus::Failed { .. }
                );
                status.send_modify(|s| s.broadcast = Some(now));
                if ended || progress.changed().await.is_err() {
                    return;
                }
            }
        });
        self.broadcast = Some(broadcast);
    }
}

pub(crate) struct LivePlan {
    call: Call,
    live: bool,
    stop_first: Option<confab_media::Broadcast>,
    start: Option<(LocalBackend, Arc<TokenManager>, BroadcastCamera)>,
}

impl LivePlan {
    /// Goes live or back; returns whether the call is live and a broadcast that started.
    pub(crate) async fn run(self) -> Result<(bool, Option<confab_media::Broadcast>), SessionError> {
        let cid = self.call.cid();
        if let Some(broadcast) = self.stop_first {
            broadcast.stop().await;
        }
        let response = if self.live {
            self.call.go_live().await
        } else {
            self.call.stop_live().await
        }
        .map_err(|e| SessionError::from_api(&e, &cid, TokenFrom::SignIn))?;
        let broadcast = match self.start {
            Some((local, tokens, camera)) => {
                Some(start_broadcast(&local, &self.call, tokens, camera).await?)
            }
            None => None,
        };
        Ok((!response.backstage(), broadcast))
    }
}

async fn start_broadcast(
    local: &LocalBackend,
    call: &Call,
    tokens: Arc<TokenManager>,
    camera: BroadcastCamera,
) -> Result<confab_media::Broadcast, SessionError> {
    let cid = call.cid();
    let (call_type, call_id) = cid.split_once(':').unwrap_or(("livestream", ""));
    let target = confab_media::Target {
        base_url: local.base_url.clone(),
        api_key: local.api_key.clone(),
        call_type: call_type.to_owned(),
        call_id: call_id.to_owned(),
        token: Arc::new(move || {
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
        camera_key: camera.selected_camera().map_err(SessionError::device)?,
        ..Default::default()
    };
    match confab_media::start(target.clone(), options.clone()).await {
        Ok(b) => Ok(b),
        // A real camera opens once at a time: let the broadcast have it instead of the preview.
        Err(confab_media::BroadcastError::Camera(_)) => {
            camera.release_preview();
            confab_media::start(target, options)
                .await
                .map_err(|e| SessionError::device(e.to_string()))
        }
        Err(e) => Err(SessionError::device(e.to_string())),
    }
}

/// How long a viewer token handed out by a host works: long enough for an event, short
/// enough that a leaked link stops working by the next day.
pub const VIEWER_TOKEN_TTL: std::time::Duration = std::time::Duration::from_secs(12 * 3600);

/// A token for anonymous viewers of one call, signed by the embedded coordinator.
pub(crate) fn viewer_token(local: &LocalBackend, cid: &str) -> String {
    let claims = Claims {
        user_id: Some(ANONYMOUS_USER_ID.into()),
        role: Some("viewer".into()),
        call_cids: Some(vec![cid.to_owned()]),
        ..Default::default()
    };
    local
        .signing_key
        .sign_issued_now(claims, Some(VIEWER_TOKEN_TTL))
}
