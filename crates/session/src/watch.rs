//! Watching a livestream anonymously: no socket and no session state, so it does not go
//! through the session task.

use confab_client::TokenSource;
use confab_protocol::{CallId, CallType};

use crate::errors::{SessionError, TokenFrom};
use crate::input::{valid_backend, WatchForm};
use crate::session::SessionHandle;
use crate::views::Livestream;

impl SessionHandle {
    /// Reads a livestream's state as an anonymous viewer, with an optional call token.
    pub async fn watch_livestream(&self, form: WatchForm) -> Result<Livestream, SessionError> {
        let backend = valid_backend(form.backend)?;
        let call_id = CallId::parse(&form.call_id)?;
        let cid = format!("{}:{call_id}", CallType::Livestream);
        let viewer = self.local().client_for(&backend);
        let token = form
            .call_token
            .map(|t| t.trim().to_owned())
            .filter(|t| !t.is_empty())
            .map(TokenSource::token);
        viewer
            .connect_anonymous(token)
            .await
            .map_err(|e| SessionError::from_connect(&e))?;
        let call = viewer
            .call(CallType::Livestream.as_str(), call_id.as_str())
            .get()
            .await
            .map_err(|e| SessionError::from_api(&e, &cid, TokenFrom::Host))?;
        Ok(Livestream {
            cid,
            backstage: call.backstage(),
            broadcasting: call.call.egress.broadcasting,
            hls_playlist_url: call.hls_playlist_url().map(str::to_owned),
            viewers: call.call.anonymous_viewers(),
        })
    }
}
