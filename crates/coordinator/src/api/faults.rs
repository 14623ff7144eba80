//! The test-only fault switch (`POST /video/_faults`, mounted only with fault injection on),
//! and carrying a switch out on the sockets, which `RunningCoordinator::inject` shares.

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use confab_protocol::EventType;
use serde_json::json;

use crate::api::reply::{reply, Started};
use crate::error::ApiError;
use crate::extract::JsonBody;
use crate::faults::FaultCommand;
use crate::hub::{Outbound, CLOSE_RECONNECT};
use crate::jwt::AuthError;
use crate::state::{AppState, Shared};

/// The header that carries the app's API secret to the fault switch: only whoever runs the
/// coordinator (and so knows the secret) may flip it, even on a test build.
pub const FAULT_SECRET_HEADER: &str = "x-confab-api-secret";

pub async fn faults(
    State(state): State<Shared>,
    started: Started,
    headers: HeaderMap,
    JsonBody(command): JsonBody<FaultCommand>,
) -> Result<Response, ApiError> {
    let given = headers
        .get(FAULT_SECRET_HEADER)
        .map(|v| v.as_bytes())
        .unwrap_or_default();
    if given.is_empty() || !state.signing.is_secret(given) {
        return Err(ApiError::unauthenticated(format!(
            "the fault switch needs the app's API secret in {FAULT_SECRET_HEADER}"
        )));
    }
    let affected = apply_fault(&state, &command);
    Ok(reply(
        StatusCode::OK,
        json!({"affected_sockets": affected}),
        started,
    ))
}

/// Flips the switch and acts on the sockets it concerns. Returns how many it touched.
pub fn apply_fault(state: &AppState, command: &FaultCommand) -> usize {
    state.faults.apply(command);
    match command {
        FaultCommand::DropSockets { user_id } => {
            state.hub.send_to_user(user_id.as_deref(), Outbound::Drop)
        }
        FaultCommand::ExpireTokens { user_id } => {
            // Sockets learn of it the way Stream tells them: connection.error with code 40.
            let error = ApiError::from(AuthError::Expired);
            let frame = json!({
                "type": EventType::ConnectionError.as_str(),
                "connection_id": "",
                "created_at": crate::store::now(),
                "error": error.body(),
            });
            let n = state
                .hub
                .send_to_user(Some(user_id), Outbound::Text(frame.to_string()));
            state.hub.send_to_user(
                Some(user_id),
                Outbound::Close {
                    code: CLOSE_RECONNECT,
                    reason: "token expired".into(),
                },
            );
            n
        }
        _ => 0,
    }
}
