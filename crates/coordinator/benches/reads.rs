//! REST read benchmark for the coordinator, run as its own process as it would be deployed.
//! It exists to show what the store's locking costs under load:
//! 1. authenticated reads (`GET /video/call/default/{id}` with a valid token) from CLIENTS
//!    concurrent clients on loopback, REQUESTS in all: requests per second, p50 and p99;
//! 2. the same reads while one client keeps sending a large write (a members update of
//!    WRITE_MEMBERS members, one transaction) back to back: do the reads stall behind it?
//!
//!   cargo bench -p confab-coordinator --bench reads [-- CLIENTS REQUESTS WRITE_MEMBERS]
//!
//! Prints figures; asserts nothing about them.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use confab_coordinator::{Claims, SigningKey};
use serde_json::{json, Value};

const KEY: &str = "benchkey";
const SECRET: &str = "bench-secret-not-for-production";

fn token(user: &str) -> String {
    SigningKey::new(SECRET).sign(&Claims {
        user_id: Some(user.into()),
        ..Default::default()
    })
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

#[derive(Clone)]
struct Api {
    http: reqwest::Client,
    base: String,
}

impl Api {
    fn new(base: &str) -> Self {
        Self {
            http: reqwest::Client::new(),
            base: base.to_owned(),
        }
    }

    async fn send(
        &self,
        method: reqwest::Method,
        path: &str,
        user: &str,
        body: Option<&Value>,
    ) -> u16 {
        let mut req = self
            .http
            .request(method, format!("{}{path}", self.base))
            .query(&[("user_id", user), ("api_key", KEY)])
            .header("authorization", token(user))
            .header("stream-auth-type", "jwt");
        if let Some(body) = body {
            req = req.json(body);
        }
        match req.send().await {
            Ok(resp) => {
                let status = resp.status().as_u16();
                let _ = resp.bytes().await;
                status
            }
            Err(_) => 0,
        }
    }
}

/// Runs `total` reads from `clients` clients; returns the sorted latencies, wall time and
/// how many failed.
async fn reads(base: &str, clients: usize, total: usize) -> (Vec<Duration>, Duration, usize) {
    let next = Arc::new(AtomicUsize::new(0));
    let failed = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let tasks: Vec<_> = (0..clients)
        .map(|c| {
            let api = Api::new(base);
            let next = next.clone();
            let failed = failed.clone();
            tokio::spawn(async move {
                let user = format!("reader-{c}");
                let tok = token(&user);
                let url = format!("{}/call/default/bench-read", api.base);
                let mut samples = Vec::new();
                while next.fetch_add(1, Ordering::Relaxed) < total {
                    let t = Instant::now();
                    let ok = api
                        .http
                        .get(&url)
                        .query(&[("user_id", user.as_str()), ("api_key", KEY)])
                        .header("authorization", &tok)
                        .header("stream-auth-type", "jwt")
                        .send()
                        .await
                        .map(|r| r.status().as_u16() == 200)
                        .unwrap_or(false);
                    samples.push(t.elapsed());
                    if !ok {
                        failed.fetch_add(1, Ordering::Relaxed);
                    }
                }
                samples
            })
        })
        .collect();
    let mut all = Vec::with_capacity(total);
    for task in tasks {
        all.extend(task.await.unwrap_or_default());
    }
    let wall = started.elapsed();
    all.sort();
    (all, wall, failed.load(Ordering::Relaxed))
}

fn report(label: &str, samples: &[Duration], wall: Duration, failed: usize) {
    println!(
        "{label}: {} requests in {:.2} s = {:.0} req/s; p50 {:.3} ms, p99 {:.3} ms, max {:.3} ms; {failed} failed",
        samples.len(),
        wall.as_secs_f64(),
        samples.len() as f64 / wall.as_secs_f64(),
        percentile(samples, 0.50).as_secs_f64() * 1e3,
        percentile(samples, 0.99).as_secs_f64() * 1e3,
        samples.last().map(|d| d.as_secs_f64() * 1e3).unwrap_or(0.0),
    );
}

#[tokio::main]
async fn main() {
    let numbers: Vec<usize> = std::env::args()
        .skip(1)
        .filter_map(|a| a.parse().ok())
        .collect();
    let clients = numbers.first().copied().unwrap_or(16);
    let total = numbers.get(1).copied().unwrap_or(20_000);
    let write_members = numbers.get(2).copied().unwrap_or(10_000);
    let data_dir = tempfile::tempdir().expect("temp dir");
    let mut server = Command::new(env!("CARGO_BIN_EXE_confab-coordinator"))
        .args([
            "serve",
            "--addr",
            "127.0.0.1:0",
            "--api-key",
            KEY,
            "--api-secret",
            SECRET,
        ])
        .arg("--data-dir")
        .arg(data_dir.path())
        .env("CONFAB_LOG", "warn")
        .stdout(Stdio::piped())
        .spawn()
        .expect("coordinator starts");
    let base = BufReader::new(server.stdout.take().expect("stdout is piped"))
        .lines()
        .map_while(Result::ok)
        .find_map(|l| l.strip_prefix("base_url=").map(str::to_owned))
        .expect("coordinator prints its base URL");
    let api = Api::new(&base);

    // A call with a few members, read by everyone; a second one that the writer rewrites.
    let members: Vec<Value> = (0..8)
        .map(|i| json!({"user_id": format!("m{i}")}))
        .collect();
    let created = api
        .send(
            reqwest::Method::POST,
            "/call/default/bench-read",
            "host",
            Some(&json!({"data": {"members": members}})),
        )
        .await;
    assert_eq!(created, 201, "the read call is created");
    let created = api
        .send(
            reqwest::Method::POST,
            "/call/default/bench-write",
            "host",
            Some(&json!({})),
        )
        .await;
    assert_eq!(created, 201, "the write call is created");

    println!("coordinator at {base}; {clients} clients, {total} reads per run");
    // Warm-up: connections, caches, SQLite pages.
    reads(&base, clients, total / 10).await;

    let (samples, wall, failed) = reads(&base, clients, total).await;
    report("reads alone", &samples, wall, failed);

    // The same reads while one client sends large writes back to back.
    let stop = Arc::new(AtomicBool::new(false));
    let writer = {
        let api = api.clone();
        let stop = stop.clone();
        tokio::spawn(async move {
            let mut round = 0u64;
            let mut took = Vec::new();
            while !stop.load(Ordering::Relaxed) {
                round += 1;
                let body = json!({"update_members": (0..write_members)
                    .map(|i| json!({"user_id": format!("w{i}"), "custom": {"round": round}}))
                    .collect::<Vec<_>>()});
                let t = Instant::now();
                let status = api
                    .send(
                        reqwest::Method::POST,
                        "/call/default/bench-write/members",
                        "host",
                        Some(&body),
                    )
                    .await;
                took.push((t.elapsed(), status));
            }
            took
        })
    };
    // Let the first write start before measuring.
    tokio::time::sleep(Duration::from_millis(100)).await;
    let (samples, wall, failed) = reads(&base, clients, total).await;
    stop.store(true, Ordering::Relaxed);
    let writes = writer.await.unwrap_or_default();
    report(
        &format!("reads beside {write_members}-member writes"),
        &samples,
        wall,
        failed,
    );
    let ok = writes
        .iter()
        .filter(|(_, s)| *s == 201 || *s == 200)
        .count();
    let mean =
        writes.iter().map(|(d, _)| d.as_secs_f64()).sum::<f64>() / writes.len().max(1) as f64;
    println!(
        "  the writer sent {} members updates ({ok} answered 2xx), {:.0} ms each on average",
        writes.len(),
        mean * 1e3
    );

    let _ = server.kill();
    let _ = server.wait();
}
