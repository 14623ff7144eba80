//! The shared id rules (confab-protocol's `UserId`, `CallId`, `CallType`) applied to what
//! requests send, refused in Stream's error shape. The protocol's parsers trim spaces for
//! people typing into forms; on the wire an id must already be exact, so a padded id is
//! refused here rather than silently changed.

use confab_protocol::{CallId, CallType, UserId, ANONYMOUS_USER_ID};

use crate::error::ApiError;

/// A user id anyone can be created or added with (`!anon` is not one).
pub fn user_id(raw: &str) -> Result<UserId, ApiError> {
    UserId::parse(raw)
        .ok()
        .filter(|id| id.as_str() == raw)
        .ok_or_else(|| {
            ApiError::input(format!(
                "user id {raw:?} is not valid: use 1 to {} letters, digits, '@', '_', '-' or '.'",
                UserId::MAX_LEN
            ))
        })
}

/// A user id, or the anonymous id (tokens for anonymous viewers name it).
pub fn user_id_or_anonymous(raw: &str) -> Result<String, ApiError> {
    if raw == ANONYMOUS_USER_ID {
        return Ok(raw.to_owned());
    }
    user_id(raw).map(UserId::into_string)
}

/// A call type this coordinator knows; others do not exist (code 16), as on Stream.
pub fn call_type(raw: &str) -> Result<CallType, ApiError> {
    CallType::parse(raw)
        .ok()
        .filter(|t| t.as_str() == raw)
        .ok_or_else(|| {
            ApiError::not_found(format!(
                "call type {raw:?} does not exist: use default or livestream"
            ))
        })
}

pub fn call_id(raw: &str) -> Result<CallId, ApiError> {
    CallId::parse(raw)
        .ok()
        .filter(|id| id.as_str() == raw)
        .ok_or_else(|| {
            ApiError::input(format!(
                "a call id is 1 to {} letters, digits, '-' or '_'",
                CallId::MAX_LEN
            ))
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_follow_the_shared_rules_without_trimming() {
        assert!(user_id("alice@x.io").is_ok());
        assert!(user_id(" alice").is_err());
        assert!(user_id(ANONYMOUS_USER_ID).is_err());
        assert!(user_id("bang!").is_err());
        assert_eq!(user_id_or_anonymous("!anon").unwrap(), "!anon");
        assert_eq!(call_type("livestream").unwrap(), CallType::Livestream);
        assert_eq!(call_type(" default").unwrap_err().code.as_i32(), 16);
        assert_eq!(call_id("a b").unwrap_err().code.as_i32(), 4);
        assert!(call_id(&"x".repeat(64)).is_ok());
        assert!(call_id(&"x".repeat(65)).is_err());
    }
}
