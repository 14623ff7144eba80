//! `confab-broadcast`: a synthetic livestream host for demos and tests. It joins a local
//! coordinator's livestream as its host, publishes the fake camera's test pattern (H.264) and a
//! tone (Opus) through the call's SFU session, goes live and starts HLS (which the coordinator
//! packages from the forwarded packets), and runs until stopped (SIGINT/SIGTERM or
//! --seconds); then it stops HLS, goes back to backstage and leaves.
//!
//! It reads the coordinator's data directory for the app's key and signs the host's token with
//! the coordinator's own key type, so the token format has one definition. Status goes to
//! stdout as JSON lines: `{"state":"joined"}`, `{"state":"live","playlist_url":".."}`,
//! `{"state":"ended"}`. Errors go to stderr with exit status 1.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::atomic::Ordering;
use std::time::Duration;

use clap::Parser;
use confab_call_probe::publish::{AudioSignal, Publishing, VideoSettings};
use confab_client::media::{CallEvent, CallSessionOptions};
use confab_client::{ClientOptions, TokenSource, User, VideoClient};
use confab_coordinator::store::Store;
use confab_coordinator::SigningKey;
use confab_protocol::{CallCid, CallType};
use serde_json::json;
use tokio::signal::unix::{signal, SignalKind};

/// How long the host's token lasts: longer than any demo.
const HOST_TOKEN_TTL: Duration = Duration::from_secs(24 * 3600);

#[derive(Parser)]
#[command(
    name = "confab-broadcast",
    version,
    about = "Host a synthetic livestream on a local Confab coordinator: the test pattern and a tone through its SFU"
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
    #[arg(long, default_value_t = 30, value_parser = clap::value_parser!(u32).range(1..=60))]
    fps: u32,
    /// Video bitrate in kbit/s.
    #[arg(long, default_value_t = 1500)]
    kbps: u32,
    /// The microphone's pitch in Hz.
    #[arg(long, default_value_t = 440, value_parser = clap::value_parser!(u32).range(50..=8000))]
    tone_hz: u32,
    /// Stop after this many seconds (default: run until SIGINT or SIGTERM).
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
    #[error("could not connect to {base}: {message}")]
    Connect { base: String, message: String },
    #[error("the coordinator refused {action}: {message}")]
    Refused {
        action: &'static str,
        message: String,
    },
    #[error(transparent)]
    Publish(#[from] confab_call_probe::ProbeError),
    #[error("could not listen for signals: {0}")]
    Signals(std::io::Error),
}

fn parse_livestream(text: &str) -> Result<CallCid, String> {
    CallCid::parse(text)
        .ok()
        .filter(|cid| cid.call_type == CallType::Livestream)
        .ok_or_else(|| "--call is livestream:<id>".to_owned())
}

fn parse_size(text: &str) -> Result<(u32, u32), String> {
    let (w, h) = text
        .split_once(['x', 'X'])
        .ok_or_else(|| format!("{text:?} is not a size like 1280x720"))?;
    let parse = |v: &str| {
        v.trim()
            .parse::<u32>()
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
fn print_line(line: serde_json::Value) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{line}").and_then(|()| out.flush());
}

fn refused(action: &'static str) -> impl FnOnce(confab_client::ApiError) -> BroadcasterError {
    move |e| BroadcasterError::Refused {
        action,
        message: e.to_string(),
    }
}

async fn run(cli: Cli) -> Result<(), BroadcasterError> {
    let mut term = signal(SignalKind::terminate()).map_err(BroadcasterError::Signals)?;
    let mut int = signal(SignalKind::interrupt()).map_err(BroadcasterError::Signals)?;
    let (api_key, secret) = read_app(&cli.data_dir)?;
    let token = SigningKey::new(secret).user_token(&cli.user, Some(HOST_TOKEN_TTL));
    let base = cli.base_url.trim_end_matches('/').to_owned();
    let client = VideoClient::new(api_key, ClientOptions::default().with_base_url(&base));
    client
        .connect_user(User::new(&cli.user), TokenSource::token(token))
        .await
        .map_err(|e| BroadcasterError::Connect {
            base: base.clone(),
            message: e.to_string(),
        })?;
    let call = client.call(cli.call.call_type.as_str(), cli.call.id.as_str());
    // The call's creator is its host; the join carries the SFU credentials.
    let (_, mut session) = call
        .join_with_media(true, CallSessionOptions::default())
        .await
        .map_err(|e| BroadcasterError::Refused {
            action: "the join",
            message: e.to_string(),
        })?;
    print_line(json!({"state": "joined"}));
    let (width, height) = cli.size;
    let video = VideoSettings {
        width,
        height,
        fps: cli.fps,
        bitrate_bps: cli.kbps.saturating_mul(1000),
        // The packager asks for a keyframe when a segment is due; this is the floor.
        keyframe_interval: cli.fps * 2,
    };
    let publishing = Publishing::start(&session, video, AudioSignal::Tone(cli.tone_hz)).await?;
    call.go_live().await.map_err(refused("go_live"))?;
    let playlist_url = call
        .start_hls()
        .await
        .map_err(refused("start_broadcasting"))?;
    print_line(json!({"state": "live", "playlist_url": playlist_url}));

    let deadline = tokio::time::sleep(Duration::from_secs(cli.seconds.unwrap_or(u64::MAX / 4)));
    tokio::pin!(deadline);
    let ended = loop {
        tokio::select! {
            _ = &mut deadline => break None,
            _ = term.recv() => break None,
            _ = int.recv() => break None,
            event = session.next_event() => match event {
                Some(CallEvent::KeyframeRequested { .. }) => {
                    publishing.stats.keyframe_wanted.store(true, Ordering::Relaxed);
                }
                Some(CallEvent::Disconnected { reason }) => break Some(reason),
                Some(_) => {}
                None => break Some("the SFU session closed".to_owned()),
            },
        }
    };
    publishing.stop();
    // Best effort: the broadcast ends either way (the coordinator ends a livestream whose host
    // has left the SFU).
    let _ = call.stop_hls().await;
    let _ = call.stop_live().await;
    session.leave().await;
    let _ = call.leave().await;
    print_line(json!({"state": "ended", "reason": ended}));
    Ok(())
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("confab-broadcast: could not start its runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("confab-broadcast: {e}");
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arguments_parse_and_bad_ones_say_why() {
        let cli = Cli::try_parse_from([
            "confab-broadcast",
            "--call",
            "livestream:demo",
            "--data-dir",
            "d",
            "--size",
            "640x360",
            "--tone-hz",
            "523",
        ])
        .unwrap();
        assert_eq!(cli.size, (640, 360));
        assert_eq!(cli.tone_hz, 523);
        assert_eq!(cli.call.id.as_str(), "demo");
        assert!(parse_livestream("default:demo").is_err());
        assert!(parse_size("640").unwrap_err().contains("1280x720"));
        assert!(parse_size("8x8").is_err());
        assert!(Cli::try_parse_from(["confab-broadcast", "--call", "livestream:x"]).is_err());
    }
}
