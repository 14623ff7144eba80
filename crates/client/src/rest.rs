//! REST calls with Stream's headers and query, and the one refresh-and-retry on code 40.

use std::sync::Arc;
use std::time::Duration;

use confab_protocol::wire::{self, AuthType};
use confab_protocol::ANONYMOUS_USER_ID;
use reqwest::Method;
use serde_json::Value;

use crate::token_manager::{TokenLoadError, TokenManager};

/// What identifies this client to the coordinator, as `X-Stream-Client`.
pub fn client_header() -> String {
    format!(
        "stream-video-confab_rust-v{}|client_bundle=rust",
        env!("CARGO_PKG_VERSION")
    )
}

/// Stream's code for an expired token: the one code that triggers a refresh.
pub const TOKEN_EXPIRED: i32 = confab_protocol::ErrorCode::TokenExpired.as_i32();

/// A failed request. Coordinator errors keep Stream's numeric code.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ApiError {
    #[error("Stream error code {code}: {message}")]
    Coordinator {
        code: i32,
        status: u16,
        message: String,
        unrecoverable: bool,
    },
    #[error("could not reach the coordinator: {0}")]
    Network(String),
    #[error("the coordinator's answer was not understood: {0}")]
    Decode(String),
    #[error(transparent)]
    Token(#[from] TokenLoadError),
    #[error("not signed in: connect a user first")]
    NoUser,
    /// The coordinator's address would carry tokens unencrypted (see `secure_transport`).
    #[error("refusing to talk to the coordinator: {0}")]
    Insecure(String),
}

impl ApiError {
    pub fn code(&self) -> Option<i32> {
        match self {
            ApiError::Coordinator { code, .. } => Some(*code),
            _ => None,
        }
    }
}

/// Who a request is made as.
#[derive(Clone)]
pub enum Auth {
    /// Public endpoints (`/guest`): api key only.
    Public,
    Jwt {
        user_id: String,
        tokens: Arc<TokenManager>,
    },
    Anonymous {
        tokens: Arc<TokenManager>,
    },
}

#[derive(Clone)]
pub struct RestClient {
    http: reqwest::Client,
    base_url: String,
    api_key: String,
    timeout: Duration,
    /// Set when the base URL would carry tokens unencrypted: every request is refused.
    insecure: Option<String>,
}

/// One HTTP client for the whole process: it holds the connection pool and the TLS roots
/// (about a megabyte), which every `VideoClient` can share.
fn shared_http() -> reqwest::Client {
    static HTTP: std::sync::OnceLock<reqwest::Client> = std::sync::OnceLock::new();
    HTTP.get_or_init(|| {
        // No redirects: a coordinator does not move, and a redirect could carry a request
        // somewhere the checks on the base URL never saw.
        reqwest::Client::builder()
            .tcp_nodelay(true)
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap_or_else(|_| reqwest::Client::new())
    })
    .clone()
}

impl RestClient {
    pub fn new(base_url: &str, api_key: &str, timeout: Duration) -> Self {
        Self {
            http: shared_http(),
            base_url: base_url.trim_end_matches('/').to_owned(),
            api_key: api_key.to_owned(),
            timeout,
            insecure: crate::secure_transport::insecure_reason(base_url),
        }
    }

    /// Why this coordinator may not be sent tokens, if it may not.
    pub fn insecure(&self) -> Option<&str> {
        self.insecure.as_deref()
    }

    pub fn base_url(&self) -> &str {
        &self.base_url
    }

    /// Sends a request; on code 40 with a token provider, refreshes once and resends it with
    /// the same `x-client-request-id`.
    pub async fn request(
        &self,
        method: Method,
        path: &str,
        auth: &Auth,
        connection_id: Option<&str>,
        query: &[(&str, String)],
        body: Option<&Value>,
    ) -> Result<Value, ApiError> {
        let request_id = uuid::Uuid::new_v4().to_string();
        let tokens = match auth {
            Auth::Jwt { tokens, .. } | Auth::Anonymous { tokens } => Some(tokens),
            Auth::Public => None,
        };
        let mut token = match tokens {
            Some(t) => t.token().await?,
            None => None,
        };
        let mut refreshed = false;
        loop {
            let result = self
                .send_once(
                    &method,
                    path,
                    auth,
                    token.as_ref(),
                    connection_id,
                    query,
                    body,
                    &request_id,
                )
                .await;
            match (result, tokens) {
                (
                    Err(ApiError::Coordinator {
                        code: TOKEN_EXPIRED,
                        ..
                    }),
                    Some(t),
                ) if t.has_provider() && !refreshed => {
                    refreshed = true;
                    token = Some(t.refresh(token.as_ref()).await?);
                }
                (result, _) => return result,
            }
        }
    }

    #[allow(clippy::too_many_arguments)]
    async fn send_once(
        &self,
        method: &Method,
        path: &str,
        auth: &Auth,
        token: Option<&crate::Token>,
        connection_id: Option<&str>,
        query: &[(&str, String)],
        body: Option<&Value>,
        request_id: &str,
    ) -> Result<Value, ApiError> {
        if let Some(why) = &self.insecure {
            return Err(ApiError::Insecure(why.clone()));
        }
        // Stream's order: user_id, connection_id, api_key, then the request's own.
        let mut params: Vec<(&str, String)> = Vec::new();
        let auth_type = match auth {
            Auth::Public => AuthType::Anonymous,
            Auth::Jwt { user_id, .. } => {
                params.push((wire::USER_ID_QUERY, user_id.clone()));
                AuthType::Jwt
            }
            Auth::Anonymous { .. } => {
                params.push((wire::USER_ID_QUERY, ANONYMOUS_USER_ID.to_owned()));
                AuthType::Anonymous
            }
        };
        if let (Some(conn), Auth::Jwt { .. }) = (connection_id, auth) {
            params.push((wire::CONNECTION_ID_QUERY, conn.to_owned()));
        }
        params.push((wire::API_KEY_QUERY, self.api_key.clone()));
        params.extend(query.iter().cloned());

        let mut req = self
            .http
            .request(method.clone(), format!("{}{}", self.base_url, path))
            .query(&params)
            .timeout(self.timeout)
            .header(wire::AUTH_TYPE_HEADER, auth_type.as_str())
            .header(wire::CLIENT_QUERY, client_header())
            .header("x-client-request-id", request_id)
            .header("Accept", "application/json");
        if let Some(token) = token {
            req = req.header(wire::AUTHORIZATION_HEADER, token.expose());
        }
        if let Some(body) = body {
            req = req.json(body);
        }
        let started = std::time::Instant::now();
        let res = req
            .send()
            .await
            .map_err(|e| {
                let e = ApiError::Network(without_url(e));
                tracing::debug!(target: "api-client", %method, path, request_id, error = %e, "request failed");
                e
            })?;
        let status = res.status().as_u16();
        tracing::debug!(
            target: "api-client",
            %method,
            path,
            status,
            request_id,
            took_ms = started.elapsed().as_secs_f64() * 1000.0,
            "request"
        );
        let bytes = res
            .bytes()
            .await
            .map_err(|e| ApiError::Network(without_url(e)))?;
        let json: Value = if bytes.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&bytes)
                .map_err(|e| ApiError::Decode(format!("status {status}: {e}")))?
        };
        if (200..300).contains(&status) {
            return Ok(json);
        }
        Err(ApiError::Coordinator {
            code: json.get("code").and_then(Value::as_i64).unwrap_or(-1) as i32,
            status,
            message: json
                .get("message")
                .and_then(Value::as_str)
                .unwrap_or("no message")
                .to_owned(),
            unrecoverable: json
                .get("unrecoverable")
                .and_then(Value::as_bool)
                .unwrap_or(false),
        })
    }
}

/// reqwest's errors print the URL, which carries the api key and user id but never the
/// token; strip it anyway to keep messages short.
fn without_url(e: reqwest::Error) -> String {
    let kind = if e.is_timeout() {
        "timed out"
    } else if e.is_connect() {
        "connection refused or unreachable"
    } else {
        "request failed"
    };
    format!("{kind}: {}", e.without_url())
}
