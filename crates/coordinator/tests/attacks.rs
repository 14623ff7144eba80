//! The attack suite: one coordinator on loopback, attacked through its public surface (REST,
//! the event socket, HLS, the fault switch, the CLI) with what the security review found and
//! with the token, id, body and frame cases that were already refused. Every attack must be
//! refused (or, for guests, must not touch anyone else's record), the stored users, calls and
//! members must be unchanged afterwards, and the same server must answer throughout.
//!
//! Over 600 lines on purpose: one server and one report for the whole suite, so the figures
//! it prints (inputs tried, refused, restarts, data lost) cover every attack in one run.
//!
//! Listener-level attacks (slow headers, idle connection floods, the Host header) are tested
//! with the listener's own hardening, not here. Every loop here is bounded.

mod support;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use confab_coordinator::{Claims, CoordinatorConfig, Limits, RunningCoordinator};
use futures_util::SinkExt;
use serde_json::{json, Value};
use support::*;
use tokio_tungstenite::tungstenite::Message;

const SECRET: &str = "attack-suite-secret-0123456789abcdef";
const KB: usize = 1024;

/// Rows of the store, keyed by table and primary key, every column (timestamps included: a
/// refused request must not touch a row at all).
type Snapshot = BTreeMap<String, String>;

fn snapshot(dir: &Path) -> Snapshot {
    let conn = rusqlite::Connection::open(dir.join("coordinator.sqlite3")).expect("store opens");
    let mut out = Snapshot::new();
    for (table, sql) in [
        (
            "users",
            "SELECT id, id, name, image, custom, role, created_at, updated_at FROM users",
        ),
        (
            "calls",
            "SELECT cid, cid, created_by, custom, backstage, created_at, updated_at, type FROM calls",
        ),
        (
            "members",
            "SELECT call_cid || '/' || user_id, user_id, role, custom, created_at, updated_at, call_cid, '' FROM members",
        ),
    ] {
        let mut stmt = conn.prepare(sql).expect("query");
        let rows = stmt
            .query_map([], |r| {
                let mut cols = Vec::new();
                for i in 1..8 {
                    let v: rusqlite::types::Value = r.get(i)?;
                    cols.push(format!("{v:?}"));
                }
                Ok((r.get::<_, String>(0)?, cols.join("|")))
            })
            .expect("rows");
        for row in rows {
            let (k, v) = row.expect("row");
            out.insert(format!("{table}/{k}"), v);
        }
    }
    out
}

/// What the suite tried, for the report at the end.
#[derive(Default)]
struct Report {
    tried: usize,
    refused: usize,
    groups: Vec<(String, usize)>,
}

impl Report {
    /// Records one attack and asserts it was refused as expected.
    fn refused(&mut self, what: &str, ok: bool, detail: impl std::fmt::Display) {
        self.tried += 1;
        assert!(ok, "{what} was not refused as expected: {detail}");
        self.refused += 1;
    }

    fn group(&mut self, name: &str, since: usize) {
        self.groups.push((name.to_owned(), self.tried - since));
    }
}

fn is_error(body: &Value, code: i64, status: u16) -> bool {
    body["code"] == code && body["StatusCode"] == status && body["message"].is_string()
}

/// The rows that existed in `before` are unchanged in `after` (new rows may have been added,
/// e.g. the guest an attack created under a fresh id).
fn kept(before: &Snapshot, after: &Snapshot) -> Result<(), String> {
    for (k, v) in before {
        match after.get(k) {
            Some(now) if now == v => {}
            Some(now) => return Err(format!("{k} changed: {v} -> {now}")),
            None => return Err(format!("{k} was lost")),
        }
    }
    Ok(())
}

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

fn forge(header: &str, claims: &Value, signature: &str) -> String {
    format!(
        "{}.{}.{signature}",
        URL_SAFE_NO_PAD.encode(header),
        URL_SAFE_NO_PAD.encode(claims.to_string())
    )
}

struct Suite {
    c: RunningCoordinator,
    rest: Rest,
    http: reqwest::Client,
    dir: PathBuf,
    report: Report,
}

impl Suite {
    fn url(&self, path: &str) -> String {
        let sep = if path.contains('?') { '&' } else { '?' };
        format!(
            "{}{path}{sep}api_key={}",
            self.c.base_url(),
            self.c.api_key()
        )
    }

    async fn raw(
        &self,
        method: reqwest::Method,
        path: &str,
        token: Option<&str>,
        body: Option<Vec<u8>>,
    ) -> (u16, Value) {
        let mut req = self.http.request(method, self.url(path));
        req = match token {
            Some(t) => req
                .header("authorization", t)
                .header("stream-auth-type", "jwt"),
            None => req.header("stream-auth-type", "anonymous"),
        };
        if let Some(body) = body {
            req = req.header("content-type", "application/json").body(body);
        }
        let res = req.send().await.expect("the server answers");
        let status = res.status().as_u16();
        let text = res.text().await.unwrap_or_default();
        (
            status,
            serde_json::from_str(&text).unwrap_or(Value::String(text)),
        )
    }

    async fn hls_get(&self, path: &str) -> u16 {
        self.http
            .get(format!("{}/hls/{path}", self.c.base_url()))
            .send()
            .await
            .expect("the server answers")
            .status()
            .as_u16()
    }

    /// An upload that must be accepted (201).
    async fn upload_ok(&self, token: &str, call: &str, file: &str, body: Vec<u8>) {
        let (status, answer) = self.upload(token, call, file, body).await;
        assert_eq!(status, 201, "upload of {call}/{file}: {answer}");
    }

    async fn upload(&self, token: &str, call: &str, file: &str, body: Vec<u8>) -> (u16, Value) {
        let res = self
            .http
            .put(self.url(&format!("/call/{call}/hls/{file}")))
            .header("authorization", token)
            .header("stream-auth-type", "jwt")
            .body(body)
            .send()
            .await
            .expect("the server answers");
        let status = res.status().as_u16();
        let text = res.text().await.unwrap_or_default();
        (
            status,
            serde_json::from_str(&text).unwrap_or(Value::String(text)),
        )
    }

    fn snap(&self) -> Snapshot {
        snapshot(&self.dir)
    }

    fn unchanged(&mut self, what: &str, before: &Snapshot) {
        let after = self.snap();
        if let Err(e) = kept(before, &after) {
            panic!("{what}: stored data changed: {e}");
        }
    }
}

fn limits() -> Limits {
    Limits {
        // Small HLS numbers so the budget is reached in a few uploads.
        hls_total_bytes: 4 * 1024 * KB,
        hls_call_bytes: 2 * 1024 * KB,
        hls_max_upload_bytes: 1024 * KB,
        hls_ended_grace: Duration::from_millis(800),
        ..Limits::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn attacks_are_refused_and_change_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let c = coordinator_with(CoordinatorConfig {
        data_dir: Some(dir.path().to_owned()),
        app: Some(("attackkey".into(), SECRET.into())),
        dev_token_endpoint: true,
        fault_injection: true,
        limits: limits(),
        ..CoordinatorConfig::default()
    })
    .await;
    let addr = c.local_addr();
    let mut s = Suite {
        rest: Rest::new(&c),
        http: reqwest::Client::new(),
        dir: dir.path().to_owned(),
        c,
        report: Report::default(),
    };
    let hour = Some(Duration::from_secs(3600));
    let alice = s.c.mint_token("alice", hour);
    let bob = s.c.mint_token("bob", hour);
    let mallory = s.c.mint_token("mallory", hour);

    // Setup: alice only ever uses REST (she has no socket), bob connects a socket, and a
    // guest exists. Mallory is the attacker, with a valid token of her own.
    let (status, _) = s
        .rest
        .post(
            "/call/default/alice-room",
            As::User("alice", &alice),
            json!({"data": {"custom": {"topic": "plans"}, "members": [{"user_id": "bob", "role": "host"}]}}),
        )
        .await;
    assert_eq!(status, 201);
    let (mut bob_socket, ok) = connect_user(&s.c, "bob", &bob).await;
    let bob_conn = ok["connection_id"].as_str().unwrap().to_owned();
    let (status, guest) = s
        .rest
        .post(
            "/guest",
            As::Public,
            json!({"user": {"id": "kim-guest", "name": "Kim"}}),
        )
        .await;
    assert_eq!(status, 201, "{guest}");
    assert_eq!(guest["user"]["id"], "kim-guest", "a free id is kept");
    s.rest
        .post(
            "/call/default/mallory-room",
            As::User("mallory", &mallory),
            json!({}),
        )
        .await;
    let (mut mallory_socket, _) = connect_user(&s.c, "mallory", &mallory).await;
    let before = s.snap();

    // 1. Guests cannot take anyone's id, nor change anyone's record.
    let since = s.report.tried;
    for victim in ["alice", "bob", "kim-guest", "mallory"] {
        let (status, body) = s
            .rest
            .post(
                "/guest",
                As::Public,
                json!({"user": {"id": victim, "name": "Evil", "custom": {"owned": true}}}),
            )
            .await;
        let id = body["user"]["id"].as_str().unwrap_or_default().to_owned();
        let suffix = id.strip_prefix(&format!("{victim}-")).unwrap_or_default();
        s.report.refused(
            &format!("guest with {victim}'s id"),
            status == 201 && suffix.len() >= 16 && body["user"]["role"] == "guest",
            &body,
        );
        // The token it got does not act as the victim.
        let token = body["access_token"].as_str().unwrap_or_default().to_owned();
        let (status, body) = s
            .rest
            .post(
                "/call/default/alice-room/members",
                As::User(&id, &token),
                json!({"update_members": [{"user_id": "mallory", "role": "host"}]}),
            )
            .await;
        s.report.refused(
            "a guest's token acting as host",
            status == 403 && is_error(&body, 17, 403),
            &body,
        );
    }
    s.unchanged("guest impersonation", &before);
    s.report.group("guest ids (impersonation)", since);

    // 4. Size caps: custom data, members, bodies.
    let since = s.report.tried;
    let big = "x".repeat(6 * KB);
    let (status, body) = s
        .rest
        .post(
            "/guest",
            As::Public,
            json!({"user": {"id": "fat-guest", "custom": {"blob": big}}}),
        )
        .await;
    s.report.refused(
        "6 KB of guest custom data",
        status == 413 && is_error(&body, 4, 413),
        &body,
    );
    let (status, body) = s
        .rest
        .post(
            "/call/default/fat-call",
            As::User("mallory", &mallory),
            json!({"data": {"custom": {"blob": big}}}),
        )
        .await;
    s.report.refused(
        "6 KB of call custom data",
        status == 413 && is_error(&body, 4, 413),
        &body,
    );
    let (status, body) = s
        .rest
        .post(
            "/call/default/mallory-room/members",
            As::User("mallory", &mallory),
            json!({"update_members": [{"user_id": "bob", "custom": {"blob": big}}]}),
        )
        .await;
    s.report.refused(
        "6 KB of member custom data",
        status == 413 && is_error(&body, 4, 413),
        &body,
    );
    let many: Vec<Value> = (0..101)
        .map(|i| json!({"user_id": format!("m{i}")}))
        .collect();
    let (status, body) = s
        .rest
        .post(
            "/call/default/mallory-room/members",
            As::User("mallory", &mallory),
            json!({ "update_members": many }),
        )
        .await;
    s.report.refused(
        "101 members in one request",
        status == 413 && is_error(&body, 4, 413),
        &body,
    );
    let (status, body) = s
        .rest
        .post(
            "/call/default/crowd",
            As::User("mallory", &mallory),
            json!({"data": {"members": many}}),
        )
        .await;
    s.report.refused(
        "a call created with 101 members",
        status == 413 && is_error(&body, 4, 413),
        &body,
    );
    let (status, body) = s
        .rest
        .post(
            "/call/default/mallory-room/members",
            As::User("mallory", &mallory),
            json!({"update_members": [{"user_id": "bob", "role": "x'); DROP TABLE users; --"}]}),
        )
        .await;
    s.report.refused(
        "a member role with SQL in it",
        status == 400 && is_error(&body, 4, 400),
        &body,
    );
    s.unchanged("size caps", &before);
    // A call's total: 10 requests of 100 fill it to 1,000; one more member is refused.
    for batch in 0..10 {
        let members: Vec<Value> = (0..100)
            .map(|i| json!({"user_id": format!("crowd-{batch}-{i}")}))
            .collect();
        let (status, body) = s
            .rest
            .post(
                "/call/default/mallory-room/members",
                As::User("mallory", &mallory),
                json!({ "update_members": members }),
            )
            .await;
        assert_eq!(status, 200, "{body}");
    }
    let full = s.snap();
    let (status, body) = s
        .rest
        .post(
            "/call/default/mallory-room/members",
            As::User("mallory", &mallory),
            json!({"update_members": [{"user_id": "one-too-many"}]}),
        )
        .await;
    s.report.refused(
        "member 1,001 of a call",
        status == 413 && is_error(&body, 4, 413),
        &body,
    );
    s.unchanged("the member cap", &full);
    let huge = vec![b' '; 1024 * KB + 1];
    let mut huge_json = b"{\"data\":{\"custom\":{\"a\":\"".to_vec();
    huge_json.extend(vec![b'a'; 1024 * KB]);
    huge_json.extend(b"\"}}}");
    for (what, body) in [
        ("a body over 1 MB", huge_json),
        ("a body of 1 MB of spaces", huge),
    ] {
        let (status, body) = s
            .raw(
                reqwest::Method::POST,
                "/call/default/mallory-room",
                Some(&mallory),
                Some(body),
            )
            .await;
        s.report
            .refused(what, status == 413 && is_error(&body, 4, 413), &body);
    }
    for bad in [
        &b"{"[..],
        b"[1, 2",
        b"{\"data\": 5}",
        b"\xff\xfe",
        b"{\"data\":{\"members\":[{\"user_id\":null}]}}",
    ] {
        let (status, body) = s
            .raw(
                reqwest::Method::POST,
                "/call/default/new-from-bad-body",
                Some(&mallory),
                Some(bad.to_vec()),
            )
            .await;
        s.report.refused(
            "a malformed body",
            status == 400 && is_error(&body, 4, 400),
            &body,
        );
    }
    s.unchanged("bodies", &full);
    s.report.group("size caps and bodies", since);
    let before = full;

    // Tokens: forged, expired, alg none, wrong user, garbage.
    let since = s.report.tried;
    let claims = json!({"user_id": "alice", "iat": now()});
    let hs = r#"{"alg":"HS256","typ":"JWT"}"#;
    let expired = s.c.sign(&Claims {
        user_id: Some("alice".into()),
        iat: Some(now() - 100),
        exp: Some(now() - 10),
        ..Claims::default()
    });
    let other_key =
        confab_coordinator::SigningKey::new("not-the-apps-secret-at-all").sign(&Claims {
            user_id: Some("alice".into()),
            ..Claims::default()
        });
    let future = s.c.sign(&Claims {
        user_id: Some("alice".into()),
        iat: Some(now() + 3600),
        ..Claims::default()
    });
    let tokens = [
        (
            "alg none",
            forge(r#"{"alg":"none","typ":"JWT"}"#, &claims, ""),
            43,
        ),
        ("a forged signature", forge(hs, &claims, "c2lnbmF0dXJl"), 43),
        ("another app's key", other_key, 43),
        ("an expired token", expired, 40),
        ("a token issued in the future", future, 42),
        ("garbage", "not.a.token".to_owned(), 43),
        ("one segment", "abc".to_owned(), 43),
        ("8 KB of dots", ".".repeat(8 * KB), 43),
    ];
    for (what, token, _code) in &tokens {
        let (status, body) = s
            .rest
            .post(
                "/call/default/alice-room/members",
                As::User("alice", token),
                json!({"update_members": [{"user_id": "mallory", "role": "host"}]}),
            )
            .await;
        s.report.refused(
            what,
            status == 401 && body["code"].as_i64().is_some_and(|c| c >= 40 || c == 2),
            &body,
        );
    }
    // A valid token, but for someone else than the query's user_id.
    let (status, body) = s
        .rest
        .post(
            "/call/default/alice-room/members",
            As::User("alice", &mallory),
            json!({"update_members": [{"user_id": "mallory", "role": "host"}]}),
        )
        .await;
    s.report
        .refused("a token for another user_id", status == 401, &body);
    s.unchanged("tokens", &before);
    s.report.group("tokens", since);

    // Ids: bad, SQL-ish, traversal, unknown types.
    let since = s.report.tried;
    for id in [
        "' OR '1'='1",
        "x'; DROP TABLE calls; --",
        "../../etc/passwd",
        "a%00b",
        &"x".repeat(65),
        "..",
    ] {
        let path = format!(
            "/call/default/{}",
            id.replace('%', "%25")
                .replace(' ', "%20")
                .replace('/', "%2F")
                .replace('\'', "%27")
                .replace(';', "%3B")
        );
        let (status, body) = s
            .rest
            .post(&path, As::User("mallory", &mallory), json!({}))
            .await;
        s.report.refused(
            &format!("call id {id:?}"),
            status == 400 || status == 404,
            &body,
        );
    }
    let (status, body) = s
        .rest
        .post("/call/secret/x", As::User("mallory", &mallory), json!({}))
        .await;
    s.report.refused(
        "an unknown call type",
        status == 404 && is_error(&body, 16, 404),
        &body,
    );
    for id in ["' OR 1=1 --", "!anon", "a b", &"u".repeat(256), "bad/../id"] {
        let (status, body) = s
            .rest
            .post("/guest", As::Public, json!({"user": {"id": id}}))
            .await;
        s.report.refused(
            &format!("guest id {id:?}"),
            status == 400 && is_error(&body, 4, 400),
            &body,
        );
        let (status, body) = s
            .rest
            .post(
                "/call/default/mallory-room/members",
                As::User("mallory", &mallory),
                json!({"remove_members": [id]}),
            )
            .await;
        s.report.refused(
            &format!("member id {id:?}"),
            status == 400 && is_error(&body, 4, 400),
            &body,
        );
    }
    s.unchanged("ids", &before);
    s.report.group("ids", since);

    // 5. Join through someone else's socket; the fault switch without the secret.
    let since = s.report.tried;
    let (status, body) = s
        .rest
        .send(
            reqwest::Method::POST,
            "/call/default/mallory-room/join",
            As::User("mallory", &mallory),
            Some(&bob_conn),
            Some(json!({})),
        )
        .await;
    s.report.refused(
        "join with another user's connection_id",
        status == 403 && is_error(&body, 17, 403),
        &body,
    );
    let (status, body) = s
        .rest
        .send(
            reqwest::Method::POST,
            "/call/default/mallory-room/join",
            As::User("mallory", &mallory),
            Some("no-such-connection"),
            Some(json!({})),
        )
        .await;
    s.report.refused(
        "join with an unknown connection_id",
        status == 400 && is_error(&body, 4, 400),
        &body,
    );
    for secret in [None, Some("wrong"), Some(&SECRET[..SECRET.len() - 1])] {
        let mut req = s
            .http
            .post(format!("{}/_faults", s.c.base_url()))
            .json(&json!({"action": "drop_sockets", "user_id": null}));
        if let Some(secret) = secret {
            req = req.header("x-confab-api-secret", secret);
        }
        let res = req.send().await.unwrap();
        let status = res.status().as_u16();
        let body: Value = res.json().await.unwrap_or_default();
        s.report.refused(
            "the fault switch without the API secret",
            status == 401 && is_error(&body, 2, 401),
            &body,
        );
    }
    // The sockets the refused switch would have cut are still up.
    let health = json!([{"type": "health.check", "client_id": "x"}]).to_string();
    bob_socket
        .send(Message::Text(health.clone().into()))
        .await
        .unwrap();
    assert_eq!(
        next_event(&mut bob_socket, "health.check").await["type"],
        "health.check"
    );
    let res = s
        .http
        .post(format!("{}/_faults", s.c.base_url()))
        .header("x-confab-api-secret", SECRET)
        .json(&json!({"action": "reset"}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200, "the switch works with the secret");
    // Dev tokens always expire, within the issued-token lifetime.
    let origin = s.c.base_url().trim_end_matches("/video").to_owned();
    for ttl in ["-5", "0", "999999999", "1e9", "x"] {
        let res = s
            .http
            .get(format!("{origin}/api/token?user_id=%21anon&ttl={ttl}"))
            .send()
            .await
            .unwrap();
        let status = res.status().as_u16();
        s.report.refused(
            &format!("a dev token with ttl={ttl}"),
            status == 400,
            status,
        );
    }
    let res: Value = s
        .http
        .get(format!("{origin}/api/token?user_id=%21anon"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let payload = res["token"]
        .as_str()
        .unwrap()
        .split('.')
        .nth(1)
        .unwrap()
        .to_owned();
    let claims: Value = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).unwrap()).unwrap();
    s.report.refused(
        "an anonymous viewer token without expiry",
        claims["exp"]
            .as_i64()
            .is_some_and(|e| e <= now() + 24 * 3600),
        &claims,
    );
    s.unchanged("join and the fault switch", &before);
    s.report.group("join, fault switch, token lifetimes", since);

    // Socket frames: oversized, malformed, mismatched, forged.
    let since = s.report.tried;
    let frames: Vec<(&str, Message)> = vec![
        ("an oversized first frame", Message::Text("x".repeat(100 * KB).into())),
        ("a binary first frame", Message::Binary(vec![0u8; 16].into())),
        ("a first frame that is not JSON", Message::Text("{\"token\":".into())),
        ("an auth frame for another user", Message::Text(json!({"token": mallory, "user_details": {"id": "alice"}}).to_string().into())),
        ("an auth frame with alg none", Message::Text(json!({"token": forge(r#"{"alg":"none"}"#, &claims, ""), "user_details": {"id": "alice"}}).to_string().into())),
        ("an auth frame with 6 KB custom", Message::Text(json!({"token": bob, "user_details": {"id": "bob", "name": "Owned", "custom": {"blob": big}}}).to_string().into())),
    ];
    for (what, frame) in frames {
        let mut socket = open_socket(&s.c).await;
        let _ = socket.send(frame).await;
        let first = next_json(&mut socket).await;
        let refused = match &first {
            None => true,
            Some(v) => v["type"] == "connection.error",
        };
        s.report.refused(what, refused, format!("{first:?}"));
    }
    // An authenticated socket that sends an oversized frame is closed; the server goes on.
    mallory_socket
        .send(Message::Text("y".repeat(100 * KB).into()))
        .await
        .ok();
    // close_code fails the test unless the socket ends within 5 s.
    let closed = close_code(&mut mallory_socket).await;
    s.report.refused(
        "an oversized frame after auth",
        closed != Some(1000),
        format!("{closed:?}"),
    );
    s.unchanged("socket frames", &before);
    s.report.group("socket frames", since);

    // 3 and 2. HLS: meetings do not broadcast; nothing is served before live, or long after
    // stop; file names cannot leave the broadcast; the memory budget holds.
    let since = s.report.tried;
    let (status, body) = s
        .upload(&alice, "default/alice-room", "seg-0.ts", vec![0x47; 188])
        .await;
    s.report.refused(
        "an upload to a meeting",
        status == 400 && is_error(&body, 4, 400),
        &body,
    );
    let host = s.c.mint_token("host", hour);
    let (status, _) = s
        .rest
        .post("/call/livestream/show", As::User("host", &host), json!({}))
        .await;
    assert_eq!(status, 201);
    let (status, body) = s
        .upload(&mallory, "livestream/show", "seg-0.ts", vec![0x47; 188])
        .await;
    s.report.refused(
        "an upload by a non-host",
        status == 403 && is_error(&body, 17, 403),
        &body,
    );
    let playlist = |segments: &[u64]| {
        let mut text = "#EXTM3U\n#EXT-X-TARGETDURATION:1\n".to_owned();
        for n in segments {
            text.push_str(&format!("#EXTINF:1.0,\nseg-{n}.ts\n"));
        }
        text.into_bytes()
    };
    let segment = |size: usize| vec![0x47u8; size];
    s.upload_ok(&host, "livestream/show", "playlist.m3u8", playlist(&[0, 1]))
        .await;
    s.upload_ok(&host, "livestream/show", "seg-0.ts", segment(900 * KB))
        .await;
    s.upload_ok(&host, "livestream/show", "seg-1.ts", segment(900 * KB))
        .await;
    for path in [
        "livestream/show/playlist.m3u8",
        "livestream/show/seg-0.ts",
        "default/alice-room/playlist.m3u8",
    ] {
        let status = s.hls_get(path).await;
        s.report.refused(
            &format!("HLS {path} while in backstage"),
            status == 404,
            status,
        );
    }
    let (status, _) = s
        .rest
        .post(
            "/call/livestream/show/start_broadcasting",
            As::User("host", &host),
            json!({}),
        )
        .await;
    assert_eq!(status, 200);
    let status = s.hls_get("livestream/show/playlist.m3u8").await;
    s.report.refused(
        "HLS before go_live, while broadcasting",
        status == 404,
        status,
    );
    let (status, _) = s
        .rest
        .post(
            "/call/livestream/show/go_live",
            As::User("host", &host),
            json!({}),
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(
        s.hls_get("livestream/show/playlist.m3u8").await,
        200,
        "live and broadcasting"
    );
    assert_eq!(s.hls_get("livestream/show/seg-1.ts").await, 200);
    for path in [
        "livestream/show/..%2F..%2Fetc%2Fpasswd",
        "livestream/show/seg-1.ts%00.m3u8",
        "livestream/..%2Fshow/playlist.m3u8",
        "livestream/show/seg-99999999999999.ts",
        "livestream/show/SEG-1.TS",
        "livestream/sh%27ow/playlist.m3u8",
    ] {
        let status = s.hls_get(path).await;
        s.report
            .refused(&format!("HLS path {path}"), status == 404, status);
    }
    for name in [
        "..%2F..%2Fplaylist.m3u8",
        "seg-1.ts.bak",
        "seg--1.ts",
        "playlist.m3u8%2F..%2Fx",
    ] {
        let (status, _) = s.upload(&host, "livestream/show", name, vec![1]).await;
        s.report.refused(
            &format!("upload named {name}"),
            (400..500).contains(&status),
            status,
        );
    }
    let (status, body) = s
        .upload(&host, "livestream/show", "seg-2.ts", segment(1024 * KB + 1))
        .await;
    s.report.refused(
        "an upload over the size limit",
        status == 413 && is_error(&body, 4, 413),
        &body,
    );
    // Both kept segments are listed: a third one has no room in the broadcast's share.
    let (status, body) = s
        .upload(&host, "livestream/show", "seg-2.ts", segment(900 * KB))
        .await;
    s.report.refused(
        "a segment beyond the broadcast's share, evicting listed ones",
        status == 507 && is_error(&body, 9, 507),
        &body,
    );
    assert_eq!(
        s.hls_get("livestream/show/seg-0.ts").await,
        200,
        "listed segments stay"
    );
    // Once the playlist moves on, the oldest segment makes room.
    s.upload_ok(&host, "livestream/show", "playlist.m3u8", playlist(&[1, 2]))
        .await;
    s.upload_ok(&host, "livestream/show", "seg-2.ts", segment(900 * KB))
        .await;
    assert_eq!(s.hls_get("livestream/show/seg-0.ts").await, 404, "evicted");
    assert_eq!(s.hls_get("livestream/show/seg-2.ts").await, 200);
    // Many uploads in a row stay within the share (each evicts the unlisted oldest).
    for n in 3..40u64 {
        let (status, body) = s
            .upload(
                &host,
                "livestream/show",
                &format!("seg-{n}.ts"),
                segment(600 * KB),
            )
            .await;
        assert!(status == 201 || status == 507, "{body}");
    }
    // Viewer ids from one address count at most twice.
    s.rest
        .send(
            reqwest::Method::POST,
            "/call/livestream/show/join",
            As::User("host", &host),
            None,
            Some(json!({})),
        )
        .await;
    for n in 0..50 {
        s.hls_get(&format!("livestream/show/playlist.m3u8?viewer=fake-{n}"))
            .await;
    }
    let (_, call) = s
        .rest
        .get("/call/livestream/show", As::User("host", &host))
        .await;
    let counted = call["call"]["session"]["anonymous_participant_count"]
        .as_u64()
        .unwrap_or(99);
    s.report.refused(
        "50 invented viewer ids from one address",
        counted <= 2,
        counted,
    );
    // After stop: the ended playlist for the grace period, then nothing.
    let (status, _) = s
        .rest
        .post(
            "/call/livestream/show/stop_broadcasting",
            As::User("host", &host),
            json!({}),
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(
        s.hls_get("livestream/show/playlist.m3u8").await,
        200,
        "served briefly after stop"
    );
    tokio::time::sleep(Duration::from_millis(1200)).await;
    for path in ["livestream/show/playlist.m3u8", "livestream/show/seg-2.ts"] {
        let status = s.hls_get(path).await;
        s.report.refused(
            &format!("HLS {path} after the grace period"),
            status == 404,
            status,
        );
    }
    s.unchanged("HLS", &before);
    s.report.group("HLS", since);

    // 4. Rate limits, last: they use up this address's buckets.
    let since = s.report.tried;
    let mut first_429 = None;
    for n in 0..200 {
        let (status, body) = s
            .rest
            .post("/guest", As::Public, json!({"user": {"name": "flood"}}))
            .await;
        if status == 429 {
            assert!(is_error(&body, 9, 429), "{body}");
            first_429 = Some(n);
            break;
        }
    }
    s.report.refused(
        "a guest flood",
        first_429.is_some_and(|n| n <= 25),
        format!("{first_429:?}"),
    );
    let mut first_429 = None;
    for n in 0..200 {
        let (status, body) = s
            .rest
            .post(
                &format!("/call/default/flood-{n}"),
                As::User("mallory", &mallory),
                json!({}),
            )
            .await;
        if status == 429 {
            assert!(is_error(&body, 9, 429), "{body}");
            first_429 = Some(n);
            break;
        }
    }
    s.report.refused(
        "a call-creation flood",
        first_429.is_some_and(|n| n <= 150),
        format!("{first_429:?}"),
    );
    // Existing calls are still served: only creating is limited.
    let (status, _) = s
        .rest
        .post(
            "/call/default/mallory-room",
            As::User("mallory", &mallory),
            json!({}),
        )
        .await;
    assert_eq!(status, 200);
    let mut first_429 = None;
    for n in 0..200 {
        let res = s
            .http
            .get(format!("{origin}/api/token?user_id=u{n}"))
            .send()
            .await
            .unwrap();
        if res.status() == 429 {
            let body: Value = res.json().await.unwrap_or_default();
            assert!(is_error(&body, 9, 429), "{body}");
            first_429 = Some(n);
            break;
        }
    }
    s.report.refused(
        "a dev-token flood",
        first_429.is_some_and(|n| n <= 150),
        format!("{first_429:?}"),
    );
    s.unchanged("rate limits", &before);
    s.report.group("rate limits", since);

    // The same server answered throughout.
    assert_eq!(s.c.local_addr(), addr);
    let (status, _) = s
        .rest
        .get("/call/default/alice-room", As::User("alice", &alice))
        .await;
    assert_eq!(status, 200, "the server still answers");
    bob_socket.send(Message::Text(health.into())).await.unwrap();
    next_event(&mut bob_socket, "health.check").await;
    let end = s.snap();
    kept(&before, &end).expect("nothing stored before the attacks was lost or changed");

    let mut report = String::from("attack suite report\n");
    for (group, n) in &s.report.groups {
        report.push_str(&format!("  {group:<40} {n:>3} inputs\n"));
    }
    report.push_str(&format!(
        "  inputs tried: {}, refused as expected: {}, server restarts: 0 (same listener at {addr}), data lost: 0 ({} stored rows checked)\n",
        s.report.tried,
        s.report.refused,
        before.len()
    ));
    eprintln!("{report}");
    s.c.shutdown().await;
}

/// The CLI: tokens expire by default, short secrets are refused, and a secret can come from
/// a file.
#[test]
fn the_cli_signs_expiring_tokens_and_refuses_short_secrets() {
    let bin = env!("CARGO_BIN_EXE_confab-coordinator");
    let out = std::process::Command::new(bin)
        .args(["token", "--user", "alice"])
        .env("CONFAB_API_SECRET", SECRET)
        .output()
        .unwrap();
    assert!(out.status.success());
    let token = String::from_utf8(out.stdout).unwrap();
    let payload = token.trim().split('.').nth(1).unwrap().to_owned();
    let claims: Value = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).unwrap()).unwrap();
    let exp = claims["exp"].as_i64().expect("a default expiry");
    assert!(exp > now() && exp <= now() + 24 * 3600 + 5, "{claims}");
    assert!(
        String::from_utf8_lossy(&out.stderr).is_empty(),
        "no warning for a secret from the environment"
    );

    let dir = tempfile::tempdir().unwrap();
    let out = std::process::Command::new(bin)
        .args([
            "serve",
            "--addr",
            "127.0.0.1:0",
            "--api-key",
            "k",
            "--data-dir",
        ])
        .arg(dir.path())
        .env("CONFAB_API_SECRET", "short")
        .output()
        .unwrap();
    assert!(!out.status.success(), "a 5-byte secret is refused");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("at least 16"), "{stderr}");
    assert!(
        !stderr.contains("short"),
        "the secret is not echoed: {stderr}"
    );

    let file = dir.path().join("secret");
    std::fs::write(&file, format!("{SECRET}\n")).unwrap();
    let from_file = std::process::Command::new(bin)
        .args([
            "token",
            "--user",
            "alice",
            "--ttl",
            "1h",
            "--api-secret-file",
        ])
        .arg(&file)
        .output()
        .unwrap();
    assert!(from_file.status.success());
    let signed = String::from_utf8(from_file.stdout).unwrap();
    let key = confab_coordinator::SigningKey::new(SECRET);
    assert!(key.verify(signed.trim(), now()).is_ok());
    let on_argv = std::process::Command::new(bin)
        .args(["token", "--user", "alice", "--api-secret", SECRET])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&on_argv.stderr);
    assert!(stderr.contains("process list"), "a warning: {stderr}");
    assert!(
        !stderr.contains(SECRET),
        "the warning does not print it: {stderr}"
    );
}
