#!/usr/bin/env bash
# Screenshots of the agent window in the states issue 13 asks to see, at a small
# laptop screen (1366x768) and a full-HD one (1920x1080), each under its own Xvfb
# so the window sizes itself to that screen as on a first start.
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
py="${PYTHON:-$repo/.venv/bin/python}"
out="${1:-$repo/docs/screenshots}"
for size in 1366x768 1920x1080; do
    for state in midflow error long-approval closed; do
        QT_QPA_PLATFORM=xcb PYTHONPATH="$repo" xvfb-run -a -s "-screen 0 ${size}x24" \
            "$py" "$repo/docs/tools/agent_window_preview.py" --state "$state" \
            --screenshot "$out/agent-$state-$size.png"
    done
done
