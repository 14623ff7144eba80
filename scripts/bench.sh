#!/usr/bin/env bash
# Runs the benchmarks (release builds) and prints their figures.
#   scripts/bench.sh              all of them
#   scripts/bench.sh coordinator  the coordinator's sockets benchmark
#   scripts/bench.sh client       the client's connect/recovery/memory benchmark
#   scripts/bench.sh logging      the cost of a filtered-out log call
#   scripts/bench.sh devices      the camera preview path
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$HOME/.cargo/bin:$PATH"
which=${1:-all}
cargo build --release --locked -p confab-coordinator --bin confab-coordinator
if [ "$which" = all ] || [ "$which" = coordinator ]; then
  cargo bench --locked -p confab-coordinator --bench sockets
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
