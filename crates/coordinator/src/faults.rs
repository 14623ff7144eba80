//! Fault injection for tests: off unless the coordinator was started with it, and then only
//! reachable through [`crate::RunningCoordinator::faults`] or the test-only HTTP route.

use std::collections::{HashMap, HashSet};
use std::sync::Mutex;
use std::time::Duration;

use serde::Deserialize;
use sha2::{Digest, Sha256};

/// One switch, as the test-only HTTP route takes it (`POST /video/_faults`).
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(tag = "action", rename_all = "snake_case")]
pub enum FaultCommand {
    /// Cut the sockets of one user (or all) without a close frame.
    DropSockets { user_id: Option<String> },
    /// Answer the next `count` socket connects (or all, without a count) with this code.
    RefuseConnects { code: i32, count: Option<u32> },
    /// Wait this long before sending `connection.ok`.
    DelayConnectionOk { millis: u64 },
    /// Treat every token of this user seen so far as expired (code 40), on REST and sockets.
    ExpireTokens { user_id: String },
    /// Stop (or resume) answering `health.check`.
    IgnoreHealthChecks { ignore: bool },
    /// Switch everything back off.
    Reset,
}

#[derive(Default)]
struct State {
    refuse: Option<(i32, Option<u32>)>,
    delay_connection_ok: Option<Duration>,
    ignore_health_checks: bool,
    seen_tokens: HashMap<String, HashSet<[u8; 32]>>,
    expired_tokens: HashSet<[u8; 32]>,
}

pub struct Faults {
    enabled: bool,
    state: Mutex<State>,
}

impl Faults {
    pub fn new(enabled: bool) -> Self {
        Self {
            enabled,
            state: Mutex::new(State::default()),
        }
    }

    pub fn enabled(&self) -> bool {
        self.enabled
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Applies a switch, except `DropSockets`, which the server carries out on its sockets.
    pub(crate) fn apply(&self, command: &FaultCommand) {
        let mut s = self.lock();
        match command {
            FaultCommand::DropSockets { .. } => {}
            FaultCommand::RefuseConnects { code, count } => s.refuse = Some((*code, *count)),
            FaultCommand::DelayConnectionOk { millis } => {
                s.delay_connection_ok = Some(Duration::from_millis(*millis))
            }
            FaultCommand::ExpireTokens { user_id } => {
                let seen = s.seen_tokens.remove(user_id).unwrap_or_default();
                s.expired_tokens.extend(seen);
            }
            FaultCommand::IgnoreHealthChecks { ignore } => s.ignore_health_checks = *ignore,
            FaultCommand::Reset => *s = State::default(),
        }
    }

    /// A refusal code for this connect attempt, if one is switched on.
    pub fn take_connect_refusal(&self) -> Option<i32> {
        if !self.enabled {
            return None;
        }
        let mut s = self.lock();
        let (code, count) = s.refuse?;
        match count {
            None => Some(code),
            Some(0) => {
                s.refuse = None;
                None
            }
            Some(n) => {
                s.refuse = if n > 1 {
                    Some((code, Some(n - 1)))
                } else {
                    None
                };
                Some(code)
            }
        }
    }

    pub fn connection_ok_delay(&self) -> Option<Duration> {
        if !self.enabled {
            return None;
        }
        self.lock().delay_connection_ok
    }

    pub fn ignore_health_checks(&self) -> bool {
        self.enabled && self.lock().ignore_health_checks
    }

    /// Records a token that authenticated, and says whether it was expired by a fault.
    pub fn token_expired(&self, user_id: &str, token: &str) -> bool {
        if !self.enabled {
            return false;
        }
        let digest: [u8; 32] = Sha256::digest(token.as_bytes()).into();
        let mut s = self.lock();
        if s.expired_tokens.contains(&digest) {
            return true;
        }
        s.seen_tokens
            .entry(user_id.to_owned())
            .or_default()
            .insert(digest);
        false
    }
}
