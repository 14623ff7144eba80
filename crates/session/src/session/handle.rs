//! The handle's side: each method sends the session task a request and awaits its reply.

use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex};

use confab_client::Guest;
use tokio::sync::{mpsc, oneshot, watch};

use super::{Phase, Request, SessionHandle, SessionOptions, SessionTask};
use crate::backend::LocalBackend;
use crate::errors::{ErrorKind, SessionError};
use crate::input::{CallChoice, GuestForm, SignInForm};
use crate::keychain::KeychainQueue;
use crate::status::{CallView, ConnectionStatus, SessionStatus};
use crate::views::{Restored, SignedIn, SignedOut, TokenInfo};

impl SessionHandle {
    /// Starts the session task on the current tokio runtime.
    pub fn start(options: SessionOptions) -> Self {
        let (requests, inbox) = mpsc::channel(32);
        let (reports_tx, reports) = mpsc::unbounded_channel();
        let (status_tx, status) = watch::channel(SessionStatus::default());
        let timeline = Arc::new(Mutex::new(Vec::new()));
        let task = SessionTask {
            local: options.local.clone(),
            keychain: KeychainQueue::start(options.keychain),
            phase: Phase::SignedOut,
            status: Arc::new(status_tx),
            timeline: timeline.clone(),
            generation: Arc::new(AtomicU64::new(0)),
            attempts: 0,
            reports: reports_tx,
        };
        tokio::spawn(task.run(inbox, reports));
        Self {
            requests,
            status,
            timeline,
            local: options.local,
            watching: Arc::default(),
        }
    }

    /// The status, as it changes.
    pub fn status(&self) -> watch::Receiver<SessionStatus> {
        self.status.clone()
    }

    /// Every connection status so far, for the diagnostics export.
    pub fn timeline(&self) -> Vec<ConnectionStatus> {
        self.timeline
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    pub(crate) fn local(&self) -> &LocalBackend {
        &self.local
    }

    async fn ask<T>(
        &self,
        make: impl FnOnce(oneshot::Sender<T>) -> Request,
    ) -> Result<T, SessionError> {
        let (tx, rx) = oneshot::channel();
        let ended = || SessionError::new(ErrorKind::Cancelled, "Confab is closing.");
        self.requests.send(make(tx)).await.map_err(|_| ended())?;
        rx.await.map_err(|_| ended())
    }

    /// Signs in a user. In local mode a user id is enough (the app mints tokens).
    pub async fn sign_in(&self, form: SignInForm) -> Result<SignedIn, SessionError> {
        let (sign_in, remember) = form.validate()?;
        self.ask(|reply| Request::SignIn {
            sign_in,
            remember,
            reply,
        })
        .await?
    }

    /// Signs in with what the keychain remembers, if anything.
    pub async fn restore_sign_in(&self) -> Result<Restored, SessionError> {
        self.ask(|reply| Request::Restore { reply }).await
    }

    /// Joins as a guest: a display name and, optionally, an avatar.
    pub async fn join_as_guest(&self, form: GuestForm) -> Result<SignedIn, SessionError> {
        let (backend, name, image) = form.validate()?;
        let guest = Guest {
            name: Some(name),
            image,
            ..Guest::default()
        };
        self.ask(|reply| Request::Guest {
            backend,
            guest,
            reply,
        })
        .await?
    }

    /// Leaves any call, disconnects, cancels a sign-in in progress and forgets the remembered
    /// sign-in.
    pub async fn sign_out(&self) -> Result<SignedOut, SessionError> {
        self.ask(|reply| Request::SignOut { reply }).await
    }

    pub async fn token_info(&self) -> Result<Option<TokenInfo>, SessionError> {
        self.ask(|reply| Request::TokenInfo { reply }).await
    }

    /// Joins (creating if needed) a call; leaves the one joined before, if any. With `media`,
    /// the call's audio and video start too.
    pub async fn join_call(
        &self,
        call_type: &str,
        call_id: &str,
        media: Option<crate::call::CallMediaSetup>,
    ) -> Result<CallView, SessionError> {
        let choice = CallChoice::parse(call_type, call_id)?;
        self.ask(|reply| Request::JoinCall {
            choice,
            media,
            reply,
        })
        .await?
    }

    /// The joined call's media, when it has any, else the watched livestream's.
    pub async fn call_media(&self) -> Option<confab_call::CallMedia> {
        let joined = self
            .ask(|reply| Request::CallMedia { reply })
            .await
            .ok()
            .flatten();
        match joined {
            Some(media) => Some(media),
            None => self.watched_media().await,
        }
    }

    pub(crate) fn watching(&self) -> &tokio::sync::Mutex<Option<crate::watch::Watching>> {
        &self.watching
    }

    pub async fn leave_call(&self) -> Result<(), SessionError> {
        self.ask(|reply| Request::LeaveCall { reply }).await
    }

    /// Takes the joined livestream live or back to backstage. In local mode going live also
    /// starts the HLS broadcast the embedded coordinator makes from what the host publishes.
    pub async fn set_live(&self, live: bool) -> Result<bool, SessionError> {
        self.ask(|reply| Request::SetLive { live, reply }).await?
    }

    /// A token for anonymous viewers of the joined livestream (local mode only: it needs the
    /// coordinator's secret).
    pub async fn viewer_token(&self) -> Result<Option<String>, SessionError> {
        self.ask(|reply| Request::ViewerToken { reply }).await?
    }
}
