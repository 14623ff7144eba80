//! HLS uploads over HTTP: only hosts upload, bad uploads are refused, and a broadcast cannot
//! start before its playlist is up. (The end-to-end broadcast through confab-media's publisher
//! is tested in confab-media, which depends on this crate, not the other way round.)

mod support;

use serde_json::json;
use support::*;

#[tokio::test]
async fn only_hosts_upload_and_bad_uploads_are_refused() {
    let c = coordinator().await;
    let rest = Rest::new(&c);
    let host = c.mint_token("host", None);
    let fan = c.mint_token("fan", None);
    rest.post("/call/livestream/gig", As::User("host", &host), json!({}))
        .await;
    let http = reqwest::Client::new();
    let put = |who: &str, token: &str, file: &str, body: Vec<u8>| {
        http.put(format!(
            "{}/call/livestream/gig/hls/{file}?api_key={}",
            c.base_url(),
            c.api_key()
        ))
        .header("authorization", token.to_owned())
        .header("stream-auth-type", "jwt")
        .header("x-user", who.to_owned())
        .body(body)
        .send()
    };
    let fan_try = put("fan", &fan, "seg-0.ts", vec![0x47; 188]).await.unwrap();
    assert_eq!(fan_try.status(), 403);
    let bad_name = put("host", &host, "../../etc/passwd", vec![1])
        .await
        .unwrap();
    assert!(bad_name.status().is_client_error());
    let bad_name = put("host", &host, "seg-x.ts", vec![1]).await.unwrap();
    assert_eq!(bad_name.status(), 400);
    let empty = put("host", &host, "seg-1.ts", Vec::new()).await.unwrap();
    assert_eq!(empty.status(), 400);
    // Starting before any playlist is up is refused: viewers would get nothing to play.
    let (status, body) = rest
        .post(
            "/call/livestream/gig/start_broadcasting",
            As::User("host", &host),
            json!({}),
        )
        .await;
    assert_eq!(status, 400, "{body}");
    let missing = http
        .get(format!("{}/hls/livestream/gig/playlist.m3u8", c.base_url()))
        .send()
        .await
        .unwrap();
    assert_eq!(missing.status(), 404);
}
