#!/usr/bin/env bash
# Installs what Confab needs on Debian 12, only where it is missing, so a second run is quick.
#   scripts/setup.sh          build and run the app
#   scripts/setup.sh --test   also the test tools: Xvfb, WebKitWebDriver, tauri-driver,
#                             gnome-keyring, keyutils, PulseAudio, Node, Chromium and
#                             chromedriver, and what packaging needs
#   scripts/setup.sh --package  also Tauri's CLI (its bundler makes the .deb and .rpm)
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$HOME/.cargo/bin:$PATH"

with_test_tools=false
with_packaging=false
[ "${1:-}" = "--test" ] && with_test_tools=true && with_packaging=true
[ "${1:-}" = "--package" ] && with_packaging=true

packages=(
  # build: WebKitGTK for the window, ALSA/D-Bus for cpal and keyring, clang for bindgen,
  # nasm so the H.264 encoder builds with its assembly, WebRTC's audio processing (echo
  # cancellation, noise suppression, gain control) for calls, PipeWire for screen sharing on
  # Wayland (the portal's stream)
  libwebkit2gtk-4.1-dev libssl-dev pkg-config libasound2-dev libclang-dev libdbus-1-dev nasm
  libwebrtc-audio-processing-dev libpipewire-0.3-dev
  # run: media playback in the webview (plugins-bad: Opus in fMP4 HLS, through MSE)
  gstreamer1.0-plugins-base gstreamer1.0-plugins-good gstreamer1.0-plugins-bad gstreamer1.0-libav
)
if $with_test_tools; then
  packages+=(
    xvfb xauth webkit2gtk-driver dbus gnome-keyring keyutils libsecret-tools
    pulseaudio pulseaudio-utils
    # the interop test: LiveKit's browser client in headless Chromium, in a network namespace
    # of its own (unshare from util-linux, ip from iproute2)
    chromium chromium-driver iproute2
    # screen sharing on Wayland (scripts/wayland-session.sh): a headless wlroots compositor
    # with XWayland, the desktop portal and its wlroots backend, PipeWire and its session manager
    cage xwayland xdg-desktop-portal xdg-desktop-portal-wlr pipewire wireplumber
  )
fi
# No display (a server, CI): the run command opens the window on a virtual one.
if ! $with_test_tools && [ -z "${DISPLAY:-}" ] && [ -z "${WAYLAND_DISPLAY:-}" ]; then
  packages+=(xvfb xauth)
fi
command -v node >/dev/null 2>&1 || packages+=(nodejs npm)

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "setup: installing ${missing[*]}"
  sudo_cmd=()
  [ "$(id -u)" -ne 0 ] && sudo_cmd=(sudo)
  "${sudo_cmd[@]}" apt-get update -qq
  DEBIAN_FRONTEND=noninteractive "${sudo_cmd[@]}" apt-get install -y -qq --no-install-recommends \
    "${missing[@]}" >/dev/null
fi

if ! command -v cargo >/dev/null 2>&1; then
  echo "setup: cargo is missing: install Rust (rustup) first" >&2
  exit 1
fi
for tool in clippy fmt; do
  cargo "$tool" --version >/dev/null 2>&1 || {
    echo "setup: cargo $tool is missing: rustup component add ${tool/fmt/rustfmt}" >&2
    exit 1
  }
done

# Stream's official JS client, for the checks that run it against our coordinator, and
# LiveKit's browser client (livekit-client), which the interop test loads in Chromium against
# the embedded SFU. Each pinned by its package-lock.json; reinstalled only when it changes.
if $with_test_tools; then
  for checks in tests/official-client tests/interop; do
    if [ ! "$checks/node_modules/.package-lock.json" -nt "$checks/package-lock.json" ]; then
      echo "setup: installing the npm packages of $checks"
      npm ci --prefix "$checks" --no-audit --no-fund --loglevel=error
    fi
  done
fi

# The page's HLS player, hls.js, pinned by scripts/ui-deps/package-lock.json and copied into
# ui/vendor/ (not committed) before the app is built, which embeds ui/.
deps=scripts/ui-deps
if [ ! "$deps/node_modules/.package-lock.json" -nt "$deps/package-lock.json" ]; then
  echo "setup: installing the page's npm packages (hls.js)"
  npm ci --prefix "$deps" --no-audit --no-fund --loglevel=error
fi
mkdir -p ui/vendor
cmp -s "$deps/node_modules/hls.js/dist/hls.light.min.js" ui/vendor/hls.light.min.js ||
  cp "$deps/node_modules/hls.js/dist/hls.light.min.js" ui/vendor/hls.light.min.js

# Tauri's CLI from npm (it ships its prebuilt binary), pinned by scripts/tauri-cli/package-lock.json
# to the tauri crates' version.
cli=scripts/tauri-cli
if $with_packaging && [ ! "$cli/node_modules/.package-lock.json" -nt "$cli/package-lock.json" ]; then
  echo "setup: installing Tauri's CLI (npm @tauri-apps/cli)"
  npm ci --prefix "$cli" --no-audit --no-fund --loglevel=error
fi

if $with_test_tools && ! command -v tauri-driver >/dev/null 2>&1; then
  echo "setup: installing tauri-driver"
  cargo install tauri-driver --locked --version "^2" --quiet
fi
