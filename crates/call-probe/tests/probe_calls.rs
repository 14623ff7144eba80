//! Two probes in one call through the embedded SFU on loopback: each must report the other's
//! H.264 test pattern (with the keyframe's real size) and Opus tone, exit 0 at the end of
//! `--seconds`, and stop cleanly with a summary on SIGTERM.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use confab_sfu::{AccessToken, ApiSecret, Sfu, SfuConfig, VideoGrant};
use serde_json::Value;

const KEY: &str = "probe-key";
const SECRET: &str = "a-probe-secret-of-enough-length";
const PROBE: &str = env!("CARGO_BIN_EXE_confab-call-probe");

async fn start_sfu() -> (Sfu, String, tokio::task::JoinHandle<()>) {
    let sfu = Sfu::start(SfuConfig::loopback(KEY, ApiSecret::new(SECRET)))
        .await
        .expect("the SFU starts");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let app = axum::Router::new().nest("/sfu", sfu.router());
    let server = tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    (sfu, format!("http://{addr}/sfu"), server)
}

fn token(identity: &str) -> String {
    confab_sfu::token::mint(
        KEY,
        &ApiSecret::new(SECRET),
        &AccessToken {
            identity: identity.into(),
            name: identity.into(),
            grant: VideoGrant {
                room: "default:probes".into(),
                room_join: true,
                can_publish: Some(true),
                ..VideoGrant::default()
            },
            ttl: Duration::from_secs(600),
        },
    )
}

/// A running probe and its stdout lines as they come.
struct Probe {
    child: Child,
    lines: mpsc::Receiver<Value>,
    seen: Vec<Value>,
}

impl Probe {
    /// Starts a publishing probe; the token goes in the environment or on the command line.
    fn start(url: &str, identity: &str, seconds: u64, token_in_env: bool) -> Probe {
        let mut command = Command::new(PROBE);
        command.args(["--url", url, "--publish", "--seconds", &seconds.to_string()]);
        if token_in_env {
            command.env("CONFAB_PROBE_TOKEN", token(identity));
        } else {
            command
                .env_remove("CONFAB_PROBE_TOKEN")
                .args(["--token", &token(identity)]);
        }
        let mut child = command
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("the probe starts");
        let stdout = child.stdout.take().unwrap();
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                let value: Value = serde_json::from_str(&line)
                    .unwrap_or_else(|e| panic!("not a JSON line ({e}): {line}"));
                if tx.send(value).is_err() {
                    break;
                }
            }
        });
        Probe {
            child,
            lines,
            seen: Vec::new(),
        }
    }

    /// Waits (bounded) for an event with this name.
    fn wait_for(&mut self, event: &str, limit: Duration) -> Value {
        if let Some(v) = self.seen.iter().find(|v| v["event"] == event) {
            return v.clone();
        }
        let deadline = std::time::Instant::now() + limit;
        loop {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            let value = self.lines.recv_timeout(left).unwrap_or_else(|_| {
                panic!("no {event} event within {limit:?}; saw {:?}", self.seen)
            });
            self.seen.push(value.clone());
            if value["event"] == event {
                return value;
            }
        }
    }

    /// Waits (bounded) for the exit status; kills the probe if it does not come.
    fn wait_exit(&mut self, limit: Duration) -> std::process::ExitStatus {
        let deadline = std::time::Instant::now() + limit;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            if std::time::Instant::now() > deadline {
                let _ = self.child.kill();
                panic!("the probe did not exit within {limit:?}");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Probe {
    fn drop(&mut self) {
        if self.child.try_wait().ok().flatten().is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

fn track<'a>(summary: &'a Value, identity: &str, kind: &str) -> &'a Value {
    summary["tracks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["identity"] == identity && t["kind"] == kind)
        .unwrap_or_else(|| panic!("no {kind} track from {identity} in {summary}"))
}

/// Probes that publish take turns: each encodes H.264 and Opus, and a third one beside the
/// pair on a loaded two-core machine can eat into the seconds the pair overlaps.
static ONE_CALL_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_probes_receive_each_others_test_pattern_and_tone() {
    let _turn = ONE_CALL_AT_A_TIME.lock().await;
    let (sfu, url, server) = start_sfu().await;
    let (ada, bob) = tokio::task::spawn_blocking(move || {
        let mut ada = Probe::start(&url, "ada", 10, true);
        let joined = ada.wait_for("joined", Duration::from_secs(15));
        assert_eq!(joined["identity"], "ada");
        assert!(joined["sid"].as_str().unwrap().starts_with("PA_"));
        let mut bob = Probe::start(&url, "bob", 10, false);
        bob.wait_for("joined", Duration::from_secs(15));
        let seen = bob.wait_for("participant_joined", Duration::from_secs(15));
        assert_eq!(seen["identity"], "ada");
        let track = bob.wait_for("track", Duration::from_secs(15));
        assert_eq!(track["identity"], "ada");
        let ada_summary = ada.wait_for("summary", Duration::from_secs(20));
        let bob_summary = bob.wait_for("summary", Duration::from_secs(20));
        assert!(ada.wait_exit(Duration::from_secs(10)).success());
        assert!(bob.wait_exit(Duration::from_secs(10)).success());
        (ada_summary, bob_summary)
    })
    .await
    .unwrap();
    // Shown when the test fails (or with --nocapture).
    eprintln!("ada: {ada}\nbob: {bob}");
    for (summary, other) in [(&ada, "bob"), (&bob, "ada")] {
        let video = track(summary, other, "video");
        assert_eq!(video["mime"], "video/H264");
        // At least 2 s of the 10 each runs at 15 fps (a probe counts from its own launch, and
        // joining and the first keyframe take some of it), a keyframe a second.
        assert!(video["frames"].as_u64().unwrap() >= 30, "{video}");
        assert!(video["keyframes"].as_u64().unwrap() >= 2, "{video}");
        assert_eq!(video["keyframe_width"], 640);
        assert_eq!(video["keyframe_height"], 360);
        let audio = track(summary, other, "audio");
        assert_eq!(audio["mime"], "audio/opus");
        assert!(audio["frames"].as_u64().unwrap() >= 100, "{audio}");
        assert!(
            audio["bytes"].as_u64().unwrap() > 100 * 20,
            "a tone, not silence: {audio}"
        );
    }
    server.abort();
    drop(sfu);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_ends_the_probe_with_a_summary_and_status_0() {
    let _turn = ONE_CALL_AT_A_TIME.lock().await;
    let (_sfu, url, server) = start_sfu().await;
    tokio::task::spawn_blocking(move || {
        let mut probe = Probe::start(&url, "cy", 60, true);
        probe.wait_for("joined", Duration::from_secs(15));
        probe.wait_for("published", Duration::from_secs(15));
        let status = Command::new("kill")
            .args(["-TERM", &probe.child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
        let summary = probe.wait_for("summary", Duration::from_secs(10));
        assert_eq!(summary["tracks"], Value::Array(Vec::new()));
        assert!(probe.wait_exit(Duration::from_secs(10)).success());
    })
    .await
    .unwrap();
    server.abort();
}

#[test]
fn a_refused_join_is_an_error_on_stderr_without_the_token() {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let (_sfu, url, _server) = runtime.block_on(start_sfu());
    let bad = "not.a.token";
    let out = Command::new(PROBE)
        .args(["--url", &url, "--seconds", "10"])
        .env("CONFAB_PROBE_TOKEN", bad)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("could not join"), "{stderr}");
    assert!(!stderr.contains(bad), "{stderr}");
    assert!(!String::from_utf8_lossy(&out.stdout).contains(bad));
}
