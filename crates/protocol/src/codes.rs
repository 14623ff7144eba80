//! Stream's numeric error codes: the ones this protocol's two sides send and act on.
//!
//! Each side keeps the number underneath its own errors; people never see the number alone.

/// A Stream error code, as sent in `{code, message, StatusCode}` bodies and `connection.error`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorCode {
    Internal,
    Authentication,
    Input,
    RateLimited,
    DoesNotExist,
    NotAllowed,
    TokenExpired,
    TokenNotValidYet,
    TokenIssuedInFuture,
    TokenSignatureInvalid,
    /// A code this crate does not name.
    Other(i32),
}

impl ErrorCode {
    pub const fn from_i32(code: i32) -> Self {
        match code {
            -1 => ErrorCode::Internal,
            2 => ErrorCode::Authentication,
            4 => ErrorCode::Input,
            9 => ErrorCode::RateLimited,
            16 => ErrorCode::DoesNotExist,
            17 => ErrorCode::NotAllowed,
            40 => ErrorCode::TokenExpired,
            41 => ErrorCode::TokenNotValidYet,
            42 => ErrorCode::TokenIssuedInFuture,
            43 => ErrorCode::TokenSignatureInvalid,
            other => ErrorCode::Other(other),
        }
    }

    pub const fn as_i32(self) -> i32 {
        match self {
            ErrorCode::Internal => -1,
            ErrorCode::Authentication => 2,
            ErrorCode::Input => 4,
            ErrorCode::RateLimited => 9,
            ErrorCode::DoesNotExist => 16,
            ErrorCode::NotAllowed => 17,
            ErrorCode::TokenExpired => 40,
            ErrorCode::TokenNotValidYet => 41,
            ErrorCode::TokenIssuedInFuture => 42,
            ErrorCode::TokenSignatureInvalid => 43,
            ErrorCode::Other(code) => code,
        }
    }

    /// A refusal that no retry with the same credentials can turn into a success: the token's
    /// signature or the API key is wrong, or the request itself is not allowed. An expired token
    /// is not here: a provider can replace it.
    pub const fn is_terminal_for_connect(self) -> bool {
        matches!(
            self,
            ErrorCode::Authentication
                | ErrorCode::Input
                | ErrorCode::NotAllowed
                | ErrorCode::DoesNotExist
                | ErrorCode::TokenSignatureInvalid
        )
    }
}

impl From<i32> for ErrorCode {
    fn from(code: i32) -> Self {
        ErrorCode::from_i32(code)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_round_trip() {
        for code in [-1, 2, 4, 9, 16, 17, 40, 41, 42, 43, 99] {
            assert_eq!(ErrorCode::from_i32(code).as_i32(), code);
        }
        assert_eq!(ErrorCode::from_i32(43), ErrorCode::TokenSignatureInvalid);
        assert_eq!(ErrorCode::from_i32(99), ErrorCode::Other(99));
    }

    #[test]
    fn an_expired_token_is_not_terminal_but_a_bad_signature_is() {
        assert!(!ErrorCode::TokenExpired.is_terminal_for_connect());
        assert!(ErrorCode::TokenSignatureInvalid.is_terminal_for_connect());
        assert!(!ErrorCode::Internal.is_terminal_for_connect());
    }
}
