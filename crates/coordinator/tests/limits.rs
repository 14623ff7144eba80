//! The listener's limits, against a coordinator on loopback: slow headers, idle keep-alive
//! connections, the connection cap, requests per connection, the Host check, and event
//! sockets outliving the HTTP timeouts. Each test checks what is refused and that the server
//! still answers a normal request afterwards. Raw TCP is used where a client library would
//! hide what the server does (it would retry, or set Host itself).

mod support;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use confab_coordinator::{CoordinatorConfig, Limits, RunningCoordinator};
use futures_util::SinkExt;
use serde_json::Value;
use support::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;

async fn coordinator_with_limits(limits: Limits) -> RunningCoordinator {
    coordinator_with(CoordinatorConfig {
        limits,
        ..CoordinatorConfig::default()
    })
    .await
}

/// A request on a fresh connection with `Connection: close`; the whole answer as text.
async fn raw_request(addr: SocketAddr, request: &str) -> String {
    let mut tcp = TcpStream::connect(addr).await.expect("connects");
    tcp.write_all(request.as_bytes()).await.expect("sends");
    let mut answer = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), tcp.read_to_end(&mut answer)).await;
    String::from_utf8_lossy(&answer).into_owned()
}

fn edges_request(host: &str, api_key: &str) -> String {
    format!(
        "GET /video/edges?api_key={api_key} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n"
    )
}

/// A normal request through an ordinary client still gets its answer.
async fn still_answers(c: &RunningCoordinator) {
    let (status, body) = Rest::new(c).get("/edges", As::Public).await;
    assert_eq!(status, 200, "{body}");
}

/// Whether the server closes `tcp` within `within` (end of stream or reset; bytes it sends
/// first are read and ignored).
async fn closed_within(tcp: &mut TcpStream, within: Duration) -> bool {
    let deadline = Instant::now() + within;
    let mut buf = [0u8; 4096];
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match tokio::time::timeout(left, tcp.read(&mut buf)).await {
            Err(_) => return false,
            Ok(Ok(0)) | Ok(Err(_)) => return true,
            Ok(Ok(_)) => continue,
        }
    }
}

/// Reads one response with a `content-length` body off a keep-alive connection.
async fn read_response(tcp: &mut TcpStream) -> String {
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        let text = String::from_utf8_lossy(&got).into_owned();
        if let Some(end) = text.find("\r\n\r\n") {
            let length = text[..end]
                .lines()
                .find_map(|l| {
                    let (name, value) = l.split_once(':')?;
                    name.eq_ignore_ascii_case("content-length")
                        .then(|| value.trim().parse::<usize>().ok())?
                })
                .unwrap_or(0);
            if got.len() >= end + 4 + length {
                return text;
            }
        }
        let n = tokio::time::timeout(Duration::from_secs(5), tcp.read(&mut buf))
            .await
            .expect("a response within 5 s")
            .expect("reads");
        assert!(n > 0, "the connection closed mid-response: {text}");
        got.extend_from_slice(&buf[..n]);
    }
}

#[tokio::test]
async fn slow_headers_are_cut_after_the_header_timeout() {
    let c = coordinator_with_limits(Limits {
        header_read_timeout: Duration::from_millis(300),
        http_idle_timeout: Duration::from_secs(30),
        ..Limits::default()
    })
    .await;
    let mut tcp = TcpStream::connect(c.local_addr()).await.unwrap();
    let started = Instant::now();
    let request = edges_request(&c.local_addr().to_string(), c.api_key());
    // One byte every 50 ms, for at most 4 s: the whole request would take far longer.
    let mut cut = false;
    for byte in request.as_bytes().iter().take(80) {
        if tcp.write_all(&[*byte]).await.is_err()
            || closed_within(&mut tcp, Duration::from_millis(50)).await
        {
            cut = true;
            break;
        }
    }
    let took = started.elapsed();
    assert!(
        cut,
        "a client sending headers a byte at a time was not cut off"
    );
    assert!(
        took >= Duration::from_millis(250) && took < Duration::from_secs(2),
        "cut after {took:?}, expected about 300 ms"
    );
    still_answers(&c).await;
    c.shutdown().await;
}

#[tokio::test]
async fn idle_keep_alive_connections_are_closed() {
    let c = coordinator_with_limits(Limits {
        http_idle_timeout: Duration::from_millis(300),
        header_read_timeout: Duration::from_secs(10),
        ..Limits::default()
    })
    .await;
    let mut tcp = TcpStream::connect(c.local_addr()).await.unwrap();
    let request = format!(
        "GET /video/edges?api_key={} HTTP/1.1\r\nHost: {}\r\n\r\n",
        c.api_key(),
        c.local_addr()
    );
    tcp.write_all(request.as_bytes()).await.unwrap();
    let answer = read_response(&mut tcp).await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    let idle_from = Instant::now();
    assert!(
        closed_within(&mut tcp, Duration::from_secs(3)).await,
        "an idle keep-alive connection stayed open"
    );
    let idle = idle_from.elapsed();
    assert!(
        idle >= Duration::from_millis(200),
        "closed after {idle:?}, before the idle timeout"
    );
    // A connection that never sends anything is idle too.
    let mut silent = TcpStream::connect(c.local_addr()).await.unwrap();
    assert!(closed_within(&mut silent, Duration::from_secs(3)).await);
    still_answers(&c).await;
    c.shutdown().await;
}

#[tokio::test]
async fn connections_beyond_the_cap_do_not_stop_it_answering() {
    let cap = 8;
    let c = coordinator_with_limits(Limits {
        max_connections: cap,
        header_read_timeout: Duration::from_secs(30),
        http_idle_timeout: Duration::from_secs(30),
        ..Limits::default()
    })
    .await;
    // Far more silent connections than the cap: with no timeout soon, they would hold every
    // slot (and, without a cap, a descriptor each).
    let mut silent = Vec::new();
    for _ in 0..40 {
        silent.push(TcpStream::connect(c.local_addr()).await.unwrap());
    }
    // A normal request is answered: idle connections make room for it.
    let started = Instant::now();
    still_answers(&c).await;
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "answered only after {:?}",
        started.elapsed()
    );
    // Connections beyond the cap were closed rather than held.
    let mut closed = 0;
    for tcp in &mut silent {
        if closed_within(tcp, Duration::from_millis(100)).await {
            closed += 1;
        }
    }
    assert!(closed >= 40 - cap, "only {closed} of 40 were closed");

    // Slow clients holding every slot: a new one is closed after a short wait, and the slots
    // come back when their header timeout cuts them.
    let c2 = coordinator_with_limits(Limits {
        max_connections: 2,
        header_read_timeout: Duration::from_millis(500),
        ..Limits::default()
    })
    .await;
    let mut slow = Vec::new();
    for _ in 0..2 {
        let mut tcp = TcpStream::connect(c2.local_addr()).await.unwrap();
        tcp.write_all(b"GET /video/edges HTTP/1.1\r\nHo")
            .await
            .unwrap();
        slow.push(tcp);
    }
    tokio::time::sleep(Duration::from_millis(50)).await;
    let mut extra = TcpStream::connect(c2.local_addr()).await.unwrap();
    let _ = extra
        .write_all(edges_request(&c2.local_addr().to_string(), c2.api_key()).as_bytes())
        .await;
    let mut answer = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(3), extra.read_to_end(&mut answer)).await;
    assert!(
        answer.is_empty(),
        "a connection beyond the cap was served: {}",
        String::from_utf8_lossy(&answer)
    );
    for tcp in &mut slow {
        assert!(closed_within(tcp, Duration::from_secs(3)).await);
    }
    still_answers(&c2).await;
    c2.shutdown().await;
    c.shutdown().await;
}

#[tokio::test]
async fn a_keep_alive_connection_serves_a_bounded_number_of_requests() {
    let c = coordinator_with_limits(Limits {
        max_requests_per_connection: 3,
        ..Limits::default()
    })
    .await;
    let mut tcp = TcpStream::connect(c.local_addr()).await.unwrap();
    let request = format!(
        "GET /video/edges?api_key={} HTTP/1.1\r\nHost: {}\r\n\r\n",
        c.api_key(),
        c.local_addr()
    );
    for i in 1..=3 {
        tcp.write_all(request.as_bytes()).await.unwrap();
        let answer = read_response(&mut tcp).await.to_ascii_lowercase();
        assert!(answer.starts_with("http/1.1 200"), "{answer}");
        assert_eq!(answer.contains("connection: close"), i == 3, "{answer}");
    }
    assert!(closed_within(&mut tcp, Duration::from_secs(2)).await);
    still_answers(&c).await;
    c.shutdown().await;
}

#[tokio::test]
async fn a_loopback_listener_answers_only_loopback_hosts() {
    let c = coordinator_with(CoordinatorConfig::default()).await;
    let port = c.local_addr().port();
    for host in [
        "evil.example".to_owned(),
        format!("evil.example:{port}"),
        format!("localhost:{}", port.wrapping_add(1)),
        format!("192.168.1.10:{port}"),
    ] {
        let answer = raw_request(c.local_addr(), &edges_request(&host, c.api_key())).await;
        assert!(answer.starts_with("HTTP/1.1 403"), "Host {host}: {answer}");
        let body: Value = serde_json::from_str(answer.split("\r\n\r\n").nth(1).unwrap_or(""))
            .unwrap_or_else(|_| panic!("Stream's error shape: {answer}"));
        assert_eq!(body["StatusCode"], 403, "{body}");
        assert_eq!(body["code"], 17, "{body}");
    }
    // Without a Host header at all.
    let answer = raw_request(
        c.local_addr(),
        &format!("GET /video/edges?api_key={} HTTP/1.0\r\n\r\n", c.api_key()),
    )
    .await;
    assert!(
        answer.starts_with("HTTP/1.0 403") || answer.starts_with("HTTP/1.1 403"),
        "{answer}"
    );
    // The event socket too: a page on another name cannot open it.
    let mut tcp = TcpStream::connect(c.local_addr()).await.unwrap();
    tcp.write_all(
        format!(
            "GET /video/connect?api_key={} HTTP/1.1\r\nHost: evil.example:{port}\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n",
            c.api_key()
        )
        .as_bytes(),
    )
    .await
    .unwrap();
    let answer = read_response(&mut tcp).await;
    assert!(answer.starts_with("HTTP/1.1 403"), "{answer}");

    for host in [
        format!("localhost:{port}"),
        format!("127.0.0.1:{port}"),
        format!("127.0.0.2:{port}"),
        format!("[::1]:{port}"),
    ] {
        let answer = raw_request(c.local_addr(), &edges_request(&host, c.api_key())).await;
        assert!(answer.starts_with("HTTP/1.1 200"), "Host {host}: {answer}");
    }
    still_answers(&c).await;
    c.shutdown().await;
}

#[tokio::test]
async fn event_sockets_outlive_the_http_timeouts() {
    let c = coordinator_with_limits(Limits {
        http_idle_timeout: Duration::from_millis(200),
        header_read_timeout: Duration::from_millis(300),
        max_requests_per_connection: 1,
        ..Limits::default()
    })
    .await;
    let token = c.mint_token("alice", None);
    let (mut socket, ok) = connect_user(&c, "alice", &token).await;
    assert_eq!(ok["type"], "connection.ok", "{ok}");
    // Several HTTP timeouts pass; the socket is still there and answers health checks.
    tokio::time::sleep(Duration::from_millis(1200)).await;
    socket
        .send(Message::Text(
            r#"[{"type":"health.check","client_id":"alice"}]"#.into(),
        ))
        .await
        .unwrap();
    let answer = next_event(&mut socket, "health.check").await;
    assert_eq!(answer["type"], "health.check");
    assert_eq!(c.connection_count(), 1);
    still_answers(&c).await;
    c.shutdown().await;
}

#[tokio::test]
async fn shutdown_frees_the_port_with_keep_alive_connections_open() {
    let c = coordinator().await;
    let addr = c.local_addr();
    // An idle keep-alive connection and an open socket must not hold the shutdown up.
    let mut tcp = TcpStream::connect(addr).await.unwrap();
    tcp.write_all(
        edges_request(&addr.to_string(), c.api_key())
            .replace("Connection: close\r\n", "")
            .as_bytes(),
    )
    .await
    .unwrap();
    let _ = read_response(&mut tcp).await;
    let token = c.mint_token("bob", None);
    let (_socket, _) = connect_user(&c, "bob", &token).await;
    let started = Instant::now();
    c.shutdown().await;
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "shutdown took {:?}",
        started.elapsed()
    );
    assert!(closed_within(&mut tcp, Duration::from_secs(2)).await);
    assert!(
        TcpStream::connect(addr).await.is_err(),
        "the port is still open"
    );
}
