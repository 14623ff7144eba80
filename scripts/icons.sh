#!/usr/bin/env bash
# Regenerates the PNG icon sizes from icons/icon.svg. Needs rsvg-convert (Debian: librsvg2-bin).
set -euo pipefail
cd "$(dirname "$0")/.."
for size_name in "32 32x32" "128 128x128" "256 128x128@2x" "512 icon"; do
  set -- $size_name
  rsvg-convert --width "$1" --height "$1" --format png --output "icons/$2.png" icons/icon.svg
done
