//! The coordinator's events, typed, plus the client's own `connection.changed`.

use serde::Deserialize;
use serde_json::Value;

#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum Event {
    /// The client went online (a healthy connection) or offline (unhealthy for a while).
    ConnectionChanged {
        online: bool,
    },
    HealthCheck {
        connection_id: String,
    },
    CallCreated(CallEvent),
    CallUpdated(CallEvent),
    CallLiveStarted(CallEvent),
    CallEnded(CallEvent),
    HlsBroadcastingStarted(CallEvent),
    HlsBroadcastingStopped(CallEvent),
    ParticipantJoined(ParticipantEvent),
    ParticipantLeft(ParticipantEvent),
    MemberAdded(MembersEvent),
    MemberRemoved(MembersEvent),
    MemberUpdated(MembersEvent),
    /// Anything else, as it came.
    Other {
        event_type: String,
        raw: Value,
    },
}

/// An event that carries the whole call.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct CallEvent {
    pub call_cid: String,
    #[serde(default)]
    pub call: Value,
    #[serde(default)]
    pub created_at: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct ParticipantEvent {
    pub call_cid: String,
    #[serde(default)]
    pub session_id: String,
    pub participant: Participant,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct Participant {
    pub user: crate::user::ConnectedUser,
    #[serde(default)]
    pub user_session_id: String,
    #[serde(default)]
    pub joined_at: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct MembersEvent {
    pub call_cid: String,
    /// Member objects for added/updated, user ids for removed.
    #[serde(default)]
    pub members: Vec<Value>,
    #[serde(default)]
    pub call: Value,
}

impl Event {
    /// The event's `type` on the wire.
    pub fn event_type(&self) -> &str {
        match self {
            Event::ConnectionChanged { .. } => "connection.changed",
            Event::HealthCheck { .. } => "health.check",
            Event::CallCreated(_) => "call.created",
            Event::CallUpdated(_) => "call.updated",
            Event::CallLiveStarted(_) => "call.live_started",
            Event::CallEnded(_) => "call.ended",
            Event::HlsBroadcastingStarted(_) => "call.hls_broadcasting_started",
            Event::HlsBroadcastingStopped(_) => "call.hls_broadcasting_stopped",
            Event::ParticipantJoined(_) => "call.session_participant_joined",
            Event::ParticipantLeft(_) => "call.session_participant_left",
            Event::MemberAdded(_) => "call.member_added",
            Event::MemberRemoved(_) => "call.member_removed",
            Event::MemberUpdated(_) => "call.member_updated",
            Event::Other { event_type, .. } => event_type,
        }
    }

    /// The call an event is about, if any.
    pub fn call_cid(&self) -> Option<&str> {
        match self {
            Event::CallCreated(e)
            | Event::CallUpdated(e)
            | Event::CallLiveStarted(e)
            | Event::CallEnded(e)
            | Event::HlsBroadcastingStarted(e)
            | Event::HlsBroadcastingStopped(e) => Some(&e.call_cid),
            Event::ParticipantJoined(e) | Event::ParticipantLeft(e) => Some(&e.call_cid),
            Event::MemberAdded(e) | Event::MemberRemoved(e) | Event::MemberUpdated(e) => {
                Some(&e.call_cid)
            }
            Event::Other { raw, .. } => raw.get("call_cid").and_then(Value::as_str),
            _ => None,
        }
    }

    /// Types a frame from the socket. A frame of a known type that does not have the known
    /// shape is kept as `Other`, not dropped.
    pub fn from_frame(raw: Value) -> Event {
        let event_type = raw
            .get("type")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_owned();
        fn typed<T: for<'de> Deserialize<'de>>(raw: &Value) -> Option<T> {
            serde_json::from_value(raw.clone()).ok()
        }
        let parsed = match event_type.as_str() {
            "health.check" => Some(Event::HealthCheck {
                connection_id: raw
                    .get("connection_id")
                    .and_then(Value::as_str)
                    .unwrap_or("")
                    .to_owned(),
            }),
            "call.created" => typed(&raw).map(Event::CallCreated),
            "call.updated" => typed(&raw).map(Event::CallUpdated),
            "call.live_started" => typed(&raw).map(Event::CallLiveStarted),
            "call.ended" => typed(&raw).map(Event::CallEnded),
            "call.hls_broadcasting_started" => typed(&raw).map(Event::HlsBroadcastingStarted),
            "call.hls_broadcasting_stopped" => typed(&raw).map(Event::HlsBroadcastingStopped),
            "call.session_participant_joined" => typed(&raw).map(Event::ParticipantJoined),
            "call.session_participant_left" => typed(&raw).map(Event::ParticipantLeft),
            "call.member_added" => typed(&raw).map(Event::MemberAdded),
            "call.member_removed" => typed(&raw).map(Event::MemberRemoved),
            "call.member_updated" => typed(&raw).map(Event::MemberUpdated),
            _ => None,
        };
        parsed.unwrap_or(Event::Other { event_type, raw })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn known_events_are_typed_and_unknown_ones_kept() {
        let joined = Event::from_frame(json!({
            "type": "call.session_participant_joined", "call_cid": "default:x", "session_id": "s",
            "participant": {"user": {"id": "bob", "role": "user"}, "user_session_id": "u"}
        }));
        let Event::ParticipantJoined(e) = &joined else {
            panic!("{joined:?}")
        };
        assert_eq!(e.participant.user.id, "bob");
        assert_eq!(joined.call_cid(), Some("default:x"));

        let other =
            Event::from_frame(json!({"type": "call.reaction_new", "call_cid": "default:x"}));
        assert_eq!(other.event_type(), "call.reaction_new");
        assert_eq!(other.call_cid(), Some("default:x"));

        // A known type with the wrong shape is not lost.
        let odd = Event::from_frame(json!({"type": "call.created"}));
        assert!(matches!(odd, Event::Other { .. }));
    }
}
