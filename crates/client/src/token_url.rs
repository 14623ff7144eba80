//! A token provider that asks a web address for tokens: the usual shape of a customer's token
//! endpoint (`GET https://example.com/token?user_id=alice`).

use std::time::Duration;

use crate::token_manager::{ProviderError, TokenSource};

/// How long one token request may take before the provider reports a failure (and the token
/// manager retries).
const TOKEN_REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// Why a token URL cannot be used at all. Checked before anything goes on the network.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenUrlError {
    #[error("the token URL is not a web address: {0}")]
    NotAUrl(String),
    #[error("the token URL must start with http:// or https://")]
    Scheme,
}

/// A provider that sends `GET url` (with `user_id` added to the query unless the URL already
/// has one) and accepts either `{"token": "..."}` or the bare token as the body.
pub fn token_url_provider(url: &str, user_id: &str) -> Result<TokenSource, TokenUrlError> {
    let mut url =
        reqwest::Url::parse(url.trim()).map_err(|e| TokenUrlError::NotAUrl(e.to_string()))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(TokenUrlError::Scheme);
    }
    if !url.query_pairs().any(|(k, _)| k == "user_id") {
        url.query_pairs_mut().append_pair("user_id", user_id);
    }
    let http = reqwest::Client::builder()
        .tcp_nodelay(true)
        .timeout(TOKEN_REQUEST_TIMEOUT)
        .build()
        .map_err(|e| TokenUrlError::NotAUrl(e.to_string()))?;
    Ok(TokenSource::provider(move || {
        let request = http.get(url.clone()).send();
        async move {
            // Errors name the status or the failure, never the body: it may hold a token.
            let response = request.await.map_err(|e| {
                ProviderError::new(format!(
                    "the token URL could not be reached ({})",
                    reqwest_kind(&e)
                ))
            })?;
            let status = response.status();
            if !status.is_success() {
                return Err(ProviderError::new(format!(
                    "the token URL answered {}",
                    status.as_u16()
                )));
            }
            let body = response
                .text()
                .await
                .map_err(|_| ProviderError::new("the token URL's answer could not be read"))?;
            token_from_body(&body)
        }
    }))
}

fn reqwest_kind(e: &reqwest::Error) -> &'static str {
    if e.is_timeout() {
        "timed out"
    } else if e.is_connect() {
        "connection failed"
    } else {
        "request failed"
    }
}

/// `{"token": "..."}` or a bare JWT, trimmed.
fn token_from_body(body: &str) -> Result<String, ProviderError> {
    let body = body.trim();
    if body.starts_with('{') {
        let value: serde_json::Value = serde_json::from_str(body).map_err(|_| {
            ProviderError::new("the token URL answered with JSON that could not be read")
        })?;
        return value["token"]
            .as_str()
            .filter(|t| !t.is_empty())
            .map(str::to_owned)
            .ok_or_else(|| ProviderError::new("the token URL's JSON has no \"token\" field"));
    }
    if body.split('.').count() == 3 && !body.contains(char::is_whitespace) {
        return Ok(body.to_owned());
    }
    Err(ProviderError::new(
        "the token URL answered with neither a token nor {\"token\": ...}",
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bodies_in_either_shape_give_the_token() {
        assert_eq!(token_from_body(r#"{"token":"a.b.c"}"#).unwrap(), "a.b.c");
        assert_eq!(token_from_body(" a.b.c\n").unwrap(), "a.b.c");
        assert!(token_from_body("<html>oops</html>").is_err());
        assert!(token_from_body(r#"{"jwt":"a.b.c"}"#).is_err());
        assert!(token_from_body("{not json").is_err());
    }

    #[test]
    fn bad_urls_are_refused_before_any_request() {
        assert_eq!(
            token_url_provider("ftp://example.com/t", "a").unwrap_err(),
            TokenUrlError::Scheme
        );
        assert!(matches!(
            token_url_provider("not a url", "a").unwrap_err(),
            TokenUrlError::NotAUrl(_)
        ));
    }
}
