//! The embedded SFU's participants in the coordinator's call sessions: one task reads the SFU's
//! room events and lists, or unlists, the people it reports, announcing them as a join through
//! the coordinator would. Who is listed follows the rule in `sessions`: the SFU lists a user
//! only when nothing else does, so nobody appears twice.

use confab_sfu::RoomEvent;
use tokio::sync::broadcast::{self, error::RecvError};
use tokio::task::JoinHandle;

use crate::error::ApiError;
use crate::events::{announce_joined, announce_left};
use crate::state::Shared;

/// Applies `events` to the sessions until the SFU stops (or the task is aborted).
pub fn spawn(state: Shared, mut events: broadcast::Receiver<RoomEvent>) -> JoinHandle<()> {
    tokio::spawn(async move {
        loop {
            match events.recv().await {
                Ok(event) => {
                    if let Err(e) = apply(&state, event).await {
                        tracing::warn!(target: "coordinator", error = %e, "an SFU participant could not be shown in its call");
                    }
                }
                Err(RecvError::Lagged(missed)) => {
                    tracing::warn!(target: "coordinator", missed, "missed SFU room events: call sessions may be out of date");
                }
                Err(RecvError::Closed) => return,
            }
        }
    })
}

async fn apply(state: &Shared, event: RoomEvent) -> Result<(), ApiError> {
    match event {
        RoomEvent::ParticipantJoined {
            room,
            sid,
            identity,
            ..
        } => {
            // Rooms are named by call cids; a room that is no call of ours is left alone.
            if state.store.call(&room).await?.is_none() {
                return Ok(());
            }
            let Some((session, participant)) = state.sessions.join_from_sfu(&room, &identity, &sid)
            else {
                return Ok(());
            };
            let role = state
                .store
                .user(&identity)
                .await?
                .map_or_else(|| "user".to_owned(), |u| u.role);
            announce_joined(state, &room, &session.id, &participant, &role).await
        }
        RoomEvent::ParticipantLeft { room, sid, .. } => {
            watch_for_host_return(state, &room);
            match state.sessions.leave_from_sfu(&room, &sid) {
                Some((session_id, participant)) => {
                    announce_left(state, &room, &session_id, &participant).await
                }
                None => Ok(()),
            }
        }
    }
}

/// After someone leaves a live livestream's room: if nobody is left to publish once the
/// grace period is over (the host's app was killed, or its network never came back), the
/// livestream ends. A host who rejoins within the grace period keeps it running.
fn watch_for_host_return(state: &Shared, room: &str) {
    let Some(sfu) = state.embedded_sfu.clone() else {
        return;
    };
    let state = state.clone();
    let room = room.to_owned();
    tokio::spawn(async move {
        if sfu.audience(&room).await.publishers > 0 {
            return;
        }
        tokio::time::sleep(state.limits.host_return_grace).await;
        if sfu.audience(&room).await.publishers > 0 {
            return;
        }
        if let Err(e) = crate::api::end_without_host(&state, &room).await {
            tracing::warn!(target: "coordinator", error = %e, "a livestream without its host could not be ended");
        }
    });
}
