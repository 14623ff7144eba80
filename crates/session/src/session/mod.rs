//! The session task: one task owns who is signed in, the joined call and the broadcast;
//! `SessionHandle` is a cheap handle that sends it requests and awaits replies.
//!
//! The task never awaits the network itself. A request that needs the coordinator (connecting,
//! joining, going live) runs in a task of its own, which reports back with a message; the
//! session task stays free, so signing out while a sign-in retries answers at once and cancels
//! it, and the token inspector never waits behind a connect.
//!
//! `handle.rs` is the handle's side, `task.rs` the task's loop, `sign_in.rs` signing in and
//! out, `in_call.rs` the joined call.

mod handle;
mod in_call;
mod sign_in;
mod task;

use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex};

use confab_client::{ConnectError, ConnectedUser, Guest, VideoClient};
use confab_credentials::{Backend, Keychain, KeychainError, RememberedSignIn};
use tokio::sync::{mpsc, oneshot, watch};
use tokio::task::JoinHandle;

use crate::backend::LocalBackend;
use crate::call::JoinedCall;
use crate::errors::SessionError;
use crate::input::CallChoice;
use crate::keychain::KeychainQueue;
use crate::status::{CallView, ConnectionStatus, SessionStatus};
use crate::views::{Restored, SignedIn, SignedOut, TokenInfo};

type Reply<T> = oneshot::Sender<Result<T, SessionError>>;

/// What a session needs from the app: the embedded coordinator and the keychain.
pub struct SessionOptions {
    pub local: LocalBackend,
    pub keychain: Keychain,
}

/// A handle to the session task. Clone it freely; the task ends with the last handle.
#[derive(Clone)]
pub struct SessionHandle {
    requests: mpsc::Sender<Request>,
    status: watch::Receiver<SessionStatus>,
    timeline: Arc<Mutex<Vec<ConnectionStatus>>>,
    local: LocalBackend,
    /// The livestream watched anonymously over WebRTC, apart from the session task (watching
    /// needs no sign-in).
    watching: Arc<tokio::sync::Mutex<Option<crate::watch::Watching>>>,
}

enum Request {
    SignIn {
        sign_in: RememberedSignIn,
        remember: bool,
        reply: Reply<SignedIn>,
    },
    Restore {
        reply: oneshot::Sender<Restored>,
    },
    Guest {
        backend: Backend,
        guest: Guest,
        reply: Reply<SignedIn>,
    },
    SignOut {
        reply: oneshot::Sender<SignedOut>,
    },
    TokenInfo {
        reply: oneshot::Sender<Option<TokenInfo>>,
    },
    JoinCall {
        choice: CallChoice,
        media: Option<crate::call::CallMediaSetup>,
        reply: Reply<CallView>,
    },
    CallMedia {
        reply: oneshot::Sender<Option<confab_call::CallMedia>>,
    },
    LeaveCall {
        reply: oneshot::Sender<()>,
    },
    SetLive {
        live: bool,
        reply: Reply<bool>,
    },
    ViewerToken {
        reply: Reply<Option<String>>,
    },
}

/// Reports from the tasks the session task started.
enum Report {
    Recalled {
        result: Result<Option<RememberedSignIn>, KeychainError>,
        reply: oneshot::Sender<Restored>,
    },
    Connected {
        attempt: u64,
        result: Result<ConnectedUser, ConnectError>,
    },
    Joined {
        attempt: u64,
        result: Result<JoinedCall, SessionError>,
        reply: Reply<CallView>,
    },
    LiveSet {
        attempt: u64,
        result: Result<(bool, Option<crate::status::BroadcastStatus>), SessionError>,
        reply: Reply<bool>,
    },
}

/// A signed-in (or signing-in) user's client.
struct Account {
    client: VideoClient,
    backend: Backend,
    token_source: &'static str,
    /// The forwarder of this client's connection state publishes while this is current.
    generation: u64,
}

/// How a finished connect is answered.
enum Finish {
    SignIn {
        reply: Reply<SignedIn>,
        sign_in: RememberedSignIn,
        remember: bool,
    },
    Restore {
        reply: oneshot::Sender<Restored>,
        backend: Backend,
    },
    Guest {
        reply: Reply<SignedIn>,
    },
}

struct Pending {
    attempt: u64,
    account: Account,
    connect: JoinHandle<()>,
    finish: Finish,
}

struct Active {
    account: Account,
    call: Option<JoinedCall>,
    /// The newest join or go-live in flight; older reports are stale.
    call_attempt: u64,
}

enum Phase {
    SignedOut,
    SigningIn(Pending),
    SignedIn(Active),
}

struct SessionTask {
    local: LocalBackend,
    keychain: KeychainQueue,
    phase: Phase,
    status: Arc<watch::Sender<SessionStatus>>,
    timeline: Arc<Mutex<Vec<ConnectionStatus>>>,
    generation: Arc<AtomicU64>,
    attempts: u64,
    reports: mpsc::UnboundedSender<Report>,
}

fn keychain_message(e: &KeychainError) -> String {
    match e {
        KeychainError::Unavailable(_) => "No keychain is available on this computer, so Confab keeps this sign-in in memory only and will forget it when it closes.".into(),
        other => format!("Confab could not remember this sign-in: {other}. It is kept in memory only."),
    }
}
