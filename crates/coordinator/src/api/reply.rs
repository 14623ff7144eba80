//! How REST endpoints answer: JSON with Stream's `duration` field, timed from the moment the
//! request reached its handler's first extractor.

use std::convert::Infallible;
use std::time::Instant;

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::{json, Value};

/// When the request started; list it first among a handler's extractors.
#[derive(Debug, Clone, Copy)]
pub struct Started(Instant);

impl<S: Send + Sync> FromRequestParts<S> for Started {
    type Rejection = Infallible;

    async fn from_request_parts(_: &mut Parts, _: &S) -> Result<Self, Infallible> {
        Ok(Started(Instant::now()))
    }
}

/// A JSON answer with Stream's `duration` field filled in.
pub fn reply(status: StatusCode, mut body: Value, started: Started) -> Response {
    body["duration"] = json!(format!(
        "{:.2}ms",
        started.0.elapsed().as_secs_f64() * 1000.0
    ));
    (status, Json(body)).into_response()
}

/// 201 for a call this request created, 200 for one that existed.
pub fn created_or_ok(created: bool) -> StatusCode {
    if created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    }
}
