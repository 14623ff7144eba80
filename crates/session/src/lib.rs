//! `confab-session`: what Confab's window does, without the window. Signing in (local mode or
//! Stream, a token or a token URL, remembered in the keychain or not), joining as a guest,
//! watching a livestream anonymously, joining and leaving calls, going live and signing out,
//! and the `confab://` links that ask for one of those ([`links`]).
//!
//! One task owns the session ([`SessionHandle`] sends it requests); it holds the input rules
//! ([`input`]), the sign-in policy ([`backend`]), and the one catalogue of what a person is
//! told when something fails ([`errors`]). Its status is published on a watch channel
//! ([`status`]). The Tauri shell only forwards commands and the status to the page.

pub mod backend;
pub mod call;
pub mod errors;
pub mod input;
mod keychain;
pub mod links;
mod session;
pub mod status;
pub mod views;
mod watch;

pub use backend::LocalBackend;
pub use call::CallMediaSetup;
pub use errors::{ErrorKind, SessionError};
pub use input::{GuestForm, SignInForm, WatchForm};
pub use links::{Link, LinkError};
pub use session::{SessionHandle, SessionOptions};
pub use status::{CallView, ConnectionStatus, SessionStatus};
pub use views::{Livestream, Remembered, Restored, SignedIn, SignedOut, TokenInfo};
pub use watch::{Delivery, Watch, WatchMediaSetup};
