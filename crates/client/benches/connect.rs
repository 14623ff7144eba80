//! Client benchmark against a coordinator running as its own process:
//! - `connect_user` latency (new client -> connected), p50 and p95, for this client and, in
//!   the same run against the same coordinator, Stream's official JS client in Node;
//! - recovery from a dropped socket (fault injected -> connected again), p50 and p95;
//! - the memory of idle connected clients.
//!
//!   bash scripts/bench.sh client        (builds the release coordinator, then runs this)
//!
//! Prints figures; asserts nothing about them. Targets: this client's p50 at most a third of
//! the official one's; recovery p50 under 500 ms.

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use confab_client::{ClientOptions, ConnectionState, TokenSource, User, VideoClient};
use confab_coordinator::{Claims, SigningKey};

const KEY: &str = "benchkey";
const SECRET: &str = "bench-secret-not-for-production";
const ROUNDS: usize = 300;

fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn coordinator_bin() -> PathBuf {
    std::env::var_os("CONFAB_COORDINATOR")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo_root().join("target/release/confab-coordinator"))
}

fn token(user: &str) -> String {
    SigningKey::new(SECRET).sign(&Claims {
        user_id: Some(user.into()),
        ..Default::default()
    })
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn percentiles(mut samples: Vec<Duration>) -> (f64, f64) {
    samples.sort();
    let at = |p: f64| ms(samples[((samples.len() - 1) as f64 * p).round() as usize]);
    (at(0.5), at(0.95))
}

fn rss_kib() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(f64::NAN)
}

async fn wait_connected(client: &VideoClient, not: &str) -> String {
    let mut rx = client.state();
    loop {
        if let ConnectionState::Connected { connection_id } = &*rx.borrow_and_update() {
            if connection_id != not {
                return connection_id.clone();
            }
        }
        rx.changed().await.expect("client alive");
    }
}

#[tokio::main]
async fn main() {
    let bin = coordinator_bin();
    if !bin.exists() {
        eprintln!("{} is missing: run `cargo build --release -p confab-coordinator` (scripts/bench.sh does)", bin.display());
        std::process::exit(1);
    }
    let data_dir = std::env::temp_dir().join(format!("confab-bench-{}", std::process::id()));
    let mut server = Command::new(&bin)
        .args([
            "serve",
            "--addr",
            "127.0.0.1:0",
            "--api-key",
            KEY,
            "--fault-injection",
        ])
        // The environment, not an argument: arguments show in the process list.
        .env("CONFAB_API_SECRET", SECRET)
        .arg("--data-dir")
        .arg(&data_dir)
        .env("CONFAB_LOG", "warn")
        .stdout(Stdio::piped())
        .spawn()
        .expect("coordinator starts");
    let base = BufReader::new(server.stdout.take().unwrap())
        .lines()
        .map_while(Result::ok)
        .find_map(|l| l.strip_prefix("base_url=").map(str::to_owned))
        .expect("coordinator prints its base URL");
    let options = || ClientOptions::default().with_base_url(&base);

    // connect_user latency: a fresh client each round, as an app start would have.
    for i in 0..20 {
        let c = VideoClient::new(KEY, options());
        c.connect_user(
            User::new(format!("warm-{i}")),
            TokenSource::token(token(&format!("warm-{i}"))),
        )
        .await
        .unwrap();
        c.disconnect_user().await;
    }
    let mut rust = Vec::with_capacity(ROUNDS);
    for i in 0..ROUNDS {
        let user = format!("rust-{i}");
        let tok = token(&user);
        let client = VideoClient::new(KEY, options());
        let started = Instant::now();
        client
            .connect_user(User::new(&user), TokenSource::token(tok))
            .await
            .unwrap();
        rust.push(started.elapsed());
        client.disconnect_user().await;
    }
    let (rust_p50, rust_p95) = percentiles(rust);

    // The official client, same coordinator, same run.
    let script = repo_root().join("tests/official-client/bench-connect.mjs");
    let out = Command::new("node")
        .arg(&script)
        .args([&base, KEY, &ROUNDS.to_string()])
        .env("CONFAB_BENCH_SECRET", SECRET)
        .output()
        .expect("node runs the official client");
    let official: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|_| {
        panic!(
            "official client bench failed: {}",
            String::from_utf8_lossy(&out.stderr)
        )
    });
    let (js_p50, js_p95) = (
        official["p50"].as_f64().unwrap(),
        official["p95"].as_f64().unwrap(),
    );
    println!(
        "connect_user latency over {ROUNDS} connects (new client -> connection.ok), loopback:"
    );
    println!("  confab-client:            p50 {rust_p50:.3} ms  p95 {rust_p95:.3} ms");
    println!("  @stream-io/video-client:  p50 {js_p50:.3} ms  p95 {js_p95:.3} ms");
    println!(
        "  ratio (official / confab) at p50: {:.1}x",
        js_p50 / rust_p50
    );

    // Recovery from a dropped socket.
    let client = VideoClient::new(KEY, options());
    client
        .connect_user(
            User::new("recovering"),
            TokenSource::token(token("recovering")),
        )
        .await
        .unwrap();
    let http = reqwest::Client::new();
    let mut recovery = Vec::new();
    for _ in 0..50 {
        let before = wait_connected(&client, "").await;
        let started = Instant::now();
        http.post(format!("{base}/_faults"))
            .header("x-confab-api-secret", SECRET)
            .json(&serde_json::json!({"action": "drop_sockets", "user_id": "recovering"}))
            .send()
            .await
            .unwrap();
        wait_connected(&client, &before).await;
        recovery.push(started.elapsed());
    }
    let (rec_p50, rec_p95) = percentiles(recovery);
    println!("recovery from a dropped socket (fault -> connected), 50 drops: p50 {rec_p50:.1} ms  p95 {rec_p95:.1} ms");
    client.disconnect_user().await;

    // Memory: idle connected clients, marginal cost each.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let before = rss_kib();
    let mut idle = Vec::new();
    for i in 0..100 {
        let c = VideoClient::new(KEY, options());
        c.connect_user(
            User::new(format!("idle-{i}")),
            TokenSource::token(token(&format!("idle-{i}"))),
        )
        .await
        .unwrap();
        idle.push(c);
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    let after = rss_kib();
    println!(
        "memory of idle connected clients: {:.1} KiB each (100 clients: process RSS {:.1} -> {:.1} MiB)",
        (after - before) / 100.0,
        before / 1024.0,
        after / 1024.0
    );
    for c in &idle {
        c.disconnect_user().await;
    }
    let _ = server.kill();
    let _ = server.wait();
    let _ = std::fs::remove_dir_all(&data_dir);
}
