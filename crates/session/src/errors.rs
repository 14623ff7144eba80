//! The one catalogue of what the window tells a person when something fails: a kind (its
//! stable code for the page), plain words, and the coordinator's numeric code underneath.
//!
//! Every screen's errors come from here, so "the token was rejected" reads the same whether it
//! happened at sign-in, on a remembered sign-in or while watching a livestream.

use confab_client::{ApiError, ConnectError, DisconnectReason, TokenLoadError};
use confab_protocol::{ErrorCode, IdError};
use serde::ser::SerializeStruct;

/// What went wrong, as the page tells them apart.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ErrorKind {
    InvalidInput,
    NotSignedIn,
    AlreadySignedIn,
    /// Signing out (or a newer request) stopped this one.
    Cancelled,
    TokenRejected,
    TokenExpired,
    TokenInvalid,
    NotAllowed,
    NotFound,
    Unreachable,
    Refused,
    GuestFailed,
    RequestFailed,
    Device,
}

impl ErrorKind {
    /// Stable and machine-readable: the page and the tests match on it.
    pub const fn code(self) -> &'static str {
        match self {
            ErrorKind::InvalidInput => "invalid_input",
            ErrorKind::NotSignedIn => "not_signed_in",
            ErrorKind::AlreadySignedIn => "already_signed_in",
            ErrorKind::Cancelled => "cancelled",
            ErrorKind::TokenRejected => "token_rejected",
            ErrorKind::TokenExpired => "token_expired",
            ErrorKind::TokenInvalid => "token_invalid",
            ErrorKind::NotAllowed => "not_allowed",
            ErrorKind::NotFound => "not_found",
            ErrorKind::Unreachable => "unreachable",
            ErrorKind::Refused => "refused",
            ErrorKind::GuestFailed => "guest_failed",
            ErrorKind::RequestFailed => "request_failed",
            ErrorKind::Device => "device_unavailable",
        }
    }

    /// A token that can never work again: a remembered sign-in holding it is dropped.
    pub const fn token_is_dead(self) -> bool {
        matches!(
            self,
            ErrorKind::TokenRejected | ErrorKind::TokenExpired | ErrorKind::TokenInvalid
        )
    }
}

/// A failed request, in the words a person reads. Never holds a secret.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct SessionError {
    pub kind: ErrorKind,
    pub message: String,
    /// Stream's numeric code, when the coordinator gave one.
    pub coordinator_code: Option<i32>,
}

/// Who the words are for: the token came from the person (sign-in) or from a host (a call
/// token for watching).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenFrom {
    SignIn,
    Host,
}

impl SessionError {
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        Self {
            kind,
            message: message.into(),
            coordinator_code: None,
        }
    }

    pub fn code(&self) -> &'static str {
        self.kind.code()
    }

    pub fn invalid(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::InvalidInput, message)
    }

    pub fn not_signed_in(what: &str) -> Self {
        Self::new(
            ErrorKind::NotSignedIn,
            format!("Sign in or join as a guest to {what}."),
        )
    }

    pub fn already_signed_in() -> Self {
        Self::new(ErrorKind::AlreadySignedIn, "Sign out first.")
    }

    pub fn cancelled() -> Self {
        Self::new(ErrorKind::Cancelled, "Stopped: you signed out.")
    }

    pub fn device(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Device, message)
    }

    fn with_code(mut self, code: Option<i32>) -> Self {
        self.coordinator_code = code;
        self
    }

    /// The words for a refused token, by Stream's code.
    fn token_refusal(code: ErrorCode, from: TokenFrom) -> Option<(ErrorKind, String)> {
        let ask = match from {
            TokenFrom::SignIn => "Ask for a new one.",
            TokenFrom::Host => "Ask the host for a new one.",
        };
        match code {
            ErrorCode::TokenSignatureInvalid => Some((
                ErrorKind::TokenRejected,
                format!("The token was rejected. {ask}"),
            )),
            ErrorCode::TokenExpired => Some((
                ErrorKind::TokenExpired,
                match from {
                    TokenFrom::SignIn => "The token has expired.".to_owned(),
                    TokenFrom::Host => format!("The token has expired. {ask}"),
                },
            )),
            _ => None,
        }
    }

    /// A connect (sign-in, guest, watching) that failed.
    pub fn from_connect(e: &ConnectError) -> Self {
        let code = e.code();
        let (kind, message) = match e {
            ConnectError::Refused { code, message } => {
                Self::token_refusal(ErrorCode::from_i32(*code), TokenFrom::SignIn).unwrap_or((
                    ErrorKind::Refused,
                    format!("The coordinator refused the connection: {message}"),
                ))
            }
            ConnectError::Network(_) | ConnectError::Timeout(_) => (
                ErrorKind::Unreachable,
                "Could not reach the coordinator. Check the address and try again.".to_owned(),
            ),
            ConnectError::Token(TokenLoadError::Provider { .. }) => (
                ErrorKind::Unreachable,
                format!("Could not get a token: {e}"),
            ),
            ConnectError::Token(t) => (
                ErrorKind::TokenInvalid,
                format!("The token cannot be used: {t}"),
            ),
            ConnectError::Guest(g) => (
                ErrorKind::GuestFailed,
                format!("Could not join as a guest: {g}"),
            ),
            ConnectError::AnotherUserConnected { .. } => {
                (ErrorKind::AlreadySignedIn, "Sign out first.".to_owned())
            }
            ConnectError::Insecure(why) => (
                ErrorKind::InvalidInput,
                format!("This coordinator cannot be used: {why}."),
            ),
        };
        Self::new(kind, message).with_code(code)
    }

    /// A REST request about the call `cid` that failed.
    pub fn from_api(e: &ApiError, cid: &str, from: TokenFrom) -> Self {
        let what = if cid.starts_with("livestream:") {
            "livestream"
        } else {
            "call"
        };
        let code = e.code();
        let (kind, message) = match code.map(ErrorCode::from_i32) {
            Some(ErrorCode::DoesNotExist) => {
                (ErrorKind::NotFound, format!("There is no {what} {cid}."))
            }
            Some(ErrorCode::NotAllowed) => (
                ErrorKind::NotAllowed,
                format!("This token does not let you watch {cid}: it is for another call. Ask the host for a token for {cid}."),
            ),
            Some(c) => Self::token_refusal(c, from)
                .unwrap_or((ErrorKind::RequestFailed, e.to_string())),
            None => match e {
                ApiError::Network(_) => (
                    ErrorKind::Unreachable,
                    "Could not reach the coordinator. Check the address and try again.".to_owned(),
                ),
                _ => (ErrorKind::RequestFailed, e.to_string()),
            },
        };
        Self::new(kind, message).with_code(code)
    }
}

impl From<IdError> for SessionError {
    fn from(e: IdError) -> Self {
        SessionError::invalid(e.to_string())
    }
}

/// Why the connection ended, for the status bar.
pub fn disconnect_reason(reason: &DisconnectReason) -> String {
    match reason {
        DisconnectReason::Manual => "Signed out.".into(),
        DisconnectReason::Refused { code, message } => {
            match SessionError::token_refusal(ErrorCode::from_i32(*code), TokenFrom::SignIn) {
                Some((_, words)) => words,
                None => format!("The coordinator refused the connection: {message}"),
            }
        }
        DisconnectReason::TokenUnavailable(why) => format!("No valid token could be had: {why}"),
    }
}

impl serde::Serialize for SessionError {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut s = serializer.serialize_struct("SessionError", 2)?;
        s.serialize_field("code", self.code())?;
        s.serialize_field("message", &self.message)?;
        s.end()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bad_signature_reads_the_same_everywhere_and_keeps_its_code() {
        let at_sign_in = SessionError::from_connect(&ConnectError::Refused {
            code: 43,
            message: "token signature is invalid".into(),
        });
        assert_eq!(at_sign_in.kind, ErrorKind::TokenRejected);
        assert_eq!(
            at_sign_in.message,
            "The token was rejected. Ask for a new one."
        );
        assert_eq!(at_sign_in.coordinator_code, Some(43));
        assert_eq!(
            disconnect_reason(&DisconnectReason::Refused {
                code: 43,
                message: "x".into()
            }),
            at_sign_in.message
        );
        let watching = SessionError::from_api(
            &ApiError::Coordinator {
                code: 43,
                status: 401,
                message: "x".into(),
                unrecoverable: true,
            },
            "livestream:x",
            TokenFrom::Host,
        );
        assert_eq!(
            watching.message,
            "The token was rejected. Ask the host for a new one."
        );
    }

    #[test]
    fn serializes_as_code_and_message_only() {
        let e = SessionError::from_api(
            &ApiError::Coordinator {
                code: 17,
                status: 403,
                message: "x".into(),
                unrecoverable: true,
            },
            "livestream:launch",
            TokenFrom::Host,
        );
        let json = serde_json::to_value(&e).unwrap();
        assert_eq!(json["code"], "not_allowed");
        assert!(json["message"]
            .as_str()
            .unwrap()
            .contains("livestream:launch"));
        assert_eq!(json.as_object().unwrap().len(), 2);
    }
}
