//! The session against a real local coordinator on loopback: signing in and out, a sign-out
//! that cancels a sign-in in progress, refusals in plain words, calls and their participants.
//! The keychain is the OS's (a service name of the test's own), which outside the test
//! session is simply unavailable: these flows do not depend on it.

use std::time::Duration;

use confab_client::{ClientOptions, TokenSource, User, VideoClient};
use confab_coordinator::{RunningCoordinator, SigningKey};
use confab_credentials::{Backend, Keychain};
use confab_session::{
    ErrorKind, LocalBackend, SessionHandle, SessionOptions, SessionStatus, SignInForm,
};
use tokio::sync::watch;

async fn coordinator() -> RunningCoordinator {
    confab_coordinator::start(Default::default()).await.unwrap()
}

fn session_on(coordinator: &RunningCoordinator) -> SessionHandle {
    SessionHandle::start(SessionOptions {
        local: LocalBackend {
            base_url: coordinator.base_url().to_owned(),
            api_key: coordinator.api_key().to_owned(),
            signing_key: coordinator.signing_key(),
        },
        keychain: Keychain::new(format!("dev.confab.test.session.{}", std::process::id())),
    })
}

fn local_sign_in(user_id: &str) -> SignInForm {
    SignInForm {
        backend: Backend::Local,
        user_id: user_id.into(),
        name: None,
        token: None,
        token_url: None,
        remember: false,
    }
}

fn stream_sign_in(base_url: &str, api_key: &str, user_id: &str, token: String) -> SignInForm {
    SignInForm {
        backend: Backend::Stream {
            api_key: api_key.into(),
            base_url: Some(base_url.into()),
        },
        user_id: user_id.into(),
        name: None,
        token: Some(token),
        token_url: None,
        remember: false,
    }
}

/// Waits (bounded) until the status satisfies `ok`.
async fn status_until(
    status: &mut watch::Receiver<SessionStatus>,
    what: &str,
    ok: impl Fn(&SessionStatus) -> bool,
) -> SessionStatus {
    let waited = tokio::time::timeout(Duration::from_secs(20), status.wait_for(|s| ok(s)))
        .await
        .map(|seen| seen.map(|s| s.clone()));
    match waited {
        Ok(Ok(seen)) => seen,
        Ok(Err(_)) => panic!("the session ended while waiting for {what}"),
        Err(_) => panic!("timed out waiting for {what}: {:?}", status.borrow()),
    }
}

#[tokio::test]
async fn a_local_sign_in_connects_shows_its_token_source_and_signs_out() {
    let coordinator = coordinator().await;
    let session = session_on(&coordinator);
    let mut status = session.status();

    let me = session.sign_in(local_sign_in(" ann ")).await.unwrap();
    assert_eq!((me.user_id.as_str(), me.backend), ("ann", "local"));
    assert!(!me.remembered.unwrap().stored);
    status_until(&mut status, "connected", |s| {
        s.connection.state == "connected"
    })
    .await;

    let info = session.token_info().await.unwrap().unwrap();
    assert_eq!(info.user_id.as_deref(), Some("ann"));
    assert_eq!(info.source, "minted by this computer");
    assert!(info.expires_in_s.unwrap() > 3000.0);

    // One session at a time.
    let again = session.sign_in(local_sign_in("bob")).await.unwrap_err();
    assert_eq!(again.kind, ErrorKind::AlreadySignedIn);

    session.sign_out().await.unwrap();
    let out = status_until(&mut status, "signed out", |s| {
        s.connection.state == "disconnected"
    })
    .await;
    assert_eq!(out.connection.reason.as_deref(), Some("Signed out."));
    assert!(session.token_info().await.unwrap().is_none());
    let states: Vec<&str> = session.timeline().iter().map(|s| s.state).collect();
    assert_eq!(states.first(), Some(&"connecting"));
    assert!(states.contains(&"connected"), "{states:?}");
}

#[tokio::test]
async fn signing_out_cancels_a_sign_in_in_progress_and_nothing_waits_behind_it() {
    // A coordinator that accepts connections and never answers: a sign-in against it waits
    // for its handshake timeout, then retries, for over a minute.
    let silent = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = silent.local_addr().unwrap().port();
    let held = tokio::spawn(async move {
        let mut sockets = Vec::new();
        while sockets.len() < 16 {
            match silent.accept().await {
                Ok((socket, _)) => sockets.push(socket),
                Err(_) => break,
            }
        }
        sockets
    });
    let coordinator = coordinator().await;
    let session = session_on(&coordinator);
    let mut status = session.status();
    let token = coordinator.mint_token("ann", None);
    let signing_in = tokio::spawn({
        let session = session.clone();
        async move {
            session
                .sign_in(stream_sign_in(
                    &format!("http://127.0.0.1:{port}/video"),
                    "k3y",
                    "ann",
                    token,
                ))
                .await
        }
    });
    status_until(&mut status, "connecting", |s| {
        s.connection.state == "connecting"
    })
    .await;

    // The inspector and sign-out answer while the connect waits (bounded: a hang fails).
    let bound = Duration::from_secs(5);
    let info = tokio::time::timeout(bound, session.token_info()).await;
    assert!(info.expect("the inspector waited behind a sign-in").is_ok());
    let out = tokio::time::timeout(bound, session.sign_out()).await;
    assert!(out.expect("sign-out waited behind a sign-in").is_ok());
    let result = tokio::time::timeout(bound, signing_in)
        .await
        .expect("the cancelled sign-in never answered")
        .unwrap();
    assert_eq!(result.unwrap_err().kind, ErrorKind::Cancelled);

    // And the session is free for the next sign-in.
    session.sign_in(local_sign_in("ann")).await.unwrap();
    held.abort();
}

#[tokio::test]
async fn a_forged_token_is_refused_in_plain_words_with_its_code_underneath() {
    let coordinator = coordinator().await;
    let session = session_on(&coordinator);
    let forged = SigningKey::new("not the coordinator's secret").user_token("ann", None);
    let error = session
        .sign_in(stream_sign_in(
            coordinator.base_url(),
            coordinator.api_key(),
            "ann",
            forged,
        ))
        .await
        .unwrap_err();
    assert_eq!(error.kind, ErrorKind::TokenRejected);
    assert_eq!(error.message, "The token was rejected. Ask for a new one.");
    assert_eq!(error.coordinator_code, Some(43));
    // A token for someone else never leaves the app.
    let other = coordinator.mint_token("bob", None);
    let error = session
        .sign_in(stream_sign_in(
            coordinator.base_url(),
            coordinator.api_key(),
            "ann",
            other,
        ))
        .await
        .unwrap_err();
    assert_eq!(error.kind, ErrorKind::TokenInvalid);
    assert!(error.message.contains("'bob'"), "{}", error.message);
}

#[tokio::test(start_paused = true)]
async fn an_unreachable_coordinator_is_retried_with_backoff_on_the_paused_clock() {
    // A port nobody listens on: every attempt is refused at once, so only the backoff between
    // attempts takes time, and the paused clock skips it.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = closed.local_addr().unwrap().port();
    drop(closed);
    let coordinator = coordinator().await;
    let session = session_on(&coordinator);
    let started = tokio::time::Instant::now();
    let error = session
        .sign_in(stream_sign_in(
            &format!("http://127.0.0.1:{port}/video"),
            "k3y",
            "ann",
            coordinator.mint_token("ann", None),
        ))
        .await
        .unwrap_err();
    assert_eq!(error.kind, ErrorKind::Unreachable);
    assert_eq!(
        error.message,
        "Could not reach the coordinator. Check the address and try again."
    );
    // Four pauses between five attempts, each at least a quarter of a second.
    let waited = started.elapsed();
    assert!(waited >= Duration::from_secs(1), "retried after {waited:?}");
}

#[tokio::test]
async fn a_joined_call_keeps_its_participants_from_the_coordinators_events() {
    let coordinator = coordinator().await;
    let session = session_on(&coordinator);
    let mut status = session.status();
    session.sign_in(local_sign_in("ann")).await.unwrap();

    let bad = session
        .join_call("audio_room", "x", None)
        .await
        .unwrap_err();
    assert_eq!(bad.kind, ErrorKind::InvalidInput);

    let view = session.join_call("default", "standup", None).await.unwrap();
    assert_eq!(view.cid, "default:standup");
    let ids: Vec<&str> = view
        .participants
        .iter()
        .map(|p| p.user_id.as_str())
        .collect();
    assert_eq!(ids, ["ann"]);

    let bob = VideoClient::new(
        coordinator.api_key(),
        ClientOptions::default().with_base_url(coordinator.base_url()),
    );
    bob.connect_user(
        User::new("bob"),
        TokenSource::token(coordinator.mint_token("bob", None)),
    )
    .await
    .unwrap();
    bob.call("default", "standup").join(false).await.unwrap();
    status_until(&mut status, "bob in the call", |s| {
        s.call
            .as_ref()
            .is_some_and(|c| c.participants.iter().any(|p| p.user_id == "bob"))
    })
    .await;
    bob.call("default", "standup").leave().await.unwrap();
    status_until(&mut status, "bob gone", |s| {
        s.call.as_ref().is_some_and(|c| c.participants.len() == 1)
    })
    .await;

    session.leave_call().await.unwrap();
    assert!(session.status().borrow().call.is_none());
}

#[tokio::test]
async fn a_hosts_viewer_token_watches_that_livestream_only_and_expires() {
    use confab_client::{ReadClaims, TokenClaims};
    use confab_session::WatchForm;

    let coordinator = coordinator().await;
    let session = session_on(&coordinator);
    session.sign_in(local_sign_in("hana")).await.unwrap();
    assert_eq!(
        session.viewer_token().await.unwrap(),
        None,
        "no call joined yet"
    );
    let view = session
        .join_call("livestream", "launch", None)
        .await
        .unwrap();
    assert!(view.backstage && view.can_go_live);
    let token = session.viewer_token().await.unwrap().unwrap();
    let claims = TokenClaims::decode(&token).unwrap();
    assert_eq!(claims.call_cids, Some(vec!["livestream:launch".to_owned()]));
    let lifetime = claims.exp.unwrap() - claims.iat.unwrap();
    assert_eq!(lifetime, 12 * 3600);

    let watch = |call_id: &str, token: &str| WatchForm {
        backend: Backend::Local,
        call_id: call_id.into(),
        call_token: Some(token.into()),
    };
    let seen = session
        .watch_livestream(watch("launch", &token))
        .await
        .unwrap();
    assert_eq!(seen.cid, "livestream:launch");
    assert!(seen.backstage);
    session
        .join_call("livestream", "other", None)
        .await
        .unwrap();
    let refused = session
        .watch_livestream(watch("other", &token))
        .await
        .unwrap_err();
    assert_eq!(refused.kind, ErrorKind::NotAllowed);
    assert!(
        refused.message.contains("livestream:other"),
        "{}",
        refused.message
    );
}
