//! Who is signed in, where, and the connection state the status bar shows.
//!
//! Two backends: "This computer" (the embedded coordinator, which signs its own tokens, so a
//! person only types a name) and "Stream" (an API key and optional base URL, with a token or a
//! token URL). "Remember me" keeps the sign-in in the OS keychain (confab-credentials) and
//! nowhere else; sign out removes it.

use std::sync::Mutex;
use std::time::Duration;

use confab_client::{
    token_url_provider, ClientOptions, ConnectError, ConnectionState, DisconnectReason, Guest,
    ProviderError, TokenSource, User, VideoClient,
};
use confab_credentials::{Backend, Credential, Keychain, KeychainError, RememberedSignIn};
use serde::Serialize;
use tauri::{AppHandle, Emitter, State};

use crate::error::CommandError;
use crate::local_mode::LocalMode;

/// Lifetime of the tokens local mode mints; the provider replaces them before they expire.
const LOCAL_TOKEN_TTL: Duration = Duration::from_secs(3600);

#[derive(Default)]
pub struct Session {
    pub(crate) active: tokio::sync::Mutex<Option<Active>>,
    /// Every state change, for the diagnostics export.
    pub timeline: Mutex<Vec<StatusEvent>>,
}

/// The signed-in user's client and where its tokens come from (for the token inspector).
pub(crate) struct Active {
    pub client: VideoClient,
    pub backend: Backend,
    pub token_source: &'static str,
    /// The call joined from the lobby, if any.
    pub call: Option<crate::calls::JoinedCall>,
}

/// The status bar's view of the connection (`confab:connection`).
#[derive(Debug, Clone, Serialize)]
pub struct StatusEvent {
    pub state: &'static str,
    pub attempt: Option<u32>,
    pub next_retry_ms: Option<u64>,
    pub reason: Option<String>,
    pub at_unix_ms: u64,
}

impl StatusEvent {
    fn from_state(state: &ConnectionState) -> Self {
        let at_unix_ms = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_millis() as u64)
            .unwrap_or_default();
        let (name, attempt, next, reason) = match state {
            ConnectionState::Idle => ("idle", None, None, None),
            ConnectionState::Connecting => ("connecting", None, None, None),
            ConnectionState::Connected { .. } => ("connected", None, None, None),
            ConnectionState::RefreshingToken => (
                "refreshing",
                None,
                None,
                Some("The token expired: getting a new one.".to_owned()),
            ),
            ConnectionState::Reconnecting {
                attempt,
                next_retry_in,
            } => (
                "reconnecting",
                Some(*attempt),
                Some(next_retry_in.as_millis() as u64),
                None,
            ),
            ConnectionState::Offline {
                attempt,
                next_retry_in,
            } => (
                "offline",
                Some(*attempt),
                Some(next_retry_in.as_millis() as u64),
                None,
            ),
            ConnectionState::Disconnected { reason } => {
                ("disconnected", None, None, Some(plain_reason(reason)))
            }
            _ => ("unknown", None, None, None),
        };
        Self {
            state: name,
            attempt,
            next_retry_ms: next,
            reason,
            at_unix_ms,
        }
    }
}

fn plain_reason(reason: &DisconnectReason) -> String {
    match reason {
        DisconnectReason::Manual => "Signed out.".into(),
        DisconnectReason::Refused { code: 43, .. } => {
            "The token was rejected. Ask for a new one.".into()
        }
        DisconnectReason::Refused { message, .. } => {
            format!("The coordinator refused the connection: {message}")
        }
        DisconnectReason::TokenUnavailable(why) => format!("No valid token could be had: {why}"),
    }
}

/// What a failed connect means, in plain words.
pub(crate) fn connect_error(e: ConnectError) -> CommandError {
    let (code, message) = match &e {
        ConnectError::Refused { code: 43, .. } => (
            "token_rejected",
            "The token was rejected. Ask for a new one.".to_owned(),
        ),
        ConnectError::Refused { code: 40, .. } => {
            ("token_expired", "The token has expired.".to_owned())
        }
        ConnectError::Refused { message, .. } => (
            "refused",
            format!("The coordinator refused the connection: {message}"),
        ),
        ConnectError::Network(_) | ConnectError::Timeout(_) => (
            "unreachable",
            "Could not reach the coordinator. Check the address and try again.".to_owned(),
        ),
        ConnectError::Token(t) => ("token_invalid", format!("The token cannot be used: {t}")),
        ConnectError::Guest(g) => ("guest_failed", format!("Could not join as a guest: {g}")),
        ConnectError::AnotherUserConnected { .. } => {
            ("already_signed_in", "Sign out first.".to_owned())
        }
    };
    CommandError::Session { code, message }
}

fn valid_user_id(id: &str) -> Result<String, CommandError> {
    let id = id.trim();
    let ok = !id.is_empty()
        && id.len() <= 64
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "@_-.".contains(c));
    if ok {
        Ok(id.to_owned())
    } else {
        Err(CommandError::InvalidInput(
            "A user id is 1 to 64 letters, digits, '@', '_', '-' or '.'.".into(),
        ))
    }
}

fn clean_name(name: Option<String>) -> Result<Option<String>, CommandError> {
    let name = name.map(|n| n.trim().to_owned()).filter(|n| !n.is_empty());
    if name.as_ref().is_some_and(|n| n.chars().count() > 100) {
        return Err(CommandError::InvalidInput(
            "A name is at most 100 characters.".into(),
        ));
    }
    Ok(name)
}

/// Records a state in the timeline and sends it to the page.
fn publish(app: &AppHandle, event: StatusEvent) {
    if let Some(session) = tauri::Manager::try_state::<Session>(app) {
        session
            .timeline
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(event.clone());
    }
    let _ = app.emit("confab:connection", &event);
}

/// Forwards the client's state to the page and the timeline until the session ends. The
/// caller has already published "connecting"; a watch channel keeps only the latest state, so
/// repeats are skipped rather than sent twice.
fn forward_state(app: AppHandle, client: &VideoClient) {
    let mut states = client.state();
    tauri::async_runtime::spawn(async move {
        let mut last = ("connecting", None);
        loop {
            let event = StatusEvent::from_state(&states.borrow_and_update());
            let name = event.state;
            if (name, event.attempt) != last && name != "idle" {
                last = (name, event.attempt);
                publish(&app, event);
            }
            if name == "disconnected" || states.changed().await.is_err() {
                return;
            }
        }
    });
}

#[derive(Debug, Clone, Serialize)]
pub struct SignedIn {
    pub user_id: String,
    pub name: Option<String>,
    pub role: String,
    /// "local" or "stream".
    pub backend: &'static str,
    /// Set when "Remember me" was asked for: whether the keychain took it, in plain words.
    pub remembered: Option<Remembered>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Remembered {
    pub stored: bool,
    pub message: String,
}

fn backend_label(backend: &Backend) -> &'static str {
    match backend {
        Backend::Local => "local",
        Backend::Stream { .. } => "stream",
    }
}

/// Checks a Stream backend's fields: an API key of letters and digits, an http(s) base URL.
pub(crate) fn valid_backend(backend: Backend) -> Result<Backend, CommandError> {
    match backend {
        Backend::Local => Ok(Backend::Local),
        Backend::Stream { api_key, base_url } => {
            let api_key = api_key.trim().to_owned();
            if api_key.is_empty()
                || api_key.len() > 128
                || !api_key
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
            {
                return Err(CommandError::InvalidInput(
                    "An API key is 1 to 128 letters and digits, from your Stream dashboard.".into(),
                ));
            }
            let base_url = base_url
                .map(|u| u.trim().trim_end_matches('/').to_owned())
                .filter(|u| !u.is_empty());
            if let Some(url) = &base_url {
                if !(url.starts_with("https://") || url.starts_with("http://"))
                    || url.contains(char::is_whitespace)
                {
                    return Err(CommandError::InvalidInput(
                        "The base URL is a web address such as https://video.stream-io-api.com/video.".into(),
                    ));
                }
            }
            Ok(Backend::Stream { api_key, base_url })
        }
    }
}

/// A client for the chosen backend.
pub(crate) fn client_for(local: &LocalMode, backend: &Backend) -> VideoClient {
    match backend {
        Backend::Local => VideoClient::new(
            local.coordinator.api_key(),
            ClientOptions::default().with_base_url(local.coordinator.base_url()),
        ),
        Backend::Stream { api_key, base_url } => {
            let mut options = ClientOptions::default();
            if let Some(url) = base_url {
                options = options.with_base_url(url);
            }
            VideoClient::new(api_key, options)
        }
    }
}

/// Local mode is its own token server: this provider signs a fresh token whenever asked.
fn minting_provider(local: &LocalMode, user_id: &str) -> TokenSource {
    let key = local.coordinator.signing_key();
    let subject = user_id.to_owned();
    TokenSource::provider(move || {
        let token = key.user_token(&subject, Some(LOCAL_TOKEN_TTL));
        async move { Ok::<_, ProviderError>(token) }
    })
}

/// The token source for a credential, and how the inspector names it.
fn token_source(
    local: &LocalMode,
    backend: &Backend,
    user_id: &str,
    credential: &Credential,
) -> Result<(TokenSource, &'static str), CommandError> {
    match (credential, backend) {
        (Credential::Minted, Backend::Local) => {
            Ok((minting_provider(local, user_id), "minted by this computer"))
        }
        (Credential::Minted, Backend::Stream { .. }) => Err(CommandError::InvalidInput(
            "Stream needs a token or a token URL for this user.".into(),
        )),
        (Credential::Token { token }, _) => Ok((TokenSource::token(token), "static token")),
        (Credential::TokenUrl { url }, _) => token_url_provider(url, user_id)
            .map(|source| (source, "token URL (provider)"))
            .map_err(|e| CommandError::InvalidInput(format!("{e}."))),
    }
}

/// Which credential the form's fields describe: at most one of a token or a token URL.
fn credential_from(
    token: Option<String>,
    token_url: Option<String>,
) -> Result<Credential, CommandError> {
    let token = token.map(|t| t.trim().to_owned()).filter(|t| !t.is_empty());
    let token_url = token_url
        .map(|u| u.trim().to_owned())
        .filter(|u| !u.is_empty());
    match (token, token_url) {
        (Some(_), Some(_)) => Err(CommandError::InvalidInput(
            "Give a token or a token URL, not both.".into(),
        )),
        (Some(token), None) => Ok(Credential::Token { token }),
        (None, Some(url)) => Ok(Credential::TokenUrl { url }),
        (None, None) => Ok(Credential::Minted),
    }
}

fn keychain_message(e: &KeychainError) -> String {
    match e {
        KeychainError::Unavailable(_) => "No keychain is available on this computer, so Confab keeps this sign-in in memory only and will forget it when it closes.".into(),
        other => format!("Confab could not remember this sign-in: {other}. It is kept in memory only."),
    }
}

/// Runs a keychain call off the async runtime (the Secret Service client blocks).
async fn with_keychain<T: Send + 'static>(
    f: impl FnOnce(&Keychain) -> Result<T, KeychainError> + Send + 'static,
) -> Result<T, KeychainError> {
    tauri::async_runtime::spawn_blocking(move || f(&Keychain::default()))
        .await
        .unwrap_or_else(|_| {
            Err(KeychainError::Failed(
                "the keychain call did not finish".into(),
            ))
        })
}

async fn start(
    app: AppHandle,
    session: &Session,
    active: Active,
    connect: impl std::future::Future<Output = Result<confab_client::ConnectedUser, ConnectError>>,
) -> Result<SignedIn, CommandError> {
    let mut slot = session.active.lock().await;
    if slot.is_some() {
        return Err(CommandError::Session {
            code: "already_signed_in",
            message: "Sign out first.".into(),
        });
    }
    publish(&app, StatusEvent::from_state(&ConnectionState::Connecting));
    forward_state(app, &active.client);
    let me = match connect.await {
        Ok(me) => me,
        Err(e) => {
            // Stop any retries in the background: this sign-in failed.
            active.client.disconnect_user().await;
            return Err(connect_error(e));
        }
    };
    let backend = backend_label(&active.backend);
    *slot = Some(active);
    Ok(SignedIn {
        user_id: me.id,
        name: me.name,
        role: me.role,
        backend,
        remembered: None,
    })
}

/// Signs in a user. In local mode a name is enough (the app mints tokens); a token or token
/// URL may be given anyway. Against Stream one of the two is required.
#[tauri::command]
#[allow(clippy::too_many_arguments)] // one argument per field of the sign-in form
pub async fn sign_in(
    app: AppHandle,
    local: State<'_, LocalMode>,
    session: State<'_, Session>,
    backend: Backend,
    user_id: String,
    name: Option<String>,
    token: Option<String>,
    token_url: Option<String>,
    remember: bool,
) -> Result<SignedIn, CommandError> {
    let sign_in = RememberedSignIn {
        backend: valid_backend(backend)?,
        user_id: valid_user_id(&user_id)?,
        name: clean_name(name)?,
        credential: credential_from(token, token_url)?,
    };
    let mut signed_in = connect_remembered(app, &local, &session, &sign_in).await?;
    signed_in.remembered = Some(if remember {
        match with_keychain(move |k| k.remember(&sign_in)).await {
            Ok(()) => Remembered {
                stored: true,
                message: "Confab will sign you in when it starts, until you sign out.".into(),
            },
            Err(e) => {
                tracing::warn!(target: "confab::shell", code = e.code(), "could not remember the sign-in");
                Remembered {
                    stored: false,
                    message: keychain_message(&e),
                }
            }
        }
    } else {
        // Signing in without "Remember me" replaces an older remembered sign-in.
        let _ = with_keychain(|k| k.forget()).await;
        Remembered {
            stored: false,
            message: "Not remembered: you will sign in again next time.".into(),
        }
    });
    Ok(signed_in)
}

async fn connect_remembered(
    app: AppHandle,
    local: &LocalMode,
    session: &Session,
    sign_in: &RememberedSignIn,
) -> Result<SignedIn, CommandError> {
    let mut user = User::new(&sign_in.user_id);
    user.name = sign_in.name.clone();
    let (source, token_source) = token_source(
        local,
        &sign_in.backend,
        &sign_in.user_id,
        &sign_in.credential,
    )?;
    let client = client_for(local, &sign_in.backend);
    let connecting = client.clone();
    let active = Active {
        client,
        backend: sign_in.backend.clone(),
        token_source,
        call: None,
    };
    start(app, session, active, async move {
        connecting.connect_user(user, source).await
    })
    .await
}

/// What the page learns at start-up about the remembered sign-in.
#[derive(Debug, Serialize)]
pub struct Restored {
    pub signed_in: Option<SignedIn>,
    /// Where the remembered sign-in pointed, so the form shows it even if connecting failed.
    pub backend: Option<Backend>,
    pub keychain_available: bool,
    /// Plain words for the page when something went wrong.
    pub message: Option<String>,
}

/// Signs in with what the keychain remembers, if anything.
#[tauri::command]
pub async fn restore_sign_in(
    app: AppHandle,
    local: State<'_, LocalMode>,
    session: State<'_, Session>,
) -> Result<Restored, CommandError> {
    let remembered = match with_keychain(|k| k.recall()).await {
        Ok(r) => r,
        Err(e @ KeychainError::Unavailable(_)) => {
            tracing::info!(target: "confab::shell", code = e.code(), "no keychain");
            return Ok(Restored {
                signed_in: None,
                backend: None,
                keychain_available: false,
                message: Some(
                    "No keychain is available on this computer, so Confab cannot remember a sign-in: you stay signed in until Confab closes.".into(),
                ),
            });
        }
        Err(e) => {
            return Ok(Restored {
                signed_in: None,
                backend: None,
                keychain_available: true,
                message: Some(format!("{e}.")),
            })
        }
    };
    let Some(sign_in) = remembered else {
        return Ok(Restored {
            signed_in: None,
            backend: None,
            keychain_available: true,
            message: None,
        });
    };
    let backend = Some(sign_in.backend.clone());
    match connect_remembered(app, &local, &session, &sign_in).await {
        Ok(mut signed_in) => {
            signed_in.remembered = Some(Remembered {
                stored: true,
                message: "Signed in from the keychain.".into(),
            });
            Ok(Restored {
                signed_in: Some(signed_in),
                backend,
                keychain_available: true,
                message: None,
            })
        }
        Err(e) => {
            // A token that can never work again is dropped; an unreachable coordinator is not
            // the sign-in's fault, so it stays for next time.
            if matches!(
                e.code(),
                "token_rejected" | "token_expired" | "token_invalid"
            ) {
                let _ = with_keychain(|k| k.forget()).await;
            }
            Ok(Restored {
                signed_in: None,
                backend,
                keychain_available: true,
                message: Some(format!("Your remembered sign-in did not work: {e}")),
            })
        }
    }
}

/// Joins as a guest: only a display name (and optionally an avatar URL).
#[tauri::command]
pub async fn join_as_guest(
    app: AppHandle,
    local: State<'_, LocalMode>,
    session: State<'_, Session>,
    backend: Backend,
    name: String,
    image: Option<String>,
) -> Result<SignedIn, CommandError> {
    let backend = valid_backend(backend)?;
    let name = clean_name(Some(name))?
        .ok_or_else(|| CommandError::InvalidInput("Type the name others will see.".into()))?;
    let image = image.map(|i| i.trim().to_owned()).filter(|i| !i.is_empty());
    if image
        .as_ref()
        .is_some_and(|i| !(i.starts_with("https://") || i.starts_with("http://")))
    {
        return Err(CommandError::InvalidInput(
            "An avatar is a web address (https://...).".into(),
        ));
    }
    let guest = Guest {
        name: Some(name),
        image,
        ..Guest::default()
    };
    let client = client_for(&local, &backend);
    let connecting = client.clone();
    let active = Active {
        client,
        backend,
        token_source: "guest token from the coordinator",
        call: None,
    };
    start(app, &session, active, async move {
        connecting.connect_guest(guest).await
    })
    .await
}

/// Leaves any call, disconnects, and forgets the remembered sign-in.
#[tauri::command]
pub async fn sign_out(session: State<'_, Session>) -> Result<SignedOut, CommandError> {
    if let Some(active) = session.active.lock().await.take() {
        if let Some(call) = active.call {
            call.leave().await;
        }
        active.client.disconnect_user().await;
    }
    let forgotten = with_keychain(|k| k.forget()).await;
    Ok(SignedOut {
        keychain_cleared: forgotten.is_ok(),
        message: forgotten.err().map(|e| keychain_message(&e)),
    })
}

#[derive(Debug, Serialize)]
pub struct SignedOut {
    pub keychain_cleared: bool,
    pub message: Option<String>,
}

/// What the token inspector shows: the claims and where tokens come from. Never the token.
#[derive(Debug, Serialize)]
pub struct TokenInfo {
    pub user_id: Option<String>,
    pub role: Option<String>,
    pub call_cids: Option<Vec<String>>,
    pub issued_at: Option<i64>,
    pub expires_at: Option<i64>,
    pub expires_in_s: Option<f64>,
    pub source: &'static str,
    pub provider_calls: u32,
}

#[tauri::command]
pub async fn token_info(session: State<'_, Session>) -> Result<Option<TokenInfo>, CommandError> {
    let slot = session.active.lock().await;
    let Some(active) = slot.as_ref() else {
        return Ok(None);
    };
    let Some(tokens) = active.client.token_manager() else {
        return Ok(None);
    };
    let claims = tokens.current_claims();
    Ok(Some(TokenInfo {
        user_id: claims.as_ref().and_then(|c| c.user_id.clone()),
        role: claims.as_ref().and_then(|c| c.role.clone()),
        call_cids: claims.as_ref().and_then(|c| c.call_cids.clone()),
        issued_at: claims.as_ref().and_then(|c| c.iat),
        expires_at: claims.as_ref().and_then(|c| c.exp),
        expires_in_s: tokens.current_expires_in(),
        source: active.token_source,
        provider_calls: tokens.provider_calls(),
    }))
}
