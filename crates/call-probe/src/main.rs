//! `confab-call-probe`: a Rust participant for end-to-end and interop tests. It joins an SFU
//! session (LiveKit's signalling, as Confab's embedded SFU or a livekit-server speaks it) with
//! `confab_client::media::CallSession`, optionally publishes a real H.264 test pattern and an
//! Opus tone, and prints what happens as JSON lines on stdout:
//!
//! ```text
//! {"event":"joined","sid":"PA_..","identity":".."}
//! {"event":"participant_joined","identity":".."}
//! {"event":"track","identity":"..","track_sid":"..","kind":"video","mime":"video/VP8"}
//! {"event":"summary","tracks":[{"identity":..,"track_sid":..,"kind":..,"mime":..,"frames":..,
//!   "keyframes":..,"bytes":..,"keyframe_width":..,"keyframe_height":..}]}
//! ```
//!
//! The summary comes after `--seconds` or on SIGTERM/SIGINT; then it leaves and exits 0.
//! Errors go to stderr with exit status 1 (2 for bad arguments). The token may come from
//! `CONFAB_PROBE_TOKEN` instead of `--token`, which keeps it out of the process list; it is
//! never printed.

mod report;

use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, ValueEnum};
use confab_client::media::{CallEvent, CallSession, CallSessionOptions, SfuCredentials};
use serde_json::json;
use tokio::signal::unix::{signal, SignalKind};

use confab_call_probe::publish::{AudioSignal, Publishing, VideoSettings};
use confab_call_probe::ProbeError;
use report::{emit, kind_name, Received};

#[derive(Parser)]
#[command(
    name = "confab-call-probe",
    version,
    about = "Join a call's SFU session, optionally publish a test pattern and a tone, and report what arrives as JSON lines"
)]
struct Cli {
    /// The SFU URL from the join credentials (credentials.server.url).
    #[arg(long)]
    url: String,
    /// The SFU access token (credentials.token). Prefer the environment variable: arguments
    /// show in the process list.
    #[arg(long, env = "CONFAB_PROBE_TOKEN", hide_env_values = true)]
    token: String,
    /// Publish an H.264 camera track (the test pattern) and an Opus microphone track.
    #[arg(long)]
    publish: bool,
    /// Leave after this many seconds.
    #[arg(long, default_value_t = 20)]
    seconds: u64,
    /// What the microphone track carries.
    #[arg(long, value_enum, default_value_t = Audio::Tone)]
    audio: Audio,
    /// The test pattern's size, WIDTHxHEIGHT.
    #[arg(long, default_value = "640x360", value_parser = parse_size)]
    size: (u32, u32),
    #[arg(long, default_value_t = 15, value_parser = clap::value_parser!(u32).range(1..=60))]
    fps: u32,
    /// Video bitrate in kbit/s.
    #[arg(long, default_value_t = 600)]
    kbps: u32,
    /// Seconds between keyframes.
    #[arg(long, default_value_t = 1.0)]
    keyframe_seconds: f64,
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Audio {
    /// A 440 Hz tone (pure-Rust Opus encoder).
    Tone,
    /// Opus CELT silence frames.
    Silence,
}

/// The probe's microphone pitch.
const PROBE_TONE_HZ: u32 = 440;

fn parse_size(text: &str) -> Result<(u32, u32), String> {
    let (w, h) = text
        .split_once(['x', 'X'])
        .ok_or_else(|| "the size is WIDTHxHEIGHT, e.g. 640x360".to_owned())?;
    let w: u32 = w
        .trim()
        .parse()
        .map_err(|_| format!("{w:?} is not a width"))?;
    let h: u32 = h
        .trim()
        .parse()
        .map_err(|_| format!("{h:?} is not a height"))?;
    if !(16..=3840).contains(&w) || !(16..=2160).contains(&h) {
        return Err("each side must be between 16 and 3840x2160".into());
    }
    Ok((w, h))
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
            eprintln!("confab-call-probe: could not start its runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let token = cli.token.clone();
    match runtime.block_on(run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            // Whatever an error quotes (a URL, a server's words), the token is not shown.
            let message = e.to_string();
            let message = if token.is_empty() {
                message
            } else {
                message.replace(&token, "[redacted]")
            };
            eprintln!("confab-call-probe: {message}");
            ExitCode::FAILURE
        }
    }
}

/// Resolves on SIGTERM or SIGINT.
struct Stop {
    term: tokio::signal::unix::Signal,
    int: tokio::signal::unix::Signal,
}

impl Stop {
    fn new() -> Result<Self, ProbeError> {
        let listen = |kind| {
            signal(kind)
                .map_err(|e| ProbeError::Setup(format!("could not listen for signals: {e}")))
        };
        Ok(Self {
            term: listen(SignalKind::terminate())?,
            int: listen(SignalKind::interrupt())?,
        })
    }

    async fn requested(&mut self) {
        tokio::select! {
            _ = self.term.recv() => {}
            _ = self.int.recv() => {}
        }
    }
}

async fn run(cli: Cli) -> Result<(), ProbeError> {
    let mut stop = Stop::new()?;
    let deadline = tokio::time::sleep(Duration::from_secs(cli.seconds));
    tokio::pin!(deadline);
    let credentials = SfuCredentials {
        url: cli.url.clone(),
        token: cli.token.clone(),
    };
    let mut received = Received::default();
    let mut session = tokio::select! {
        joined = CallSession::connect(credentials, CallSessionOptions::default()) => {
            joined.map_err(|e| ProbeError::Join(e.to_string()))?
        }
        // Stopped before it joined: nothing was received.
        _ = stop.requested() => {
            emit(&received.summary());
            return Ok(());
        }
        _ = &mut deadline => return Err(ProbeError::Join("it did not finish within --seconds".into())),
    };
    // Joined first, before anything publishing brings; a rejoin's new sid follows as it comes.
    emit(&json!({"event": "joined", "sid": session.sid(), "identity": session.identity()}));
    let mut sid = session.sid().to_owned();
    let publishing = if cli.publish {
        let video = VideoSettings {
            width: cli.size.0,
            height: cli.size.1,
            fps: cli.fps,
            bitrate_bps: cli.kbps.saturating_mul(1000),
            keyframe_interval: ((cli.fps as f64 * cli.keyframe_seconds).round() as u32).max(1),
        };
        let audio = match cli.audio {
            Audio::Tone => AudioSignal::Tone(PROBE_TONE_HZ),
            Audio::Silence => AudioSignal::Silence,
        };
        // Events wait in the session's buffer meanwhile (frames beyond it would be dropped,
        // which a second or two of publishing does not come near).
        let started = tokio::select! {
            started = Publishing::start(&session, video, audio) => started,
            _ = stop.requested() => {
                emit(&received.summary());
                session.leave().await;
                return Ok(());
            }
        };
        let publishing = started?;
        for track in &publishing.tracks {
            emit(
                &json!({"event": "published", "track_sid": track.sid(), "kind": kind_name(track.kind())}),
            );
        }
        Some(publishing)
    } else {
        None
    };
    let ended = loop {
        tokio::select! {
            _ = &mut deadline => break None,
            _ = stop.requested() => break None,
            event = session.next_event() => match event {
                Some(event) => {
                    if let CallEvent::KeyframeRequested { .. } = event {
                        if let Some(p) = &publishing {
                            p.stats.keyframe_wanted.store(true, std::sync::atomic::Ordering::Relaxed);
                        }
                        continue;
                    }
                    if let Some(reason) = on_event(&session, &mut sid, &mut received, event) {
                        break Some(reason);
                    }
                }
                None => break Some("the session closed".to_owned()),
            },
        }
    };
    if let Some(publishing) = publishing {
        let stats = &publishing.stats;
        let sent = json!({
            "event": "sent",
            "video_frames": stats.video_frames.load(std::sync::atomic::Ordering::Relaxed),
            "video_keyframes": stats.video_keyframes.load(std::sync::atomic::Ordering::Relaxed),
            "audio_frames": stats.audio_frames.load(std::sync::atomic::Ordering::Relaxed),
            "dropped": stats.dropped.load(std::sync::atomic::Ordering::Relaxed),
        });
        publishing.stop();
        emit(&sent);
    }
    emit(&received.summary());
    session.leave().await;
    match ended {
        None => Ok(()),
        Some(reason) => Err(ProbeError::Ended(reason)),
    }
}

/// Prints what an event means; returns why the call ended, if it did.
fn on_event(
    session: &CallSession,
    joined_sid: &mut String,
    received: &mut Received,
    event: CallEvent,
) -> Option<String> {
    match event {
        CallEvent::Joined { sid } => {
            if sid != *joined_sid {
                emit(&json!({"event": "joined", "sid": sid, "identity": session.identity()}));
                *joined_sid = sid;
            }
        }
        CallEvent::ParticipantJoined(p) => {
            emit(&json!({"event": "participant_joined", "identity": p.identity, "sid": p.sid}));
        }
        CallEvent::ParticipantLeft { identity, sid } => {
            emit(&json!({"event": "participant_left", "identity": identity, "sid": sid}));
        }
        CallEvent::TrackPublished { identity, track } => {
            emit(&json!({
                "event": "track",
                "identity": identity,
                "track_sid": track.sid,
                "kind": kind_name(track.kind),
                "mime": track.mime,
            }));
            received.announced(&identity, &track);
        }
        CallEvent::TrackUnpublished {
            identity,
            track_sid,
        } => {
            emit(
                &json!({"event": "track_unpublished", "identity": identity, "track_sid": track_sid}),
            );
        }
        CallEvent::Frame(frame) => received.frame(&frame),
        CallEvent::Reconnecting { attempt, .. } => {
            emit(&json!({"event": "reconnecting", "attempt": attempt}));
        }
        CallEvent::Reconnected => emit(&json!({"event": "reconnected"})),
        CallEvent::BandwidthEstimate { bps } => {
            emit(&json!({"event": "bandwidth_estimate", "bps": bps}));
        }
        CallEvent::Disconnected { reason } => {
            emit(&json!({"event": "disconnected", "reason": reason}));
            return Some(reason);
        }
        CallEvent::TrackMuted { .. }
        | CallEvent::KeyframeRequested { .. }
        | CallEvent::Speaking { .. }
        | CallEvent::DominantSpeaker { .. }
        | CallEvent::Quality { .. } => {}
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_parse_and_bad_ones_say_why() {
        assert_eq!(parse_size("640x360"), Ok((640, 360)));
        assert_eq!(parse_size("1280X720"), Ok((1280, 720)));
        assert!(parse_size("640").unwrap_err().contains("WIDTHxHEIGHT"));
        assert!(parse_size("8x8").is_err());
        assert!(parse_size("axb").is_err());
    }

    #[test]
    fn the_token_comes_from_the_flag_or_the_environment() {
        let cli =
            Cli::try_parse_from(["probe", "--url", "http://127.0.0.1:1/sfu", "--token", "t1"])
                .unwrap();
        assert_eq!(cli.token, "t1");
        assert_eq!(cli.seconds, 20);
        assert!(!cli.publish);
        // Without the flag or the variable, it is refused (the variable is not set in tests).
        if std::env::var_os("CONFAB_PROBE_TOKEN").is_none() {
            assert!(Cli::try_parse_from(["probe", "--url", "http://x"]).is_err());
        }
    }
}
