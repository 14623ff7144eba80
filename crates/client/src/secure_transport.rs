//! Tokens travel only encrypted, or to this computer.
//!
//! A coordinator or token URL on `http://` anywhere but loopback would put a user's token on
//! the network in the clear (and a guest's new token with it), so the client refuses to send
//! anything there. Loopback stays allowed: the embedded coordinator and tests live there.
//! One exception, which only the person makes: [`trust_local_network_host`], for one
//! private-network address (another Confab hosting for its network), until the app exits.

use std::collections::BTreeSet;
use std::net::IpAddr;
use std::sync::Mutex;

/// Origins (`http://IP:PORT`) the person chose to trust unencrypted for this run.
static TRUSTED_ON_NETWORK: Mutex<BTreeSet<String>> = Mutex::new(BTreeSet::new());

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TrustError {
    #[error("only an address on your own network (such as 192.168.1.5) can be trusted without encryption")]
    NotLocalNetwork,
}

/// Lets plain `http://` reach `url`'s host and port for the rest of this run, because the
/// person said so: only for an address on a private network (10/8, 172.16/12, 192.168/16,
/// link-local, IPv6 unique-local), never a name or a public address. Not remembered.
pub fn trust_local_network_host(url: &str) -> Result<(), TrustError> {
    let parsed = reqwest::Url::parse(url.trim()).map_err(|_| TrustError::NotLocalNetwork)?;
    let ip = match parsed.host() {
        Some(url::Host::Ipv4(ip)) => IpAddr::V4(ip),
        Some(url::Host::Ipv6(ip)) => IpAddr::V6(ip),
        _ => return Err(TrustError::NotLocalNetwork),
    };
    let private = match ip {
        IpAddr::V4(ip) => ip.is_private() || ip.is_link_local(),
        // fc00::/7 (unique local) and fe80::/10 (link-local).
        IpAddr::V6(ip) => {
            (ip.segments()[0] & 0xfe00) == 0xfc00 || (ip.segments()[0] & 0xffc0) == 0xfe80
        }
    };
    if parsed.scheme() != "http" || !private {
        return Err(TrustError::NotLocalNetwork);
    }
    if let Ok(mut trusted) = TRUSTED_ON_NETWORK.lock() {
        trusted.insert(origin(&parsed));
    }
    Ok(())
}

fn origin(url: &reqwest::Url) -> String {
    format!(
        "{}://{}:{}",
        url.scheme().replace("ws", "http"),
        url.host_str().unwrap_or_default(),
        url.port_or_known_default().unwrap_or_default()
    )
}

fn trusted(url: &reqwest::Url) -> bool {
    TRUSTED_ON_NETWORK
        .lock()
        .map(|t| t.contains(&origin(url)))
        .unwrap_or(false)
}

/// Why `url` may not carry tokens, or `None` when it may.
pub fn insecure_reason(url: &str) -> Option<String> {
    let parsed = match reqwest::Url::parse(url.trim()) {
        Ok(parsed) => parsed,
        Err(e) => return Some(format!("{url:?} is not a web address ({e})")),
    };
    match parsed.scheme() {
        "https" | "wss" => None,
        "http" | "ws" if is_loopback(&parsed) => None,
        "http" | "ws" if trusted(&parsed) => None,
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

    #[test]
    fn only_a_private_address_the_person_trusts_is_let_through_unencrypted() {
        for refused in [
            "http://8.8.8.8:4880/video",
            "http://printer.local:4880/video",
            "https://10.0.0.9/video",
            "http://[2001:db8::1]:80/video",
        ] {
            assert_eq!(
                trust_local_network_host(refused),
                Err(TrustError::NotLocalNetwork),
                "{refused}"
            );
        }
        assert!(insecure_reason("http://10.1.2.3:4880/video").is_some());
        trust_local_network_host("http://10.1.2.3:4880/video").unwrap();
        assert_eq!(insecure_reason("http://10.1.2.3:4880/video"), None);
        assert_eq!(insecure_reason("ws://10.1.2.3:4880/video/connect"), None);
        // Exactly that host and port.
        assert!(insecure_reason("http://10.1.2.3:4881/video").is_some());
        assert!(insecure_reason("http://10.1.2.4:4880/video").is_some());
    }
}
