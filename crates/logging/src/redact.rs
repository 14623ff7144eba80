//! Scrubbing secrets from log text: anything shaped like a JWT, and every registered secret
//! (API secrets, keychain passwords), whatever the log level.

use std::borrow::Cow;
use std::sync::{OnceLock, RwLock};

use serde_json::Value;

use crate::Extra;

pub const REDACTED_TOKEN: &str = "[redacted token]";
pub const REDACTED: &str = "[redacted]";

fn secrets() -> &'static RwLock<Vec<String>> {
    static SECRETS: OnceLock<RwLock<Vec<String>>> = OnceLock::new();
    SECRETS.get_or_init(Default::default)
}

/// Never let this string reach a sink, however short: a short secret scrubs some ordinary
/// words too, which is the lesser harm (the coordinator refuses secrets that short anyway).
/// Returns false only for the empty string, which is no secret.
pub fn register_secret(secret: &str) -> bool {
    if secret.is_empty() {
        return false;
    }
    let mut list = secrets().write().unwrap_or_else(|p| p.into_inner());
    if !list.iter().any(|s| s == secret) {
        list.push(secret.to_owned());
    }
    true
}

fn is_b64url(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'=' || b == b'+' || b == b'/'
}

/// Replaces JWTs (`eyJ...` header, payload and signature) and registered secrets.
pub fn scrub(text: &str) -> Cow<'_, str> {
    let mut out = Cow::Borrowed(text);
    if text.contains("eyJ") {
        out = Cow::Owned(scrub_jwts(text));
    }
    let list = secrets().read().unwrap_or_else(|p| p.into_inner());
    for secret in list.iter() {
        if out.contains(secret.as_str()) {
            out = Cow::Owned(out.replace(secret.as_str(), REDACTED));
        }
    }
    out
}

fn scrub_jwts(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = String::with_capacity(text.len());
    let mut i = 0;
    let mut copied = 0;
    while let Some(pos) = text[i..].find("eyJ") {
        let start = i + pos;
        // Header segment, '.', payload segment: that is enough to call it a token.
        let mut end = start;
        let mut dots = 0;
        while end < bytes.len() && (is_b64url(bytes[end]) || (bytes[end] == b'.' && dots < 2)) {
            if bytes[end] == b'.' {
                dots += 1;
            }
            end += 1;
        }
        if dots >= 1 && end - start > 10 {
            out.push_str(&text[copied..start]);
            out.push_str(REDACTED_TOKEN);
            copied = end;
        }
        i = end.max(start + 3);
    }
    out.push_str(&text[copied..]);
    out
}

/// Scrubs every string in the extra fields.
pub fn scrub_values(extra: Extra) -> Extra {
    extra
        .into_iter()
        .map(|(k, v)| (k, scrub_value(v)))
        .collect()
}

fn scrub_value(v: Value) -> Value {
    match v {
        Value::String(s) => Value::String(scrub(&s).into_owned()),
        Value::Array(items) => Value::Array(items.into_iter().map(scrub_value).collect()),
        Value::Object(map) => Value::Object(scrub_values(map)),
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const JWT: &str = "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJ1c2VyX2lkIjoiYWxpY2UifQ.6HUpHT_cFVYHssLjRaRXb6BCxojasTFqKkd67smlKpI";

    #[test]
    fn jwts_are_scrubbed_wherever_they_stand() {
        let text = format!("auth frame {{\"token\":\"{JWT}\"}} and again {JWT}.");
        let clean = scrub(&text);
        assert!(!clean.contains("eyJhbGci"), "{clean}");
        assert_eq!(clean.matches(REDACTED_TOKEN).count(), 2);
        assert!(clean.ends_with('.'));
        assert_eq!(scrub("nothing here"), "nothing here");
        assert_eq!(scrub("eyJ alone"), "eyJ alone");
    }

    #[test]
    fn registered_secrets_are_scrubbed() {
        assert!(!register_secret(""));
        // Short secrets are scrubbed too.
        assert!(register_secret("pw7Q"));
        assert_eq!(scrub("key=pw7Q."), "key=[redacted].");
        assert!(register_secret("s3cr3t-api-secret-value"));
        assert_eq!(
            scrub("secret=s3cr3t-api-secret-value;"),
            "secret=[redacted];"
        );
        let extra: Extra =
            serde_json::from_value(serde_json::json!({"a": ["x s3cr3t-api-secret-value"]}))
                .unwrap();
        assert_eq!(scrub_values(extra)["a"][0], "x [redacted]");
    }
}
