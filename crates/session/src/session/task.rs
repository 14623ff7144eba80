//! The session task's loop: it takes requests and reports one at a time and never awaits the
//! network itself.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use confab_client::{ConnectionState, User, VideoClient};
use confab_credentials::{Backend, RememberedSignIn};
use tokio::sync::{mpsc, watch};

use super::{Account, Finish, Phase, Report, Request, SessionTask};
use crate::call;
use crate::errors::SessionError;
use crate::status::{ConnectionStatus, SessionStatus};
use crate::views::{Restored, TokenInfo};

impl SessionTask {
    pub(super) async fn run(
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

    pub(super) fn next_attempt(&mut self) -> u64 {
        self.attempts += 1;
        self.attempts
    }

    pub(super) fn publish_connection(&self, status: ConnectionStatus) {
        publish_connection(&self.status, &self.timeline, status);
    }

    pub(super) fn handle(&mut self, request: Request) {
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
            Request::JoinCall {
                choice,
                media,
                reply,
            } => self.join_call(choice, media, reply),
            Request::CallMedia { reply } => {
                let media = match &self.phase {
                    Phase::SignedIn(active) => active.call.as_ref().and_then(|c| c.media()),
                    _ => None,
                };
                let _ = reply.send(media);
            }
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
            Request::SetLive { live, reply } => self.set_live(live, reply),
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

    pub(super) fn new_account(
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

    pub(super) fn account_for(
        &mut self,
        sign_in: &RememberedSignIn,
    ) -> Result<Account, SessionError> {
        let (_, token_source) =
            self.local
                .token_source(&sign_in.backend, &sign_in.user_id, &sign_in.credential)?;
        let client = self.local.client_for(&sign_in.backend);
        Ok(self.new_account(client, sign_in.backend.clone(), token_source))
    }

    /// Starts connecting in a task of its own and forwards the client's state to the status.
    pub(super) fn on_report(&mut self, report: Report) {
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

    pub(super) fn account(&self) -> Option<&Account> {
        match &self.phase {
            Phase::SignedOut => None,
            Phase::SigningIn(p) => Some(&p.account),
            Phase::SignedIn(a) => Some(&a.account),
        }
    }

    pub(super) fn token_info(&self) -> Option<TokenInfo> {
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
}

pub(super) fn user_of(sign_in: &RememberedSignIn) -> User {
    let mut user = User::new(&sign_in.user_id);
    user.name = sign_in.name.clone();
    user
}

pub(super) fn publish_connection(
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
pub(super) fn forward_connection(
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
