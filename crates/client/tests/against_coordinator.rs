//! The client against a real local coordinator on loopback, using its fault switches.
//!
//! Over 600 lines: one scenario per test, each a story of several steps against one
//! coordinator; splitting them by file would only repeat the helpers at the top.

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use confab_client::{
    ClientOptions, ConnectError, ConnectionOptions, ConnectionState, DisconnectReason, Event,
    Guest, ProviderError, TokenLoadError, TokenSource, User, VideoClient,
};
use confab_coordinator::{Claims, CoordinatorConfig, FaultCommand, RunningCoordinator};

async fn coordinator() -> RunningCoordinator {
    confab_coordinator::start(CoordinatorConfig {
        fault_injection: true,
        ..CoordinatorConfig::default()
    })
    .await
    .unwrap()
}

fn options(c: &RunningCoordinator) -> ClientOptions {
    ClientOptions::default().with_base_url(c.base_url())
}

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

/// A provider that signs tokens as the app's token server would, and counts its calls. Each
/// token differs (its `exp`), as real ones do.
fn provider(c: &RunningCoordinator, user: &str) -> (Arc<AtomicU32>, TokenSource) {
    let calls = Arc::new(AtomicU32::new(0));
    let (counter, key, user) = (calls.clone(), c.signing_key(), user.to_owned());
    let source = TokenSource::provider(move || {
        let n = counter.fetch_add(1, Ordering::SeqCst) as i64;
        let token = key.sign(&Claims {
            user_id: Some(user.clone()),
            iat: Some(now()),
            exp: Some(now() + 3600 + n),
            ..Default::default()
        });
        async move { Ok(token) }
    });
    (calls, source)
}

/// A client connected as `user` with a static token from the coordinator.
async fn connected_client(
    c: &RunningCoordinator,
    user: &str,
    options: ClientOptions,
) -> VideoClient {
    let client = VideoClient::new(c.api_key(), options);
    client
        .connect_user(
            User::new(user),
            TokenSource::token(c.mint_token(user, None)),
        )
        .await
        .unwrap();
    client
}

async fn wait_for_state(
    client: &VideoClient,
    what: &str,
    want: impl Fn(&ConnectionState) -> bool,
) -> ConnectionState {
    let mut rx = client.state();
    let result = tokio::time::timeout(Duration::from_secs(30), async {
        loop {
            let state = rx.borrow_and_update().clone();
            if want(&state) {
                return state;
            }
            if rx.changed().await.is_err() {
                panic!("state channel closed while waiting for {what}");
            }
        }
    })
    .await;
    result.unwrap_or_else(|_| {
        panic!(
            "timed out waiting for {what}; state is {:?}",
            client.state().borrow()
        )
    })
}

/// Waits until the client is connected on a socket other than `before`.
async fn wait_for_new_connection(client: &VideoClient, before: &str, what: &str) {
    wait_for_state(
        client,
        what,
        |s| matches!(s, ConnectionState::Connected { connection_id } if connection_id != before),
    )
    .await;
}

/// The next event `pick` accepts, within 3 seconds.
async fn next_event<T>(
    events: &mut tokio::sync::broadcast::Receiver<Event>,
    what: &str,
    mut pick: impl FnMut(Event) -> Option<T>,
) -> T {
    tokio::time::timeout(Duration::from_secs(3), async {
        loop {
            if let Ok(event) = events.recv().await {
                if let Some(found) = pick(event) {
                    return found;
                }
            }
        }
    })
    .await
    .unwrap_or_else(|_| panic!("no {what} within 3 s"))
}

fn connected(s: &ConnectionState) -> bool {
    matches!(s, ConnectionState::Connected { .. })
}

fn connection_id(client: &VideoClient) -> String {
    match &*client.state().borrow() {
        ConnectionState::Connected { connection_id } => connection_id.clone(),
        other => panic!("not connected: {other:?}"),
    }
}

#[tokio::test]
async fn connects_disconnects_and_keeps_one_instance_per_key_and_user() {
    let c = coordinator().await;
    let token = c.mint_token("alice", Some(Duration::from_secs(3600)));
    let make = || VideoClient::new(c.api_key(), options(&c));
    let first = VideoClient::get_or_create_instance(c.api_key(), "alice", make);
    let me = first
        .connect_user(
            User::new("alice").with_name("Alice"),
            TokenSource::token(&token),
        )
        .await
        .unwrap();
    assert_eq!(me.id, "alice");
    assert_eq!(me.name.as_deref(), Some("Alice"));
    assert!(connected(&first.state().borrow()));
    assert_eq!(c.connection_count(), 1);

    let again = VideoClient::get_or_create_instance(c.api_key(), "alice", || {
        panic!("must reuse the instance")
    });
    assert!(again.same_instance(&first));
    let bob = VideoClient::get_or_create_instance(c.api_key(), "bob", make);
    assert!(!bob.same_instance(&first));

    first.disconnect_user().await;
    assert_eq!(
        *first.state().borrow(),
        ConnectionState::Disconnected {
            reason: DisconnectReason::Manual
        }
    );
    assert_eq!(first.user_id(), None);
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(c.connection_count(), 0);
    // Gone from the registry: a new instance is made.
    let fresh = VideoClient::get_or_create_instance(c.api_key(), "alice", make);
    assert!(!fresh.same_instance(&first));
    c.shutdown().await;
}

#[tokio::test]
async fn a_token_for_another_user_fails_before_any_network_call() {
    let client = VideoClient::new(
        "key",
        ClientOptions::default().with_base_url("http://127.0.0.1:9/video"),
    );
    let token = confab_coordinator::SigningKey::new("s").sign(&Claims {
        user_id: Some("alice".into()),
        ..Default::default()
    });
    let err = client
        .connect_user(User::new("bob"), TokenSource::token(token))
        .await
        .unwrap_err();
    assert!(
        matches!(err, ConnectError::Token(TokenLoadError::Invalid(_))),
        "{err}"
    );
    assert!(err.to_string().contains("alice") && err.to_string().contains("bob"));
}

#[tokio::test]
async fn an_expired_static_token_is_refreshed_once_through_the_provider_on_the_socket() {
    let c = coordinator().await;
    let expired = c.signing_key().sign(&Claims {
        user_id: Some("carol".into()),
        iat: Some(now() - 100),
        exp: Some(now() - 10),
        ..Default::default()
    });
    let (calls, provider) = provider(&c, "carol");
    let TokenSource::Provider(inner) = provider else {
        unreachable!()
    };
    // A provider that takes 100 ms, as a real token server does: long enough for the state
    // below to be seen.
    let p: Arc<dyn confab_client::token_manager::TokenProvider> = Arc::new(move || {
        let fetch = inner.fetch();
        async move {
            tokio::time::sleep(Duration::from_millis(100)).await;
            fetch.await
        }
    });
    let client = VideoClient::new(c.api_key(), options(&c));
    // Static first, provider for refreshes: the static token has expired, so the client
    // refreshes before sending it rather than waiting to be refused.
    client
        .connect_user(
            User::new("carol"),
            TokenSource::StaticThenProvider(confab_client::Token::new(expired), p),
        )
        .await
        .unwrap();
    assert_eq!(calls.load(Ordering::SeqCst), 1);

    // The coordinator expires carol's tokens: code 40 on the socket, one refresh, reconnect.
    // Every state on the way is recorded, so the app can say "token expired: refreshing".
    let seen = Arc::new(Mutex::new(Vec::new()));
    let mut states = client.state();
    let recorder = {
        let seen = seen.clone();
        tokio::spawn(async move {
            while states.changed().await.is_ok() {
                let now = states.borrow_and_update().clone();
                seen.lock().unwrap().push(now);
            }
        })
    };
    let before = connection_id(&client);
    c.inject(FaultCommand::ExpireTokens {
        user_id: "carol".into(),
    });
    wait_for_new_connection(&client, &before, "a new connection").await;
    assert_eq!(calls.load(Ordering::SeqCst), 2);
    recorder.abort();
    let seen = seen.lock().unwrap().clone();
    assert!(seen.contains(&ConnectionState::RefreshingToken), "{seen:?}");
    c.shutdown().await;
}

#[tokio::test]
async fn concurrent_code_40_requests_cause_exactly_one_provider_call() {
    let c = coordinator().await;
    let host = connected_client(&c, "host", options(&c)).await;
    host.call("livestream", "show")
        .get_or_create(None)
        .await
        .unwrap();

    let first = c.signing_key().sign(&Claims {
        user_id: Some("!anon".into()),
        call_cids: Some(vec!["livestream:show".into()]),
        exp: Some(now() + 3600),
        ..Default::default()
    });
    let calls = Arc::new(AtomicU32::new(0));
    let (counter, key) = (calls.clone(), c.signing_key());
    let source = TokenSource::token(first).with_provider(move || {
        counter.fetch_add(1, Ordering::SeqCst);
        let token = key.sign(&Claims {
            user_id: Some("!anon".into()),
            call_cids: Some(vec!["livestream:show".into()]),
            exp: Some(now() + 7200),
            ..Default::default()
        });
        async move {
            tokio::time::sleep(Duration::from_millis(50)).await;
            Ok(token)
        }
    });
    let viewer = VideoClient::new(c.api_key(), options(&c));
    viewer.connect_anonymous(Some(source)).await.unwrap();
    viewer.call("livestream", "show").get().await.unwrap();
    assert_eq!(calls.load(Ordering::SeqCst), 0);

    // Every token the viewer used is now expired at the coordinator: 10 requests at once all
    // see code 40, and share one refresh.
    c.inject(FaultCommand::ExpireTokens {
        user_id: "!anon".into(),
    });
    let results = futures_util::future::join_all((0..10).map(|_| {
        let viewer = viewer.clone();
        async move { viewer.call("livestream", "show").get().await }
    }))
    .await;
    for r in &results {
        assert!(r.is_ok(), "{r:?}");
    }
    assert_eq!(calls.load(Ordering::SeqCst), 1);

    // Another call stays refused, with Stream's code kept.
    let err = viewer.call("livestream", "other").get().await.unwrap_err();
    assert!(matches!(err.code(), Some(16) | Some(17)), "{err}");
    c.shutdown().await;
}

#[tokio::test]
async fn provider_failures_surface_with_their_cause_and_retries_report_every_attempt_in_order() {
    let c = coordinator().await;
    let attempt = Arc::new(AtomicU32::new(0));
    let a = attempt.clone();
    let source = TokenSource::provider(move || {
        let n = a.fetch_add(1, Ordering::SeqCst) + 1;
        async move { Err(ProviderError::new(format!("auth server down (try {n})"))) }
    });
    type Report = Option<(ConnectError, Vec<ConnectError>)>;
    let reported: Arc<Mutex<Report>> = Arc::default();
    let sink = reported.clone();
    let mut opts = options(&c)
        .with_max_connect_user_retries(3)
        .on_connect_user_error(move |last, all| {
            *sink.lock().unwrap() = Some((last.clone(), all.to_vec()));
        });
    opts.tokens.max_refresh_attempts = 1;
    let client = VideoClient::new(c.api_key(), opts);
    let err = client
        .connect_user(User::new("dave"), source)
        .await
        .unwrap_err();
    assert!(
        err.to_string().contains("auth server down (try 3)"),
        "{err}"
    );

    let (last, all) = reported
        .lock()
        .unwrap()
        .clone()
        .expect("on_connect_user_error was called");
    assert_eq!(all.len(), 3);
    for (i, e) in all.iter().enumerate() {
        assert!(
            e.to_string().contains(&format!("(try {})", i + 1)),
            "attempt {i}: {e}"
        );
    }
    assert_eq!(last, all[2]);

    // A refusal no retry can fix (a bad signature) is reported after one attempt, with its
    // code; one that may pass (a server error) is retried like the provider's failures.
    c.inject(FaultCommand::RefuseConnects {
        code: 43,
        count: None,
    });
    let reported2: Arc<Mutex<Vec<ConnectError>>> = Arc::default();
    let sink = reported2.clone();
    let client = VideoClient::new(
        c.api_key(),
        options(&c)
            .with_max_connect_user_retries(3)
            .on_connect_user_error(move |_, all| {
                *sink.lock().unwrap() = all.to_vec();
            }),
    );
    let err = client
        .connect_user(
            User::new("erin"),
            TokenSource::token(c.mint_token("erin", None)),
        )
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some(43));
    assert!(err.is_terminal());
    let codes = |reported: &Arc<Mutex<Vec<ConnectError>>>| {
        reported
            .lock()
            .unwrap()
            .iter()
            .map(|e| e.code())
            .collect::<Vec<_>>()
    };
    assert_eq!(codes(&reported2), [Some(43)]);

    c.inject(FaultCommand::RefuseConnects {
        code: -1,
        count: None,
    });
    let err = client
        .connect_user(
            User::new("erin"),
            TokenSource::token(c.mint_token("erin", None)),
        )
        .await
        .unwrap_err();
    assert!(!err.is_terminal());
    assert_eq!(codes(&reported2), [Some(-1), Some(-1), Some(-1)]);
    c.shutdown().await;
}

#[tokio::test]
async fn a_dropped_socket_and_a_restarted_coordinator_are_reconnected() {
    let dir = tempfile_dir();
    let config = |addr| CoordinatorConfig {
        addr,
        data_dir: Some(dir.clone()),
        fault_injection: true,
        ..CoordinatorConfig::default()
    };
    let c = confab_coordinator::start(config("127.0.0.1:0".parse().unwrap()))
        .await
        .unwrap();
    let addr = c.local_addr();
    let client = connected_client(&c, "frank", options(&c)).await;
    let mut events = client.events();

    let before = connection_id(&client);
    c.inject(FaultCommand::DropSockets {
        user_id: Some("frank".into()),
    });
    wait_for_state(&client, "reconnecting", |s| {
        matches!(s, ConnectionState::Reconnecting { attempt: 1, .. })
    })
    .await;
    wait_for_new_connection(&client, &before, "connected again").await;
    next_event(
        &mut events,
        "connection.changed {online: true} after reconnecting",
        |e| matches!(e, Event::ConnectionChanged { online: true }).then_some(()),
    )
    .await;

    // Calls watched before a drop are watched again: their events still arrive.
    client
        .call("default", "after-drop")
        .get_or_create(None)
        .await
        .unwrap();
    let before = connection_id(&client);
    c.inject(FaultCommand::DropSockets {
        user_id: Some("frank".into()),
    });
    wait_for_new_connection(&client, &before, "connected again").await;
    tokio::time::sleep(Duration::from_millis(200)).await; // the re-watch request
    let other = connected_client(&c, "gina", options(&c)).await;
    other
        .call("default", "after-drop")
        .join(false)
        .await
        .unwrap();
    let joined = next_event(
        &mut events,
        "events of a call watched before the reconnect",
        |e| match e {
            Event::ParticipantJoined(e) => Some(e),
            _ => None,
        },
    )
    .await;
    assert_eq!(joined.participant.user.id, "gina");
    other.disconnect_user().await;

    // The whole coordinator goes away and comes back on the same port and data.
    let before = connection_id(&client);
    c.shutdown().await;
    wait_for_state(&client, "reconnecting", |s| !connected(s)).await;
    tokio::time::sleep(Duration::from_millis(700)).await;
    let c = confab_coordinator::start(config(addr)).await.unwrap();
    wait_for_new_connection(&client, &before, "connected to the restarted coordinator").await;
    c.shutdown().await;
}

fn tempfile_dir() -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "confab-client-test-{}-{}",
        std::process::id(),
        now()
    ));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

// On the paused clock, with the default 15 s silence timeout: tokio skips the waits, so the
// test measures the client's own timing, not the machine's speed.
#[tokio::test(start_paused = true)]
async fn a_silent_socket_is_detected_and_replaced() {
    let c = coordinator().await;
    let connection = ConnectionOptions::default();
    let silence = connection.silence_timeout;
    assert_eq!(silence, Duration::from_secs(15));
    let client = connected_client(&c, "grace", options(&c)).await;

    // Healthy for a minute: health checks are answered, the socket stays.
    let before = connection_id(&client);
    tokio::time::sleep(Duration::from_secs(60)).await;
    assert_eq!(connection_id(&client), before);

    // The coordinator stops answering: within the silence timeout the client reconnects.
    c.inject(FaultCommand::IgnoreHealthChecks { ignore: true });
    let started = tokio::time::Instant::now();
    wait_for_state(&client, "reconnecting", |s| {
        matches!(s, ConnectionState::Reconnecting { .. })
    })
    .await;
    let detected = started.elapsed();
    assert!(
        detected <= silence + Duration::from_secs(1),
        "detected after {detected:?}"
    );
    // Not before the silence was long enough: the last answer came at most one ping ago.
    assert!(
        detected + connection.ping_interval >= silence,
        "detected too early, after {detected:?}"
    );
    c.inject(FaultCommand::IgnoreHealthChecks { ignore: false });
    wait_for_new_connection(&client, &before, "connected again").await;
    c.shutdown().await;
}

#[tokio::test]
async fn a_later_user_never_gets_the_previous_users_credentials() {
    let c = coordinator().await;
    let client = VideoClient::new(c.api_key(), options(&c));
    let (alice_calls, alice_provider) = provider(&c, "alice");
    client
        .connect_user(User::new("alice"), alice_provider)
        .await
        .unwrap();
    assert_eq!(alice_calls.load(Ordering::SeqCst), 1);

    // Another user while alice is connected: a clear error, nothing changed.
    let err = client
        .connect_user(
            User::new("bob"),
            TokenSource::token(c.mint_token("bob", None)),
        )
        .await
        .unwrap_err();
    assert!(
        matches!(err, ConnectError::AnotherUserConnected { .. }),
        "{err}"
    );

    client.disconnect_user().await;
    client
        .connect_user(
            User::new("bob"),
            TokenSource::token(c.mint_token("bob", None)),
        )
        .await
        .unwrap();
    assert_eq!(client.user_id().as_deref(), Some("bob"));

    // Bob's token expires: bob has no provider, so the client stops; alice's provider is
    // never asked.
    c.inject(FaultCommand::ExpireTokens {
        user_id: "bob".into(),
    });
    let state = wait_for_state(&client, "stopped", |s| {
        matches!(s, ConnectionState::Disconnected { .. })
    })
    .await;
    assert!(
        matches!(
            state,
            ConnectionState::Disconnected {
                reason: DisconnectReason::TokenUnavailable(_)
            }
        ),
        "{state:?}"
    );
    assert_eq!(alice_calls.load(Ordering::SeqCst), 1);
    c.shutdown().await;
}

#[tokio::test]
async fn guests_and_call_events_between_two_clients() {
    let c = coordinator().await;
    let host = connected_client(&c, "host", options(&c)).await;
    let guest = VideoClient::new(c.api_key(), options(&c));
    let me = guest
        .connect_guest(Guest {
            id: Some("kim-guest".into()),
            name: Some("Kim".into()),
            ..Guest::default()
        })
        .await
        .unwrap();
    assert_eq!(
        (me.id.as_str(), me.role.as_str(), me.name.as_deref()),
        ("kim-guest", "guest", Some("Kim"))
    );

    let call = host.call("default", "room");
    let created = call.get_or_create(None).await.unwrap();
    assert!(created.created);
    assert!(created.can("join-call"));
    let mut host_events = host.events();
    let joined = guest.call("default", "room").join(false).await.unwrap();
    let token = joined.credentials.as_ref().unwrap().token.clone();
    assert!(!token.is_empty());
    assert!(
        !format!("{joined:?}").contains(&token),
        "Debug never prints the media token"
    );
    let event = next_event(
        &mut host_events,
        "the host sees the guest join",
        |e| match e {
            Event::ParticipantJoined(e) => Some(e),
            _ => None,
        },
    )
    .await;
    assert_eq!(event.call_cid, "default:room");
    assert_eq!(event.participant.user.id, "kim-guest");

    guest.call("default", "room").leave().await.unwrap();
    let left = next_event(
        &mut host_events,
        "the host sees the guest leave",
        |e| match e {
            Event::ParticipantLeft(e) => Some(e),
            _ => None,
        },
    )
    .await;
    assert_eq!(left.participant.user.id, "kim-guest");
    c.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn connect_retries_wait_streams_intervals() {
    // Nothing listens on this port: every attempt fails at once, so only the waits between
    // attempts take (virtual) time.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    drop(listener);
    let client = VideoClient::new(
        "key",
        ClientOptions::default()
            .with_base_url(format!("http://127.0.0.1:{port}/video"))
            .with_max_connect_user_retries(4),
    );
    let token = confab_coordinator::SigningKey::new("s").sign(&Claims {
        user_id: Some("ivan".into()),
        ..Default::default()
    });
    let started = tokio::time::Instant::now();
    let err = client
        .connect_user(User::new("ivan"), TokenSource::token(token))
        .await
        .unwrap_err();
    assert!(matches!(err, ConnectError::Network(_)), "{err}");
    let waited = started.elapsed();
    // Three waits: retryInterval(0), (1), (2) = [250, 500) + [250, 2500) + [2000, 4500) ms.
    assert!(
        waited >= Duration::from_millis(2500) && waited < Duration::from_millis(7500),
        "{waited:?}"
    );
}

#[tokio::test]
async fn a_token_url_provider_gets_tokens_from_the_dev_endpoint_and_reports_failures_plainly() {
    let c = confab_coordinator::start(CoordinatorConfig {
        dev_token_endpoint: true,
        ..CoordinatorConfig::default()
    })
    .await
    .unwrap();
    // The endpoint mints a short-lived token for whoever the query names.
    let url = format!(
        "{}/api/token?ttl=3600",
        c.base_url().trim_end_matches("/video")
    );
    let source = confab_client::token_url_provider(&url, "alice").unwrap();
    let client = VideoClient::new(c.api_key(), options(&c));
    let me = client
        .connect_user(User::new("alice"), source)
        .await
        .unwrap();
    assert_eq!(me.id, "alice");
    let tokens = client.token_manager().unwrap();
    assert_eq!(tokens.provider_calls(), 1);
    let claims = tokens.current_claims().unwrap();
    assert_eq!(claims.user_id.as_deref(), Some("alice"));
    let left = tokens.current_expires_in().unwrap();
    assert!((3500.0..=3601.0).contains(&left), "{left}");
    client.disconnect_user().await;

    // A URL that answers 404: the error says so, and no body text leaks into it.
    let missing = format!("{}/api/nothing", c.base_url().trim_end_matches("/video"));
    let source = confab_client::token_url_provider(&missing, "alice").unwrap();
    let client = VideoClient::new(c.api_key(), options(&c).with_max_connect_user_retries(1));
    let err = client
        .connect_user(User::new("alice"), source)
        .await
        .unwrap_err();
    assert!(
        err.to_string().contains("the token URL answered 404"),
        "{err}"
    );
}

/// Whoever waits for `Connected` (as an app that built its client with a user does) can call
/// the API at once: the session is in place before the state says so.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn once_the_state_says_connected_the_api_knows_the_user() {
    let c = coordinator().await;
    for i in 0..20 {
        let user = format!("eager-{i}");
        let client = VideoClient::with_user(
            c.api_key(),
            User::new(&user),
            TokenSource::token(c.mint_token(&user, None)),
            options(&c),
        );
        client
            .state()
            .wait_for(|s| matches!(s, ConnectionState::Connected { .. }))
            .await
            .unwrap();
        client
            .call("default", &format!("eager-{i}"))
            .get_or_create(None)
            .await
            .unwrap_or_else(|e| panic!("attempt {i}: the API did not know the user yet: {e}"));
    }
}
