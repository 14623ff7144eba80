//! Confab's Tauri shell: wires the headless crates to the window. No protocol or device logic
//! lives here.

// No console window behind the app on Windows release builds.
#![cfg_attr(not(debug_assertions), windows_subsystem = "windows")]

mod commands;
mod devices;
mod diagnostics;
mod error;
mod local_mode;
mod session;

use tauri::Manager;

fn main() {
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
            session::join_as_guest,
            session::sign_out,
            session::create_livestream,
            session::watch_livestream,
        ])
        .run(tauri::generate_context!());
    if let Err(e) = result {
        eprintln!("confab: could not start the window: {e}");
        std::process::exit(1);
    }
}
