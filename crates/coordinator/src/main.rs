//! `confab-coordinator`: serve a local coordinator, or sign a token for one.

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
    },
    /// Publish a synthetic livestream (the fake camera's test pattern) to a call: go live, send
    /// HLS segments until stopped (Ctrl-C or --seconds), then end the broadcast.
    Broadcast {
        /// The livestream, e.g. livestream:launch. Created if it does not exist.
        #[arg(long)]
        call: String,
        #[arg(long, default_value = "http://127.0.0.1:4880/video")]
        base_url: String,
        /// Read the API key and secret from this coordinator data directory (to sign the
        /// host's token).
        #[arg(long)]
        data_dir: PathBuf,
        /// The host's user id.
        #[arg(long, default_value = "broadcaster")]
        user: String,
        /// Picture size, e.g. 1280x720.
        #[arg(long, default_value = "1280x720", value_parser = parse_size)]
        size: (u32, u32),
        #[arg(long, default_value_t = 30)]
        fps: u32,
        /// Stop after this many seconds (default: run until Ctrl-C).
        #[arg(long)]
        seconds: Option<u64>,
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

fn parse_size(text: &str) -> Result<(u32, u32), String> {
    let (w, h) = text
        .split_once('x')
        .ok_or_else(|| format!("{text:?} is not a size like 1280x720"))?;
    let parse = |v: &str| {
        v.parse::<u32>()
            .ok()
            .filter(|n| (16..=3840).contains(n))
            .ok_or_else(|| format!("{v:?} is not a side of 16 to 3840 pixels"))
    };
    Ok((parse(w)?, parse(h)?))
}

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
            let running = match confab_coordinator::start(config).await {
                Ok(r) => r,
                Err(e) => {
                    eprintln!("confab-coordinator: {e}");
                    return ExitCode::FAILURE;
                }
            };
            println!("base_url={}", running.base_url());
            println!("api_key={}", running.api_key());
            let _ = tokio::signal::ctrl_c().await;
            running.shutdown().await;
            ExitCode::SUCCESS
        }
        Command::Broadcast {
            call,
            base_url,
            data_dir,
            user,
            size,
            fps,
            seconds,
        } => match broadcast(call, base_url, data_dir, user, size, fps, seconds).await {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("confab-coordinator: {e}");
                ExitCode::FAILURE
            }
        },
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

fn read_secret(dir: &std::path::Path) -> Result<String, String> {
    read_app(dir).map(|(_, secret)| secret)
}

/// The API key and secret a coordinator data directory holds.
fn read_app(dir: &std::path::Path) -> Result<(String, String), String> {
    if !dir.join("coordinator.sqlite3").exists() {
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

/// The `broadcast` command: host a livestream with the fake camera through confab-media.
async fn broadcast(
    call: String,
    base_url: String,
    data_dir: PathBuf,
    user: String,
    (width, height): (u32, u32),
    fps: u32,
    seconds: Option<u64>,
) -> Result<(), String> {
    let (call_type, call_id) = call
        .split_once(':')
        .filter(|(t, id)| *t == "livestream" && !id.is_empty())
        .ok_or("--call is livestream:<id>")?;
    let (api_key, secret) = read_app(&data_dir)?;
    let token = SigningKey::new(secret).user_token(&user, Some(Duration::from_secs(24 * 3600)));
    let http = reqwest_client();
    let base = base_url.trim_end_matches('/').to_owned();
    let call_post = |action: &str| {
        let url = if action.is_empty() {
            format!("{base}/call/{call_type}/{call_id}?api_key={api_key}")
        } else {
            format!("{base}/call/{call_type}/{call_id}/{action}?api_key={api_key}")
        };
        http.post(url)
            .header("authorization", &token)
            .header("stream-auth-type", "jwt")
            .header("content-type", "application/json")
            .body("{}")
            .send()
    };
    // Get or create the call (its creator is its host), then leave backstage.
    for action in ["", "go_live"] {
        let response = call_post(action)
            .await
            .map_err(|e| format!("{base} is not answering: {e}"))?;
        if !response.status().is_success() {
            let body = response.text().await.unwrap_or_default();
            return Err(format!(
                "the coordinator refused {}: {body}",
                if action.is_empty() {
                    "the call"
                } else {
                    action
                }
            ));
        }
    }
    let token_for_uploads = token.clone();
    let target = confab_media::Target {
        base_url: base.clone(),
        api_key: api_key.clone(),
        call_type: call_type.into(),
        call_id: call_id.into(),
        token: std::sync::Arc::new(move || {
            let t = token_for_uploads.clone();
            Box::pin(async move { Ok(t) })
        }),
    };
    let options = confab_media::BroadcastOptions {
        width,
        height,
        fps,
        ..Default::default()
    };
    let live = confab_media::start(target, options)
        .await
        .map_err(|e| e.to_string())?;
    let mut status = live.status();
    let printer = tokio::spawn(async move {
        while status.changed().await.is_ok() {
            let s = status.borrow_and_update().clone();
            println!("{}", serde_json::to_string(&s).unwrap_or_default());
        }
    });
    match seconds {
        Some(s) => tokio::time::sleep(Duration::from_secs(s)).await,
        None => {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
    let end = live.stop().await;
    printer.abort();
    println!("{}", serde_json::to_string(&end).unwrap_or_default());
    let _ = call_post("stop_live").await;
    Ok(())
}

fn reqwest_client() -> confab_media::reqwest::Client {
    confab_media::reqwest::Client::new()
}
