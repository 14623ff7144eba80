//! Calls: get, get-or-create, join, leave, members, and the query clients re-watch with.

use std::time::Duration;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use confab_protocol::{CallType, EventType};
use confab_sfu::token::{AccessToken, VideoGrant};
use serde::Deserialize;
use serde_json::{json, Map, Value};

use crate::api::reply::{created_or_ok, reply, Started};
use crate::auth::Caller;
use crate::error::ApiError;
use crate::events::{announce_created, announce_joined, announce_left, emit_call_event};
use crate::extract::{check_custom, limit_rate, CallPath, ConnectionId, JsonBody, PeerIp};
use crate::ids;
use crate::model::CallRole;
use crate::rate::Action;
use crate::state::{AppState, Shared};
use crate::store::CallRecord;
use crate::view::{call_view, load_call, may_read, require_host, role_in};

/// Lifetime of the SFU access token `join` hands out.
const SFU_TOKEN_TTL: Duration = Duration::from_secs(3600);
/// `query_calls` answers this many calls unless asked for fewer, and never more than the max.
const DEFAULT_QUERY_LIMIT: usize = 25;
const MAX_QUERY_LIMIT: usize = 100;

/// Marks the call as watched by the caller's socket, if the request names one.
fn watch_if_connected(state: &AppState, caller: &Caller, connection: &ConnectionId, cid: &str) {
    if let (Some(conn), Some(user)) = (connection.0.as_deref(), caller.user_id()) {
        state.hub.watch(conn, user, cid);
    }
}

pub async fn get_call(
    State(state): State<Shared>,
    started: Started,
    caller: Caller,
    path: CallPath,
    connection: ConnectionId,
) -> Result<Response, ApiError> {
    let cid = path.cid();
    let call = load_call(&state, &cid).await?;
    may_read(&caller, &call)?;
    watch_if_connected(&state, &caller, &connection, &cid);
    Ok(reply(
        StatusCode::OK,
        call_view(&state, &caller, &call).await?,
        started,
    ))
}

// Fields this coordinator does not act on (ring, notify, video, members_limit, location,
// e2ee, settings_override, ...) are accepted and ignored, as unknown fields are.
#[derive(Debug, Default, Deserialize)]
pub struct GetOrCreateBody {
    #[serde(default)]
    data: Option<CallData>,
}

#[derive(Debug, Default, Deserialize)]
pub struct CallData {
    #[serde(default)]
    members: Vec<MemberRequest>,
    #[serde(default)]
    custom: Option<Map<String, Value>>,
}

#[derive(Debug, Deserialize)]
pub struct MemberRequest {
    user_id: String,
    #[serde(default)]
    role: Option<String>,
    #[serde(default)]
    custom: Option<Map<String, Value>>,
}

/// A member as the store takes it: user id, role, custom data.
type MemberRow = (String, String, Value);

/// The longest member role; roles are names like `host` or `moderator`.
const MAX_ROLE_LEN: usize = 64;

fn member_role(raw: Option<String>) -> Result<String, ApiError> {
    let role = raw.unwrap_or_else(|| "user".into());
    let valid = !role.is_empty()
        && role.len() <= MAX_ROLE_LEN
        && role
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
    if valid {
        Ok(role)
    } else {
        Err(ApiError::input(format!(
            "a member role is 1 to {MAX_ROLE_LEN} letters, digits, '_' or '-'"
        )))
    }
}

/// Refuses a request that adds or removes more members than one request may.
fn check_request_size(state: &AppState, what: &str, n: usize) -> Result<(), ApiError> {
    let max = state.limits.max_members_per_request;
    if n > max {
        return Err(ApiError::too_large(format!(
            "{n} members {what} in one request: at most {max}"
        )));
    }
    Ok(())
}

fn member_rows(state: &AppState, requests: Vec<MemberRequest>) -> Result<Vec<MemberRow>, ApiError> {
    check_request_size(state, "added or updated", requests.len())?;
    requests
        .into_iter()
        .map(|m| {
            check_custom(
                "a member's",
                m.custom.as_ref(),
                state.limits.max_custom_bytes,
            )?;
            Ok((
                ids::user_id(&m.user_id)?.into_string(),
                member_role(m.role)?,
                Value::Object(m.custom.unwrap_or_default()),
            ))
        })
        .collect()
}

/// Creates the call if it does not exist. Returns the call and whether it was created.
/// Only creating takes from the caller's address's call-creation bucket.
async fn get_or_create(
    state: &AppState,
    caller: &Caller,
    peer: PeerIp,
    path: &CallPath,
    data: Option<CallData>,
) -> Result<(CallRecord, bool), ApiError> {
    let cid = path.cid();
    if let Some(call) = state.store.call(&cid).await? {
        return Ok((call, false));
    }
    let Some(creator) = caller.user_id() else {
        return Err(ApiError::not_allowed("anonymous users cannot create calls"));
    };
    let data = data.unwrap_or_default();
    check_custom(
        "a call's",
        data.custom.as_ref(),
        state.limits.max_custom_bytes,
    )?;
    let members = member_rows(state, data.members)?;
    limit_rate(
        state,
        Action::CreateCall,
        peer,
        state.limits.call_create_rate,
    )?;
    let now = crate::store::now();
    let call = CallRecord {
        cid: cid.clone(),
        call_type: path.call_type().as_str().to_owned(),
        id: path.id().as_str().to_owned(),
        created_by: creator.to_owned(),
        custom: Value::Object(data.custom.unwrap_or_default()),
        backstage: path.call_type().backstage_enabled(),
        created_at: now.clone(),
        updated_at: now,
    };
    let created = state.store.create_call(&call, &members).await?;
    // Someone else may have created it between the read and the insert.
    let call = state
        .store
        .call(&cid)
        .await?
        .ok_or_else(|| ApiError::internal("the call vanished while being created"))?;
    Ok((call, created))
}

pub async fn get_or_create_call(
    State(state): State<Shared>,
    started: Started,
    caller: Caller,
    peer: PeerIp,
    path: CallPath,
    connection: ConnectionId,
    JsonBody(body): JsonBody<GetOrCreateBody>,
) -> Result<Response, ApiError> {
    let (call, created) = get_or_create(&state, &caller, peer, &path, body.data).await?;
    may_read(&caller, &call)?;
    watch_if_connected(&state, &caller, &connection, &call.cid);
    if created {
        announce_created(&state, &caller, &call).await?;
    }
    let mut view = call_view(&state, &caller, &call).await?;
    view["created"] = json!(created);
    Ok(reply(created_or_ok(created), view, started))
}

#[derive(Debug, Default, Deserialize)]
pub struct JoinBody {
    #[serde(default)]
    create: bool,
    #[serde(default)]
    data: Option<CallData>,
}

fn can_publish(own_capabilities: &Value) -> bool {
    own_capabilities
        .as_array()
        .is_some_and(|caps| caps.iter().any(|c| c == "send-audio" || c == "send-video"))
}

/// The SFU track sources the capabilities allow: `send-audio` the microphone, `send-video` the
/// camera, `screenshare` a screen and its sound. The SFU refuses any other.
fn publish_sources(own_capabilities: &Value) -> Vec<String> {
    let caps = own_capabilities.as_array().cloned().unwrap_or_default();
    let has = |name: &str| caps.iter().any(|c| c == name);
    let mut sources = Vec::new();
    if has("send-audio") {
        sources.push("microphone".to_owned());
    }
    if has("send-video") {
        sources.push("camera".to_owned());
    }
    if has("screenshare") {
        sources.push("screen_share".to_owned());
        sources.push("screen_share_audio".to_owned());
    }
    sources
}

/// Whether a viewer of `call` may watch over WebRTC: always in other calls; in a livestream
/// while fewer than the cap watch through the embedded SFU. The others get no media
/// credentials and watch the HLS playlist.
async fn webrtc_seat_free(state: &AppState, call: &CallRecord) -> bool {
    if call.call_type != CallType::Livestream.as_str() {
        return true;
    }
    let Some(sfu) = &state.embedded_sfu else {
        return true;
    };
    let audience = sfu.audience(&call.cid).await;
    audience.viewers() < state.limits.livestream_webrtc_viewers
}

/// Anonymous viewers in the SFU are named with a character no user id has, so they can
/// never be taken for a user.
pub const ANONYMOUS_SFU_PREFIX: &str = "!viewer-";

/// `join` without a user: an anonymous viewer whose call token names this livestream gets
/// subscribe-only, hidden SFU credentials (not a participant, counted as a viewer), or none
/// when the WebRTC seats are taken. Nothing is joined on the coordinator's side.
async fn join_as_anonymous_viewer(
    state: &Shared,
    started: Started,
    caller: &Caller,
    path: &CallPath,
) -> Result<Response, ApiError> {
    let cid = path.cid();
    let scoped =
        matches!(caller, Caller::Anonymous { call_cids: Some(cids) } if cids.contains(&cid));
    if !scoped {
        return Err(ApiError::not_allowed(
            "anonymous viewers join a livestream with a call token for it; without one they may only watch its HLS playlist",
        ));
    }
    let call = load_call(state, &cid).await?;
    if call.call_type != CallType::Livestream.as_str() {
        return Err(ApiError::not_allowed(
            "anonymous users can only watch livestreams",
        ));
    }
    if call.backstage {
        return Err(ApiError::not_allowed(
            "the livestream is in backstage: viewers can join once it goes live",
        ));
    }
    let mut view = call_view(state, caller, &call).await?;
    if webrtc_seat_free(state, &call).await {
        let identity = format!("{ANONYMOUS_SFU_PREFIX}{}", uuid::Uuid::new_v4().simple());
        let token = state.sfu.mint(&AccessToken {
            identity,
            name: "Viewer".to_owned(),
            grant: VideoGrant {
                room: cid.clone(),
                room_join: true,
                can_publish: Some(false),
                can_subscribe: Some(true),
                can_publish_data: Some(false),
                hidden: true,
                ..VideoGrant::default()
            },
            ttl: SFU_TOKEN_TTL,
        });
        view["credentials"] = credentials_json(state, token);
    }
    view["created"] = json!(false);
    view["stats_options"] = json!({"enable_rtc_stats": false, "reporting_interval_ms": 0});
    Ok(reply(StatusCode::OK, view, started))
}

fn credentials_json(state: &AppState, token: String) -> Value {
    json!({
        "server": {
            "url": state.sfu.url,
            "ws_endpoint": state.sfu.ws_endpoint,
            "edge_name": "local",
        },
        "token": token,
        "ice_servers": [],
    })
}

/// The SFU part of a join answer: where the SFU is, and a LiveKit access token for the call's
/// room (named by its cid) under the user's id. The grant follows the caller's capabilities in
/// the call: without `send-audio` or `send-video` (a livestream's viewers) it only subscribes.
async fn sfu_credentials(
    state: &AppState,
    cid: &str,
    user_id: &str,
    own_capabilities: &Value,
) -> Result<Value, ApiError> {
    let can_publish = can_publish(own_capabilities);
    let name = state
        .store
        .user(user_id)
        .await?
        .and_then(|u| u.name)
        .filter(|n| !n.is_empty())
        .unwrap_or_else(|| user_id.to_owned());
    let token = state.sfu.mint(&AccessToken {
        identity: user_id.to_owned(),
        name,
        grant: VideoGrant {
            room: cid.to_owned(),
            room_join: true,
            can_publish: Some(can_publish),
            can_subscribe: Some(true),
            can_publish_data: Some(can_publish),
            can_publish_sources: publish_sources(own_capabilities),
            ..VideoGrant::default()
        },
        ttl: SFU_TOKEN_TTL,
    });
    Ok(credentials_json(state, token))
}

pub async fn join_call(
    State(state): State<Shared>,
    started: Started,
    caller: Caller,
    peer: PeerIp,
    path: CallPath,
    connection: ConnectionId,
    JsonBody(body): JsonBody<JoinBody>,
) -> Result<Response, ApiError> {
    let Some(user_id) = caller.user_id() else {
        return join_as_anonymous_viewer(&state, started, &caller, &path).await;
    };
    // A participant is tied to its socket (it leaves when the socket closes), so the socket
    // must be the caller's own: another user's would let one user end someone else's
    // participation, or appear in a call through their connection.
    if let Some(conn) = connection.0.as_deref() {
        match state.hub.connection_user(conn) {
            Some(owner) if owner == user_id => {}
            Some(_) => {
                return Err(ApiError::not_allowed(
                    "connection_id names another user's socket",
                ))
            }
            None => {
                return Err(ApiError::input(
                    "connection_id does not name an open socket: connect first",
                ))
            }
        }
    }
    let (call, created) = if body.create {
        get_or_create(&state, &caller, peer, &path, body.data).await?
    } else {
        (load_call(&state, &path.cid()).await?, false)
    };
    if call.backstage && role_in(&state, &caller, &call).await? != CallRole::Host {
        return Err(ApiError::not_allowed(
            "the call is in backstage: only its hosts can join until it goes live",
        ));
    }
    watch_if_connected(&state, &caller, &connection, &call.cid);
    if created {
        announce_created(&state, &caller, &call).await?;
    }
    let joined = state
        .sessions
        .join(&call.cid, user_id, connection.0.as_deref());
    // Entries the join replaced have left, so clients drop them.
    for old in &joined.replaced {
        announce_left(&state, &call.cid, &joined.session.id, old).await?;
    }
    announce_joined(
        &state,
        &call.cid,
        &joined.session.id,
        &joined.participant,
        caller.role(),
    )
    .await?;

    let mut view = call_view(&state, &caller, &call).await?;
    view["created"] = json!(created);
    let capabilities = view["own_capabilities"].clone();
    if can_publish(&capabilities) || webrtc_seat_free(&state, &call).await {
        view["credentials"] = sfu_credentials(&state, &call.cid, user_id, &capabilities).await?;
    }
    view["stats_options"] = json!({"enable_rtc_stats": false, "reporting_interval_ms": 0});
    Ok(reply(created_or_ok(created), view, started))
}

/// Confab's local-mode stand-in for leaving through the SFU: ends the caller's participation.
pub async fn leave_call(
    State(state): State<Shared>,
    started: Started,
    caller: Caller,
    path: CallPath,
) -> Result<Response, ApiError> {
    let Some(user_id) = caller.user_id() else {
        return Err(ApiError::not_allowed("anonymous users are never in a call"));
    };
    let cid = path.cid();
    let session_id = state.sessions.get(&cid).map(|s| s.id).unwrap_or_default();
    for participant in state.sessions.leave(&cid, user_id) {
        announce_left(&state, &cid, &session_id, &participant).await?;
    }
    Ok(reply(StatusCode::OK, json!({}), started))
}

#[derive(Debug, Deserialize)]
pub struct UpdateMembersBody {
    #[serde(default)]
    update_members: Vec<MemberRequest>,
    #[serde(default)]
    remove_members: Vec<String>,
}

pub async fn update_members(
    State(state): State<Shared>,
    started: Started,
    caller: Caller,
    path: CallPath,
    JsonBody(body): JsonBody<UpdateMembersBody>,
) -> Result<Response, ApiError> {
    let cid = path.cid();
    let call = load_call(&state, &cid).await?;
    require_host(
        &state,
        &caller,
        &call,
        "only the call's hosts can change its members",
    )
    .await?;
    let upserts = member_rows(&state, body.update_members)?;
    check_request_size(&state, "removed", body.remove_members.len())?;
    for id in &body.remove_members {
        ids::user_id(id)?;
    }
    // Sets, not lists: a call's members times a request's would otherwise be compared pairwise.
    let existing: std::collections::HashSet<String> = state
        .store
        .members(&cid)
        .await?
        .into_iter()
        .map(|m| m.user_id)
        .collect();
    let removed: std::collections::HashSet<&String> = body.remove_members.iter().collect();
    let after = existing
        .iter()
        .chain(upserts.iter().map(|(id, _, _)| id))
        .filter(|id| !removed.contains(id))
        .collect::<std::collections::HashSet<_>>()
        .len();
    let max = state.limits.max_members_per_call;
    if after > max {
        return Err(ApiError::too_large(format!(
            "a call has at most {max} members; this change would make {after}"
        )));
    }
    // Tell removed members before they stop being members.
    if !body.remove_members.is_empty() {
        let view = call_view(&state, &caller, &call).await?;
        emit_call_event(
            &state,
            &cid,
            EventType::MemberRemoved,
            json!({"call": view["call"], "members": body.remove_members}),
        )
        .await?;
    }
    state
        .store
        .update_members(&cid, &upserts, &body.remove_members)
        .await?;
    let view = call_view(&state, &caller, &call).await?;
    let (added, updated): (Vec<&MemberRow>, Vec<&MemberRow>) = upserts
        .iter()
        .partition(|(id, _, _)| !existing.contains(id));
    let members_of = |rows: &[&MemberRow]| -> Vec<Value> {
        view["members"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|m| rows.iter().any(|(id, _, _)| m["user_id"] == json!(id)))
            .cloned()
            .collect()
    };
    for (event_type, rows) in [
        (EventType::MemberAdded, &added),
        (EventType::MemberUpdated, &updated),
    ] {
        if !rows.is_empty() {
            emit_call_event(
                &state,
                &cid,
                event_type,
                json!({"call": view["call"], "members": members_of(rows)}),
            )
            .await?;
        }
    }
    Ok(reply(StatusCode::OK, json!({}), started))
}

#[derive(Debug, Default, Deserialize)]
pub struct QueryCallsBody {
    #[serde(default)]
    filter_conditions: Option<Map<String, Value>>,
    #[serde(default)]
    limit: Option<usize>,
    #[serde(default)]
    watch: bool,
}

/// The cids a `cid` filter names: a string, or `{"$eq": ...}` / `{"$in": [...]}`. `None`
/// when the filter does not name cids.
fn cids_in_filter(filter: &Map<String, Value>) -> Result<Option<Vec<String>>, ApiError> {
    let strings_only = || ApiError::input("cid filter values must be strings");
    match filter.get("cid") {
        None => Ok(None),
        Some(Value::String(cid)) => Ok(Some(vec![cid.clone()])),
        Some(Value::Object(op)) => {
            let list = op
                .get("$in")
                .or_else(|| op.get("$eq"))
                .ok_or_else(|| ApiError::input("filter on cid supports $eq and $in"))?;
            match list {
                Value::String(s) => Ok(Some(vec![s.clone()])),
                Value::Array(items) => items
                    .iter()
                    .map(|v| v.as_str().map(str::to_owned).ok_or_else(strings_only))
                    .collect::<Result<_, _>>()
                    .map(Some),
                _ => Err(strings_only()),
            }
        }
        Some(_) => Err(ApiError::input(
            "filter on cid must be a string or an operator object",
        )),
    }
}

/// `POST /calls`: a subset of Stream's filters (`cid` with `$eq`/`$in` or a string, `type`),
/// enough for clients that re-watch their calls after a reconnect.
pub async fn query_calls(
    State(state): State<Shared>,
    started: Started,
    caller: Caller,
    connection: ConnectionId,
    JsonBody(body): JsonBody<QueryCallsBody>,
) -> Result<Response, ApiError> {
    let filter = body.filter_conditions.unwrap_or_default();
    let limit = body
        .limit
        .unwrap_or(DEFAULT_QUERY_LIMIT)
        .min(MAX_QUERY_LIMIT);
    let cids = cids_in_filter(&filter)?;
    let type_filter = filter.get("type").and_then(Value::as_str);
    let mut calls = Vec::new();
    for cid in state.store.calls(cids.as_deref(), limit).await? {
        let Some(call) = state.store.call(&cid).await? else {
            continue;
        };
        if type_filter.is_some_and(|t| t != call.call_type) || may_read(&caller, &call).is_err() {
            continue;
        }
        if body.watch {
            watch_if_connected(&state, &caller, &connection, &cid);
        }
        calls.push(call_view(&state, &caller, &call).await?);
    }
    Ok(reply(StatusCode::CREATED, json!({"calls": calls}), started))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn publish_sources_follow_the_capabilities() {
        let participant = json!(["join-call", "send-audio", "send-video", "screenshare"]);
        assert_eq!(
            publish_sources(&participant),
            ["microphone", "camera", "screen_share", "screen_share_audio"]
        );
        // A role without screenshare cannot publish a screen through the SFU.
        let no_screen = json!(["join-call", "send-audio", "send-video"]);
        assert_eq!(publish_sources(&no_screen), ["microphone", "camera"]);
        assert!(publish_sources(&json!(["read-call"])).is_empty());
        assert!(!can_publish(&json!(["read-call"])));
    }
}
