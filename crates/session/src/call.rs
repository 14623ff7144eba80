//! A joined call: who is in it (kept from the coordinator's events), its media, leaving it,
//! and for a livestream's host going live, with local mode's HLS broadcast (the coordinator
//! packages what the host publishes through the SFU).

use std::sync::{Arc, Mutex};

use confab_client::{Call, Roster, VideoClient};
use confab_coordinator::Claims;
use confab_protocol::ANONYMOUS_USER_ID;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::backend::LocalBackend;
use crate::errors::{SessionError, TokenFrom};
use crate::input::CallChoice;
use crate::status::{BroadcastStatus, CallView, SessionStatus};

/// A call joined from the lobby, the task that keeps its participant list, and its media.
pub struct JoinedCall {
    call: Call,
    latest: Arc<Mutex<CallView>>,
    roster_task: JoinHandle<()>,
    /// Whether this host started the livestream's HLS broadcast (stopped when leaving).
    broadcasting: bool,
    /// The call's audio and video. A livestream's viewers only receive.
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

/// What the caller may do in the call, from its capabilities there.
#[derive(Debug, Clone, Copy)]
struct Allowed {
    go_live: bool,
    share_screen: bool,
}

fn view(roster: &Roster, allowed: Allowed, hls: Option<String>) -> CallView {
    let can_go_live = allowed.go_live;
    CallView {
        cid: roster.cid.clone(),
        call_type: roster.cid.split(':').next().unwrap_or_default().to_owned(),
        backstage: roster.backstage,
        participants: roster.participants.clone(),
        can_go_live,
        can_share_screen: allowed.share_screen,
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
    let allowed = Allowed {
        go_live: joined.can("go-live"),
        share_screen: joined.can("screenshare"),
    };
    let publishes = joined.can("send-video") || joined.can("send-audio");
    let livestream = choice.call_type.as_str() == "livestream";
    let media = media.map(|setup| {
        let identity = client.user_id().unwrap_or_default();
        let access = match joined.credentials.as_ref() {
            // A livestream whose WebRTC seats are taken: its HLS playlist is the way in.
            None if livestream && !publishes => confab_call::MediaAccess::Unsupported(
                "This livestream has as many WebRTC viewers as it takes: watch it from the start screen, where it plays over HLS.".to_owned(),
            ),
            credentials => confab_call::MediaAccess::from_credentials(credentials),
        };
        confab_call::CallMedia::start(
            access,
            confab_call::CallMediaOptions {
                devices: setup.devices,
                name: identity.clone(),
                identity,
                microphone_muted: setup.microphone_muted,
                camera_enabled: setup.camera_enabled,
                audio: setup.audio,
                publish: publishes,
            },
        )
    });
    let hls = joined.hls_playlist_url().map(str::to_owned);
    let mut roster = Roster::from_call(&joined.call);
    let latest = Arc::new(Mutex::new(view(&roster, allowed, hls.clone())));
    let kept = latest.clone();
    let roster_task = tokio::spawn(async move {
        loop {
            match events.recv().await {
                Ok(event) => {
                    if !roster.apply(&event) {
                        continue;
                    }
                    let now = view(&roster, allowed, hls.clone());
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
        broadcasting: false,
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
        if self.broadcasting {
            // The host ends what it started; otherwise the coordinator ends it once the
            // host is gone from the SFU for a while.
            if let Err(e) = self.call.stop_hls().await {
                tracing::warn!(target: "confab::session", error = %e, "stopping the broadcast failed");
            }
        }
        if let Err(e) = self.call.leave().await {
            tracing::warn!(target: "confab::session", error = %e, "leaving the call failed");
        }
    }

    /// What going live (or back to backstage) takes, to run away from the session task. With
    /// `hls` (local mode) going live also starts the HLS broadcast, and going back stops it.
    pub(crate) fn live_plan(&self, live: bool, hls: bool) -> LivePlan {
        LivePlan {
            call: self.call.clone(),
            live,
            hls: hls && (live || self.broadcasting),
        }
    }

    /// Notes what a plan did to the broadcast.
    pub(crate) fn set_broadcasting(&mut self, status: Option<&BroadcastStatus>) {
        match status {
            Some(BroadcastStatus::Live { .. }) => self.broadcasting = true,
            Some(BroadcastStatus::Stopped) => self.broadcasting = false,
            Some(BroadcastStatus::Failed { .. }) | None => {}
        }
    }
}

pub(crate) struct LivePlan {
    call: Call,
    live: bool,
    hls: bool,
}

impl LivePlan {
    /// Goes live or back; returns whether the call is live, and what became of the broadcast.
    pub(crate) async fn run(self) -> Result<(bool, Option<BroadcastStatus>), SessionError> {
        let cid = self.call.cid();
        let api_error =
            |e: confab_client::ApiError| SessionError::from_api(&e, &cid, TokenFrom::SignIn);
        if !self.live {
            let mut status = None;
            if self.hls {
                if let Err(e) = self.call.stop_hls().await {
                    tracing::warn!(target: "confab::session", error = %e, "stopping the broadcast failed");
                }
                status = Some(BroadcastStatus::Stopped);
            }
            let response = self.call.stop_live().await.map_err(api_error)?;
            return Ok((!response.backstage(), status));
        }
        let response = self.call.go_live().await.map_err(api_error)?;
        let status = match self.hls {
            false => None,
            // Live over WebRTC either way; HLS is for viewers beyond the SFU's cap.
            true => Some(match self.call.start_hls().await {
                Ok(playlist_url) => BroadcastStatus::Live { playlist_url },
                Err(e) => BroadcastStatus::Failed {
                    error: api_error(e).to_string(),
                },
            }),
        };
        Ok((!response.backstage(), status))
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
