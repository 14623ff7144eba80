//! Tokens travel only encrypted, or to this computer.
//!
//! A coordinator or token URL on `http://` anywhere but loopback would put a user's token on
//! the network in the clear (and a guest's new token with it), so the client refuses to send
//! anything there. Loopback stays allowed: the embedded coordinator and tests live there.

use std::net::IpAddr;

/// Why `url` may not carry tokens, or `None` when it may.
pub fn insecure_reason(url: &str) -> Option<String> {
    let parsed = match reqwest::Url::parse(url.trim()) {
        Ok(parsed) => parsed,
        Err(e) => return Some(format!("{url:?} is not a web address ({e})")),
    };
    match parsed.scheme() {
        "https" | "wss" => None,
        "http" | "ws" if is_loopback(&parsed) => None,
        "http" | "ws" => Some(format!(
            "tokens would cross the network unencrypted to {}: use https://",
            parsed.host_str().unwrap_or("that host")
        )),
        other => Some(format!("{other}:// is not a web address: use https://")),
    }
}

fn is_loopback(url: &reqwest::Url) -> bool {
    match url.host() {
        Some(url::Host::Domain(name)) => name.eq_ignore_ascii_case("localhost"),
        Some(url::Host::Ipv4(ip)) => IpAddr::V4(ip).is_loopback(),
        Some(url::Host::Ipv6(ip)) => IpAddr::V6(ip).is_loopback(),
        None => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_tls_or_loopback_may_carry_tokens() {
        for ok in [
            "https://video.stream-io-api.com/video",
            "wss://example.com/connect",
            "http://127.0.0.1:4880/video",
            "http://127.9.8.7/video",
            "http://localhost:1/video",
            "http://[::1]:80/video",
        ] {
            assert_eq!(insecure_reason(ok), None, "{ok}");
        }
        for bad in [
            "http://192.168.1.10:4880/video",
            "http://example.com/token",
            "http://127.0.0.1.evil.example/video",
            "ftp://127.0.0.1/x",
            "not a url",
        ] {
            assert!(insecure_reason(bad).is_some(), "{bad}");
        }
    }
}
