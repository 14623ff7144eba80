//! Who is in a call right now, kept from the join response and the coordinator's events.
//! Stream's clients learn this from the media server; without one, the coordinator's session
//! events are the source.

use serde::Serialize;
use serde_json::Value;

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

fn entry(participant: &Value) -> Option<RosterEntry> {
    let user = &participant["user"];
    Some(RosterEntry {
        user_id: user["id"].as_str()?.to_owned(),
        name: user["name"]
            .as_str()
            .filter(|n| !n.is_empty())
            .map(str::to_owned),
        role: participant["role"]
            .as_str()
            .or_else(|| user["role"].as_str())
            .map(str::to_owned),
        user_session_id: participant["user_session_id"]
            .as_str()
            .unwrap_or_default()
            .to_owned(),
    })
}

impl Roster {
    /// From a call object (`response.call`), as `join` or `get` return it.
    pub fn from_call(call: &Value) -> Self {
        let participants = call["session"]["participants"]
            .as_array()
            .map(|ps| ps.iter().filter_map(entry).collect())
            .unwrap_or_default();
        Self {
            cid: call["cid"].as_str().unwrap_or_default().to_owned(),
            backstage: call["backstage"].as_bool().unwrap_or(false),
            participants,
        }
    }

    /// Applies one event; returns whether anything changed. Events for other calls and
    /// repeats (a joined session already listed) change nothing.
    pub fn apply(&mut self, event: &Event) -> bool {
        match event {
            Event::ParticipantJoined(e) if e.call_cid == self.cid => {
                let Some(joined) =
                    serde_json::to_value(&e.participant.user)
                        .ok()
                        .and_then(|user| {
                            entry(&serde_json::json!({
                                "user": user,
                                "user_session_id": e.participant.user_session_id,
                            }))
                        })
                else {
                    return false;
                };
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
                match e.call["backstage"].as_bool() {
                    Some(b) if b != self.backstage => {
                        self.backstage = b;
                        true
                    }
                    _ => false,
                }
            }
            _ => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn event(v: Value) -> Event {
        Event::from_frame(v)
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
        let mut roster = Roster::from_call(&json!({
            "cid": "default:a", "backstage": false,
            "session": {"participants": [
                {"user": {"id": "alice", "name": "Alice"}, "user_session_id": "u1", "role": "host"}
            ]}
        }));
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
        let mut roster = Roster::from_call(&json!({"cid": "livestream:x", "backstage": true}));
        let live = event(
            json!({"type": "call.live_started", "call_cid": "livestream:x",
                                "call": {"cid": "livestream:x", "backstage": false}}),
        );
        assert!(roster.apply(&live));
        assert!(!roster.backstage);
        assert!(!roster.apply(&live));
    }
}
