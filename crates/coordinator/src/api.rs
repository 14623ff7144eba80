//! The REST endpoints under `/video`, as Stream's clients call them.

use std::sync::Arc;
use std::time::Instant;

use axum::body::Body;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;
use serde_json::{json, Value};

use crate::auth::{anonymous_may_read, authenticate, check_api_key, Caller, CommonQuery};
use crate::error::ApiError;
use crate::faults::FaultCommand;
use crate::hub::Outbound;
use crate::model::{self, CallRole, CallType};
use crate::state::AppState;
use crate::store::{CallRecord, UserDetails};

pub type Shared = Arc<AppState>;

/// A JSON answer with Stream's `duration` field filled in.
pub(crate) fn reply(status: StatusCode, mut body: Value, started: Instant) -> Response {
    body["duration"] = json!(format!("{:.2}ms", started.elapsed().as_secs_f64() * 1000.0));
    (status, Json(body)).into_response()
}

/// Reads a JSON body within the size limit. An empty body is `{}`: the official client sends
/// an empty form-encoded POST for a bare get-or-create.
async fn read_body<T: for<'de> Deserialize<'de>>(
    state: &AppState,
    body: Body,
) -> Result<T, ApiError> {
    let bytes = axum::body::to_bytes(body, state.limits.max_body_bytes)
        .await
        .map_err(|_| {
            ApiError::new(
                crate::error::codes::INPUT,
                StatusCode::PAYLOAD_TOO_LARGE,
                format!(
                    "the request body is larger than {} bytes",
                    state.limits.max_body_bytes
                ),
            )
        })?;
    let bytes: &[u8] = if bytes.iter().all(u8::is_ascii_whitespace) {
        b"{}"
    } else {
        &bytes
    };
    serde_json::from_slice(bytes)
        .map_err(|e| ApiError::input(format!("the request body is not valid: {e}")))
}

fn parse_cid(call_type: &str, id: &str) -> Result<(CallType, String), ApiError> {
    let kind = CallType::parse(call_type).ok_or_else(|| {
        ApiError::not_found(format!(
            "call type {call_type:?} does not exist: use default or livestream"
        ))
    })?;
    let valid = !id.is_empty()
        && id.len() <= 64
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
    if !valid {
        return Err(ApiError::input(
            "a call id is 1 to 64 letters, digits, '-' or '_'",
        ));
    }
    Ok((kind, format!("{call_type}:{id}")))
}

fn user_json_or_stub(state: &AppState, id: &str) -> Result<Value, ApiError> {
    Ok(match state.store.user(id)? {
        Some(user) => model::user_json(&user),
        None => json!({"id": id, "role": "user", "custom": {}, "teams": []}),
    })
}

/// The call as the caller sees it: `{call, members, membership, own_capabilities}`.
pub fn call_view(state: &AppState, caller: &Caller, call: &CallRecord) -> Result<Value, ApiError> {
    let members = state.store.members(&call.cid)?;
    let call_type = CallType::parse(&call.call_type).unwrap_or(CallType::Default);
    let role = model::call_role(caller.user_id(), caller.role(), call, &members);
    let session = state.sessions.get(&call.cid);
    let mut participant_json = Vec::new();
    if let Some(s) = &session {
        for p in &s.participants {
            participant_json.push(json!({
                "user": user_json_or_stub(state, &p.user_id)?,
                "user_session_id": p.user_session_id,
                "role": state.store.user(&p.user_id)?.map(|u| u.role).unwrap_or_default(),
                "joined_at": p.joined_at,
            }));
        }
    }
    let session_view = session.as_ref().map(|s| model::SessionView {
        id: &s.id,
        participants: participant_json,
        started_at: Some(&s.started_at),
    });
    let created_by = user_json_or_stub(state, &call.created_by)?;
    let mut members_json = Vec::new();
    let mut membership = Value::Null;
    for m in &members {
        let mj = model::member_json(m, &user_json_or_stub(state, &m.user_id)?);
        if caller.user_id() == Some(m.user_id.as_str()) {
            membership = mj.clone();
        }
        members_json.push(mj);
    }
    let playlist_url = state.broadcasts.playlist_url(&state.base_url, &call.cid);
    let mut call_json = model::call_json(call, &created_by, session_view, playlist_url.as_deref());
    if call_json["session"].is_object() {
        call_json["session"]["anonymous_participant_count"] =
            json!(state.broadcasts.viewers(&call.cid));
    }
    Ok(json!({
        "call": call_json,
        "members": members_json,
        "membership": membership,
        "own_capabilities": model::own_capabilities(call_type, role),
        "blocked_users": [],
    }))
}

/// The call, or Stream's "does not exist" (code 16).
fn load_call(state: &AppState, cid: &str) -> Result<CallRecord, ApiError> {
    state
        .store
        .call(cid)?
        .ok_or_else(|| ApiError::not_found(format!("call {cid} does not exist")))
}

fn may_read(caller: &Caller, call: &CallRecord) -> Result<(), ApiError> {
    match caller {
        Caller::User { .. } => Ok(()),
        Caller::Anonymous { call_cids } => {
            if anonymous_may_read(call_cids, &call.cid, &call.call_type) {
                Ok(())
            } else if call_cids.is_some() {
                Err(ApiError::not_allowed(format!(
                    "this token does not allow access to call {}: it is limited to other calls",
                    call.cid
                )))
            } else {
                Err(ApiError::not_allowed(
                    "anonymous users without a token may only watch livestream calls",
                ))
            }
        }
    }
}

/// Marks the call as watched by the caller's socket, if the request names one.
fn watch_if_connected(state: &AppState, caller: &Caller, query: &CommonQuery, cid: &str) {
    if let (Some(conn), Some(user)) = (query.connection_id.as_deref(), caller.user_id()) {
        state.hub.watch(conn, user, cid);
    }
}

fn member_ids(state: &AppState, cid: &str) -> Result<Vec<String>, ApiError> {
    Ok(state
        .store
        .members(cid)?
        .into_iter()
        .map(|m| m.user_id)
        .collect())
}

/// Sends a call event to its watchers and members.
pub fn emit_call_event(
    state: &AppState,
    cid: &str,
    event_type: &str,
    mut fields: Value,
) -> Result<(), ApiError> {
    fields["type"] = json!(event_type);
    fields["call_cid"] = json!(cid);
    fields["created_at"] = json!(crate::store::now());
    state
        .hub
        .send_to_call(cid, &member_ids(state, cid)?, &fields);
    Ok(())
}

pub async fn get_call(
    State(state): State<Shared>,
    Path((call_type, id)): Path<(String, String)>,
    RawQuery(raw): RawQuery,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let started = Instant::now();
    let query = CommonQuery::parse(raw.as_deref());
    let caller = authenticate(&state, &headers, &query)?;
    let (_, cid) = parse_cid(&call_type, &id)?;
    let call = load_call(&state, &cid)?;
    may_read(&caller, &call)?;
    watch_if_connected(&state, &caller, &query, &cid);
    Ok(reply(
        StatusCode::OK,
        call_view(&state, &caller, &call)?,
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
    custom: Option<serde_json::Map<String, Value>>,
}

#[derive(Debug, Deserialize)]
pub struct MemberRequest {
    user_id: String,
    #[serde(default)]
    role: Option<String>,
    #[serde(default)]
    custom: Option<serde_json::Map<String, Value>>,
}

fn check_user_id(id: &str) -> Result<(), ApiError> {
    let valid = !id.is_empty()
        && id.len() <= 255
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "@_-.!".contains(c));
    if valid {
        Ok(())
    } else {
        Err(ApiError::input(format!(
            "user id {id:?} is not valid: use 1 to 255 letters, digits, '@', '_', '-', '.' or '!'"
        )))
    }
}

/// Creates the call if it does not exist. Returns the call and whether it was created.
fn get_or_create(
    state: &AppState,
    caller: &Caller,
    kind: CallType,
    call_type: &str,
    id: &str,
    cid: &str,
    data: Option<CallData>,
) -> Result<(CallRecord, bool), ApiError> {
    if let Some(call) = state.store.call(cid)? {
        return Ok((call, false));
    }
    let Some(creator) = caller.user_id() else {
        return Err(ApiError::not_allowed("anonymous users cannot create calls"));
    };
    let data = data.unwrap_or_default();
    let mut members = Vec::with_capacity(data.members.len());
    for m in data.members {
        check_user_id(&m.user_id)?;
        members.push((
            m.user_id,
            m.role.unwrap_or_else(|| "user".into()),
            Value::Object(m.custom.unwrap_or_default()),
        ));
    }
    let now = crate::store::now();
    let call = CallRecord {
        cid: cid.to_owned(),
        call_type: call_type.to_owned(),
        id: id.to_owned(),
        created_by: creator.to_owned(),
        custom: Value::Object(data.custom.unwrap_or_default()),
        backstage: kind.backstage_enabled(),
        created_at: now.clone(),
        updated_at: now,
    };
    let created = state.store.create_call(&call, &members)?;
    // Someone else may have created it between the read and the insert.
    let call = state
        .store
        .call(cid)?
        .ok_or_else(|| ApiError::internal("the call vanished while being created"))?;
    Ok((call, created))
}

fn announce_created(state: &AppState, caller: &Caller, call: &CallRecord) -> Result<(), ApiError> {
    let view = call_view(state, caller, call)?;
    emit_call_event(
        state,
        &call.cid,
        "call.created",
        json!({"call": view["call"], "members": view["members"]}),
    )
}

pub async fn get_or_create_call(
    State(state): State<Shared>,
    Path((call_type, id)): Path<(String, String)>,
    RawQuery(raw): RawQuery,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let started = Instant::now();
    let query = CommonQuery::parse(raw.as_deref());
    let caller = authenticate(&state, &headers, &query)?;
    let (kind, cid) = parse_cid(&call_type, &id)?;
    let body: GetOrCreateBody = read_body(&state, body).await?;
    let (call, created) = get_or_create(&state, &caller, kind, &call_type, &id, &cid, body.data)?;
    may_read(&caller, &call)?;
    watch_if_connected(&state, &caller, &query, &cid);
    if created {
        announce_created(&state, &caller, &call)?;
    }
    let mut view = call_view(&state, &caller, &call)?;
    view["created"] = json!(created);
    let status = if created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok(reply(status, view, started))
}

#[derive(Debug, Default, Deserialize)]
pub struct JoinBody {
    #[serde(default)]
    create: bool,
    #[serde(default)]
    data: Option<CallData>,
}

pub async fn join_call(
    State(state): State<Shared>,
    Path((call_type, id)): Path<(String, String)>,
    RawQuery(raw): RawQuery,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let started = Instant::now();
    let query = CommonQuery::parse(raw.as_deref());
    let caller = authenticate(&state, &headers, &query)?;
    let (kind, cid) = parse_cid(&call_type, &id)?;
    let body: JoinBody = read_body(&state, body).await?;
    let Some(user_id) = caller.user_id().map(str::to_owned) else {
        return Err(ApiError::not_allowed(
            "anonymous users cannot join calls: they may only watch",
        ));
    };
    let (call, created) = if body.create {
        get_or_create(&state, &caller, kind, &call_type, &id, &cid, body.data)?
    } else {
        let call = load_call(&state, &cid)?;
        (call, false)
    };
    let members = state.store.members(&cid)?;
    let role = model::call_role(Some(&user_id), caller.role(), &call, &members);
    if call.backstage && role != CallRole::Host {
        return Err(ApiError::not_allowed(
            "the call is in backstage: only its hosts can join until it goes live",
        ));
    }
    watch_if_connected(&state, &caller, &query, &cid);
    if created {
        announce_created(&state, &caller, &call)?;
    }
    let (session, participant) =
        state
            .sessions
            .join(&cid, &user_id, query.connection_id.as_deref());
    emit_call_event(
        &state,
        &cid,
        "call.session_participant_joined",
        json!({
            "session_id": session.id,
            "participant": {
                "user": user_json_or_stub(&state, &user_id)?,
                "user_session_id": participant.user_session_id,
                "role": caller.role(),
                "joined_at": participant.joined_at,
            },
        }),
    )?;

    let mut view = call_view(&state, &caller, &call)?;
    view["created"] = json!(created);
    // There is no SFU in local mode; the credentials keep the shape clients expect.
    let sfu_token = state
        .signing
        .user_token(&user_id, Some(std::time::Duration::from_secs(3600)));
    view["credentials"] = json!({
        "server": {
            "url": format!("{}/sfu", state.base_url),
            "ws_endpoint": format!("{}/sfu/ws", state.base_url.replacen("http", "ws", 1)),
            "edge_name": "local",
        },
        "token": sfu_token,
        "ice_servers": [],
    });
    view["stats_options"] = json!({"enable_rtc_stats": false, "reporting_interval_ms": 0});
    let status = if created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok(reply(status, view, started))
}

/// Confab's local-mode stand-in for leaving through the SFU: ends the caller's participation.
pub async fn leave_call(
    State(state): State<Shared>,
    Path((call_type, id)): Path<(String, String)>,
    RawQuery(raw): RawQuery,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let started = Instant::now();
    let query = CommonQuery::parse(raw.as_deref());
    let caller = authenticate(&state, &headers, &query)?;
    let (_, cid) = parse_cid(&call_type, &id)?;
    let Some(user_id) = caller.user_id() else {
        return Err(ApiError::not_allowed("anonymous users are never in a call"));
    };
    let session = state.sessions.get(&cid);
    for p in state.sessions.leave(&cid, user_id) {
        announce_left(
            &state,
            &cid,
            session.as_ref().map(|s| s.id.as_str()).unwrap_or(""),
            &p,
        )?;
    }
    Ok(reply(StatusCode::OK, json!({}), started))
}

pub fn announce_left(
    state: &AppState,
    cid: &str,
    session_id: &str,
    p: &crate::sessions::Participant,
) -> Result<(), ApiError> {
    emit_call_event(
        state,
        cid,
        "call.session_participant_left",
        json!({
            "session_id": session_id,
            "participant": {
                "user": user_json_or_stub(state, &p.user_id)?,
                "user_session_id": p.user_session_id,
                "joined_at": p.joined_at,
            },
        }),
    )
}

pub(crate) async fn host_action(
    state: &AppState,
    call_type: &str,
    id: &str,
    raw: Option<&str>,
    headers: &HeaderMap,
    body: Body,
) -> Result<(Caller, CallRecord), ApiError> {
    let query = CommonQuery::parse(raw);
    let caller = authenticate(state, headers, &query)?;
    let (_, cid) = parse_cid(call_type, id)?;
    let _: serde_json::Map<String, Value> = read_body(state, body).await?;
    let call = load_call(state, &cid)?;
    let members = state.store.members(&cid)?;
    if model::call_role(caller.user_id(), caller.role(), &call, &members) != CallRole::Host {
        return Err(ApiError::not_allowed("only the call's hosts can do this"));
    }
    Ok((caller, call))
}

/// Leaves or enters backstage, and tells the watchers.
async fn set_live(
    state: &AppState,
    (call_type, id): (String, String),
    raw: Option<&str>,
    headers: &HeaderMap,
    body: Body,
    live: bool,
) -> Result<Response, ApiError> {
    let started = Instant::now();
    let (caller, call) = host_action(state, &call_type, &id, raw, headers, body).await?;
    state.store.set_backstage(&call.cid, !live)?;
    let call = state.store.call(&call.cid)?.unwrap_or(call);
    let view = call_view(state, &caller, &call)?;
    let (event_type, event) = if live {
        ("call.live_started", json!({"call": view["call"]}))
    } else {
        (
            "call.updated",
            json!({"call": view["call"], "capabilities_by_role": {}}),
        )
    };
    emit_call_event(state, &call.cid, event_type, event)?;
    Ok(reply(
        StatusCode::OK,
        json!({"call": view["call"]}),
        started,
    ))
}

pub async fn go_live(
    State(state): State<Shared>,
    Path(path): Path<(String, String)>,
    RawQuery(raw): RawQuery,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    set_live(&state, path, raw.as_deref(), &headers, body, true).await
}

pub async fn stop_live(
    State(state): State<Shared>,
    Path(path): Path<(String, String)>,
    RawQuery(raw): RawQuery,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    set_live(&state, path, raw.as_deref(), &headers, body, false).await
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
    Path((call_type, id)): Path<(String, String)>,
    RawQuery(raw): RawQuery,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let started = Instant::now();
    let query = CommonQuery::parse(raw.as_deref());
    let caller = authenticate(&state, &headers, &query)?;
    let (_, cid) = parse_cid(&call_type, &id)?;
    let body: UpdateMembersBody = read_body(&state, body).await?;
    let call = load_call(&state, &cid)?;
    let members = state.store.members(&cid)?;
    if model::call_role(caller.user_id(), caller.role(), &call, &members) != CallRole::Host {
        return Err(ApiError::not_allowed(
            "only the call's hosts can change its members",
        ));
    }
    let mut upserts = Vec::new();
    for m in body.update_members {
        check_user_id(&m.user_id)?;
        upserts.push((
            m.user_id,
            m.role.unwrap_or_else(|| "user".into()),
            Value::Object(m.custom.unwrap_or_default()),
        ));
    }
    for id in &body.remove_members {
        check_user_id(id)?;
    }
    let existing: Vec<String> = members.iter().map(|m| m.user_id.clone()).collect();
    // Tell removed members before they stop being members.
    if !body.remove_members.is_empty() {
        let view = call_view(&state, &caller, &call)?;
        emit_call_event(
            &state,
            &cid,
            "call.member_removed",
            json!({"call": view["call"], "members": body.remove_members}),
        )?;
    }
    state
        .store
        .update_members(&cid, &upserts, &body.remove_members)?;
    let view = call_view(&state, &caller, &call)?;
    let (added, updated): (Vec<_>, Vec<_>) = upserts
        .iter()
        .partition(|(id, _, _)| !existing.contains(id));
    let pick = |ids: &[&(String, String, Value)]| -> Vec<Value> {
        view["members"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|m| ids.iter().any(|(id, _, _)| m["user_id"] == json!(id)))
            .cloned()
            .collect()
    };
    if !added.is_empty() {
        emit_call_event(
            &state,
            &cid,
            "call.member_added",
            json!({"call": view["call"], "members": pick(&added)}),
        )?;
    }
    if !updated.is_empty() {
        emit_call_event(
            &state,
            &cid,
            "call.member_updated",
            json!({"call": view["call"], "members": pick(&updated)}),
        )?;
    }
    Ok(reply(StatusCode::OK, json!({}), started))
}

#[derive(Debug, Default, Deserialize)]
pub struct QueryCallsBody {
    #[serde(default)]
    filter_conditions: Option<serde_json::Map<String, Value>>,
    #[serde(default)]
    limit: Option<usize>,
    #[serde(default)]
    watch: bool,
}

/// `POST /calls`: a subset of Stream's filters (`cid` with `$eq`/`$in` or a string, `type`),
/// enough for clients that re-watch their calls after a reconnect.
pub async fn query_calls(
    State(state): State<Shared>,
    RawQuery(raw): RawQuery,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let started = Instant::now();
    let query = CommonQuery::parse(raw.as_deref());
    let caller = authenticate(&state, &headers, &query)?;
    let body: QueryCallsBody = read_body(&state, body).await?;
    let filter = body.filter_conditions.unwrap_or_default();
    let limit = body.limit.unwrap_or(25).min(100);
    let cids: Option<Vec<String>> = match filter.get("cid") {
        None => None,
        Some(Value::String(cid)) => Some(vec![cid.clone()]),
        Some(Value::Object(op)) => {
            let list = op
                .get("$in")
                .or_else(|| op.get("$eq"))
                .ok_or_else(|| ApiError::input("filter on cid supports $eq and $in"))?;
            match list {
                Value::String(s) => Some(vec![s.clone()]),
                Value::Array(items) => Some(
                    items
                        .iter()
                        .map(|v| {
                            v.as_str()
                                .map(str::to_owned)
                                .ok_or_else(|| ApiError::input("cid filter values must be strings"))
                        })
                        .collect::<Result<_, _>>()?,
                ),
                _ => return Err(ApiError::input("cid filter values must be strings")),
            }
        }
        Some(_) => {
            return Err(ApiError::input(
                "filter on cid must be a string or an operator object",
            ))
        }
    };
    let type_filter = filter.get("type").and_then(Value::as_str);
    let mut calls = Vec::new();
    for cid in state.store.calls(cids.as_deref(), limit)? {
        let Some(call) = state.store.call(&cid)? else {
            continue;
        };
        if type_filter.is_some_and(|t| t != call.call_type) || may_read(&caller, &call).is_err() {
            continue;
        }
        if body.watch {
            watch_if_connected(&state, &caller, &query, &cid);
        }
        calls.push(call_view(&state, &caller, &call)?);
    }
    Ok(reply(StatusCode::CREATED, json!({"calls": calls}), started))
}

/// Telemetry: accepted and dropped.
pub async fn call_client_event(
    State(state): State<Shared>,
    RawQuery(raw): RawQuery,
    body: Body,
) -> Result<Response, ApiError> {
    let started = Instant::now();
    check_api_key(&state, &CommonQuery::parse(raw.as_deref()))?;
    let _: Value = read_body(&state, body).await?;
    Ok(reply(StatusCode::CREATED, json!({}), started))
}

pub async fn edges(
    State(state): State<Shared>,
    RawQuery(raw): RawQuery,
) -> Result<Response, ApiError> {
    let started = Instant::now();
    check_api_key(&state, &CommonQuery::parse(raw.as_deref()))?;
    Ok(reply(StatusCode::OK, json!({"edges": []}), started))
}

/// Stream's clients ask a CDN where they are (`x-amz-cf-pop`) before joining. Local mode
/// answers it here, so a client pointed at this URL never leaves the machine.
pub async fn location_hint() -> Response {
    ([("x-amz-cf-pop", "LCL1-P1")], "").into_response()
}

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
    custom: Option<serde_json::Map<String, Value>>,
}

/// `POST /guest`: creates a guest user and a token for it.
pub async fn create_guest(
    State(state): State<Shared>,
    RawQuery(raw): RawQuery,
    body: Body,
) -> Result<Response, ApiError> {
    let started = Instant::now();
    check_api_key(&state, &CommonQuery::parse(raw.as_deref()))?;
    let body: GuestBody = read_body(&state, body).await?;
    let short = || uuid::Uuid::new_v4().simple().to_string()[..8].to_owned();
    let mut id = body
        .user
        .id
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| format!("guest-{}", short()));
    check_user_id(&id)?;
    if id == crate::auth::ANONYMOUS_USER_ID {
        return Err(ApiError::input("!anon is reserved for anonymous users"));
    }
    // A guest never takes over a registered user's id.
    if state.store.user(&id)?.is_some_and(|u| u.role != "guest") {
        id = format!("{id}-{}", short());
    }
    let name = body
        .user
        .name
        .map(|n| n.trim().to_owned())
        .filter(|n| !n.is_empty());
    if name.as_ref().is_some_and(|n| n.chars().count() > 100) {
        return Err(ApiError::input("a guest's name is at most 100 characters"));
    }
    let user = state.store.upsert_user(
        &id,
        &UserDetails {
            name,
            image: body.user.image,
            custom: body.user.custom.map(Value::Object),
        },
        "guest",
    )?;
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
    RawQuery(raw): RawQuery,
) -> Result<Response, ApiError> {
    let started = Instant::now();
    let query = CommonQuery::parse(raw.as_deref());
    let user_id = query
        .user_id
        .clone()
        .filter(|u| !u.is_empty())
        .ok_or_else(|| ApiError::input("user_id is required"))?;
    check_user_id(&user_id)?;
    let ttl = query
        .get("ttl")
        .map(|t| {
            t.parse::<i64>()
                .map_err(|_| ApiError::input("ttl is a number of seconds"))
        })
        .transpose()?
        .unwrap_or(state.limits.issued_token_ttl.as_secs() as i64);
    let now = crate::state::unix_now();
    let token = state.signing.sign(&crate::jwt::Claims {
        user_id: Some(user_id),
        iat: Some(now),
        exp: Some(now + ttl),
        ..Default::default()
    });
    Ok(reply(StatusCode::OK, json!({"token": token}), started))
}

/// The test-only fault switch. Only mounted when fault injection is on.
pub async fn faults(State(state): State<Shared>, body: Body) -> Result<Response, ApiError> {
    let started = Instant::now();
    let command: FaultCommand = read_body(&state, body).await?;
    let affected = apply_fault(&state, &command);
    Ok(reply(
        StatusCode::OK,
        json!({"affected_sockets": affected}),
        started,
    ))
}

pub fn apply_fault(state: &AppState, command: &FaultCommand) -> usize {
    state.faults.apply(command);
    match command {
        FaultCommand::DropSockets { user_id } => {
            state.hub.send_to_user(user_id.as_deref(), Outbound::Drop)
        }
        FaultCommand::ExpireTokens { user_id } => {
            // Sockets learn of it the way Stream tells them: connection.error with code 40.
            let error = ApiError::from(crate::jwt::AuthError::Expired);
            let frame = json!({
                "type": "connection.error",
                "connection_id": "",
                "created_at": crate::store::now(),
                "error": error.body(),
            });
            let n = state
                .hub
                .send_to_user(Some(user_id), Outbound::Text(frame.to_string()));
            state.hub.send_to_user(
                Some(user_id),
                Outbound::Close {
                    code: crate::hub::CLOSE_RECONNECT,
                    reason: "token expired".into(),
                },
            );
            n
        }
        _ => 0,
    }
}

pub async fn not_found(uri: axum::http::Uri) -> ApiError {
    ApiError::not_found(format!("no endpoint at {}", uri.path()))
}
