#!/usr/bin/env bash
# A headless Wayland desktop for testing screen sharing through the desktop portal:
#   cage (a wlroots compositor) on its headless backend, with XWayland, showing the
#   confab-pattern-window (an X client) full screen; PipeWire and WirePlumber;
#   xdg-desktop-portal-wlr (screen casts of cage's output) and xdg-desktop-portal in front.
# Then runs the given command in it, with WAYLAND_DISPLAY set and no DISPLAY.
#
#   scripts/wayland-session.sh [--refuse] COMMAND...
#
# --refuse: the portal's source chooser declines every request (as a user pressing Cancel).
# wlroots compositors do not run as root: run as root, the session runs as `nobody` (a program
# given by its path is copied where it can run it; the session runs from /). Uses cage, xwayland, pipewire, wireplumber,
# xdg-desktop-portal and xdg-desktop-portal-wlr (scripts/setup.sh --test installs them).
set -euo pipefail

refuse=false
if [ "${1:-}" = "--refuse" ]; then
  refuse=true
  shift
fi
[ $# -gt 0 ] || { echo "usage: $0 [--refuse] COMMAND..." >&2; exit 2; }
root="$(cd "$(dirname "$0")/.." && pwd)"
pattern_window="${CONFAB_PATTERN_WINDOW:-$root/target/debug/confab-pattern-window}"
[ -x "$pattern_window" ] || { echo "no $pattern_window: cargo build -p confab-screen" >&2; exit 1; }

if [ "${CONFAB_WAYLAND_INNER:-}" != 1 ]; then
  session_dir=$(mktemp -d)
  trap 'rm -rf "$session_dir"' EXIT
  chmod 755 "$session_dir"
  # What the session runs, in a place its user can read.
  cp "$0" "$session_dir/wayland-session.sh"
  cp "$pattern_window" "$session_dir/confab-pattern-window"
  # A program given by its path is copied too: the checkout may be in a home `nobody` cannot
  # enter.
  command=("$@")
  if [ -f "$1" ]; then
    cp "$1" "$session_dir/$(basename "$1")"
    command[0]="$session_dir/$(basename "$1")"
  fi
  mkdir -m 700 "$session_dir/runtime"
  mkdir -p "$session_dir/home/.config/xdg-desktop-portal-wlr"
  if $refuse; then
    chooser='chooser_type=simple
chooser_cmd=false'
  else
    chooser='chooser_type=none
output_name=HEADLESS-1'
  fi
  printf '[screencast]\n%s\nmax_fps=30\n' "$chooser" \
    >"$session_dir/home/.config/xdg-desktop-portal-wlr/config"
  as_user=()
  if [ "$(id -u)" -eq 0 ]; then
    chown -R nobody:nogroup "$session_dir/runtime" "$session_dir/home"
    as_user=(setpriv --reuid=nobody --regid=nogroup --clear-groups --reset-env)
  fi
  cd /
  "${as_user[@]}" env -i PATH=/usr/local/bin:/usr/bin:/bin \
    HOME="$session_dir/home" XDG_RUNTIME_DIR="$session_dir/runtime" \
    XDG_CONFIG_HOME="$session_dir/home/.config" \
    CONFAB_PATTERN_WINDOW="$session_dir/confab-pattern-window" CONFAB_WAYLAND_INNER=1 \
    RUST_BACKTRACE="${RUST_BACKTRACE:-1}" ${RUST_LOG:+RUST_LOG="$RUST_LOG"} \
    dbus-run-session -- bash "$session_dir/wayland-session.sh" "${command[@]}"
  exit
fi

# Inside the session, as its user.
export XDG_CURRENT_DESKTOP=sway XDG_SESSION_TYPE=wayland
log="$XDG_RUNTIME_DIR/log"
mkdir -p "$log"
pids=()
cleanup() {
  for ((i = ${#pids[@]} - 1; i >= 0; i--)); do kill "${pids[i]}" 2>/dev/null || true; done
  wait 2>/dev/null || true
}
trap cleanup EXIT
fail() {
  echo "wayland-session: $1" >&2
  for f in "$log"/*; do echo "--- $f"; tail -20 "$f"; done >&2
  exit 1
}

pipewire >"$log/pipewire" 2>&1 &
pids+=($!)
for _ in $(seq 50); do [ -S "$XDG_RUNTIME_DIR/pipewire-0" ] && break; sleep 0.1; done
[ -S "$XDG_RUNTIME_DIR/pipewire-0" ] || fail "PipeWire did not start"
wireplumber >"$log/wireplumber" 2>&1 &
pids+=($!)

WLR_BACKENDS=headless WLR_LIBINPUT_NO_DEVICES=1 WLR_RENDERER=pixman \
  cage -d -- "$CONFAB_PATTERN_WINDOW" --title "Confab pattern on Wayland" --size 1280x720 \
  >"$log/cage" 2>&1 &
pids+=($!)
for _ in $(seq 100); do
  [ -S "$XDG_RUNTIME_DIR/wayland-0" ] && grep -q '^window ' "$log/cage" && break
  sleep 0.1
done
grep -q '^window ' "$log/cage" || fail "cage did not show the pattern window"
export WAYLAND_DISPLAY=wayland-0

# Services D-Bus starts on demand get this session's desktop too.
dbus-update-activation-environment WAYLAND_DISPLAY XDG_CURRENT_DESKTOP XDG_SESSION_TYPE
owned() { gdbus call --session --dest org.freedesktop.DBus --object-path /org/freedesktop/DBus \
  --method org.freedesktop.DBus.NameHasOwner "$1" 2>/dev/null | grep -q true; }
/usr/libexec/xdg-desktop-portal-wlr -l DEBUG >"$log/xdpw" 2>&1 &
pids+=($!)
for _ in $(seq 100); do owned org.freedesktop.impl.portal.desktop.wlr && break; sleep 0.1; done
owned org.freedesktop.impl.portal.desktop.wlr || fail "xdg-desktop-portal-wlr did not start"
/usr/libexec/xdg-desktop-portal -v >"$log/xdp" 2>&1 &
pids+=($!)
for _ in $(seq 100); do owned org.freedesktop.portal.Desktop && break; sleep 0.1; done
gdbus introspect --session --dest org.freedesktop.portal.Desktop \
  --object-path /org/freedesktop/portal/desktop | grep -q org.freedesktop.portal.ScreenCast ||
  fail "the portal offers no ScreenCast"

unset DISPLAY
status=0
"$@" || status=$?
[ "$status" -eq 0 ] || fail "the command failed ($status)"
