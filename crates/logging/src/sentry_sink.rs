//! A sink that sends warnings and errors to Sentry (`warn` as Sentry's `warning`). Lower
//! levels are not sent. Tags go to Sentry tags (the first as `scope`), extra data to extras.

use std::sync::Arc;

use crate::{Extra, Level, Sink};

/// The DSN in the configuration is not one Sentry accepts.
#[derive(Debug, thiserror::Error)]
#[error("the Sentry DSN is not valid: {0}")]
pub struct SentryConfigError(String);

/// Starts the Sentry client for a DSN from configuration. Keep the guard alive for as long
/// as events should be sent; dropping it flushes them.
pub fn init(
    dsn: &str,
    release: Option<&'static str>,
) -> Result<sentry::ClientInitGuard, SentryConfigError> {
    let dsn: sentry::types::Dsn = dsn
        .trim()
        .parse()
        .map_err(|e: sentry::types::ParseDsnError| SentryConfigError(e.to_string()))?;
    let mut options = sentry::ClientOptions::default();
    options.dsn = Some(dsn);
    options.release = release.map(Into::into);
    Ok(sentry::init(options))
}

/// The sink. Use it for `default` or for chosen scopes.
pub fn sink() -> Sink {
    Arc::new(send)
}

fn send(level: Level, message: &str, extra: &Extra, tags: &[String]) {
    let level = match level {
        Level::Error => sentry::Level::Error,
        Level::Warn => sentry::Level::Warning,
        _ => return,
    };
    sentry::with_scope(
        |scope| {
            if let Some((scope_name, rest)) = tags.split_first() {
                scope.set_tag("scope", scope_name);
                for tag in rest {
                    scope.set_tag(tag, "true");
                }
            }
            for (key, value) in extra {
                scope.set_extra(key, value.clone());
            }
        },
        || sentry::capture_message(message, level),
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn warnings_and_errors_reach_sentry_with_their_level_tags_and_extra() {
        let sink = sink();
        let mut extra = Extra::new();
        extra.insert("attempt".into(), serde_json::json!(3));
        let tags = vec!["connection".to_owned(), "reconnect".to_owned()];
        let events = sentry::test::with_captured_events(|| {
            sink(Level::Debug, "not sent", &extra, &tags);
            sink(Level::Info, "not sent either", &extra, &tags);
            sink(Level::Warn, "socket lost", &extra, &tags);
            sink(Level::Error, "gave up", &extra, &tags);
        });
        assert_eq!(events.len(), 2);
        assert_eq!(events[0].level, sentry::Level::Warning);
        assert_eq!(events[0].message.as_deref(), Some("socket lost"));
        assert_eq!(
            events[0].tags.get("scope").map(String::as_str),
            Some("connection")
        );
        assert_eq!(
            events[0].tags.get("reconnect").map(String::as_str),
            Some("true")
        );
        assert_eq!(events[0].extra.get("attempt"), Some(&serde_json::json!(3)));
        assert_eq!(events[1].level, sentry::Level::Error);
    }

    #[test]
    fn a_bad_dsn_is_a_typed_error() {
        assert!(init("not a dsn", None).is_err());
    }
}
