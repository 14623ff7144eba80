//! Auth, the event socket, guests and anonymous access, against a coordinator on loopback.

mod support;

use std::time::Duration;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use confab_coordinator::{Claims, CoordinatorConfig, FaultCommand};
use futures_util::SinkExt;
use serde_json::{json, Value};
use support::*;
use tokio_tungstenite::tungstenite::Message;

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

fn assert_stream_error(body: &Value, code: i64, status: u16) {
    assert_eq!(body["code"], code, "{body}");
    assert_eq!(body["StatusCode"], status, "{body}");
    for field in ["message", "duration", "more_info", "details"] {
        assert!(
            body.get(field).is_some(),
            "error body lacks {field}: {body}"
        );
    }
}

#[tokio::test]
async fn rest_auth_codes_match_streams() {
    let c = coordinator().await;
    let rest = Rest::new(&c);
    let good = c.mint_token("alice", Some(Duration::from_secs(3600)));
    let (status, _) = rest
        .post("/call/default/auth-1", As::User("alice", &good), json!({}))
        .await;
    assert_eq!(status, 201);

    let cases = [
        (
            Claims {
                user_id: Some("alice".into()),
                iat: Some(now() - 100),
                exp: Some(now() - 10),
                ..Default::default()
            },
            40,
        ),
        (
            Claims {
                user_id: Some("alice".into()),
                nbf: Some(now() + 600),
                ..Default::default()
            },
            41,
        ),
        (
            Claims {
                user_id: Some("alice".into()),
                iat: Some(now() + 600),
                ..Default::default()
            },
            42,
        ),
    ];
    for (claims, code) in cases {
        let token = c.sign(&claims);
        let (status, body) = rest
            .get("/call/default/auth-1", As::User("alice", &token))
            .await;
        assert_eq!(status, 401);
        assert_stream_error(&body, code, 401);
    }

    // Signed with another secret, and the "none" algorithm: both are bad signatures.
    let forged = confab_coordinator::SigningKey::new("not the secret").sign(&Claims {
        user_id: Some("alice".into()),
        ..Default::default()
    });
    let none = format!(
        "{}.{}.",
        URL_SAFE_NO_PAD.encode(br#"{"alg":"none","typ":"JWT"}"#),
        URL_SAFE_NO_PAD.encode(br#"{"user_id":"alice"}"#)
    );
    for token in [forged, none, "Bearer ".to_owned() + &good] {
        let (status, body) = rest
            .get("/call/default/auth-1", As::User("alice", &token))
            .await;
        assert_eq!(status, 401, "{token}");
        assert_stream_error(&body, 43, 401);
    }

    // The token must belong to the user the request names.
    let (status, body) = rest
        .get("/call/default/auth-1", As::User("bob", &good))
        .await;
    assert_eq!(status, 401);
    assert_eq!(body["code"], 4);

    // The api key must name this app.
    let bad_key = Rest {
        api_key: "nope".into(),
        ..Rest::new(&c)
    };
    let (status, body) = bad_key
        .get("/call/default/auth-1", As::User("alice", &good))
        .await;
    assert_eq!(status, 401);
    assert_eq!(body["code"], 2);
    c.shutdown().await;
}

#[tokio::test]
async fn socket_handshake_health_check_and_refusal() {
    let c = coordinator().await;
    let token = c.mint_token("alice", Some(Duration::from_secs(3600)));
    let (mut socket, ok) = connect_user(&c, "alice", &token).await;
    assert_eq!(ok["type"], "connection.ok");
    assert!(ok["connection_id"].as_str().is_some_and(|s| !s.is_empty()));
    assert_eq!(ok["me"]["id"], "alice");
    assert_eq!(ok["me"]["name"], "ALICE");
    assert_eq!(ok["me"]["role"], "user");

    // The official client's health check is a JSON array.
    socket
        .send(Message::Text(
            r#"[{"type":"health.check","client_id":"alice--1"}]"#.into(),
        ))
        .await
        .unwrap();
    let check = next_event(&mut socket, "health.check").await;
    assert_eq!(check["connection_id"], ok["connection_id"]);
    socket.close(None).await.unwrap();

    // A bad signature: connection.error with code 43, then the socket ends.
    let forged = confab_coordinator::SigningKey::new("x").sign(&Claims {
        user_id: Some("alice".into()),
        ..Default::default()
    });
    let (mut socket, refused) = connect_user(&c, "alice", &forged).await;
    assert_eq!(refused["type"], "connection.error");
    assert_eq!(refused["error"]["code"], 43);
    assert_eq!(refused["error"]["StatusCode"], 401);
    assert_eq!(
        close_code(&mut socket).await,
        Some(1000),
        "a final refusal closes with 1000"
    );

    // An expired token: code 40, and a close code that invites a reconnect with a new token.
    let expired = c.sign(&Claims {
        user_id: Some("alice".into()),
        exp: Some(now() - 1),
        ..Default::default()
    });
    let (mut socket, refused) = connect_user(&c, "alice", &expired).await;
    assert_eq!(refused["error"]["code"], 40);
    assert_ne!(close_code(&mut socket).await, Some(1000));

    // user_details must name the token's user.
    let (_, refused) = connect_user(&c, "mallory", &token).await;
    assert_eq!(refused["type"], "connection.error");
    c.shutdown().await;
}

#[tokio::test]
async fn idle_sockets_are_closed_for_reconnect_and_health_checks_keep_them_open() {
    let c = coordinator_with(CoordinatorConfig {
        limits: short_limits(),
        ..CoordinatorConfig::default()
    })
    .await;
    let token = c.mint_token("alice", None);
    let (mut quiet, _) = connect_user(&c, "alice", &token).await;
    let (mut chatty, _) = connect_user(&c, "alice", &token).await;
    for _ in 0..4 {
        tokio::time::sleep(Duration::from_millis(200)).await;
        chatty
            .send(Message::Text(r#"[{"type":"health.check"}]"#.into()))
            .await
            .unwrap();
        next_event(&mut chatty, "health.check").await;
    }
    // 800 ms have passed: the quiet socket (idle limit 400 ms) is gone, not with 1000.
    let code = close_code(&mut quiet).await;
    assert_eq!(code, Some(4000));
    assert_eq!(c.connection_count(), 1);
    c.shutdown().await;
}

#[tokio::test]
async fn socket_faults_drop_refuse_delay_and_silence() {
    let c = coordinator().await;
    let token = c.mint_token("alice", None);

    let (mut socket, _) = connect_user(&c, "alice", &token).await;
    assert_eq!(
        c.inject(FaultCommand::DropSockets {
            user_id: Some("alice".into())
        }),
        1
    );
    assert_eq!(
        close_code(&mut socket).await,
        None,
        "dropped without a close frame"
    );

    c.inject(FaultCommand::RefuseConnects {
        code: 43,
        count: Some(2),
    });
    for _ in 0..2 {
        let (_, first) = connect_user(&c, "alice", &token).await;
        assert_eq!(first["error"]["code"], 43);
    }
    let (_, first) = connect_user(&c, "alice", &token).await;
    assert_eq!(
        first["type"], "connection.ok",
        "the refusal stops after its count"
    );

    c.inject(FaultCommand::DelayConnectionOk { millis: 300 });
    let started = std::time::Instant::now();
    let (mut socket, first) = connect_user(&c, "alice", &token).await;
    assert_eq!(first["type"], "connection.ok");
    assert!(started.elapsed() >= Duration::from_millis(300));

    c.inject(FaultCommand::IgnoreHealthChecks { ignore: true });
    socket
        .send(Message::Text(r#"[{"type":"health.check"}]"#.into()))
        .await
        .unwrap();
    let silent = tokio::time::timeout(Duration::from_millis(300), next_json(&mut socket)).await;
    assert!(silent.is_err(), "no answer while health checks are ignored");
    c.shutdown().await;
}

#[tokio::test]
async fn expiring_tokens_refuses_old_ones_everywhere_and_accepts_new_ones() {
    let c = coordinator().await;
    let rest = Rest::new(&c);
    let old = c.mint_token("alice", None);
    let (mut socket, _) = connect_user(&c, "alice", &old).await;
    assert_eq!(
        rest.post("/call/default/exp", As::User("alice", &old), json!({}))
            .await
            .0,
        201
    );

    c.inject(FaultCommand::ExpireTokens {
        user_id: "alice".into(),
    });
    let notice = next_event(&mut socket, "connection.error").await;
    assert_eq!(notice["error"]["code"], 40);
    let (status, body) = rest.get("/call/default/exp", As::User("alice", &old)).await;
    assert_eq!((status, body["code"].clone()), (401, json!(40)));

    // A token minted afterwards works (iat alone would not tell them apart within a second).
    let fresh = c.sign(&Claims {
        user_id: Some("alice".into()),
        iat: Some(now()),
        exp: Some(now() + 60),
        ..Default::default()
    });
    assert_eq!(
        rest.get("/call/default/exp", As::User("alice", &fresh))
            .await
            .0,
        200
    );
    c.shutdown().await;
}

#[tokio::test]
async fn guests_get_a_token_for_the_returned_user() {
    let c = coordinator().await;
    let rest = Rest::new(&c);
    let (status, body) = rest
        .post(
            "/guest",
            As::Public,
            json!({"user": {"id": "jack-guest", "type": "guest", "name": "Jack"}}),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    let id = body["user"]["id"].as_str().unwrap().to_owned();
    assert_eq!(id, "jack-guest");
    assert_eq!(body["user"]["role"], "guest");
    assert_eq!(body["user"]["name"], "Jack");
    let token = body["access_token"].as_str().unwrap();
    let claims = confab_client_claims(token);
    assert_eq!(claims["user_id"], id.as_str());

    let (_, ok) = connect_user(&c, &id, token).await;
    assert_eq!(ok["type"], "connection.ok");
    assert_eq!(ok["me"]["role"], "guest");

    // A guest cannot take a registered user's id.
    let alice = c.mint_token("alice", None);
    connect_user(&c, "alice", &alice).await;
    let (_, body) = rest
        .post("/guest", As::Public, json!({"user": {"id": "alice"}}))
        .await;
    assert_ne!(body["user"]["id"], "alice");
    assert!(body["user"]["id"].as_str().unwrap().starts_with("alice-"));
    c.shutdown().await;
}

fn confab_client_claims(token: &str) -> Value {
    let payload = token.split('.').nth(1).unwrap();
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).unwrap()).unwrap()
}

#[tokio::test]
async fn anonymous_access_follows_call_cids() {
    let c = coordinator().await;
    let rest = Rest::new(&c);
    let host = c.mint_token("host", None);
    for cid in ["livestream/show", "livestream/other", "default/private"] {
        assert_eq!(
            rest.post(&format!("/call/{cid}"), As::User("host", &host), json!({}))
                .await
                .0,
            201
        );
    }

    // No token: livestreams only.
    let (status, body) = rest.get("/call/livestream/show", As::Anonymous(None)).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["own_capabilities"], json!(["read-call"]));
    assert_eq!(body["call"]["backstage"], true);
    let (status, body) = rest.get("/call/default/private", As::Anonymous(None)).await;
    assert_eq!(status, 403);
    assert_stream_error(&body, 17, 403);

    // A call-scoped token: its calls, and nothing else.
    let scoped = c.sign(&Claims {
        user_id: Some("!anon".into()),
        role: Some("viewer".into()),
        call_cids: Some(vec!["livestream:show".into(), "default:private".into()]),
        ..Default::default()
    });
    assert_eq!(
        rest.get("/call/livestream/show", As::Anonymous(Some(&scoped)))
            .await
            .0,
        200
    );
    assert_eq!(
        rest.get("/call/default/private", As::Anonymous(Some(&scoped)))
            .await
            .0,
        200
    );
    let (status, body) = rest
        .get("/call/livestream/other", As::Anonymous(Some(&scoped)))
        .await;
    assert_eq!(status, 403);
    assert_eq!(body["code"], 17);
    assert!(body["message"]
        .as_str()
        .unwrap()
        .contains("livestream:other"));

    // Anonymous callers cannot create or join.
    assert_eq!(
        rest.post("/call/livestream/new", As::Anonymous(None), json!({}))
            .await
            .0,
        403
    );
    assert_eq!(
        rest.post(
            "/call/livestream/show/join",
            As::Anonymous(Some(&scoped)),
            json!({})
        )
        .await
        .0,
        403
    );
    c.shutdown().await;
}

#[tokio::test]
async fn the_dev_token_endpoint_is_off_unless_asked_for() {
    let off = coordinator_with(CoordinatorConfig::default()).await;
    let url = format!("http://{}/api/token?user_id=alice", off.local_addr());
    let res = reqwest::get(&url).await.unwrap();
    assert_eq!(res.status(), 404);
    off.shutdown().await;

    let on = coordinator().await;
    let url = format!("http://{}/api/token?user_id=alice", on.local_addr());
    let body: Value = reqwest::get(&url).await.unwrap().json().await.unwrap();
    let token = body["token"].as_str().unwrap();
    assert_eq!(
        connect_user(&on, "alice", token).await.1["type"],
        "connection.ok"
    );
    on.shutdown().await;
}
