//! What Stream's clients ask around a call that this coordinator answers with fixed content:
//! the SFU edges, the CDN location hint and client telemetry.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::{json, Value};

use crate::api::reply::{reply, Started};
use crate::extract::{JsonBody, KnownApp};

/// Telemetry: accepted and dropped.
pub async fn call_client_event(
    started: Started,
    _: KnownApp,
    JsonBody(_): JsonBody<Value>,
) -> Response {
    reply(StatusCode::CREATED, json!({}), started)
}

pub async fn edges(started: Started, _: KnownApp) -> Response {
    reply(StatusCode::OK, json!({"edges": []}), started)
}

/// Stream's clients ask a CDN where they are (`x-amz-cf-pop`) before joining. Local mode
/// answers it here, so a client pointed at this URL never leaves the machine.
pub async fn location_hint() -> Response {
    ([("x-amz-cf-pop", "LCL1-P1")], "").into_response()
}
