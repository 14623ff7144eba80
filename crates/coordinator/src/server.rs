//! Starting and stopping a coordinator: the listener, the app's key, the shared state and the
//! embedded SFU.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use crate::api;
use crate::faults::{FaultCommand, Faults};
use crate::hub::{Hub, Outbound};
use crate::jwt::{Claims, SigningKey};
use crate::listener::{self, HostCheck};
use crate::packager::Packagers;
use crate::room_events;
use crate::sessions::Sessions;
use crate::sfu::{SfuAccess, SfuSetting, SfuSettingError};
use crate::state::{AppState, Limits};
use crate::store::{Store, StoreError};

/// How to run a coordinator. `Default` is an in-memory store on a free loopback port.
#[derive(Clone)]
pub struct CoordinatorConfig {
    pub addr: SocketAddr,
    /// Where the SQLite database lives; `None` keeps everything in memory.
    pub data_dir: Option<PathBuf>,
    /// The app's key and secret; when absent, the stored app is used or one is created.
    pub app: Option<(String, String)>,
    /// Serve `GET /api/token?user_id=` for token providers (development only).
    pub dev_token_endpoint: bool,
    /// Allow fault injection (tests only).
    pub fault_injection: bool,
    pub limits: Limits,
    /// Which SFU joins send people to: the embedded one (the default, on loopback) or an
    /// external LiveKit-compatible server.
    pub sfu: SfuSetting,
}

// By hand, so the API secret never prints.
impl std::fmt::Debug for CoordinatorConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CoordinatorConfig")
            .field("addr", &self.addr)
            .field("data_dir", &self.data_dir)
            .field("api_key", &self.app.as_ref().map(|(key, _)| key))
            .field("api_secret", &self.app.as_ref().map(|_| "[redacted]"))
            .field("dev_token_endpoint", &self.dev_token_endpoint)
            .field("fault_injection", &self.fault_injection)
            .field("limits", &self.limits)
            .field("sfu", &self.sfu)
            .finish()
    }
}

impl Default for CoordinatorConfig {
    fn default() -> Self {
        Self {
            addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            data_dir: None,
            app: None,
            dev_token_endpoint: false,
            fault_injection: false,
            limits: Limits::default(),
            sfu: SfuSetting::default(),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("could not open the coordinator's data: {0}")]
    Store(#[from] StoreError),
    #[error("the API secret is {len} bytes: use at least {MIN_SECRET_BYTES} random bytes (e.g. 32 hex characters or more)")]
    WeakSecret { len: usize },
    #[error("could not listen on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("the SFU setting cannot be used: {0}")]
    SfuSetting(#[from] SfuSettingError),
    #[error("could not start the embedded SFU: {0}")]
    Sfu(#[from] confab_sfu::SfuStartError),
}

/// A coordinator serving on a port. Dropping it closes the listener too; [`shutdown`] also
/// cuts the open sockets and waits for the port to be free.
///
/// [`shutdown`]: RunningCoordinator::shutdown
pub struct RunningCoordinator {
    state: Arc<AppState>,
    local_addr: SocketAddr,
    serving: Serving,
    /// The embedded SFU (`None` with an external one) and the task that lists its participants
    /// in call sessions.
    sfu: Option<EmbeddedSfu>,
}

struct EmbeddedSfu {
    sfu: confab_sfu::Sfu,
    room_events: JoinHandle<()>,
}

impl Drop for EmbeddedSfu {
    // The task holds the state; it would otherwise live as long as the SFU's event channel.
    // Open signal sockets hold handles to the SFU, so it is stopped explicitly.
    fn drop(&mut self) {
        self.room_events.abort();
        self.sfu.shutdown();
    }
}

/// The router served on one bound address until stopped: the coordinator's own address and
/// each extra one share this.
struct Serving {
    stop: Option<oneshot::Sender<()>>,
    task: JoinHandle<()>,
}

impl Serving {
    async fn bind(addr: SocketAddr) -> Result<(tokio::net::TcpListener, SocketAddr), StartError> {
        let bind_error = |source| StartError::Bind { addr, source };
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .map_err(bind_error)?;
        let local_addr = listener.local_addr().map_err(bind_error)?;
        Ok((listener, local_addr))
    }

    /// Serves `app` through the hardened listener: its timeouts, connection cap and the Host
    /// rule for the bound address (loopback names only on loopback, any Host on a LAN address).
    fn spawn(
        listener: tokio::net::TcpListener,
        local_addr: SocketAddr,
        app: axum::Router,
        limits: Limits,
    ) -> Self {
        let (stop_tx, stop_rx) = oneshot::channel::<()>();
        let task = tokio::spawn(listener::serve(
            listener,
            app,
            limits,
            HostCheck::for_addr(local_addr),
            stop_rx,
        ));
        Self {
            stop: Some(stop_tx),
            task,
        }
    }

    /// Closes the listener, then gives requests under way up to `wait` before cutting them.
    async fn stop(&mut self, wait: Duration) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if tokio::time::timeout(wait, &mut self.task).await.is_err() {
            self.task.abort();
        }
    }
}

impl RunningCoordinator {
    /// `http://HOST:PORT/video`: what clients take as their base URL.
    pub fn base_url(&self) -> &str {
        &self.state.base_url
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    pub fn api_key(&self) -> &str {
        &self.state.api_key
    }

    /// Signs a user token with the app's secret, as a customer's server would.
    pub fn mint_token(&self, user_id: &str, ttl: Option<Duration>) -> String {
        self.state.signing.user_token(user_id, ttl)
    }

    /// The app's signing key, for tests that act as the customer's token server.
    pub fn signing_key(&self) -> SigningKey {
        self.state.signing.clone()
    }

    /// Signs arbitrary claims (call-scoped anonymous tokens, expired tokens in tests).
    pub fn sign(&self, claims: &Claims) -> String {
        self.state.signing.sign(claims)
    }

    /// The embedded SFU, or `None` when joins go to an external one.
    pub fn sfu(&self) -> Option<&confab_sfu::Sfu> {
        self.sfu.as_ref().map(|e| &e.sfu)
    }

    /// The embedded SFU's media socket, or `None` when joins go to an external one.
    pub fn sfu_udp_addr(&self) -> Option<SocketAddr> {
        self.sfu().map(confab_sfu::Sfu::udp_addr)
    }

    /// The SFU's URL as joins hand it out (`credentials.server.url`).
    pub fn sfu_url(&self) -> &str {
        &self.state.sfu.url
    }

    /// The key SFU access tokens are signed for (the embedded SFU's own, or the external's).
    pub fn sfu_api_key(&self) -> &str {
        &self.state.sfu.api_key
    }

    /// The secret SFU access tokens are signed with, for tests and in-process tools that mint
    /// or check them. Never printed (its `Debug` is redacted).
    pub fn sfu_api_secret(&self) -> &confab_sfu::ApiSecret {
        &self.state.sfu.api_secret
    }

    /// Flips a fault switch. Returns how many sockets it touched. Does nothing unless the
    /// coordinator was started with `fault_injection`.
    pub fn inject(&self, command: FaultCommand) -> usize {
        if !self.state.faults.enabled() {
            return 0;
        }
        api::faults::apply_fault(&self.state, &command)
    }

    /// How many sockets are open.
    pub fn connection_count(&self) -> usize {
        self.state.hub.connection_count()
    }

    /// Serves this coordinator (the same state, so the same calls and users) on `addr` too,
    /// until the returned handle is stopped: how the app hosts for its network. The
    /// development token endpoint is never served there.
    pub async fn serve_also(&self, addr: SocketAddr) -> Result<ExtraListener, StartError> {
        let (listener, local_addr) = Serving::bind(addr).await?;
        let app = api::router(self.state.clone(), false, self.sfu());
        let serving = Serving::spawn(listener, local_addr, app, self.state.limits.clone());
        tracing::info!(target: "coordinator", %local_addr, "coordinator listening on an extra address");
        Ok(ExtraListener {
            local_addr,
            serving,
        })
    }

    /// Stops serving: every socket is cut (as if the server died) and the port is freed.
    pub async fn shutdown(mut self) {
        self.state.hub.send_to_user(None, Outbound::Drop);
        self.serving.stop(Duration::from_secs(3)).await;
        // Stops the embedded SFU: its sessions are asked to reconnect, its port closes.
        self.sfu = None;
    }
}

/// The coordinator served on one more address ([`RunningCoordinator::serve_also`]).
pub struct ExtraListener {
    local_addr: SocketAddr,
    serving: Serving,
}

impl ExtraListener {
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Closes the listener at once: nobody new connects through it. Requests under way get a
    /// moment to finish; sockets already open stay until they close.
    pub async fn stop(mut self) {
        self.serving.stop(Duration::from_secs(2)).await;
    }
}

fn random_hex(bytes_of_uuids: usize) -> String {
    (0..bytes_of_uuids)
        .map(|_| uuid::Uuid::new_v4().simple().to_string())
        .collect()
}

/// Shortest API secret accepted: shorter ones can be guessed offline from any token.
pub const MIN_SECRET_BYTES: usize = 16;

pub async fn start(config: CoordinatorConfig) -> Result<RunningCoordinator, StartError> {
    let store = match &config.data_dir {
        Some(dir) => Store::open(dir)?,
        None => Store::in_memory()?,
    };
    let (api_key, secret) = match &config.app {
        Some((_, secret)) if secret.len() < MIN_SECRET_BYTES => {
            return Err(StartError::WeakSecret { len: secret.len() })
        }
        Some((key, secret)) => {
            store.put_app(key, secret)?;
            (key.clone(), secret.clone())
        }
        None => store.app_or_insert(|| (random_hex(1)[..20].to_owned(), random_hex(2)))?,
    };
    // A stored app from before this rule is refused too, rather than served weakly.
    if secret.len() < MIN_SECRET_BYTES {
        return Err(StartError::WeakSecret { len: secret.len() });
    }
    let (listener, local_addr) = Serving::bind(config.addr).await?;
    // Whatever logs it, the app secret never reaches a log sink.
    confab_logging::redact::register_secret(&secret);
    let base_url = format!("http://{local_addr}/video");
    let (sfu_access, sfu) = match &config.sfu {
        SfuSetting::Embedded { udp_bind, announce } => {
            let access = SfuAccess::embedded(&base_url)?;
            let sfu = confab_sfu::Sfu::start(confab_sfu::SfuConfig {
                udp_bind: *udp_bind,
                announce: announce.clone(),
                ..confab_sfu::SfuConfig::loopback(access.api_key.clone(), access.api_secret.clone())
            })
            .await?;
            (access, Some(sfu))
        }
        SfuSetting::External {
            url,
            api_key,
            api_secret,
        } => {
            let access = SfuAccess::external(url, api_key, api_secret, MIN_SECRET_BYTES)?;
            confab_logging::redact::register_secret(api_secret);
            (access, None)
        }
    };
    let state = Arc::new(AppState {
        api_key,
        signing: SigningKey::new(secret),
        store,
        hub: Hub::default(),
        sessions: Sessions::default(),
        faults: Faults::new(config.fault_injection),
        limits: config.limits.clone(),
        base_url,
        broadcasts: Arc::default(),
        packagers: Packagers::default(),
        embedded_sfu: sfu.clone(),
        rate: Default::default(),
        sfu: sfu_access,
    });
    // Listening to the SFU's rooms before anyone can reach it.
    let sfu = sfu.map(|sfu| EmbeddedSfu {
        room_events: room_events::spawn(state.clone(), sfu.subscribe_events()),
        sfu,
    });
    let app = api::router(
        state.clone(),
        config.dev_token_endpoint,
        sfu.as_ref().map(|e| &e.sfu),
    );
    let serving = Serving::spawn(listener, local_addr, app, config.limits.clone());
    match &sfu {
        Some(embedded) => tracing::info!(
            target: "coordinator",
            base_url = %state.base_url,
            sfu_udp_addr = %embedded.sfu.udp_addr(),
            "coordinator listening, with its SFU"
        ),
        None => tracing::info!(
            target: "coordinator",
            base_url = %state.base_url,
            sfu_api_key = %state.sfu.api_key,
            "coordinator listening; joins go to an external SFU"
        ),
    }
    Ok(RunningCoordinator {
        state,
        local_addr,
        serving,
        sfu,
    })
}
