#!/usr/bin/env bash
# Builds the one-folder bundle with PyInstaller and packs it as a .deb:
#   /opt/hitl-desktop/            the bundle
#   /usr/bin/hitl-desktop         the command
#   /usr/share/applications/      Host, Agent, Customer, Setup + the hitl:// URL handler
#   /usr/share/icons/hicolor/     icons
# Output: packaging/dist/hitl-desktop_VERSION_ARCH.deb. Needs dpkg-deb.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
repo="$(cd "$here/.." && pwd)"
py="${PYTHON:-$repo/.venv/bin/python}"
build="$here/build"; dist="$here/dist"

if ! "$py" -c 'import PyInstaller' 2>/dev/null; then
    echo "[deb] installing PyInstaller" >&2
    "$py" -m pip install -q "$repo[packaging]" >&2
fi
version="$("$py" -c 'import hitl_desktop; print(hitl_desktop.__version__)')"
arch="$(dpkg --print-architecture)"

echo "[deb] building the bundle (PyInstaller)" >&2
"$py" -m PyInstaller --noconfirm --log-level WARN \
    --workpath "$build/pyinstaller" --distpath "$dist" "$here/hitl-desktop.spec" >&2

root="$build/deb-root"
rm -rf "$root"; mkdir -p "$root/DEBIAN" "$root/opt" "$root/usr/bin" "$root/usr/share/applications"
cp -a "$dist/hitl-desktop" "$root/opt/hitl-desktop"
ln -s /opt/hitl-desktop/hitl-desktop "$root/usr/bin/hitl-desktop"
cp "$repo"/resources/desktop/*.desktop "$root/usr/share/applications/"
for size in 16 24 32 48 64 128 256 512; do
    d="$root/usr/share/icons/hicolor/${size}x${size}/apps"; mkdir -p "$d"
    cp "$repo/hitl_desktop/data/icons/hitl-desktop-$size.png" "$d/hitl-desktop.png"
done
size_kb="$(du -sk "$root" | cut -f1)"
cat > "$root/DEBIAN/control" <<CONTROL
Package: hitl-desktop
Version: $version
Section: net
Priority: optional
Architecture: $arch
Installed-Size: $size_kb
Depends: libc6, libegl1, libgl1, libxkbcommon0, libxkbcommon-x11-0, libfontconfig1, libdbus-1-3, libxcb-cursor0, libxcb-icccm4, libxcb-keysyms1, libxcb-image0, libxcb-render-util0, libxcb-shape0, libxcb-xinerama0, libxcb-randr0, libxcb-xkb1, fonts-dejavu-core
Maintainer: HITL Desk developers <dev@hitldesk.invalid>
Homepage: https://hitldesk.invalid
Description: support desk where an AI co-pilot drafts and a human decides
 HITL Desk runs a host (relay, assistant engine, shop database, knowledge
 base), a customer chat window and an agent workspace with an approval queue.
 Works offline with an embedded assistant, or with the OpenAI Responses API.
CONTROL
cat > "$root/DEBIAN/postinst" <<'POSTINST'
#!/bin/sh
set -e
if command -v update-desktop-database >/dev/null 2>&1; then update-desktop-database -q /usr/share/applications || true; fi
if command -v gtk-update-icon-cache >/dev/null 2>&1; then gtk-update-icon-cache -q /usr/share/icons/hicolor || true; fi
exit 0
POSTINST
cp "$root/DEBIAN/postinst" "$root/DEBIAN/postrm"
chmod 0755 "$root/DEBIAN/postinst" "$root/DEBIAN/postrm"
deb="$dist/hitl-desktop_${version}_${arch}.deb"
dpkg-deb --root-owner-group -Zxz --build "$root" "$deb" >&2
echo "$deb"
