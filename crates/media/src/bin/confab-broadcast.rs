//! `confab-broadcast`: publish a synthetic livestream (the fake camera's test pattern) to a
//! local coordinator's call: get or create the call, go live, upload HLS segments until stopped
//! (Ctrl-C or --seconds), then end the broadcast. For demos and tests.
//!
//! It lives in confab-media, not in the coordinator's CLI, so the coordinator does not depend
//! on the media pipeline. It reads the coordinator's data directory for the app's key and
//! signs the host's token with the coordinator's own key type, so the token format has one
//! definition.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use clap::Parser;
use confab_coordinator::store::Store;
use confab_coordinator::SigningKey;
use confab_media::{BroadcastOptions, Target};
use confab_protocol::wire::{API_KEY_QUERY, AUTHORIZATION_HEADER, AUTH_TYPE_HEADER};
use confab_protocol::{AuthType, CallCid, CallType};

/// How long the host's token lasts: longer than any demo.
const HOST_TOKEN_TTL: Duration = Duration::from_secs(24 * 3600);

#[derive(Parser)]
#[command(
    name = "confab-broadcast",
    version,
    about = "Publish a synthetic livestream to a local Confab coordinator"
)]
struct Cli {
    /// The livestream, e.g. livestream:launch. Created if it does not exist.
    #[arg(long, value_parser = parse_livestream)]
    call: CallCid,
    #[arg(long, default_value = "http://127.0.0.1:4880/video")]
    base_url: String,
    /// Read the API key and secret from this coordinator data directory (to sign the host's
    /// token).
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
}

/// Why the broadcaster stopped early; each message says what to do.
#[derive(Debug, thiserror::Error)]
enum BroadcasterError {
    #[error("{0} holds no coordinator data: run confab-coordinator serve with it first")]
    NoData(String),
    #[error("could not read the coordinator's data: {0}")]
    Store(#[from] confab_coordinator::store::StoreError),
    #[error("the data directory has no app yet: run confab-coordinator serve with it first")]
    NoApp,
    #[error("{base} is not answering: {source}")]
    Unreachable {
        base: String,
        source: confab_media::reqwest::Error,
    },
    #[error("the coordinator refused {action}: {body}")]
    Refused { action: String, body: String },
    #[error(transparent)]
    Broadcast(#[from] confab_media::BroadcastError),
}

fn parse_livestream(text: &str) -> Result<CallCid, String> {
    CallCid::parse(text)
        .ok()
        .filter(|cid| cid.call_type == CallType::Livestream)
        .ok_or_else(|| "--call is livestream:<id>".to_owned())
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

/// The API key and secret a coordinator data directory holds.
fn read_app(dir: &Path) -> Result<(String, String), BroadcasterError> {
    if !dir.join("coordinator.sqlite3").exists() {
        return Err(BroadcasterError::NoData(dir.display().to_string()));
    }
    Store::open(dir)?.app()?.ok_or(BroadcasterError::NoApp)
}

/// One status line (JSON) on stdout. A reader that went away must not stop the broadcast.
fn print_line(line: &str) {
    let mut out = std::io::stdout().lock();
    if let Err(e) = writeln!(out, "{line}").and_then(|()| out.flush()) {
        tracing::debug!(error = %e, "could not write the status to stdout");
    }
}

/// The REST calls the host makes around the broadcast.
struct HostSession {
    http: confab_media::reqwest::Client,
    base: String,
    api_key: String,
    token: String,
    call: CallCid,
}

impl HostSession {
    /// `POST /call/{type}/{id}[/{action}]` with an empty JSON body; `action` "" is
    /// get-or-create.
    async fn post(&self, action: &str) -> Result<(), BroadcasterError> {
        let call_path = format!(
            "{}/call/{}/{}",
            self.base, self.call.call_type, self.call.id
        );
        let url = if action.is_empty() {
            call_path
        } else {
            format!("{call_path}/{action}")
        };
        // The key is the coordinator's own hex: nothing in it needs escaping.
        let url = format!("{url}?{API_KEY_QUERY}={}", self.api_key);
        let response = self
            .http
            .post(url)
            .header(AUTHORIZATION_HEADER, &self.token)
            .header(AUTH_TYPE_HEADER, AuthType::Jwt.as_str())
            .header("content-type", "application/json")
            .body("{}")
            .send()
            .await
            .map_err(|source| BroadcasterError::Unreachable {
                base: self.base.clone(),
                source,
            })?;
        if response.status().is_success() {
            return Ok(());
        }
        Err(BroadcasterError::Refused {
            action: if action.is_empty() {
                "the call".to_owned()
            } else {
                action.to_owned()
            },
            body: response.text().await.unwrap_or_default(),
        })
    }
}

async fn run(cli: Cli) -> Result<(), BroadcasterError> {
    let (api_key, secret) = read_app(&cli.data_dir)?;
    let token = SigningKey::new(secret).user_token(&cli.user, Some(HOST_TOKEN_TTL));
    let host = HostSession {
        http: confab_media::reqwest::Client::new(),
        base: cli.base_url.trim_end_matches('/').to_owned(),
        api_key,
        token,
        call: cli.call,
    };
    // Get or create the call (its creator is its host), then leave backstage.
    host.post("").await?;
    host.post("go_live").await?;
    let upload_token = host.token.clone();
    let target = Target {
        base_url: host.base.clone(),
        api_key: host.api_key.clone(),
        call_type: host.call.call_type.as_str().to_owned(),
        call_id: host.call.id.as_str().to_owned(),
        token: Arc::new(move || {
            let t = upload_token.clone();
            Box::pin(async move { Ok(t) })
        }),
    };
    let (width, height) = cli.size;
    let options = BroadcastOptions {
        width,
        height,
        fps: cli.fps,
        ..Default::default()
    };
    let live = confab_media::start(target, options).await?;
    let mut status = live.status();
    let printer = tokio::spawn(async move {
        while status.changed().await.is_ok() {
            let s = status.borrow_and_update().clone();
            print_line(&serde_json::to_string(&s).unwrap_or_default());
        }
    });
    match cli.seconds {
        Some(s) => tokio::time::sleep(Duration::from_secs(s)).await,
        None => {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
    let end = live.stop().await;
    printer.abort();
    print_line(&serde_json::to_string(&end).unwrap_or_default());
    // Best effort: the broadcast has ended either way.
    let _ = host.post("stop_live").await;
    Ok(())
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
    match run(Cli::parse()).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("confab-broadcast: {e}");
            ExitCode::FAILURE
        }
    }
}
