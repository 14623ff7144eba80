//! Connects one user, watches a call and prints its events as JSON lines; reads `join`,
//! `leave` and `quit` from stdin. Used by the cross-client checks in tests/official-client.
//!
//!   cargo run -p confab-client --example call_watcher -- \
//!     --base-url http://127.0.0.1:4880/video --api-key KEY --user bob --token JWT --call default:room

use std::collections::HashMap;

use confab_client::{ClientOptions, Event, TokenSource, User, VideoClient};
use serde_json::json;
use tokio::io::{AsyncBufReadExt, BufReader};

fn args() -> Result<HashMap<String, String>, String> {
    let mut out = HashMap::new();
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let name = flag
            .strip_prefix("--")
            .ok_or_else(|| format!("unexpected argument {flag:?}"))?;
        let value = it.next().ok_or_else(|| format!("--{name} needs a value"))?;
        out.insert(name.to_owned(), value);
    }
    for required in ["base-url", "api-key", "user", "token", "call"] {
        if !out.contains_key(required) {
            return Err(format!("--{required} is required"));
        }
    }
    Ok(out)
}

fn emit(line: serde_json::Value) {
    println!("{line}");
}

#[tokio::main]
async fn main() {
    let args = match args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("call_watcher: {e}");
            std::process::exit(2);
        }
    };
    let (call_type, call_id) = args["call"]
        .split_once(':')
        .unwrap_or(("default", &args["call"]));
    let client = VideoClient::new(
        &args["api-key"],
        ClientOptions::default().with_base_url(&args["base-url"]),
    );
    let mut events = client.events();
    match client
        .connect_user(User::new(&args["user"]), TokenSource::token(&args["token"]))
        .await
    {
        Ok(me) => emit(json!({"event": "connected", "user_id": me.id})),
        Err(e) => {
            emit(json!({"event": "error", "message": e.to_string()}));
            std::process::exit(1);
        }
    }
    let call = client.call(call_type, call_id);
    match call.get_or_create(None).await {
        Ok(c) => emit(json!({"event": "watching", "call_cid": c.cid()})),
        Err(e) => emit(json!({"event": "error", "message": e.to_string()})),
    }

    let mut stdin = BufReader::new(tokio::io::stdin()).lines();
    loop {
        tokio::select! {
            event = events.recv() => match event {
                Ok(event) => {
                    let user = match &event {
                        Event::ParticipantJoined(e) | Event::ParticipantLeft(e) => Some(e.participant.user.id.clone()),
                        _ => None,
                    };
                    emit(json!({"event": event.event_type(), "call_cid": event.call_cid(), "user_id": user}));
                }
                Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => continue,
                Err(_) => break,
            },
            line = stdin.next_line() => match line.ok().flatten().as_deref() {
                Some("join") => match call.join(false).await {
                    Ok(_) => emit(json!({"event": "joined"})),
                    Err(e) => emit(json!({"event": "error", "message": e.to_string()})),
                },
                Some("leave") => {
                    let _ = call.leave().await;
                    emit(json!({"event": "left"}));
                }
                Some(_) => {}
                None => break,
            },
        }
    }
    client.disconnect_user().await;
}
