//! Calls, call events, bad input and persistence, against a coordinator on loopback.

mod support;

use confab_coordinator::CoordinatorConfig;
use serde_json::{json, Value};
use support::*;

#[tokio::test]
async fn watchers_see_joins_go_live_and_member_changes() {
    let c = coordinator().await;
    let rest = Rest::new(&c);
    let host = c.mint_token("host", None);
    let fan = c.mint_token("fan", None);
    let (mut host_socket, ok) = connect_user(&c, "host", &host).await;
    let host_conn = ok["connection_id"].as_str().unwrap().to_owned();
    let (mut fan_socket, ok) = connect_user(&c, "fan", &fan).await;
    let fan_conn = ok["connection_id"].as_str().unwrap().to_owned();

    // Creating with a connection id watches the call; the creator hears call.created.
    let (status, body) = rest
        .send(
            reqwest::Method::POST,
            "/call/livestream/gig",
            As::User("host", &host),
            Some(&host_conn),
            Some(json!({"data": {"custom": {"title": "Gig"}}})),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["created"], true);
    assert_eq!(body["call"]["cid"], "livestream:gig");
    assert_eq!(body["call"]["backstage"], true);
    assert_eq!(body["call"]["custom"]["title"], "Gig");
    assert!(body["own_capabilities"]
        .as_array()
        .unwrap()
        .contains(&json!("go-live")));
    assert!(
        body["call"]["egress"].is_object() && body["call"]["settings"]["screensharing"].is_object()
    );
    let created = next_event(&mut host_socket, "call.created").await;
    assert_eq!(created["call_cid"], "livestream:gig");

    // The fan watches through a plain get; in backstage, only hosts may join.
    let (status, body) = rest
        .send(
            reqwest::Method::GET,
            "/call/livestream/gig",
            As::User("fan", &fan),
            Some(&fan_conn),
            None,
        )
        .await;
    assert_eq!(status, 200);
    assert!(!body["own_capabilities"]
        .as_array()
        .unwrap()
        .contains(&json!("go-live")));
    let (status, body) = rest
        .post(
            "/call/livestream/gig/join",
            As::User("fan", &fan),
            json!({}),
        )
        .await;
    assert_eq!((status, body["code"].clone()), (403, json!(17)));
    let (status, _) = rest
        .post(
            "/call/livestream/gig/go_live",
            As::User("fan", &fan),
            json!({}),
        )
        .await;
    assert_eq!(status, 403, "only hosts go live");

    // Going live reaches both watchers.
    let (status, body) = rest
        .post(
            "/call/livestream/gig/go_live",
            As::User("host", &host),
            json!({"start_hls": false}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["call"]["backstage"], false);
    for socket in [&mut host_socket, &mut fan_socket] {
        let live = next_event(socket, "call.live_started").await;
        assert_eq!(live["call"]["backstage"], false);
    }

    // The fan joins; the host sees the participant; the join answer has credentials.
    let (status, body) = rest
        .send(
            reqwest::Method::POST,
            "/call/livestream/gig/join",
            As::User("fan", &fan),
            Some(&fan_conn),
            Some(json!({"location": "LCL", "e2ee": false})),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert!(body["credentials"]["server"]["url"].is_string());
    assert!(body["credentials"]["token"].is_string());
    let joined = next_event(&mut host_socket, "call.session_participant_joined").await;
    assert_eq!(joined["participant"]["user"]["id"], "fan");
    let (_, body) = rest
        .get("/call/livestream/gig", As::User("host", &host))
        .await;
    assert_eq!(
        body["call"]["session"]["participants"][0]["user"]["id"],
        "fan"
    );

    // The fan's socket closes: they leave the session.
    drop(fan_socket);
    let left = next_event(&mut host_socket, "call.session_participant_left").await;
    assert_eq!(left["participant"]["user"]["id"], "fan");

    // Members: added, then removed; the member hears about it on their own socket.
    let (mut fan_socket, _) = connect_user(&c, "fan", &fan).await;
    let (status, _) = rest
        .post(
            "/call/livestream/gig/members",
            As::User("host", &host),
            json!({"update_members": [{"user_id": "fan", "role": "moderator"}]}),
        )
        .await;
    assert_eq!(status, 200);
    let added = next_event(&mut fan_socket, "call.member_added").await;
    assert_eq!(added["members"][0]["user_id"], "fan");
    assert_eq!(added["members"][0]["role"], "moderator");
    next_event(&mut host_socket, "call.member_added").await;
    rest.post(
        "/call/livestream/gig/members",
        As::User("host", &host),
        json!({"remove_members": ["fan"]}),
    )
    .await;
    let removed = next_event(&mut host_socket, "call.member_removed").await;
    assert_eq!(removed["members"], json!(["fan"]));

    // Back to backstage.
    let (_, body) = rest
        .post(
            "/call/livestream/gig/stop_live",
            As::User("host", &host),
            json!({}),
        )
        .await;
    assert_eq!(body["call"]["backstage"], true);
    let updated = next_event(&mut host_socket, "call.updated").await;
    assert_eq!(updated["call"]["backstage"], true);
    c.shutdown().await;
}

#[tokio::test]
async fn get_or_create_is_idempotent_and_accepts_an_empty_form_post() {
    let c = coordinator().await;
    let rest = Rest::new(&c);
    let alice = c.mint_token("alice", None);
    // What the official client sends for a bare getOrCreate: an empty form-encoded POST.
    let res = rest
        .http
        .post(format!(
            "{}/call/default/room?user_id=alice&api_key={}",
            rest.base, rest.api_key
        ))
        .header("authorization", &alice)
        .header("stream-auth-type", "jwt")
        .header("content-type", "application/x-www-form-urlencoded")
        .body("")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 201);
    let (status, body) = rest
        .post("/call/default/room", As::User("alice", &alice), json!({}))
        .await;
    assert_eq!((status, body["created"].clone()), (200, json!(false)));

    let (status, body) = rest
        .get("/call/default/missing", As::User("alice", &alice))
        .await;
    assert_eq!((status, body["code"].clone()), (404, json!(16)));

    // Query and watch, as clients re-watch after a reconnect.
    let (status, body) = rest
        .post("/calls", As::User("alice", &alice), json!({"filter_conditions": {"cid": {"$in": ["default:room", "default:nope"]}}, "watch": true}))
        .await;
    assert_eq!(status, 201);
    assert_eq!(body["calls"].as_array().unwrap().len(), 1);
    assert_eq!(body["calls"][0]["call"]["cid"], "default:room");
    c.shutdown().await;
}

#[tokio::test]
async fn bad_input_gets_a_stream_error_and_changes_nothing() {
    let c = coordinator_with(CoordinatorConfig {
        limits: short_limits(),
        ..CoordinatorConfig::default()
    })
    .await;
    let rest = Rest::new(&c);
    let alice = c.mint_token("alice", None);
    let raw = |path: &str, body: &'static str| {
        rest.http
            .post(format!(
                "{}{path}?user_id=alice&api_key={}",
                rest.base, rest.api_key
            ))
            .header("authorization", &alice)
            .header("stream-auth-type", "jwt")
            .header("content-type", "application/json")
            .body(body)
    };
    let cases: [(&str, &'static str, u16); 5] = [
        ("/call/default/bad1", "{not json", 400),
        (
            "/call/default/bad2",
            r#"{"data": {"members": "everyone"}}"#,
            400,
        ),
        (
            "/call/default/bad3",
            r#"{"data": {"members": [{"user_id": "a b c"}]}}"#,
            400,
        ),
        ("/call/default/bad4", r#"[1, 2, 3]"#, 400),
        ("/call/default/bad5", r#"{"data": {"custom": 7}}"#, 400),
    ];
    for (path, body, status) in cases {
        let res = raw(path, body).send().await.unwrap();
        assert_eq!(res.status(), status, "{path}");
        let json: Value = res.json().await.unwrap();
        assert_eq!(json["code"], 4, "{path}: {json}");
        assert!(json["message"].as_str().unwrap().len() > 10);
        let (status, _) = rest.get(path, As::User("alice", &alice)).await;
        assert_eq!(status, 404, "{path} must not have been created");
    }

    // Oversized (the limit here is 4 KiB).
    let big = format!(
        r#"{{"data": {{"custom": {{"x": "{}"}}}}}}"#,
        "a".repeat(10_000)
    );
    let res = rest
        .http
        .post(format!(
            "{}/call/default/big?user_id=alice&api_key={}",
            rest.base, rest.api_key
        ))
        .header("authorization", &alice)
        .header("stream-auth-type", "jwt")
        .body(big)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 413);
    assert_eq!(res.json::<Value>().await.unwrap()["code"], 4);
    assert_eq!(
        rest.get("/call/default/big", As::User("alice", &alice))
            .await
            .0,
        404
    );

    // Unknown call types, bad ids, unknown paths and wrong methods.
    let (status, body) = rest
        .post("/call/secret/x", As::User("alice", &alice), json!({}))
        .await;
    assert_eq!((status, body["code"].clone()), (404, json!(16)));
    let (status, body) = rest
        .post(
            "/call/default/no%20spaces",
            As::User("alice", &alice),
            json!({}),
        )
        .await;
    assert_eq!((status, body["code"].clone()), (400, json!(4)));
    let (status, body) = rest.get("/nothing/here", As::User("alice", &alice)).await;
    assert_eq!(status, 404);
    assert_eq!(body["StatusCode"], 404);
    let (status, body) = rest.get("/guest", As::Public).await;
    assert_eq!(status, 404, "{body}");
    assert_eq!(body["code"], 16);

    // An oversized socket frame ends that socket, not the server.
    let (mut socket, _) = connect_user(&c, "alice", &alice).await;
    use futures_util::SinkExt;
    let _ = socket
        .send(tokio_tungstenite::tungstenite::Message::Text(
            "x".repeat(100_000).into(),
        ))
        .await;
    assert_ne!(close_code(&mut socket).await, Some(1000));
    let (_, ok) = connect_user(&c, "alice", &alice).await;
    assert_eq!(ok["type"], "connection.ok");

    // A malformed first frame is refused with a reason.
    let mut socket = open_socket(&c).await;
    socket
        .send(tokio_tungstenite::tungstenite::Message::Text(
            "{\"token\": 5}".into(),
        ))
        .await
        .unwrap();
    let refused = next_json(&mut socket).await.unwrap();
    assert_eq!(refused["type"], "connection.error");
    assert_eq!(refused["error"]["code"], 4);
    c.shutdown().await;
}

#[test]
fn the_config_never_prints_the_secret() {
    let config = CoordinatorConfig {
        app: Some(("key".into(), "very-secret-api-secret".into())),
        ..CoordinatorConfig::default()
    };
    let printed = format!("{config:?}");
    assert!(
        printed.contains("key") && !printed.contains("very-secret-api-secret"),
        "{printed}"
    );
}

#[tokio::test]
async fn data_survives_a_restart_on_the_same_directory() {
    let dir = tempfile::tempdir().unwrap();
    let config = || CoordinatorConfig {
        data_dir: Some(dir.path().to_owned()),
        ..CoordinatorConfig::default()
    };
    let first = coordinator_with(config()).await;
    let key = first.api_key().to_owned();
    let token = first.mint_token("alice", None);
    let rest = Rest::new(&first);
    rest.post(
        "/call/default/kept",
        As::User("alice", &token),
        json!({"data": {"members": [{"user_id": "bob"}]}}),
    )
    .await;
    let addr = first.local_addr();
    first.shutdown().await;

    // Same port and directory: same key and secret (old tokens still work), same calls.
    let second = coordinator_with(CoordinatorConfig { addr, ..config() }).await;
    assert_eq!(second.api_key(), key);
    let (status, body) = Rest::new(&second)
        .get("/call/default/kept", As::User("alice", &token))
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["members"][0]["user_id"], "bob");
    second.shutdown().await;
}
