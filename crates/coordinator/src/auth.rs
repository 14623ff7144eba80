//! Who is calling: Stream's auth headers and query, checked exactly as Stream checks them.
//!
//! `Authorization` carries the raw JWT (no `Bearer`), `stream-auth-type` says `jwt` or
//! `anonymous`, and `api_key` in the query must name this app. The header and query names are
//! the shared protocol's, so the client and this coordinator spell them the same way.

use axum::http::{HeaderMap, StatusCode};
use confab_protocol::wire::{
    AuthType, API_KEY_QUERY, AUTHORIZATION_HEADER, AUTH_TYPE_HEADER, CONNECTION_ID_QUERY,
    USER_ID_QUERY,
};
use confab_protocol::{CallType, ErrorCode, UserId};

use crate::error::ApiError;
use crate::jwt::AuthError;
use crate::state::AppState;

pub use confab_protocol::ANONYMOUS_USER_ID;

/// The query parameters every request carries.
#[derive(Debug, Default, Clone)]
pub struct CommonQuery {
    pub api_key: Option<String>,
    pub user_id: Option<String>,
    pub connection_id: Option<String>,
    pub other: Vec<(String, String)>,
}

impl CommonQuery {
    pub fn parse(raw: Option<&str>) -> Self {
        let mut q = CommonQuery::default();
        for (k, v) in form_urlencoded::parse(raw.unwrap_or("").as_bytes()) {
            match k.as_ref() {
                API_KEY_QUERY => q.api_key = Some(v.into_owned()),
                USER_ID_QUERY => q.user_id = Some(v.into_owned()),
                CONNECTION_ID_QUERY => {
                    q.connection_id = Some(v.into_owned()).filter(|c| !c.is_empty())
                }
                _ => q.other.push((k.into_owned(), v.into_owned())),
            }
        }
        q
    }

    pub fn get(&self, key: &str) -> Option<&str> {
        self.other
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Caller {
    /// A user with a valid token.
    User { id: String, role: String },
    /// `!anon`, with the calls its token limits it to (`None`: no token, livestreams only).
    Anonymous { call_cids: Option<Vec<String>> },
}

impl Caller {
    pub fn user_id(&self) -> Option<&str> {
        match self {
            Caller::User { id, .. } => Some(id),
            Caller::Anonymous { .. } => None,
        }
    }

    pub fn role(&self) -> &str {
        match self {
            Caller::User { role, .. } => role,
            Caller::Anonymous { .. } => "anonymous",
        }
    }
}

/// Checks the api key only: for public endpoints (`/guest`, `/call_client_event`).
pub fn check_api_key(state: &AppState, query: &CommonQuery) -> Result<(), ApiError> {
    match query.api_key.as_deref() {
        Some(key) if key == state.api_key => Ok(()),
        Some(_) => Err(ApiError::unauthenticated(
            "api_key not valid: no app has this key on this coordinator",
        )),
        None => Err(ApiError::unauthenticated(
            "api_key is missing from the query string",
        )),
    }
}

/// Authenticates a request from its headers and query.
pub async fn authenticate(
    state: &AppState,
    headers: &HeaderMap,
    query: &CommonQuery,
) -> Result<Caller, ApiError> {
    check_api_key(state, query)?;
    let auth_type = headers
        .get(AUTH_TYPE_HEADER)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let token = headers
        .get(AUTHORIZATION_HEADER)
        .and_then(|v| v.to_str().ok())
        .filter(|t| !t.is_empty());

    match AuthType::parse(auth_type) {
        Some(AuthType::Jwt) => {
            let token = token.ok_or_else(|| {
                ApiError::unauthenticated(
                    "the Authorization header with the user's token is missing",
                )
            })?;
            let (id, role) = verify_user_token(state, token).await?;
            if query.user_id.as_deref().is_some_and(|q| q != id) {
                return Err(ApiError::new(
                    ErrorCode::Input,
                    StatusCode::UNAUTHORIZED,
                    "the token's user_id does not match user_id in the query",
                ));
            }
            Ok(Caller::User { id, role })
        }
        Some(AuthType::Anonymous) => match token {
            None => Ok(Caller::Anonymous { call_cids: None }),
            Some(token) => {
                let claims = state.signing.verify(token, crate::clock::unix_now())?;
                if state.faults.token_expired(ANONYMOUS_USER_ID, token) {
                    return Err(AuthError::Expired.into());
                }
                // Any user_id is accepted for anonymous access; what limits it is call_cids.
                Ok(Caller::Anonymous {
                    call_cids: Some(claims.call_cids.unwrap_or_default()),
                })
            }
        },
        None if auth_type.is_empty() => Err(ApiError::unauthenticated(
            "the stream-auth-type header is missing",
        )),
        None => Err(ApiError::unauthenticated(format!(
            "stream-auth-type {auth_type:?} is not supported: use jwt or anonymous"
        ))),
    }
}

/// Verifies a user's token and returns the user id and role. Used by REST and the socket.
pub async fn verify_user_token(
    state: &AppState,
    token: &str,
) -> Result<(String, String), ApiError> {
    let claims = state.signing.verify(token, crate::clock::unix_now())?;
    let id = claims
        .user_id
        .filter(|u| !u.is_empty())
        .ok_or_else(|| ApiError::unauthenticated("the token has no user_id claim"))?;
    if state.faults.token_expired(&id, token) {
        return Err(AuthError::Expired.into());
    }
    let stored_role = state.store.user(&id).await?.map(|u| u.role);
    if stored_role.is_none() && UserId::parse(&id).is_ok_and(|u| u.as_str() == id) {
        // The store knows every user that ever authenticated, socket or not, so that no
        // guest can be created with this id later.
        let role = claims.role.as_deref().unwrap_or("user");
        state.store.remember_user(&id, role).await?;
    }
    // A role in a server-signed token wins; otherwise the stored one; new users are "user".
    let role = claims.role.or(stored_role).unwrap_or_else(|| "user".into());
    Ok((id, role))
}

/// Whether an anonymous caller may read a call.
pub fn anonymous_may_read(call_cids: &Option<Vec<String>>, cid: &str, call_type: &str) -> bool {
    match call_cids {
        None => call_type == CallType::Livestream.as_str(),
        Some(cids) => cids.iter().any(|c| c == cid),
    }
}
