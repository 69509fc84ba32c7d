"""``hitl-desktop demo`` as a real subprocess, offscreen: it starts, shoots, and exits."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from PySide6.QtGui import QImage

REPO = Path(__file__).resolve().parents[2]


def _run_demo(tmp_path: Path, *extra: str, timeout: float = 90) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, QT_QPA_PLATFORM="offscreen", PYTHONPATH=str(REPO))
    return subprocess.run(
        [sys.executable, "-m", "hitl_desktop", "-v", "demo", "--data-dir", str(tmp_path / "data"),
         *extra],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=timeout, check=False,
    )


def _distinct_colours(path: Path) -> int:
    image = QImage(str(path))
    assert not image.isNull(), f"{path} is not an image"
    colours = set()
    step_x, step_y = max(1, image.width() // 60), max(1, image.height() // 60)
    for y in range(0, image.height(), step_y):
        for x in range(0, image.width(), step_x):
            colours.add(image.pixel(x, y))
    return len(colours)


def test_demo_screenshots_and_quits_by_itself(tmp_path: Path) -> None:
    shots = tmp_path / "shots"
    proc = _run_demo(tmp_path, "--screenshot", str(shots), "--quit-after", "6")
    assert proc.returncode == 0, proc.stderr[-3000:]
    customer = shots / "demo-customer.png"
    agent = shots / "demo-agent.png"
    assert customer.is_file(), proc.stderr[-3000:]
    image = QImage(str(customer))
    assert image.width() >= 400 and image.height() >= 600
    assert _distinct_colours(customer) > 8, "the customer window rendered something"
    if agent.exists():  # the agent window is part of this build
        assert _distinct_colours(agent) > 8
        assert QImage(str(agent)).width() >= 1000
    # each init step is logged, and the shutdown ran in order
    for step in ("starting the host", "opening the customer window", "demo: ready",
                 "shutting down", "demo: stopped"):
        assert step in proc.stderr, step
    # no wizard without a terminal user, no leftovers
    assert "setup wizard" not in proc.stderr


def test_demo_script_plays_the_flow_and_shoots_mid_flow(tmp_path: Path) -> None:
    shots = tmp_path / "shots"
    proc = _run_demo(tmp_path, "--script", "--screenshot", str(shots), "--quit-after", "20",
                     timeout=120)
    assert proc.returncode == 0, proc.stderr[-4000:]
    assert "demo: script finished" in proc.stderr
    assert "agent approved cancel_order {'order_id': 'ORD1001'}" in proc.stderr
    for name in ("demo-customer-midflow", "demo-agent-midflow", "demo-customer-final",
                 "demo-agent-final"):
        assert _distinct_colours(shots / f"{name}.png") > 8, name
