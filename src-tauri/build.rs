// tauri-build reads tauri.conf.json beside Cargo.toml, checks the capabilities and writes the
// access-control list the app embeds. Each app command gets its own allow-/deny- permission.
fn main() {
    let manifest = tauri_build::AppManifest::new().commands(&[
        "app_info",
        "ping",
        "ui_ready",
        "log_levels",
        "set_log_level",
        "export_diagnostics",
        "list_devices",
        "select_device",
        "start_preview",
        "stop_preview",
        "preview_shown",
        "start_mic_meter",
        "stop_mic_meter",
        "play_test_tone",
        "sign_in",
        "restore_sign_in",
        "join_as_guest",
        "sign_out",
        "token_info",
        "join_call",
        "leave_call",
        "set_live",
        "viewer_token",
        "watch_livestream",
    ]);
    tauri_build::try_build(tauri_build::Attributes::new().app_manifest(manifest))
        .expect("tauri-build failed: check tauri.conf.json and the capabilities in it");
}
