//! Users: guests (`POST /guest`) and the development token endpoint (`GET /api/token`).

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use serde::Deserialize;
use serde_json::{json, Map, Value};

use crate::api::reply::{reply, Started};
use crate::auth::ANONYMOUS_USER_ID;
use crate::error::ApiError;
use crate::extract::{check_user_fields, limit_rate, JsonBody, KnownApp, PeerIp, RequestQuery};
use crate::ids;
use crate::jwt::Claims;
use crate::model;
use crate::rate::Action;
use crate::state::Shared;
use crate::store::UserDetails;

#[derive(Debug, Deserialize)]
pub struct GuestBody {
    user: GuestUser,
}

#[derive(Debug, Deserialize)]
pub struct GuestUser {
    #[serde(default)]
    id: Option<String>,
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    image: Option<String>,
    #[serde(default)]
    custom: Option<Map<String, Value>>,
}

/// Tries at a free id for a guest whose requested id is taken.
const GUEST_ID_ATTEMPTS: usize = 4;

/// 64 random bits as hex: a suffix nobody can guess ahead of time and claim first.
fn unguessable_suffix() -> String {
    let mut id = uuid::Uuid::new_v4().simple().to_string();
    id.truncate(16);
    id
}

/// `base-<suffix>`, shortened so the whole id stays within the id rules' length.
fn suffixed(base: &str) -> String {
    let suffix = unguessable_suffix();
    let room = confab_protocol::UserId::MAX_LEN - suffix.len() - 1;
    let mut end = base.len().min(room);
    while !base.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}-{suffix}", &base[..end])
}

/// `POST /guest`: creates a guest user and a token for it. A requested id that is free is
/// kept; one the store knows (a guest, a token user, a member) gets a fresh suffix instead:
/// a guest never receives a token for someone else's id, nor changes their record.
pub async fn create_guest(
    State(state): State<Shared>,
    started: Started,
    _: KnownApp,
    peer: PeerIp,
    JsonBody(body): JsonBody<GuestBody>,
) -> Result<Response, ApiError> {
    limit_rate(&state, Action::CreateGuest, peer, state.limits.guest_rate)?;
    let requested = body.user.id.filter(|s| !s.is_empty());
    if requested.as_deref() == Some(ANONYMOUS_USER_ID) {
        return Err(ApiError::input("!anon is reserved for anonymous users"));
    }
    let base = match &requested {
        Some(id) => ids::user_id(id)?.into_string(),
        None => "guest".to_owned(),
    };
    let name = body
        .user
        .name
        .map(|n| n.trim().to_owned())
        .filter(|n| !n.is_empty());
    check_user_fields(
        name.as_deref(),
        body.user.image.as_deref(),
        body.user.custom.as_ref(),
        state.limits.max_custom_bytes,
    )?;
    let details = UserDetails {
        name,
        image: body.user.image,
        custom: body.user.custom.map(Value::Object),
    };
    let mut user = None;
    for attempt in 0..GUEST_ID_ATTEMPTS {
        let id = if attempt == 0 && requested.is_some() {
            base.clone()
        } else {
            suffixed(&base)
        };
        if let Some(created) = state.store.insert_new_user(&id, &details, "guest").await? {
            user = Some(created);
            break;
        }
    }
    let user = user.ok_or_else(|| ApiError::internal("no free guest id was found; try again"))?;
    let token = state
        .signing
        .user_token(&user.id, Some(state.limits.issued_token_ttl));
    Ok(reply(
        StatusCode::CREATED,
        json!({"access_token": token, "user": model::user_json(&user)}),
        started,
    ))
}

/// `GET /api/token?user_id=`: the development token endpoint for token providers. Only
/// mounted when the coordinator runs with it switched on. Every token it signs expires:
/// `ttl` (seconds) is between 1 s and the coordinator's issued-token lifetime.
pub async fn dev_token(
    State(state): State<Shared>,
    started: Started,
    peer: PeerIp,
    RequestQuery(query): RequestQuery,
) -> Result<Response, ApiError> {
    limit_rate(&state, Action::DevToken, peer, state.limits.dev_token_rate)?;
    let user_id = query
        .user_id
        .as_deref()
        .filter(|u| !u.is_empty())
        .ok_or_else(|| ApiError::input("user_id is required"))?;
    let user_id = ids::user_id_or_anonymous(user_id)?;
    let max_ttl = i64::try_from(state.limits.issued_token_ttl.as_secs()).unwrap_or(i64::MAX);
    let ttl = match query.get("ttl") {
        Some(t) => t
            .parse::<i64>()
            .ok()
            .filter(|t| (1..=max_ttl).contains(t))
            .ok_or_else(|| {
                ApiError::input(format!("ttl is a number of seconds from 1 to {max_ttl}"))
            })?,
        None => max_ttl,
    };
    let now = crate::clock::unix_now();
    let token = state.signing.sign(&Claims {
        user_id: Some(user_id),
        iat: Some(now),
        exp: Some(now.saturating_add(ttl)),
        ..Claims::default()
    });
    Ok(reply(StatusCode::OK, json!({"token": token}), started))
}
