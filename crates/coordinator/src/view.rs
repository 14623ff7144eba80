//! The call as a caller sees it, and the checks every call endpoint shares: the call exists,
//! the caller may read it, the caller hosts it. Used by the REST endpoints and by events; it
//! imports no handler.

use std::collections::HashMap;

use serde_json::{json, Value};

use crate::auth::{anonymous_may_read, Caller};
use crate::error::ApiError;
use crate::model::{self, CallRole, CallType};
use crate::state::AppState;
use crate::store::{CallRecord, UserRecord};

/// The stored user, or a stub with its id for users the coordinator has not seen.
pub async fn user_json_or_stub(state: &AppState, id: &str) -> Result<Value, ApiError> {
    Ok(match state.store.user(id).await? {
        Some(user) => model::user_json(&user),
        None => json!({"id": id, "role": "user", "custom": {}, "teams": []}),
    })
}

fn user_or_stub(users: &HashMap<String, UserRecord>, id: &str) -> Value {
    match users.get(id) {
        Some(user) => model::user_json(user),
        None => json!({"id": id, "role": "user", "custom": {}, "teams": []}),
    }
}

/// The call as the caller sees it: `{call, members, membership, own_capabilities}`.
pub async fn call_view(
    state: &AppState,
    caller: &Caller,
    call: &CallRecord,
) -> Result<Value, ApiError> {
    let session = state.sessions.get(&call.cid);
    // Every user the view shows, read with the members in one trip to the store.
    let mut ids = vec![call.created_by.clone()];
    if let Some(s) = &session {
        ids.extend(s.participants.iter().map(|p| p.user_id.clone()));
    }
    let (members, users) = state.store.members_and_users(&call.cid, ids).await?;
    let call_type = CallType::parse(&call.call_type).unwrap_or(CallType::Default);
    let role = model::call_role(caller.user_id(), caller.role(), call, &members);
    let mut participant_json = Vec::new();
    if let Some(s) = &session {
        for p in &s.participants {
            participant_json.push(json!({
                "user": user_or_stub(&users, &p.user_id),
                "user_session_id": p.user_session_id,
                "role": users.get(&p.user_id).map(|u| u.role.clone()).unwrap_or_default(),
                "joined_at": p.joined_at,
            }));
        }
    }
    let session_view = session.as_ref().map(|s| model::SessionView {
        id: &s.id,
        participants: participant_json,
        started_at: Some(&s.started_at),
    });
    let created_by = user_or_stub(&users, &call.created_by);
    let mut members_json = Vec::new();
    let mut membership = Value::Null;
    for m in &members {
        let mj = model::member_json(m, &user_or_stub(&users, &m.user_id));
        if caller.user_id() == Some(m.user_id.as_str()) {
            membership = mj.clone();
        }
        members_json.push(mj);
    }
    let playlist_url = state.broadcasts.playlist_url(&state.base_url, &call.cid);
    let mut call_json = model::call_json(call, &created_by, session_view, playlist_url.as_deref());
    if call_json["session"].is_object() {
        // Anonymous viewers: HLS players and hidden WebRTC viewers together.
        let webrtc = match &state.embedded_sfu {
            Some(sfu) => sfu.audience(&call.cid).await.hidden,
            None => 0,
        };
        call_json["session"]["anonymous_participant_count"] =
            json!(state.broadcasts.viewers(&call.cid) + webrtc);
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
pub async fn load_call(state: &AppState, cid: &str) -> Result<CallRecord, ApiError> {
    state
        .store
        .call(cid)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("call {cid} does not exist")))
}

/// Users read any call; anonymous callers only what their token (or its absence) allows.
pub fn may_read(caller: &Caller, call: &CallRecord) -> Result<(), ApiError> {
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

/// What the caller is to the call, from the stored members.
pub async fn role_in(
    state: &AppState,
    caller: &Caller,
    call: &CallRecord,
) -> Result<CallRole, ApiError> {
    let members = state.store.members(&call.cid).await?;
    Ok(model::call_role(
        caller.user_id(),
        caller.role(),
        call,
        &members,
    ))
}

/// Refuses callers who do not host the call, with `refusal` as the message.
pub async fn require_host(
    state: &AppState,
    caller: &Caller,
    call: &CallRecord,
    refusal: &str,
) -> Result<(), ApiError> {
    if role_in(state, caller, call).await? == CallRole::Host {
        Ok(())
    } else {
        Err(ApiError::not_allowed(refusal))
    }
}
