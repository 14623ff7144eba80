//! Call types, roles and capabilities, and the JSON shapes Stream's clients read.
//!
//! The JSON is built here rather than by serializing the protocol's `CallState` because
//! Stream's official client needs more than the protocol types name (settings, ingress,
//! `teams`, ...). Its field names match the protocol types; `tests/protocol_types.rs` reads
//! every answer and event back through them.

use serde_json::{json, Value};

use crate::store::{CallRecord, MemberRecord, UserRecord};

/// The call types this coordinator knows (others are refused with a clear error): the shared
/// protocol's, so the app's forms, the client and this coordinator accept the same ones.
pub use confab_protocol::CallType;

/// What a caller is to a call, from which its capabilities follow.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CallRole {
    /// Created the call, is a member with role host/admin, or is an app admin.
    Host,
    /// Any authenticated user, guests included.
    Participant,
    /// `!anon`: may only watch.
    Viewer,
}

pub fn call_role(
    caller_id: Option<&str>,
    caller_role: &str,
    call: &CallRecord,
    members: &[MemberRecord],
) -> CallRole {
    let Some(id) = caller_id else {
        return CallRole::Viewer;
    };
    let member_role = members
        .iter()
        .find(|m| m.user_id == id)
        .map(|m| m.role.as_str());
    if caller_role == "admin"
        || call.created_by == id
        || matches!(member_role, Some("host" | "admin"))
    {
        CallRole::Host
    } else {
        CallRole::Participant
    }
}

pub fn own_capabilities(call_type: CallType, role: CallRole) -> Vec<&'static str> {
    match (call_type, role) {
        (_, CallRole::Viewer) => vec!["read-call"],
        (CallType::Default, CallRole::Host) => vec![
            "create-call",
            "end-call",
            "join-call",
            "read-call",
            "send-audio",
            "send-video",
            "screenshare",
            "update-call",
            "update-call-member",
            "update-call-settings",
        ],
        (CallType::Default, CallRole::Participant) => vec![
            "create-call",
            "join-call",
            "read-call",
            "send-audio",
            "send-video",
            "screenshare",
        ],
        (CallType::Livestream, CallRole::Host) => vec![
            "create-call",
            "end-call",
            "go-live",
            "join-backstage",
            "join-call",
            "read-call",
            "send-audio",
            "send-video",
            "screenshare",
            "update-call",
            "update-call-member",
            "update-call-settings",
        ],
        (CallType::Livestream, CallRole::Participant) => vec!["join-call", "read-call"],
    }
}

pub fn user_json(user: &UserRecord) -> Value {
    let mut v = json!({
        "id": user.id,
        "role": user.role,
        "custom": user.custom,
        "teams": [],
        "language": "",
        "created_at": user.created_at,
        "updated_at": user.updated_at,
    });
    if let Some(name) = &user.name {
        v["name"] = json!(name);
    }
    if let Some(image) = &user.image {
        v["image"] = json!(image);
    }
    v
}

/// `me` in `connection.ok`: the user plus the fields of Stream's OwnUserResponse.
pub fn own_user_json(user: &UserRecord) -> Value {
    let mut v = user_json(user);
    let extra = json!({
        "blocked_user_ids": [],
        "devices": [],
        "last_active": crate::store::now(),
        "total_unread_count": 0,
        "unread_channels": 0,
        "unread_threads": 0,
        "channel_mutes": [],
        "mutes": [],
    });
    if let (Some(obj), Some(extra)) = (v.as_object_mut(), extra.as_object()) {
        obj.extend(extra.clone());
    }
    v
}

/// The `egress` object; HLS fields are filled in when a broadcast runs.
pub fn egress_json(hls_playlist_url: Option<&str>) -> Value {
    json!({
        "broadcasting": hls_playlist_url.is_some(),
        "hls": hls_playlist_url.map(|url| json!({"playlist_url": url, "status": "running"})),
        "rtmps": [],
    })
}

pub struct SessionView<'a> {
    pub id: &'a str,
    pub participants: Vec<Value>,
    pub started_at: Option<&'a str>,
}

pub fn call_json(
    call: &CallRecord,
    created_by: &Value,
    session: Option<SessionView<'_>>,
    hls_playlist_url: Option<&str>,
) -> Value {
    let call_type = CallType::parse(&call.call_type).unwrap_or(CallType::Default);
    let session = session.map(|s| {
        let count = s.participants.len();
        json!({
            "id": s.id,
            "participants": s.participants,
            "participants_count_by_role": {},
            "anonymous_participant_count": 0,
            "accepted_by": {}, "rejected_by": {}, "missed_by": {},
            "started_at": s.started_at,
            "live_started_at": null,
            "count": count,
        })
    });
    json!({
        "type": call.call_type,
        "id": call.id,
        "cid": call.cid,
        "current_session_id": session.as_ref().and_then(|s| s.get("id").cloned()).unwrap_or(json!("")),
        "created_by": created_by,
        "custom": call.custom,
        "backstage": call.backstage,
        "blocked_user_ids": [],
        "recording": false,
        "transcribing": false,
        "captioning": false,
        "created_at": call.created_at,
        "updated_at": call.updated_at,
        "egress": egress_json(hls_playlist_url),
        "ingress": {"rtmp": {"address": ""}},
        "session": session,
        "settings": settings_json(call_type),
    })
}

fn settings_json(call_type: CallType) -> Value {
    let livestream = call_type == CallType::Livestream;
    json!({
        "audio": {
            "access_request_enabled": false,
            "opus_dtx_enabled": true,
            "redundant_coding_enabled": true,
            "mic_default_on": !livestream,
            "speaker_default_on": true,
            "default_device": "speaker",
            "noise_cancellation": {"mode": "disabled"},
        },
        "video": {
            "access_request_enabled": false,
            "enabled": true,
            "camera_default_on": !livestream,
            "camera_facing": "front",
            "target_resolution": {"width": 1280, "height": 720, "bitrate": 1_500_000},
        },
        "screensharing": {
            "access_request_enabled": false,
            "enabled": true,
            "target_resolution": {"width": 1920, "height": 1080, "bitrate": 3_000_000},
        },
        "backstage": {"enabled": call_type.backstage_enabled(), "join_ahead_time_seconds": 0},
        "broadcasting": {"enabled": livestream, "hls": {"enabled": livestream, "quality_tracks": ["720p"]}},
        "recording": {"mode": "disabled", "audio_only": false, "quality": "720p"},
        "transcription": {"mode": "disabled"},
        "ring": {"auto_cancel_timeout_ms": 30000, "incoming_call_timeout_ms": 30000, "missed_call_timeout_ms": 30000},
        "geofencing": {"names": []},
        "thumbnails": {"enabled": false},
        "limits": {"max_participants": null, "max_duration_seconds": null},
    })
}

pub fn member_json(member: &MemberRecord, user: &Value) -> Value {
    json!({
        "user_id": member.user_id,
        "user": user,
        "role": member.role,
        "custom": member.custom,
        "created_at": member.created_at,
        "updated_at": member.updated_at,
    })
}
