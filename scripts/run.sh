#!/usr/bin/env bash
# Builds Confab and opens its window in local mode (the embedded coordinator).
# With no display (a server or CI) it opens the window on a virtual X display instead.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$HOME/.cargo/bin:$PATH"

bash scripts/setup.sh
# The same feature set as the test build, so running and testing share one set of artifacts.
cargo build --workspace --locked

if [ -n "${DISPLAY:-}" ] || [ -n "${WAYLAND_DISPLAY:-}" ]; then
  exec target/debug/confab "$@"
fi
echo "run: no display found; opening Confab on a virtual X display (xvfb-run)"
exec xvfb-run -a -s "-screen 0 1280x800x24" target/debug/confab "$@"
