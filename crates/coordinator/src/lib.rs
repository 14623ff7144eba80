//! `confab-coordinator`: a local backend that speaks Stream's coordinator protocol, so Confab
//! (and Stream's own JS client) can sign in, join and watch calls without a Stream account.

pub mod jwt;

pub use jwt::{AuthError, Claims, SigningKey};
