//! The REST surface under `/video`, as Stream's clients call it: the router, and one module
//! per group of endpoints. The endpoint modules import the shared parts (extractors, the call
//! view, events, replies); nothing imports an endpoint module but this router.

mod calls;
pub mod faults;
mod livestream;
pub(crate) use livestream::end_without_host;
mod probes;
mod reply;
mod users;

use axum::extract::DefaultBodyLimit;
use axum::routing::{get, post, put};
use axum::Router;

use crate::error::ApiError;
use crate::state::Shared;

/// Every route, with the state. The fault switch and the dev token endpoint are mounted only
/// when switched on; the embedded SFU's signalling, when it runs, under `/video/sfu`.
pub(crate) fn router(
    state: Shared,
    dev_token_endpoint: bool,
    sfu: Option<&confab_sfu::Sfu>,
) -> Router {
    let faults_enabled = state.faults.enabled();
    let max_upload = state.limits.hls_max_upload_bytes;
    let mut video = Router::new()
        .route("/connect", get(crate::ws::connect))
        .route("/guest", post(users::create_guest))
        .route(
            "/call/{type}/{id}",
            get(calls::get_call).post(calls::get_or_create_call),
        )
        .route("/call/{type}/{id}/join", post(calls::join_call))
        .route("/call/{type}/{id}/leave", post(calls::leave_call))
        .route("/call/{type}/{id}/members", post(calls::update_members))
        .route(
            "/call/{type}/{id}/go_live",
            post(livestream::set_live::<true>),
        )
        .route(
            "/call/{type}/{id}/stop_live",
            post(livestream::set_live::<false>),
        )
        .route(
            "/call/{type}/{id}/start_broadcasting",
            post(livestream::set_broadcasting::<true>),
        )
        .route(
            "/call/{type}/{id}/stop_broadcasting",
            post(livestream::set_broadcasting::<false>),
        )
        .route(
            "/call/{type}/{id}/hls/{file}",
            put(livestream::upload).layer(DefaultBodyLimit::max(max_upload)),
        )
        .route("/hls/{type}/{id}/{file}", get(livestream::serve))
        .route("/calls", post(calls::query_calls))
        .route("/call_client_event", post(probes::call_client_event))
        .route("/edges", get(probes::edges))
        .route(
            "/location_hint",
            get(probes::location_hint).head(probes::location_hint),
        );
    if faults_enabled {
        video = video.route("/_faults", post(faults::faults));
    }
    let mut app = Router::new().nest("/video", video);
    if dev_token_endpoint {
        app = app.route("/api/token", get(users::dev_token));
    }
    let app: Router = app
        .fallback(not_found)
        .method_not_allowed_fallback(not_found)
        .with_state(state);
    match sfu {
        // The SFU's routes answer for themselves (CORS, LiveKit's errors); other paths under
        // /video/sfu fall back to the coordinator's 404.
        Some(sfu) => app.nest("/video/sfu", sfu.router()),
        None => app,
    }
}

async fn not_found(uri: axum::http::Uri) -> ApiError {
    ApiError::not_found(format!("no endpoint at {}", uri.path()))
}
