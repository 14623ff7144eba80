//! Who is in each call right now. Kept in memory: a restart ends every session, as it would
//! on Stream when the SFU goes away.
//!
//! People come in two ways: the coordinator's join (tied to the socket it names, if any; gone
//! on leave or when that socket closes) and the SFU (gone when the SFU says they left). So that
//! nobody is listed twice, the rule is: **the SFU lists a user in a call only when nothing
//! else lists them there, and then once**. An SFU join for a user the coordinator's join already lists
//! adds nothing; an SFU leave removes only the entry the SFU added; and a coordinator join
//! replaces that user's SFU entry. Joins through the coordinator behave as they always did.

use std::collections::HashMap;
use std::sync::Mutex;

#[derive(Debug, Clone)]
pub struct Participant {
    pub user_id: String,
    pub user_session_id: String,
    pub connection_id: Option<String>,
    /// The SFU's participant sid, for an entry the SFU added (see the module's rule).
    pub sfu_sid: Option<String>,
    pub joined_at: String,
}

/// What a coordinator join did: the session, the new participant, and the entries it
/// replaced (the same user's from the same connection, or from the SFU), which have left.
#[derive(Debug, Clone)]
pub struct Joined {
    pub session: CallSession,
    pub participant: Participant,
    pub replaced: Vec<Participant>,
}

#[derive(Debug, Clone)]
pub struct CallSession {
    pub id: String,
    pub started_at: String,
    pub participants: Vec<Participant>,
}

#[derive(Default)]
pub struct Sessions {
    by_cid: Mutex<HashMap<String, CallSession>>,
}

impl Sessions {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, CallSession>> {
        self.by_cid.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn get(&self, cid: &str) -> Option<CallSession> {
        self.lock().get(cid).cloned()
    }

    /// Adds a participant through the coordinator's join (starting a session if none runs).
    /// A user who joins again from the same connection replaces their old entry, and their
    /// entry from the SFU, if any.
    pub fn join(&self, cid: &str, user_id: &str, connection_id: Option<&str>) -> Joined {
        let mut map = self.lock();
        let session = map.entry(cid.to_owned()).or_insert_with(new_session);
        let (replaced, kept): (Vec<_>, Vec<_>) = session.participants.drain(..).partition(|p| {
            p.user_id == user_id
                && (p.sfu_sid.is_some() || p.connection_id.as_deref() == connection_id)
        });
        session.participants = kept;
        let participant = new_participant(user_id, connection_id, None);
        session.participants.push(participant.clone());
        Joined {
            session: session.clone(),
            participant,
            replaced,
        }
    }

    /// Adds a participant the SFU reports, unless the user is listed in the call already.
    /// Returns the session and the new entry when one was added.
    pub fn join_from_sfu(
        &self,
        cid: &str,
        user_id: &str,
        sfu_sid: &str,
    ) -> Option<(CallSession, Participant)> {
        let mut map = self.lock();
        let session = map.entry(cid.to_owned()).or_insert_with(new_session);
        if session.participants.iter().any(|p| p.user_id == user_id) {
            return None;
        }
        let participant = new_participant(user_id, None, Some(sfu_sid));
        session.participants.push(participant.clone());
        Some((session.clone(), participant))
    }

    /// Removes the entry the SFU added for participant `sfu_sid`, if it is still there.
    /// Returns the session's id and the entry.
    pub fn leave_from_sfu(&self, cid: &str, sfu_sid: &str) -> Option<(String, Participant)> {
        let mut map = self.lock();
        let session = map.get_mut(cid)?;
        let index = session
            .participants
            .iter()
            .position(|p| p.sfu_sid.as_deref() == Some(sfu_sid))?;
        let gone = session.participants.remove(index);
        let session_id = session.id.clone();
        if session.participants.is_empty() {
            map.remove(cid);
        }
        Some((session_id, gone))
    }

    /// Removes a user's participation in one call; returns what was removed.
    pub fn leave(&self, cid: &str, user_id: &str) -> Vec<Participant> {
        let mut map = self.lock();
        let Some(session) = map.get_mut(cid) else {
            return Vec::new();
        };
        let (gone, kept): (Vec<_>, Vec<_>) = session
            .participants
            .drain(..)
            .partition(|p| p.user_id == user_id);
        session.participants = kept;
        if session.participants.is_empty() {
            map.remove(cid);
        }
        gone
    }

    /// Removes every participation made through a connection that closed.
    pub fn leave_connection(&self, connection_id: &str) -> Vec<(String, Participant)> {
        let mut map = self.lock();
        let mut gone = Vec::new();
        for (cid, session) in map.iter_mut() {
            session.participants.retain(|p| {
                if p.connection_id.as_deref() == Some(connection_id) {
                    gone.push((cid.clone(), p.clone()));
                    false
                } else {
                    true
                }
            });
        }
        map.retain(|_, s| !s.participants.is_empty());
        gone
    }
}

fn new_session() -> CallSession {
    CallSession {
        id: uuid::Uuid::new_v4().to_string(),
        started_at: crate::store::now(),
        participants: Vec::new(),
    }
}

fn new_participant(
    user_id: &str,
    connection_id: Option<&str>,
    sfu_sid: Option<&str>,
) -> Participant {
    Participant {
        user_id: user_id.to_owned(),
        user_session_id: uuid::Uuid::new_v4().to_string(),
        connection_id: connection_id.map(str::to_owned),
        sfu_sid: sfu_sid.map(str::to_owned),
        joined_at: crate::store::now(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn listed(sessions: &Sessions, cid: &str) -> Vec<String> {
        sessions
            .get(cid)
            .map(|s| s.participants.into_iter().map(|p| p.user_id).collect())
            .unwrap_or_default()
    }

    #[test]
    fn a_user_who_joined_through_the_coordinator_is_not_added_again_by_the_sfu() {
        let sessions = Sessions::default();
        let joined = sessions.join("default:a", "ada", Some("c1"));
        assert!(joined.replaced.is_empty());
        assert!(sessions.join_from_sfu("default:a", "ada", "PA_1").is_none());
        assert_eq!(listed(&sessions, "default:a"), ["ada"]);
        // The SFU's leave does not end the coordinator's entry; the socket closing does.
        assert!(sessions.leave_from_sfu("default:a", "PA_1").is_none());
        assert_eq!(listed(&sessions, "default:a"), ["ada"]);
        assert_eq!(sessions.leave_connection("c1").len(), 1);
        assert!(sessions.get("default:a").is_none());
    }

    #[test]
    fn the_sfu_lists_users_nothing_else_lists_until_they_leave_it() {
        let sessions = Sessions::default();
        let (session, added) = sessions.join_from_sfu("default:a", "bob", "PA_2").unwrap();
        assert_eq!(session.participants.len(), 1);
        assert_eq!(added.sfu_sid.as_deref(), Some("PA_2"));
        assert!(sessions.join_from_sfu("default:a", "bob", "PA_3").is_none());
        assert!(sessions.leave_from_sfu("default:a", "PA_3").is_none());
        let (session_id, gone) = sessions.leave_from_sfu("default:a", "PA_2").unwrap();
        assert_eq!((session_id, gone.user_id), (session.id, "bob".to_owned()));
        assert!(sessions.get("default:a").is_none());
    }

    #[test]
    fn a_coordinator_join_replaces_the_sfu_entry_and_a_rejoin_its_own() {
        let sessions = Sessions::default();
        sessions.join_from_sfu("default:a", "bob", "PA_2").unwrap();
        let first = sessions.join("default:a", "bob", Some("c1"));
        assert_eq!(first.replaced.len(), 1);
        assert_eq!(first.replaced[0].sfu_sid.as_deref(), Some("PA_2"));
        assert_eq!(listed(&sessions, "default:a"), ["bob"]);
        let again = sessions.join("default:a", "bob", Some("c1"));
        assert_eq!(
            again.replaced[0].user_session_id,
            first.participant.user_session_id
        );
        // Another connection of the same user is another entry, as before.
        let other = sessions.join("default:a", "bob", Some("c2"));
        assert!(other.replaced.is_empty());
        assert_eq!(listed(&sessions, "default:a"), ["bob", "bob"]);
        assert_eq!(sessions.leave("default:a", "bob").len(), 2);
    }
}
