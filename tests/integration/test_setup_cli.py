"""``hitl-desktop setup --offline``: a real non-interactive command (issue 13, item 3).

Run as a subprocess with no display at all: it must not open (or even load) a
window toolkit, must print its progress, build the index, save the offline
engine and exit 0 within seconds.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

SCRIPT = (
    "import sys\n"
    "from hitl_desktop.cli import main\n"
    "rc = main(sys.argv[1:])\n"
    "print('qt loaded' if 'PySide6.QtWidgets' in sys.modules else 'no qt', flush=True)\n"
    "sys.exit(rc)\n"
)


def clean_env() -> dict[str, str]:
    """No display, no key, and the paths from --data-dir only (not the test's env)."""
    drop = {"DISPLAY", "WAYLAND_DISPLAY", "QT_QPA_PLATFORM", "OPENAI_API_KEY",
            "HITL_DATA_DIR", "HITL_CONFIG_DIR"}
    return {k: v for k, v in os.environ.items() if k not in drop}


def test_setup_offline_builds_the_index_and_exits_without_a_display(tmp_path: Path) -> None:
    env = clean_env()
    data = tmp_path / "data"
    started = time.monotonic()
    proc = subprocess.run([sys.executable, "-c", SCRIPT, "setup", "--offline", "--data-dir",
                           str(data)], env=env, capture_output=True, text=True, timeout=120,
                          check=False, stdin=subprocess.DEVNULL)
    elapsed = time.monotonic() - started
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert lines[0].startswith("[setup] indexing ") and "articles from" in lines[0]
    assert any(line.startswith("[setup] indexed ") for line in lines)
    assert any("start the host with:" in line and line.rstrip().endswith(" host")
               for line in lines)
    assert lines[-1] == "no qt"
    assert (data / "knowledge_index.sqlite3").exists()
    settings = json.loads((data / "config" / "settings.json").read_text("utf-8"))
    assert settings["provider"] == "offline"
    assert elapsed < 60


def test_setup_offline_with_an_empty_folder_says_so(tmp_path: Path) -> None:
    data = tmp_path / "data"
    (data / "config").mkdir(parents=True)
    empty = tmp_path / "empty"
    empty.mkdir()
    (data / "config" / "settings.json").write_text(json.dumps({"knowledge_dir": str(empty)}))
    env = clean_env()
    proc = subprocess.run([sys.executable, "-m", "hitl_desktop", "setup", "--offline",
                           "--data-dir", str(data)], env=env, capture_output=True, text=True,
                          check=False, timeout=120, stdin=subprocess.DEVNULL)
    assert proc.returncode == 1
    assert "no articles found" in proc.stdout
