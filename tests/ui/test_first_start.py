"""The first start offers the setup wizard once; declining never nags again."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from PySide6.QtWidgets import QApplication, QMessageBox

from hitl_desktop.app.setup import needs_setup, offer_setup
from hitl_desktop.config import resolve_paths
from tests.ui.conftest import until


def _question() -> QMessageBox | None:
    for widget in QApplication.topLevelWidgets():
        if isinstance(widget, QMessageBox) and widget.isVisible():
            return widget
    return None


@pytest.mark.qt_log_ignore("This plugin does not support")  # offscreen dialogs
async def test_declining_the_first_start_question_saves_defaults(
    qtbot: object, tmp_path: Path
) -> None:
    paths = resolve_paths(tmp_path / "data", tmp_path / "config").ensure()
    assert needs_setup(paths)
    offer = asyncio.ensure_future(offer_setup(paths))
    await until(lambda: _question() is not None, what="first-start question")
    box = _question()
    assert box is not None and "hitl-desktop setup" in box.text()
    no = box.button(QMessageBox.StandardButton.No)
    assert no is not None
    no.click()
    await asyncio.wait_for(offer, 5)
    assert paths.settings_file.exists()
    assert not needs_setup(paths)  # asked once, not on every start
