//! What the window's forms send, and the rules they must pass before anything is sent anywhere.
//! Ids follow confab-protocol's rules, the same the coordinator applies.

use confab_credentials::{Backend, Credential, RememberedSignIn};
use confab_protocol::{CallId, CallType, UserId};
use serde::Deserialize;

use crate::errors::SessionError;

/// The sign-in form.
#[derive(Debug, Clone, Deserialize)]
pub struct SignInForm {
    pub backend: Backend,
    pub user_id: String,
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub token: Option<String>,
    #[serde(default)]
    pub token_url: Option<String>,
    #[serde(default)]
    pub remember: bool,
}

impl SignInForm {
    /// The sign-in the form describes (the keychain's shape), checked.
    pub fn validate(self) -> Result<(RememberedSignIn, bool), SessionError> {
        let sign_in = RememberedSignIn {
            backend: valid_backend(self.backend)?,
            user_id: UserId::parse(&self.user_id)?.into_string(),
            name: clean_name(self.name)?,
            credential: credential_from(self.token, self.token_url)?,
        };
        Ok((sign_in, self.remember))
    }
}

/// The guest form: a display name and, optionally, an avatar.
#[derive(Debug, Clone, Deserialize)]
pub struct GuestForm {
    pub backend: Backend,
    pub name: String,
    #[serde(default)]
    pub image: Option<String>,
    /// The person chose to reach this backend's private-network address unencrypted (an
    /// invite from a Confab hosting for its network): see `secure_transport`.
    #[serde(default)]
    pub trust_local_network: bool,
}

impl GuestForm {
    pub fn validate(self) -> Result<(Backend, String, Option<String>), SessionError> {
        if let (
            true,
            Backend::Stream {
                base_url: Some(url),
                ..
            },
        ) = (self.trust_local_network, &self.backend)
        {
            confab_client::secure_transport::trust_local_network_host(url)
                .map_err(|e| SessionError::invalid(format!("This host cannot be trusted: {e}.")))?;
        }
        let backend = valid_backend(self.backend)?;
        let name = clean_name(Some(self.name))?
            .ok_or_else(|| SessionError::invalid("Type the name others will see."))?;
        let image = self
            .image
            .map(|i| i.trim().to_owned())
            .filter(|i| !i.is_empty());
        if image
            .as_ref()
            .is_some_and(|i| !(i.starts_with("https://") || i.starts_with("http://")))
        {
            return Err(SessionError::invalid(
                "An avatar is a web address (https://...).",
            ));
        }
        Ok((backend, name, image))
    }
}

/// The "watch a livestream" form.
#[derive(Debug, Clone, Deserialize)]
pub struct WatchForm {
    pub backend: Backend,
    pub call_id: String,
    #[serde(default)]
    pub call_token: Option<String>,
}

/// A call to join from the lobby.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallChoice {
    pub call_type: CallType,
    pub call_id: CallId,
}

impl CallChoice {
    pub fn parse(call_type: &str, call_id: &str) -> Result<Self, SessionError> {
        Ok(Self {
            call_type: CallType::parse(call_type)?,
            call_id: CallId::parse(call_id)?,
        })
    }

    pub fn cid(&self) -> String {
        format!("{}:{}", self.call_type, self.call_id)
    }
}

pub(crate) fn clean_name(name: Option<String>) -> Result<Option<String>, SessionError> {
    let name = name.map(|n| n.trim().to_owned()).filter(|n| !n.is_empty());
    if name.as_ref().is_some_and(|n| n.chars().count() > 100) {
        return Err(SessionError::invalid("A name is at most 100 characters."));
    }
    Ok(name)
}

/// Checks a Stream backend's fields: an API key of letters and digits, an http(s) base URL.
pub fn valid_backend(backend: Backend) -> Result<Backend, SessionError> {
    match backend {
        Backend::Local => Ok(Backend::Local),
        Backend::Stream { api_key, base_url } => {
            let api_key = api_key.trim().to_owned();
            if api_key.is_empty()
                || api_key.len() > 128
                || !api_key
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
            {
                return Err(SessionError::invalid(
                    "An API key is 1 to 128 letters and digits, from your Stream dashboard.",
                ));
            }
            let base_url = base_url
                .map(|u| u.trim().trim_end_matches('/').to_owned())
                .filter(|u| !u.is_empty());
            if let Some(url) = &base_url {
                if !(url.starts_with("https://") || url.starts_with("http://"))
                    || url.contains(char::is_whitespace)
                {
                    return Err(SessionError::invalid(
                        "The base URL is a web address such as https://video.stream-io-api.com/video.",
                    ));
                }
                if let Some(why) = confab_client::secure_transport::insecure_reason(url) {
                    return Err(SessionError::invalid(format!(
                        "This base URL cannot be used: {why}."
                    )));
                }
            }
            Ok(Backend::Stream { api_key, base_url })
        }
    }
}

/// Which credential the form's fields describe: at most one of a token or a token URL.
fn credential_from(
    token: Option<String>,
    token_url: Option<String>,
) -> Result<Credential, SessionError> {
    let token = token.map(|t| t.trim().to_owned()).filter(|t| !t.is_empty());
    let token_url = token_url
        .map(|u| u.trim().to_owned())
        .filter(|u| !u.is_empty());
    match (token, token_url) {
        (Some(_), Some(_)) => Err(SessionError::invalid(
            "Give a token or a token URL, not both.",
        )),
        (Some(token), None) => Ok(Credential::Token { token }),
        (None, Some(url)) => Ok(Credential::TokenUrl { url }),
        (None, None) => Ok(Credential::Minted),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::errors::ErrorKind;

    fn form(user_id: &str) -> SignInForm {
        SignInForm {
            backend: Backend::Local,
            user_id: user_id.into(),
            name: Some("  Ann  ".into()),
            token: None,
            token_url: Some(" ".into()),
            remember: true,
        }
    }

    #[test]
    fn a_sign_in_is_trimmed_and_checked_with_the_shared_id_rule() {
        let (sign_in, remember) = form(" ann ").validate().unwrap();
        assert_eq!(sign_in.user_id, "ann");
        assert_eq!(sign_in.name.as_deref(), Some("Ann"));
        assert_eq!(sign_in.credential, Credential::Minted);
        assert!(remember);
        // The coordinator's rule: up to 255 characters.
        assert!(form(&"a".repeat(255)).validate().is_ok());
        for bad in ["", "a b", "!anon", &"a".repeat(256)] {
            assert_eq!(
                form(bad).validate().unwrap_err().kind,
                ErrorKind::InvalidInput,
                "{bad:?}"
            );
        }
        let mut both = form("ann");
        both.token = Some("t".into());
        both.token_url = Some("https://x".into());
        assert!(both.validate().unwrap_err().message.contains("not both"));
    }

    #[test]
    fn backends_guests_and_calls_are_checked() {
        let plain_http = Backend::Stream {
            api_key: "k3y".into(),
            base_url: Some("http://192.168.1.5:4880/video".into()),
        };
        let refused = valid_backend(plain_http).unwrap_err();
        assert!(
            refused.message.contains("unencrypted"),
            "{}",
            refused.message
        );
        let bad_key = Backend::Stream {
            api_key: "a key".into(),
            base_url: None,
        };
        assert!(valid_backend(bad_key).is_err());
        let ok = valid_backend(Backend::Stream {
            api_key: "k3y".into(),
            base_url: Some(" http://127.0.0.1:1/video/ ".into()),
        })
        .unwrap();
        assert_eq!(
            ok,
            Backend::Stream {
                api_key: "k3y".into(),
                base_url: Some("http://127.0.0.1:1/video".into())
            }
        );
        let guest = GuestForm {
            backend: Backend::Local,
            name: "  ".into(),
            image: None,
            trust_local_network: false,
        };
        assert!(guest.validate().is_err());
        let guest = GuestForm {
            backend: Backend::Local,
            name: "Jo".into(),
            image: Some("ftp://x".into()),
            trust_local_network: false,
        };
        assert!(guest.validate().is_err());
        assert_eq!(
            CallChoice::parse("livestream", " launch ").unwrap().cid(),
            "livestream:launch"
        );
        assert!(CallChoice::parse("audio_room", "x").is_err());
        assert!(CallChoice::parse("default", "a:b").is_err());
    }
}
