//! `confab-coordinator`: a local backend that speaks Stream's coordinator protocol, so Confab
//! (and Stream's own JS client) can sign in, join and watch calls without a Stream account.
//!
//! HTTP and the event socket share one port under `/video`; data lives in SQLite.

mod api;
pub mod auth;
mod broadcast;
pub mod error;
pub mod faults;
mod hub;
pub mod jwt;
pub mod model;
mod server;
mod sessions;
mod state;
pub mod store;
pub mod ws;

pub use error::ApiError;
pub use faults::FaultCommand;
pub use jwt::{AuthError, Claims, SigningKey};
pub use server::{start, CoordinatorConfig, RunningCoordinator, StartError};
pub use state::Limits;
