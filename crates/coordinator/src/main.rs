//! `confab-coordinator`: serve a local coordinator, or sign a token for one.
//!
//! (The synthetic livestream broadcaster is `confab-broadcast`, in confab-media: the
//! coordinator does not depend on the media pipeline.)

use std::io::Write;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand};
use confab_coordinator::{Claims, CoordinatorConfig, SigningKey};

#[derive(Parser)]
#[command(
    name = "confab-coordinator",
    version,
    about = "A local Stream-compatible video coordinator"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Serve the coordinator. Prints its base URL and API key.
    Serve {
        #[arg(long, default_value = "127.0.0.1:4880")]
        addr: SocketAddr,
        #[arg(long)]
        data_dir: PathBuf,
        /// Use this API key (with --api-secret) instead of the stored or a new one.
        #[arg(long, requires = "api_secret")]
        api_key: Option<String>,
        #[arg(
            long,
            requires = "api_key",
            env = "CONFAB_API_SECRET",
            hide_env_values = true
        )]
        api_secret: Option<String>,
        /// Serve GET /api/token?user_id= for token providers. Development only: anyone who can
        /// reach the port can get a token for any user.
        #[arg(long)]
        dev_token_endpoint: bool,
        /// Enable the test-only fault switches at POST /video/_faults.
        #[arg(long, hide = true)]
        fault_injection: bool,
        /// Close sockets that send nothing for this many seconds.
        #[arg(long, default_value_t = 60)]
        idle_timeout_secs: u64,
        /// HTTP connections served at once (upgraded event sockets are not counted). Higher
        /// than the embedded app's default: a LAN server has more clients and a larger
        /// descriptor limit. Keep it well below `ulimit -n`.
        #[arg(long, default_value_t = SERVE_MAX_CONNECTIONS)]
        max_connections: usize,
    },
    /// Print a signed user token: the server-side token generator.
    Token {
        #[arg(long)]
        user: String,
        /// Lifetime, e.g. 90s, 30m, 1h, 7d. Without it the token never expires.
        #[arg(long, value_parser = parse_ttl)]
        ttl: Option<Duration>,
        #[arg(long)]
        role: Option<String>,
        /// Limit the token to these calls, e.g. livestream:abc,default:xyz.
        #[arg(long, value_delimiter = ',')]
        call_cids: Vec<String>,
        /// Read the secret from this coordinator data directory.
        #[arg(long, conflicts_with = "api_secret")]
        data_dir: Option<PathBuf>,
        #[arg(long, env = "CONFAB_API_SECRET", hide_env_values = true)]
        api_secret: Option<String>,
    },
}

/// `serve`'s connection cap (the library's default, for the embedded app, is lower).
const SERVE_MAX_CONNECTIONS: usize = 512;

fn parse_ttl(text: &str) -> Result<Duration, String> {
    let (number, unit) = text.split_at(
        text.find(|c: char| !c.is_ascii_digit())
            .unwrap_or(text.len()),
    );
    let n: u64 = number
        .parse()
        .map_err(|_| format!("{text:?} is not a duration like 90s, 30m, 1h or 7d"))?;
    let secs = match unit {
        "" | "s" => n,
        "m" => n * 60,
        "h" => n * 3600,
        "d" => n * 86400,
        _ => return Err(format!("unknown unit {unit:?}: use s, m, h or d")),
    };
    Ok(Duration::from_secs(secs))
}

#[tokio::main]
async fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("CONFAB_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
    match Cli::parse().command {
        Command::Serve {
            addr,
            data_dir,
            api_key,
            api_secret,
            dev_token_endpoint,
            fault_injection,
            idle_timeout_secs,
            max_connections,
        } => {
            let mut config = CoordinatorConfig {
                addr,
                data_dir: Some(data_dir),
                app: api_key.zip(api_secret),
                dev_token_endpoint,
                fault_injection,
                ..CoordinatorConfig::default()
            };
            config.limits.idle_timeout = Duration::from_secs(idle_timeout_secs.max(1));
            config.limits.max_connections = max_connections.max(1);
            let running = match confab_coordinator::start(config).await {
                Ok(r) => r,
                Err(e) => {
                    eprintln!("confab-coordinator: {e}");
                    return ExitCode::FAILURE;
                }
            };
            print_status(&format!("base_url={}", running.base_url()));
            print_status(&format!("api_key={}", running.api_key()));
            let _ = tokio::signal::ctrl_c().await;
            running.shutdown().await;
            ExitCode::SUCCESS
        }
        Command::Token {
            user,
            ttl,
            role,
            call_cids,
            data_dir,
            api_secret,
        } => {
            let secret = match (api_secret, data_dir) {
                (Some(secret), _) => secret,
                (None, Some(dir)) => match read_secret(&dir) {
                    Ok(secret) => secret,
                    Err(e) => {
                        eprintln!("confab-coordinator: {e}");
                        return ExitCode::FAILURE;
                    }
                },
                (None, None) => {
                    eprintln!("confab-coordinator: give --data-dir or --api-secret (or CONFAB_API_SECRET)");
                    return ExitCode::FAILURE;
                }
            };
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_secs() as i64)
                .unwrap_or_default();
            let claims = Claims {
                user_id: Some(user),
                role,
                call_cids: (!call_cids.is_empty()).then_some(call_cids),
                iat: Some(now),
                exp: ttl.map(|t| now + t.as_secs() as i64),
                nbf: None,
            };
            println!("{}", SigningKey::new(secret).sign(&claims));
            ExitCode::SUCCESS
        }
    }
}

/// Writes a status line to stdout for whoever started the server. A reader that went away
/// (a closed pipe) must not take the server down with it, so a failed write is only logged.
fn print_status(line: &str) {
    let mut out = std::io::stdout().lock();
    if let Err(e) = writeln!(out, "{line}").and_then(|()| out.flush()) {
        tracing::warn!(target: "coordinator", error = %e, "could not write the status to stdout");
    }
}

fn read_secret(dir: &std::path::Path) -> Result<String, String> {
    read_app(dir).map(|(_, secret)| secret)
}

/// The API key and secret a coordinator data directory holds.
fn read_app(dir: &std::path::Path) -> Result<(String, String), String> {
    if !dir.join(confab_coordinator::store::DB_FILE).exists() {
        return Err(format!(
            "{} holds no coordinator data: run serve with it first",
            dir.display()
        ));
    }
    let store = confab_coordinator::store::Store::open(dir).map_err(|e| e.to_string())?;
    match store.app().map_err(|e| e.to_string())? {
        Some(app) => Ok(app),
        None => Err("the data directory has no app yet: run serve with it first".into()),
    }
}
