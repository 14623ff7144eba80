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
    #[error("the token URL would send tokens unencrypted: {0}")]
    Insecure(String),
}

/// The most a token URL's answer may be: a token is a few hundred bytes.
const MAX_TOKEN_BODY_BYTES: usize = 64 * 1024;

/// A provider that sends `GET url` (with `user_id` added to the query unless the URL already
/// has one) and accepts either `{"token": "..."}` or the bare token as the body.
pub fn token_url_provider(url: &str, user_id: &str) -> Result<TokenSource, TokenUrlError> {
    let mut url =
        reqwest::Url::parse(url.trim()).map_err(|e| TokenUrlError::NotAUrl(e.to_string()))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(TokenUrlError::Scheme);
    }
    if let Some(why) = crate::secure_transport::insecure_reason(url.as_str()) {
        return Err(TokenUrlError::Insecure(why));
    }
    if !url.query_pairs().any(|(k, _)| k == "user_id") {
        url.query_pairs_mut().append_pair("user_id", user_id);
    }
    let http = reqwest::Client::builder()
        .tcp_nodelay(true)
        .timeout(TOKEN_REQUEST_TIMEOUT)
        // A redirect could lead the token request to an address the check above never saw.
        .redirect(reqwest::redirect::Policy::none())
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
            if status.is_redirection() {
                return Err(ProviderError::new(format!(
                    "the token URL redirected ({}): give its final address",
                    status.as_u16()
                )));
            }
            if !status.is_success() {
                return Err(ProviderError::new(format!(
                    "the token URL answered {}",
                    status.as_u16()
                )));
            }
            let body = read_bounded(response, MAX_TOKEN_BODY_BYTES).await?;
            token_from_body(&body)
        }
    }))
}

/// The body, refused once it passes `limit` bytes (read chunk by chunk, never whole first).
async fn read_bounded(
    mut response: reqwest::Response,
    limit: usize,
) -> Result<String, ProviderError> {
    let unreadable = || ProviderError::new("the token URL's answer could not be read");
    if response.content_length().is_some_and(|n| n > limit as u64) {
        return Err(ProviderError::new(format!(
            "the token URL's answer is over {} KiB: not a token",
            limit / 1024
        )));
    }
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await.map_err(|_| unreadable())? {
        if body.len() + chunk.len() > limit {
            return Err(ProviderError::new(format!(
                "the token URL's answer is over {} KiB: not a token",
                limit / 1024
            )));
        }
        body.extend_from_slice(&chunk);
    }
    String::from_utf8(body).map_err(|_| unreadable())
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
        assert!(matches!(
            token_url_provider("http://tokens.example.com/t", "a").unwrap_err(),
            TokenUrlError::Insecure(_)
        ));
        assert!(token_url_provider("https://tokens.example.com/t", "a").is_ok());
    }

    /// A one-request HTTP server on loopback that answers `response` as it is.
    async fn answering(response: Vec<u8>) -> String {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/token", listener.local_addr().unwrap());
        tokio::spawn(async move {
            if let Ok((mut socket, _)) = listener.accept().await {
                let mut request = [0u8; 4096];
                let _ = socket.read(&mut request).await;
                let _ = socket.write_all(&response).await;
                let _ = socket.shutdown().await;
            }
        });
        url
    }

    async fn provider_error(response: Vec<u8>) -> String {
        let url = answering(response).await;
        let source = token_url_provider(&url, "ann").unwrap();
        let once = crate::TokenOptions {
            max_refresh_attempts: 1,
            ..crate::TokenOptions::default()
        };
        let manager = crate::TokenManager::new("ann", Some(source), once).unwrap();
        manager.token().await.unwrap_err().to_string()
    }

    #[tokio::test]
    async fn redirects_are_not_followed_and_huge_answers_are_not_read() {
        let redirect = b"HTTP/1.1 302 Found\r\nLocation: http://tokens.example.com/\r\nContent-Length: 0\r\n\r\n".to_vec();
        let error = provider_error(redirect).await;
        assert!(error.contains("redirected (302)"), "{error}");

        // A megabyte with no length announced: refused once 64 KiB have been read.
        let mut huge = b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n".to_vec();
        huge.extend(std::iter::repeat_n(b'a', 1024 * 1024));
        let error = provider_error(huge).await;
        assert!(error.contains("over 64 KiB"), "{error}");
    }
}
