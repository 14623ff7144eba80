//! Which coordinator a sign-in talks to, and where its tokens come from: the sign-in policy.
//!
//! Local mode is its own token server (the embedded coordinator's key signs a fresh token
//! whenever one is needed); Stream needs a token or a token URL.

use std::time::Duration;

use confab_client::{token_url_provider, ClientOptions, ProviderError, TokenSource, VideoClient};
use confab_coordinator::SigningKey;
use confab_credentials::{Backend, Credential};

use crate::errors::SessionError;

/// Lifetime of the tokens local mode mints; the provider replaces them before they expire.
pub const LOCAL_TOKEN_TTL: Duration = Duration::from_secs(3600);

/// The coordinator embedded in the app: where it answers and the key that signs its tokens.
#[derive(Clone)]
pub struct LocalBackend {
    pub base_url: String,
    pub api_key: String,
    pub signing_key: SigningKey,
}

impl std::fmt::Debug for LocalBackend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LocalBackend")
            .field("base_url", &self.base_url)
            .finish_non_exhaustive()
    }
}

impl LocalBackend {
    /// A client for the chosen backend.
    pub fn client_for(&self, backend: &Backend) -> VideoClient {
        match backend {
            Backend::Local => VideoClient::new(
                &self.api_key,
                ClientOptions::default().with_base_url(&self.base_url),
            ),
            Backend::Stream { api_key, base_url } => {
                let mut options = ClientOptions::default();
                if let Some(url) = base_url {
                    options = options.with_base_url(url);
                }
                VideoClient::new(api_key, options)
            }
        }
    }

    /// The token source for a credential, and how the token inspector names it.
    pub fn token_source(
        &self,
        backend: &Backend,
        user_id: &str,
        credential: &Credential,
    ) -> Result<(TokenSource, &'static str), SessionError> {
        match (credential, backend) {
            (Credential::Minted, Backend::Local) => {
                let key = self.signing_key.clone();
                let subject = user_id.to_owned();
                let source = TokenSource::provider(move || {
                    let token = key.user_token(&subject, Some(LOCAL_TOKEN_TTL));
                    async move { Ok::<_, ProviderError>(token) }
                });
                Ok((source, "minted by this computer"))
            }
            (Credential::Minted, Backend::Stream { .. }) => Err(SessionError::invalid(
                "Stream needs a token or a token URL for this user.",
            )),
            (Credential::Token { token }, _) => {
                Ok((TokenSource::token(token.clone()), "static token"))
            }
            (Credential::TokenUrl { url }, _) => token_url_provider(url, user_id)
                .map(|source| (source, "token URL (provider)"))
                .map_err(|e| SessionError::invalid(format!("{e}."))),
        }
    }
}

pub(crate) fn backend_label(backend: &Backend) -> &'static str {
    match backend {
        Backend::Local => "local",
        Backend::Stream { .. } => "stream",
    }
}
