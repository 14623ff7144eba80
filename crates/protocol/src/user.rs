//! Users as the coordinator describes them.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// A user in responses and events (`me` in `connection.ok`, `created_by`, participants).
/// `custom` is the app's own free-form data, so it stays JSON.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct UserResponse {
    pub id: String,
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub image: Option<String>,
    #[serde(default)]
    pub role: String,
    #[serde(default)]
    pub custom: Map<String, Value>,
}
