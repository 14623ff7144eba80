//! Logging for the app and the diagnostics panel: the log file, per-scope levels changed at
//! run time, and an export of what support needs (no secrets: every line went through the
//! logger's redaction).

use std::path::PathBuf;
use std::sync::Arc;

use confab_logging::sinks::{tee, RecentLines, RollingFile};
use confab_logging::{configure_loggers, console_sink, Level, ScopeConfig, Setting};
use serde::Serialize;
use tauri::{AppHandle, Manager, State};
use tracing_subscriber::layer::SubscriberExt;

use crate::error::CommandError;
use crate::local_mode::LocalMode;

/// The SDK's scopes, offered in the panel.
pub const SCOPES: &[&str] = &[
    "default",
    "client",
    "connection",
    "token",
    "api-client",
    "event-dispatcher",
    "coordinator",
    "devices",
    "confab",
];

const LOG_FILE_BYTES: u64 = 5 * 1024 * 1024;
const LOG_FILES_KEPT: usize = 3;

pub struct Diagnostics {
    pub log_dir: PathBuf,
    pub log_file: PathBuf,
    pub recent: Arc<RecentLines>,
}

/// Routes `tracing` (and the `log` records of dependencies) through the scoped logger.
/// Until `attach_files` runs, lines go to the console only.
pub fn init_logging() {
    let _ = tracing_log::LogTracer::init();
    let subscriber = tracing_subscriber::registry().with(confab_logging::layer());
    let _ = tracing::subscriber::set_global_default(subscriber);
    // CONFAB_LOG=debug or CONFAB_LOG=connection=trace,default=info sets levels at start.
    if let Ok(spec) = std::env::var("CONFAB_LOG") {
        for part in spec.split(',').filter(|p| !p.trim().is_empty()) {
            let (scope, level) = part.split_once('=').unwrap_or(("default", part));
            match level.parse::<Level>() {
                Ok(level) => configure_loggers([(scope.trim(), ScopeConfig::level(level))]),
                Err(e) => eprintln!("confab: ignoring CONFAB_LOG entry {part:?}: {e}"),
            }
        }
    }
}

/// Adds the rolling log file in the OS's log folder and the in-memory recent lines.
pub fn attach_files(app: &AppHandle) -> Result<Diagnostics, std::io::Error> {
    let log_dir = app
        .path()
        .app_log_dir()
        .map_err(|e| std::io::Error::other(e.to_string()))?;
    let file = RollingFile::open(&log_dir, "confab.log", LOG_FILE_BYTES, LOG_FILES_KEPT)?;
    let recent = RecentLines::new(500);
    configure_loggers([(
        "default",
        ScopeConfig::sink(tee(vec![console_sink(), file.sink(), recent.sink()])),
    )]);
    Ok(Diagnostics {
        log_file: file.path().to_owned(),
        log_dir,
        recent,
    })
}

#[derive(Debug, Serialize)]
pub struct ScopeLevel {
    pub scope: String,
    pub level: Level,
    /// Whether the scope has its own level (otherwise it follows `default`).
    pub own: bool,
}

#[tauri::command]
pub fn log_levels() -> Vec<ScopeLevel> {
    let configured = confab_logging::configured_levels();
    SCOPES
        .iter()
        .map(|scope| ScopeLevel {
            scope: (*scope).to_owned(),
            level: confab_logging::effective_level(scope),
            own: *scope == "default" || configured.iter().any(|(s, _)| s == scope),
        })
        .collect()
}

/// Sets a scope's level; no level sends the scope back to `default`'s.
#[tauri::command]
pub fn set_log_level(
    scope: String,
    level: Option<String>,
) -> Result<Vec<ScopeLevel>, CommandError> {
    if !SCOPES.contains(&scope.as_str()) {
        return Err(CommandError::InvalidInput(format!(
            "there is no log scope {scope:?}; the scopes are {}",
            SCOPES.join(", ")
        )));
    }
    let setting = match level {
        None => Setting::Reset,
        Some(level) => Setting::Set(
            level
                .parse::<Level>()
                .map_err(|e| CommandError::InvalidInput(e.to_string()))?,
        ),
    };
    configure_loggers([(
        scope.clone(),
        ScopeConfig {
            level: setting,
            sink: Setting::Keep,
        },
    )]);
    tracing::info!(target: "confab", %scope, "log level changed");
    Ok(log_levels())
}

#[derive(Debug, Serialize)]
struct Export<'a> {
    app: &'static str,
    version: &'static str,
    os: &'static str,
    arch: &'static str,
    exported_at_unix: u64,
    mode: &'static str,
    coordinator_url: &'a str,
    log_file: String,
    log_levels: Vec<ScopeLevel>,
    devices: Vec<serde_json::Value>,
    connection_timeline: Vec<serde_json::Value>,
    recent_logs: Vec<String>,
}

/// Writes `confab-diagnostics-<time>.json` beside the log file and returns its path.
#[tauri::command]
pub fn export_diagnostics(
    diagnostics: State<'_, Diagnostics>,
    local: State<'_, LocalMode>,
    session: State<'_, confab_session::SessionHandle>,
    devices: State<'_, crate::devices::Devices>,
) -> Result<String, CommandError> {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or_default();
    let export = Export {
        app: "Confab",
        version: env!("CARGO_PKG_VERSION"),
        os: std::env::consts::OS,
        arch: std::env::consts::ARCH,
        exported_at_unix: now,
        mode: "local",
        coordinator_url: local.coordinator.base_url(),
        log_file: diagnostics.log_file.display().to_string(),
        log_levels: log_levels(),
        devices: devices
            .manager
            .devices()
            .iter()
            .map(|d| serde_json::to_value(d).unwrap_or_default())
            .collect(),
        connection_timeline: session
            .timeline()
            .iter()
            .map(|e| serde_json::to_value(e).unwrap_or_default())
            .collect(),
        recent_logs: diagnostics.recent.snapshot(),
    };
    let json = serde_json::to_vec_pretty(&export)
        .map_err(|e| CommandError::Bridge(format!("could not write the export: {e}")))?;
    let path = diagnostics
        .log_dir
        .join(format!("confab-diagnostics-{now}.json"));
    std::fs::write(&path, json).map_err(|e| {
        CommandError::Io(format!(
            "could not save the diagnostics to {}: {e}",
            path.display()
        ))
    })?;
    tracing::info!(target: "confab", path = %path.display(), "diagnostics exported");
    Ok(path.display().to_string())
}
