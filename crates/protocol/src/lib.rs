//! `confab-protocol`: the parts of Stream's coordinator protocol that both sides of the wire
//! write, so the client (confab-client) and the local coordinator (confab-coordinator) cannot
//! drift apart: error codes, token claims, ids and their rules, header and query names, the
//! call state, users and the events' payloads.
//!
//! Plain data only: no IO, no async, no HTTP types.

pub mod call;
pub mod claims;
pub mod codes;
pub mod events;
pub mod ids;
pub mod user;
pub mod wire;

pub use call::{
    CallCredentials, CallResponse, CallSession, CallState, Egress, HlsEgress, MemberResponse,
    SfuServer,
};
pub use claims::Claims;
pub use codes::ErrorCode;
pub use events::{
    CallEvent, EventType, MembersEvent, MembersRemovedEvent, Participant, ParticipantEvent,
};
pub use ids::{CallCid, CallId, CallType, IdError, UserId, ANONYMOUS_USER_ID};
pub use user::UserResponse;
pub use wire::{AuthType, HLS_PLAYLIST};
