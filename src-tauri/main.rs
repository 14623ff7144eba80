//! Confab's Tauri shell: wires the headless crates to the window. No protocol, session or
//! device logic lives here: commands hand over to confab-session and confab-devices.

// No console window behind the app on Windows release builds.
#![cfg_attr(not(debug_assertions), windows_subsystem = "windows")]

#[macro_use]
mod command_list;
mod call_media;
mod calls;
mod devices;
mod diagnostics;
mod error;
mod events;
mod hosting;
mod links;
mod local_mode;
mod session;
mod sharing;
mod shell;

use tauri::Manager;

macro_rules! invoke_handler {
    ($($module:ident :: $command:ident),* $(,)?) => {
        tauri::generate_handler![$($module::$command),*]
    };
}

fn main() {
    // Both change the environment, which is only sound before any thread starts.
    prefer_lean_webview();
    confab_devices::pulse_cookie::point_cpal_at_pulse_cookie();
    let context = tauri::generate_context!();
    let identifier = context.config().identifier.clone();
    if links::hand_over_to_running_instance(&identifier) {
        return;
    }
    diagnostics::init_logging();

    let result = tauri::Builder::default()
        // First, so a second launch hands over its link and exits before anything else starts.
        .plugin(
            tauri_plugin_single_instance::Builder::new()
                .callback(|app, args, _cwd| links::second_launch(app, args))
                .dbus_id(links::instance_id(&identifier))
                .build(),
        )
        .manage(links::LinkInbox::default())
        .manage(call_media::AudioProcessingChoice::default())
        .setup(|app| {
            app.manage(diagnostics::attach_files(app.handle())?);
            let local = local_mode::start(app.handle())?;
            let session = local_mode::session(&local);
            events::forward_status(app.handle().clone(), &session);
            app.manage(session);
            app.manage(local);
            app.manage(devices::start(app.handle())?);
            #[cfg(target_os = "linux")]
            if let Some(window) = app.get_webview_window("main") {
                close_with_page(&window)?;
            }
            // This launch's own link waits until the page listens.
            links::receive(app.handle(), std::env::args().collect());
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
        .invoke_handler(app_commands!(invoke_handler))
        .run(context);
    if let Err(e) = result {
        eprintln!("confab: could not start the window: {e}");
        std::process::exit(1);
    }
}

/// WebKitGTK's accelerated compositing doubles the web process's memory in the lobby (237 MB
/// against 117 MB PSS, measured by `scripts/bench.sh app`) and buys nothing for a page of forms
/// and one canvas. Off unless the person chose otherwise.
fn prefer_lean_webview() {
    #[cfg(target_os = "linux")]
    if std::env::var_os("WEBKIT_DISABLE_COMPOSITING_MODE").is_none()
        && std::env::var_os("CONFAB_WEBKIT_COMPOSITING").is_none()
    {
        std::env::set_var("WEBKIT_DISABLE_COMPOSITING_MODE", "1");
    }
}

/// Closes the window when its page is closed, so the app exits (see `Destroyed` above).
///
/// WebKitWebDriver ends a session by closing the page, as `window.close()` would. wry answers
/// that by destroying the web view only, so the window stayed open with no page, and the app
/// ran on until something killed it: in the e2e runs WebKitWebDriver SIGKILLed it around the
/// time it answered the session's deletion, and when the harness stopped the driver first,
/// the app was left behind, orphaned and idle.
#[cfg(target_os = "linux")]
fn close_with_page(window: &tauri::WebviewWindow) -> tauri::Result<()> {
    use webkit2gtk::glib::prelude::ObjectExt;

    let window = window.clone();
    window.clone().with_webview(move |webview| {
        // "destroy" rather than the page's "close": wry's "close" handler, connected first,
        // destroys the view, and "destroy" is emitted however the view goes.
        webview.inner().connect_local("destroy", false, move |_| {
            tracing::info!(target: "confab::shell", "the page was closed; closing the window");
            // Also runs when the window is being destroyed anyway: then there is nothing to do.
            let _ = window.destroy();
            None
        });
    })
}

#[cfg(test)]
mod tests {
    //! The commands are declared once (command_list.rs); these check that the capability and
    //! the page agree with that list, so a command added in one place and not the others fails
    //! here rather than as "not allowed" in the window.

    use std::collections::BTreeSet;

    macro_rules! command_names {
        ($($module:ident :: $command:ident),* $(,)?) => {
            [$(stringify!($command)),*]
        };
    }

    fn commands() -> BTreeSet<String> {
        app_commands!(command_names)
            .iter()
            .map(|c| c.to_string())
            .collect()
    }

    fn root() -> std::path::PathBuf {
        std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR"))
    }

    /// The page's scripts, every module under ui/ (vendored libraries aside).
    fn page_sources() -> String {
        fn walk(dir: &std::path::Path, out: &mut String) {
            for entry in std::fs::read_dir(dir).unwrap().flatten() {
                let path = entry.path();
                if path.is_dir() && path.file_name().is_some_and(|n| n != "vendor") {
                    walk(&path, out);
                } else if path.extension().is_some_and(|e| e == "js") {
                    out.push_str(&std::fs::read_to_string(&path).unwrap());
                }
            }
        }
        let mut out = String::new();
        walk(&root().join("ui"), &mut out);
        out
    }

    /// The quoted words after `marker` in `text`: `invoke('x'` gives `x`.
    fn quoted_after(text: &str, marker: &str) -> BTreeSet<String> {
        text.match_indices(marker)
            .filter_map(|(at, _)| {
                let rest = &text[at + marker.len()..];
                let quote = rest.chars().next().filter(|c| *c == '\'' || *c == '"')?;
                let end = rest[1..].find(quote)?;
                Some(rest[1..1 + end].to_owned())
            })
            .collect()
    }

    #[test]
    fn the_capability_grants_exactly_the_declared_commands() {
        let conf: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(root().join("tauri.conf.json")).unwrap())
                .unwrap();
        let granted: BTreeSet<String> = conf["app"]["security"]["capabilities"][0]["permissions"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|p| p.as_str()?.strip_prefix("allow-"))
            .map(|p| p.replace('-', "_"))
            .collect();
        assert_eq!(granted, commands());
    }

    #[test]
    fn the_page_calls_only_declared_commands_and_every_command_is_reachable() {
        let page = page_sources();
        let called = quoted_after(&page, "invoke(");
        let declared = commands();
        let unknown: Vec<_> = called.difference(&declared).collect();
        assert!(
            unknown.is_empty(),
            "the page invokes undeclared commands: {unknown:?}"
        );
        let unused: Vec<_> = commands()
            .into_iter()
            .filter(|c| !page.contains(&format!("'{c}'")) && !page.contains(&format!("\"{c}\"")))
            .collect();
        assert!(
            unused.is_empty(),
            "commands the page never names: {unused:?}"
        );
    }

    #[test]
    fn the_page_listens_only_to_events_the_app_sends() {
        let page = page_sources();
        let mut heard = BTreeSet::new();
        for (at, _) in page.match_indices("confab:") {
            let name: String = page[at..]
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || matches!(c, ':' | '-' | '_'))
                .collect();
            if name.len() > "confab:".len() {
                heard.insert(name);
            }
        }
        let sent: BTreeSet<String> = crate::events::ALL.iter().map(|e| e.to_string()).collect();
        let unknown: Vec<_> = heard.difference(&sent).collect();
        assert!(
            unknown.is_empty(),
            "the page names events the app never sends: {unknown:?}"
        );
    }
}
