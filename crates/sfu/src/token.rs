//! LiveKit-style access tokens: HS256 JWTs whose `video` grant names one room (a call cid)
//! and what its holder may do there. The coordinator mints them for joins; the SFU checks
//! them on every signal connection. Written against RFC 7519, HS256 only (`none` and every
//! other algorithm are refused).

use std::fmt;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;

type HmacSha256 = Hmac<Sha256>;

/// Leeway for `exp` and `nbf`, as LiveKit's verifier allows.
const LEEWAY_SECS: u64 = 60;

/// An API secret shared by whoever mints tokens and the SFU. Never printed.
#[derive(Clone)]
pub struct ApiSecret(Vec<u8>);

impl ApiSecret {
    pub fn new(secret: impl AsRef<[u8]>) -> Self {
        Self(secret.as_ref().to_vec())
    }

    fn mac(&self) -> HmacSha256 {
        HmacSha256::new_from_slice(&self.0).expect("HMAC takes keys of any length")
    }
}

impl fmt::Debug for ApiSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ApiSecret([redacted])")
    }
}

/// The `video` claim. Absent booleans follow LiveKit's defaults (see [`VideoGrant::can_publish`]).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct VideoGrant {
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub room: String,
    #[serde(default)]
    pub room_join: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub can_publish: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub can_subscribe: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub can_publish_data: Option<bool>,
    /// Lowercase source names (`camera`, `microphone`, `screen_share`, `screen_share_audio`);
    /// empty means every source.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub can_publish_sources: Vec<String>,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub hidden: bool,
}

impl VideoGrant {
    /// Absent means allowed, as in LiveKit.
    pub fn can_publish(&self) -> bool {
        self.can_publish.unwrap_or(true)
    }
    pub fn can_subscribe(&self) -> bool {
        self.can_subscribe.unwrap_or(true)
    }
    /// Absent follows `can_publish`.
    pub fn can_publish_data(&self) -> bool {
        self.can_publish_data.unwrap_or_else(|| self.can_publish())
    }
    /// Whether a track from `source` (lowercase name) may be published.
    pub fn allows_source(&self, source: &str) -> bool {
        self.can_publish()
            && (self.can_publish_sources.is_empty()
                || self.can_publish_sources.iter().any(|s| s == source))
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccessClaims {
    /// The API key.
    pub iss: String,
    /// The participant's identity (the Confab user id).
    pub sub: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub name: String,
    pub exp: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nbf: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub iat: Option<u64>,
    #[serde(default)]
    pub video: VideoGrant,
}

/// What a join may do, as the coordinator decides it.
#[derive(Debug, Clone)]
pub struct AccessToken {
    pub identity: String,
    pub name: String,
    pub grant: VideoGrant,
    pub ttl: Duration,
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// Signs `token` for `api_key`, issued now.
pub fn mint(api_key: &str, secret: &ApiSecret, token: &AccessToken) -> String {
    let now = unix_now();
    let claims = AccessClaims {
        iss: api_key.to_owned(),
        sub: token.identity.clone(),
        name: token.name.clone(),
        exp: now.saturating_add(token.ttl.as_secs()),
        nbf: Some(now.saturating_sub(1)),
        iat: Some(now),
        video: token.grant.clone(),
    };
    sign_claims(secret, &claims)
}

/// Signs arbitrary claims (tests of refusals: expired, foreign, odd grants).
pub fn sign_claims(secret: &ApiSecret, claims: &AccessClaims) -> String {
    let header = URL_SAFE_NO_PAD.encode(br#"{"alg":"HS256","typ":"JWT"}"#);
    let payload =
        URL_SAFE_NO_PAD.encode(serde_json::to_vec(claims).expect("claims serialize to JSON"));
    let input = format!("{header}.{payload}");
    let mut mac = secret.mac();
    mac.update(input.as_bytes());
    format!(
        "{input}.{}",
        URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes())
    )
}

/// Why a signal connection's token was refused. Messages never repeat the token.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    #[error("no access token was given")]
    Missing,
    #[error("the access token is not a well-formed HS256 JWT")]
    Malformed,
    #[error("the access token was issued for another API key")]
    UnknownKey,
    #[error("the access token's signature does not match")]
    BadSignature,
    #[error("the access token has expired")]
    Expired,
    #[error("the access token is not valid yet")]
    NotYetValid,
    #[error("the access token does not grant joining a room")]
    NoRoomJoin,
    #[error("the access token names no room")]
    NoRoom,
    #[error("the access token names no identity")]
    NoIdentity,
}

#[derive(Deserialize)]
struct Header {
    alg: String,
}

/// Checks a token's signature, key, lifetime and grant.
pub fn verify(api_key: &str, secret: &ApiSecret, jwt: &str) -> Result<AccessClaims, TokenError> {
    verify_at(api_key, secret, jwt, unix_now())
}

pub(crate) fn verify_at(
    api_key: &str,
    secret: &ApiSecret,
    jwt: &str,
    now: u64,
) -> Result<AccessClaims, TokenError> {
    if jwt.is_empty() {
        return Err(TokenError::Missing);
    }
    // A JWT is small; refuse anything that could only be an attack before decoding it.
    if jwt.len() > 8 * 1024 {
        return Err(TokenError::Malformed);
    }
    let mut parts = jwt.split('.');
    let (Some(header), Some(payload), Some(signature), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(TokenError::Malformed);
    };
    let header: Header = URL_SAFE_NO_PAD
        .decode(header)
        .ok()
        .and_then(|h| serde_json::from_slice(&h).ok())
        .ok_or(TokenError::Malformed)?;
    if header.alg != "HS256" {
        return Err(TokenError::Malformed);
    }
    let signature = URL_SAFE_NO_PAD
        .decode(signature)
        .map_err(|_| TokenError::Malformed)?;
    let claims: AccessClaims = URL_SAFE_NO_PAD
        .decode(payload)
        .ok()
        .and_then(|p| serde_json::from_slice(&p).ok())
        .ok_or(TokenError::Malformed)?;
    if claims.iss != api_key {
        return Err(TokenError::UnknownKey);
    }
    let (signing_input, _) = jwt.rsplit_once('.').ok_or(TokenError::Malformed)?;
    let mut mac = secret.mac();
    mac.update(signing_input.as_bytes());
    mac.verify_slice(&signature)
        .map_err(|_| TokenError::BadSignature)?;
    if claims.exp.saturating_add(LEEWAY_SECS) < now {
        return Err(TokenError::Expired);
    }
    if claims
        .nbf
        .is_some_and(|nbf| nbf > now.saturating_add(LEEWAY_SECS))
    {
        return Err(TokenError::NotYetValid);
    }
    if !claims.video.room_join {
        return Err(TokenError::NoRoomJoin);
    }
    if claims.video.room.is_empty() {
        return Err(TokenError::NoRoom);
    }
    if claims.sub.is_empty() {
        return Err(TokenError::NoIdentity);
    }
    Ok(claims)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn grant(room: &str) -> VideoGrant {
        VideoGrant {
            room: room.into(),
            room_join: true,
            ..VideoGrant::default()
        }
    }

    fn token(identity: &str, grant: VideoGrant) -> AccessToken {
        AccessToken {
            identity: identity.into(),
            name: "Ada".into(),
            grant,
            ttl: Duration::from_secs(600),
        }
    }

    #[test]
    fn a_minted_token_verifies_with_its_grant() {
        let secret = ApiSecret::new("s3cret-s3cret-s3cret");
        let mut g = grant("default:standup");
        g.can_publish = Some(false);
        let jwt = mint("key", &secret, &token("ada", g));
        let claims = verify("key", &secret, &jwt).unwrap();
        assert_eq!(claims.sub, "ada");
        assert_eq!(claims.name, "Ada");
        assert_eq!(claims.video.room, "default:standup");
        assert!(!claims.video.can_publish());
        assert!(claims.video.can_subscribe());
        assert!(!claims.video.can_publish_data());
    }

    #[test]
    fn refusals_name_their_reason() {
        let secret = ApiSecret::new("s3cret-s3cret-s3cret");
        let jwt = mint("key", &secret, &token("ada", grant("r")));
        assert_eq!(verify("other", &secret, &jwt), Err(TokenError::UnknownKey));
        assert_eq!(
            verify("key", &ApiSecret::new("another-secret-value"), &jwt),
            Err(TokenError::BadSignature)
        );
        let later = unix_now() + 600 + LEEWAY_SECS + 5;
        assert_eq!(
            verify_at("key", &secret, &jwt, later),
            Err(TokenError::Expired)
        );
        assert_eq!(verify("key", &secret, ""), Err(TokenError::Missing));
        assert_eq!(verify("key", &secret, "a.b"), Err(TokenError::Malformed));
        let no_join = mint(
            "key",
            &secret,
            &token(
                "ada",
                VideoGrant {
                    room: "r".into(),
                    ..VideoGrant::default()
                },
            ),
        );
        assert_eq!(
            verify("key", &secret, &no_join),
            Err(TokenError::NoRoomJoin)
        );
        let no_room = mint(
            "key",
            &secret,
            &token(
                "ada",
                VideoGrant {
                    room_join: true,
                    ..VideoGrant::default()
                },
            ),
        );
        assert_eq!(verify("key", &secret, &no_room), Err(TokenError::NoRoom));
    }

    #[test]
    fn alg_none_is_refused() {
        let secret = ApiSecret::new("s3cret-s3cret-s3cret");
        let jwt = mint("key", &secret, &token("ada", grant("r")));
        let payload = jwt.split('.').nth(1).unwrap();
        let none = format!(
            "{}.{payload}.",
            URL_SAFE_NO_PAD.encode(br#"{"alg":"none"}"#)
        );
        assert_eq!(verify("key", &secret, &none), Err(TokenError::Malformed));
    }

    #[test]
    fn sources_limit_publishing() {
        let mut g = grant("r");
        g.can_publish_sources = vec!["microphone".into()];
        assert!(g.allows_source("microphone"));
        assert!(!g.allows_source("camera"));
        g.can_publish = Some(false);
        assert!(!g.allows_source("microphone"));
    }
}
