//! Errors in the shape Stream's coordinator sends them, so the official client reads them:
//! `{code, message, StatusCode, duration, more_info, details}`.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::json;

use crate::jwt::AuthError;

/// Stream's error codes that this coordinator uses.
pub mod codes {
    pub const INTERNAL: i32 = -1;
    pub const AUTHENTICATION: i32 = 2;
    pub const INPUT: i32 = 4;
    pub const DOES_NOT_EXIST: i32 = 16;
    pub const NOT_ALLOWED: i32 = 17;
    pub const TOKEN_EXPIRED: i32 = 40;
}

/// A refused request: Stream's numeric code, the HTTP status and a message for people.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message} (code {code})")]
pub struct ApiError {
    pub code: i32,
    pub status: StatusCode,
    pub message: String,
}

impl ApiError {
    pub fn new(code: i32, status: StatusCode, message: impl Into<String>) -> Self {
        Self {
            code,
            status,
            message: message.into(),
        }
    }

    pub fn input(message: impl Into<String>) -> Self {
        Self::new(codes::INPUT, StatusCode::BAD_REQUEST, message)
    }

    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(codes::DOES_NOT_EXIST, StatusCode::NOT_FOUND, message)
    }

    pub fn not_allowed(message: impl Into<String>) -> Self {
        Self::new(codes::NOT_ALLOWED, StatusCode::FORBIDDEN, message)
    }

    pub fn unauthenticated(message: impl Into<String>) -> Self {
        Self::new(codes::AUTHENTICATION, StatusCode::UNAUTHORIZED, message)
    }

    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(codes::INTERNAL, StatusCode::INTERNAL_SERVER_ERROR, message)
    }

    /// The JSON body, as Stream sends it.
    pub fn body(&self) -> serde_json::Value {
        json!({
            "code": self.code,
            "message": self.message,
            "StatusCode": self.status.as_u16(),
            "duration": "0.00ms",
            "more_info": "https://getstream.io/video/docs/api/errors/",
            "details": [],
        })
    }
}

impl From<AuthError> for ApiError {
    fn from(e: AuthError) -> Self {
        ApiError::new(e.code() as i32, StatusCode::UNAUTHORIZED, e.to_string())
    }
}

impl From<crate::store::StoreError> for ApiError {
    fn from(e: crate::store::StoreError) -> Self {
        tracing::error!(target: "coordinator", error = %e, "store failed");
        ApiError::internal("the coordinator's storage failed; try again")
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.status, axum::Json(self.body())).into_response()
    }
}
