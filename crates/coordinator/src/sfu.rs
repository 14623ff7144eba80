//! Which SFU carries a call's media, and what a join needs to send people there: the SFU's URLs
//! and the key and secret that sign its access tokens. The coordinator either embeds Confab's
//! own SFU (`confab-sfu`, its signalling served under `/video/sfu`) or points joins at an
//! external LiveKit-compatible server.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use confab_sfu::token::{self, AccessToken};
use confab_sfu::ApiSecret;

/// Where calls' media goes. `Default` is the embedded SFU on loopback with a free UDP port.
#[derive(Clone, PartialEq, Eq)]
pub enum SfuSetting {
    /// Confab's SFU, started with the coordinator under a key and secret of its own (made
    /// afresh at each start, so tokens from an earlier run are refused).
    Embedded {
        /// The media socket; port 0 picks a free one.
        udp_bind: SocketAddr,
        /// Addresses offered to clients as ICE candidates; empty: the bind address, or
        /// 127.0.0.1 when that is unspecified.
        announce: Vec<IpAddr>,
    },
    /// A LiveKit-compatible server elsewhere (livekit-server): joins hand out its URL and
    /// tokens signed with its key and secret, and no SFU runs here.
    External {
        /// `ws://`, `wss://`, `http://` or `https://`, without the `/rtc` path.
        url: String,
        api_key: String,
        api_secret: String,
    },
}

impl Default for SfuSetting {
    fn default() -> Self {
        SfuSetting::Embedded {
            udp_bind: SocketAddr::from((Ipv4Addr::LOCALHOST, 0)),
            announce: Vec::new(),
        }
    }
}

// By hand, so the external SFU's secret never prints.
impl fmt::Debug for SfuSetting {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SfuSetting::Embedded { udp_bind, announce } => f
                .debug_struct("Embedded")
                .field("udp_bind", udp_bind)
                .field("announce", announce)
                .finish(),
            SfuSetting::External { url, api_key, .. } => f
                .debug_struct("External")
                .field("url", url)
                .field("api_key", api_key)
                .field("api_secret", &"[redacted]")
                .finish(),
        }
    }
}

/// Why an SFU setting cannot be used. Messages name no secret and no URL (a URL may carry
/// credentials).
#[derive(Debug, thiserror::Error)]
pub enum SfuSettingError {
    #[error("the SFU URL must start with ws://, wss://, http:// or https:// and name a host")]
    Url,
    #[error("the SFU's API key is empty")]
    EmptyKey,
    #[error("the SFU's API secret is {len} bytes: use at least {min} random bytes")]
    WeakSecret { len: usize, min: usize },
    #[error("could not make a secret for the embedded SFU: {0}")]
    Random(getrandom::Error),
}

/// What join needs to send a participant to the SFU: where it is and how to sign its tokens.
#[derive(Debug, Clone)]
pub struct SfuAccess {
    /// Handed out as `credentials.server.url`.
    pub url: String,
    /// Handed out as `credentials.server.ws_endpoint`: the signalling WebSocket.
    pub ws_endpoint: String,
    pub api_key: String,
    pub api_secret: ApiSecret,
}

impl SfuAccess {
    /// The embedded SFU, served under `{coordinator_base_url}/sfu`, with a fresh random key
    /// and 32-byte secret.
    pub fn embedded(coordinator_base_url: &str) -> Result<Self, SfuSettingError> {
        let mut secret = [0u8; 32];
        getrandom::fill(&mut secret).map_err(SfuSettingError::Random)?;
        let mut key = [0u8; 8];
        getrandom::fill(&mut key).map_err(SfuSettingError::Random)?;
        let key: String = key.iter().map(|b| format!("{b:02x}")).collect();
        let url = format!("{coordinator_base_url}/sfu");
        Ok(Self {
            ws_endpoint: format!("{}/rtc/v1", ws_scheme(&url).ok_or(SfuSettingError::Url)?),
            url,
            api_key: format!("confab-sfu-{key}"),
            api_secret: ApiSecret::new(secret),
        })
    }

    /// An external SFU at `url` (its base: the signalling path is added).
    pub fn external(
        url: &str,
        api_key: &str,
        api_secret: &str,
        min_secret_bytes: usize,
    ) -> Result<Self, SfuSettingError> {
        let url = url.trim().trim_end_matches('/');
        let ws = ws_scheme(url).ok_or(SfuSettingError::Url)?;
        if api_key.trim().is_empty() {
            return Err(SfuSettingError::EmptyKey);
        }
        if api_secret.len() < min_secret_bytes {
            return Err(SfuSettingError::WeakSecret {
                len: api_secret.len(),
                min: min_secret_bytes,
            });
        }
        Ok(Self {
            url: url.to_owned(),
            ws_endpoint: format!("{ws}/rtc/v1"),
            api_key: api_key.to_owned(),
            api_secret: ApiSecret::new(api_secret),
        })
    }

    /// Signs an access token for this SFU.
    pub fn mint(&self, token: &AccessToken) -> String {
        token::mint(&self.api_key, &self.api_secret, token)
    }
}

/// `url` with a WebSocket scheme (`http` becomes `ws`, `https` becomes `wss`), or `None` when
/// it has another scheme or no host.
fn ws_scheme(url: &str) -> Option<String> {
    let (scheme, rest) = url.split_once("://")?;
    let ws = match scheme.to_ascii_lowercase().as_str() {
        "http" | "ws" => "ws",
        "https" | "wss" => "wss",
        _ => return None,
    };
    let host = rest.split(['/', '?', '#']).next().unwrap_or_default();
    if host.is_empty() {
        return None;
    }
    Some(format!("{ws}://{rest}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_take_the_websocket_scheme() {
        assert_eq!(
            ws_scheme("http://127.0.0.1:4880/video/sfu").as_deref(),
            Some("ws://127.0.0.1:4880/video/sfu")
        );
        assert_eq!(
            ws_scheme("https://sfu.example").as_deref(),
            Some("wss://sfu.example")
        );
        assert_eq!(
            ws_scheme("WSS://sfu.example").as_deref(),
            Some("wss://sfu.example")
        );
        for bad in [
            "sfu.example",
            "ftp://sfu.example",
            "wss://",
            "wss:///rtc",
            "",
        ] {
            assert_eq!(ws_scheme(bad), None, "{bad}");
        }
    }

    #[test]
    fn an_external_sfu_needs_a_url_a_key_and_a_long_secret() {
        let access =
            SfuAccess::external("wss://sfu.example/", "key", "0123456789abcdef", 16).unwrap();
        assert_eq!(access.url, "wss://sfu.example");
        assert_eq!(access.ws_endpoint, "wss://sfu.example/rtc/v1");
        assert!(matches!(
            SfuAccess::external("sfu.example", "key", "0123456789abcdef", 16),
            Err(SfuSettingError::Url)
        ));
        assert!(matches!(
            SfuAccess::external("wss://sfu.example", " ", "0123456789abcdef", 16),
            Err(SfuSettingError::EmptyKey)
        ));
        assert!(matches!(
            SfuAccess::external("wss://sfu.example", "key", "short", 16),
            Err(SfuSettingError::WeakSecret { len: 5, min: 16 })
        ));
    }

    #[test]
    fn the_embedded_sfu_gets_its_own_key_and_nothing_secret_prints() {
        let a = SfuAccess::embedded("http://127.0.0.1:9/video").unwrap();
        let b = SfuAccess::embedded("http://127.0.0.1:9/video").unwrap();
        assert_ne!(a.api_key, b.api_key);
        assert_eq!(a.url, "http://127.0.0.1:9/video/sfu");
        assert_eq!(a.ws_endpoint, "ws://127.0.0.1:9/video/sfu/rtc/v1");
        let setting = SfuSetting::External {
            url: "wss://sfu.example".into(),
            api_key: "key".into(),
            api_secret: "do-not-print-this-secret".into(),
        };
        assert!(!format!("{setting:?}").contains("do-not-print"));
    }
}
