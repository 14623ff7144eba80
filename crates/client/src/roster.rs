//! Who is in a call right now, kept from the join response and the coordinator's events.
//! Stream's clients learn this from the media server; without one, the coordinator's session
//! events are the source.

use confab_protocol::{CallState, Participant};
use serde::Serialize;

use crate::events::Event;

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RosterEntry {
    pub user_id: String,
    pub name: Option<String>,
    pub role: Option<String>,
    /// One user can be in a call from two devices: each is its own session.
    pub user_session_id: String,
}

/// The participants and live state of one call.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Roster {
    pub cid: String,
    pub backstage: bool,
    pub participants: Vec<RosterEntry>,
}

fn entry(participant: &Participant) -> RosterEntry {
    let user = &participant.user;
    RosterEntry {
        user_id: user.id.clone(),
        name: user.name.clone().filter(|n| !n.is_empty()),
        role: participant
            .role
            .clone()
            .or_else(|| Some(user.role.clone()).filter(|r| !r.is_empty())),
        user_session_id: participant.user_session_id.clone(),
    }
}

impl Roster {
    /// From a call object (`response.call`), as `join` or `get` return it.
    pub fn from_call(call: &CallState) -> Self {
        let participants = call
            .session
            .as_ref()
            .map(|s| s.participants.iter().map(entry).collect())
            .unwrap_or_default();
        Self {
            cid: call.cid.clone(),
            backstage: call.backstage,
            participants,
        }
    }

    /// Applies one event; returns whether anything changed. Events for other calls and
    /// repeats (a joined session already listed) change nothing.
    pub fn apply(&mut self, event: &Event) -> bool {
        match event {
            Event::ParticipantJoined(e) if e.call_cid == self.cid => {
                let joined = entry(&e.participant);
                if self
                    .participants
                    .iter()
                    .any(|p| p.user_session_id == joined.user_session_id)
                {
                    return false;
                }
                self.participants.push(joined);
                true
            }
            Event::ParticipantLeft(e) if e.call_cid == self.cid => {
                let before = self.participants.len();
                self.participants
                    .retain(|p| p.user_session_id != e.participant.user_session_id);
                self.participants.len() != before
            }
            Event::CallLiveStarted(e)
            | Event::CallUpdated(e)
            | Event::CallEnded(e)
            | Event::HlsBroadcastingStarted(e)
            | Event::HlsBroadcastingStopped(e)
                if e.call_cid == self.cid =>
            {
                // An event whose call is missing (read as the default) says nothing.
                if e.call.cid.is_empty() || e.call.backstage == self.backstage {
                    return false;
                }
                self.backstage = e.call.backstage;
                true
            }
            _ => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{json, Value};

    fn event(v: Value) -> Event {
        Event::from_frame(v)
    }

    fn call(v: Value) -> CallState {
        serde_json::from_value(v).unwrap()
    }

    fn joined(cid: &str, user: &str, session: &str) -> Event {
        event(json!({
            "type": "call.session_participant_joined",
            "call_cid": cid,
            "session_id": "s1",
            "participant": {"user": {"id": user, "name": user.to_uppercase(), "role": "user"},
                            "user_session_id": session, "role": "user"},
        }))
    }

    #[test]
    fn joins_and_leaves_keep_the_list_and_ignore_other_calls_and_repeats() {
        let mut roster = Roster::from_call(&call(json!({
            "cid": "default:a", "backstage": false,
            "session": {"participants": [
                {"user": {"id": "alice", "name": "Alice"}, "user_session_id": "u1", "role": "host"}
            ]}
        })));
        assert_eq!(roster.participants.len(), 1);
        assert_eq!(roster.participants[0].role.as_deref(), Some("host"));
        assert!(roster.apply(&joined("default:a", "bob", "u2")));
        assert!(!roster.apply(&joined("default:a", "bob", "u2")), "a repeat");
        assert!(!roster.apply(&joined("default:other", "carol", "u3")));
        assert_eq!(
            roster
                .participants
                .iter()
                .map(|p| p.user_id.as_str())
                .collect::<Vec<_>>(),
            ["alice", "bob"]
        );
        let left = event(json!({
            "type": "call.session_participant_left", "call_cid": "default:a", "session_id": "s1",
            "participant": {"user": {"id": "alice"}, "user_session_id": "u1"},
        }));
        assert!(roster.apply(&left));
        assert_eq!(roster.participants.len(), 1);
        assert_eq!(roster.participants[0].name.as_deref(), Some("BOB"));
    }

    #[test]
    fn going_live_clears_backstage() {
        let mut roster =
            Roster::from_call(&call(json!({"cid": "livestream:x", "backstage": true})));
        let live = event(
            json!({"type": "call.live_started", "call_cid": "livestream:x",
                                "call": {"cid": "livestream:x", "backstage": false}}),
        );
        assert!(roster.apply(&live));
        assert!(!roster.backstage);
        assert!(!roster.apply(&live));
    }
}
