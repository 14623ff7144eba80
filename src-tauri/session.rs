//! Signing in and out: each command hands the form to confab-session.

use confab_credentials::Backend;
use confab_session::{
    GuestForm, Restored, SessionHandle, SignInForm, SignedIn, SignedOut, TokenInfo,
};
use tauri::State;

use crate::error::CommandError;

#[tauri::command]
#[allow(clippy::too_many_arguments)] // one argument per field of the sign-in form
pub async fn sign_in(
    session: State<'_, SessionHandle>,
    backend: Backend,
    user_id: String,
    name: Option<String>,
    token: Option<String>,
    token_url: Option<String>,
    remember: bool,
) -> Result<SignedIn, CommandError> {
    let form = SignInForm {
        backend,
        user_id,
        name,
        token,
        token_url,
        remember,
    };
    Ok(session.sign_in(form).await?)
}

#[tauri::command]
pub async fn restore_sign_in(session: State<'_, SessionHandle>) -> Result<Restored, CommandError> {
    Ok(session.restore_sign_in().await?)
}

#[tauri::command]
pub async fn join_as_guest(
    session: State<'_, SessionHandle>,
    backend: Backend,
    name: String,
    image: Option<String>,
    trust_local_network: Option<bool>,
) -> Result<SignedIn, CommandError> {
    let form = GuestForm {
        backend,
        name,
        image,
        trust_local_network: trust_local_network.unwrap_or(false),
    };
    Ok(session.join_as_guest(form).await?)
}

#[tauri::command]
pub async fn sign_out(session: State<'_, SessionHandle>) -> Result<SignedOut, CommandError> {
    Ok(session.sign_out().await?)
}

#[tauri::command]
pub async fn token_info(
    session: State<'_, SessionHandle>,
) -> Result<Option<TokenInfo>, CommandError> {
    Ok(session.token_info().await?)
}
