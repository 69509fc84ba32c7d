#!/usr/bin/env bash
# Prepares a fresh machine for HITL Desk: Debian libraries Qt needs (when
# missing and we are allowed to install), a Python >= 3.11 virtualenv in
# .venv, and the package with its extras. Safe to run again: it only does
# what is missing. Sourced by scripts/demo and scripts/test.
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
venv="${HITL_VENV:-$repo/.venv}"
# extras to install: dev (tests, linters) unless HITL_EXTRAS says otherwise; an
# empty HITL_EXTRAS (what scripts/demo sets) installs the app alone, which is faster
extras="${HITL_EXTRAS-dev}"

log() { printf '[bootstrap] %s\n' "$*" >&2; }

install_debian_libs() {
    command -v dpkg >/dev/null 2>&1 || return 0
    local wanted=(libegl1 libgl1 libxkbcommon0 libxkbcommon-x11-0 libfontconfig1
                  fonts-dejavu-core libdbus-1-3 libxcb-cursor0 libxcb-icccm4
                  libxcb-keysyms1 libxcb-image0 libxcb-render-util0 libxcb-shape0
                  libxcb-xinerama0 libxcb-randr0 libxcb-xkb1 xvfb)
    local missing=()
    for p in "${wanted[@]}"; do
        dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
    done
    [ ${#missing[@]} -eq 0 ] && return 0
    if [ "$(id -u)" -eq 0 ]; then
        log "installing Debian packages: ${missing[*]}"
        (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}") >&2 \
            || log "warning: could not install ${missing[*]}"
    elif command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
        log "installing Debian packages with sudo: ${missing[*]}"
        (sudo apt-get update -qq && sudo DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}") >&2 \
            || log "warning: could not install ${missing[*]}"
    else
        log "please install: sudo apt-get install ${missing[*]}"
    fi
}

find_python() {
    # Prefer 3.12+ (PySide6 6.12 is only safe there); 3.11 works with the 6.11 pin.
    local c
    for c in python3.13 python3.12; do
        if command -v "$c" >/dev/null 2>&1 && "$c" -c 'import sys' >/dev/null 2>&1; then
            command -v "$c"; return 0
        fi
    done
    if command -v pyenv >/dev/null 2>&1; then
        for c in "$(pyenv root)"/versions/3.1[2-9]*/bin/python3; do
            [ -x "$c" ] && { echo "$c"; return 0; }
        done
    fi
    for c in python3 python; do
        if command -v "$c" >/dev/null 2>&1 && "$c" -c 'import sys; sys.exit(sys.version_info < (3, 11))'; then
            command -v "$c"; return 0
        fi
    done
    log "error: HITL Desk needs Python 3.11 or newer"; return 1
}

install_debian_libs
stamp="$venv/.hitl-installed"
if [ ! -x "$venv/bin/python" ]; then
    py="$(find_python)"
    log "creating virtualenv $venv with $py"
    "$py" -m venv "$venv"
fi
# the stamp lists the extras installed, "base" for the app alone (an empty stamp
# predates that list: it always had dev)
have=""
if [ -f "$stamp" ]; then have="$(cat "$stamp")"; [ -n "$have" ] || have="dev"; fi
missing_extra=""
for e in ${extras//,/ }; do
    case ",$have," in *",$e,"*) ;; *) missing_extra=1 ;; esac
done
if [ ! -f "$stamp" ] || [ "$repo/pyproject.toml" -nt "$stamp" ] || [ -n "$missing_extra" ]; then
    # what was there stays (an updated pyproject must update every installed extra)
    all="$(printf '%s\n' base ${have//,/ } ${extras//,/ } | sort -u | paste -sd, -)"
    wanted="$(printf '%s\n' ${all//,/ } | grep -vx base | paste -sd, - || true)"
    spec="$repo"
    [ -z "$wanted" ] || spec="$repo[$wanted]"
    log "installing hitl-desktop${wanted:+[$wanted]} into $venv"
    "$venv/bin/python" -m pip install -q --upgrade pip >&2
    # setuptools' editable build prints a boxed "Editable installation ... be careful
    # with folders named like your package" notice even with -q, which a first-time user of
    # ./scripts/demo reads as an error (it is not one; nothing else is hidden)
    PYTHONWARNINGS="${PYTHONWARNINGS:+$PYTHONWARNINGS,}ignore:Editable installation" \
        "$venv/bin/python" -m pip install -q -e "$spec" >&2
    printf '%s' "$all" > "$stamp"
fi
