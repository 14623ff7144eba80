// The app's commands, declared once. main.rs turns this list into the invoke handler and
// build.rs into the permissions the capability grants by name; the shell's tests check the
// capability in tauri.conf.json and the page's calls against it.
//
// `app_commands!(m)` calls the macro `m` with `module::command, ...`.
macro_rules! app_commands {
    ($then:ident) => {
        $then! {
            shell::app_info,
            shell::ping,
            shell::ui_ready,
            shell::set_window_title,
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
            calls::start_watching,
            calls::stop_watching,
            call_media::call_media_attach,
            call_media::set_microphone_muted,
            call_media::set_camera_enabled,
            call_media::set_video_view,
            call_media::request_keyframe,
            call_media::switch_call_device,
            call_media::call_media_stats,
            call_media::decode_video_in_rust,
            call_media::set_audio_processing,
            sharing::share_sources,
            sharing::share_thumbnail,
            sharing::start_share,
            sharing::stop_share,
            hosting::start_hosting,
            hosting::stop_hosting,
        }
    };
}
