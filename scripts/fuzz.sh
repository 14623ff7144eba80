#!/usr/bin/env bash
# Runs each fuzz target for a while (default 15 s each) from the committed seeds: the
# coordinator's (token and socket frame parsers) and the SFU's (signal and join request
# decoders).
#   scripts/fuzz.sh [seconds]
# cargo fuzz needs nightly flags; RUSTC_BOOTSTRAP lets the stable toolchain accept them.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
export PATH="$HOME/.cargo/bin:$PATH"
seconds=${1:-15}
command -v cargo-fuzz >/dev/null 2>&1 || cargo install cargo-fuzz --locked --quiet
# One build directory for both fuzz crates: the SFU's dependencies (str0m, aws-lc) build once.
export CARGO_TARGET_DIR="$root/target/fuzz"
# Each entry: the fuzz crate's directory (under crates/) and one of its targets.
for entry in coordinator/fuzz:token_decoder coordinator/fuzz:socket_frames sfu/fuzz:signal_messages; do
  dir="$root/crates/${entry%%:*}"
  target="${entry##*:}"
  cd "$dir"
  corpus=$(mktemp -d)
  echo "fuzz: $target for ${seconds}s"
  status=0
  RUSTC_BOOTSTRAP=1 cargo fuzz run "$target" --fuzz-dir . "$corpus" "seeds/$target" -- \
    -max_total_time="$seconds" -max_len=4096 -print_final_stats=1 >"$corpus.log" 2>&1 || status=$?
  grep -E "^(Done|==.*ERROR|SUMMARY|panicked|thread)" "$corpus.log" || true
  if [ "$status" -ne 0 ]; then
    tail -40 "$corpus.log"
    echo "fuzz: $target failed (inputs in crates/${entry%%:*}/artifacts/$target)"
    exit 1
  fi
  rm -rf "$corpus" "$corpus.log"
done
