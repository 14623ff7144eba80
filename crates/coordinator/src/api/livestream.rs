//! Livestreams: going live and back to backstage, the HLS broadcast (start, stop, the host's
//! uploads) and serving its files to viewers. The files themselves are kept by
//! [`crate::hls::Broadcasts`].

use axum::body::Body;
use axum::extract::{FromRequestParts, Path, RawQuery, State};
use axum::http::request::Parts;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use confab_protocol::EventType;
use serde::Deserialize;
use serde_json::{json, Map, Value};

use crate::api::reply::{reply, Started};
use crate::auth::Caller;
use crate::error::ApiError;
use crate::events::emit_call_event;
use crate::extract::{CallPath, JsonBody};
use crate::hls::{HlsFile, MAX_UPLOAD_BYTES};
use crate::state::{AppState, Shared};
use crate::store::CallRecord;
use crate::view::{call_view, load_call, require_host};

const HOSTS_ONLY: &str = "only the call's hosts can do this";

/// The call a host acts on: it exists and the caller hosts it.
async fn hosted_call(
    state: &AppState,
    caller: &Caller,
    path: &CallPath,
) -> Result<CallRecord, ApiError> {
    let call = load_call(state, &path.cid()).await?;
    require_host(state, caller, &call, HOSTS_ONLY).await?;
    Ok(call)
}

/// Leaves or enters backstage, and tells the watchers.
async fn set_live(
    state: &AppState,
    caller: &Caller,
    path: &CallPath,
    live: bool,
    started: Started,
) -> Result<Response, ApiError> {
    let call = hosted_call(state, caller, path).await?;
    state.store.set_backstage(&call.cid, !live).await?;
    let call = state.store.call(&call.cid).await?.unwrap_or(call);
    let view = call_view(state, caller, &call).await?;
    let (event_type, event) = if live {
        (EventType::CallLiveStarted, json!({"call": view["call"]}))
    } else {
        (
            EventType::CallUpdated,
            json!({"call": view["call"], "capabilities_by_role": {}}),
        )
    };
    emit_call_event(state, &call.cid, event_type, event).await?;
    Ok(reply(
        StatusCode::OK,
        json!({"call": view["call"]}),
        started,
    ))
}

pub async fn go_live(
    State(state): State<Shared>,
    started: Started,
    caller: Caller,
    path: CallPath,
    JsonBody(_): JsonBody<Map<String, Value>>,
) -> Result<Response, ApiError> {
    set_live(&state, &caller, &path, true, started).await
}

pub async fn stop_live(
    State(state): State<Shared>,
    started: Started,
    caller: Caller,
    path: CallPath,
    JsonBody(_): JsonBody<Map<String, Value>>,
) -> Result<Response, ApiError> {
    set_live(&state, &caller, &path, false, started).await
}

async fn set_broadcasting(
    state: &AppState,
    caller: &Caller,
    path: &CallPath,
    running: bool,
    started: Started,
) -> Result<Response, ApiError> {
    let call = hosted_call(state, caller, path).await?;
    if running && !state.broadcasts.has_playlist(&call.cid) {
        return Err(ApiError::input(
            "upload the playlist and a first segment before starting the broadcast",
        ));
    }
    state.broadcasts.set_running(&call.cid, running);
    let view = call_view(state, caller, &call).await?;
    let playlist_url = state.broadcasts.playlist_url(&state.base_url, &call.cid);
    if running {
        emit_call_event(
            state,
            &call.cid,
            EventType::HlsBroadcastingStarted,
            json!({"hls_playlist_url": playlist_url, "call": view["call"]}),
        )
        .await?;
    } else {
        emit_call_event(
            state,
            &call.cid,
            EventType::HlsBroadcastingStopped,
            json!({"call": view["call"]}),
        )
        .await?;
    }
    Ok(reply(
        StatusCode::OK,
        json!({"playlist_url": playlist_url.unwrap_or_default()}),
        started,
    ))
}

/// `POST /video/call/{type}/{id}/start_broadcasting`, as Stream names it.
pub async fn start_broadcasting(
    State(state): State<Shared>,
    started: Started,
    caller: Caller,
    path: CallPath,
    JsonBody(_): JsonBody<Map<String, Value>>,
) -> Result<Response, ApiError> {
    set_broadcasting(&state, &caller, &path, true, started).await
}

pub async fn stop_broadcasting(
    State(state): State<Shared>,
    started: Started,
    caller: Caller,
    path: CallPath,
    JsonBody(_): JsonBody<Map<String, Value>>,
) -> Result<Response, ApiError> {
    set_broadcasting(&state, &caller, &path, false, started).await
}

/// The `{file}` of an upload: the playlist or a numbered segment, else refused.
pub struct UploadFile(HlsFile);

#[derive(Deserialize)]
struct FileSegment {
    file: String,
}

impl<S: Send + Sync> FromRequestParts<S> for UploadFile {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        Path::<FileSegment>::from_request_parts(parts, state)
            .await
            .ok()
            .and_then(|Path(p)| HlsFile::parse(&p.file))
            .map(UploadFile)
            .ok_or_else(|| ApiError::input("upload playlist.m3u8 or seg-<number>.ts"))
    }
}

/// `PUT /video/call/{type}/{id}/hls/{file}`: the host's app uploads a segment or the playlist.
pub async fn upload(
    State(state): State<Shared>,
    started: Started,
    UploadFile(file): UploadFile,
    caller: Caller,
    path: CallPath,
    body: Body,
) -> Result<Response, ApiError> {
    let call = hosted_call(&state, &caller, &path).await?;
    let bytes = axum::body::to_bytes(body, MAX_UPLOAD_BYTES)
        .await
        .map_err(|_| ApiError::input(format!("an upload is at most {MAX_UPLOAD_BYTES} bytes")))?;
    if bytes.is_empty() {
        return Err(ApiError::input("the upload is empty"));
    }
    state.broadcasts.store(&call.cid, file, bytes);
    Ok(reply(StatusCode::CREATED, json!({}), started))
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

/// `GET /video/hls/{type}/{id}/{file}`: public, as a CDN's playlist URL is.
pub async fn serve(
    State(state): State<Shared>,
    Path((call_type, id, file)): Path<(String, String, String)>,
    RawQuery(raw): RawQuery,
) -> Response {
    let cid = format!("{call_type}:{id}");
    let found = HlsFile::parse(&file).and_then(|f| Some((f, state.broadcasts.file(&cid, f)?)));
    match found {
        Some((HlsFile::Playlist, playlist)) => {
            // Players add ?viewer=<id> to count themselves; segments need no id.
            if let Some(viewer) = raw
                .as_deref()
                .and_then(|q| q.split('&').find_map(|kv| kv.strip_prefix("viewer=")))
            {
                state.broadcasts.count_viewer(&cid, viewer);
            }
            (hls_headers("application/vnd.apple.mpegurl"), playlist).into_response()
        }
        Some((HlsFile::Segment(_), segment)) => {
            (hls_headers("video/mp2t"), segment).into_response()
        }
        None => (
            StatusCode::NOT_FOUND,
            hls_headers("text/plain"),
            "no such file",
        )
            .into_response(),
    }
}
