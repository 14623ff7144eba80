//! The logger system's semantics, through real `tracing` calls and a real subscriber.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};

use confab_logging::{
    configure_loggers, configured_levels, effective_level, restore_defaults, Extra, Level,
    ScopeConfig, Setting, Sink,
};
use serde_json::json;
use tracing_subscriber::layer::SubscriberExt;

type Line = (Level, String, Extra, Vec<String>);

/// Counts every event, as an app's own layer (a fmt layer, a file) would see them.
struct AppLayer(Arc<AtomicUsize>);

impl<S: tracing::Subscriber> tracing_subscriber::Layer<S> for AppLayer {
    fn on_event(
        &self,
        _event: &tracing::Event<'_>,
        _ctx: tracing_subscriber::layer::Context<'_, S>,
    ) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

/// The logger system is process-wide: tests take turns, each from the defaults.
fn setup() -> (MutexGuard<'static, ()>, Arc<AtomicUsize>) {
    static TURN: Mutex<()> = Mutex::new(());
    static APP_EVENTS: OnceLock<Arc<AtomicUsize>> = OnceLock::new();
    let guard = TURN.lock().unwrap_or_else(|p| p.into_inner());
    let app = APP_EVENTS
        .get_or_init(|| {
            let counter = Arc::new(AtomicUsize::new(0));
            let subscriber = tracing_subscriber::registry()
                .with(confab_logging::layer())
                .with(AppLayer(counter.clone()));
            tracing::subscriber::set_global_default(subscriber).unwrap();
            counter
        })
        .clone();
    restore_defaults();
    (guard, app)
}

fn capture() -> (Sink, Arc<Mutex<Vec<Line>>>) {
    let lines: Arc<Mutex<Vec<Line>>> = Arc::default();
    let out = lines.clone();
    let sink: Sink = Arc::new(move |level, message, extra, tags| {
        out.lock()
            .unwrap()
            .push((level, message.to_owned(), extra.clone(), tags.to_vec()));
    });
    (sink, lines)
}

#[test]
fn a_scope_without_settings_falls_back_to_default() {
    let (_turn, _) = setup();
    let (sink, lines) = capture();
    configure_loggers([("default", ScopeConfig::level(Level::Info).with_sink(sink))]);
    assert_eq!(effective_level("token"), Level::Info);
    tracing::info!(target: "token", "refreshed");
    tracing::debug!(target: "token", "below info");
    let lines = lines.lock().unwrap();
    assert_eq!(lines.len(), 1);
    assert_eq!(lines[0].1, "refreshed");
}

#[test]
fn the_sink_receives_level_message_extra_and_tags() {
    let (_turn, _) = setup();
    let (sink, lines) = capture();
    configure_loggers([(
        "connection",
        ScopeConfig::level(Level::Debug).with_sink(sink),
    )]);
    tracing::warn!(target: "connection", attempt = 3, healthy = false, tags = "reconnect,socket", "socket lost");
    let lines = lines.lock().unwrap();
    let (level, message, extra, tags) = &lines[0];
    assert_eq!(*level, Level::Warn);
    assert_eq!(message, "socket lost");
    assert_eq!(extra["attempt"], json!(3));
    assert_eq!(extra["healthy"], json!(false));
    assert!(!extra.contains_key("tags"));
    assert_eq!(tags, &["connection", "reconnect", "socket"]);
}

#[test]
fn configure_merges_per_scope_and_key() {
    let (_turn, _) = setup();
    let (sink, lines) = capture();
    configure_loggers([("client", ScopeConfig::level(Level::Debug))]);
    configure_loggers([("client", ScopeConfig::sink(sink))]);
    // Both settings hold: the level from the first call, the sink from the second.
    assert_eq!(effective_level("client"), Level::Debug);
    tracing::debug!(target: "client", "kept both");
    assert_eq!(lines.lock().unwrap().len(), 1);
}

#[test]
fn resetting_a_scope_sends_it_back_to_default() {
    let (_turn, _) = setup();
    let (sink, lines) = capture();
    let (default_sink, default_lines) = capture();
    configure_loggers([
        ("default", ScopeConfig::sink(default_sink)),
        ("devices", ScopeConfig::level(Level::Trace).with_sink(sink)),
    ]);
    configure_loggers([(
        "devices",
        ScopeConfig {
            level: Setting::Reset,
            sink: Setting::Reset,
        },
    )]);
    assert_eq!(effective_level("devices"), Level::Warn);
    tracing::info!(target: "devices", "now filtered by default's warn");
    tracing::warn!(target: "devices", "to default's sink");
    assert!(lines.lock().unwrap().is_empty());
    assert_eq!(default_lines.lock().unwrap().len(), 1);
    // Resetting `default` itself is ignored.
    configure_loggers([(
        "default",
        ScopeConfig {
            level: Setting::Reset,
            sink: Setting::Keep,
        },
    )]);
    assert_eq!(effective_level("default"), Level::Warn);
}

#[test]
fn restore_defaults_brings_back_warn_and_clears_scopes() {
    let (_turn, _) = setup();
    configure_loggers([
        ("default", ScopeConfig::level(Level::Trace)),
        ("token", ScopeConfig::level(Level::Error)),
    ]);
    restore_defaults();
    assert_eq!(
        configured_levels(),
        vec![("default".to_owned(), Level::Warn)]
    );
    assert_eq!(effective_level("token"), Level::Warn);
}

#[test]
fn levels_filter_per_scope_and_the_apps_own_layer_still_sees_everything() {
    let (_turn, app) = setup();
    let (sink, lines) = capture();
    configure_loggers([
        ("default", ScopeConfig::sink(sink)),
        ("connection", ScopeConfig::level(Level::Error)),
        ("client", ScopeConfig::level(Level::Debug)),
    ]);
    let app_before = app.load(Ordering::SeqCst);
    tracing::warn!(target: "connection", "below connection's error level");
    tracing::error!(target: "connection", "error passes");
    tracing::debug!(target: "client", "debug passes for client");
    tracing::debug!(target: "token", "token uses default's warn");
    let got: Vec<String> = lines.lock().unwrap().iter().map(|l| l.1.clone()).collect();
    assert_eq!(got, ["error passes", "debug passes for client"]);
    // The app's layer is not filtered by our scopes.
    assert_eq!(app.load(Ordering::SeqCst) - app_before, 4);
}

#[test]
fn sinks_never_see_a_token() {
    let (_turn, _) = setup();
    let (sink, lines) = capture();
    configure_loggers([("default", ScopeConfig::level(Level::Trace).with_sink(sink))]);
    let jwt = "eyJhbGciOiJIUzI1NiJ9.eyJ1c2VyX2lkIjoiYWxpY2UifQ.c2lnbmF0dXJlLXNpZ25hdHVyZQ";
    tracing::trace!(target: "coordinator", frame = %format!("{{\"token\":\"{jwt}\"}}"), "sent {jwt}");
    let lines = lines.lock().unwrap();
    let all = format!("{:?}", *lines);
    assert!(!all.contains("eyJhbGci"), "{all}");
    assert!(all.contains("[redacted token]"));
}
