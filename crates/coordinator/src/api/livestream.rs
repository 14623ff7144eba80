//! Livestreams: going live and back to backstage, the HLS broadcast (start, stop, the host's
//! uploads) and serving its files to viewers. The files themselves are kept by
//! [`crate::hls::Broadcasts`].

use axum::body::Body;
use axum::extract::{FromRequestParts, Path, RawQuery, State};
use axum::http::request::Parts;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use confab_protocol::{CallCid, CallType, ErrorCode, EventType};
use serde::Deserialize;
use serde_json::{json, Map, Value};

use crate::api::reply::{reply, Started};
use crate::auth::Caller;
use crate::error::ApiError;
use crate::events::emit_call_event;
use crate::extract::{CallPath, JsonBody, PeerIp};
use crate::hls::{HlsError, HlsFile};
use crate::ids;
use crate::rate::address_key;
use crate::state::{AppState, Shared};
use crate::store::CallRecord;
use crate::view::{call_view, load_call, require_host};

const HOSTS_ONLY: &str = "only the call's hosts can do this";

/// Broadcasting (and its uploads) is for livestream calls only.
fn livestream_only(call: &CallRecord) -> Result<(), ApiError> {
    if call.call_type == CallType::Livestream.as_str() {
        Ok(())
    } else {
        Err(ApiError::input(format!(
            "call {} is not a livestream: only livestreams broadcast",
            call.cid
        )))
    }
}

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

/// `go_live` (`LIVE`) and `stop_live`: leaves or enters backstage, and tells the watchers.
pub async fn set_live<const LIVE: bool>(
    State(state): State<Shared>,
    started: Started,
    caller: Caller,
    path: CallPath,
    JsonBody(_): JsonBody<Map<String, Value>>,
) -> Result<Response, ApiError> {
    let (state, caller, path, live) = (&state, &caller, &path, LIVE);
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

/// Ends a live livestream whose host left the SFU and did not come back: the broadcast stops
/// (its playlist ends) and the call returns to backstage, announced as the host's own stop
/// would be, so viewers of both kinds see the end.
pub async fn end_without_host(state: &Shared, cid: &str) -> Result<(), ApiError> {
    let Some(call) = state.store.call(cid).await? else {
        return Ok(());
    };
    if call.call_type != CallType::Livestream.as_str() || call.backstage {
        return Ok(());
    }
    tracing::info!(target: "coordinator", %cid, "the livestream's host is gone: ending it");
    state.packagers.stop(cid).await;
    let grace = state.limits.hls_ended_grace;
    state.broadcasts.set_running(cid, false, grace);
    schedule_sweep(state, grace);
    state.store.set_backstage(cid, true).await?;
    let call = state.store.call(cid).await?.unwrap_or(call);
    let nobody = Caller::Anonymous { call_cids: None };
    let view = call_view(state, &nobody, &call).await?;
    emit_call_event(
        state,
        cid,
        EventType::HlsBroadcastingStopped,
        json!({"call": view["call"]}),
    )
    .await?;
    emit_call_event(
        state,
        cid,
        EventType::CallUpdated,
        json!({"call": view["call"], "capabilities_by_role": {}}),
    )
    .await
}

/// Frees a stopped broadcast's memory after its grace period.
fn schedule_sweep(state: &Shared, grace: std::time::Duration) {
    let state = state.clone();
    tokio::spawn(async move {
        tokio::time::sleep(grace).await;
        state.broadcasts.sweep(grace);
    });
}

/// `start_broadcasting` (`RUNNING`) and `stop_broadcasting`, as Stream names them.
pub async fn set_broadcasting<const RUNNING: bool>(
    State(state): State<Shared>,
    started: Started,
    caller: Caller,
    path: CallPath,
    JsonBody(_): JsonBody<Map<String, Value>>,
) -> Result<Response, ApiError> {
    let (state, caller, path, running) = (&state, &caller, &path, RUNNING);
    let call = hosted_call(state, caller, path).await?;
    livestream_only(&call)?;
    if running {
        start_packaging(state, &call.cid).await?;
    } else {
        state.packagers.stop(&call.cid).await;
    }
    let grace = state.limits.hls_ended_grace;
    state.broadcasts.set_running(&call.cid, running, grace);
    if !running {
        // Viewers get the ended playlist and the last segments for the grace period; then
        // the broadcast's memory is freed.
        schedule_sweep(state, grace);
    }
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

/// How long starting a broadcast waits for the packager's first segment: a keyframe and a
/// segment's length, with room for a slow host.
const FIRST_SEGMENT_WAIT: std::time::Duration = std::time::Duration::from_secs(6);

/// Makes sure the broadcast has a first segment before it is announced, so no viewer gets an
/// empty playlist: with the embedded SFU the packager makes it from what the host publishes;
/// a host that uploads its own segments (an external SFU, or an uploading tool) must have
/// uploaded one.
async fn start_packaging(state: &Shared, cid: &str) -> Result<(), ApiError> {
    if state.broadcasts.has_uploaded_playlist(cid) {
        return Ok(());
    }
    let Some(sfu) = &state.embedded_sfu else {
        if state.broadcasts.has_playlist(cid) {
            return Ok(());
        }
        return Err(ApiError::input(
            "upload the playlist and a first segment before starting the broadcast",
        ));
    };
    let budget = state.limits.hls_budget();
    let mut progress = state
        .packagers
        .start(sfu, state.broadcasts.clone(), budget, cid)
        .await;
    let first = tokio::time::timeout(FIRST_SEGMENT_WAIT, progress.wait_for(|p| p.segments > 0))
        .await
        .is_ok_and(|r| r.is_ok());
    match first {
        true => Ok(()),
        false => {
            state.packagers.stop(cid).await;
            Err(ApiError::input(
                "nothing to broadcast: the host's camera is not reaching the call (join the call with your camera on, then start the broadcast)",
            ))
        }
    }
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
            .filter(|f| matches!(f, HlsFile::Playlist | HlsFile::Segment(_)))
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
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let call = hosted_call(&state, &caller, &path).await?;
    livestream_only(&call)?;
    let budget = state.limits.hls_budget();
    let max = budget.upload_bytes;
    let too_large = || ApiError::too_large(format!("an upload is at most {max} bytes"));
    // Refused before reading when the length is announced.
    let announced = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if announced.is_some_and(|n| n > max as u64) {
        return Err(too_large());
    }
    let bytes = axum::body::to_bytes(body, max)
        .await
        .map_err(|_| too_large())?;
    if bytes.is_empty() {
        return Err(ApiError::input("the upload is empty"));
    }
    state
        .broadcasts
        .store(&call.cid, file, bytes, &budget)
        .inspect(|()| state.broadcasts.mark_uploaded(&call.cid))
        .map_err(|e| match e {
            HlsError::TooLarge { .. } => ApiError::too_large(e.to_string()),
            // Retrying later can work: old segments leave the playlists.
            HlsError::NoRoom { .. } => ApiError::new(
                ErrorCode::RateLimited,
                StatusCode::INSUFFICIENT_STORAGE,
                e.to_string(),
            ),
        })?;
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

fn no_such_file() -> Response {
    (
        StatusCode::NOT_FOUND,
        hls_headers("text/plain"),
        "no such file",
    )
        .into_response()
}

/// Whether a call's HLS files may be served: a livestream that is live (not backstage) and
/// broadcasting, or stopped within the grace period. Anything else is 404, as a CDN answers
/// for a stream it does not have.
async fn servable_cid(state: &AppState, call_type: &str, id: &str) -> Option<String> {
    let call_type = ids::call_type(call_type).ok()?;
    let id = ids::call_id(id).ok()?;
    if call_type != CallType::Livestream {
        return None;
    }
    let cid = CallCid::new(call_type, id).to_string();
    let call = state.store.call(&cid).await.ok()??;
    let grace = state.limits.hls_ended_grace;
    (!call.backstage && state.broadcasts.servable(&cid, grace)).then_some(cid)
}

/// `GET /video/hls/{type}/{id}/{file}`: public, as a CDN's playlist URL is, while the
/// livestream is live and broadcasting.
pub async fn serve(
    State(state): State<Shared>,
    peer: PeerIp,
    Path((call_type, id, file)): Path<(String, String, String)>,
    RawQuery(raw): RawQuery,
) -> Response {
    let Some(file) = HlsFile::parse(&file) else {
        return no_such_file();
    };
    let Some(cid) = servable_cid(&state, &call_type, &id).await else {
        return no_such_file();
    };
    match (file, state.broadcasts.file(&cid, file)) {
        (HlsFile::Playlist, Some(playlist)) => {
            // Players add ?viewer=<id> to count themselves; segments need no id.
            if let Some(viewer) = raw
                .as_deref()
                .and_then(|q| q.split('&').find_map(|kv| kv.strip_prefix("viewer=")))
            {
                state.broadcasts.count_viewer(
                    &cid,
                    viewer,
                    address_key(peer.0),
                    state.limits.hls_viewers_per_address,
                );
            }
            (hls_headers(file.content_type()), playlist).into_response()
        }
        (_, Some(bytes)) => (hls_headers(file.content_type()), bytes).into_response(),
        (_, None) => no_such_file(),
    }
}
