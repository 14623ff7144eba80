//! A trace-level run of connect, refresh, guest and anonymous flows, with every log record of
//! the process (tracing events and `log` records of dependencies) going to a capturing sink:
//! none of the tokens or the API secret may appear in it.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use confab_client::{ClientOptions, ConnectionState, Guest, TokenSource, User, VideoClient};
use confab_coordinator::{Claims, CoordinatorConfig, FaultCommand};
use confab_logging::{configure_loggers, Level, ScopeConfig, Sink};
use tracing_subscriber::layer::SubscriberExt;

const SECRET: &str = "api-secret-that-must-never-be-logged-0123456789";

#[tokio::test]
async fn no_token_or_secret_reaches_any_sink_at_trace_level() {
    let output: Arc<Mutex<String>> = Arc::default();
    let out = output.clone();
    let sink: Sink = Arc::new(move |level, message, extra, tags| {
        let line = format!(
            "{level:?} {tags:?} {message} {}\n",
            serde_json::Value::Object(extra.clone())
        );
        out.lock().unwrap().push_str(&line);
    });
    tracing_log::LogTracer::init().expect("bridge the log crate");
    tracing::subscriber::set_global_default(
        tracing_subscriber::registry().with(confab_logging::layer()),
    )
    .unwrap();
    configure_loggers([("default", ScopeConfig::level(Level::Trace).with_sink(sink))]);

    let c = confab_coordinator::start(CoordinatorConfig {
        app: Some(("logkey".into(), SECRET.into())),
        fault_injection: true,
        ..CoordinatorConfig::default()
    })
    .await
    .unwrap();
    let options = || ClientOptions::default().with_base_url(c.base_url());
    let issued: Arc<Mutex<Vec<String>>> = Arc::default();

    // Authenticated with a provider, then a refresh forced by the coordinator.
    let (key, record) = (c.signing_key(), issued.clone());
    let now = || {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs() as i64
    };
    let provider = TokenSource::provider(move || {
        let token = key.sign(&Claims {
            user_id: Some("alice".into()),
            iat: Some(now()),
            exp: Some(now() + 3600 + record.lock().unwrap().len() as i64),
            ..Default::default()
        });
        record.lock().unwrap().push(token.clone());
        async move { Ok(token) }
    });
    let alice = VideoClient::new(c.api_key(), options());
    alice
        .connect_user(User::new("alice"), provider)
        .await
        .unwrap();
    alice
        .call("default", "logged")
        .get_or_create(None)
        .await
        .unwrap();
    c.inject(FaultCommand::ExpireTokens {
        user_id: "alice".into(),
    });
    let mut state = alice.state();
    tokio::time::timeout(Duration::from_secs(5), async {
        while issued.lock().unwrap().len() < 2
            || !matches!(
                *state.borrow_and_update(),
                ConnectionState::Connected { .. }
            )
        {
            state.changed().await.unwrap();
        }
    })
    .await
    .expect("refreshed and reconnected");
    alice.call("default", "logged").get().await.unwrap();

    // A guest.
    let guest = VideoClient::new(c.api_key(), options());
    guest
        .connect_guest(Guest {
            name: Some("Gus".into()),
            ..Guest::default()
        })
        .await
        .unwrap();
    let guest_token = guest
        .token_manager()
        .unwrap()
        .token()
        .await
        .unwrap()
        .unwrap();
    guest.call("default", "logged").join(false).await.unwrap();

    // Anonymous, with a call token.
    let call_token = c.sign(&Claims {
        user_id: Some("!anon".into()),
        call_cids: Some(vec!["default:logged".into()]),
        ..Default::default()
    });
    let viewer = VideoClient::new(c.api_key(), options());
    viewer
        .connect_anonymous(Some(TokenSource::token(&call_token)))
        .await
        .unwrap();
    viewer.call("default", "logged").get().await.unwrap();
    let _ = viewer.call("default", "elsewhere").get().await;

    for client in [&alice, &guest, &viewer] {
        client.disconnect_user().await;
    }
    c.shutdown().await;

    let output = output.lock().unwrap().clone();
    if std::env::var_os("CONFAB_SHOW_LOG").is_some() {
        eprintln!("{output}");
    }
    assert!(output.lines().count() > 20, "the run logged: {output}");
    let mut secrets = issued.lock().unwrap().clone();
    secrets.extend([
        guest_token.expose().to_owned(),
        call_token,
        SECRET.to_owned(),
    ]);
    assert!(secrets.len() >= 5);
    for secret in &secrets {
        assert!(
            !output.contains(secret.as_str()),
            "a secret leaked into the logs"
        );
        // Not even the signature part alone.
        if let Some(signature) = secret.rsplit('.').next().filter(|s| s.len() > 20) {
            assert!(
                !output.contains(signature),
                "a token signature leaked into the logs"
            );
        }
    }
}
