#!/usr/bin/env bash
# Builds Confab's release bundles with Tauri's bundler: a .deb and an .rpm (no AppImage: its
# tools are downloaded at build time), then prints their sizes and the installed size.
#   scripts/package.sh     bundles in target/release/bundle/{deb,rpm}/
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$HOME/.cargo/bin:$PATH"

bash scripts/setup.sh --package

started=$(date +%s)
# The CLI builds the app in release with the UI embedded (custom-protocol), then bundles it.
# --ci: no prompts. The lock file pins the CLI to the tauri crates' version.
npx --prefix scripts/tauri-cli --no-install tauri build --ci --bundles deb,rpm -- --locked
echo "package: built in $(( $(date +%s) - started )) s"

version=$(sed -n 's/^  "version": "\(.*\)",$/\1/p' tauri.conf.json)
deb=$(ls -t target/release/bundle/deb/Confab_"${version}"_*.deb | head -1)
rpm=$(ls -t target/release/bundle/rpm/Confab-"${version}"-*.rpm | head -1)
mib() { awk -v b="$1" 'BEGIN { printf "%.1f MiB", b / 1048576 }'; }
echo "package: $deb $(mib "$(stat -c %s "$deb")")"
echo "package: $rpm $(mib "$(stat -c %s "$rpm")")"
# Installed-Size is in KiB.
echo "package: installed size $(mib "$(( $(dpkg-deb -f "$deb" Installed-Size) * 1024 ))")"
echo "package: binary $(mib "$(stat -c %s target/release/confab)")"
