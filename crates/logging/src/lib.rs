//! Scoped logging for Confab, the Rust way: the SDK logs through `tracing`; this crate gives
//! apps the controls of Stream's logger system on top.
//!
//! - Levels `trace` < `debug` < `info` < `warn` < `error` (0 to 4).
//! - A scope is a named part of the SDK (`client`, `connection`, `token`, `api-client`,
//!   `event-dispatcher`, `coordinator`, `devices`, ...): the event's `tracing` target, up to
//!   the first `::`.
//! - Each scope may have a level and a sink; without one it falls back to `default`.
//!   [`configure_loggers`] merges per scope; [`Setting::Reset`] sends a scope back to the
//!   default; [`restore_defaults`] brings back the console sink at `warn`.
//! - [`layer`] is a `tracing-subscriber` layer that routes events to the sinks. It filters per
//!   layer, so an app's own layers (a `fmt` layer, a file) keep seeing what they ask for.
//! - Messages and fields are scrubbed of anything that looks like a JWT and of every secret
//!   registered with [`redact::register_secret`] before any sink sees them.
//!
//! A log call filtered out by its scope's level costs one relaxed atomic load: the layer
//! tells `tracing` which call sites it never wants, and rebuilds that cache whenever the
//! configuration changes (`cargo bench -p confab-logging --bench filtered`).

pub mod redact;
#[cfg(feature = "sentry")]
pub mod sentry_sink;
pub mod sinks;

use std::collections::HashMap;
use std::fmt::Write as _;
use std::sync::{Arc, OnceLock, RwLock};

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use tracing_core::subscriber::Interest;
use tracing_core::{Event, Metadata};
use tracing_subscriber::filter::LevelFilter;
use tracing_subscriber::layer::{Context, Filter, Layer};

/// Severity, ordered `trace` (0) to `error` (4).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Level {
    Trace = 0,
    Debug = 1,
    Info = 2,
    Warn = 3,
    Error = 4,
}

impl Level {
    pub fn from_tracing(level: &tracing_core::Level) -> Self {
        match *level {
            tracing_core::Level::TRACE => Level::Trace,
            tracing_core::Level::DEBUG => Level::Debug,
            tracing_core::Level::INFO => Level::Info,
            tracing_core::Level::WARN => Level::Warn,
            _ => Level::Error,
        }
    }

    fn to_filter(self) -> LevelFilter {
        match self {
            Level::Trace => LevelFilter::TRACE,
            Level::Debug => LevelFilter::DEBUG,
            Level::Info => LevelFilter::INFO,
            Level::Warn => LevelFilter::WARN,
            Level::Error => LevelFilter::ERROR,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Level::Trace => "trace",
            Level::Debug => "debug",
            Level::Info => "info",
            Level::Warn => "warn",
            Level::Error => "error",
        }
    }
}

impl std::str::FromStr for Level {
    type Err = UnknownLevel;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "trace" | "0" => Ok(Level::Trace),
            "debug" | "1" => Ok(Level::Debug),
            "info" | "2" => Ok(Level::Info),
            "warn" | "warning" | "3" => Ok(Level::Warn),
            "error" | "4" => Ok(Level::Error),
            _ => Err(UnknownLevel(s.to_owned())),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnknownLevel(pub String);

impl std::fmt::Display for UnknownLevel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "unknown log level {:?}: use trace, debug, info, warn or error",
            self.0
        )
    }
}

impl std::error::Error for UnknownLevel {}

/// Fields of a log event other than its message.
pub type Extra = Map<String, Value>;

/// Where log lines go: `(level, message, extra data, tags)`. The first tag is the scope.
pub type Sink = Arc<dyn Fn(Level, &str, &Extra, &[String]) + Send + Sync>;

/// The default sink: one line on standard error.
pub fn log_to_console(level: Level, message: &str, extra: &Extra, tags: &[String]) {
    let mut line = format!(
        "{:>5} [{}] {message}",
        level.as_str().to_ascii_uppercase(),
        tags.join(",")
    );
    if !extra.is_empty() {
        let _ = write!(line, " {}", Value::Object(extra.clone()));
    }
    eprintln!("{line}");
}

/// The console sink as a [`Sink`].
pub fn console_sink() -> Sink {
    Arc::new(log_to_console)
}

/// A change to one setting of a scope.
#[derive(Clone, Default)]
pub enum Setting<T> {
    /// Leave as it is.
    #[default]
    Keep,
    /// Remove the scope's own value: it falls back to `default` (ignored for `default`).
    Reset,
    Set(T),
}

/// A scope's changes, for [`configure_loggers`].
#[derive(Clone, Default)]
pub struct ScopeConfig {
    pub level: Setting<Level>,
    pub sink: Setting<Sink>,
}

impl ScopeConfig {
    pub fn level(level: Level) -> Self {
        Self {
            level: Setting::Set(level),
            ..Self::default()
        }
    }

    pub fn sink(sink: Sink) -> Self {
        Self {
            sink: Setting::Set(sink),
            ..Self::default()
        }
    }

    pub fn with_sink(mut self, sink: Sink) -> Self {
        self.sink = Setting::Set(sink);
        self
    }
}

pub const DEFAULT_SCOPE: &str = "default";
/// The level `restore_defaults` sets, as the official client's constructor does.
pub const DEFAULT_LEVEL: Level = Level::Warn;

struct State {
    default_level: Level,
    default_sink: Sink,
    levels: HashMap<String, Level>,
    sinks: HashMap<String, Sink>,
}

impl State {
    fn defaults() -> Self {
        Self {
            default_level: DEFAULT_LEVEL,
            default_sink: console_sink(),
            levels: HashMap::new(),
            sinks: HashMap::new(),
        }
    }

    fn level(&self, scope: &str) -> Level {
        self.levels
            .get(scope)
            .copied()
            .unwrap_or(self.default_level)
    }

    fn sink(&self, scope: &str) -> Sink {
        self.sinks
            .get(scope)
            .cloned()
            .unwrap_or_else(|| self.default_sink.clone())
    }

    fn lowest_level(&self) -> Level {
        self.levels
            .values()
            .copied()
            .chain([self.default_level])
            .min()
            .unwrap_or(DEFAULT_LEVEL)
    }
}

fn state() -> &'static RwLock<State> {
    static STATE: OnceLock<RwLock<State>> = OnceLock::new();
    STATE.get_or_init(|| RwLock::new(State::defaults()))
}

fn read() -> std::sync::RwLockReadGuard<'static, State> {
    state().read().unwrap_or_else(|p| p.into_inner())
}

fn changed() {
    // Call sites cache whether anyone wants them; make them ask again.
    tracing_core::callsite::rebuild_interest_cache();
}

/// Merges settings per scope and per key. `default` sets the fallback of every scope.
pub fn configure_loggers<K: Into<String>>(config: impl IntoIterator<Item = (K, ScopeConfig)>) {
    {
        let mut s = state().write().unwrap_or_else(|p| p.into_inner());
        for (scope, change) in config {
            let scope = scope.into();
            if scope == DEFAULT_SCOPE {
                if let Setting::Set(level) = change.level {
                    s.default_level = level;
                }
                if let Setting::Set(sink) = change.sink {
                    s.default_sink = sink;
                }
                continue;
            }
            match change.level {
                Setting::Keep => {}
                Setting::Reset => {
                    s.levels.remove(&scope);
                }
                Setting::Set(level) => {
                    s.levels.insert(scope.clone(), level);
                }
            }
            match change.sink {
                Setting::Keep => {}
                Setting::Reset => {
                    s.sinks.remove(&scope);
                }
                Setting::Set(sink) => {
                    s.sinks.insert(scope, sink);
                }
            }
        }
    }
    changed();
}

/// Clears every scope and sets `default` back to the console sink at `warn`.
pub fn restore_defaults() {
    *state().write().unwrap_or_else(|p| p.into_inner()) = State::defaults();
    changed();
}

/// The level in force for a scope (its own, or `default`'s).
pub fn effective_level(scope: &str) -> Level {
    read().level(scope)
}

/// Every scope with its own level, and `default`, for a diagnostics view.
pub fn configured_levels() -> Vec<(String, Level)> {
    let s = read();
    let mut out: Vec<_> = s.levels.iter().map(|(k, v)| (k.clone(), *v)).collect();
    out.sort();
    out.insert(0, (DEFAULT_SCOPE.to_owned(), s.default_level));
    out
}

/// The scope of a `tracing` target: up to the first `::`.
pub fn scope_of(target: &str) -> &str {
    target.split("::").next().unwrap_or(target)
}

fn wanted(meta: &Metadata<'_>) -> bool {
    meta.is_event() && Level::from_tracing(meta.level()) >= read().level(scope_of(meta.target()))
}

/// Decides, per call site, whether the sinks want it.
struct ScopeFilter;

impl<S> Filter<S> for ScopeFilter {
    fn enabled(&self, meta: &Metadata<'_>, _cx: &Context<'_, S>) -> bool {
        wanted(meta)
    }

    fn callsite_enabled(&self, meta: &'static Metadata<'static>) -> Interest {
        if wanted(meta) {
            Interest::always()
        } else {
            Interest::never()
        }
    }

    fn max_level_hint(&self) -> Option<LevelFilter> {
        Some(read().lowest_level().to_filter())
    }
}

/// Routes events to the sinks of their scopes.
struct SinkLayer;

impl<S: tracing_core::Subscriber> Layer<S> for SinkLayer {
    fn on_event(&self, event: &Event<'_>, _ctx: Context<'_, S>) {
        let meta = event.metadata();
        let scope = scope_of(meta.target());
        let level = Level::from_tracing(meta.level());
        let sink = {
            let s = read();
            if level < s.level(scope) {
                return;
            }
            s.sink(scope)
        };
        let mut fields = FieldCollector::default();
        event.record(&mut fields);
        let mut tags = vec![scope.to_owned()];
        if let Some(Value::String(extra_tags)) = fields.extra.remove("tags") {
            tags.extend(
                extra_tags
                    .split(',')
                    .map(|t| t.trim().to_owned())
                    .filter(|t| !t.is_empty()),
            );
        }
        let message = redact::scrub(&fields.message).into_owned();
        let extra = redact::scrub_values(fields.extra);
        // The lock is not held here: a sink may log, or reconfigure, without deadlocking.
        sink(level, &message, &extra, &tags);
    }
}

#[derive(Default)]
struct FieldCollector {
    message: String,
    extra: Extra,
}

impl tracing_core::field::Visit for FieldCollector {
    fn record_debug(&mut self, field: &tracing_core::Field, value: &dyn std::fmt::Debug) {
        let text = format!("{value:?}");
        if field.name() == "message" {
            self.message = text;
        } else {
            self.extra
                .insert(field.name().to_owned(), Value::String(text));
        }
    }

    fn record_str(&mut self, field: &tracing_core::Field, value: &str) {
        if field.name() == "message" {
            self.message = value.to_owned();
        } else {
            self.extra
                .insert(field.name().to_owned(), Value::String(value.to_owned()));
        }
    }

    fn record_i64(&mut self, field: &tracing_core::Field, value: i64) {
        self.extra
            .insert(field.name().to_owned(), Value::from(value));
    }

    fn record_u64(&mut self, field: &tracing_core::Field, value: u64) {
        self.extra
            .insert(field.name().to_owned(), Value::from(value));
    }

    fn record_bool(&mut self, field: &tracing_core::Field, value: bool) {
        self.extra
            .insert(field.name().to_owned(), Value::from(value));
    }

    fn record_f64(&mut self, field: &tracing_core::Field, value: f64) {
        self.extra
            .insert(field.name().to_owned(), Value::from(value));
    }
}

/// The layer to add to a `tracing-subscriber` registry:
/// `tracing_subscriber::registry().with(confab_logging::layer())`.
pub fn layer<S>() -> impl Layer<S>
where
    S: tracing_core::Subscriber + for<'a> tracing_subscriber::registry::LookupSpan<'a>,
{
    SinkLayer.with_filter(ScopeFilter)
}
