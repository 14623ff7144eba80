//! Axum extractors for what every endpoint starts with, each refusing in Stream's error shape:
//! the app's key ([`KnownApp`]), the authenticated [`Caller`], the socket a request is made
//! for ([`ConnectionId`]), the call in the path ([`CallPath`]) and the JSON body
//! ([`JsonBody`]). Handlers list them as arguments and keep only their own logic.
//!
//! Axum runs extractors in argument order, so handlers list them in the order the checks
//! must happen: the caller before the path, the path before the body.

use std::net::{IpAddr, SocketAddr};

use axum::extract::{ConnectInfo, FromRequest, FromRequestParts, Path, Request};
use axum::http::request::Parts;
use confab_protocol::{CallCid, CallId, CallType};
use serde::de::DeserializeOwned;
use serde::Deserialize;

use crate::auth::{authenticate, check_api_key, Caller, CommonQuery};
use crate::error::ApiError;
use crate::ids;
use crate::rate::{Action, Rate};
use crate::state::{AppState, Shared};

fn query_of(parts: &Parts) -> CommonQuery {
    CommonQuery::parse(parts.uri.query())
}

/// The request names this coordinator's app in `api_key`; nothing more is checked (public
/// endpoints: `/guest`, `/call_client_event`, `/edges`, the socket before its auth frame).
#[derive(Debug, Clone, Copy)]
pub struct KnownApp;

impl FromRequestParts<Shared> for KnownApp {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &Shared) -> Result<Self, ApiError> {
        check_api_key(state, &query_of(parts)).map(|()| KnownApp)
    }
}

/// The authenticated caller: api key, `stream-auth-type` and `Authorization`.
impl FromRequestParts<Shared> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &Shared) -> Result<Self, ApiError> {
        authenticate(state, &parts.headers, &query_of(parts)).await
    }
}

/// The query string as Stream's clients send it (`api_key`, `user_id`, the rest).
#[derive(Debug, Clone)]
pub struct RequestQuery(pub CommonQuery);

impl<S: Send + Sync> FromRequestParts<S> for RequestQuery {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        Ok(RequestQuery(query_of(parts)))
    }
}

/// The client's address, from axum's `ConnectInfo`, which the listener adds to every
/// request (listener.rs); `None` without it (a router served some other way), and then every
/// client shares one rate-limit bucket (stricter, never looser).
#[derive(Debug, Clone, Copy, Default)]
pub struct PeerIp(pub Option<IpAddr>);

impl<S: Send + Sync> FromRequestParts<S> for PeerIp {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        Ok(PeerIp(
            parts
                .extensions
                .get::<ConnectInfo<SocketAddr>>()
                .map(|info| info.0.ip()),
        ))
    }
}

/// Takes one token from the address's bucket for `action`, or refuses with 429 (code 9).
pub fn limit_rate(
    state: &AppState,
    action: Action,
    peer: PeerIp,
    rate: Rate,
) -> Result<(), ApiError> {
    state.rate.take(action, peer.0, rate).map_err(|wait| {
        ApiError::rate_limited(format!(
            "too many requests from this address: try again in {} s",
            wait.as_secs().max(1)
        ))
    })
}

/// The longest name and image URL a user (or guest) may have.
pub const MAX_NAME_CHARS: usize = 100;
pub const MAX_IMAGE_BYTES: usize = 2048;

/// Refuses a user's details over the stored-size limits, before anything is written: the same
/// rules for a guest, a socket's `user_details` and anyone else.
pub fn check_user_fields(
    name: Option<&str>,
    image: Option<&str>,
    custom: Option<&serde_json::Map<String, serde_json::Value>>,
    max_custom: usize,
) -> Result<(), ApiError> {
    if name.is_some_and(|n| n.chars().count() > MAX_NAME_CHARS) {
        return Err(ApiError::too_large(format!(
            "a user's name is at most {MAX_NAME_CHARS} characters"
        )));
    }
    if image.is_some_and(|i| i.len() > MAX_IMAGE_BYTES) {
        return Err(ApiError::too_large(format!(
            "a user's image URL is at most {MAX_IMAGE_BYTES} bytes"
        )));
    }
    check_custom("a user's", custom, max_custom)
}

/// Refuses custom data whose JSON is over `max` bytes (Stream allows 5 KB).
pub fn check_custom(
    what: &str,
    custom: Option<&serde_json::Map<String, serde_json::Value>>,
    max: usize,
) -> Result<(), ApiError> {
    let Some(custom) = custom else {
        return Ok(());
    };
    let size = serde_json::to_vec(custom).map_or(usize::MAX, |v| v.len());
    if size > max {
        return Err(ApiError::too_large(format!(
            "{what} custom data is {size} bytes as JSON: at most {max} are kept"
        )));
    }
    Ok(())
}

/// `connection_id` from the query: the socket that should hear this call's events.
#[derive(Debug, Clone, Default)]
pub struct ConnectionId(pub Option<String>);

impl<S: Send + Sync> FromRequestParts<S> for ConnectionId {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        Ok(ConnectionId(query_of(parts).connection_id))
    }
}

/// `/call/{type}/{id}...` with a known call type and a valid id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallPath(pub CallCid);

impl CallPath {
    pub fn call_type(&self) -> CallType {
        self.0.call_type
    }

    pub fn id(&self) -> &CallId {
        &self.0.id
    }

    /// `type:id`, the call's key in the store and in events.
    pub fn cid(&self) -> String {
        self.0.to_string()
    }
}

#[derive(Deserialize)]
struct RawCallPath {
    #[serde(rename = "type")]
    call_type: String,
    id: String,
}

impl<S: Send + Sync> FromRequestParts<S> for CallPath {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        let Path(raw) = Path::<RawCallPath>::from_request_parts(parts, state)
            .await
            .map_err(|e| ApiError::input(format!("the call path is not valid: {e}")))?;
        let call_type = ids::call_type(&raw.call_type)?;
        let id = ids::call_id(&raw.id)?;
        Ok(CallPath(CallCid::new(call_type, id)))
    }
}

/// A JSON body of at most `Limits::max_body_bytes`. An empty body reads as `{}`: the official
/// client sends an empty form-encoded POST for a bare get-or-create.
#[derive(Debug, Clone)]
pub struct JsonBody<T>(pub T);

impl<T: DeserializeOwned> FromRequest<Shared> for JsonBody<T> {
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &Shared) -> Result<Self, ApiError> {
        let limit = state.limits.max_body_bytes;
        let bytes = axum::body::to_bytes(request.into_body(), limit)
            .await
            .map_err(|_| {
                ApiError::too_large(format!("the request body is larger than {limit} bytes"))
            })?;
        let bytes: &[u8] = if bytes.iter().all(u8::is_ascii_whitespace) {
            b"{}"
        } else {
            &bytes
        };
        serde_json::from_slice(bytes)
            .map(JsonBody)
            .map_err(|e| ApiError::input(format!("the request body is not valid: {e}")))
    }
}
