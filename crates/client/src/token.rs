//! User tokens: a type that never prints its secret, and the checks a client makes before it
//! sends a token anywhere.
//!
//! The client does not verify signatures (only the coordinator holds the secret); it reads the
//! claims to catch a token meant for another user before any network call, and to know when
//! the token expires so it can refresh ahead of time.

use std::fmt;

use base64::engine::general_purpose::{URL_SAFE, URL_SAFE_NO_PAD};
use base64::Engine;

/// A JWT issued for one user. `Debug` and `Display` print `[redacted]` so a token can sit in a
/// struct that gets logged without leaking.
#[derive(Clone, PartialEq, Eq)]
pub struct Token(String);

impl Token {
    pub fn new(raw: impl Into<String>) -> Self {
        Self(raw.into())
    }

    /// The raw JWT, for the `Authorization` header and the socket's auth frame only.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// Reads the claims without verifying the signature.
    pub fn claims(&self) -> Result<TokenClaims, TokenError> {
        TokenClaims::decode(&self.0)
    }
}

impl fmt::Debug for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Token([redacted])")
    }
}

impl fmt::Display for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

/// The claims Stream tokens carry, as the coordinator signs them (confab-protocol).
pub type TokenClaims = confab_protocol::Claims;

/// Why a token was refused before any network call. Messages never include the token.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    #[error("the token is empty")]
    Empty,
    #[error("the token is not a JWT: it has {0} parts instead of 3")]
    WrongPartCount(usize),
    #[error("the token's payload is not valid base64url")]
    PayloadEncoding,
    #[error("the token's payload is not a JSON object of claims")]
    PayloadJson,
    #[error("the token has no user_id claim")]
    MissingUserId,
    #[error("the token was issued for user '{token_user}', not for '{expected}'")]
    UserMismatch {
        token_user: String,
        expected: String,
    },
}

/// What a client reads from a token's claims (it cannot verify the signature).
pub trait ReadClaims: Sized {
    /// Splits a JWT and decodes its payload. Accepts padded and unpadded base64url, and the
    /// standard alphabet too, since some servers emit it.
    fn decode(raw: &str) -> Result<Self, TokenError>;

    /// The check the official client makes at connect: the token names this user. Anonymous
    /// users (`!anon`) accept any non-empty `user_id`.
    fn check_user(&self, user_id: &str) -> Result<(), TokenError>;
}

impl ReadClaims for TokenClaims {
    fn decode(raw: &str) -> Result<Self, TokenError> {
        if raw.is_empty() {
            return Err(TokenError::Empty);
        }
        let parts: Vec<&str> = raw.split('.').collect();
        if parts.len() != 3 {
            return Err(TokenError::WrongPartCount(parts.len()));
        }
        let payload = decode_base64_lenient(parts[1]).ok_or(TokenError::PayloadEncoding)?;
        serde_json::from_slice(&payload).map_err(|_| TokenError::PayloadJson)
    }

    fn check_user(&self, user_id: &str) -> Result<(), TokenError> {
        let token_user = self
            .user_id
            .as_deref()
            .filter(|u| !u.is_empty())
            .ok_or(TokenError::MissingUserId)?;
        if user_id == ANONYMOUS_USER_ID || token_user == user_id {
            Ok(())
        } else {
            Err(TokenError::UserMismatch {
                token_user: token_user.to_owned(),
                expected: user_id.to_owned(),
            })
        }
    }
}

pub use confab_protocol::ANONYMOUS_USER_ID;

fn decode_base64_lenient(segment: &str) -> Option<Vec<u8>> {
    let url_safe: String = segment
        .chars()
        .map(|c| match c {
            '+' => '-',
            '/' => '_',
            c => c,
        })
        .collect();
    URL_SAFE_NO_PAD
        .decode(url_safe.trim_end_matches('='))
        .or_else(|_| URL_SAFE.decode(&url_safe))
        .ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn jwt_with_payload(payload: &str) -> String {
        let header = URL_SAFE_NO_PAD.encode(br#"{"alg":"HS256","typ":"JWT"}"#);
        let body = URL_SAFE_NO_PAD.encode(payload.as_bytes());
        format!("{header}.{body}.c2lnbmF0dXJl")
    }

    #[test]
    fn debug_and_display_never_show_the_token() {
        let raw = jwt_with_payload(r#"{"user_id":"alice"}"#);
        let token = Token::new(raw.clone());
        assert!(!format!("{token:?}").contains(&raw));
        assert!(!format!("{token}").contains(&raw));
        assert_eq!(token.expose(), raw);
    }

    #[test]
    fn decodes_the_claims_of_a_stream_token() {
        let raw = jwt_with_payload(
            r#"{"user_id":"!anon","role":"viewer","call_cids":["livestream:123"],"exp":1795833720,"iat":1795830110}"#,
        );
        let claims = TokenClaims::decode(&raw).unwrap();
        assert_eq!(claims.user_id.as_deref(), Some("!anon"));
        assert_eq!(claims.role.as_deref(), Some("viewer"));
        assert_eq!(claims.call_cids, Some(vec!["livestream:123".to_owned()]));
        assert_eq!(claims.exp, Some(1_795_833_720));
    }

    #[test]
    fn refuses_tokens_that_are_not_jwts() {
        assert_eq!(TokenClaims::decode(""), Err(TokenError::Empty));
        assert_eq!(
            TokenClaims::decode("a.b"),
            Err(TokenError::WrongPartCount(2))
        );
        assert_eq!(
            TokenClaims::decode("a.b.c.d"),
            Err(TokenError::WrongPartCount(4))
        );
        assert_eq!(
            TokenClaims::decode("a.!!!.c"),
            Err(TokenError::PayloadEncoding)
        );
        let not_json = format!("a.{}.c", URL_SAFE_NO_PAD.encode(b"[1,2"));
        assert_eq!(TokenClaims::decode(&not_json), Err(TokenError::PayloadJson));
    }

    #[test]
    fn the_token_must_name_the_user() {
        let claims = TokenClaims::decode(&jwt_with_payload(r#"{"user_id":"alice"}"#)).unwrap();
        assert_eq!(claims.check_user("alice"), Ok(()));
        assert_eq!(
            claims.check_user("bob"),
            Err(TokenError::UserMismatch {
                token_user: "alice".into(),
                expected: "bob".into()
            })
        );
        // Anonymous users take a token for any user id, as the official client does.
        assert_eq!(claims.check_user(ANONYMOUS_USER_ID), Ok(()));

        let no_user = TokenClaims::decode(&jwt_with_payload(r#"{"role":"x"}"#)).unwrap();
        assert_eq!(
            no_user.check_user(ANONYMOUS_USER_ID),
            Err(TokenError::MissingUserId)
        );
    }

    #[test]
    fn accepts_the_standard_base64_alphabet_and_padding() {
        // A payload whose base64 needs '+' / '/' in the standard alphabet and padding.
        let payload = r#"{"user_id":"???>>>"}"#;
        let std = base64::engine::general_purpose::STANDARD.encode(payload);
        assert!(std.contains('/') || std.contains('+') || std.ends_with('='));
        let claims = TokenClaims::decode(&format!("h.{std}.s")).unwrap();
        assert_eq!(claims.user_id.as_deref(), Some("???>>>"));
    }
}
