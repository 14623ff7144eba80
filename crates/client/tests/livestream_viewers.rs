//! Livestreams over the coordinator's embedded SFU: anonymous viewers with a call token join
//! subscribe-only and receive the host; beyond the WebRTC cap the next viewer is sent to HLS;
//! a viewer cannot publish; a host that vanishes from the SFU ends the livestream after the
//! grace period. A real coordinator and SFU on loopback.

mod common;

use std::time::Duration;

use common::send_av;
use confab_client::media::{
    synthetic, CallEvent, CallSession, CallSessionOptions, MediaKind, PublishError, SfuCredentials,
    TrackSpec, VideoCodec,
};
use confab_client::{ClientOptions, TokenSource, User, VideoClient};
use confab_coordinator::{Claims, CoordinatorConfig, Limits, RunningCoordinator};
use confab_protocol::ANONYMOUS_USER_ID;

async fn coordinator(cap: usize) -> RunningCoordinator {
    let config = CoordinatorConfig {
        addr: "127.0.0.1:0".parse().unwrap(),
        limits: Limits {
            livestream_webrtc_viewers: cap,
            host_return_grace: Duration::from_secs(1),
            ..Limits::default()
        },
        ..CoordinatorConfig::default()
    };
    confab_coordinator::start(config).await.expect("starts")
}

fn client(c: &RunningCoordinator) -> VideoClient {
    VideoClient::new(
        c.api_key(),
        ClientOptions::default().with_base_url(c.base_url()),
    )
}

/// An anonymous viewer's call token for one livestream, as a host hands it out.
fn viewer_token(c: &RunningCoordinator, cid: &str) -> String {
    c.sign(&Claims {
        user_id: Some(ANONYMOUS_USER_ID.into()),
        role: Some("viewer".into()),
        call_cids: Some(vec![cid.to_owned()]),
        ..Default::default()
    })
}

async fn anonymous(c: &RunningCoordinator, token: Option<String>) -> VideoClient {
    let viewer = client(c);
    viewer
        .connect_anonymous(token.map(TokenSource::token))
        .await
        .expect("an anonymous viewer connects");
    viewer
}

/// A host in a livestream (backstage), joined with media and publishing a camera and a microphone.
struct Host {
    client: VideoClient,
    call: confab_client::Call,
    media: CallSession,
    video: confab_client::media::LocalTrack,
    audio: confab_client::media::LocalTrack,
}

async fn host_publishing(c: &RunningCoordinator, id: &str) -> Host {
    let client = client(c);
    client
        .connect_user(
            User::new("host"),
            TokenSource::token(c.mint_token("host", None)),
        )
        .await
        .expect("the host connects");
    let call = client.call("livestream", id);
    let (joined, media) = call
        .join_with_media(true, CallSessionOptions::default())
        .await
        .expect("the host joins with media");
    assert!(joined.credentials.is_some());
    let video = media
        .publish(TrackSpec::camera(VideoCodec::H264, 640, 360))
        .await
        .unwrap();
    let audio = media.publish(TrackSpec::microphone()).await.unwrap();
    Host {
        client,
        call,
        media,
        video,
        audio,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn anonymous_viewers_watch_over_webrtc_up_to_the_cap_and_the_end_follows_the_host() {
    let c = coordinator(1).await;
    let cid = "livestream:gig";
    let Host {
        client: _host,
        call,
        media: host_media,
        video,
        audio,
    } = host_publishing(&c, "gig").await;

    // Backstage: viewers wait.
    let early = anonymous(&c, Some(viewer_token(&c, cid))).await;
    let refused = early
        .call("livestream", "gig")
        .join(false)
        .await
        .unwrap_err();
    assert!(refused.to_string().contains("backstage"), "{refused}");
    call.go_live().await.expect("goes live");

    // No token, or a token for another call: no WebRTC.
    let tokenless = anonymous(&c, None).await;
    assert!(tokenless
        .call("livestream", "gig")
        .join(false)
        .await
        .is_err());
    let elsewhere = anonymous(&c, Some(viewer_token(&c, "livestream:other"))).await;
    assert!(elsewhere
        .call("livestream", "gig")
        .join(false)
        .await
        .is_err());

    // The first viewer gets subscribe-only credentials and sees and hears the host.
    let first = anonymous(&c, Some(viewer_token(&c, cid))).await;
    let answer = first.call("livestream", "gig").join(false).await.unwrap();
    let credentials = answer.credentials.clone().expect("a WebRTC seat");
    let mut watching = CallSession::connect(
        SfuCredentials::from(&credentials),
        CallSessionOptions::default(),
    )
    .await
    .expect("the viewer reaches the SFU");
    let sender = tokio::spawn(send_av(video, audio, 60));
    let mut kinds = std::collections::HashSet::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    while kinds.len() < 2 {
        let event = tokio::time::timeout_at(deadline, watching.next_event())
            .await
            .expect("the host's media reaches the viewer")
            .expect("the session lasts");
        if let CallEvent::Frame(frame) = &event {
            if frame.identity == "host" {
                kinds.insert(frame.kind);
            }
        }
    }
    assert!(kinds.contains(&MediaKind::Video) && kinds.contains(&MediaKind::Audio));
    let refused = watching
        .publish(TrackSpec::camera(VideoCodec::H264, 320, 180))
        .await;
    assert!(
        matches!(refused, Err(PublishError::Refused(_))),
        "a viewer cannot publish: {refused:?}"
    );

    // The cap is 1: the next viewer gets no WebRTC credentials (HLS is its way in). The
    // anonymous count has the WebRTC viewer (HLS players count once they fetch the playlist).
    let second = anonymous(&c, Some(viewer_token(&c, cid))).await;
    let answer = second.call("livestream", "gig").join(false).await.unwrap();
    assert!(answer.credentials.is_none(), "beyond the cap: HLS");
    let state = first.call("livestream", "gig").get().await.unwrap();
    assert_eq!(state.call.anonymous_viewers(), 1);
    sender.await.unwrap();

    // The host vanishes (no leave): once the SFU drops it and the grace period passes, the
    // livestream is back in backstage, which viewers show as the end.
    drop(host_media);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let state = first.call("livestream", "gig").get().await.unwrap();
        if state.backstage() {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the livestream ends without its host"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    watching.leave().await;
    c.shutdown().await;
}

/// The host's transport drops for a few seconds (no datagrams either way, then an ICE restart):
/// the host comes back in the same session, the livestream stays live, and the viewer's
/// picture resumes with frames sent after the drop.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_host_whose_transport_drops_comes_back_and_the_viewer_resumes() {
    let c = coordinator(5).await;
    let cid = "livestream:blip";
    let Host {
        client: _host,
        call,
        media: host_media,
        video,
        audio,
    } = host_publishing(&c, "blip").await;
    call.go_live().await.expect("goes live");

    let viewer = anonymous(&c, Some(viewer_token(&c, cid))).await;
    let answer = viewer.call("livestream", "blip").join(false).await.unwrap();
    let mut watching = CallSession::connect(
        SfuCredentials::from(&answer.credentials.expect("a WebRTC seat")),
        CallSessionOptions::default(),
    )
    .await
    .expect("the viewer reaches the SFU");
    // 15 s of 30 fps video.
    let sender = tokio::spawn(send_av(video, audio, 450));
    let first = next_video_seq(
        &mut watching,
        tokio::time::Instant::now() + Duration::from_secs(10),
    )
    .await
    .expect("the host's video reaches the viewer");

    // 3 s without a path: longer than the coordinator's grace (1 s here), shorter than the
    // SFU's timeout for a participant.
    host_media
        .simulate_network_blip(Duration::from_secs(3))
        .await;
    let blip_ends_after = first + 4 * 30;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(12);
    let mut resumed = None;
    while let Some(seq) = next_video_seq(&mut watching, deadline).await {
        if seq >= blip_ends_after {
            resumed = Some(seq);
            break;
        }
    }
    assert!(
        resumed.is_some(),
        "the viewer saw no frame sent after the host's transport came back (first {first})"
    );
    let state = viewer.call("livestream", "blip").get().await.unwrap();
    assert!(!state.backstage(), "the livestream stays live");
    sender.abort();
    watching.leave().await;
    host_media.leave().await;
    c.shutdown().await;
}

/// The sequence number of the next synthetic video frame `watching` receives before `deadline`.
async fn next_video_seq(watching: &mut CallSession, deadline: tokio::time::Instant) -> Option<u64> {
    loop {
        let event = tokio::time::timeout_at(deadline, watching.next_event())
            .await
            .ok()??;
        if let CallEvent::Frame(frame) = &event {
            if frame.kind == MediaKind::Video {
                if let Some(stamp) = synthetic::read_frame(&frame.data) {
                    return Some(stamp.seq);
                }
            }
        }
    }
}
