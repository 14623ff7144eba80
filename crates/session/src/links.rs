//! `confab://` links: what a link asks the window to do, checked before anything is sent
//! anywhere, and the invite link (and its QR code) a host hands out.
//!
//!   confab://join/default/standup                        the lobby, with that call filled in
//!   confab://join/default/standup?host=10.0.0.5:4880&key=KEY
//!                                                        the same, as a guest on that host
//!   confab://watch/livestream/launch?token=TOKEN         watch that livestream here
//!   confab://watch/livestream/launch?host=...&key=...    watch it on that host
//!
//! Ids follow confab-protocol's rules; anything else in a link (another action, more path,
//! unknown or repeated parameters, a fragment) is refused rather than ignored, so a link
//! never does something other than what it reads as.

use std::net::SocketAddr;

use confab_credentials::Backend;
use confab_protocol::{CallId, CallType};
use serde::Serialize;

use crate::errors::{ErrorKind, SessionError};

/// Links longer than this are refused unread: no real link comes close.
const MAX_LINK_LEN: usize = 4096;
pub const SCHEME: &str = "confab";

/// What a link asks for, as the page receives it (`confab:link`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "action", rename_all = "snake_case")]
pub enum Link {
    /// Open the lobby with this call filled in, after sign-in if needed. With a `backend`
    /// (an invite from another Confab), sign in there as a guest first.
    Join {
        call_type: String,
        call_id: String,
        backend: Option<Backend>,
    },
    /// Watch this livestream, with an optional call token, here or on `backend`.
    Watch {
        call_id: String,
        call_token: Option<String>,
        backend: Option<Backend>,
    },
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LinkError {
    #[error("This is not a Confab link (they start with confab://).")]
    NotConfab,
    #[error("This link is not a web address Confab can read.")]
    Malformed,
    #[error(
        "This link asks for something Confab does not do ({0:?}): links join or watch a call."
    )]
    UnknownAction(String),
    #[error("This link does not name a call: it should end in /KIND/CALL-ID.")]
    MissingCall,
    #[error("This link names a call that cannot exist: {0}")]
    BadId(String),
    #[error("Only livestreams can be watched; this link names a {0} call.")]
    NotALivestream(String),
    #[error("This link has something Confab does not understand ({0}).")]
    Unexpected(String),
    #[error("This link names a host without its key, or a key without a host.")]
    HostWithoutKey,
    #[error("This link's host is not an address and port such as 192.168.1.5:4880.")]
    BadHost,
    #[error("This link's key is not an API key (letters and digits).")]
    BadKey,
}

impl From<LinkError> for SessionError {
    fn from(e: LinkError) -> Self {
        SessionError::new(ErrorKind::InvalidInput, e.to_string())
    }
}

impl Link {
    /// Reads a `confab://` link. Never panics, whatever the text.
    pub fn parse(text: &str) -> Result<Link, LinkError> {
        let text = text.trim();
        if text.len() > MAX_LINK_LEN {
            return Err(LinkError::Malformed);
        }
        let has_scheme = text
            .get(..SCHEME.len() + 1)
            .is_some_and(|s| s.eq_ignore_ascii_case("confab:"));
        if !has_scheme {
            return Err(LinkError::NotConfab);
        }
        let url = url::Url::parse(text).map_err(|_| LinkError::Malformed)?;
        if !url.username().is_empty() || url.password().is_some() || url.port().is_some() {
            return Err(LinkError::Unexpected(
                "a user or port before the action".into(),
            ));
        }
        if url.fragment().is_some() {
            return Err(LinkError::Unexpected("a # part".into()));
        }
        let action = url.host_str().unwrap_or_default().to_ascii_lowercase();
        let segments: Vec<&str> = url
            .path()
            .trim_start_matches('/')
            .trim_end_matches('/')
            .split('/')
            .filter(|s| !s.is_empty())
            .collect();
        let params = Params::read(&url)?;
        match action.as_str() {
            "join" => {
                let (call_type, call_id) = call_in(&segments)?;
                params.only(&["host", "key"])?;
                Ok(Link::Join {
                    call_type: call_type.to_string(),
                    call_id: call_id.to_string(),
                    backend: params.backend()?,
                })
            }
            "watch" => {
                let (call_type, call_id) = call_in(&segments)?;
                if call_type != CallType::Livestream {
                    return Err(LinkError::NotALivestream(call_type.to_string()));
                }
                params.only(&["host", "key", "token"])?;
                let call_token = params.get("token").map(str::to_owned);
                if call_token.as_deref().is_some_and(|t| {
                    t.is_empty() || !t.chars().all(|c| c.is_ascii_graphic()) || t.len() > 2048
                }) {
                    return Err(LinkError::Unexpected("a token that is not a token".into()));
                }
                Ok(Link::Watch {
                    call_id: call_id.to_string(),
                    call_token,
                    backend: params.backend()?,
                })
            }
            "" => Err(LinkError::MissingCall),
            other => Err(LinkError::UnknownAction(other.chars().take(40).collect())),
        }
    }

    /// The link among a launch's arguments (the program's name first), if any: the first
    /// that starts with `confab:`. Other arguments are the launcher's business.
    pub fn find_in_args<I: IntoIterator<Item = String>>(args: I) -> Option<String> {
        args.into_iter().skip(1).find(|a| {
            a.get(..SCHEME.len() + 1)
                .is_some_and(|s| s.eq_ignore_ascii_case("confab:"))
        })
    }
}

fn call_in(segments: &[&str]) -> Result<(CallType, CallId), LinkError> {
    match segments {
        [kind, id] => Ok((
            CallType::parse(kind).map_err(|e| LinkError::BadId(e.to_string()))?,
            CallId::parse(id).map_err(|e| LinkError::BadId(e.to_string()))?,
        )),
        [] | [_] => Err(LinkError::MissingCall),
        _ => Err(LinkError::Unexpected("more path after the call id".into())),
    }
}

/// A link's query parameters, each at most once.
struct Params(Vec<(String, String)>);

impl Params {
    fn read(url: &url::Url) -> Result<Self, LinkError> {
        let mut out: Vec<(String, String)> = Vec::new();
        for (name, value) in url.query_pairs() {
            if out.iter().any(|(n, _)| *n == name) {
                return Err(LinkError::Unexpected(format!("{name} given twice")));
            }
            out.push((name.into_owned(), value.into_owned()));
        }
        Ok(Self(out))
    }

    fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    fn only(&self, allowed: &[&str]) -> Result<(), LinkError> {
        match self.0.iter().find(|(n, _)| !allowed.contains(&n.as_str())) {
            Some((name, _)) => Err(LinkError::Unexpected(format!(
                "a parameter {:?}",
                name.chars().take(40).collect::<String>()
            ))),
            None => Ok(()),
        }
    }

    /// `host` and `key` together name another Confab's coordinator.
    fn backend(&self) -> Result<Option<Backend>, LinkError> {
        match (self.get("host"), self.get("key")) {
            (None, None) => Ok(None),
            (Some(host), Some(key)) => {
                let addr: SocketAddr = host.parse().map_err(|_| LinkError::BadHost)?;
                if addr.port() == 0 || addr.ip().is_unspecified() || addr.ip().is_multicast() {
                    return Err(LinkError::BadHost);
                }
                if key.is_empty()
                    || key.len() > 128
                    || !key
                        .chars()
                        .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
                {
                    return Err(LinkError::BadKey);
                }
                Ok(Some(Backend::Stream {
                    api_key: key.to_owned(),
                    base_url: Some(format!("http://{addr}/video")),
                }))
            }
            _ => Err(LinkError::HostWithoutKey),
        }
    }
}

/// The link a host hands out: another Confab opening it joins `call` on the coordinator at
/// `host` as a guest. The key is the coordinator's public API key, not its secret.
pub fn invite_link(call_type: &CallType, call_id: &CallId, host: SocketAddr, key: &str) -> String {
    format!("{SCHEME}://join/{call_type}/{call_id}?host={host}&key={key}")
}

/// `text` as a QR code, an SVG document (black on white, with the quiet zone).
pub fn qr_svg(text: &str) -> Result<String, LinkError> {
    let code = qrcode::QrCode::new(text.as_bytes()).map_err(|_| LinkError::Malformed)?;
    Ok(code
        .render::<qrcode::render::svg::Color<'_>>()
        .min_dimensions(200, 200)
        .quiet_zone(true)
        .build())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn join(call_type: &str, call_id: &str, backend: Option<Backend>) -> Link {
        Link::Join {
            call_type: call_type.into(),
            call_id: call_id.into(),
            backend,
        }
    }

    #[test]
    fn good_links_say_what_they_ask_for() {
        assert_eq!(
            Link::parse("confab://join/default/standup").unwrap(),
            join("default", "standup", None)
        );
        assert_eq!(
            Link::parse(" CONFAB://Join/default/standup/ ").unwrap(),
            join("default", "standup", None)
        );
        assert_eq!(
            Link::parse("confab://watch/livestream/launch?token=a.b-c_d").unwrap(),
            Link::Watch {
                call_id: "launch".into(),
                call_token: Some("a.b-c_d".into()),
                backend: None
            }
        );
        let host = Backend::Stream {
            api_key: "k3y".into(),
            base_url: Some("http://127.0.0.2:4880/video".into()),
        };
        assert_eq!(
            Link::parse("confab://join/default/standup?host=127.0.0.2:4880&key=k3y").unwrap(),
            join("default", "standup", Some(host.clone()))
        );
        assert_eq!(
            Link::parse("confab://watch/livestream/launch?key=k3y&host=127.0.0.2:4880").unwrap(),
            Link::Watch {
                call_id: "launch".into(),
                call_token: None,
                backend: Some(host)
            }
        );
    }

    #[test]
    fn bad_links_are_refused_with_plain_words() {
        for (link, want) in [
            ("https://join/default/x", LinkError::NotConfab),
            ("", LinkError::NotConfab),
            ("confab://", LinkError::MissingCall),
            ("confab://join", LinkError::MissingCall),
            ("confab://join/default", LinkError::MissingCall),
            (
                "confab://join/default/a/b",
                LinkError::Unexpected(String::new()),
            ),
            (
                "confab://call/default/x",
                LinkError::UnknownAction("call".into()),
            ),
            ("confab://join/default/a:b", LinkError::BadId(String::new())),
            (
                "confab://join/audio_room/x",
                LinkError::BadId(String::new()),
            ),
            (
                "confab://join/default/x%20y",
                LinkError::BadId(String::new()),
            ),
            (
                "confab://watch/default/x",
                LinkError::NotALivestream("default".into()),
            ),
            (
                "confab://join/default/x?token=t",
                LinkError::Unexpected(String::new()),
            ),
            (
                "confab://join/default/x?junk=1",
                LinkError::Unexpected(String::new()),
            ),
            (
                "confab://join/default/x#frag",
                LinkError::Unexpected(String::new()),
            ),
            (
                "confab://u@join/default/x",
                LinkError::Unexpected(String::new()),
            ),
            (
                "confab://watch/livestream/x?token=a&token=b",
                LinkError::Unexpected(String::new()),
            ),
            (
                "confab://watch/livestream/x?token=",
                LinkError::Unexpected(String::new()),
            ),
            (
                "confab://join/default/x?host=1.2.3.4:80",
                LinkError::HostWithoutKey,
            ),
            ("confab://join/default/x?key=k", LinkError::HostWithoutKey),
            (
                "confab://join/default/x?host=evil.example&key=k",
                LinkError::BadHost,
            ),
            (
                "confab://join/default/x?host=1.2.3.4:0&key=k",
                LinkError::BadHost,
            ),
            (
                "confab://join/default/x?host=0.0.0.0:80&key=k",
                LinkError::BadHost,
            ),
            (
                "confab://join/default/x?host=1.2.3.4:80&key=a%20b",
                LinkError::BadKey,
            ),
        ] {
            let got = Link::parse(link).unwrap_err();
            assert_eq!(
                std::mem::discriminant(&got),
                std::mem::discriminant(&want),
                "{link:?}: {got:?}"
            );
            assert!(got.to_string().ends_with('.') || got.to_string().ends_with(')'));
        }
        assert_eq!(
            Link::parse(&format!("confab://join/default/{}", "x".repeat(5000))).unwrap_err(),
            LinkError::Malformed
        );
    }

    #[test]
    fn the_link_is_found_among_the_arguments() {
        let args = |a: &[&str]| a.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(
            Link::find_in_args(args(&["confab", "--x", "confab://join/default/a"])).as_deref(),
            Some("confab://join/default/a")
        );
        assert_eq!(
            Link::find_in_args(args(&["confab://as-program-name"])),
            None
        );
        assert_eq!(Link::find_in_args(args(&["confab", "--x"])), None);
    }

    #[test]
    fn an_invite_link_reads_back_as_a_guest_join_on_the_host() {
        let link = invite_link(
            &CallType::Default,
            &CallId::parse("standup").unwrap(),
            "192.168.1.5:4880".parse().unwrap(),
            "k3y",
        );
        assert_eq!(
            link,
            "confab://join/default/standup?host=192.168.1.5:4880&key=k3y"
        );
        assert_eq!(
            Link::parse(&link).unwrap(),
            join(
                "default",
                "standup",
                Some(Backend::Stream {
                    api_key: "k3y".into(),
                    base_url: Some("http://192.168.1.5:4880/video".into())
                })
            )
        );
        let svg = qr_svg(&link).unwrap();
        assert!(
            svg.starts_with("<?xml") && svg.contains("<svg"),
            "{svg:.80}"
        );
    }
}
