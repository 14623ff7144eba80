#!/usr/bin/env bash
# Runs inside the headless session that test.sh makes (X display, D-Bus, session keyring).
# Starts PulseAudio with a null sink and source, unlocks a throwaway gnome-keyring, then runs
# the Rust tests and the end-to-end tests (or the command it is given). Everything it starts is
# stopped on exit.
set -euo pipefail
cd "$(dirname "$0")/.."

XDG_RUNTIME_DIR=$(mktemp -d)
chmod 700 "$XDG_RUNTIME_DIR"
export XDG_RUNTIME_DIR
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  rm -rf "$XDG_RUNTIME_DIR"
}
trap cleanup EXIT

# The app and its tests keep their data and settings in throwaway folders, not the user's, and
# run with a throwaway HOME: nothing left in a developer's home (a PulseAudio cookie, a config)
# can stand in for a step the session or the app is missing. Cargo and rustup keep theirs.
export RUSTUP_HOME="${RUSTUP_HOME:-$HOME/.rustup}" CARGO_HOME="${CARGO_HOME:-$HOME/.cargo}"
export HOME="$XDG_RUNTIME_DIR/home"
# XDG_CONFIG_HOME is deliberately not $HOME/.config, as for some users: the app must find
# PulseAudio's cookie there by itself (confab_devices::pulse_cookie).
export XDG_DATA_HOME="$XDG_RUNTIME_DIR/data" XDG_CONFIG_HOME="$XDG_RUNTIME_DIR/config"
export XDG_CACHE_HOME="$XDG_RUNTIME_DIR/cache"
mkdir -p "$HOME" "$XDG_DATA_HOME" "$XDG_CONFIG_HOME" "$XDG_CACHE_HOME"

# PulseAudio: cpal sees the null sink and source as real devices that run in real time.
pulseaudio -n --daemonize=no --exit-idle-time=-1 --disable-shm=yes \
  --load=module-native-protocol-unix \
  --load="module-null-sink sink_name=confab_speaker sink_properties=device.description=Confab-Test-Speaker" \
  --load="module-null-source source_name=confab_mic description=Confab-Test-Microphone" \
  --load=module-always-sink >"$XDG_RUNTIME_DIR/pulse.log" 2>&1 &
pids+=($!)
for _ in $(seq 50); do pactl info >/dev/null 2>&1 && break; sleep 0.1; done
pactl info >/dev/null || { echo "PulseAudio did not start:"; cat "$XDG_RUNTIME_DIR/pulse.log"; exit 1; }
# Test binaries use cpal in-process and cannot set the environment before their threads
# start, as the app does: tell them where PulseAudio put its cookie.
pulse_cookie="$XDG_CONFIG_HOME/pulse/cookie"
[ -f "$pulse_cookie" ] || { echo "PulseAudio wrote no cookie at $pulse_cookie"; exit 1; }
# The app and tests use the fake test-pattern camera and tone microphone (there is no camera).
export CONFAB_FAKE_DEVICES=1
# GTK's accessibility bridge is not needed here, and its bus sometimes kept an app from exiting.
export NO_AT_BRIDGE=1

# gnome-keyring with a fresh random password (an empty one creates no login collection).
keyring_password=$(head -c 24 /dev/urandom | base64)
eval "$(printf '%s' "$keyring_password" | gnome-keyring-daemon --unlock --components=secrets | sed 's/^/export /')"
unset keyring_password
# Stop this session's daemon at the end, and only it: the newest gnome-keyring of the user may
# belong to another session running beside this one (found killing a parallel run's keyring).
for pid in $(pgrep -u "$(id -u)" gnome-keyring-d); do
  if tr '\0' '\n' <"/proc/$pid/environ" 2>/dev/null | grep -qxF "XDG_RUNTIME_DIR=$XDG_RUNTIME_DIR"; then
    pids+=("$pid")
  fi
done

# With arguments, run just that command in the session (one test file, a benchmark).
if [ $# -gt 0 ]; then
  export CONFAB_APP="${CONFAB_APP:-$PWD/target/debug/confab}"
  export CONFAB_COORDINATOR="${CONFAB_COORDINATOR:-$PWD/target/debug/confab-coordinator}"
  export CONFAB_BROADCAST="${CONFAB_BROADCAST:-$PWD/target/debug/confab-broadcast}"
  export CONFAB_CALL_PROBE="${CONFAB_CALL_PROBE:-$PWD/target/debug/confab-call-probe}"
  "$@"
  exit
fi

# Tests that need this session (PulseAudio, the keychain) are #[ignore]d for a plain
# `cargo test`; here they run too.
echo "== cargo test"
# (Not the Wayland portal's tests: test.sh runs them in the Wayland desktop they need.)
PULSE_COOKIE="$pulse_cookie" cargo test --workspace --locked -- --include-ignored --skip portal_session_
PULSE_COOKIE="$pulse_cookie" cargo test -p confab-logging --all-features --locked -- --include-ignored

# LiveKit's browser client (npm livekit-client) in headless Chromium, against the SFU in
# confab-coordinator, with the Rust participant confab-call-probe on the other side. It needs
# both binaries (test.sh's workspace build has them: this build is then a no-op, and covers a
# session run on its own). The test puts itself in a network namespace of its own.
echo "== interop: livekit-client in Chromium"
cargo build -p confab-coordinator -p confab-call-probe --locked
CONFAB_COORDINATOR="$PWD/target/debug/confab-coordinator" CONFAB_CALL_PROBE="$PWD/target/debug/confab-call-probe" \
  node --test --test-concurrency=1 tests/interop/*.test.mjs

# Node runs each file in its own process, one file at a time (the app instances share the
# session's keychain): the official JS client against confab-coordinator, and the end-to-end
# tests in the real window. Each test has at most 10 minutes: a window that hangs fails its
# test instead of holding the run until CI's limit.
echo "== official client and end-to-end"
CONFAB_APP="$PWD/target/debug/confab" CONFAB_COORDINATOR="$PWD/target/debug/confab-coordinator" \
  CONFAB_BROADCAST="$PWD/target/debug/confab-broadcast" \
  node --test --test-concurrency=1 --test-timeout=600000 tests/official-client/*.test.mjs tests/e2e/*.test.mjs
