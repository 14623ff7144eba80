//! Joining a call hands out credentials for the SFU: the embedded one, nested under
//! `/video/sfu`, or an external LiveKit-compatible server. The SFU's participants show in the
//! coordinator's call session, each user once. Loopback only.

mod support;

use std::time::Duration;

use confab_coordinator::{CoordinatorConfig, Limits, RunningCoordinator, SfuSetting, StartError};
use confab_sfu::token::{self, AccessClaims, TokenError};
use confab_sfu::ApiSecret;
use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use support::*;
use tokio_tungstenite::tungstenite::Message;

/// Joins `cid` (`type/id`) as `user`, creating the call; returns the join answer.
async fn join(rest: &Rest, call: &str, user: &str, token: &str, conn: Option<&str>) -> Value {
    let (status, body) = rest
        .send(
            reqwest::Method::POST,
            &format!("/call/{call}/join"),
            As::User(user, token),
            conn,
            Some(json!({"create": true})),
        )
        .await;
    assert!(
        status == 200 || status == 201,
        "join answered {status}: {body}"
    );
    body
}

fn sfu_token(body: &Value) -> String {
    body["credentials"]["token"]
        .as_str()
        .expect("credentials carry a token")
        .to_owned()
}

fn verify(c: &RunningCoordinator, jwt: &str) -> Result<AccessClaims, TokenError> {
    token::verify(c.sfu_api_key(), c.sfu_api_secret(), jwt)
}

#[tokio::test]
async fn join_hands_out_a_livekit_token_for_the_calls_room() {
    let c = coordinator().await;
    let rest = Rest::new(&c);
    let ada = c.mint_token("ada", None);
    // Connecting stores the user with a name (support's connect_user upper-cases the id).
    let (_socket, _) = connect_user(&c, "ada", &ada).await;
    let body = join(&rest, "default/standup", "ada", &ada, None).await;
    let claims = verify(&c, &sfu_token(&body)).expect("the SFU accepts the join's token");
    assert_eq!(claims.sub, "ada");
    assert_eq!(claims.name, "ADA");
    assert_eq!(claims.iss, c.sfu_api_key());
    assert_eq!(claims.video.room, "default:standup");
    assert!(claims.video.room_join);
    assert_eq!(claims.video.can_publish, Some(true));
    assert_eq!(claims.video.can_subscribe, Some(true));
    assert_eq!(claims.video.can_publish_data, Some(true));
    assert!(!claims.video.hidden);
    let lifetime = claims.exp - claims.iat.expect("issued at");
    assert!((3500..=3700).contains(&lifetime), "lifetime {lifetime} s");
    // Not the coordinator's key: a user token is no SFU token and the reverse.
    assert_ne!(c.sfu_api_key(), c.api_key());
    assert!(verify(&c, &ada).is_err());

    // A user the coordinator has never seen is named by their id.
    let bob = c.mint_token("bob", None);
    let body = join(&rest, "default/standup", "bob", &bob, None).await;
    let claims = verify(&c, &sfu_token(&body)).unwrap();
    assert_eq!((claims.sub.as_str(), claims.name.as_str()), ("bob", "bob"));
}

#[tokio::test]
async fn a_livestream_viewer_gets_a_token_that_only_subscribes() {
    let c = coordinator().await;
    let rest = Rest::new(&c);
    let host = c.mint_token("host", None);
    let fan = c.mint_token("fan", None);
    // The host may join in backstage, and publishes.
    let body = join(&rest, "livestream/gig", "host", &host, None).await;
    let claims = verify(&c, &sfu_token(&body)).unwrap();
    assert_eq!(claims.video.room, "livestream:gig");
    assert!(claims.video.can_publish());

    // Backstage still admits only hosts.
    let (status, body) = rest
        .post(
            "/call/livestream/gig/join",
            As::User("fan", &fan),
            json!({}),
        )
        .await;
    assert_eq!((status, body["code"].clone()), (403, json!(17)), "{body}");
    let (status, _) = rest
        .post(
            "/call/livestream/gig/go_live",
            As::User("host", &host),
            json!({}),
        )
        .await;
    assert_eq!(status, 200);

    let body = join(&rest, "livestream/gig", "fan", &fan, None).await;
    let caps = body["own_capabilities"].as_array().unwrap();
    assert!(!caps.contains(&json!("send-audio")) && !caps.contains(&json!("send-video")));
    let claims = verify(&c, &sfu_token(&body)).unwrap();
    assert_eq!(claims.sub, "fan");
    assert!(claims.video.room_join);
    assert_eq!(claims.video.can_publish, Some(false));
    assert_eq!(claims.video.can_publish_data, Some(false));
    assert_eq!(claims.video.can_subscribe, Some(true));
    assert!(!claims.video.allows_source("camera"));
}

#[tokio::test]
async fn credentials_point_at_the_embedded_sfu_under_video_sfu() {
    let c = coordinator().await;
    let rest = Rest::new(&c);
    let ada = c.mint_token("ada", None);
    let body = join(&rest, "default/standup", "ada", &ada, None).await;
    let credentials = &body["credentials"];
    let base = c.base_url();
    assert_eq!(credentials["server"]["url"], format!("{base}/sfu"));
    assert_eq!(
        credentials["server"]["ws_endpoint"],
        format!("{}/sfu/rtc/v1", base.replacen("http://", "ws://", 1))
    );
    assert_eq!(credentials["server"]["edge_name"], "local");
    assert_eq!(credentials["ice_servers"], json!([]));
    assert_eq!(c.sfu_url(), format!("{base}/sfu"));
    let udp = c.sfu_udp_addr().expect("the embedded SFU runs");
    assert!(udp.ip().is_loopback() && udp.port() != 0, "{udp}");
    assert_eq!(c.sfu().map(|s| s.udp_addr()), Some(udp));
}

const EXTERNAL_SECRET: &str = "an-external-livekit-secret-0123456789";

fn external(url: &str, secret: &str) -> CoordinatorConfig {
    CoordinatorConfig {
        sfu: SfuSetting::External {
            url: url.to_owned(),
            api_key: "lk-key".to_owned(),
            api_secret: secret.to_owned(),
        },
        ..CoordinatorConfig::default()
    }
}

#[tokio::test]
async fn an_external_sfu_gets_its_url_and_tokens_signed_with_its_key() {
    let c = coordinator_with(external("wss://sfu.example.test/", EXTERNAL_SECRET)).await;
    assert!(c.sfu().is_none() && c.sfu_udp_addr().is_none());
    let rest = Rest::new(&c);
    let ada = c.mint_token("ada", None);
    let body = join(&rest, "default/standup", "ada", &ada, None).await;
    let server = &body["credentials"]["server"];
    assert_eq!(server["url"], "wss://sfu.example.test");
    assert_eq!(server["ws_endpoint"], "wss://sfu.example.test/rtc/v1");
    let jwt = sfu_token(&body);
    let claims = token::verify("lk-key", &ApiSecret::new(EXTERNAL_SECRET), &jwt)
        .expect("the external SFU's key and secret verify the token");
    assert_eq!(claims.video.room, "default:standup");
    assert_eq!(claims.sub, "ada");
    assert_eq!(
        token::verify("lk-key", &ApiSecret::new("another-secret-0123456789"), &jwt),
        Err(TokenError::BadSignature)
    );
    // No SFU runs here: nothing answers under /video/sfu.
    let res = reqwest::get(format!(
        "{}/sfu/rtc/v1/validate?access_token={jwt}",
        c.base_url()
    ))
    .await
    .unwrap();
    assert_eq!(res.status(), 404);
}

#[tokio::test]
async fn an_unusable_external_sfu_setting_is_refused_at_start() {
    for config in [
        external("sfu.example.test", EXTERNAL_SECRET),
        external("wss://sfu.example.test", "short"),
    ] {
        let printed = format!("{config:?}");
        assert!(!printed.contains(EXTERNAL_SECRET), "{printed}");
        match confab_coordinator::start(config).await {
            Err(StartError::SfuSetting(e)) => {
                assert!(!e.to_string().contains(EXTERNAL_SECRET))
            }
            Err(e) => panic!("unexpected error: {e}"),
            Ok(_) => panic!("the coordinator started with an unusable SFU setting"),
        }
    }
}

#[tokio::test]
async fn the_validate_route_accepts_a_join_token_and_refuses_a_forged_one() {
    let c = coordinator().await;
    let rest = Rest::new(&c);
    let ada = c.mint_token("ada", None);
    let good = sfu_token(&join(&rest, "default/standup", "ada", &ada, None).await);
    let http = reqwest::Client::new();
    let validate = format!("{}/sfu/rtc/v1/validate", c.base_url());
    let res = http
        .get(&validate)
        .query(&[("access_token", &good)])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(
        res.headers()
            .get("access-control-allow-origin")
            .and_then(|v| v.to_str().ok()),
        Some("*")
    );
    // The same claims, signed with a secret the SFU does not have.
    let claims = verify(&c, &good).unwrap();
    let forged = token::mint(
        c.sfu_api_key(),
        &ApiSecret::new("not-the-sfus-secret-at-all-0123"),
        &token::AccessToken {
            identity: claims.sub,
            name: claims.name,
            grant: claims.video,
            ttl: Duration::from_secs(600),
        },
    );
    let res = http
        .get(&validate)
        .query(&[("access_token", &forged)])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 401);
    let text = res.text().await.unwrap_or_default();
    assert!(!text.contains(&forged), "the refusal repeats the token");
}

/// Opens the SFU's signal socket with a join's token, as the simplest client would: its join
/// request asks for nothing but the defaults (a `WrappedJoinRequest` whose fields all hold
/// their defaults encodes to no bytes, so its base64 is empty).
async fn open_signal(c: &RunningCoordinator, jwt: &str) -> Socket {
    let url = format!(
        "{}/sfu/rtc/v1?access_token={jwt}&join_request=",
        c.base_url().replacen("http://", "ws://", 1)
    );
    let (socket, response) = tokio_tungstenite::connect_async(url)
        .await
        .expect("the signal socket opens");
    assert_eq!(response.status(), 101);
    socket
}

/// Waits until the SFU lists (or stops listing) `identity` in `room`.
async fn until_sfu_lists(c: &RunningCoordinator, room: &str, identity: &str, listed: bool) {
    let sfu = c.sfu().expect("the embedded SFU runs");
    for _ in 0..100 {
        if sfu.participants(room).await.iter().any(|p| p == identity) == listed {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!(
        "the SFU never {} {identity} in {room}",
        if listed { "listed" } else { "dropped" }
    );
}

async fn session_user_ids(rest: &Rest, call: &str, who: As<'_>) -> Vec<String> {
    let (status, body) = rest.get(&format!("/call/{call}"), who).await;
    assert_eq!(status, 200, "{body}");
    body["call"]["session"]["participants"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|p| p["user"]["id"].as_str().map(str::to_owned))
        .collect()
}

#[tokio::test]
async fn the_signal_socket_outlives_the_http_idle_timeout() {
    let c = coordinator_with(CoordinatorConfig {
        limits: Limits {
            http_idle_timeout: Duration::from_millis(300),
            ..Limits::default()
        },
        ..CoordinatorConfig::default()
    })
    .await;
    let rest = Rest::new(&c);
    let ada = c.mint_token("ada", None);
    let jwt = sfu_token(&join(&rest, "default/standup", "ada", &ada, None).await);
    let mut signal = open_signal(&c, &jwt).await;
    until_sfu_lists(&c, "default:standup", "ada", true).await;
    // Several idle timeouts later, the socket still answers a ping.
    tokio::time::sleep(Duration::from_millis(1200)).await;
    signal
        .send(Message::Ping(b"still there?".to_vec().into()))
        .await
        .expect("the socket is open");
    let pong = tokio::time::timeout(Duration::from_secs(5), async {
        while let Some(message) = signal.next().await {
            match message {
                Ok(Message::Pong(data)) => return Some(data),
                Ok(Message::Close(_)) | Err(_) => return None,
                Ok(_) => continue,
            }
        }
        None
    })
    .await
    .expect("an answer within 5 s");
    assert_eq!(pong.as_deref(), Some(&b"still there?"[..]));
    assert!(c
        .sfu()
        .unwrap()
        .participants("default:standup")
        .await
        .contains(&"ada".to_owned()));
}

#[tokio::test]
async fn sfu_participants_show_in_the_call_session_once_each() {
    let c = coordinator().await;
    let rest = Rest::new(&c);
    let host = c.mint_token("host", None);
    let (mut host_socket, ok) = connect_user(&c, "host", &host).await;
    let host_conn = ok["connection_id"].as_str().unwrap().to_owned();
    join(&rest, "default/standup", "host", &host, Some(&host_conn)).await;
    next_event(&mut host_socket, "call.session_participant_joined").await;

    // Carol joins through the coordinator, then connects to the SFU: listed once.
    let carol = c.mint_token("carol", None);
    let (_carol_socket, ok) = connect_user(&c, "carol", &carol).await;
    let carol_conn = ok["connection_id"].as_str().unwrap().to_owned();
    let body = join(&rest, "default/standup", "carol", &carol, Some(&carol_conn)).await;
    let joined = next_event(&mut host_socket, "call.session_participant_joined").await;
    assert_eq!(joined["participant"]["user"]["id"], "carol");
    let carol_signal = open_signal(&c, &sfu_token(&body)).await;
    until_sfu_lists(&c, "default:standup", "carol", true).await;

    // Bob took a token, then left through the coordinator; connecting to the SFU brings
    // him back into the session, and leaving it takes him out.
    let bob = c.mint_token("bob", None);
    let body = join(&rest, "default/standup", "bob", &bob, None).await;
    let bob_jwt = sfu_token(&body);
    next_event(&mut host_socket, "call.session_participant_joined").await;
    let (status, _) = rest
        .post(
            "/call/default/standup/leave",
            As::User("bob", &bob),
            json!({}),
        )
        .await;
    assert_eq!(status, 200);
    let left = next_event(&mut host_socket, "call.session_participant_left").await;
    assert_eq!(left["participant"]["user"]["id"], "bob");
    let bob_signal = open_signal(&c, &bob_jwt).await;
    // The next joined event is Bob's: Carol's SFU connection announced nothing.
    let joined = next_event(&mut host_socket, "call.session_participant_joined").await;
    assert_eq!(joined["participant"]["user"]["id"], "bob");
    let mut listed = session_user_ids(&rest, "default/standup", As::User("host", &host)).await;
    listed.sort();
    assert_eq!(listed, ["bob", "carol", "host"]);

    drop(bob_signal);
    let left = next_event(&mut host_socket, "call.session_participant_left").await;
    assert_eq!(left["participant"]["user"]["id"], "bob");
    assert_eq!(
        left["participant"]["user_session_id"],
        joined["participant"]["user_session_id"]
    );

    // Carol leaving the SFU does not end her coordinator join (her socket is still open).
    drop(carol_signal);
    until_sfu_lists(&c, "default:standup", "carol", false).await;
    let mut listed = session_user_ids(&rest, "default/standup", As::User("host", &host)).await;
    listed.sort();
    assert_eq!(listed, ["carol", "host"]);
}

#[tokio::test]
async fn a_coordinator_join_replaces_a_users_sfu_entry() {
    let c = coordinator().await;
    let rest = Rest::new(&c);
    let host = c.mint_token("host", None);
    let (mut host_socket, ok) = connect_user(&c, "host", &host).await;
    let host_conn = ok["connection_id"].as_str().unwrap().to_owned();
    join(&rest, "default/standup", "host", &host, Some(&host_conn)).await;
    next_event(&mut host_socket, "call.session_participant_joined").await;

    let dan = c.mint_token("dan", None);
    let jwt = sfu_token(&join(&rest, "default/standup", "dan", &dan, None).await);
    next_event(&mut host_socket, "call.session_participant_joined").await;
    rest.post(
        "/call/default/standup/leave",
        As::User("dan", &dan),
        json!({}),
    )
    .await;
    next_event(&mut host_socket, "call.session_participant_left").await;
    let _signal = open_signal(&c, &jwt).await;
    let from_sfu = next_event(&mut host_socket, "call.session_participant_joined").await;

    // Joining again through the coordinator: the SFU's entry leaves, the new one joins.
    join(&rest, "default/standup", "dan", &dan, None).await;
    let left = next_event(&mut host_socket, "call.session_participant_left").await;
    assert_eq!(
        left["participant"]["user_session_id"],
        from_sfu["participant"]["user_session_id"]
    );
    next_event(&mut host_socket, "call.session_participant_joined").await;
    let mut listed = session_user_ids(&rest, "default/standup", As::User("host", &host)).await;
    listed.sort();
    assert_eq!(listed, ["dan", "host"]);
}
