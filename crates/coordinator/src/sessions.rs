//! Who is in each call right now. Kept in memory: a restart ends every session, as it would
//! on Stream when the SFU goes away.

use std::collections::HashMap;
use std::sync::Mutex;

#[derive(Debug, Clone)]
pub struct Participant {
    pub user_id: String,
    pub user_session_id: String,
    pub connection_id: Option<String>,
    pub joined_at: String,
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

    /// Adds a participant (starting a session if none runs). A user who joins again from the
    /// same connection replaces their old entry.
    pub fn join(
        &self,
        cid: &str,
        user_id: &str,
        connection_id: Option<&str>,
    ) -> (CallSession, Participant) {
        let mut map = self.lock();
        let session = map.entry(cid.to_owned()).or_insert_with(|| CallSession {
            id: uuid::Uuid::new_v4().to_string(),
            started_at: crate::store::now(),
            participants: Vec::new(),
        });
        session
            .participants
            .retain(|p| !(p.user_id == user_id && p.connection_id.as_deref() == connection_id));
        let participant = Participant {
            user_id: user_id.to_owned(),
            user_session_id: uuid::Uuid::new_v4().to_string(),
            connection_id: connection_id.map(str::to_owned),
            joined_at: crate::store::now(),
        };
        session.participants.push(participant.clone());
        (session.clone(), participant)
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
