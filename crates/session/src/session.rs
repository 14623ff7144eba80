//! The session task: one task owns who is signed in, the joined call and the broadcast;
//! `SessionHandle` is a cheap handle that sends it requests and awaits replies.
//!
//! The task never awaits the network itself. A request that needs the coordinator (connecting,
//! joining, going live) runs in a task of its own, which reports back with a message; the
//! session task stays free, so signing out while a sign-in retries answers at once and cancels
//! it, and the token inspector never waits behind a connect.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use confab_client::{ConnectError, ConnectedUser, ConnectionState, Guest, User, VideoClient};
use confab_credentials::{Backend, Keychain, KeychainError, RememberedSignIn};
use tokio::sync::{mpsc, oneshot, watch};
use tokio::task::JoinHandle;

use crate::backend::{backend_label, LocalBackend};
use crate::call::{self, BroadcastCamera, JoinedCall};
use crate::errors::{ErrorKind, SessionError};
use crate::input::{CallChoice, GuestForm, SignInForm};
use crate::keychain::KeychainQueue;
use crate::status::{CallView, ConnectionStatus, SessionStatus};
use crate::views::{Remembered, Restored, SignedIn, SignedOut, TokenInfo};

type Reply<T> = oneshot::Sender<Result<T, SessionError>>;

/// What a session needs from the app: the embedded coordinator and the keychain.
pub struct SessionOptions {
    pub local: LocalBackend,
    pub keychain: Keychain,
}

/// A handle to the session task. Clone it freely; the task ends with the last handle.
#[derive(Clone)]
pub struct SessionHandle {
    requests: mpsc::Sender<Request>,
    status: watch::Receiver<SessionStatus>,
    timeline: Arc<Mutex<Vec<ConnectionStatus>>>,
    local: LocalBackend,
}

enum Request {
    SignIn {
        sign_in: RememberedSignIn,
        remember: bool,
        reply: Reply<SignedIn>,
    },
    Restore {
        reply: oneshot::Sender<Restored>,
    },
    Guest {
        backend: Backend,
        guest: Guest,
        reply: Reply<SignedIn>,
    },
    SignOut {
        reply: oneshot::Sender<SignedOut>,
    },
    TokenInfo {
        reply: oneshot::Sender<Option<TokenInfo>>,
    },
    JoinCall {
        choice: CallChoice,
        reply: Reply<CallView>,
    },
    LeaveCall {
        reply: oneshot::Sender<()>,
    },
    SetLive {
        live: bool,
        camera: BroadcastCamera,
        reply: Reply<bool>,
    },
    ViewerToken {
        reply: Reply<Option<String>>,
    },
}

/// Reports from the tasks the session task started.
enum Report {
    Recalled {
        result: Result<Option<RememberedSignIn>, KeychainError>,
        reply: oneshot::Sender<Restored>,
    },
    Connected {
        attempt: u64,
        result: Result<ConnectedUser, ConnectError>,
    },
    Joined {
        attempt: u64,
        result: Result<JoinedCall, SessionError>,
        reply: Reply<CallView>,
    },
    LiveSet {
        attempt: u64,
        result: Result<(bool, Option<confab_media::Broadcast>), SessionError>,
        reply: Reply<bool>,
    },
}

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

    /// Joins (creating if needed) a call; leaves the one joined before, if any.
    pub async fn join_call(
        &self,
        call_type: &str,
        call_id: &str,
    ) -> Result<CallView, SessionError> {
        let choice = CallChoice::parse(call_type, call_id)?;
        self.ask(|reply| Request::JoinCall { choice, reply })
            .await?
    }

    pub async fn leave_call(&self) -> Result<(), SessionError> {
        self.ask(|reply| Request::LeaveCall { reply }).await
    }

    /// Takes the joined livestream live or back to backstage. In local mode going live also
    /// broadcasts `camera` as HLS to the embedded coordinator.
    pub async fn set_live(
        &self,
        live: bool,
        camera: BroadcastCamera,
    ) -> Result<bool, SessionError> {
        self.ask(|reply| Request::SetLive {
            live,
            camera,
            reply,
        })
        .await?
    }

    /// A token for anonymous viewers of the joined livestream (local mode only: it needs the
    /// coordinator's secret).
    pub async fn viewer_token(&self) -> Result<Option<String>, SessionError> {
        self.ask(|reply| Request::ViewerToken { reply }).await?
    }
}

/// A signed-in (or signing-in) user's client.
struct Account {
    client: VideoClient,
    backend: Backend,
    token_source: &'static str,
    /// The forwarder of this client's connection state publishes while this is current.
    generation: u64,
}

/// How a finished connect is answered.
enum Finish {
    SignIn {
        reply: Reply<SignedIn>,
        sign_in: RememberedSignIn,
        remember: bool,
    },
    Restore {
        reply: oneshot::Sender<Restored>,
        backend: Backend,
    },
    Guest {
        reply: Reply<SignedIn>,
    },
}

struct Pending {
    attempt: u64,
    account: Account,
    connect: JoinHandle<()>,
    finish: Finish,
}

struct Active {
    account: Account,
    call: Option<JoinedCall>,
    /// The newest join or go-live in flight; older reports are stale.
    call_attempt: u64,
}

enum Phase {
    SignedOut,
    SigningIn(Pending),
    SignedIn(Active),
}

struct SessionTask {
    local: LocalBackend,
    keychain: KeychainQueue,
    phase: Phase,
    status: Arc<watch::Sender<SessionStatus>>,
    timeline: Arc<Mutex<Vec<ConnectionStatus>>>,
    generation: Arc<AtomicU64>,
    attempts: u64,
    reports: mpsc::UnboundedSender<Report>,
}

fn keychain_message(e: &KeychainError) -> String {
    match e {
        KeychainError::Unavailable(_) => "No keychain is available on this computer, so Confab keeps this sign-in in memory only and will forget it when it closes.".into(),
        other => format!("Confab could not remember this sign-in: {other}. It is kept in memory only."),
    }
}

impl SessionTask {
    async fn run(
        mut self,
        mut inbox: mpsc::Receiver<Request>,
        mut reports: mpsc::UnboundedReceiver<Report>,
    ) {
        loop {
            tokio::select! {
                request = inbox.recv() => match request {
                    Some(request) => self.handle(request),
                    None => break,
                },
                Some(report) = reports.recv() => self.on_report(report),
            }
        }
        // Every handle is gone (the app is closing): leave and disconnect in the background.
        self.sign_out_in_background(None);
    }

    fn next_attempt(&mut self) -> u64 {
        self.attempts += 1;
        self.attempts
    }

    fn publish_connection(&self, status: ConnectionStatus) {
        publish_connection(&self.status, &self.timeline, status);
    }

    fn handle(&mut self, request: Request) {
        match request {
            Request::SignIn {
                sign_in,
                remember,
                reply,
            } => {
                if !matches!(self.phase, Phase::SignedOut) {
                    let _ = reply.send(Err(SessionError::already_signed_in()));
                    return;
                }
                match self.account_for(&sign_in) {
                    Ok(account) => {
                        let user = user_of(&sign_in);
                        let source = self
                            .local
                            .token_source(&sign_in.backend, &sign_in.user_id, &sign_in.credential)
                            .map(|(s, _)| s);
                        match source {
                            Ok(source) => {
                                let client = account.client.clone();
                                self.begin_connect(
                                    account,
                                    Finish::SignIn {
                                        reply,
                                        sign_in,
                                        remember,
                                    },
                                    async move { client.connect_user(user, source).await },
                                );
                            }
                            Err(e) => {
                                let _ = reply.send(Err(e));
                            }
                        }
                    }
                    Err(e) => {
                        let _ = reply.send(Err(e));
                    }
                }
            }
            Request::Restore { reply } => {
                if !matches!(self.phase, Phase::SignedOut) {
                    let _ = reply.send(Restored {
                        signed_in: None,
                        backend: None,
                        keychain_available: true,
                        message: Some("Sign out first.".into()),
                    });
                    return;
                }
                let recall = self.keychain.run(|k| k.recall());
                let reports = self.reports.clone();
                tokio::spawn(async move {
                    let result = recall.await;
                    let _ = reports.send(Report::Recalled { result, reply });
                });
            }
            Request::Guest {
                backend,
                guest,
                reply,
            } => {
                if !matches!(self.phase, Phase::SignedOut) {
                    let _ = reply.send(Err(SessionError::already_signed_in()));
                    return;
                }
                let client = self.local.client_for(&backend);
                let account = self.new_account(client, backend, "guest token from the coordinator");
                let client = account.client.clone();
                self.begin_connect(account, Finish::Guest { reply }, async move {
                    client.connect_guest(guest).await
                });
            }
            Request::SignOut { reply } => self.sign_out_in_background(Some(reply)),
            Request::TokenInfo { reply } => {
                let _ = reply.send(self.token_info());
            }
            Request::JoinCall { choice, reply } => self.join_call(choice, reply),
            Request::LeaveCall { reply } => {
                let attempt = self.next_attempt();
                let call = match &mut self.phase {
                    Phase::SignedIn(active) => {
                        active.call_attempt = attempt;
                        active.call.take()
                    }
                    _ => None,
                };
                self.status.send_modify(|s| {
                    s.call = None;
                    s.broadcast = None;
                });
                tokio::spawn(async move {
                    if let Some(call) = call {
                        call.leave().await;
                    }
                    let _ = reply.send(());
                });
            }
            Request::SetLive {
                live,
                camera,
                reply,
            } => self.set_live(live, camera, reply),
            Request::ViewerToken { reply } => {
                let answer = match &self.phase {
                    Phase::SignedIn(active) => Ok(match (&active.call, &active.account.backend) {
                        (Some(call), Backend::Local) => {
                            Some(call::viewer_token(&self.local, &call.cid()))
                        }
                        _ => None,
                    }),
                    _ => Err(SessionError::not_signed_in("share a livestream")),
                };
                let _ = reply.send(answer);
            }
        }
    }

    fn new_account(
        &mut self,
        client: VideoClient,
        backend: Backend,
        token_source: &'static str,
    ) -> Account {
        let generation = self.generation.fetch_add(1, Ordering::SeqCst) + 1;
        Account {
            client,
            backend,
            token_source,
            generation,
        }
    }

    fn account_for(&mut self, sign_in: &RememberedSignIn) -> Result<Account, SessionError> {
        let (_, token_source) =
            self.local
                .token_source(&sign_in.backend, &sign_in.user_id, &sign_in.credential)?;
        let client = self.local.client_for(&sign_in.backend);
        Ok(self.new_account(client, sign_in.backend.clone(), token_source))
    }

    /// Starts connecting in a task of its own and forwards the client's state to the status.
    fn begin_connect(
        &mut self,
        account: Account,
        finish: Finish,
        connect: impl std::future::Future<Output = Result<ConnectedUser, ConnectError>> + Send + 'static,
    ) {
        let attempt = self.next_attempt();
        self.publish_connection(ConnectionStatus::from_state(&ConnectionState::Connecting));
        forward_connection(
            &account,
            self.status.clone(),
            self.timeline.clone(),
            self.generation.clone(),
        );
        let reports = self.reports.clone();
        let connect = tokio::spawn(async move {
            let result = connect.await;
            let _ = reports.send(Report::Connected { attempt, result });
        });
        self.phase = Phase::SigningIn(Pending {
            attempt,
            account,
            connect,
            finish,
        });
    }

    fn on_report(&mut self, report: Report) {
        match report {
            Report::Recalled { result, reply } => self.on_recalled(result, reply),
            Report::Connected { attempt, result } => self.on_connected(attempt, result),
            Report::Joined {
                attempt,
                result,
                reply,
            } => self.on_joined(attempt, result, reply),
            Report::LiveSet {
                attempt,
                result,
                reply,
            } => self.on_live_set(attempt, result, reply),
        }
    }

    fn on_recalled(
        &mut self,
        result: Result<Option<RememberedSignIn>, KeychainError>,
        reply: oneshot::Sender<Restored>,
    ) {
        let nothing = |keychain_available, message: Option<String>| Restored {
            signed_in: None,
            backend: None,
            keychain_available,
            message,
        };
        let sign_in = match result {
            Ok(Some(sign_in)) => sign_in,
            Ok(None) => {
                let _ = reply.send(nothing(true, None));
                return;
            }
            Err(e @ KeychainError::Unavailable(_)) => {
                tracing::info!(target: "confab::session", code = e.code(), "no keychain");
                let _ = reply.send(nothing(false, Some("No keychain is available on this computer, so Confab cannot remember a sign-in: you stay signed in until Confab closes.".into())));
                return;
            }
            Err(e) => {
                let _ = reply.send(nothing(true, Some(format!("{e}."))));
                return;
            }
        };
        if !matches!(self.phase, Phase::SignedOut) {
            let _ = reply.send(nothing(true, Some("Sign out first.".into())));
            return;
        }
        let backend = sign_in.backend.clone();
        let prepared = self.account_for(&sign_in).and_then(|account| {
            self.local
                .token_source(&sign_in.backend, &sign_in.user_id, &sign_in.credential)
                .map(|(source, _)| (account, source))
        });
        match prepared {
            Ok((account, source)) => {
                let client = account.client.clone();
                let user = user_of(&sign_in);
                self.begin_connect(account, Finish::Restore { reply, backend }, async move {
                    client.connect_user(user, source).await
                });
            }
            Err(e) => {
                let _ = reply.send(Restored {
                    signed_in: None,
                    backend: Some(backend),
                    keychain_available: true,
                    message: Some(format!("Your remembered sign-in did not work: {e}")),
                });
            }
        }
    }

    fn on_connected(&mut self, attempt: u64, result: Result<ConnectedUser, ConnectError>) {
        let pending = match std::mem::replace(&mut self.phase, Phase::SignedOut) {
            Phase::SigningIn(p) if p.attempt == attempt => p,
            // Signed out (or another sign-in began) meanwhile: that path answered already.
            other => {
                self.phase = other;
                return;
            }
        };
        let Pending {
            account, finish, ..
        } = pending;
        let me = match result {
            Ok(me) => me,
            Err(e) => {
                let error = SessionError::from_connect(&e);
                // Stop any retries in the background: this sign-in failed.
                self.generation.fetch_add(1, Ordering::SeqCst);
                let client = account.client.clone();
                tokio::spawn(async move { client.disconnect_user().await });
                self.publish_connection(ConnectionStatus {
                    reason: Some(error.message.clone()),
                    ..ConnectionStatus::from_state(&ConnectionState::Idle)
                });
                self.finish_failed(finish, error);
                return;
            }
        };
        let signed_in = SignedIn {
            user_id: me.id,
            name: me.name,
            role: me.role,
            backend: backend_label(&account.backend),
            remembered: None,
        };
        self.phase = Phase::SignedIn(Active {
            account,
            call: None,
            call_attempt: 0,
        });
        match finish {
            Finish::Guest { reply } => {
                let _ = reply.send(Ok(signed_in));
            }
            Finish::Restore { reply, backend } => {
                let _ = reply.send(Restored {
                    signed_in: Some(SignedIn {
                        remembered: Some(Remembered {
                            stored: true,
                            message: "Signed in from the keychain.".into(),
                        }),
                        ..signed_in
                    }),
                    backend: Some(backend),
                    keychain_available: true,
                    message: None,
                });
            }
            Finish::SignIn {
                reply,
                sign_in,
                remember,
            } => {
                // Queued now, so a sign-out asked for later forgets after this remembers.
                let stored = if remember {
                    Some(self.keychain.run(move |k| k.remember(&sign_in)))
                } else {
                    None
                };
                // Signing in without "Remember me" replaces an older remembered sign-in.
                let forgot = (!remember).then(|| self.keychain.run(|k| k.forget()));
                tokio::spawn(async move {
                    let remembered = match (stored, forgot) {
                        (Some(stored), _) => match stored.await {
                            Ok(()) => Remembered {
                                stored: true,
                                message:
                                    "Confab will sign you in when it starts, until you sign out."
                                        .into(),
                            },
                            Err(e) => {
                                tracing::warn!(target: "confab::session", code = e.code(), "could not remember the sign-in");
                                Remembered {
                                    stored: false,
                                    message: keychain_message(&e),
                                }
                            }
                        },
                        (None, forgot) => {
                            if let Some(forgot) = forgot {
                                let _ = forgot.await;
                            }
                            Remembered {
                                stored: false,
                                message: "Not remembered: you will sign in again next time.".into(),
                            }
                        }
                    };
                    let _ = reply.send(Ok(SignedIn {
                        remembered: Some(remembered),
                        ..signed_in
                    }));
                });
            }
        }
    }

    fn finish_failed(&mut self, finish: Finish, error: SessionError) {
        match finish {
            Finish::SignIn { reply, .. } | Finish::Guest { reply } => {
                let _ = reply.send(Err(error));
            }
            Finish::Restore { reply, backend } => {
                // A token that can never work again is dropped; an unreachable coordinator is
                // not the sign-in's fault, so it stays for next time.
                let forgot = error
                    .kind
                    .token_is_dead()
                    .then(|| self.keychain.run(|k| k.forget()));
                tokio::spawn(async move {
                    if let Some(forgot) = forgot {
                        let _ = forgot.await;
                    }
                    let _ = reply.send(Restored {
                        signed_in: None,
                        backend: Some(backend),
                        keychain_available: true,
                        message: Some(format!("Your remembered sign-in did not work: {error}")),
                    });
                });
            }
        }
    }

    /// Signs out at once: cancels a sign-in in progress, then leaves, disconnects and forgets
    /// the remembered sign-in in the background; `reply` hears when all of that is done.
    fn sign_out_in_background(&mut self, reply: Option<oneshot::Sender<SignedOut>>) {
        let (client, call) = match std::mem::replace(&mut self.phase, Phase::SignedOut) {
            Phase::SignedOut => (None, None),
            Phase::SigningIn(pending) => {
                pending.connect.abort();
                self.finish_failed(pending.finish, SessionError::cancelled());
                (Some(pending.account.client), None)
            }
            Phase::SignedIn(active) => (Some(active.account.client), active.call),
        };
        self.attempts += 1;
        let was_signed_in = client.is_some();
        self.generation.fetch_add(1, Ordering::SeqCst);
        self.status.send_modify(|s| {
            s.call = None;
            s.broadcast = None;
        });
        if was_signed_in {
            self.publish_connection(ConnectionStatus::from_state(
                &ConnectionState::Disconnected {
                    reason: confab_client::DisconnectReason::Manual,
                },
            ));
        }
        let forgot = reply.is_some().then(|| self.keychain.run(|k| k.forget()));
        tokio::spawn(async move {
            if let Some(call) = call {
                call.leave().await;
            }
            if let Some(client) = client {
                client.disconnect_user().await;
            }
            if let (Some(reply), Some(forgot)) = (reply, forgot) {
                let forgotten = forgot.await;
                let _ = reply.send(SignedOut {
                    keychain_cleared: forgotten.is_ok(),
                    message: forgotten.err().map(|e| keychain_message(&e)),
                });
            }
        });
    }

    fn account(&self) -> Option<&Account> {
        match &self.phase {
            Phase::SignedOut => None,
            Phase::SigningIn(p) => Some(&p.account),
            Phase::SignedIn(a) => Some(&a.account),
        }
    }

    fn token_info(&self) -> Option<TokenInfo> {
        let account = self.account()?;
        let tokens = account.client.token_manager()?;
        let claims = tokens.current_claims();
        Some(TokenInfo {
            user_id: claims.as_ref().and_then(|c| c.user_id.clone()),
            role: claims.as_ref().and_then(|c| c.role.clone()),
            call_cids: claims.as_ref().and_then(|c| c.call_cids.clone()),
            issued_at: claims.as_ref().and_then(|c| c.iat),
            expires_at: claims.as_ref().and_then(|c| c.exp),
            expires_in_s: tokens.current_expires_in(),
            source: account.token_source,
            provider_calls: tokens.provider_calls(),
        })
    }

    fn join_call(&mut self, choice: CallChoice, reply: Reply<CallView>) {
        let attempt = self.next_attempt();
        let Phase::SignedIn(active) = &mut self.phase else {
            let _ = reply.send(Err(SessionError::not_signed_in("join a call")));
            return;
        };
        active.call_attempt = attempt;
        let previous = active.call.take();
        let client = active.account.client.clone();
        let reports = self.reports.clone();
        let status = self.status.clone();
        status.send_modify(|s| {
            s.call = None;
            s.broadcast = None;
        });
        tokio::spawn(async move {
            if let Some(previous) = previous {
                previous.leave().await;
            }
            let result = call::join(client, &choice, status).await;
            let _ = reports.send(Report::Joined {
                attempt,
                result,
                reply,
            });
        });
    }

    fn on_joined(
        &mut self,
        attempt: u64,
        result: Result<JoinedCall, SessionError>,
        reply: Reply<CallView>,
    ) {
        let joined = match result {
            Ok(joined) => joined,
            Err(e) => {
                let _ = reply.send(Err(e));
                return;
            }
        };
        match &mut self.phase {
            Phase::SignedIn(active) if active.call_attempt == attempt => {
                let view = joined.view();
                self.status.send_modify(|s| s.call = Some(view.clone()));
                active.call = Some(joined);
                let _ = reply.send(Ok(view));
            }
            _ => {
                // Signed out, left or joined another call meanwhile.
                tokio::spawn(joined.leave());
                let _ = reply.send(Err(SessionError::cancelled()));
            }
        }
    }

    fn set_live(&mut self, live: bool, camera: BroadcastCamera, reply: Reply<bool>) {
        let attempt = self.next_attempt();
        let Phase::SignedIn(active) = &mut self.phase else {
            let _ = reply.send(Err(SessionError::not_signed_in("go live")));
            return;
        };
        let Some(joined) = active.call.as_mut() else {
            let _ = reply.send(Err(SessionError::not_signed_in("go live")));
            return;
        };
        active.call_attempt = attempt;
        let broadcast_to = (active.account.backend == Backend::Local)
            .then(|| active.account.client.token_manager())
            .flatten()
            .map(|tokens| (self.local.clone(), tokens));
        let plan = joined.live_plan(live, broadcast_to, camera);
        let reports = self.reports.clone();
        tokio::spawn(async move {
            let result = plan.run().await;
            let _ = reports.send(Report::LiveSet {
                attempt,
                result,
                reply,
            });
        });
    }

    fn on_live_set(
        &mut self,
        attempt: u64,
        result: Result<(bool, Option<confab_media::Broadcast>), SessionError>,
        reply: Reply<bool>,
    ) {
        let (is_live, broadcast) = match result {
            Ok(done) => done,
            Err(e) => {
                let _ = reply.send(Err(e));
                return;
            }
        };
        match &mut self.phase {
            Phase::SignedIn(Active {
                call: Some(joined),
                call_attempt,
                ..
            }) if *call_attempt == attempt => {
                if let Some(broadcast) = broadcast {
                    joined.adopt_broadcast(broadcast, self.status.clone());
                }
                let _ = reply.send(Ok(is_live));
            }
            _ => {
                if let Some(broadcast) = broadcast {
                    tokio::spawn(broadcast.stop());
                }
                let _ = reply.send(Err(SessionError::cancelled()));
            }
        }
    }
}

fn user_of(sign_in: &RememberedSignIn) -> User {
    let mut user = User::new(&sign_in.user_id);
    user.name = sign_in.name.clone();
    user
}

fn publish_connection(
    status: &watch::Sender<SessionStatus>,
    timeline: &Mutex<Vec<ConnectionStatus>>,
    connection: ConnectionStatus,
) {
    timeline
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .push(connection.clone());
    status.send_modify(|s| s.connection = connection);
}

/// Copies a client's connection state into the status while its account is current. A watch
/// channel keeps only the latest state, so repeats are skipped rather than sent twice.
fn forward_connection(
    account: &Account,
    status: Arc<watch::Sender<SessionStatus>>,
    timeline: Arc<Mutex<Vec<ConnectionStatus>>>,
    current: Arc<AtomicU64>,
) {
    let mut states = account.client.state();
    let generation = account.generation;
    tokio::spawn(async move {
        let mut last = ConnectionStatus::from_state(&ConnectionState::Connecting);
        loop {
            let now = ConnectionStatus::from_state(&states.borrow_and_update());
            if current.load(Ordering::SeqCst) != generation {
                return;
            }
            if !now.same_as(&last) && now.state != "idle" {
                last = now.clone();
                publish_connection(&status, &timeline, now);
            }
            if last.state == "disconnected" || states.changed().await.is_err() {
                return;
            }
        }
    });
}
