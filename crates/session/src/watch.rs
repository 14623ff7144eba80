//! Watching a livestream anonymously: no session state, so it does not go through the
//! session task. The state is read by polling; the picture and sound come over WebRTC
//! (a subscribe-only join, with a call token) or, without one or beyond the SFU's viewer
//! cap, from the HLS playlist the page plays.

use confab_client::{TokenSource, VideoClient};
use confab_protocol::{CallId, CallType};
use serde::Serialize;

use crate::errors::{SessionError, TokenFrom};
use crate::input::{valid_backend, WatchForm};
use crate::session::SessionHandle;
use crate::views::Livestream;

/// How a viewer watches a livestream.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Delivery {
    /// Through the SFU: the call's media plays the host (`call_media_attach` and the rest).
    Webrtc,
    /// The HLS playlist, in the page's player.
    Hls,
}

/// Why a viewer watches the way it does, for the screen to say.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Watch {
    pub delivery: Delivery,
    /// Why not WebRTC, when it is HLS.
    pub reason: Option<String>,
}

/// What a viewer's media starts with: only a speaker.
#[derive(Debug, Clone)]
pub struct WatchMediaSetup {
    pub speaker: String,
    pub audio: confab_call::AudioSettings,
}

/// A livestream watched over WebRTC: the anonymous client (its socket) and the media.
pub(crate) struct Watching {
    cid: String,
    _viewer: VideoClient,
    media: confab_call::CallMedia,
}

impl SessionHandle {
    /// Starts watching a live livestream. With a call token the viewer joins it through the
    /// coordinator and gets subscribe-only SFU credentials: its media plays the host. Without
    /// a token, or when the coordinator's WebRTC seats are taken, the answer is HLS. Watching
    /// another livestream stops the one before.
    pub async fn start_watching(
        &self,
        form: WatchForm,
        setup: WatchMediaSetup,
    ) -> Result<Watch, SessionError> {
        let backend = valid_backend(form.backend)?;
        let call_id = CallId::parse(&form.call_id)?;
        let cid = format!("{}:{call_id}", CallType::Livestream);
        let mut watching = self.watching().lock().await;
        if watching.as_ref().is_some_and(|w| w.cid == cid) {
            return Ok(Watch {
                delivery: Delivery::Webrtc,
                reason: None,
            });
        }
        if let Some(previous) = watching.take() {
            previous.media.stop().await;
        }
        let Some(token) = form
            .call_token
            .map(|t| t.trim().to_owned())
            .filter(|t| !t.is_empty())
        else {
            return Ok(Watch {
                delivery: Delivery::Hls,
                reason: Some(
                    "without a call token, a livestream plays from its playlist.".to_owned(),
                ),
            });
        };
        let viewer = self.local().client_for(&backend);
        viewer
            .connect_anonymous(Some(TokenSource::token(token)))
            .await
            .map_err(|e| SessionError::from_connect(&e))?;
        let joined = viewer
            .call(CallType::Livestream.as_str(), call_id.as_str())
            .join(false)
            .await
            .map_err(|e| SessionError::from_api(&e, &cid, TokenFrom::Host))?;
        let Some(credentials) = joined.credentials.as_ref() else {
            return Ok(Watch {
                delivery: Delivery::Hls,
                reason: Some("all of this livestream's WebRTC seats are taken.".to_owned()),
            });
        };
        let access = confab_call::MediaAccess::from_credentials(Some(credentials));
        if let confab_call::MediaAccess::Unsupported(why) = &access {
            return Ok(Watch {
                delivery: Delivery::Hls,
                reason: Some(why.clone()),
            });
        }
        let media = confab_call::CallMedia::start(
            access,
            confab_call::CallMediaOptions {
                devices: confab_call::CallDevices {
                    camera: String::new(),
                    microphone: String::new(),
                    speaker: setup.speaker,
                },
                identity: "viewer".to_owned(),
                name: "You".to_owned(),
                microphone_muted: true,
                camera_enabled: false,
                audio: setup.audio,
                publish: false,
            },
        );
        *watching = Some(Watching {
            cid,
            _viewer: viewer,
            media,
        });
        Ok(Watch {
            delivery: Delivery::Webrtc,
            reason: None,
        })
    }

    /// Stops watching over WebRTC (leaving the SFU), if a livestream was watched.
    pub async fn stop_watching(&self) {
        if let Some(watching) = self.watching().lock().await.take() {
            watching.media.stop().await;
        }
    }

    pub(crate) async fn watched_media(&self) -> Option<confab_call::CallMedia> {
        self.watching()
            .lock()
            .await
            .as_ref()
            .map(|w| w.media.clone())
    }

    /// Reads a livestream's state as an anonymous viewer, with an optional call token.
    pub async fn watch_livestream(&self, form: WatchForm) -> Result<Livestream, SessionError> {
        let backend = valid_backend(form.backend)?;
        let call_id = CallId::parse(&form.call_id)?;
        let cid = format!("{}:{call_id}", CallType::Livestream);
        let viewer = self.local().client_for(&backend);
        let token = form
            .call_token
            .map(|t| t.trim().to_owned())
            .filter(|t| !t.is_empty())
            .map(TokenSource::token);
        viewer
            .connect_anonymous(token)
            .await
            .map_err(|e| SessionError::from_connect(&e))?;
        let call = viewer
            .call(CallType::Livestream.as_str(), call_id.as_str())
            .get()
            .await
            .map_err(|e| SessionError::from_api(&e, &cid, TokenFrom::Host))?;
        Ok(Livestream {
            cid,
            backstage: call.backstage(),
            broadcasting: call.call.egress.broadcasting,
            hls_playlist_url: call.hls_playlist_url().map(str::to_owned),
            viewers: call.call.anonymous_viewers(),
        })
    }
}
