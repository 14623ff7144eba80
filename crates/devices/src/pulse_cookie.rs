//! Where PulseAudio's authentication cookie is, for cpal's PulseAudio client.
//!
//! PulseAudio writes its cookie at `$XDG_CONFIG_HOME/pulse/cookie` (libpulse's own rule), but
//! the `pulseaudio` crate that cpal uses reads only `$PULSE_COOKIE`, `$HOME/.config/pulse/cookie`
//! and `$HOME/.pulse-cookie`. Where `XDG_CONFIG_HOME` is not `~/.config`, cpal then cannot
//! authenticate and falls back to ALSA. The app points `PULSE_COOKIE` at the file libpulse
//! would use before any thread starts.

use std::ffi::OsString;
use std::path::{Path, PathBuf};

/// The cookie file libpulse would read, in its order: `$PULSE_COOKIE`, then
/// `$XDG_CONFIG_HOME/pulse/cookie` (or `$HOME/.config/pulse/cookie`), then `$HOME/.pulse-cookie`.
/// `None` when no such file exists.
pub fn libpulse_cookie_path(
    var: impl Fn(&str) -> Option<OsString>,
    exists: impl Fn(&Path) -> bool,
) -> Option<PathBuf> {
    let non_empty = |name: &str| var(name).filter(|v| !v.is_empty()).map(PathBuf::from);
    let home = non_empty("HOME");
    let config = non_empty("XDG_CONFIG_HOME").or_else(|| home.as_ref().map(|h| h.join(".config")));
    [
        non_empty("PULSE_COOKIE"),
        config.map(|c| c.join("pulse").join("cookie")),
        home.map(|h| h.join(".pulse-cookie")),
    ]
    .into_iter()
    .flatten()
    .find(|p| exists(p))
}

/// Sets `PULSE_COOKIE` to libpulse's cookie when it is not set. Changing the environment is
/// only sound before other threads start: call it first thing in `main`.
pub fn point_cpal_at_pulse_cookie() {
    if std::env::var_os("PULSE_COOKIE").is_some() {
        return;
    }
    if let Some(path) = libpulse_cookie_path(|name| std::env::var_os(name), Path::is_file) {
        std::env::set_var("PULSE_COOKIE", path);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env<'a>(pairs: &'a [(&'a str, &'a str)]) -> impl Fn(&str) -> Option<OsString> + 'a {
        move |name| {
            pairs
                .iter()
                .find(|(k, _)| *k == name)
                .map(|(_, v)| OsString::from(v))
        }
    }

    #[test]
    fn follows_xdg_config_home_where_the_pulseaudio_crate_does_not() {
        let vars = [("HOME", "/home/ann"), ("XDG_CONFIG_HOME", "/tmp/cfg")];
        let found = libpulse_cookie_path(env(&vars), |p| p == Path::new("/tmp/cfg/pulse/cookie"));
        assert_eq!(found, Some(PathBuf::from("/tmp/cfg/pulse/cookie")));
    }

    #[test]
    fn an_explicit_cookie_wins_and_missing_files_are_skipped() {
        let vars = [
            ("HOME", "/home/ann"),
            ("PULSE_COOKIE", "/run/cookie"),
            ("XDG_CONFIG_HOME", "/tmp/cfg"),
        ];
        assert_eq!(
            libpulse_cookie_path(env(&vars), |_| true),
            Some(PathBuf::from("/run/cookie"))
        );
        // Nothing under XDG_CONFIG_HOME: the legacy file in the home.
        let vars = [("HOME", "/home/ann"), ("XDG_CONFIG_HOME", "/tmp/cfg")];
        assert_eq!(
            libpulse_cookie_path(env(&vars), |p| p == Path::new("/home/ann/.pulse-cookie")),
            Some(PathBuf::from("/home/ann/.pulse-cookie"))
        );
        assert_eq!(libpulse_cookie_path(env(&vars), |_| false), None);
        // No XDG_CONFIG_HOME: ~/.config, as libpulse.
        let vars = [("HOME", "/home/ann")];
        assert_eq!(
            libpulse_cookie_path(env(&vars), |_| true),
            Some(PathBuf::from("/home/ann/.config/pulse/cookie"))
        );
    }
}
