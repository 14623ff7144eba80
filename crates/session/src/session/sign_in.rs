//! Signing in (a user, a guest, a remembered sign-in) and out, and the keychain policy: a
//! "remember" is queued before any later "forget", a dead token is dropped, an unreachable
//! coordinator keeps the remembered sign-in for next time.

use std::sync::atomic::Ordering;

use confab_client::{ConnectError, ConnectedUser, ConnectionState};
use confab_credentials::{KeychainError, RememberedSignIn};
use tokio::sync::oneshot;

use super::task::{forward_connection, user_of};
use super::{keychain_message, Account, Active, Finish, Pending, Phase, Report, SessionTask};
use crate::backend::backend_label;
use crate::errors::SessionError;
use crate::status::ConnectionStatus;
use crate::views::{Remembered, Restored, SignedIn, SignedOut};

impl SessionTask {
    pub(super) fn begin_connect(
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

    pub(super) fn on_recalled(
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

    pub(super) fn on_connected(
        &mut self,
        attempt: u64,
        result: Result<ConnectedUser, ConnectError>,
    ) {
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

    pub(super) fn finish_failed(&mut self, finish: Finish, error: SessionError) {
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
    pub(super) fn sign_out_in_background(&mut self, reply: Option<oneshot::Sender<SignedOut>>) {
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
}
