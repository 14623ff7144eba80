#!/usr/bin/env bash
# Checks the .deb that scripts/package.sh built: its metadata (dependencies, desktop entry,
# icons, the confab:// scheme), that apt can satisfy it here, then unpacks it and runs the
# installed binary's smoke test in a real window (tests/e2e/installed-smoke.mjs).
set -euo pipefail
cd "$(dirname "$0")/.."

version=$(sed -n 's/^  "version": "\(.*\)",$/\1/p' tauri.conf.json)
deb=$(ls -t target/release/bundle/deb/Confab_"${version}"_*.deb | head -1)
rpm=$(ls -t target/release/bundle/rpm/Confab-"${version}"-*.rpm | head -1)
fail() { echo "check-package: $*" >&2; exit 1; }

echo "== package metadata ($deb)"
depends=$(dpkg-deb -f "$deb" Depends)
for dep in libwebkit2gtk-4.1-0 libgtk-3-0 libasound2 libssl3 libdbus-1-3 \
  libwebrtc-audio-processing1 libpipewire-0.3-0 \
  gstreamer1.0-plugins-base gstreamer1.0-plugins-good gstreamer1.0-plugins-bad gstreamer1.0-libav; do
  grep -qw -- "$dep" <<<"$depends" || fail "Depends lacks $dep: $depends"
done
contents=$(dpkg-deb -c "$deb")
for file in usr/bin/confab usr/share/applications/Confab.desktop \
  usr/share/icons/hicolor/32x32/apps/confab.png usr/share/icons/hicolor/128x128/apps/confab.png; do
  grep -Eq " (\./)?$file\$" <<<"$contents" || fail "the package lacks /$file"
done
root=target/package-check/root
rm -rf "$root" && mkdir -p "$root"
dpkg-deb -x "$deb" "$root"
desktop="$root/usr/share/applications/Confab.desktop"
for line in 'Exec=confab %u' 'Icon=confab' 'MimeType=x-scheme-handler/confab;' 'Categories=Network;VideoConference;AudioVideo;'; do
  grep -qxF "$line" "$desktop" || fail "the desktop entry lacks '$line'"
done
if command -v desktop-file-validate >/dev/null 2>&1; then desktop-file-validate "$desktop"; fi
# The .rpm: present and an RPM (its lead starts with ed ab ee db).
[ "$(head -c 4 "$rpm" | od -An -tx1 | tr -d ' \n')" = edabeedb ] || fail "$rpm is not an RPM"
# Every dependency resolves on this system (a simulation: nothing is installed).
apt-get install --simulate -qq "./$deb" >/dev/null || fail "apt cannot satisfy $deb's dependencies"
echo "package metadata: ok (Depends: $depends)"

echo "== installed binary smoke test"
CONFAB_APP="$PWD/$root/usr/bin/confab" xvfb-run -a -s "-screen 0 1280x800x24" \
  dbus-run-session -- keyctl session - \
  bash scripts/test-session.sh node --test tests/e2e/installed-smoke.mjs
