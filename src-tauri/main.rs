//! Confab's Tauri shell: wires the headless crates to the window. No protocol or device logic
//! lives here.

// No console window behind the app on Windows release builds.
#![cfg_attr(not(debug_assertions), windows_subsystem = "windows")]

mod calls;
mod commands;
mod devices;
mod diagnostics;
mod error;
mod local_mode;
mod session;

use tauri::Manager;

fn main() {
    prefer_lean_webview();
    diagnostics::init_logging();

    let result = tauri::Builder::default()
        .setup(|app| {
            app.manage(diagnostics::attach_files(app.handle())?);
            let local = local_mode::start(app.handle())?;
            app.manage(local);
            app.manage(devices::start(app.handle())?);
            app.manage(session::Session::default());
            Ok(())
        })
        .on_window_event(|window, event| {
            // Exit with the main window, whatever is still running.
            if let tauri::WindowEvent::Destroyed = event {
                if window.label() == "main" {
                    window.app_handle().exit(0);
                }
            }
        })
        .invoke_handler(tauri::generate_handler![
            commands::app_info,
            commands::ping,
            commands::ui_ready,
            diagnostics::log_levels,
            diagnostics::set_log_level,
            diagnostics::export_diagnostics,
            devices::list_devices,
            devices::select_device,
            devices::start_preview,
            devices::stop_preview,
            devices::preview_shown,
            devices::start_mic_meter,
            devices::stop_mic_meter,
            devices::play_test_tone,
            session::sign_in,
            session::restore_sign_in,
            session::join_as_guest,
            session::sign_out,
            session::token_info,
            calls::join_call,
            calls::leave_call,
            calls::set_live,
            calls::viewer_token,
            calls::watch_livestream,
        ])
        .run(tauri::generate_context!());
    if let Err(e) = result {
        eprintln!("confab: could not start the window: {e}");
        std::process::exit(1);
    }
}

/// WebKitGTK's accelerated compositing doubles the web process's memory in the lobby (237 MB
/// against 117 MB PSS, measured by `scripts/bench.sh app`) and buys nothing for a page of forms
/// and one canvas. Off unless the person chose otherwise. Runs before any thread starts, as
/// changing the environment requires.
fn prefer_lean_webview() {
    #[cfg(target_os = "linux")]
    if std::env::var_os("WEBKIT_DISABLE_COMPOSITING_MODE").is_none()
        && std::env::var_os("CONFAB_WEBKIT_COMPOSITING").is_none()
    {
        std::env::set_var("WEBKIT_DISABLE_COMPOSITING_MODE", "1");
    }
}
