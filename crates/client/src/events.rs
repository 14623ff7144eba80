//! The coordinator's events, typed, plus the client's own `connection.changed`.

use confab_protocol::EventType;
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
    MemberRemoved(MembersRemovedEvent),
    MemberUpdated(MembersEvent),
    /// Anything else, as it came.
    Other {
        event_type: String,
        raw: Value,
    },
}

pub use confab_protocol::events::{
    CallEvent, MembersEvent, MembersRemovedEvent, Participant, ParticipantEvent,
};

impl Event {
    /// The event's `type` on the wire.
    pub fn event_type(&self) -> &str {
        let known = match self {
            Event::ConnectionChanged { .. } => return "connection.changed",
            Event::Other { event_type, .. } => return event_type,
            Event::HealthCheck { .. } => EventType::HealthCheck,
            Event::CallCreated(_) => EventType::CallCreated,
            Event::CallUpdated(_) => EventType::CallUpdated,
            Event::CallLiveStarted(_) => EventType::CallLiveStarted,
            Event::CallEnded(_) => EventType::CallEnded,
            Event::HlsBroadcastingStarted(_) => EventType::HlsBroadcastingStarted,
            Event::HlsBroadcastingStopped(_) => EventType::HlsBroadcastingStopped,
            Event::ParticipantJoined(_) => EventType::ParticipantJoined,
            Event::ParticipantLeft(_) => EventType::ParticipantLeft,
            Event::MemberAdded(_) => EventType::MemberAdded,
            Event::MemberRemoved(_) => EventType::MemberRemoved,
            Event::MemberUpdated(_) => EventType::MemberUpdated,
        };
        known.as_str()
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
            Event::MemberAdded(e) | Event::MemberUpdated(e) => Some(&e.call_cid),
            Event::MemberRemoved(e) => Some(&e.call_cid),
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
        let parsed = match EventType::parse(&event_type) {
            Some(EventType::HealthCheck) => Some(Event::HealthCheck {
                connection_id: raw
                    .get("connection_id")
                    .and_then(Value::as_str)
                    .unwrap_or("")
                    .to_owned(),
            }),
            Some(EventType::CallCreated) => typed(&raw).map(Event::CallCreated),
            Some(EventType::CallUpdated) => typed(&raw).map(Event::CallUpdated),
            Some(EventType::CallLiveStarted) => typed(&raw).map(Event::CallLiveStarted),
            Some(EventType::CallEnded) => typed(&raw).map(Event::CallEnded),
            Some(EventType::HlsBroadcastingStarted) => {
                typed(&raw).map(Event::HlsBroadcastingStarted)
            }
            Some(EventType::HlsBroadcastingStopped) => {
                typed(&raw).map(Event::HlsBroadcastingStopped)
            }
            Some(EventType::ParticipantJoined) => typed(&raw).map(Event::ParticipantJoined),
            Some(EventType::ParticipantLeft) => typed(&raw).map(Event::ParticipantLeft),
            Some(EventType::MemberAdded) => typed(&raw).map(Event::MemberAdded),
            Some(EventType::MemberRemoved) => typed(&raw).map(Event::MemberRemoved),
            Some(EventType::MemberUpdated) => typed(&raw).map(Event::MemberUpdated),
            // connection.ok / connection.error are the handshake's, not events for listeners.
            Some(EventType::ConnectionOk | EventType::ConnectionError) | None => None,
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
