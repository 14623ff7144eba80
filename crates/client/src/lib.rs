//! `confab-client`: what `@stream-io/video-client` is to a web app, for Confab.
//!
//! This crate owns users, tokens and the connection to a Stream-compatible coordinator. It
//! builds and tests without a display, WebKit or Tauri.

pub mod backoff;
pub mod call;
pub mod client;
pub mod connection;
pub mod events;
pub mod rest;
pub mod token;
pub mod token_manager;
pub mod user;

pub use backoff::ReconnectPolicy;
pub use call::{Call, CallResponse};
pub use client::{ClientOptions, VideoClient, DEFAULT_BASE_URL};
pub use connection::{ConnectError, ConnectionOptions, ConnectionState, DisconnectReason};
pub use events::Event;
pub use rest::ApiError;
pub use token::{Token, TokenClaims, TokenError};
pub use token_manager::{ProviderError, TokenLoadError, TokenManager, TokenOptions, TokenSource};
pub use user::{ConnectedUser, Guest, User};
