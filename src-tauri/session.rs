//! Who is signed in, and the connection state the status bar shows. Local mode mints tokens
//! with the embedded coordinator's key (a person only types a name); the client refreshes
//! them through a provider before they expire.

use std::sync::Mutex;
use std::time::Duration;

use confab_client::{
    ClientOptions, ConnectError, ConnectionState, DisconnectReason, Guest, ProviderError,
    TokenSource, User, VideoClient,
};
use serde::Serialize;
use tauri::{AppHandle, Emitter, State};

use crate::error::CommandError;
use crate::local_mode::LocalMode;

/// Lifetime of the tokens local mode mints; the provider replaces them before they expire.
const LOCAL_TOKEN_TTL: Duration = Duration::from_secs(3600);

#[derive(Default)]
pub struct Session {
    client: tokio::sync::Mutex<Option<VideoClient>>,
    /// Every state change, for the diagnostics export.
    pub timeline: Mutex<Vec<StatusEvent>>,
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
fn connect_error(e: ConnectError) -> CommandError {
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

#[derive(Debug, Serialize)]
pub struct SignedIn {
    pub user_id: String,
    pub name: Option<String>,
    pub role: String,
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

fn new_client(local: &LocalMode) -> VideoClient {
    VideoClient::new(
        local.coordinator.api_key(),
        ClientOptions::default().with_base_url(local.coordinator.base_url()),
    )
}

/// Forwards the client's state to the page and the timeline until the session ends.
fn forward_state(app: AppHandle, client: &VideoClient) {
    let mut states = client.state();
    tauri::async_runtime::spawn(async move {
        loop {
            let event = StatusEvent::from_state(&states.borrow_and_update());
            if let Some(session) = tauri::Manager::try_state::<Session>(&app) {
                session
                    .timeline
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .push(event.clone());
            }
            let _ = app.emit("confab:connection", &event);
            if event.state == "disconnected" || states.changed().await.is_err() {
                return;
            }
        }
    });
}

async fn start(
    app: AppHandle,
    session: &Session,
    client: VideoClient,
    connect: impl std::future::Future<Output = Result<confab_client::ConnectedUser, ConnectError>>,
) -> Result<SignedIn, CommandError> {
    let mut slot = session.client.lock().await;
    if slot.is_some() {
        return Err(CommandError::Session {
            code: "already_signed_in",
            message: "Sign out first.".into(),
        });
    }
    forward_state(app, &client);
    let me = connect.await.map_err(connect_error)?;
    *slot = Some(client);
    Ok(SignedIn {
        user_id: me.id,
        name: me.name,
        role: me.role,
    })
}

/// Signs in as a user of the local coordinator: a user id and an optional display name.
#[tauri::command]
pub async fn sign_in(
    app: AppHandle,
    local: State<'_, LocalMode>,
    session: State<'_, Session>,
    user_id: String,
    name: Option<String>,
) -> Result<SignedIn, CommandError> {
    let user_id = valid_user_id(&user_id)?;
    let mut user = User::new(&user_id);
    user.name = clean_name(name)?;
    let key = local.coordinator.signing_key();
    let subject = user_id.clone();
    // Local mode is its own token server: the provider signs a fresh token whenever asked.
    let provider = TokenSource::provider(move || {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs() as i64)
            .unwrap_or_default();
        let token = key.sign(&confab_coordinator::Claims {
            user_id: Some(subject.clone()),
            iat: Some(now),
            exp: Some(now + LOCAL_TOKEN_TTL.as_secs() as i64),
            ..Default::default()
        });
        async move { Ok::<_, ProviderError>(token) }
    });
    let client = new_client(&local);
    let connecting = client.clone();
    start(app, &session, client, async move {
        connecting.connect_user(user, provider).await
    })
    .await
}

/// Joins as a guest: only a display name (and optionally an avatar URL).
#[tauri::command]
pub async fn join_as_guest(
    app: AppHandle,
    local: State<'_, LocalMode>,
    session: State<'_, Session>,
    name: String,
    image: Option<String>,
) -> Result<SignedIn, CommandError> {
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
    let client = new_client(&local);
    let connecting = client.clone();
    start(app, &session, client, async move {
        connecting.connect_guest(guest).await
    })
    .await
}

#[tauri::command]
pub async fn sign_out(session: State<'_, Session>) -> Result<(), CommandError> {
    if let Some(client) = session.client.lock().await.take() {
        client.disconnect_user().await;
    }
    Ok(())
}

#[derive(Debug, Serialize)]
pub struct Livestream {
    pub cid: String,
    pub backstage: bool,
    pub hls_playlist_url: Option<String>,
    /// For hosts: a token that lets anonymous viewers watch this call and no other.
    pub viewer_token: Option<String>,
}

fn valid_call_id(id: &str) -> Result<String, CommandError> {
    let id = id.trim();
    let ok = !id.is_empty()
        && id.len() <= 64
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
    if ok {
        Ok(id.to_owned())
    } else {
        Err(CommandError::InvalidInput(
            "A call id is 1 to 64 letters, digits, '-' or '_'.".into(),
        ))
    }
}

fn api_error(e: confab_client::ApiError, call: &str) -> CommandError {
    let (code, message) = match e.code() {
        Some(16) => ("not_found", format!("There is no livestream {call}.")),
        Some(17) => (
            "not_allowed",
            format!("This token does not let you watch {call}: it is for another call. Ask the host for a token for {call}."),
        ),
        Some(40) => ("token_expired", "The token has expired. Ask the host for a new one.".to_owned()),
        Some(43) => ("token_rejected", "The token was rejected. Ask the host for a new one.".to_owned()),
        _ => ("request_failed", e.to_string()),
    };
    CommandError::Session { code, message }
}

/// Creates a livestream hosted by the signed-in user (it starts in backstage) and returns a
/// viewer token scoped to it.
#[tauri::command]
pub async fn create_livestream(
    local: State<'_, LocalMode>,
    session: State<'_, Session>,
    call_id: String,
) -> Result<Livestream, CommandError> {
    let call_id = valid_call_id(&call_id)?;
    let slot = session.client.lock().await;
    let client = slot.as_ref().ok_or_else(|| CommandError::Session {
        code: "not_signed_in",
        message: "Sign in to host a livestream.".into(),
    })?;
    let cid = format!("livestream:{call_id}");
    let call = client
        .call("livestream", &call_id)
        .get_or_create(None)
        .await
        .map_err(|e| api_error(e, &cid))?;
    let viewer_token = local.coordinator.sign(&confab_coordinator::Claims {
        user_id: Some(confab_client::user::ANONYMOUS_USER_ID.into()),
        role: Some("viewer".into()),
        call_cids: Some(vec![cid.clone()]),
        ..Default::default()
    });
    Ok(Livestream {
        cid,
        backstage: call.backstage(),
        hls_playlist_url: call.hls_playlist_url().map(str::to_owned),
        viewer_token: Some(viewer_token),
    })
}

/// Watches a livestream anonymously (no socket), with an optional call token.
#[tauri::command]
pub async fn watch_livestream(
    local: State<'_, LocalMode>,
    call_id: String,
    call_token: Option<String>,
) -> Result<Livestream, CommandError> {
    let call_id = valid_call_id(&call_id)?;
    let cid = format!("livestream:{call_id}");
    let viewer = new_client(&local);
    let token = call_token
        .map(|t| t.trim().to_owned())
        .filter(|t| !t.is_empty())
        .map(TokenSource::token);
    viewer
        .connect_anonymous(token)
        .await
        .map_err(connect_error)?;
    let call = viewer
        .call("livestream", &call_id)
        .get()
        .await
        .map_err(|e| api_error(e, &cid))?;
    Ok(Livestream {
        cid,
        backstage: call.backstage(),
        hls_playlist_url: call.hls_playlist_url().map(str::to_owned),
        viewer_token: None,
    })
}
