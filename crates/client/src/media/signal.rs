//! The signal socket's address and join request, as livekit-client builds them for `/rtc/v1`.

use base64::engine::general_purpose::URL_SAFE;
use base64::Engine as _;
use livekit_protocol as lk;
use prost::Message as _;

use super::JoinMediaError;

/// `ws(s)://host/prefix/rtc/v1?access_token=…&join_request=…` from the SFU's base URL.
pub(crate) fn signal_url(
    base: &str,
    token: &str,
    join: &lk::JoinRequest,
) -> Result<url::Url, JoinMediaError> {
    let mut url =
        url::Url::parse(base.trim()).map_err(|e| JoinMediaError::BadUrl(e.to_string()))?;
    let scheme = match url.scheme() {
        "http" | "ws" => "ws",
        "https" | "wss" => "wss",
        other => {
            return Err(JoinMediaError::BadUrl(format!(
                "{other}:// is not a web address"
            )))
        }
    };
    url.set_scheme(scheme)
        .map_err(|_| JoinMediaError::BadUrl("the scheme cannot change".into()))?;
    let mut path = url.path().trim_end_matches('/').to_owned();
    path.push_str("/rtc/v1");
    url.set_path(&path);
    let wrapped = lk::WrappedJoinRequest {
        compression: lk::wrapped_join_request::Compression::None as i32,
        join_request: join.encode_to_vec(),
    };
    url.query_pairs_mut()
        .clear()
        .append_pair("access_token", token)
        .append_pair("join_request", &URL_SAFE.encode(wrapped.encode_to_vec()));
    Ok(url)
}

pub(crate) fn join_request(
    offer: Option<lk::SessionDescription>,
    auto_subscribe: bool,
    resume_sid: Option<&str>,
) -> lk::JoinRequest {
    lk::JoinRequest {
        client_info: Some(lk::ClientInfo {
            sdk: lk::client_info::Sdk::Rust as i32,
            version: env!("CARGO_PKG_VERSION").to_owned(),
            protocol: 17,
            os: std::env::consts::OS.to_owned(),
            ..Default::default()
        }),
        connection_settings: Some(lk::ConnectionSettings {
            auto_subscribe,
            ..Default::default()
        }),
        publisher_offer: offer,
        reconnect: resume_sid.is_some(),
        participant_sid: resume_sid.unwrap_or_default().to_owned(),
        ..Default::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_url_follows_livekit_clients() {
        let url = signal_url(
            "http://127.0.0.1:9/video/sfu/",
            "tok",
            &join_request(None, true, None),
        )
        .unwrap();
        assert_eq!(url.scheme(), "ws");
        assert_eq!(url.path(), "/video/sfu/rtc/v1");
        let pairs: Vec<(String, String)> = url.query_pairs().into_owned().collect();
        assert_eq!(pairs[0], ("access_token".into(), "tok".into()));
        assert_eq!(pairs[1].0, "join_request");
        let secure =
            signal_url("https://sfu.example/", "t", &join_request(None, true, None)).unwrap();
        assert_eq!(secure.scheme(), "wss");
        assert!(signal_url("ftp://x", "t", &join_request(None, true, None)).is_err());
    }
}
