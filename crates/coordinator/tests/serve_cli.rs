//! `confab-coordinator serve` as a process: a reader that closes its stdout must not take the
//! server down. Loopback only; every wait is bounded and the server is killed at the end.

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

fn serve(addr: &str, data_dir: &std::path::Path) -> Server {
    let child = Command::new(env!("CARGO_BIN_EXE_confab-coordinator"))
        .args(["serve", "--addr", addr, "--data-dir"])
        .arg(data_dir)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("the coordinator binary starts");
    Server(child)
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
