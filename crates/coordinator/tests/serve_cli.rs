//! `confab-coordinator serve` as a process: a reader that closes its stdout must not take the
//! server down; the SFU's flags. Loopback only; every wait is bounded and the server is killed
//! at the end.

use std::io::{BufRead, BufReader};
use std::net::{SocketAddr, TcpListener};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// Kills the server however the test ends.
struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// `serve` on `addr` with its data in `data_dir`, then `extra` arguments.
fn serve_command(addr: &str, data_dir: &std::path::Path, extra: &[&str]) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_confab-coordinator"));
    command
        .args(["serve", "--addr", addr, "--data-dir"])
        .arg(data_dir)
        .args(extra)
        .env_remove("CONFAB_API_SECRET")
        .env_remove("CONFAB_SFU_API_SECRET")
        .stdin(Stdio::null());
    command
}

/// The embedded SFU on loopback, on a free port (tests run side by side).
const LOOPBACK_SFU: [&str; 4] = ["--sfu-bind", "127.0.0.1", "--sfu-udp-port", "0"];

fn serve(addr: &str, data_dir: &std::path::Path) -> Server {
    spawn(serve_command(addr, data_dir, &LOOPBACK_SFU))
}

fn spawn(mut command: Command) -> Server {
    let child = command
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("the coordinator binary starts");
    Server(child)
}

/// Reads the server's stdout on a thread; lines arrive on the receiver.
fn stdout_lines(server: &mut Server) -> mpsc::Receiver<String> {
    let stdout = server.0.stdout.take().expect("stdout is piped");
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { return };
            if tx.send(line).is_err() {
                return;
            }
        }
    });
    rx
}

/// The value of the first `key=` line within 30 s.
fn status_value(lines: &mpsc::Receiver<String>, key: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(30);
    let prefix = format!("{key}=");
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let line = lines
            .recv_timeout(left)
            .unwrap_or_else(|_| panic!("the server prints {key}="));
        if let Some(value) = line.strip_prefix(&prefix) {
            return value.to_owned();
        }
    }
}

/// Runs a `serve` that should refuse to start; returns its exit code and stderr.
fn refused(mut command: Command) -> (Option<i32>, String) {
    let mut child = command
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the coordinator binary starts");
    let deadline = Instant::now() + Duration::from_secs(30);
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("serve kept running with flags it should refuse");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let output = child.wait_with_output().unwrap();
    (
        output.status.code(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

/// Whether the server answers a plain HTTP request, within a few seconds.
async fn answers_http(addr: SocketAddr) -> bool {
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(2))
        .build()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    while Instant::now() < deadline {
        if let Ok(r) = http
            .get(format!("http://{addr}/video/location_hint"))
            .send()
            .await
        {
            return r.status() == 200 && r.headers().contains_key("x-amz-cf-pop");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    false
}

#[tokio::test]
async fn the_server_outlives_a_reader_that_closes_stdout_after_the_first_line() {
    let dir = tempfile::tempdir().unwrap();
    let mut server = serve("127.0.0.1:0", dir.path());
    let stdout = server.0.stdout.take().unwrap();
    // Read the first line on a thread, so the wait for it is bounded.
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let mut reader = BufReader::new(stdout);
        let mut line = String::new();
        let _ = reader.read_line(&mut line);
        // Returning drops the reader: the pipe's read end closes after the first line.
        let _ = tx.send(line);
    });
    let line = rx
        .recv_timeout(Duration::from_secs(30))
        .expect("the server prints its base URL");
    let base_url = line
        .trim()
        .strip_prefix("base_url=")
        .unwrap_or_else(|| panic!("unexpected first line {line:?}"));
    let addr: SocketAddr = base_url
        .trim_start_matches("http://")
        .trim_end_matches("/video")
        .parse()
        .unwrap();
    assert!(addr.ip().is_loopback());
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        answers_http(addr).await,
        "the server answers after the pipe closed"
    );
    assert!(
        server.0.try_wait().unwrap().is_none(),
        "the server is running"
    );
}

#[tokio::test]
async fn the_server_outlives_a_stdout_closed_before_it_writes() {
    // The status lines are written right after start-up; closing the pipe as soon as the
    // process exists makes every write meet a closed pipe.
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let dir = tempfile::tempdir().unwrap();
    let mut server = serve(&addr.to_string(), dir.path());
    drop(server.0.stdout.take());
    assert!(
        answers_http(addr).await,
        "the server answers with stdout closed"
    );
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        server.0.try_wait().unwrap().is_none(),
        "the server is running"
    );
    assert!(answers_http(addr).await);
}

#[test]
fn the_embedded_sfu_prints_its_udp_address_and_what_it_announces() {
    let dir = tempfile::tempdir().unwrap();
    let mut extra = LOOPBACK_SFU.to_vec();
    extra.extend(["--sfu-announce", "127.0.0.1,127.0.0.2"]);
    let mut server = spawn(serve_command("127.0.0.1:0", dir.path(), &extra));
    let lines = stdout_lines(&mut server);
    let udp: SocketAddr = status_value(&lines, "sfu_udp_addr").parse().unwrap();
    assert!(udp.ip().is_loopback() && udp.port() != 0, "{udp}");
    assert!(
        std::net::UdpSocket::bind(udp).is_err(),
        "the SFU holds its UDP port"
    );
    assert_eq!(status_value(&lines, "sfu_announce"), "127.0.0.1,127.0.0.2");
}

#[test]
fn a_bad_sfu_announce_address_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let mut extra = LOOPBACK_SFU.to_vec();
    extra.extend(["--sfu-announce", "127.0.0.1,not-an-ip"]);
    let (code, stderr) = refused(serve_command("127.0.0.1:0", dir.path(), &extra));
    assert_eq!(code, Some(2), "{stderr}");
    assert!(
        stderr.contains("--sfu-announce") && stderr.contains("not-an-ip"),
        "{stderr}"
    );
    assert!(!stderr.contains("panicked"), "{stderr}");
}

const SFU_SECRET: &str = "external-sfu-secret-0123456789abcdef";

#[test]
fn an_external_sfu_needs_its_key_and_its_secret() {
    let dir = tempfile::tempdir().unwrap();
    let url = ["--sfu-url", "wss://sfu.example.test"];
    let (code, stderr) = refused(serve_command("127.0.0.1:0", dir.path(), &url));
    assert_eq!(code, Some(2), "{stderr}");
    assert!(stderr.contains("--sfu-api-key"), "{stderr}");

    let with_key = ["--sfu-url", "wss://sfu.example.test", "--sfu-api-key", "k"];
    let (code, stderr) = refused(serve_command("127.0.0.1:0", dir.path(), &with_key));
    assert_eq!(code, Some(1), "{stderr}");
    assert!(stderr.contains("CONFAB_SFU_API_SECRET"), "{stderr}");

    let empty = dir.path().join("empty-secret");
    std::fs::write(&empty, "\n").unwrap();
    let mut command = serve_command("127.0.0.1:0", dir.path(), &with_key);
    command.arg("--sfu-api-secret-file").arg(&empty);
    let (code, stderr) = refused(command);
    assert_eq!(code, Some(1), "{stderr}");
    assert!(stderr.contains("holds no secret"), "{stderr}");

    // An external SFU and the embedded one's flags do not mix.
    let mut mixed = with_key.to_vec();
    mixed.extend(["--sfu-udp-port", "0"]);
    let (code, stderr) = refused(serve_command("127.0.0.1:0", dir.path(), &mixed));
    assert_eq!(code, Some(2), "{stderr}");

    // A URL that is no SFU's.
    let mut command = serve_command(
        "127.0.0.1:0",
        dir.path(),
        &["--sfu-url", "sfu.example.test", "--sfu-api-key", "k"],
    );
    command.env("CONFAB_SFU_API_SECRET", SFU_SECRET);
    let (code, stderr) = refused(command);
    assert_eq!(code, Some(1), "{stderr}");
    assert!(stderr.contains("wss://"), "{stderr}");
    assert!(!stderr.contains(SFU_SECRET), "{stderr}");
}

#[test]
fn an_external_sfu_takes_the_place_of_the_embedded_one() {
    let dir = tempfile::tempdir().unwrap();
    let secret_file = dir.path().join("sfu-secret");
    std::fs::write(&secret_file, format!("{SFU_SECRET}\n")).unwrap();
    let with_key = ["--sfu-url", "wss://sfu.example.test", "--sfu-api-key", "k"];
    for from_file in [false, true] {
        let mut command = serve_command("127.0.0.1:0", dir.path(), &with_key);
        if from_file {
            command.arg("--sfu-api-secret-file").arg(&secret_file);
        } else {
            command.env("CONFAB_SFU_API_SECRET", SFU_SECRET);
        }
        let mut server = spawn(command);
        let lines = stdout_lines(&mut server);
        assert_eq!(status_value(&lines, "sfu_url"), "wss://sfu.example.test");
        drop(server);
        let printed: Vec<String> = lines.try_iter().collect();
        assert!(
            printed
                .iter()
                .all(|l| !l.starts_with("sfu_udp_addr=") && !l.contains(SFU_SECRET)),
            "{printed:?}"
        );
    }
}
