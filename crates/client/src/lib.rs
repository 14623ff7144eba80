//! `confab-client`: what `@stream-io/video-client` is to a web app, for Confab.
//!
//! This crate owns users, tokens and the connection to a Stream-compatible coordinator. It
//! builds and tests without a display, WebKit or Tauri.

pub mod token;

pub use token::{Token, TokenClaims, TokenError};
