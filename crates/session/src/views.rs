//! The answers the window gets back, serializable as they cross into the page.

use confab_credentials::Backend;
use serde::Serialize;

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SignedIn {
    pub user_id: String,
    pub name: Option<String>,
    pub role: String,
    /// "local" or "stream".
    pub backend: &'static str,
    /// Set when "Remember me" was asked for: whether the keychain took it, in plain words.
    pub remembered: Option<Remembered>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Remembered {
    pub stored: bool,
    pub message: String,
}

/// What the page learns at start-up about the remembered sign-in.
#[derive(Debug, Clone, Serialize)]
pub struct Restored {
    pub signed_in: Option<SignedIn>,
    /// Where the remembered sign-in pointed, so the form shows it even if connecting failed.
    pub backend: Option<Backend>,
    pub keychain_available: bool,
    /// Plain words for the page when something went wrong.
    pub message: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SignedOut {
    pub keychain_cleared: bool,
    pub message: Option<String>,
}

/// What the token inspector shows: the claims and where tokens come from. Never the token.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TokenInfo {
    pub user_id: Option<String>,
    pub role: Option<String>,
    pub call_cids: Option<Vec<String>>,
    pub issued_at: Option<i64>,
    pub expires_at: Option<i64>,
    pub expires_in_s: Option<f64>,
    pub source: &'static str,
    pub provider_calls: u32,
}

/// A livestream as an anonymous viewer sees it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Livestream {
    pub cid: String,
    pub backstage: bool,
    /// A broadcast runs: `hls_playlist_url` plays it.
    pub broadcasting: bool,
    pub hls_playlist_url: Option<String>,
    /// Players watching now, as the coordinator counts them.
    pub viewers: u64,
}
