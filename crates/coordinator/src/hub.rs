//! Who is connected and who watches which call: routes events to sockets.
//!
//! Each socket task owns its socket; the hub only holds a bounded sender to it. A socket that
//! cannot keep up is told to close (with a code that makes clients reconnect) rather than
//! letting its queue grow without bound.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};

use tokio::sync::{mpsc, Notify};

/// How many outbound messages may wait for one socket before it is dropped as too slow.
pub const OUTBOUND_QUEUE: usize = 256;

/// Close code for sockets the server drops but expects the client to reopen.
pub const CLOSE_RECONNECT: u16 = 4000;

#[derive(Debug, Clone)]
pub enum Outbound {
    Text(String),
    Close {
        code: u16,
        reason: String,
    },
    /// End the connection without a close frame, as a crash or a cut cable would (the
    /// client sees 1006). Used by fault injection.
    Drop,
}

/// The hub's handle on one socket task.
#[derive(Clone)]
pub struct SocketHandle {
    pub tx: mpsc::Sender<Outbound>,
    /// Woken when the socket's queue overflowed: the task closes it for reconnect.
    pub overflowed: Arc<Notify>,
}

struct Connection {
    user_id: String,
    handle: SocketHandle,
    watching: HashSet<String>,
}

#[derive(Default)]
struct Inner {
    connections: HashMap<String, Connection>,
    watchers: HashMap<String, HashSet<String>>,
}

#[derive(Default)]
pub struct Hub {
    inner: Mutex<Inner>,
}

impl Hub {
    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn register(&self, connection_id: &str, user_id: &str, handle: SocketHandle) {
        self.lock().connections.insert(
            connection_id.to_owned(),
            Connection {
                user_id: user_id.to_owned(),
                handle,
                watching: HashSet::new(),
            },
        );
    }

    pub fn unregister(&self, connection_id: &str) {
        let mut inner = self.lock();
        if let Some(conn) = inner.connections.remove(connection_id) {
            for cid in conn.watching {
                if let Some(set) = inner.watchers.get_mut(&cid) {
                    set.remove(connection_id);
                    if set.is_empty() {
                        inner.watchers.remove(&cid);
                    }
                }
            }
        }
    }

    /// The user a connection belongs to, if it is open.
    pub fn connection_user(&self, connection_id: &str) -> Option<String> {
        self.lock()
            .connections
            .get(connection_id)
            .map(|c| c.user_id.clone())
    }

    /// Marks a call as watched by a connection. Only the connection's own user may do so.
    pub fn watch(&self, connection_id: &str, user_id: &str, cid: &str) -> bool {
        let mut inner = self.lock();
        let Some(conn) = inner.connections.get_mut(connection_id) else {
            return false;
        };
        if conn.user_id != user_id {
            return false;
        }
        conn.watching.insert(cid.to_owned());
        inner
            .watchers
            .entry(cid.to_owned())
            .or_default()
            .insert(connection_id.to_owned());
        true
    }

    pub fn connection_count(&self) -> usize {
        self.lock().connections.len()
    }

    /// Sends an event to every connection watching the call and to every connection of the
    /// given users (members who are not watching yet still hear about their calls).
    pub fn send_to_call(&self, cid: &str, also_users: &[String], event: &serde_json::Value) {
        let text = event.to_string();
        let inner = self.lock();
        let mut targets: HashSet<&String> = inner
            .watchers
            .get(cid)
            .map(|s| s.iter().collect())
            .unwrap_or_default();
        if !also_users.is_empty() {
            for (id, conn) in &inner.connections {
                if also_users.contains(&conn.user_id) {
                    targets.insert(id);
                }
            }
        }
        for id in targets {
            if let Some(conn) = inner.connections.get(id) {
                deliver(conn, Outbound::Text(text.clone()));
            }
        }
    }

    /// Sends a message to every socket of one user (or of everyone with `None`).
    pub fn send_to_user(&self, user_id: Option<&str>, message: Outbound) -> usize {
        let inner = self.lock();
        let mut n = 0;
        for conn in inner.connections.values() {
            if user_id.is_none_or(|u| conn.user_id == u) {
                deliver(conn, message.clone());
                n += 1;
            }
        }
        n
    }
}

fn deliver(conn: &Connection, message: Outbound) {
    if let Err(mpsc::error::TrySendError::Full(_)) = conn.handle.tx.try_send(message) {
        // Too slow to keep up: close it so the client reconnects and resyncs.
        tracing::warn!(target: "coordinator", user_id = %conn.user_id, "socket too slow; closing it");
        conn.handle.overflowed.notify_one();
    }
}
