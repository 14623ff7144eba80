//! Helpers for the coordinator's integration tests: a coordinator on a loopback port and
//! plain HTTP and WebSocket clients that speak the wire protocol directly.

#![allow(dead_code)]

use std::time::Duration;

use confab_coordinator::{CoordinatorConfig, Limits, RunningCoordinator};
use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

pub async fn coordinator() -> RunningCoordinator {
    coordinator_with(CoordinatorConfig {
        fault_injection: true,
        dev_token_endpoint: true,
        ..CoordinatorConfig::default()
    })
    .await
}

pub async fn coordinator_with(config: CoordinatorConfig) -> RunningCoordinator {
    confab_coordinator::start(config)
        .await
        .expect("coordinator starts")
}

pub fn short_limits() -> Limits {
    Limits {
        idle_timeout: Duration::from_millis(400),
        auth_timeout: Duration::from_millis(400),
        max_body_bytes: 4096,
        max_frame_bytes: 4096,
        ..Limits::default()
    }
}

/// A REST caller with Stream's headers.
pub struct Rest {
    pub http: reqwest::Client,
    pub base: String,
    pub api_key: String,
}

pub enum As<'a> {
    User(&'a str, &'a str),
    Anonymous(Option<&'a str>),
    Public,
}

impl Rest {
    pub fn new(c: &RunningCoordinator) -> Self {
        Self {
            http: reqwest::Client::new(),
            base: c.base_url().to_owned(),
            api_key: c.api_key().to_owned(),
        }
    }

    pub async fn send(
        &self,
        method: reqwest::Method,
        path: &str,
        who: As<'_>,
        connection_id: Option<&str>,
        body: Option<Value>,
    ) -> (u16, Value) {
        let mut query = vec![("api_key", self.api_key.clone())];
        let mut req = self.http.request(method, format!("{}{}", self.base, path));
        match who {
            As::User(id, token) => {
                query.insert(0, ("user_id", id.to_owned()));
                req = req
                    .header("authorization", token)
                    .header("stream-auth-type", "jwt");
            }
            As::Anonymous(token) => {
                query.insert(0, ("user_id", "!anon".to_owned()));
                req = req.header("stream-auth-type", "anonymous");
                if let Some(token) = token {
                    req = req.header("authorization", token);
                }
            }
            As::Public => req = req.header("stream-auth-type", "anonymous"),
        }
        if let Some(conn) = connection_id {
            query.push(("connection_id", conn.to_owned()));
        }
        req = req.query(&query);
        if let Some(body) = body {
            req = req.json(&body);
        }
        let res = req.send().await.expect("request reaches the coordinator");
        let status = res.status().as_u16();
        let text = res.text().await.unwrap_or_default();
        (
            status,
            serde_json::from_str(&text).unwrap_or(Value::String(text)),
        )
    }

    pub async fn get(&self, path: &str, who: As<'_>) -> (u16, Value) {
        self.send(reqwest::Method::GET, path, who, None, None).await
    }

    pub async fn post(&self, path: &str, who: As<'_>, body: Value) -> (u16, Value) {
        self.send(reqwest::Method::POST, path, who, None, Some(body))
            .await
    }
}

pub type Socket = WebSocketStream<MaybeTlsStream<TcpStream>>;

pub async fn open_socket(c: &RunningCoordinator) -> Socket {
    let url = format!(
        "{}/connect?api_key={}&stream-auth-type=jwt&X-Stream-Client=confab-tests",
        c.base_url().replacen("http", "ws", 1),
        c.api_key()
    );
    let (socket, _) = tokio_tungstenite::connect_async(url)
        .await
        .expect("socket opens");
    socket
}

/// Opens a socket and authenticates; returns it with the first frame the server sent.
pub async fn connect_user(c: &RunningCoordinator, user_id: &str, token: &str) -> (Socket, Value) {
    let mut socket = open_socket(c).await;
    let auth = json!({"token": token, "products": ["video"], "user_details": {"id": user_id, "name": user_id.to_uppercase()}});
    socket
        .send(Message::Text(auth.to_string().into()))
        .await
        .unwrap();
    let first = next_json(&mut socket).await.expect("a first frame");
    (socket, first)
}

/// The next JSON text frame, or `None` if the socket closed (within 5 s).
pub async fn next_json(socket: &mut Socket) -> Option<Value> {
    loop {
        let msg = tokio::time::timeout(Duration::from_secs(5), socket.next())
            .await
            .expect("a frame within 5 s")?;
        match msg {
            Ok(Message::Text(t)) => {
                return Some(serde_json::from_str(&t).expect("frames are JSON"))
            }
            Ok(Message::Close(_)) | Err(_) => return None,
            Ok(_) => continue,
        }
    }
}

/// Skips frames until one of `event_type` arrives.
pub async fn next_event(socket: &mut Socket, event_type: &str) -> Value {
    loop {
        let v = next_json(socket)
            .await
            .unwrap_or_else(|| panic!("socket closed before {event_type}"));
        if v["type"] == event_type {
            return v;
        }
    }
}

/// How the socket ended: `Some(code)` for a close frame, `None` for a cut connection.
pub async fn close_code(socket: &mut Socket) -> Option<u16> {
    loop {
        let msg = tokio::time::timeout(Duration::from_secs(5), socket.next())
            .await
            .expect("socket ends within 5 s");
        match msg {
            Some(Ok(Message::Close(frame))) => return frame.map(|f| u16::from(f.code)),
            Some(Ok(_)) => continue,
            Some(Err(_)) | None => return None,
        }
    }
}
