//! HLS broadcasts: the host's app uploads segments and the playlist; the coordinator serves
//! them to viewers and says in the call's `egress` where the playlist is. Kept in memory (a
//! live broadcast's last segments), like the media servers' state it stands in for.

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use axum::body::{Body, Bytes};
use axum::extract::{Path, RawQuery, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::json;

use crate::api::{call_view, emit_call_event, host_action, reply};
use crate::error::ApiError;
use crate::state::AppState;

/// Segments kept per broadcast: well beyond any player's live window.
const KEPT_SEGMENTS: usize = 30;
/// Largest upload accepted: a 1 s segment at a high bitrate is well under this.
pub const MAX_UPLOAD_BYTES: usize = 8 * 1024 * 1024;
/// A viewer counts while its player has fetched the playlist this recently.
const VIEWER_WINDOW: Duration = Duration::from_secs(10);
pub const PLAYLIST: &str = "playlist.m3u8";

#[derive(Default)]
struct Broadcast {
    playlist: Option<Bytes>,
    segments: BTreeMap<u64, Bytes>,
    /// Set between start_broadcasting and stop_broadcasting.
    running: bool,
    viewers: HashMap<String, Instant>,
}

#[derive(Default)]
pub struct Broadcasts {
    calls: Mutex<HashMap<String, Broadcast>>,
}

/// `playlist.m3u8` or `seg-<n>.ts`; anything else is refused.
enum FileName {
    Playlist,
    Segment(u64),
}

fn parse_file(name: &str) -> Option<FileName> {
    if name == PLAYLIST {
        return Some(FileName::Playlist);
    }
    let n = name.strip_prefix("seg-")?.strip_suffix(".ts")?;
    if n.is_empty() || n.len() > 12 || !n.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    n.parse().ok().map(FileName::Segment)
}

impl Broadcasts {
    fn with<T>(&self, cid: &str, f: impl FnOnce(&mut Broadcast) -> T) -> T {
        let mut calls = self.calls.lock().unwrap_or_else(|p| p.into_inner());
        f(calls.entry(cid.to_owned()).or_default())
    }

    /// The playlist URL while a broadcast runs.
    pub fn playlist_url(&self, base_url: &str, cid: &str) -> Option<String> {
        let calls = self.calls.lock().unwrap_or_else(|p| p.into_inner());
        let running = calls.get(cid).is_some_and(|b| b.running);
        running.then(|| format!("{base_url}/hls/{}/{PLAYLIST}", cid.replacen(':', "/", 1)))
    }

    /// Players that fetched the playlist within the last 10 s.
    pub fn viewers(&self, cid: &str) -> usize {
        let mut calls = self.calls.lock().unwrap_or_else(|p| p.into_inner());
        calls.get_mut(cid).map_or(0, |b| {
            b.viewers.retain(|_, seen| seen.elapsed() < VIEWER_WINDOW);
            b.viewers.len()
        })
    }
}

fn hls_headers(content_type: &'static str) -> [(header::HeaderName, HeaderValue); 3] {
    [
        (header::CONTENT_TYPE, HeaderValue::from_static(content_type)),
        // Players run in pages of other origins (the app's own, Stream's web player).
        (
            header::ACCESS_CONTROL_ALLOW_ORIGIN,
            HeaderValue::from_static("*"),
        ),
        (header::CACHE_CONTROL, HeaderValue::from_static("no-cache")),
    ]
}

/// `PUT /video/call/{type}/{id}/hls/{file}`: the host's app uploads a segment or the playlist.
pub async fn upload(
    State(state): State<std::sync::Arc<AppState>>,
    Path((call_type, id, file)): Path<(String, String, String)>,
    RawQuery(raw): RawQuery,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let started = Instant::now();
    let name = parse_file(&file)
        .ok_or_else(|| ApiError::input("upload playlist.m3u8 or seg-<number>.ts"))?;
    let (_, call) = host_action(
        &state,
        &call_type,
        &id,
        raw.as_deref(),
        &headers,
        Body::empty(),
    )
    .await?;
    let bytes = axum::body::to_bytes(body, MAX_UPLOAD_BYTES)
        .await
        .map_err(|_| ApiError::input(format!("an upload is at most {MAX_UPLOAD_BYTES} bytes")))?;
    if bytes.is_empty() {
        return Err(ApiError::input("the upload is empty"));
    }
    state.broadcasts.with(&call.cid, |b| match name {
        FileName::Playlist => b.playlist = Some(bytes),
        FileName::Segment(n) => {
            b.segments.insert(n, bytes);
            while b.segments.len() > KEPT_SEGMENTS {
                b.segments.pop_first();
            }
        }
    });
    Ok(reply(StatusCode::CREATED, json!({}), started))
}

/// `GET /video/hls/{type}/{id}/{file}`: public, as a CDN's playlist URL is.
pub async fn serve(
    State(state): State<std::sync::Arc<AppState>>,
    Path((call_type, id, file)): Path<(String, String, String)>,
    RawQuery(raw): RawQuery,
) -> Response {
    let cid = format!("{call_type}:{id}");
    let missing = || {
        (
            StatusCode::NOT_FOUND,
            hls_headers("text/plain"),
            "no such file",
        )
            .into_response()
    };
    let Some(name) = parse_file(&file) else {
        return missing();
    };
    let calls = state
        .broadcasts
        .calls
        .lock()
        .unwrap_or_else(|p| p.into_inner());
    let Some(broadcast) = calls.get(&cid) else {
        return missing();
    };
    match name {
        FileName::Playlist => {
            let Some(playlist) = broadcast.playlist.clone() else {
                return missing();
            };
            drop(calls);
            // Players add ?viewer=<id> to count themselves; segments need no id.
            if let Some(viewer) = raw
                .as_deref()
                .and_then(|q| q.split('&').find_map(|kv| kv.strip_prefix("viewer=")))
                .filter(|v| !v.is_empty() && v.len() <= 64)
            {
                state.broadcasts.with(&cid, |b| {
                    if b.viewers.len() < 100_000 {
                        b.viewers.insert(viewer.to_owned(), Instant::now());
                    }
                });
            }
            (hls_headers("application/vnd.apple.mpegurl"), playlist).into_response()
        }
        FileName::Segment(n) => match broadcast.segments.get(&n) {
            Some(bytes) => (hls_headers("video/mp2t"), bytes.clone()).into_response(),
            None => missing(),
        },
    }
}

async fn set_broadcasting(
    state: &AppState,
    (call_type, id): (String, String),
    raw: Option<&str>,
    headers: &HeaderMap,
    body: Body,
    running: bool,
) -> Result<Response, ApiError> {
    let started = Instant::now();
    let (caller, call) = host_action(state, &call_type, &id, raw, headers, body).await?;
    if running && state.broadcasts.with(&call.cid, |b| b.playlist.is_none()) {
        return Err(ApiError::input(
            "upload the playlist and a first segment before starting the broadcast",
        ));
    }
    state.broadcasts.with(&call.cid, |b| b.running = running);
    let view = call_view(state, &caller, &call)?;
    let playlist_url = state.broadcasts.playlist_url(&state.base_url, &call.cid);
    if running {
        emit_call_event(
            state,
            &call.cid,
            "call.hls_broadcasting_started",
            json!({"hls_playlist_url": playlist_url, "call": view["call"]}),
        )?;
    } else {
        emit_call_event(
            state,
            &call.cid,
            "call.hls_broadcasting_stopped",
            json!({"call": view["call"]}),
        )?;
    }
    Ok(reply(
        StatusCode::OK,
        json!({"playlist_url": playlist_url.unwrap_or_default()}),
        started,
    ))
}

/// `POST /video/call/{type}/{id}/start_broadcasting`, as Stream names it.
pub async fn start_broadcasting(
    State(state): State<std::sync::Arc<AppState>>,
    Path(path): Path<(String, String)>,
    RawQuery(raw): RawQuery,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    set_broadcasting(&state, path, raw.as_deref(), &headers, body, true).await
}

pub async fn stop_broadcasting(
    State(state): State<std::sync::Arc<AppState>>,
    Path(path): Path<(String, String)>,
    RawQuery(raw): RawQuery,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    set_broadcasting(&state, path, raw.as_deref(), &headers, body, false).await
}
