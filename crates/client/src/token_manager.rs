//! Where a client's token comes from, and refreshing it.
//!
//! Better than the official client in three ways: it refreshes ahead of `exp` (by a margin),
//! however many requests see an expired token at once the provider is called once, and a
//! failing provider is retried a bounded number of times and then reported with its cause.

use crate::token::ReadClaims;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex as StdMutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::token::{Token, TokenError};

/// The error a token provider returns. Its message is shown to people: never put the token
/// or a secret in it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct ProviderError(pub String);

impl ProviderError {
    pub fn new(message: impl Into<String>) -> Self {
        Self(message.into())
    }
}

pub type ProviderFuture = Pin<Box<dyn Future<Output = Result<String, ProviderError>> + Send>>;

/// An async function returning a fresh token, called at connect and whenever it expires.
pub trait TokenProvider: Send + Sync {
    fn fetch(&self) -> ProviderFuture;
}

impl<F, Fut> TokenProvider for F
where
    F: Fn() -> Fut + Send + Sync,
    Fut: Future<Output = Result<String, ProviderError>> + Send + 'static,
{
    fn fetch(&self) -> ProviderFuture {
        Box::pin(self())
    }
}

/// A static token, a provider, or both (the static token first, the provider for refreshes).
#[derive(Clone)]
pub enum TokenSource {
    Static(Token),
    Provider(Arc<dyn TokenProvider>),
    StaticThenProvider(Token, Arc<dyn TokenProvider>),
}

impl TokenSource {
    pub fn token(raw: impl Into<String>) -> Self {
        TokenSource::Static(Token::new(raw))
    }

    pub fn provider(provider: impl TokenProvider + 'static) -> Self {
        TokenSource::Provider(Arc::new(provider))
    }

    /// Adds a provider for refreshes to a static token.
    pub fn with_provider(self, provider: impl TokenProvider + 'static) -> Self {
        let provider: Arc<dyn TokenProvider> = Arc::new(provider);
        match self {
            TokenSource::Static(t) | TokenSource::StaticThenProvider(t, _) => {
                TokenSource::StaticThenProvider(t, provider)
            }
            TokenSource::Provider(_) => TokenSource::Provider(provider),
        }
    }

    fn split(self) -> (Option<Token>, Option<Arc<dyn TokenProvider>>) {
        match self {
            TokenSource::Static(t) => (Some(t), None),
            TokenSource::Provider(p) => (None, Some(p)),
            TokenSource::StaticThenProvider(t, p) => (Some(t), Some(p)),
        }
    }
}

impl std::fmt::Debug for TokenSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            TokenSource::Static(_) => "TokenSource::Static([redacted])",
            TokenSource::Provider(_) => "TokenSource::Provider",
            TokenSource::StaticThenProvider(..) => "TokenSource::StaticThenProvider([redacted])",
        })
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct TokenOptions {
    /// Refresh this long before `exp`, when a provider exists.
    pub refresh_margin: Duration,
    /// Provider calls per refresh before giving up.
    pub max_refresh_attempts: u32,
    /// Pause between failed provider calls.
    pub refresh_retry_delay: Duration,
}

impl Default for TokenOptions {
    fn default() -> Self {
        Self {
            refresh_margin: Duration::from_secs(60),
            max_refresh_attempts: 3,
            refresh_retry_delay: Duration::from_millis(250),
        }
    }
}

/// Why no usable token could be had.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenLoadError {
    #[error("the token is not valid for this user: {0}")]
    Invalid(#[from] TokenError),
    #[error("the token provider failed {attempts} time(s); last error: {cause}")]
    Provider { attempts: u32, cause: ProviderError },
    #[error("the token expired and there is no token provider to get a new one")]
    ExpiredWithoutProvider,
    #[error("no token: give a token or a token provider")]
    Missing,
}

/// The token of one connected user. A new one is made for every `connect_user`, so nothing
/// of a previous user survives a disconnect.
pub struct TokenManager {
    user_id: String,
    provider: Option<Arc<dyn TokenProvider>>,
    current: StdMutex<Option<Token>>,
    // Single flight: the one refresh in progress; everyone else waits on it.
    refresh_gate: tokio::sync::Mutex<()>,
    options: TokenOptions,
    clock: Clock,
    provider_calls: std::sync::atomic::AtomicU32,
}

/// Wall-clock seconds that advance with tokio's clock, so tests can pause and move time.
#[derive(Debug, Clone, Copy)]
struct Clock {
    unix_at_start: f64,
    started: tokio::time::Instant,
}

impl Clock {
    fn new() -> Self {
        Self {
            unix_at_start: SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map(|d| d.as_secs_f64())
                .unwrap_or_default(),
            started: tokio::time::Instant::now(),
        }
    }

    fn unix_now(&self) -> f64 {
        self.unix_at_start + self.started.elapsed().as_secs_f64()
    }
}

impl TokenManager {
    /// Checks a static token against the user before anything goes on the network.
    pub fn new(
        user_id: &str,
        source: Option<TokenSource>,
        options: TokenOptions,
    ) -> Result<Self, TokenLoadError> {
        let (token, provider) = source.map(TokenSource::split).unwrap_or((None, None));
        if let Some(token) = &token {
            token.claims()?.check_user(user_id)?;
        }
        Ok(Self {
            user_id: user_id.to_owned(),
            provider,
            current: StdMutex::new(token),
            refresh_gate: tokio::sync::Mutex::new(()),
            options,
            clock: Clock::new(),
            provider_calls: std::sync::atomic::AtomicU32::new(0),
        })
    }

    pub fn has_provider(&self) -> bool {
        self.provider.is_some()
    }

    /// How many times the provider has been called.
    pub fn provider_calls(&self) -> u32 {
        self.provider_calls
            .load(std::sync::atomic::Ordering::Relaxed)
    }

    /// The claims of the token in use now (for an inspector; never the token itself).
    pub fn current_claims(&self) -> Option<crate::token::TokenClaims> {
        self.current().and_then(|t| t.claims().ok())
    }

    /// Seconds until the current token expires, if it has one with `exp`.
    pub fn current_expires_in(&self) -> Option<f64> {
        self.current().and_then(|t| self.expires_in(&t))
    }

    fn current(&self) -> Option<Token> {
        self.current
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Seconds until the token expires (negative once expired); `None` without `exp`.
    pub fn expires_in(&self, token: &Token) -> Option<f64> {
        let exp = token.claims().ok()?.exp?;
        Some(exp as f64 - self.clock.unix_now())
    }

    fn expiring(&self, token: &Token) -> bool {
        self.expires_in(token)
            .is_some_and(|left| left <= self.options.refresh_margin.as_secs_f64())
    }

    /// The token to use now, or `None` for an anonymous user without one. Refreshes first
    /// when the token is missing or within the margin of `exp` and a provider exists.
    pub async fn token(&self) -> Result<Option<Token>, TokenLoadError> {
        match self.current() {
            Some(t) if !(self.provider.is_some() && self.expiring(&t)) => Ok(Some(t)),
            Some(t) => self.refresh(Some(&t)).await.map(Some),
            None if self.provider.is_some() => self.refresh(None).await.map(Some),
            None => Ok(None),
        }
    }

    /// Gets a new token because `stale` was refused or is about to expire. Concurrent callers
    /// with the same stale token share one provider call.
    pub async fn refresh(&self, stale: Option<&Token>) -> Result<Token, TokenLoadError> {
        let Some(provider) = &self.provider else {
            return Err(TokenLoadError::ExpiredWithoutProvider);
        };
        let _gate = self.refresh_gate.lock().await;
        // Someone refreshed while we waited: use theirs.
        if let Some(current) = self.current() {
            if Some(&current) != stale && !self.expiring(&current) {
                return Ok(current);
            }
        }
        let mut last = ProviderError::new("not called");
        for attempt in 1..=self.options.max_refresh_attempts.max(1) {
            self.provider_calls
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            match provider.fetch().await {
                Ok(raw) => {
                    let token = Token::new(raw);
                    token.claims()?.check_user(&self.user_id)?;
                    *self.current.lock().unwrap_or_else(|p| p.into_inner()) = Some(token.clone());
                    tracing::debug!(target: "token", user_id = %self.user_id, attempt, "token refreshed");
                    return Ok(token);
                }
                Err(e) => {
                    tracing::warn!(target: "token", user_id = %self.user_id, attempt, error = %e, "token provider failed");
                    last = e;
                    if attempt < self.options.max_refresh_attempts {
                        tokio::time::sleep(self.options.refresh_retry_delay).await;
                    }
                }
            }
        }
        Err(TokenLoadError::Provider {
            attempts: self.options.max_refresh_attempts.max(1),
            cause: last,
        })
    }
}

impl std::fmt::Debug for TokenManager {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenManager")
            .field("user_id", &self.user_id)
            .field("has_provider", &self.provider.is_some())
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    use base64::Engine;
    use std::sync::atomic::{AtomicU32, Ordering};

    fn jwt(user: &str, exp: Option<i64>) -> String {
        let payload = match exp {
            Some(exp) => format!(r#"{{"user_id":"{user}","exp":{exp}}}"#),
            None => format!(r#"{{"user_id":"{user}"}}"#),
        };
        format!(
            "e30.{}.sig{}",
            URL_SAFE_NO_PAD.encode(payload),
            fastrand::u32(..)
        )
    }

    fn now() -> i64 {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_secs() as i64
    }

    fn counting_provider(user: &'static str, ttl: i64) -> (Arc<AtomicU32>, TokenSource) {
        let calls = Arc::new(AtomicU32::new(0));
        let c = calls.clone();
        let source = TokenSource::provider(move || {
            let c = c.clone();
            async move {
                c.fetch_add(1, Ordering::SeqCst);
                tokio::time::sleep(Duration::from_millis(50)).await;
                Ok(jwt(user, Some(now() + ttl)))
            }
        });
        (calls, source)
    }

    #[tokio::test]
    async fn a_token_for_another_user_is_refused_before_any_network_call() {
        let err = TokenManager::new(
            "bob",
            Some(TokenSource::token(jwt("alice", None))),
            TokenOptions::default(),
        )
        .unwrap_err();
        assert!(matches!(
            err,
            TokenLoadError::Invalid(TokenError::UserMismatch { .. })
        ));
        assert!(TokenManager::new(
            "bob",
            Some(TokenSource::token("nope")),
            TokenOptions::default()
        )
        .is_err());
    }

    #[tokio::test(start_paused = true)]
    async fn concurrent_refreshes_share_one_provider_call() {
        let (calls, source) = counting_provider("alice", 3600);
        let stale = Token::new(jwt("alice", Some(now() - 5)));
        let manager = Arc::new(
            TokenManager::new("alice", Some(source.clone()), TokenOptions::default()).unwrap(),
        );
        *manager.current.lock().unwrap() = Some(stale.clone());
        let tasks: Vec<_> = (0..20)
            .map(|_| {
                let m = manager.clone();
                let s = stale.clone();
                tokio::spawn(async move { m.refresh(Some(&s)).await.unwrap() })
            })
            .collect();
        let mut tokens = Vec::new();
        for t in tasks {
            tokens.push(t.await.unwrap());
        }
        assert_eq!(calls.load(Ordering::SeqCst), 1);
        assert!(tokens.windows(2).all(|w| w[0] == w[1]));
        assert_ne!(tokens[0], stale);
    }

    #[tokio::test(start_paused = true)]
    async fn refreshes_ahead_of_expiry_by_the_margin() {
        let (calls, provider) = counting_provider("alice", 3600);
        let TokenSource::Provider(p) = provider else {
            unreachable!()
        };
        // A static token valid for 5 minutes, with a 60 s margin.
        let source =
            TokenSource::StaticThenProvider(Token::new(jwt("alice", Some(now() + 300))), p);
        let manager = TokenManager::new("alice", Some(source), TokenOptions::default()).unwrap();
        let first = manager.token().await.unwrap().unwrap();
        assert_eq!(
            calls.load(Ordering::SeqCst),
            0,
            "the static token is used first"
        );

        tokio::time::advance(Duration::from_secs(200)).await;
        assert_eq!(
            manager.token().await.unwrap().unwrap(),
            first,
            "still outside the margin"
        );
        assert_eq!(calls.load(Ordering::SeqCst), 0);

        tokio::time::advance(Duration::from_secs(45)).await; // 55 s left: inside the margin
        let second = manager.token().await.unwrap().unwrap();
        assert_ne!(second, first);
        assert_eq!(calls.load(Ordering::SeqCst), 1);
    }

    #[tokio::test(start_paused = true)]
    async fn a_failing_provider_is_retried_a_bounded_number_of_times_with_its_cause() {
        let calls = Arc::new(AtomicU32::new(0));
        let c = calls.clone();
        let source = TokenSource::provider(move || {
            let c = c.clone();
            async move {
                c.fetch_add(1, Ordering::SeqCst);
                Err(ProviderError::new("auth server said 503"))
            }
        });
        let manager = TokenManager::new("alice", Some(source), TokenOptions::default()).unwrap();
        let started = tokio::time::Instant::now();
        let err = manager.token().await.unwrap_err();
        assert_eq!(calls.load(Ordering::SeqCst), 3);
        assert_eq!(
            err,
            TokenLoadError::Provider {
                attempts: 3,
                cause: ProviderError::new("auth server said 503")
            }
        );
        assert!(err.to_string().contains("auth server said 503"));
        // Two pauses between three attempts.
        assert_eq!(started.elapsed(), Duration::from_millis(500));
    }

    #[tokio::test]
    async fn a_static_token_cannot_be_refreshed() {
        let manager = TokenManager::new(
            "alice",
            Some(TokenSource::token(jwt("alice", Some(now() - 1)))),
            TokenOptions::default(),
        )
        .unwrap();
        assert!(
            manager.token().await.unwrap().is_some(),
            "an expired static token is still sent"
        );
        assert_eq!(
            manager.refresh(None).await.unwrap_err(),
            TokenLoadError::ExpiredWithoutProvider
        );
    }

    #[test]
    fn token_sources_never_print_tokens() {
        let raw = jwt("alice", None);
        let source = TokenSource::token(raw.clone()).with_provider(|| async { Ok(String::new()) });
        assert!(!format!("{source:?}").contains(&raw));
    }
}
