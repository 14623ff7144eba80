//! Socket benchmark for the coordinator, run as its own process as it would be deployed:
//! 1. `connection.ok` latency on loopback (auth frame sent -> connection.ok received), p50/p95;
//! 2. how many authenticated sockets one coordinator holds with health checks answered, and
//!    its resident memory.
//!
//!   cargo bench -p confab-coordinator --bench sockets [-- SOCKETS]
//!
//! Prints figures; asserts nothing about them (targets: p50 well under 1 ms; 10,000 sockets
//! under 300 MB).

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use confab_coordinator::{Claims, SigningKey};
use futures_util::{SinkExt, StreamExt};
use tokio_tungstenite::tungstenite::Message;

const KEY: &str = "benchkey";
const SECRET: &str = "bench-secret-not-for-production";

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

fn rss_mib(pid: u32) -> f64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .map(|kb| kb / 1024.0)
        .unwrap_or(f64::NAN)
}

fn token(user: &str) -> String {
    SigningKey::new(SECRET).sign(&Claims {
        user_id: Some(user.into()),
        ..Default::default()
    })
}

type Socket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

async fn connect(url: &str, user: &str, token: &str) -> (Socket, Duration) {
    let (mut ws, _) = tokio_tungstenite::connect_async(url)
        .await
        .expect("socket opens");
    let auth =
        format!(r#"{{"token":"{token}","products":["video"],"user_details":{{"id":"{user}"}}}}"#);
    let sent = Instant::now();
    ws.send(Message::Text(auth.into()))
        .await
        .expect("auth frame sent");
    loop {
        match ws.next().await {
            Some(Ok(Message::Text(t))) => {
                assert!(t.contains("connection.ok"), "refused: {t}");
                return (ws, sent.elapsed());
            }
            Some(Ok(_)) => continue,
            other => panic!("socket ended during the handshake: {other:?}"),
        }
    }
}

#[tokio::main]
async fn main() {
    let sockets: usize = std::env::args()
        .skip(1)
        .find_map(|a| a.parse().ok())
        .unwrap_or(10_000);
    let data_dir = tempfile::tempdir().expect("temp dir");
    let mut server = Command::new(env!("CARGO_BIN_EXE_confab-coordinator"))
        .args(["serve", "--addr", "127.0.0.1:0", "--api-key", KEY])
        // The environment, not an argument: arguments show in the process list.
        .env("CONFAB_API_SECRET", SECRET)
        .arg("--data-dir")
        .arg(data_dir.path())
        .args(["--idle-timeout-secs", "600"])
        .env("CONFAB_LOG", "warn")
        .stdout(Stdio::piped())
        .spawn()
        .expect("coordinator starts");
    let pid = server.id();
    let base = BufReader::new(server.stdout.take().unwrap())
        .lines()
        .map_while(Result::ok)
        .find_map(|l| l.strip_prefix("base_url=").map(str::to_owned))
        .expect("coordinator prints its base URL");
    let url = format!(
        "{}/connect?api_key={KEY}&stream-auth-type=jwt",
        base.replacen("http", "ws", 1)
    );
    println!(
        "coordinator pid {pid} at {base}; idle RSS {:.1} MiB",
        rss_mib(pid)
    );

    // 1. Handshake latency, one socket at a time (warm-up first).
    for i in 0..50 {
        let user = format!("warm-{i}");
        connect(&url, &user, &token(&user)).await;
    }
    let mut samples = Vec::new();
    for i in 0..1000 {
        let user = format!("lat-{i}");
        let tok = token(&user);
        let (mut ws, took) = connect(&url, &user, &tok).await;
        samples.push(took);
        let _ = ws.close(None).await;
    }
    samples.sort();
    println!(
        "connection.ok latency over {} handshakes (auth frame sent -> connection.ok received, loopback): p50 {:.3} ms, p95 {:.3} ms, max {:.3} ms",
        samples.len(),
        percentile(&samples, 0.50).as_secs_f64() * 1e3,
        percentile(&samples, 0.95).as_secs_f64() * 1e3,
        samples.last().unwrap().as_secs_f64() * 1e3,
    );

    // 2. Many sockets held open, each answering a health check.
    let before = rss_mib(pid);
    let started = Instant::now();
    let mut held: Vec<Socket> = Vec::with_capacity(sockets);
    let batch = 250;
    let mut next = 0;
    while next < sockets {
        let end = (next + batch).min(sockets);
        let opened = futures_util::future::join_all((next..end).map(|i| {
            let url = url.clone();
            async move {
                let user = format!("held-{i}");
                connect(&url, &user, &token(&user)).await.0
            }
        }))
        .await;
        held.extend(opened);
        next = end;
    }
    let open_secs = started.elapsed().as_secs_f64();
    let after_connect = rss_mib(pid);

    let started = Instant::now();
    let answered = futures_util::future::join_all(held.iter_mut().map(|ws| async move {
        ws.send(Message::Text(
            r#"[{"type":"health.check","client_id":"bench"}]"#.into(),
        ))
        .await
        .ok()?;
        loop {
            match tokio::time::timeout(Duration::from_secs(30), ws.next()).await {
                Ok(Some(Ok(Message::Text(t)))) if t.contains("health.check") => return Some(()),
                Ok(Some(Ok(_))) => continue,
                _ => return None,
            }
        }
    }))
    .await
    .into_iter()
    .flatten()
    .count();
    let check_secs = started.elapsed().as_secs_f64();
    let after_checks = rss_mib(pid);
    println!(
        "{sockets} authenticated sockets opened in {open_secs:.1} s; {answered} of {sockets} health checks answered in {check_secs:.2} s"
    );
    println!(
        "coordinator RSS: {before:.1} MiB before, {after_connect:.1} MiB with {sockets} sockets, {after_checks:.1} MiB after the health checks ({:.1} KiB per socket)",
        (after_checks - before) * 1024.0 / sockets as f64
    );

    drop(held);
    let _ = server.kill();
    let _ = server.wait();
}
