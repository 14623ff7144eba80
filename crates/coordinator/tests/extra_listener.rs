//! Serving the same coordinator on a second address (how the app hosts for its network), and
//! closing that address again while the first keeps serving.

use confab_coordinator::{start, CoordinatorConfig};

async fn status_of(base_url: &str, api_key: &str) -> Result<u16, reqwest::Error> {
    let res = reqwest::Client::new()
        .post(format!("{base_url}/guest?api_key={api_key}"))
        .json(&serde_json::json!({ "user": { "id": "guest-probe", "name": "Probe" } }))
        .send()
        .await?;
    Ok(res.status().as_u16())
}

#[tokio::test]
async fn a_second_address_serves_the_same_coordinator_until_it_is_stopped() {
    let coordinator = start(CoordinatorConfig::default()).await.unwrap();
    let extra = coordinator
        .serve_also("127.0.0.2:0".parse().unwrap())
        .await
        .unwrap();
    let extra_url = format!("http://{}/video", extra.local_addr());
    assert_eq!(extra.local_addr().ip().to_string(), "127.0.0.2");
    // The same app: its API key works on both addresses.
    let key = coordinator.api_key().to_owned();
    assert_eq!(status_of(&extra_url, &key).await.unwrap(), 201);
    assert_eq!(status_of(&extra_url, "not-the-key").await.unwrap(), 401);
    extra.stop().await;
    assert!(
        status_of(&extra_url, &key).await.is_err(),
        "the second address still answers"
    );
    assert_eq!(status_of(coordinator.base_url(), &key).await.unwrap(), 201);
    coordinator.shutdown().await;
}
