//! A call's coordinator half: get, get-or-create, join, leave, go live, stop live, and a
//! livestream's HLS broadcast.

use serde_json::{json, Value};

use crate::client::VideoClient;
use crate::rest::ApiError;

/// What the coordinator says about a call (confab-protocol's typed answer). Its `Debug`
/// leaves the join credentials' media-server token out.
pub use confab_protocol::CallResponse;

/// Why [`Call::join_with_media`] failed.
#[derive(Debug, thiserror::Error)]
pub enum JoinWithMediaError {
    #[error(transparent)]
    Join(#[from] ApiError),
    #[error("the coordinator's join answer carries no media credentials")]
    NoCredentials,
    #[error(transparent)]
    Media(#[from] crate::media::JoinMediaError),
}

#[derive(Debug, Clone)]
pub struct Call {
    client: VideoClient,
    call_type: String,
    id: String,
}

fn decode(value: Value) -> Result<CallResponse, ApiError> {
    serde_json::from_value(value).map_err(|e| ApiError::Decode(e.to_string()))
}

impl Call {
    pub(crate) fn new(client: VideoClient, call_type: &str, id: &str) -> Self {
        Self {
            client,
            call_type: call_type.to_owned(),
            id: id.to_owned(),
        }
    }

    pub fn cid(&self) -> String {
        format!("{}:{}", self.call_type, self.id)
    }

    fn path(&self, suffix: &str) -> String {
        format!("/call/{}/{}{suffix}", self.call_type, self.id)
    }

    /// Reads the call; a connected user also starts receiving its events.
    pub async fn get(&self) -> Result<CallResponse, ApiError> {
        let answer = self
            .client
            .request(reqwest::Method::GET, &self.path(""), &[], None)
            .await?;
        self.watched(decode(answer)?)
    }

    fn watched(&self, answer: CallResponse) -> Result<CallResponse, ApiError> {
        self.client.mark_watched(&self.cid());
        Ok(answer)
    }

    /// Creates the call if needed. `data` is Stream's `{members, custom, ...}`.
    pub async fn get_or_create(&self, data: Option<Value>) -> Result<CallResponse, ApiError> {
        let body = match data {
            Some(data) => json!({"data": data}),
            None => json!({}),
        };
        let answer = self
            .client
            .request(reqwest::Method::POST, &self.path(""), &[], Some(&body))
            .await?;
        self.watched(decode(answer)?)
    }

    /// The coordinator half of joining.
    pub async fn join(&self, create: bool) -> Result<CallResponse, ApiError> {
        let body = json!({"create": create, "location": "LCL", "e2ee": false});
        let answer = self
            .client
            .request(reqwest::Method::POST, &self.path("/join"), &[], Some(&body))
            .await?;
        self.watched(decode(answer)?)
    }

    /// Joins the call and its media: the coordinator's join, then the SFU session its
    /// credentials name. The coordinator's answer comes back beside the session.
    pub async fn join_with_media(
        &self,
        create: bool,
        options: crate::media::CallSessionOptions,
    ) -> Result<(CallResponse, crate::media::CallSession), JoinWithMediaError> {
        let response = self.join(create).await?;
        let credentials = response
            .credentials
            .as_ref()
            .ok_or(JoinWithMediaError::NoCredentials)?;
        let session = crate::media::CallSession::connect(credentials.into(), options).await?;
        Ok((response, session))
    }

    /// Ends this user's participation (local coordinators; Stream learns it from the SFU).
    pub async fn leave(&self) -> Result<(), ApiError> {
        self.client
            .request(
                reqwest::Method::POST,
                &self.path("/leave"),
                &[],
                Some(&json!({})),
            )
            .await?;
        Ok(())
    }

    pub async fn go_live(&self) -> Result<CallResponse, ApiError> {
        decode(
            self.client
                .request(
                    reqwest::Method::POST,
                    &self.path("/go_live"),
                    &[],
                    Some(&json!({})),
                )
                .await?,
        )
    }

    pub async fn stop_live(&self) -> Result<CallResponse, ApiError> {
        decode(
            self.client
                .request(
                    reqwest::Method::POST,
                    &self.path("/stop_live"),
                    &[],
                    Some(&json!({})),
                )
                .await?,
        )
    }

    /// Starts the livestream's HLS broadcast (Stream's `startHLS`); returns the playlist URL.
    pub async fn start_hls(&self) -> Result<String, ApiError> {
        let answer = self
            .client
            .request(
                reqwest::Method::POST,
                &self.path("/start_broadcasting"),
                &[],
                Some(&json!({})),
            )
            .await?;
        Ok(answer["playlist_url"]
            .as_str()
            .unwrap_or_default()
            .to_owned())
    }

    /// Stops the livestream's HLS broadcast (Stream's `stopHLS`).
    pub async fn stop_hls(&self) -> Result<(), ApiError> {
        self.client
            .request(
                reqwest::Method::POST,
                &self.path("/stop_broadcasting"),
                &[],
                Some(&json!({})),
            )
            .await?;
        Ok(())
    }
}
