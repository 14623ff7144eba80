//! Errors in the shape Stream's coordinator sends them, so the official client reads them:
//! `{code, message, StatusCode, duration, more_info, details}`. The numbers are the shared
//! protocol's [`ErrorCode`], so the client and this coordinator cannot disagree on them.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use confab_protocol::ErrorCode;
use serde_json::json;

use crate::jwt::AuthError;

/// Stream's error codes that this coordinator uses, by their old names.
pub mod codes {
    use confab_protocol::ErrorCode;

    pub const INTERNAL: ErrorCode = ErrorCode::Internal;
    pub const AUTHENTICATION: ErrorCode = ErrorCode::Authentication;
    pub const INPUT: ErrorCode = ErrorCode::Input;
    pub const DOES_NOT_EXIST: ErrorCode = ErrorCode::DoesNotExist;
    pub const NOT_ALLOWED: ErrorCode = ErrorCode::NotAllowed;
    pub const TOKEN_EXPIRED: ErrorCode = ErrorCode::TokenExpired;
}

/// A refused request: Stream's numeric code, the HTTP status and a message for people.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message} (code {})", .code.as_i32())]
pub struct ApiError {
    pub code: ErrorCode,
    pub status: StatusCode,
    pub message: String,
}

impl ApiError {
    pub fn new(code: ErrorCode, status: StatusCode, message: impl Into<String>) -> Self {
        Self {
            code,
            status,
            message: message.into(),
        }
    }

    pub fn input(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::Input, StatusCode::BAD_REQUEST, message)
    }

    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::DoesNotExist, StatusCode::NOT_FOUND, message)
    }

    pub fn not_allowed(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::NotAllowed, StatusCode::FORBIDDEN, message)
    }

    pub fn unauthenticated(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::Authentication, StatusCode::UNAUTHORIZED, message)
    }

    /// Too many requests from one address: Stream's code 9 with 429.
    pub fn rate_limited(message: impl Into<String>) -> Self {
        Self::new(
            ErrorCode::RateLimited,
            StatusCode::TOO_MANY_REQUESTS,
            message,
        )
    }

    /// A body or field over its size limit: an input error, with 413.
    pub fn too_large(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::Input, StatusCode::PAYLOAD_TOO_LARGE, message)
    }

    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(
            ErrorCode::Internal,
            StatusCode::INTERNAL_SERVER_ERROR,
            message,
        )
    }

    /// The JSON body, as Stream sends it.
    pub fn body(&self) -> serde_json::Value {
        json!({
            "code": self.code.as_i32(),
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
        ApiError::new(e.code(), StatusCode::UNAUTHORIZED, e.to_string())
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
