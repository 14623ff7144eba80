//! Sending a call's events to its watchers and members: the one place that stamps an event
//! with its type, cid and time. REST endpoints and the socket (a participant whose socket
//! closed leaves) both send through here; it imports no handler.

use confab_protocol::EventType;
use serde_json::{json, Value};

use crate::auth::Caller;
use crate::error::ApiError;
use crate::sessions::Participant;
use crate::state::AppState;
use crate::store::CallRecord;
use crate::view::{call_view, user_json_or_stub};

async fn member_ids(state: &AppState, cid: &str) -> Result<Vec<String>, ApiError> {
    Ok(state
        .store
        .members(cid)
        .await?
        .into_iter()
        .map(|m| m.user_id)
        .collect())
}

/// Sends a call event to its watchers and members.
pub async fn emit_call_event(
    state: &AppState,
    cid: &str,
    event_type: EventType,
    mut fields: Value,
) -> Result<(), ApiError> {
    fields["type"] = json!(event_type.as_str());
    fields["call_cid"] = json!(cid);
    fields["created_at"] = json!(crate::store::now());
    state
        .hub
        .send_to_call(cid, &member_ids(state, cid).await?, &fields);
    Ok(())
}

/// `call.created`, with the call and its members as the creator sees them.
pub async fn announce_created(
    state: &AppState,
    caller: &Caller,
    call: &CallRecord,
) -> Result<(), ApiError> {
    let view = call_view(state, caller, call).await?;
    emit_call_event(
        state,
        &call.cid,
        EventType::CallCreated,
        json!({"call": view["call"], "members": view["members"]}),
    )
    .await
}

/// `call.session_participant_joined`.
pub async fn announce_joined(
    state: &AppState,
    cid: &str,
    session_id: &str,
    participant: &Participant,
    role: &str,
) -> Result<(), ApiError> {
    emit_call_event(
        state,
        cid,
        EventType::ParticipantJoined,
        json!({
            "session_id": session_id,
            "participant": {
                "user": user_json_or_stub(state, &participant.user_id).await?,
                "user_session_id": participant.user_session_id,
                "role": role,
                "joined_at": participant.joined_at,
            },
        }),
    )
    .await
}

/// `call.session_participant_left`.
pub async fn announce_left(
    state: &AppState,
    cid: &str,
    session_id: &str,
    participant: &Participant,
) -> Result<(), ApiError> {
    emit_call_event(
        state,
        cid,
        EventType::ParticipantLeft,
        json!({
            "session_id": session_id,
            "participant": {
                "user": user_json_or_stub(state, &participant.user_id).await?,
                "user_session_id": participant.user_session_id,
                "joined_at": participant.joined_at,
            },
        }),
    )
    .await
}
