//! HS256 tokens as Stream issues and checks them.
//!
//! Written against RFC 7519 directly rather than through a general JWT crate so that every
//! refusal maps to exactly one of Stream's numeric auth codes, and so that no algorithm other
//! than HS256 (`none` included) can ever be accepted.

use std::fmt;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use confab_protocol::ErrorCode;
use hmac::{Hmac, Mac};
use serde::Deserialize;
use sha2::{Digest, Sha256};

/// The claims live in the shared protocol crate; re-exported here so existing paths
/// (`confab_coordinator::jwt::Claims`) keep working.
pub use confab_protocol::Claims;

type HmacSha256 = Hmac<Sha256>;

/// How far ahead of the server's clock an `iat` may be before the token counts as issued in
/// the future. Stream tolerates small skew; so do we.
pub const CLOCK_SKEW_SECS: i64 = 5;

/// An app's API secret. Never printed.
#[derive(Clone)]
pub struct SigningKey(Vec<u8>);

impl SigningKey {
    pub fn new(secret: impl AsRef<[u8]>) -> Self {
        Self(secret.as_ref().to_vec())
    }

    /// Whether `candidate` is this secret, compared without leaking through timing.
    pub fn is_secret(&self, candidate: &[u8]) -> bool {
        let ours = Sha256::digest(&self.0);
        let theirs = Sha256::digest(candidate);
        ours.iter()
            .zip(theirs.iter())
            .fold(0u8, |acc, (a, b)| acc | (a ^ b))
            == 0
    }

    fn mac(&self) -> HmacSha256 {
        // HMAC takes keys of any length; this cannot fail.
        HmacSha256::new_from_slice(&self.0).expect("HMAC accepts any key length")
    }

    /// Signs claims into a compact JWT.
    pub fn sign(&self, claims: &Claims) -> String {
        let header = URL_SAFE_NO_PAD.encode(br#"{"alg":"HS256","typ":"JWT"}"#);
        let payload = URL_SAFE_NO_PAD
            .encode(serde_json::to_vec(claims).expect("claims always serialize to JSON"));
        let signing_input = format!("{header}.{payload}");
        let mut mac = self.mac();
        mac.update(signing_input.as_bytes());
        let signature = URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes());
        format!("{signing_input}.{signature}")
    }

    /// A token for one user, issued now, expiring after `ttl` (never without one): what the
    /// coordinator, the CLI and local mode all hand out.
    pub fn user_token(&self, user_id: &str, ttl: Option<std::time::Duration>) -> String {
        self.sign_issued_now(
            Claims {
                user_id: Some(user_id.to_owned()),
                ..Claims::default()
            },
            ttl,
        )
    }

    /// Signs `claims` as issued now (`iat`), expiring after `ttl` (`exp`, none without one):
    /// user tokens, the CLI's tokens and the app's viewer tokens all go through here.
    pub fn sign_issued_now(&self, claims: Claims, ttl: Option<std::time::Duration>) -> String {
        let now = crate::clock::unix_now();
        let lifetime = |t: std::time::Duration| i64::try_from(t.as_secs()).unwrap_or(i64::MAX);
        self.sign(&Claims {
            iat: Some(now),
            exp: ttl.map(|t| now.saturating_add(lifetime(t))),
            ..claims
        })
    }

    /// Checks the signature, the algorithm and the time claims, and returns the claims.
    /// `now` is seconds since the Unix epoch, passed in so tests control the clock.
    pub fn verify(&self, token: &str, now: i64) -> Result<Claims, AuthError> {
        let mut parts = token.split('.');
        let (Some(header_segment), Some(payload_segment), Some(signature), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(AuthError::Malformed("a JWT has three dot-separated parts"));
        };

        let header: Header = decode_segment(header_segment)?;
        if header.alg != "HS256" {
            return Err(AuthError::UnsupportedAlgorithm(header.alg));
        }

        let signature = URL_SAFE_NO_PAD
            .decode(signature.trim_end_matches('='))
            .map_err(|_| AuthError::SignatureInvalid)?;
        let mut mac = self.mac();
        mac.update(header_segment.as_bytes());
        mac.update(b".");
        mac.update(payload_segment.as_bytes());
        // verify_slice compares in constant time.
        mac.verify_slice(&signature)
            .map_err(|_| AuthError::SignatureInvalid)?;

        let claims: Claims = decode_segment(payload_segment)?;
        if let Some(exp) = claims.exp {
            if now >= exp {
                return Err(AuthError::Expired);
            }
        }
        if let Some(nbf) = claims.nbf {
            if now + CLOCK_SKEW_SECS < nbf {
                return Err(AuthError::NotValidYet);
            }
        }
        if let Some(iat) = claims.iat {
            if now + CLOCK_SKEW_SECS < iat {
                return Err(AuthError::IssuedInFuture);
            }
        }
        Ok(claims)
    }
}

impl fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SigningKey([redacted])")
    }
}

#[derive(Deserialize)]
struct Header {
    alg: String,
}

fn decode_segment<T: for<'de> Deserialize<'de>>(segment: &str) -> Result<T, AuthError> {
    let bytes = URL_SAFE_NO_PAD
        .decode(segment.trim_end_matches('='))
        .map_err(|_| AuthError::Malformed("a segment is not base64url"))?;
    serde_json::from_slice(&bytes).map_err(|_| AuthError::Malformed("a segment is not JSON"))
}

/// Why a token was refused. `code()` is Stream's numeric error code.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    #[error("token is malformed: {0}")]
    Malformed(&'static str),
    #[error("token signing algorithm {0:?} is not allowed: only HS256 is accepted")]
    UnsupportedAlgorithm(String),
    #[error("token has expired")]
    Expired,
    #[error("token is not valid yet")]
    NotValidYet,
    #[error("token was issued in the future: check the clock of the machine that signed it")]
    IssuedInFuture,
    #[error("token signature is invalid")]
    SignatureInvalid,
}

impl AuthError {
    /// Stream's error code: 40 expired, 41 not valid yet, 42 used before issued-at, 43 bad
    /// signature; anything unreadable is also reported as 43, as Stream does.
    pub fn code(&self) -> ErrorCode {
        match self {
            AuthError::Expired => ErrorCode::TokenExpired,
            AuthError::NotValidYet => ErrorCode::TokenNotValidYet,
            AuthError::IssuedInFuture => ErrorCode::TokenIssuedInFuture,
            AuthError::SignatureInvalid
            | AuthError::Malformed(_)
            | AuthError::UnsupportedAlgorithm(_) => ErrorCode::TokenSignatureInvalid,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: i64 = 1_795_830_110;

    fn alice(exp_in: i64) -> Claims {
        Claims {
            user_id: Some("alice".into()),
            iat: Some(NOW),
            exp: Some(NOW + exp_in),
            ..Claims::default()
        }
    }

    #[test]
    fn a_signed_token_verifies_and_returns_its_claims() {
        let key = SigningKey::new("secret");
        let token = key.sign(&alice(3600));
        assert_eq!(key.verify(&token, NOW + 10).unwrap(), alice(3600));
    }

    #[test]
    fn each_refusal_has_streams_code() {
        let key = SigningKey::new("secret");
        let expired = key.sign(&alice(60));
        assert_eq!(
            key.verify(&expired, NOW + 60).unwrap_err().code().as_i32(),
            40
        );

        let not_yet = key.sign(&Claims {
            nbf: Some(NOW + 600),
            ..alice(3600)
        });
        assert_eq!(key.verify(&not_yet, NOW).unwrap_err().code().as_i32(), 41);

        let future = key.sign(&Claims {
            iat: Some(NOW + 600),
            ..alice(3600)
        });
        assert_eq!(key.verify(&future, NOW).unwrap_err().code().as_i32(), 42);

        let other_key = SigningKey::new("another secret");
        assert_eq!(
            other_key.verify(&key.sign(&alice(60)), NOW),
            Err(AuthError::SignatureInvalid)
        );
    }

    #[test]
    fn only_hs256_is_accepted() {
        let key = SigningKey::new("secret");
        let payload = URL_SAFE_NO_PAD.encode(br#"{"user_id":"alice"}"#);
        for alg in ["none", "HS512", "RS256", "hs256"] {
            let header = URL_SAFE_NO_PAD.encode(format!(r#"{{"alg":"{alg}"}}"#));
            let token = format!("{header}.{payload}.");
            assert_eq!(
                key.verify(&token, NOW),
                Err(AuthError::UnsupportedAlgorithm(alg.into())),
                "{alg}"
            );
        }
    }

    #[test]
    fn a_tampered_payload_fails_the_signature() {
        let key = SigningKey::new("secret");
        let token = key.sign(&alice(3600));
        let mut parts: Vec<String> = token.split('.').map(str::to_owned).collect();
        parts[1] = URL_SAFE_NO_PAD.encode(br#"{"user_id":"mallory"}"#);
        assert_eq!(
            key.verify(&parts.join("."), NOW),
            Err(AuthError::SignatureInvalid)
        );
    }

    #[test]
    fn garbage_is_refused_without_panicking() {
        let key = SigningKey::new("secret");
        for junk in ["", ".", "..", "a.b.c", "a.b.c.d", "é.é.é", "e30.e30.%%%"] {
            assert_eq!(
                key.verify(junk, NOW).unwrap_err().code().as_i32(),
                43,
                "{junk:?}"
            );
        }
    }

    #[test]
    fn the_secret_never_prints() {
        let key = SigningKey::new("hunter2-very-secret");
        assert!(!format!("{key:?}").contains("hunter2"));
    }
}
