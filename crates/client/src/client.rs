//! `VideoClient`: the handle an app holds. Cheap to clone; one per API key and user.

use confab_protocol::wire;
use std::collections::HashMap;
use std::sync::{Arc, Mutex as StdMutex, OnceLock, Weak};
use std::time::Duration;

use serde_json::{json, Value};
use tokio::sync::{broadcast, watch};

use crate::backoff::ReconnectPolicy;
use crate::call::Call;
use crate::connection::{
    self, ConnectError, ConnectionHandle, ConnectionOptions, ConnectionState, Handshake,
};
use crate::events::Event;
use crate::rest::{ApiError, Auth, RestClient};
use crate::token_manager::{TokenManager, TokenOptions, TokenSource};
use crate::user::{ConnectedUser, Guest, User, ANONYMOUS_USER_ID};

/// Stream's production coordinator.
pub const DEFAULT_BASE_URL: &str = "https://video.stream-io-api.com/video";

/// Called once when every `connect_user` attempt has failed: the last error and all of them,
/// in order.
pub type ConnectUserErrorHandler = Arc<dyn Fn(&ConnectError, &[ConnectError]) + Send + Sync>;

/// How remembered device choices are stored (used by the devices crate).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct DevicePersistenceOptions {
    pub enabled: bool,
    pub storage_key: String,
}

impl Default for DevicePersistenceOptions {
    fn default() -> Self {
        Self {
            enabled: true,
            storage_key: "@stream-io/device-preferences".into(),
        }
    }
}

/// Levels and sinks per scope, applied to the process-wide logger system when a client is
/// constructed (see `confab_logging`).
#[derive(Clone, Default)]
#[non_exhaustive]
pub struct LogOptions {
    pub scopes: Vec<(String, confab_logging::ScopeConfig)>,
}

impl LogOptions {
    pub fn scope(mut self, scope: impl Into<String>, config: confab_logging::ScopeConfig) -> Self {
        self.scopes.push((scope.into(), config));
        self
    }
}

impl std::fmt::Debug for LogOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list()
            .entries(self.scopes.iter().map(|(s, _)| s))
            .finish()
    }
}

#[derive(Clone)]
#[non_exhaustive]
pub struct ClientOptions {
    pub base_url: String,
    /// Attempts per `connect_user` (at least 1).
    pub max_connect_user_retries: u32,
    pub on_connect_user_error: Option<ConnectUserErrorHandler>,
    pub request_timeout: Duration,
    pub connection: ConnectionOptions,
    pub tokens: TokenOptions,
    pub device_persistence: DevicePersistenceOptions,
    pub log: LogOptions,
}

impl Default for ClientOptions {
    fn default() -> Self {
        Self {
            base_url: DEFAULT_BASE_URL.into(),
            max_connect_user_retries: 5,
            on_connect_user_error: None,
            request_timeout: Duration::from_secs(5),
            connection: ConnectionOptions::default(),
            tokens: TokenOptions::default(),
            device_persistence: DevicePersistenceOptions::default(),
            log: LogOptions::default(),
        }
    }
}

impl ClientOptions {
    pub fn with_base_url(mut self, url: impl Into<String>) -> Self {
        self.base_url = url.into();
        self
    }

    pub fn with_max_connect_user_retries(mut self, n: u32) -> Self {
        self.max_connect_user_retries = n;
        self
    }

    pub fn on_connect_user_error(
        mut self,
        f: impl Fn(&ConnectError, &[ConnectError]) + Send + Sync + 'static,
    ) -> Self {
        self.on_connect_user_error = Some(Arc::new(f));
        self
    }

    pub fn with_connection(mut self, connection: ConnectionOptions) -> Self {
        self.connection = connection;
        self
    }

    pub fn with_tokens(mut self, tokens: TokenOptions) -> Self {
        self.tokens = tokens;
        self
    }

    pub fn with_log(mut self, log: LogOptions) -> Self {
        self.log = log;
        self
    }
}

impl std::fmt::Debug for ClientOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientOptions")
            .field("base_url", &self.base_url)
            .field("max_connect_user_retries", &self.max_connect_user_retries)
            .finish_non_exhaustive()
    }
}

/// Who is signed in.
#[derive(Clone)]
struct Session {
    user_id: String,
    anonymous: bool,
    tokens: Arc<TokenManager>,
    connection: Option<Arc<ConnectionHandle>>,
}

struct Inner {
    api_key: String,
    options: ClientOptions,
    rest: RestClient,
    session: StdMutex<Option<Session>>,
    // Connects and disconnects run one at a time.
    lifecycle: tokio::sync::Mutex<()>,
    state: Arc<watch::Sender<ConnectionState>>,
    events: broadcast::Sender<Event>,
    rng: StdMutex<fastrand::Rng>,
    /// Calls whose events this user receives; watched again after every reconnect, since a
    /// new connection starts with no watches.
    watched: StdMutex<std::collections::BTreeSet<String>>,
}

#[derive(Clone)]
pub struct VideoClient {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for VideoClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VideoClient")
            .field("api_key", &self.inner.api_key)
            .field("user_id", &self.user_id())
            .finish_non_exhaustive()
    }
}

fn registry() -> &'static StdMutex<HashMap<String, Weak<Inner>>> {
    static REGISTRY: OnceLock<StdMutex<HashMap<String, Weak<Inner>>>> = OnceLock::new();
    REGISTRY.get_or_init(Default::default)
}

fn registry_key(api_key: &str, user_id: &str) -> String {
    format!("{api_key}/{user_id}")
}

impl VideoClient {
    /// A client with no user yet.
    pub fn new(api_key: impl Into<String>, options: ClientOptions) -> Self {
        let api_key = api_key.into();
        if !options.log.scopes.is_empty() {
            confab_logging::configure_loggers(options.log.scopes.clone());
        }
        let rest = RestClient::new(&options.base_url, &api_key, options.request_timeout);
        let (state, _) = watch::channel(ConnectionState::Idle);
        let (events, _) = broadcast::channel(256);
        Self {
            inner: Arc::new(Inner {
                api_key,
                options,
                rest,
                session: StdMutex::new(None),
                lifecycle: tokio::sync::Mutex::new(()),
                state: Arc::new(state),
                events,
                rng: StdMutex::new(fastrand::Rng::new()),
                watched: StdMutex::default(),
            }),
        }
    }

    /// A client that starts connecting `user` at once, in the background (as the official
    /// constructor does). Watch [`state`](Self::state) for the outcome.
    pub fn with_user(
        api_key: impl Into<String>,
        user: User,
        source: TokenSource,
        options: ClientOptions,
    ) -> Self {
        let client = Self::new(api_key, options);
        let background = client.clone();
        tokio::spawn(async move {
            if let Err(e) = background.connect_user(user, source).await {
                tracing::warn!(target: "client", error = %e, "automatic connection failed");
            }
        });
        client
    }

    /// The one client for this API key and user id in this process: the existing one, or
    /// `create()`'s, registered. Token arguments of a later call are ignored, as in the
    /// official client.
    pub fn get_or_create_instance(
        api_key: &str,
        user_id: &str,
        create: impl FnOnce() -> VideoClient,
    ) -> VideoClient {
        let key = registry_key(api_key, user_id);
        let mut map = registry().lock().unwrap_or_else(|p| p.into_inner());
        if let Some(inner) = map.get(&key).and_then(Weak::upgrade) {
            return VideoClient { inner };
        }
        let client = create();
        map.insert(key, Arc::downgrade(&client.inner));
        client
    }

    pub fn api_key(&self) -> &str {
        &self.inner.api_key
    }

    /// Whether two handles are the same client.
    pub fn same_instance(&self, other: &VideoClient) -> bool {
        Arc::ptr_eq(&self.inner, &other.inner)
    }

    pub fn options(&self) -> &ClientOptions {
        &self.inner.options
    }

    pub fn user_id(&self) -> Option<String> {
        self.session().map(|s| s.user_id)
    }

    /// The connection state, as it changes.
    pub fn state(&self) -> watch::Receiver<ConnectionState> {
        self.inner.state.subscribe()
    }

    /// Every event from now on.
    pub fn events(&self) -> broadcast::Receiver<Event> {
        self.inner.events.subscribe()
    }

    fn session(&self) -> Option<Session> {
        self.inner
            .session
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    fn set_session(&self, session: Option<Session>) {
        *self.inner.session.lock().unwrap_or_else(|p| p.into_inner()) = session;
    }

    fn register(&self, user_id: &str) {
        registry().lock().unwrap_or_else(|p| p.into_inner()).insert(
            registry_key(&self.inner.api_key, user_id),
            Arc::downgrade(&self.inner),
        );
    }

    fn ws_url(&self) -> String {
        let base = self.inner.rest.base_url().replacen("http", "ws", 1);
        format!(
            "{base}{}?{}={}&{}={}&{}={}",
            wire::CONNECT_PATH,
            wire::API_KEY_QUERY,
            self.inner.api_key,
            wire::AUTH_TYPE_HEADER,
            wire::AuthType::Jwt.as_str(),
            wire::CLIENT_QUERY,
            crate::rest::client_header()
                .replace('|', "%7C")
                .replace('=', "%3D")
        )
    }

    /// Connects an authenticated user. Retries up to `max_connect_user_retries` times with
    /// Stream's intervals; after the last failure calls `on_connect_user_error` with every
    /// attempt's error and returns the last one. A token for another user fails at once,
    /// before any network call.
    pub async fn connect_user(
        &self,
        user: User,
        source: TokenSource,
    ) -> Result<ConnectedUser, ConnectError> {
        let _lifecycle = self.inner.lifecycle.lock().await;
        if let Some(current) = self.session() {
            if current.user_id == user.id && current.connection.is_some() {
                if let Some(me) = self.connected_user_if_connected(&current.user_id) {
                    return Ok(me);
                }
            } else if current.user_id != user.id {
                return Err(ConnectError::AnotherUserConnected {
                    current: current.user_id,
                });
            }
        }
        let tokens = Arc::new(TokenManager::new(
            &user.id,
            Some(source),
            self.inner.options.tokens.clone(),
        )?);
        self.connect_with_retries(|| {
            let user = user.clone();
            let tokens = tokens.clone();
            async move { Ok((user, tokens)) }
        })
        .await
    }

    fn connected_user_if_connected(&self, user_id: &str) -> Option<ConnectedUser> {
        matches!(
            *self.inner.state.borrow(),
            ConnectionState::Connected { .. }
        )
        .then(|| ConnectedUser {
            id: user_id.to_owned(),
            name: None,
            image: None,
            role: String::new(),
            custom: Default::default(),
        })
    }

    /// Creates a guest user (`POST /guest`, on every attempt) and connects as the user and
    /// token the coordinator returns.
    pub async fn connect_guest(&self, guest: Guest) -> Result<ConnectedUser, ConnectError> {
        let _lifecycle = self.inner.lifecycle.lock().await;
        if let Some(current) = self.session() {
            return Err(ConnectError::AnotherUserConnected {
                current: current.user_id,
            });
        }
        let this = self.clone();
        self.connect_with_retries(move || {
            let this = this.clone();
            let guest = guest.clone();
            async move {
                let mut body = json!({"user": guest});
                body["user"]["type"] = json!("guest");
                let answer = this
                    .inner
                    .rest
                    .request(
                        reqwest::Method::POST,
                        "/guest",
                        &Auth::Public,
                        None,
                        &[],
                        Some(&body),
                    )
                    .await
                    .map_err(ConnectError::Guest)?;
                let user: User = serde_json::from_value(answer["user"].clone())
                    .map_err(|e| ConnectError::Guest(ApiError::Decode(e.to_string())))?;
                let token = answer["access_token"]
                    .as_str()
                    .unwrap_or_default()
                    .to_owned();
                let tokens = TokenManager::new(
                    &user.id,
                    Some(TokenSource::token(token)),
                    this.inner.options.tokens.clone(),
                )?;
                Ok((user, Arc::new(tokens)))
            }
        })
        .await
    }

    async fn connect_with_retries<F, Fut>(
        &self,
        mut prepare: F,
    ) -> Result<ConnectedUser, ConnectError>
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = Result<(User, Arc<TokenManager>), ConnectError>>,
    {
        if let Some(why) = self.inner.rest.insecure() {
            return Err(self.report(ConnectError::Insecure(why.to_owned()), Vec::new()));
        }
        let attempts = self.inner.options.max_connect_user_retries.max(1);
        let mut errors = Vec::new();
        for attempt in 0..attempts {
            let result = async {
                let (user, tokens) = prepare().await?;
                let handshake = Handshake {
                    url: self.ws_url(),
                    user: user.clone(),
                    tokens: tokens.clone(),
                    options: self.inner.options.connection.clone(),
                };
                // The session is in place before the state says Connected: a caller that
                // waits for Connected and then calls the API must find its user.
                let connected = connection::open(
                    handshake,
                    self.inner.state.clone(),
                    self.inner.events.clone(),
                    |handle| {
                        self.set_session(Some(Session {
                            user_id: user.id.clone(),
                            anonymous: false,
                            tokens,
                            connection: Some(Arc::new(handle)),
                        }))
                    },
                )
                .await?;
                self.register(&user.id);
                self.spawn_rewatch(connected.connection_id.clone());
                Ok::<_, ConnectError>(connected.me)
            }
            .await;
            match result {
                Ok(me) => return Ok(me),
                // A refusal no retry can fix (a token for another user, a bad signature, an
                // unknown API key) fails at once, with its reason.
                Err(e) if e.is_terminal() => {
                    tracing::warn!(target: "client", attempt, error = %e, "connect refused for good");
                    return Err(self.report(e, errors));
                }
                Err(e) => {
                    tracing::warn!(target: "client", attempt, error = %e, "connect attempt failed");
                    errors.push(e);
                    if attempt + 1 < attempts {
                        let delay = {
                            let mut rng = self.inner.rng.lock().unwrap_or_else(|p| p.into_inner());
                            ReconnectPolicy::default().connect_retry_delay(attempt, &mut rng)
                        };
                        tokio::time::sleep(delay).await;
                    }
                }
            }
        }
        let last = errors.pop().expect("at least one attempt was made");
        Err(self.report(last, errors))
    }

    /// After each reconnect, watches the calls this user watched before.
    fn spawn_rewatch(&self, first_connection_id: String) {
        let weak = Arc::downgrade(&self.inner);
        let mut state = self.inner.state.subscribe();
        tokio::spawn(async move {
            let mut last = first_connection_id;
            while state.changed().await.is_ok() {
                let current = state.borrow_and_update().clone();
                match current {
                    ConnectionState::Connected { connection_id } if connection_id != last => {
                        last = connection_id;
                        let Some(inner) = weak.upgrade() else { return };
                        let client = VideoClient { inner };
                        if let Err(e) = client.rewatch().await {
                            tracing::warn!(target: "client", error = %e, "could not watch calls again after reconnecting");
                        }
                    }
                    ConnectionState::Disconnected { .. } | ConnectionState::Idle => return,
                    _ => {}
                }
            }
        });
    }

    async fn rewatch(&self) -> Result<(), ApiError> {
        let cids: Vec<String> = self
            .inner
            .watched
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .cloned()
            .collect();
        if cids.is_empty() {
            return Ok(());
        }
        let body = json!({"filter_conditions": {"cid": {"$in": cids}}, "watch": true, "limit": cids.len()});
        self.request(reqwest::Method::POST, "/calls", &[], Some(&body))
            .await?;
        Ok(())
    }

    /// Remembers that the user watches a call (requests made with a connection id do).
    pub(crate) fn mark_watched(&self, cid: &str) {
        let has_socket = self.session().is_some_and(|s| s.connection.is_some());
        if has_socket {
            self.inner
                .watched
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .insert(cid.to_owned());
        }
    }

    fn report(&self, last: ConnectError, mut earlier: Vec<ConnectError>) -> ConnectError {
        earlier.push(last.clone());
        if let Some(handler) = &self.inner.options.on_connect_user_error {
            handler(&last, &earlier);
        }
        last
    }

    /// Signs in as `!anon`: no socket, REST only, with an optional token (for example one
    /// whose `call_cids` name the calls it may watch) or provider.
    pub async fn connect_anonymous(&self, source: Option<TokenSource>) -> Result<(), ConnectError> {
        let _lifecycle = self.inner.lifecycle.lock().await;
        if let Some(current) = self.session() {
            return Err(ConnectError::AnotherUserConnected {
                current: current.user_id,
            });
        }
        let tokens =
            TokenManager::new(ANONYMOUS_USER_ID, source, self.inner.options.tokens.clone())?;
        self.set_session(Some(Session {
            user_id: ANONYMOUS_USER_ID.into(),
            anonymous: true,
            tokens: Arc::new(tokens),
            connection: None,
        }));
        self.register(ANONYMOUS_USER_ID);
        Ok(())
    }

    /// Closes the socket with 1000, forgets the user, their tokens and provider, and removes
    /// this client from the registry. Calls are not left.
    pub async fn disconnect_user(&self) {
        let _lifecycle = self.inner.lifecycle.lock().await;
        let Some(session) = self.session() else {
            return;
        };
        if let Some(connection) = &session.connection {
            connection.close(Duration::from_secs(1)).await;
        }
        self.set_session(None);
        self.inner
            .watched
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clear();
        let key = registry_key(&self.inner.api_key, &session.user_id);
        let mut map = registry().lock().unwrap_or_else(|p| p.into_inner());
        if map
            .get(&key)
            .is_some_and(|w| w.as_ptr() == Arc::as_ptr(&self.inner))
        {
            map.remove(&key);
        }
        self.inner
            .state
            .send_replace(ConnectionState::Disconnected {
                reason: connection::DisconnectReason::Manual,
            });
    }

    /// A call of this client's user.
    pub fn call(&self, call_type: &str, id: &str) -> Call {
        Call::new(self.clone(), call_type, id)
    }

    /// Sends a request as the signed-in user, with the connection id when connected.
    pub async fn request(
        &self,
        method: reqwest::Method,
        path: &str,
        query: &[(&str, String)],
        body: Option<&Value>,
    ) -> Result<Value, ApiError> {
        let session = self.session().ok_or(ApiError::NoUser)?;
        let auth = if session.anonymous {
            Auth::Anonymous {
                tokens: session.tokens.clone(),
            }
        } else {
            Auth::Jwt {
                user_id: session.user_id.clone(),
                tokens: session.tokens.clone(),
            }
        };
        let connection_id = match &*self.inner.state.borrow() {
            ConnectionState::Connected { connection_id } => Some(connection_id.clone()),
            _ => None,
        };
        self.inner
            .rest
            .request(method, path, &auth, connection_id.as_deref(), query, body)
            .await
    }

    /// The signed-in user's token manager (for diagnostics: expiry, provider calls).
    pub fn token_manager(&self) -> Option<Arc<TokenManager>> {
        self.session().map(|s| s.tokens)
    }
}
