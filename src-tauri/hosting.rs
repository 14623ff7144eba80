//! Hosting for your network (opt-in, off until the person turns it on): the embedded
//! coordinator also listens on this computer's network address, and the page shows an invite
//! link (and its QR code) that another Confab opens to join the call as a guest. Turning it
//! off closes that listener.

use std::net::{IpAddr, SocketAddr};

use base64::Engine as _;
use confab_session::input::CallChoice;
use serde::Serialize;
use tauri::State;

use crate::error::CommandError;
use crate::local_mode::LocalMode;

/// What the page shows while hosting.
#[derive(Debug, Serialize)]
pub struct Hosting {
    /// Where others reach this computer's coordinator, `IP:PORT`.
    pub address: String,
    pub invite_link: String,
    /// The invite link as a QR code: an SVG `data:` URL for an `<img>`.
    pub qr_code: String,
}

#[tauri::command]
pub async fn start_hosting(
    local: State<'_, LocalMode>,
    call_type: String,
    call_id: String,
) -> Result<Hosting, CommandError> {
    let call = CallChoice::parse(&call_type, &call_id)?;
    let mut lan = local.lan.lock().await;
    let address = match lan.as_ref() {
        Some(listener) => listener.local_addr(),
        None => {
            let ip = network_address()?;
            let listener = local
                .coordinator
                .serve_also(SocketAddr::new(ip, 0))
                .await
                .map_err(|e| CommandError::Io(format!("Could not host for your network: {e}.")))?;
            let address = listener.local_addr();
            tracing::info!(target: "confab::shell", %address, "hosting for the network");
            *lan = Some(listener);
            address
        }
    };
    let invite_link = confab_session::links::invite_link(
        &call.call_type,
        &call.call_id,
        address,
        local.coordinator.api_key(),
    );
    let svg =
        confab_session::links::qr_svg(&invite_link).map_err(confab_session::SessionError::from)?;
    Ok(Hosting {
        address: address.to_string(),
        qr_code: format!(
            "data:image/svg+xml;base64,{}",
            base64::engine::general_purpose::STANDARD.encode(svg)
        ),
        invite_link,
    })
}

/// Closes the network listener; nobody new can join through it.
#[tauri::command]
pub async fn stop_hosting(local: State<'_, LocalMode>) -> Result<(), CommandError> {
    if let Some(listener) = local.lan.lock().await.take() {
        listener.stop().await;
        tracing::info!(target: "confab::shell", "stopped hosting for the network");
    }
    Ok(())
}

/// This computer's address on its network: `CONFAB_HOST_ADDRESS` when set (tests use a second
/// loopback address), else the address the system would send from to reach the internet.
fn network_address() -> Result<IpAddr, CommandError> {
    if let Ok(text) = std::env::var("CONFAB_HOST_ADDRESS") {
        return text.trim().parse().map_err(|_| {
            CommandError::InvalidInput(format!(
                "CONFAB_HOST_ADDRESS is not an IP address: {text:?}"
            ))
        });
    }
    let no_network =
        || CommandError::Io("This computer is not on a network Confab can find.".into());
    // Connecting a UDP socket sends nothing: it only asks the system which route it would use.
    let probe = std::net::UdpSocket::bind(("0.0.0.0", 0)).map_err(|_| no_network())?;
    probe.connect(("192.0.2.1", 9)).map_err(|_| no_network())?;
    let ip = probe.local_addr().map_err(|_| no_network())?.ip();
    if ip.is_unspecified() || ip.is_loopback() {
        return Err(no_network());
    }
    Ok(ip)
}
