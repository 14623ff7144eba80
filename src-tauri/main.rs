//! Confab's Tauri shell: wires the headless crates to the window. No protocol or device logic
//! lives here.

// No console window behind the app on Windows release builds.
#![cfg_attr(not(debug_assertions), windows_subsystem = "windows")]

mod commands;
mod error;
mod local_mode;

use tauri::Manager;

use tracing_subscriber::EnvFilter;

fn main() {
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_env("CONFAB_LOG").unwrap_or_else(|_| EnvFilter::new("info")),
        )
        .init();

    let result = tauri::Builder::default()
        .setup(|app| {
            let local = local_mode::start(app.handle())?;
            app.manage(local);
            Ok(())
        })
        .invoke_handler(tauri::generate_handler![commands::app_info, commands::ping])
        .run(tauri::generate_context!());
    if let Err(e) = result {
        eprintln!("confab: could not start the window: {e}");
        std::process::exit(1);
    }
}
