//! The coordinator's event types and their payloads.

use serde::{Deserialize, Serialize};

use crate::call::{CallState, MemberResponse};
use crate::user::UserResponse;

/// The `type` of each event both sides know.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EventType {
    ConnectionOk,
    ConnectionError,
    HealthCheck,
    CallCreated,
    CallUpdated,
    CallLiveStarted,
    CallEnded,
    HlsBroadcastingStarted,
    HlsBroadcastingStopped,
    ParticipantJoined,
    ParticipantLeft,
    MemberAdded,
    MemberRemoved,
    MemberUpdated,
}

impl EventType {
    pub const ALL: [EventType; 14] = [
        EventType::ConnectionOk,
        EventType::ConnectionError,
        EventType::HealthCheck,
        EventType::CallCreated,
        EventType::CallUpdated,
        EventType::CallLiveStarted,
        EventType::CallEnded,
        EventType::HlsBroadcastingStarted,
        EventType::HlsBroadcastingStopped,
        EventType::ParticipantJoined,
        EventType::ParticipantLeft,
        EventType::MemberAdded,
        EventType::MemberRemoved,
        EventType::MemberUpdated,
    ];

    pub const fn as_str(self) -> &'static str {
        match self {
            EventType::ConnectionOk => "connection.ok",
            EventType::ConnectionError => "connection.error",
            EventType::HealthCheck => "health.check",
            EventType::CallCreated => "call.created",
            EventType::CallUpdated => "call.updated",
            EventType::CallLiveStarted => "call.live_started",
            EventType::CallEnded => "call.ended",
            EventType::HlsBroadcastingStarted => "call.hls_broadcasting_started",
            EventType::HlsBroadcastingStopped => "call.hls_broadcasting_stopped",
            EventType::ParticipantJoined => "call.session_participant_joined",
            EventType::ParticipantLeft => "call.session_participant_left",
            EventType::MemberAdded => "call.member_added",
            EventType::MemberRemoved => "call.member_removed",
            EventType::MemberUpdated => "call.member_updated",
        }
    }

    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|t| t.as_str() == name)
    }
}

/// An event that carries the whole call.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CallEvent {
    pub call_cid: String,
    #[serde(default)]
    pub call: CallState,
    #[serde(default)]
    pub created_at: Option<String>,
}

/// Someone joined or left the call's session.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ParticipantEvent {
    pub call_cid: String,
    #[serde(default)]
    pub session_id: String,
    pub participant: Participant,
}

/// One person in a call's session.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Participant {
    pub user: UserResponse,
    #[serde(default)]
    pub user_session_id: String,
    #[serde(default)]
    pub role: Option<String>,
    #[serde(default)]
    pub joined_at: Option<String>,
}

/// Members added or updated.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MembersEvent {
    pub call_cid: String,
    #[serde(default)]
    pub members: Vec<MemberResponse>,
    #[serde(default)]
    pub call: CallState,
}

/// Members removed: Stream names them by user id.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MembersRemovedEvent {
    pub call_cid: String,
    #[serde(default)]
    pub members: Vec<String>,
    #[serde(default)]
    pub call: CallState,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_event_type_names_itself_back() {
        for t in EventType::ALL {
            assert_eq!(EventType::parse(t.as_str()), Some(t));
        }
        assert_eq!(EventType::parse("call.reaction_new"), None);
    }
}
