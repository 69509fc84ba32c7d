#!/usr/bin/env bash
# macOS recipe: builds "HITL Desk.app" (PyInstaller BUNDLE in the spec, which
# registers the hitl:// and hitls:// URL schemes) and wraps it in a .dmg.
# NOT TRIED on these (Linux-only) machines; see README "Packaging".
set -euo pipefail
here="$(cd "$(dirname "$0")/.." && pwd)"
repo="$(cd "$here/.." && pwd)"
python3 -m pip install "$repo[packaging]"
python3 -m PyInstaller --noconfirm --workpath "$here/build/pyinstaller" --distpath "$here/dist" \
    "$here/hitl-desktop.spec"
hdiutil create -volname "HITL Desk" -srcfolder "$here/dist/HITL Desk.app" -ov -format UDZO \
    "$here/dist/HITL-Desk.dmg"
echo "$here/dist/HITL-Desk.dmg"
