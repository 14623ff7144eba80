//! A call's state as the coordinator reports it: backstage, egress, the session and its
//! participants, and the answer to get, get-or-create and join.
//!
//! Both sides read these with `#[serde(default)]` on what Stream may leave out, so a response
//! from Stream's service that carries more (settings, recording, ...) still reads.

use std::fmt;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::user::UserResponse;

/// The call object in responses and events.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct CallState {
    #[serde(default)]
    pub cid: String,
    #[serde(default, rename = "type")]
    pub call_type: String,
    #[serde(default)]
    pub id: String,
    #[serde(default)]
    pub backstage: bool,
    #[serde(default)]
    pub created_by: Option<UserResponse>,
    #[serde(default)]
    pub custom: Map<String, Value>,
    #[serde(default)]
    pub egress: Egress,
    #[serde(default)]
    pub session: Option<CallSession>,
    #[serde(default)]
    pub created_at: Option<String>,
    #[serde(default)]
    pub updated_at: Option<String>,
}

impl CallState {
    /// The HLS playlist of a running broadcast.
    pub fn hls_playlist_url(&self) -> Option<&str> {
        self.egress
            .hls
            .as_ref()
            .and_then(|h| h.playlist_url.as_deref())
            .filter(|url| !url.is_empty())
    }

    /// Players watching without joining (anonymous viewers), as the coordinator counts them.
    pub fn anonymous_viewers(&self) -> u64 {
        self.session
            .as_ref()
            .map_or(0, |s| s.anonymous_participant_count)
    }
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Egress {
    #[serde(default)]
    pub broadcasting: bool,
    #[serde(default)]
    pub hls: Option<HlsEgress>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct HlsEgress {
    #[serde(default)]
    pub playlist_url: Option<String>,
    #[serde(default)]
    pub status: Option<String>,
}

/// The running session of a call: who is in it now.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct CallSession {
    #[serde(default)]
    pub id: String,
    #[serde(default)]
    pub participants: Vec<crate::events::Participant>,
    #[serde(default)]
    pub anonymous_participant_count: u64,
    #[serde(default)]
    pub started_at: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct MemberResponse {
    pub user_id: String,
    #[serde(default)]
    pub user: Option<UserResponse>,
    #[serde(default)]
    pub role: Option<String>,
    #[serde(default)]
    pub custom: Map<String, Value>,
}

/// Where the call's media server is, and the token for it (`join` only). Its `Debug` leaves
/// the token out.
#[derive(Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct CallCredentials {
    #[serde(default)]
    pub server: SfuServer,
    #[serde(default)]
    pub token: String,
    #[serde(default)]
    pub ice_servers: Vec<Value>,
}

impl fmt::Debug for CallCredentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CallCredentials")
            .field("server", &self.server)
            .field("token", &"[redacted]")
            .field("ice_servers", &self.ice_servers.len())
            .finish()
    }
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct SfuServer {
    #[serde(default)]
    pub url: String,
    #[serde(default)]
    pub ws_endpoint: String,
    #[serde(default)]
    pub edge_name: String,
}

/// The answer to get, get-or-create, join, go live and stop live.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct CallResponse {
    pub call: CallState,
    #[serde(default)]
    pub members: Vec<MemberResponse>,
    #[serde(default)]
    pub own_capabilities: Vec<String>,
    #[serde(default)]
    pub created: bool,
    #[serde(default)]
    pub credentials: Option<CallCredentials>,
}

impl CallResponse {
    pub fn cid(&self) -> &str {
        &self.call.cid
    }

    pub fn backstage(&self) -> bool {
        self.call.backstage
    }

    pub fn can(&self, capability: &str) -> bool {
        self.own_capabilities.iter().any(|c| c == capability)
    }

    pub fn hls_playlist_url(&self) -> Option<&str> {
        self.call.hls_playlist_url()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn reads_a_call_with_fields_it_does_not_name() {
        let response: CallResponse = serde_json::from_value(json!({
            "call": {
                "cid": "livestream:x", "type": "livestream", "id": "x", "backstage": false,
                "egress": {"broadcasting": true, "hls": {"playlist_url": "http://h/p.m3u8"}, "rtmps": []},
                "session": {"id": "s", "participants": [], "anonymous_participant_count": 3},
                "settings": {"audio": {}}, "recording": false
            },
            "own_capabilities": ["join-call"],
            "credentials": {"server": {"url": "http://sfu"}, "token": "secret-token", "ice_servers": []}
        }))
        .unwrap();
        assert_eq!(response.hls_playlist_url(), Some("http://h/p.m3u8"));
        assert!(response.call.egress.broadcasting);
        assert_eq!(response.call.anonymous_viewers(), 3);
        assert!(response.can("join-call"));
        assert!(!format!("{response:?}").contains("secret-token"));
    }
}
