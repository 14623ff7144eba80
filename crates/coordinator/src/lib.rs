//! `confab-coordinator`: a local backend that speaks Stream's coordinator protocol, so Confab
//! (and Stream's own JS client) can sign in, join and watch calls without a Stream account.
//!
//! HTTP and the event socket share one port under `/video`; data lives in SQLite. The wire
//! types and rules it shares with the client come from `confab-protocol`.
//!
//! Modules form layers, each importing only those below it:
//! parts (`store`, `hub`, `sessions`, `faults`, `hls`, `rate`, `jwt`, `clock`, `error`, `sfu`),
//! then `state`, then `auth`, `ids`, `model`, `view`, `events` and `extract`, then the endpoints
//! (`api`, `ws`, `room_events`), then `listener` (connections, limits, the Host check) and
//! `server`.

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
mod listener;
pub mod model;
mod packager;
mod rate;
mod room_events;
mod server;
mod sessions;
mod sfu;
mod state;
pub mod store;
mod view;
pub mod ws;

pub use error::ApiError;
pub use faults::FaultCommand;
pub use jwt::{AuthError, Claims, SigningKey};
pub use server::{
    start, CoordinatorConfig, ExtraListener, RunningCoordinator, StartError, MIN_SECRET_BYTES,
};
pub use sfu::{SfuSetting, SfuSettingError};
pub use state::{Limits, Rate};
