//! The joined call: joining, leaving, going live. Each runs in a task of its own and reports
//! back; a report for a call that is no longer the current one is undone.

use confab_credentials::Backend;

use super::{Active, Phase, Reply, Report, SessionTask};
use crate::call::{self, JoinedCall};
use crate::errors::SessionError;
use crate::input::CallChoice;
use crate::status::{BroadcastStatus, CallView};

impl SessionTask {
    pub(super) fn join_call(
        &mut self,
        choice: CallChoice,
        media: Option<call::CallMediaSetup>,
        reply: Reply<CallView>,
    ) {
        let attempt = self.next_attempt();
        let Phase::SignedIn(active) = &mut self.phase else {
            let _ = reply.send(Err(SessionError::not_signed_in("join a call")));
            return;
        };
        active.call_attempt = attempt;
        let previous = active.call.take();
        let client = active.account.client.clone();
        let reports = self.reports.clone();
        let status = self.status.clone();
        status.send_modify(|s| {
            s.call = None;
            s.broadcast = None;
        });
        tokio::spawn(async move {
            if let Some(previous) = previous {
                previous.leave().await;
            }
            let result = call::join(client, &choice, media, status).await;
            let _ = reports.send(Report::Joined {
                attempt,
                result,
                reply,
            });
        });
    }

    pub(super) fn on_joined(
        &mut self,
        attempt: u64,
        result: Result<JoinedCall, SessionError>,
        reply: Reply<CallView>,
    ) {
        let joined = match result {
            Ok(joined) => joined,
            Err(e) => {
                let _ = reply.send(Err(e));
                return;
            }
        };
        match &mut self.phase {
            Phase::SignedIn(active) if active.call_attempt == attempt => {
                let view = joined.view();
                self.status.send_modify(|s| s.call = Some(view.clone()));
                active.call = Some(joined);
                let _ = reply.send(Ok(view));
            }
            _ => {
                // Signed out, left or joined another call meanwhile.
                tokio::spawn(joined.leave());
                let _ = reply.send(Err(SessionError::cancelled()));
            }
        }
    }

    pub(super) fn set_live(&mut self, live: bool, reply: Reply<bool>) {
        let attempt = self.next_attempt();
        let Phase::SignedIn(active) = &mut self.phase else {
            let _ = reply.send(Err(SessionError::not_signed_in("go live")));
            return;
        };
        let Some(joined) = active.call.as_mut() else {
            let _ = reply.send(Err(SessionError::not_signed_in("go live")));
            return;
        };
        active.call_attempt = attempt;
        // Only the embedded coordinator packages HLS from its SFU; Stream's service has its
        // own egress, started from Stream's dashboard or API.
        let hls = active.account.backend == Backend::Local;
        let plan = joined.live_plan(live, hls);
        let reports = self.reports.clone();
        tokio::spawn(async move {
            let result = plan.run().await;
            let _ = reports.send(Report::LiveSet {
                attempt,
                result,
                reply,
            });
        });
    }

    pub(super) fn on_live_set(
        &mut self,
        attempt: u64,
        result: Result<(bool, Option<BroadcastStatus>), SessionError>,
        reply: Reply<bool>,
    ) {
        let (is_live, broadcast) = match result {
            Ok(done) => done,
            Err(e) => {
                let _ = reply.send(Err(e));
                return;
            }
        };
        match &mut self.phase {
            Phase::SignedIn(Active {
                call: Some(joined),
                call_attempt,
                ..
            }) if *call_attempt == attempt => {
                joined.set_broadcasting(broadcast.as_ref());
                if broadcast.is_some() {
                    self.status.send_modify(|s| s.broadcast = broadcast);
                }
                let _ = reply.send(Ok(is_live));
            }
            _ => {
                let _ = reply.send(Err(SessionError::cancelled()));
            }
        }
    }
}
