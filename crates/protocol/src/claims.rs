//! The claims of a Stream token: what the coordinator signs and checks and the client reads.

use serde::{Deserialize, Serialize};

/// The claims a Stream user or call token carries. Unknown claims are ignored.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role: Option<String>,
    /// Call tokens: the calls (`type:id`) the holder may read or join.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub call_cids: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub iat: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exp: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nbf: Option<i64>,
}

impl Claims {
    /// Whether a token with these claims may read the call `cid`: tokens without `call_cids`
    /// are not limited to calls.
    pub fn allows_call(&self, cid: &str) -> bool {
        self.call_cids
            .as_ref()
            .is_none_or(|cids| cids.iter().any(|c| c == cid))
    }
}
