//! Header and query names, and other fixed strings both sides of the wire must agree on.

/// The header that says how `Authorization` is to be read.
pub const AUTH_TYPE_HEADER: &str = "stream-auth-type";
/// Carries the raw JWT, without `Bearer`.
pub const AUTHORIZATION_HEADER: &str = "authorization";
/// The query parameter every request carries.
pub const API_KEY_QUERY: &str = "api_key";
/// Anonymous requests name their user in the query.
pub const USER_ID_QUERY: &str = "user_id";
/// REST requests made on behalf of a socket name it, so the coordinator sends that socket the
/// call's events.
pub const CONNECTION_ID_QUERY: &str = "connection_id";
/// The client's name and version, on the socket URL.
pub const CLIENT_QUERY: &str = "X-Stream-Client";
/// The event socket's path under the base URL.
pub const CONNECT_PATH: &str = "/connect";
/// The HLS playlist's file name in a livestream's broadcast.
pub const HLS_PLAYLIST: &str = "playlist.m3u8";

/// What `stream-auth-type` says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthType {
    Jwt,
    Anonymous,
}

impl AuthType {
    pub const fn as_str(self) -> &'static str {
        match self {
            AuthType::Jwt => "jwt",
            AuthType::Anonymous => "anonymous",
        }
    }

    pub fn parse(value: &str) -> Option<Self> {
        match value {
            "jwt" => Some(AuthType::Jwt),
            "anonymous" => Some(AuthType::Anonymous),
            _ => None,
        }
    }
}
