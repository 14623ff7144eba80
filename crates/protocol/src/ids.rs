//! Ids and their rules, one definition for the app's forms, the client and the coordinator.

use std::fmt;

use serde::{Deserialize, Serialize};

/// The user id anonymous clients use, and the coordinator reserves for them.
pub const ANONYMOUS_USER_ID: &str = "!anon";

/// Why an id was refused; the message is plain words for a person.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IdError {
    #[error("A user id is 1 to {max} letters, digits, '@', '_', '-' or '.'.", max = UserId::MAX_LEN)]
    UserId,
    #[error("A call id is 1 to {max} letters, digits, '-' or '_'.", max = CallId::MAX_LEN)]
    CallId,
    #[error("A call is a meeting (default) or a livestream.")]
    CallType,
    #[error("A call is named type:id, such as livestream:launch.")]
    CallCid,
}

/// Declares a checked id: a string that passed `$allowed` (ASCII letters and digits plus the
/// listed characters, 1 to `$max` of them, surrounding spaces dropped), read from JSON through
/// the same check.
macro_rules! checked_id {
    ($(#[$doc:meta])* $name:ident, max $max:expr, extra $extra:pat, $error:expr) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
        #[serde(transparent)]
        pub struct $name(String);

        impl $name {
            pub const MAX_LEN: usize = $max;

            /// Checks an id as typed: surrounding spaces are dropped first.
            pub fn parse(id: &str) -> Result<Self, IdError> {
                let id = id.trim();
                let ok = !id.is_empty()
                    && id.len() <= Self::MAX_LEN
                    && id.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, $extra));
                if ok {
                    Ok(Self(id.to_owned()))
                } else {
                    Err($error)
                }
            }

            pub fn as_str(&self) -> &str {
                &self.0
            }

            pub fn into_string(self) -> String {
                self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let raw = String::deserialize(d)?;
                $name::parse(&raw).map_err(serde::de::Error::custom)
            }
        }
    };
}

checked_id!(
    /// A user id as Stream accepts it: 1 to 255 ASCII letters, digits, `@`, `_`, `-` or `.`.
    /// The anonymous id (`!anon`) is not a user id anyone can sign in or be created with.
    UserId, max 255, extra '@' | '_' | '-' | '.', IdError::UserId
);

checked_id!(
    /// A call id: 1 to 64 ASCII letters, digits, `-` or `_`.
    CallId, max 64, extra '-' | '_', IdError::CallId
);

/// The call types Confab knows: a meeting (`default`) and a livestream.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CallType {
    Default,
    Livestream,
}

impl CallType {
    pub fn parse(name: &str) -> Result<Self, IdError> {
        match name.trim() {
            "default" => Ok(CallType::Default),
            "livestream" => Ok(CallType::Livestream),
            _ => Err(IdError::CallType),
        }
    }

    pub const fn as_str(self) -> &'static str {
        match self {
            CallType::Default => "default",
            CallType::Livestream => "livestream",
        }
    }

    /// Livestreams start in backstage: only hosts can join until someone goes live.
    pub const fn backstage_enabled(self) -> bool {
        matches!(self, CallType::Livestream)
    }
}

impl fmt::Display for CallType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A call's full id, `type:id`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct CallCid {
    pub call_type: CallType,
    pub id: CallId,
}

impl CallCid {
    pub fn new(call_type: CallType, id: CallId) -> Self {
        Self { call_type, id }
    }

    pub fn parse(cid: &str) -> Result<Self, IdError> {
        let (call_type, id) = cid.split_once(':').ok_or(IdError::CallCid)?;
        Ok(Self {
            call_type: CallType::parse(call_type)?,
            id: CallId::parse(id)?,
        })
    }
}

impl fmt::Display for CallCid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.call_type, self.id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_ids_follow_one_rule() {
        assert_eq!(
            UserId::parse(" alice@x.io ").unwrap().as_str(),
            "alice@x.io"
        );
        assert!(UserId::parse(&"a".repeat(255)).is_ok());
        assert_eq!(UserId::parse(&"a".repeat(256)), Err(IdError::UserId));
        assert_eq!(UserId::parse(""), Err(IdError::UserId));
        assert_eq!(UserId::parse("bob smith"), Err(IdError::UserId));
        assert_eq!(UserId::parse(ANONYMOUS_USER_ID), Err(IdError::UserId));
        assert!(serde_json::from_str::<UserId>("\"a/b\"").is_err());
    }

    #[test]
    fn call_ids_types_and_cids() {
        assert!(CallId::parse("launch-2_b").is_ok());
        assert_eq!(CallId::parse("a:b"), Err(IdError::CallId));
        assert_eq!(CallId::parse(&"x".repeat(65)), Err(IdError::CallId));
        assert_eq!(CallType::parse("audio_room"), Err(IdError::CallType));
        let cid = CallCid::parse("livestream:launch").unwrap();
        assert_eq!(cid.call_type, CallType::Livestream);
        assert_eq!(cid.to_string(), "livestream:launch");
        assert_eq!(CallCid::parse("launch"), Err(IdError::CallCid));
    }
}
