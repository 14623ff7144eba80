//! An SFU served by itself on a loopback port, with tokens for its rooms: what tests,
//! benchmarks and tools use when they need an SFU without a coordinator.

use std::time::Duration;

use tokio::task::JoinHandle;

use crate::token::{self, AccessToken, VideoGrant};
use crate::{Sfu, SfuConfig};

/// Why a loopback SFU did not start.
#[derive(Debug, thiserror::Error)]
pub enum LoopbackError {
    #[error(transparent)]
    Start(#[from] crate::SfuStartError),
    #[error("no loopback port for the signalling server: {0}")]
    Listen(std::io::Error),
}

/// An SFU whose signalling is served at `url` (`http://127.0.0.1:PORT/sfu`).
pub struct LoopbackSfu {
    pub sfu: Sfu,
    pub url: String,
    pub server: JoinHandle<()>,
    config: SfuConfig,
}

impl LoopbackSfu {
    /// Starts `config`'s SFU and serves its signalling on 127.0.0.1:`port` (0: any free one).
    pub async fn start(config: SfuConfig, port: u16) -> Result<Self, LoopbackError> {
        let sfu = Sfu::start(config.clone()).await?;
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", port))
            .await
            .map_err(LoopbackError::Listen)?;
        let addr = listener.local_addr().map_err(LoopbackError::Listen)?;
        let app = axum::Router::new().nest("/sfu", sfu.router());
        let server = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Ok(Self {
            sfu,
            url: format!("http://{addr}/sfu"),
            server,
            config,
        })
    }

    /// A token for `identity` (named `name`) to join `room` for ten minutes, publishing or not.
    pub fn token(&self, room: &str, identity: &str, name: &str, can_publish: bool) -> String {
        token::mint(
            &self.config.api_key,
            &self.config.api_secret,
            &AccessToken::room_join(room, identity, name, can_publish, Duration::from_secs(600)),
        )
    }

    /// Stops the SFU as a restart would: sessions are told to reconnect, the port closes.
    pub async fn stop(self) {
        self.sfu.shutdown();
        self.server.abort();
        let _ = self.server.await;
    }
}

impl AccessToken {
    /// A token to join `room` as `identity`, publishing or only subscribing.
    pub fn room_join(
        room: &str,
        identity: &str,
        name: &str,
        can_publish: bool,
        ttl: Duration,
    ) -> Self {
        AccessToken {
            identity: identity.to_owned(),
            name: name.to_owned(),
            grant: VideoGrant {
                room: room.to_owned(),
                room_join: true,
                can_publish: Some(can_publish),
                ..VideoGrant::default()
            },
            ttl,
        }
    }
}
