//! A host's broadcast end to end through confab-media's publisher against the local
//! coordinator: the fake camera encoded to H.264, cut into TS segments, uploaded; the
//! coordinator serves them, names the playlist in `egress`, and tells watchers it started and
//! stopped. Also: a failing upload is retried and reported.
//!
//! Moved here from the coordinator's tests when the coordinator stopped depending on
//! confab-media; it reuses the coordinator tests' wire helpers.

#[path = "../../coordinator/tests/support.rs"]
mod support;

use std::sync::Arc;
use std::time::Duration;

use serde_json::json;
use support::*;

fn target(
    c: &confab_coordinator::RunningCoordinator,
    token: &str,
    id: &str,
) -> confab_media::Target {
    let token = token.to_owned();
    confab_media::Target {
        base_url: c.base_url().to_owned(),
        api_key: c.api_key().to_owned(),
        call_type: "livestream".into(),
        call_id: id.into(),
        token: Arc::new(move || {
            let t = token.clone();
            Box::pin(async move { Ok(t) })
        }),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broadcast_is_served_as_hls_and_announced_to_watchers() {
    let c = coordinator().await;
    let rest = Rest::new(&c);
    let host = c.mint_token("host", None);
    let fan = c.mint_token("fan", None);
    let (status, _) = rest
        .post("/call/livestream/show", As::User("host", &host), json!({}))
        .await;
    assert_eq!(status, 201);
    // Viewers get HLS only from a livestream that is live (out of backstage).
    let (status, _) = rest
        .post(
            "/call/livestream/show/go_live",
            As::User("host", &host),
            json!({}),
        )
        .await;
    assert_eq!(status, 200);
    let (mut fan_socket, ok) = connect_user(&c, "fan", &fan).await;
    let fan_conn = ok["connection_id"].as_str().unwrap().to_owned();
    rest.send(
        reqwest::Method::GET,
        "/call/livestream/show",
        As::User("fan", &fan),
        Some(&fan_conn),
        None,
    )
    .await;

    let options = confab_media::BroadcastOptions {
        width: 320,
        height: 180,
        segment_s: 0.5,
        ..Default::default()
    };
    let live = confab_media::start(target(&c, &host, "show"), options)
        .await
        .unwrap();
    let started = next_event(&mut fan_socket, "call.hls_broadcasting_started").await;
    let playlist_url = started["hls_playlist_url"].as_str().unwrap().to_owned();
    assert!(
        playlist_url.ends_with("/video/hls/livestream/show/playlist.m3u8"),
        "{playlist_url}"
    );

    let (_, call) = rest
        .get("/call/livestream/show", As::User("fan", &fan))
        .await;
    assert_eq!(call["call"]["egress"]["broadcasting"], true);
    assert_eq!(
        call["call"]["egress"]["hls"]["playlist_url"],
        playlist_url.as_str()
    );

    // Anyone may fetch the playlist (as from a CDN); a viewer id counts the viewer.
    let http = reqwest::Client::new();
    let response = http
        .get(format!("{playlist_url}?viewer=v1"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["access-control-allow-origin"], "*");
    let playlist = response.text().await.unwrap();
    assert!(playlist.starts_with("#EXTM3U"), "{playlist}");
    let first_segment = playlist
        .lines()
        .find(|l| l.ends_with(".ts"))
        .unwrap()
        .to_owned();
    let base = playlist_url.trim_end_matches("playlist.m3u8");
    let segment = http
        .get(format!("{base}{first_segment}"))
        .send()
        .await
        .unwrap();
    assert_eq!(segment.headers()["content-type"], "video/mp2t");
    let bytes = segment.bytes().await.unwrap();
    assert!(bytes.len() > 1000 && bytes.len() % 188 == 0 && bytes[0] == 0x47);

    // More segments arrive while it runs.
    let mut status = live.status();
    let later = tokio::time::timeout(
        Duration::from_secs(10),
        status.wait_for(
            |s| matches!(s, confab_media::BroadcastStatus::Live { segments, .. } if *segments >= 4),
        ),
    )
    .await
    .is_ok_and(|r| r.is_ok());
    assert!(later, "segments kept coming");
    drop(status);

    let ended = live.stop().await;
    assert!(
        matches!(ended, confab_media::BroadcastStatus::Stopped { segments } if segments >= 4),
        "{ended:?}"
    );
    next_event(&mut fan_socket, "call.hls_broadcasting_stopped").await;
    let playlist = http
        .get(&playlist_url)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(playlist.ends_with("#EXT-X-ENDLIST\n"), "{playlist}");
    let (_, call) = rest
        .get("/call/livestream/show", As::User("fan", &fan))
        .await;
    assert_eq!(call["call"]["egress"]["broadcasting"], false);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_upload_is_retried_and_reported() {
    // Uploads go to a port where nothing listens: the status says it is retrying, with the
    // attempt number and a plain reason.
    let c = coordinator().await;
    let host = c.mint_token("host", None);
    let mut t = target(&c, &host, "nowhere");
    t.base_url = "http://127.0.0.1:9/video".into();
    let options = confab_media::BroadcastOptions {
        width: 160,
        height: 90,
        segment_s: 0.5,
        first_retry: Duration::from_millis(50),
        ..Default::default()
    };
    let live = confab_media::start(t, options).await.unwrap();
    let mut status = live.status();
    let retrying = tokio::time::timeout(Duration::from_secs(10), status.wait_for(|s| {
        matches!(s, confab_media::BroadcastStatus::Retrying { attempt, .. } if *attempt >= 2)
    }))
    .await
    .expect("retries were reported")
    .unwrap()
    .clone();
    let confab_media::BroadcastStatus::Retrying { error, .. } = retrying else {
        unreachable!()
    };
    assert_eq!(error, "the coordinator could not be reached");
    drop(status);
    let ended = live.stop().await;
    assert!(
        matches!(
            ended,
            confab_media::BroadcastStatus::Stopped { segments: 0 }
        ),
        "{ended:?}"
    );
}
