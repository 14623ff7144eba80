//! Users: guests (`POST /guest`) and the development token endpoint (`GET /api/token`).

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use serde::Deserialize;
use serde_json::{json, Map, Value};

use crate::api::reply::{reply, Started};
use crate::auth::ANONYMOUS_USER_ID;
use crate::error::ApiError;
use crate::extract::{JsonBody, KnownApp, RequestQuery};
use crate::ids;
use crate::jwt::Claims;
use crate::model;
use crate::state::Shared;
use crate::store::UserDetails;

/// The longest display name a guest may choose.
const MAX_GUEST_NAME_CHARS: usize = 100;

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

fn short_random() -> String {
    let mut id = uuid::Uuid::new_v4().simple().to_string();
    id.truncate(8);
    id
}

/// `POST /guest`: creates a guest user and a token for it.
pub async fn create_guest(
    State(state): State<Shared>,
    started: Started,
    _: KnownApp,
    JsonBody(body): JsonBody<GuestBody>,
) -> Result<Response, ApiError> {
    let requested = body
        .user
        .id
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| format!("guest-{}", short_random()));
    if requested == ANONYMOUS_USER_ID {
        return Err(ApiError::input("!anon is reserved for anonymous users"));
    }
    let mut id = ids::user_id(&requested)?.into_string();
    // A guest never takes over a registered user's id.
    if state
        .store
        .user(&id)
        .await?
        .is_some_and(|u| u.role != "guest")
    {
        id = format!("{id}-{}", short_random());
    }
    let name = body
        .user
        .name
        .map(|n| n.trim().to_owned())
        .filter(|n| !n.is_empty());
    if name
        .as_ref()
        .is_some_and(|n| n.chars().count() > MAX_GUEST_NAME_CHARS)
    {
        return Err(ApiError::input(format!(
            "a guest's name is at most {MAX_GUEST_NAME_CHARS} characters"
        )));
    }
    let user = state
        .store
        .upsert_user(
            &id,
            &UserDetails {
                name,
                image: body.user.image,
                custom: body.user.custom.map(Value::Object),
            },
            "guest",
        )
        .await?;
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
/// mounted when the coordinator runs with it switched on.
pub async fn dev_token(
    State(state): State<Shared>,
    started: Started,
    RequestQuery(query): RequestQuery,
) -> Result<Response, ApiError> {
    let user_id = query
        .user_id
        .as_deref()
        .filter(|u| !u.is_empty())
        .ok_or_else(|| ApiError::input("user_id is required"))?;
    let user_id = ids::user_id_or_anonymous(user_id)?;
    let ttl = match query.get("ttl") {
        Some(t) => t
            .parse::<i64>()
            .map_err(|_| ApiError::input("ttl is a number of seconds"))?,
        None => state.limits.issued_token_ttl.as_secs() as i64,
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
