#!/usr/bin/env bash
# Test media from Debian's opencv-doc package, extracted once into data/test-media/ (ignored by git) so the
# tests run offline afterwards: Megamind.avi (an animated clip that cuts between two faces), messi5.jpg (a
# small face). Needs apt's package lists; skipped quietly when the files are already there.
set -euo pipefail
cd "$(dirname "$0")/.."

target=data/test-media
files=(Megamind.avi messi5.jpg)
missing=0
for name in "${files[@]}"; do [ -f "$target/$name" ] || missing=1; done
[ "$missing" = 0 ] && exit 0

echo "==> fetching test media from Debian's opencv-doc package"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
(cd "$work" && apt-get download opencv-doc >/dev/null 2>&1) || {
  if [ "$(id -u)" = 0 ]; then SUDO=""; else SUDO="sudo"; fi
  $SUDO apt-get update -qq
  (cd "$work" && apt-get download opencv-doc >/dev/null)
}
dpkg -x "$work"/opencv-doc_*.deb "$work/x"
mkdir -p "$target"
for name in "${files[@]}"; do
  cp "$work/x/usr/share/doc/opencv-doc/examples/data/$name" "$target/$name"
done
