#!/usr/bin/env bash
# Runs the benchmarks (release builds) and prints their figures.
#   scripts/bench.sh              all of them
#   scripts/bench.sh coordinator  the coordinator's sockets and REST read benchmarks
#   scripts/bench.sh client       the client's connect/recovery/memory benchmark
#   scripts/bench.sh logging      the cost of a filtered-out log call
#   scripts/bench.sh devices      the camera preview path
#   scripts/bench.sh app          the app's start-up time and memory (a real window under Xvfb)
#   scripts/bench.sh media        the host's H.264 encoder at 1280x720, 30 fps
#   scripts/bench.sh sfu          the SFU: join to first frame, latency, CPU per forwarded stream
#   scripts/bench.sh audio        call audio's capture-to-playout delay (no device buffers)
#                                 through the capture pipeline, the SFU and the jitter buffer
#   scripts/bench.sh livestream   viewers over WebRTC and over HLS side by side (two release
#                                 app windows): time to first frame, glass to glass; then the
#                                 SFU's CPU with one host and 50 WebRTC viewers (Rust, in-process)
#   scripts/bench.sh call         a meeting of two apps (then four with confab-call-probe):
#                                 glass-to-glass latency, join to first frame, CPU, memory
#   scripts/bench.sh share        screen sharing: capture and encode of a 1920x1080 window at
#                                 15 fps (time per frame, share of a core); then two release
#                                 app windows: capture to paint, and the sharer's CPU
#   scripts/bench.sh installed    the packaged binary's start-up time and memory beside the
#                                 debug build's (builds the package if it is not unpacked yet)
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$HOME/.cargo/bin:$PATH"
which=${1:-all}
if [ "$which" = installed ]; then
  bash scripts/setup.sh --test
  installed="$PWD/target/package-check/root/usr/bin/confab"
  [ -x "$installed" ] || { bash scripts/package.sh; bash scripts/check-package.sh; }
  cargo build --locked -p confab
  for app in "$installed" "$PWD/target/debug/confab"; do
    CONFAB_APP="$app" RUNS="${RUNS:-5}" BENCH_COMPOSITING_ON=0 xvfb-run -a -s "-screen 0 1280x800x24" \
      dbus-run-session -- keyctl session - bash scripts/test-session.sh node tests/e2e/bench-startup.mjs
  done
  exit
fi
cargo build --release --locked -p confab-coordinator --bin confab-coordinator
if [ "$which" = all ] || [ "$which" = coordinator ]; then
  cargo bench --locked -p confab-coordinator --bench sockets
  cargo bench --locked -p confab-coordinator --bench reads
fi
if [ "$which" = all ] || [ "$which" = client ]; then
  [ -d tests/official-client/node_modules ] || npm ci --prefix tests/official-client --no-audit --no-fund
  cargo bench --locked -p confab-client --bench connect
fi
if [ "$which" = all ] || [ "$which" = logging ]; then
  cargo bench --locked -p confab-logging --bench filtered
fi
if [ "$which" = all ] || [ "$which" = devices ]; then
  cargo bench --locked -p confab-devices --bench preview
fi
if [ "$which" = all ] || [ "$which" = sfu ]; then
  cargo bench --locked -p confab-sfu --bench forwarding
fi
if [ "$which" = all ] || [ "$which" = media ]; then
  cargo bench --locked -p confab-media --bench encode
fi
if [ "$which" = all ] || [ "$which" = audio ]; then
  cargo bench --locked -p confab-call --bench audio_path
fi
if [ "$which" = all ] || [ "$which" = share ]; then
  bash scripts/setup.sh --test
  xvfb-run -a -s "-screen 0 1920x1080x24" cargo bench --locked -p confab-screen --bench capture_encode
fi
if [ "$which" = all ] || [ "$which" = app ] || [ "$which" = livestream ] || [ "$which" = call ] || [ "$which" = share ]; then
  bash scripts/setup.sh --test
  cargo build --release --locked -p confab --features custom-protocol
fi
if [ "$which" = all ] || [ "$which" = app ]; then
  CONFAB_APP="$PWD/target/release/confab" xvfb-run -a -s "-screen 0 1280x800x24" \
    dbus-run-session -- keyctl session - bash scripts/test-session.sh node tests/e2e/bench-startup.mjs
fi
if [ "$which" = all ] || [ "$which" = livestream ]; then
  CONFAB_APP="$PWD/target/release/confab" xvfb-run -a -s "-screen 0 1280x800x24" \
    dbus-run-session -- keyctl session - bash scripts/test-session.sh node tests/e2e/bench-livestream.mjs
  cargo bench --locked -p confab-call-probe --bench livestream
fi
if [ "$which" = all ] || [ "$which" = call ]; then
  cargo build --release --locked -p confab-call-probe
  CONFAB_APP="$PWD/target/release/confab" CONFAB_COORDINATOR="$PWD/target/release/confab-coordinator" \
    CONFAB_CALL_PROBE="$PWD/target/release/confab-call-probe" xvfb-run -a -s "-screen 0 1280x800x24" \
    dbus-run-session -- keyctl session - bash scripts/test-session.sh node tests/e2e/bench-call.mjs
fi
if [ "$which" = all ] || [ "$which" = share ]; then
  cargo build --release --locked -p confab-screen --bin confab-pattern-window
  CONFAB_APP="$PWD/target/release/confab" CONFAB_COORDINATOR="$PWD/target/release/confab-coordinator" \
    CONFAB_PATTERN_WINDOW="$PWD/target/release/confab-pattern-window" xvfb-run -a -s "-screen 0 1280x800x24" \
    dbus-run-session -- keyctl session - bash scripts/test-session.sh node tests/e2e/bench-share.mjs
fi
