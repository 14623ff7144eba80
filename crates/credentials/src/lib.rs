//! The sign-in Confab remembers ("Remember me"): where to connect, who, and the token or the
//! token URL. It lives in the OS keychain as one entry and nowhere else: no plain file, no log.
//! Where there is no keychain the caller is told so, and keeps the session in memory only.

use std::fmt;

use serde::{Deserialize, Serialize};

/// The keychain service Confab's entries are filed under.
pub const APP_SERVICE: &str = "dev.confab.desktop";
const ENTRY_USER: &str = "remembered-sign-in";

/// Which coordinator a remembered sign-in is for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Backend {
    /// The coordinator embedded in the app: it signs its own tokens.
    Local,
    /// Stream's service, or another compatible coordinator.
    Stream {
        api_key: String,
        base_url: Option<String>,
    },
}

/// How the remembered user gets tokens.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Credential {
    /// Local mode mints tokens, so nothing secret is kept.
    Minted,
    Token {
        token: String,
    },
    TokenUrl {
        url: String,
    },
}

impl fmt::Debug for Credential {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Credential::Minted => f.write_str("Minted"),
            Credential::Token { .. } => f.write_str("Token([redacted])"),
            // A token URL may carry a key in its query: print its origin only.
            Credential::TokenUrl { url } => {
                let origin = url.split(['?', '#']).next().unwrap_or_default();
                write!(f, "TokenUrl({origin}?[redacted])")
            }
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RememberedSignIn {
    pub backend: Backend,
    pub user_id: String,
    pub name: Option<String>,
    pub credential: Credential,
}

/// What went wrong with the keychain. Messages never include what was stored.
#[derive(Debug, thiserror::Error)]
pub enum KeychainError {
    #[error("no keychain is available on this computer ({0})")]
    Unavailable(String),
    #[error("the keychain refused the request ({0})")]
    Failed(String),
    #[error("the remembered sign-in in the keychain could not be read; it was removed")]
    Unreadable,
}

impl KeychainError {
    pub fn code(&self) -> &'static str {
        match self {
            KeychainError::Unavailable(_) => "no_keychain",
            KeychainError::Failed(_) => "keychain_failed",
            KeychainError::Unreadable => "keychain_unreadable",
        }
    }
}

fn classify(e: keyring::Error) -> KeychainError {
    // The platform errors describe the store (no bus, locked collection), not the secret.
    match e {
        keyring::Error::NoStorageAccess(inner) => KeychainError::Unavailable(inner.to_string()),
        keyring::Error::PlatformFailure(inner) => KeychainError::Unavailable(inner.to_string()),
        keyring::Error::TooLong(what, max) => {
            KeychainError::Failed(format!("{what} is longer than {max}"))
        }
        other => KeychainError::Failed(kind_of(&other).to_owned()),
    }
}

fn kind_of(e: &keyring::Error) -> &'static str {
    match e {
        keyring::Error::NoEntry => "no entry",
        keyring::Error::BadEncoding(_) => "bad encoding",
        keyring::Error::Invalid(..) => "invalid attribute",
        keyring::Error::Ambiguous(_) => "more than one matching entry",
        _ => "keychain error",
    }
}

/// Confab's entry in the OS keychain.
#[derive(Debug, Clone)]
pub struct Keychain {
    service: String,
}

impl Default for Keychain {
    fn default() -> Self {
        Self::new(APP_SERVICE)
    }
}

impl Keychain {
    /// Entries under another service name, so tests never touch the app's own.
    pub fn new(service: impl Into<String>) -> Self {
        Self {
            service: service.into(),
        }
    }

    fn entry(&self) -> Result<keyring::Entry, KeychainError> {
        keyring::Entry::new(&self.service, ENTRY_USER).map_err(classify)
    }

    /// Replaces whatever was remembered. Blocking: call it off the async runtime.
    pub fn remember(&self, sign_in: &RememberedSignIn) -> Result<(), KeychainError> {
        let json = serde_json::to_string(sign_in)
            .map_err(|_| KeychainError::Failed("could not encode the sign-in".into()))?;
        self.entry()?.set_password(&json).map_err(classify)
    }

    /// The remembered sign-in, or `None`. An entry that cannot be read is removed, since it
    /// could never be used and would otherwise fail every start.
    pub fn recall(&self) -> Result<Option<RememberedSignIn>, KeychainError> {
        let entry = self.entry()?;
        let json = match entry.get_password() {
            Ok(json) => json,
            Err(keyring::Error::NoEntry) => return Ok(None),
            Err(e) => return Err(classify(e)),
        };
        match serde_json::from_str(&json) {
            Ok(sign_in) => Ok(Some(sign_in)),
            Err(_) => {
                let _ = entry.delete_credential();
                Err(KeychainError::Unreadable)
            }
        }
    }

    /// Removes the remembered sign-in; nothing remembered is not an error.
    pub fn forget(&self) -> Result<(), KeychainError> {
        match self.entry()?.delete_credential() {
            Ok(()) | Err(keyring::Error::NoEntry) => Ok(()),
            Err(e) => Err(classify(e)),
        }
    }

    /// Whether a keychain answers at all (so the page can say "no keychain" up front).
    pub fn probe(&self) -> Result<(), KeychainError> {
        match self.entry()?.get_password() {
            Ok(_) | Err(keyring::Error::NoEntry) => Ok(()),
            Err(keyring::Error::BadEncoding(_)) => Ok(()),
            Err(e) => Err(classify(e)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_prints_no_token_and_no_token_url_query() {
        let s = RememberedSignIn {
            backend: Backend::Stream {
                api_key: "key".into(),
                base_url: None,
            },
            user_id: "alice".into(),
            name: None,
            credential: Credential::Token {
                token: "eyJhbGciOi.secret.sig".into(),
            },
        };
        assert!(!format!("{s:?}").contains("secret"));
        let url = Credential::TokenUrl {
            url: "https://example.com/token?key=hunter2".into(),
        };
        let printed = format!("{url:?}");
        assert!(printed.contains("https://example.com/token") && !printed.contains("hunter2"));
    }

    #[test]
    fn the_stored_form_round_trips() {
        let s = RememberedSignIn {
            backend: Backend::Local,
            user_id: "bob".into(),
            name: Some("Bob".into()),
            credential: Credential::Minted,
        };
        let json = serde_json::to_string(&s).unwrap();
        assert_eq!(serde_json::from_str::<RememberedSignIn>(&json).unwrap(), s);
    }
}
