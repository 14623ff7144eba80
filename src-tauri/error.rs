//! The one shape in which errors cross into the page: `{code, message}`.

use serde::ser::SerializeStruct;

/// An error a command returns to the page. `code` is stable and machine-readable; `message`
/// is plain words for a person and never holds a secret.
#[derive(Debug, thiserror::Error)]
pub enum CommandError {
    #[error("{0}")]
    InvalidInput(String),
    #[error("the app could not reach its window: {0}")]
    Bridge(String),
    #[error("{0}")]
    Io(String),
    #[error("{0}")]
    Device(String),
    /// Signing in, a call or watching failed; `code` says how (token_rejected, ...), from
    /// confab-session's one catalogue.
    #[error("{message}")]
    Session { code: &'static str, message: String },
    /// The call's media (screen sharing): `code` from confab-call's errors.
    #[error("{message}")]
    Media { code: &'static str, message: String },
}

impl From<confab_session::SessionError> for CommandError {
    fn from(e: confab_session::SessionError) -> Self {
        CommandError::Session {
            code: e.code(),
            message: e.message,
        }
    }
}

impl CommandError {
    pub fn code(&self) -> &'static str {
        match self {
            CommandError::InvalidInput(_) => "invalid_input",
            CommandError::Bridge(_) => "bridge_failed",
            CommandError::Io(_) => "io_failed",
            CommandError::Device(_) => "device_unavailable",
            CommandError::Session { code, .. } => code,
            CommandError::Media { code, .. } => code,
        }
    }
}

impl serde::Serialize for CommandError {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut s = serializer.serialize_struct("CommandError", 2)?;
        s.serialize_field("code", self.code())?;
        s.serialize_field("message", &self.to_string())?;
        s.end()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serializes_as_code_and_message() {
        let json =
            serde_json::to_value(CommandError::InvalidInput("nonce is empty".into())).unwrap();
        assert_eq!(
            json,
            serde_json::json!({"code": "invalid_input", "message": "nonce is empty"})
        );
    }
}
