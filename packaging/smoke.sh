#!/usr/bin/env bash
# Installer smoke test: build the bundle and the .deb, unpack the .deb into a
# temporary root (dpkg -x) and, from that unpacked copy, run
# `hitl-desktop --version` and `hitl-desktop demo --screenshot DIR --quit-after N`
# offscreen, checking the screenshots are not blank. Prints bundle and .deb sizes.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
repo="$(cd "$here/.." && pwd)"
[ -x "$repo/.venv/bin/python" ] || "$repo/scripts/bootstrap.sh"
py="$repo/.venv/bin/python"
quit_after="${SMOKE_QUIT_AFTER:-12}"

deb="$("$here/build_deb.sh" | tail -n 1)"
work="$(mktemp -d)"; trap 'rm -rf "$work"' EXIT
dpkg -x "$deb" "$work/root"
app="$work/root/opt/hitl-desktop/hitl-desktop"

fail() { echo "SMOKE FAIL: $*" >&2; exit 1; }
[ -L "$work/root/usr/bin/hitl-desktop" ] || fail "/usr/bin/hitl-desktop missing"
for e in host agent customer setup open; do
    [ -f "$work/root/usr/share/applications/hitl-desktop-$e.desktop" ] || fail "desktop entry $e missing"
done
grep -q 'x-scheme-handler/hitl' "$work/root/usr/share/applications/hitl-desktop-open.desktop" \
    || fail "no hitl:// URL handler"

version="$("$app" --version)"
echo "version: $version"
[[ "$version" == hitl-desktop\ * ]] || fail "unexpected --version output: $version"

shots="$work/shots"
HITL_DATA_DIR="$work/data" HITL_CONFIG_DIR="$work/config" HOME="$work/home" \
QT_QPA_PLATFORM=offscreen OPENAI_API_KEY="" \
    timeout 120 "$app" demo --screenshot "$shots" --quit-after "$quit_after" \
    || fail "demo exited with $?"

QT_QPA_PLATFORM=offscreen "$py" - "$shots" <<'PY'
import sys
from pathlib import Path
from PySide6.QtGui import QGuiApplication, QImage
app = QGuiApplication([])
shots = sorted(Path(sys.argv[1]).glob("*.png"))
if len(shots) < 2:
    sys.exit(f"SMOKE FAIL: expected a screenshot per window, got {[p.name for p in shots]}")
for path in shots:
    img = QImage(str(path))
    colours = {img.pixel(x, y) for x in range(0, img.width(), 7) for y in range(0, img.height(), 7)}
    if img.isNull() or len(colours) < 8:
        sys.exit(f"SMOKE FAIL: {path.name} looks blank ({len(colours)} colours)")
    print(f"screenshot ok: {path.name} {img.width()}x{img.height()} ({len(colours)} colours sampled)")
PY
echo "bundle size: $(du -sh "$work/root/opt/hitl-desktop" | cut -f1)"
echo "deb size: $(du -h "$deb" | cut -f1)  ($deb)"
echo "SMOKE OK"
