//! Bad input at the SFU: refused clearly or dropped, never a panic, and the other
//! participants in the call carry on.

mod common;

use std::time::Duration;

use base64::Engine as _;
use common::*;
use confab_client::media::{
    CallEvent, CallSession, CallSessionOptions, JoinMediaError, PublishError, SfuCredentials,
    TrackSpec, VideoCodec,
};
use confab_sfu::{AccessToken, ApiSecret, SfuLimits, VideoGrant};
use futures_util::{SinkExt, StreamExt};
use livekit_protocol as lk;
use prost::Message as _;
use tokio_tungstenite::tungstenite::Message;

async fn connect_with(url: &str, token: String) -> Result<CallSession, JoinMediaError> {
    CallSession::connect(
        SfuCredentials {
            url: url.to_owned(),
            token,
        },
        CallSessionOptions::default(),
    )
    .await
}

fn minted(secret: &str, key: &str, ttl: Duration) -> String {
    confab_sfu::token::mint(
        key,
        &ApiSecret::new(secret),
        &AccessToken {
            identity: "mallory".into(),
            name: String::new(),
            grant: VideoGrant {
                room: "default:refusals".into(),
                room_join: true,
                ..VideoGrant::default()
            },
            ttl,
        },
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forged_expired_and_foreign_tokens_are_refused_before_the_upgrade() {
    let sfu = start_sfu().await;
    let cases = [
        (
            "forged",
            minted("another-secret-entirely", KEY, Duration::from_secs(600)),
        ),
        (
            "other key",
            minted(SECRET, "someone-else", Duration::from_secs(600)),
        ),
        ("garbage", "not.a.jwt".to_owned()),
        ("empty", String::new()),
    ];
    for (what, token) in cases {
        match connect_with(&sfu.url, token).await {
            Err(JoinMediaError::Refused { status, message }) => {
                assert_eq!(status, 401, "{what}: {message}");
                assert!(!message.is_empty(), "{what}: the refusal says why");
            }
            other => panic!("{what}: expected a 401 refusal, got {other:?}"),
        }
    }
    // Expired: signed an hour ago with a one-second life (beyond the minute of leeway).
    let claims = confab_sfu::token::AccessClaims {
        iss: KEY.into(),
        sub: "mallory".into(),
        name: String::new(),
        exp: std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs()
            - 3600,
        nbf: None,
        iat: None,
        video: VideoGrant {
            room: "default:refusals".into(),
            room_join: true,
            ..VideoGrant::default()
        },
    };
    let expired = confab_sfu::token::sign_claims(&ApiSecret::new(SECRET), &claims);
    match connect_with(&sfu.url, expired).await {
        Err(JoinMediaError::Refused {
            status: 401,
            message,
        }) => {
            assert!(message.contains("expired"), "{message}")
        }
        other => panic!("expired: expected a 401 refusal, got {other:?}"),
    }
    assert!(sfu.sfu.participants("default:refusals").await.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_viewer_cannot_publish() {
    let sfu = start_sfu().await;
    let viewer = connect_with(&sfu.url, token("default:show", "viewer", false))
        .await
        .expect("a viewer joins");
    let refused = viewer
        .publish(TrackSpec::camera(VideoCodec::H264, 320, 180))
        .await;
    assert!(
        matches!(refused, Err(PublishError::Refused(ref why)) if why.contains("may not publish")),
        "{refused:?}"
    );
    viewer.leave().await;
}

fn join_request_param(join: &lk::JoinRequest) -> String {
    let wrapped = lk::WrappedJoinRequest {
        compression: 0,
        join_request: join.encode_to_vec(),
    };
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(wrapped.encode_to_vec())
}

fn ws_url(sfu: &TestSfu, token: &str, join: &lk::JoinRequest) -> String {
    format!(
        "{}/rtc/v1?access_token={token}&join_request={}",
        sfu.url.replacen("http", "ws", 1),
        join_request_param(join)
    )
}

fn ping(ts: i64) -> Message {
    Message::Binary(
        lk::SignalRequest {
            message: Some(lk::signal_request::Message::Ping(ts)),
        }
        .encode_to_vec()
        .into(),
    )
}

/// Waits for a pong on a raw signal socket, skipping other messages.
async fn pong<S>(ws: &mut S) -> bool
where
    S: StreamExt<Item = Result<Message, tokio_tungstenite::tungstenite::Error>> + Unpin,
{
    let deadline = tokio::time::Instant::now() + Duration::from_secs(3);
    while let Ok(Some(Ok(msg))) = tokio::time::timeout_at(deadline, ws.next()).await {
        if let Message::Binary(bytes) = msg {
            if let Ok(lk::SignalResponse {
                message: Some(lk::signal_response::Message::Pong(_)),
            }) = lk::SignalResponse::decode(bytes.as_ref())
            {
                return true;
            }
        }
    }
    false
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_and_oversized_signal_messages_are_dropped_and_others_carry_on() {
    let sfu = start_sfu().await;
    let mut ada = join(&sfu, "default:junk", "ada").await;
    let bob = join(&sfu, "default:junk", "bob").await;
    let (video, audio) = publish_av(&bob).await;
    let sending = tokio::spawn(send_av(video, audio, 150));

    let url = ws_url(
        &sfu,
        &token("default:junk", "mallory", true),
        &lk::JoinRequest::default(),
    );
    let (mut ws, _) = tokio_tungstenite::connect_async(url)
        .await
        .expect("mallory's socket opens");
    // A few undecodable frames are dropped; the socket still answers.
    for junk in [
        vec![0xff; 16],
        vec![0x0a, 0xff, 0xff, 0xff, 0x0f],
        b"not protobuf".to_vec(),
    ] {
        ws.send(Message::Binary(junk.into())).await.unwrap();
    }
    ws.send(Message::Text("{\"ping\": 1}".into()))
        .await
        .unwrap();
    ws.send(ping(1)).await.unwrap();
    assert!(
        pong(&mut ws).await,
        "the socket stopped answering after a few bad frames"
    );
    // An oversized frame closes the socket.
    let limit = SfuLimits::default().max_signal_message_bytes;
    let _ = ws
        .send(Message::Binary(vec![0x0a; limit + 1024].into()))
        .await;
    let _ = ws.send(ping(2)).await;
    assert!(
        !pong(&mut ws).await,
        "an oversized frame should close the socket"
    );

    // Ada kept receiving bob's media throughout.
    let mut received = Received::default();
    collect(&mut ada, &mut received, Duration::from_secs(15), |r, _| {
        r.seqs.values().filter(|s| s.last() == Some(&149)).count() == 2
    })
    .await;
    sending.await.unwrap();
    received.assert_complete("bob", confab_client::media::MediaKind::Video, 149, "ada");
    ada.leave().await;
    bob.leave().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_never_connects_its_media_is_removed() {
    let limits = SfuLimits {
        connect_timeout: Duration::from_secs(2),
        ..SfuLimits::default()
    };
    let sfu = start_sfu_with(0, limits).await;
    let mut ada = join(&sfu, "default:stall", "ada").await;
    // Joins over signalling but never sends an offer, so ICE and DTLS never start.
    let url = ws_url(
        &sfu,
        &token("default:stall", "staller", true),
        &lk::JoinRequest::default(),
    );
    let (mut ws, _) = tokio_tungstenite::connect_async(url)
        .await
        .expect("the socket opens");
    let pinger = tokio::spawn(async move {
        for i in 0..20 {
            if ws.send(ping(i)).await.is_err() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    });
    let deadline = tokio::time::Instant::now() + Duration::from_secs(6);
    let mut joined = false;
    loop {
        match tokio::time::timeout_at(deadline, ada.next_event()).await {
            Ok(Some(CallEvent::ParticipantJoined(p))) if p.identity == "staller" => joined = true,
            Ok(Some(CallEvent::ParticipantLeft { identity, .. })) if identity == "staller" => break,
            Ok(Some(_)) => {}
            other => panic!("the stalled client was not removed: {other:?}"),
        }
    }
    assert!(joined, "the stalled client was seen joining first");
    assert_eq!(
        sfu.sfu.participants("default:stall").await,
        vec!["ada".to_owned()]
    );
    pinger.abort();
    ada.leave().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn junk_on_the_media_port_is_dropped_and_media_keeps_flowing() {
    let sfu = start_sfu().await;
    let mut ada = join(&sfu, "default:udp", "ada").await;
    let bob = join(&sfu, "default:udp", "bob").await;
    let (video, audio) = publish_av(&bob).await;
    let sending = tokio::spawn(send_av(video, audio, 150));
    let udp = sfu.sfu.udp_addr();
    let junk = tokio::spawn(async move {
        let socket = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let mut rng = fastrand::Rng::with_seed(7);
        for i in 0..2_000u32 {
            let len = rng.usize(0..1400);
            let mut packet: Vec<u8> = (0..len).map(|_| rng.u8(..)).collect();
            // Some look like STUN, RTP or DTLS by their first byte, to reach the parsers.
            if let Some(first) = packet.first_mut() {
                *first = [0x00, 0x01, 0x16, 0x80, 0x90, *first][(i % 6) as usize];
            }
            let _ = socket.send_to(&packet, udp).await;
            if i % 100 == 0 {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
    });
    let mut received = Received::default();
    collect(&mut ada, &mut received, Duration::from_secs(15), |r, _| {
        r.seqs.values().filter(|s| s.last() == Some(&149)).count() == 2
    })
    .await;
    junk.await.unwrap();
    sending.await.unwrap();
    received.assert_complete("bob", confab_client::media::MediaKind::Video, 149, "ada");
    received.assert_complete("bob", confab_client::media::MediaKind::Audio, 149, "ada");
    let stats = sfu.sfu.stats().await;
    assert!(
        stats.datagrams_dropped >= 1_500,
        "junk counted as dropped: {stats:?}"
    );
    ada.leave().await;
    bob.leave().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_participant_whose_sources_leave_out_the_screen_cannot_share_one() {
    use confab_client::media::TrackSource;
    let sfu = start_sfu().await;
    // As the coordinator mints for a role without `screenshare`.
    let mut claims = AccessToken::room_join(
        "default:sources",
        "pat",
        "Pat",
        true,
        Duration::from_secs(600),
    );
    claims.grant.can_publish_sources = vec!["microphone".into(), "camera".into()];
    let token = confab_sfu::token::mint(KEY, &ApiSecret::new(SECRET), &claims);
    let pat = connect_with(&sfu.url, token).await.expect("joins");
    pat.publish(TrackSpec::camera(VideoCodec::H264, 320, 180))
        .await
        .expect("the camera is allowed");
    let mut screen = TrackSpec::camera(VideoCodec::H264, 1280, 720);
    screen.source = TrackSource::ScreenShare;
    let refused = pat.publish(screen).await;
    assert!(
        matches!(refused, Err(PublishError::Refused(ref why)) if why.contains("may not publish")),
        "{refused:?}"
    );
    pat.leave().await;
}
