#!/usr/bin/env bash
# Every check Confab has: formatting, lints, unit and integration tests, and the end-to-end
# tests in a real window. Exits non-zero on any failure.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$HOME/.cargo/bin:$PATH"

bash scripts/setup.sh --test

echo "== rustfmt"
cargo fmt --all -- --check
echo "== clippy"
cargo clippy --workspace --all-targets --locked -- -D warnings
# The Sentry sink is behind a feature; lint and test it too.
cargo clippy -p confab-logging --all-targets --all-features --locked -- -D warnings
echo "== build"
cargo build --workspace --all-targets --locked

echo "== fuzz (a short run of each target)"
bash scripts/fuzz.sh 10

# A headless desktop session for the tests: an X display, a D-Bus session bus, and a session
# keyring; test-session.sh adds PulseAudio and an unlocked gnome-keyring inside it.
echo "== tests"
xvfb-run -a -s "-screen 0 1280x800x24" \
  dbus-run-session -- keyctl session - bash scripts/test-session.sh

# Screen sharing on Wayland: a headless wlroots desktop with the ScreenCast portal and
# PipeWire (scripts/wayland-session.sh; its portal declines, see
# crates/screen/tests/wayland_portal.rs for what can run on these machines and what cannot).
echo "== Wayland screen sharing"
portal_tests=$(cargo test -p confab-screen --test wayland_portal --locked --no-run 2>&1 |
  sed -n 's/.*Executable .*(\(.*\))$/\1/p')
[ -n "$portal_tests" ] || { echo "the wayland_portal test did not build"; exit 1; }
bash scripts/wayland-session.sh --refuse "$PWD/$portal_tests" --include-ignored portal_session_

# The release bundles (a release build: several minutes on a cold cache), their metadata, and
# the installed binary's smoke test.
echo "== package"
bash scripts/package.sh
bash scripts/check-package.sh
