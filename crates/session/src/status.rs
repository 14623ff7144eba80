//! The session's status as the window shows it: the connection (status bar), the joined call
//! and the host's broadcast. Published on a watch channel; the connection's changes are also
//! kept in a timeline for the diagnostics export.

use std::time::{SystemTime, UNIX_EPOCH};

use confab_client::{ConnectionState, RosterEntry};
use serde::Serialize;

use crate::errors::disconnect_reason;

/// The status bar's view of the connection.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ConnectionStatus {
    /// idle, connecting, connected, refreshing, reconnecting, offline or disconnected.
    pub state: &'static str,
    pub attempt: Option<u32>,
    pub next_retry_ms: Option<u64>,
    pub reason: Option<String>,
    pub at_unix_ms: u64,
}

impl ConnectionStatus {
    pub fn from_state(state: &ConnectionState) -> Self {
        let at_unix_ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_millis() as u64)
            .unwrap_or_default();
        let (name, attempt, next, reason) = match state {
            ConnectionState::Idle => ("idle", None, None, None),
            ConnectionState::Connecting => ("connecting", None, None, None),
            ConnectionState::Connected { .. } => ("connected", None, None, None),
            ConnectionState::RefreshingToken => (
                "refreshing",
                None,
                None,
                Some("The token expired: getting a new one.".to_owned()),
            ),
            ConnectionState::Reconnecting {
                attempt,
                next_retry_in,
            } => (
                "reconnecting",
                Some(*attempt),
                Some(next_retry_in.as_millis() as u64),
                None,
            ),
            ConnectionState::Offline {
                attempt,
                next_retry_in,
            } => (
                "offline",
                Some(*attempt),
                Some(next_retry_in.as_millis() as u64),
                None,
            ),
            ConnectionState::Disconnected { reason } => {
                ("disconnected", None, None, Some(disconnect_reason(reason)))
            }
            _ => ("unknown", None, None, None),
        };
        Self {
            state: name,
            attempt,
            next_retry_ms: next,
            reason,
            at_unix_ms,
        }
    }

    /// Two statuses the bar shows the same way (the time aside).
    pub fn same_as(&self, other: &ConnectionStatus) -> bool {
        self.state == other.state && self.attempt == other.attempt
    }
}

/// What the call screen shows.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CallView {
    pub cid: String,
    pub call_type: String,
    pub backstage: bool,
    pub participants: Vec<RosterEntry>,
    /// The caller may take this livestream live (or stop it).
    pub can_go_live: bool,
    /// The caller may share a screen (the `screenshare` capability).
    pub can_share_screen: bool,
    pub hls_playlist_url: Option<String>,
}

/// Everything the window shows about the session.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SessionStatus {
    pub connection: ConnectionStatus,
    pub call: Option<CallView>,
    pub broadcast: Option<BroadcastStatus>,
}

/// What the host's screen shows about the livestream's HLS broadcast (local mode). Viewers
/// watch over WebRTC through the SFU either way; HLS is for the crowd beyond its cap.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum BroadcastStatus {
    Live {
        playlist_url: String,
    },
    Stopped,
    /// Live over WebRTC, but the HLS broadcast could not start.
    Failed {
        error: String,
    },
}

impl Default for SessionStatus {
    fn default() -> Self {
        Self {
            connection: ConnectionStatus::from_state(&ConnectionState::Idle),
            call: None,
            broadcast: None,
        }
    }
}
