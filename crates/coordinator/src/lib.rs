//! `confab-coordinator`: a local backend that speaks Stream's coordinator protocol, so Confab
//! (and Stream's own JS client) can sign in, join and watch calls without a Stream account.
//!
//! HTTP and the event socket share one port under `/video`; data lives in SQLite. The wire
//! types and rules it shares with the client come from `confab-protocol`.
//!
//! Modules form layers, each importing only those below it:
//! parts (`store`, `hub`, `sessions`, `faults`, `hls`, `jwt`, `clock`, `error`), then `state`,
//! then `auth`, `ids`, `model`, `view`, `events` and `extract`, then the endpoints (`api`, `ws`),
//! then `server`.

mod api;
pub mod auth;
mod clock;
pub mod error;
mod events;
mod extract;
pub mod faults;
mod hls;
mod hub;
mod ids;
pub mod jwt;
pub mod model;
mod server;
mod sessions;
mod state;
pub mod store;
mod view;
pub mod ws;

pub use error::ApiError;
pub use faults::FaultCommand;
pub use jwt::{AuthError, Claims, SigningKey};
pub use server::{start, CoordinatorConfig, ExtraListener, RunningCoordinator, StartError};
pub use state::Limits;
