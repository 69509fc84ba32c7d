"""Package boundaries import-linter cannot express (it cannot name a subpackage of
an external package such as PySide6.QtWidgets)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PKG = Path(__file__).resolve().parents[2] / "hitl_desktop"
WIDGET_MODULES = ("PySide6.QtWidgets", "PySide6.QtGui")


def _imports(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text("utf-8"))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
    return names


@pytest.mark.parametrize("path", sorted((PKG / "client").glob("*.py")), ids=lambda p: p.name)
def test_client_library_never_imports_widgets(path: Path) -> None:
    bad = {m for m in _imports(path) if m.startswith(WIDGET_MODULES)}
    assert not bad, f"{path.name} imports {bad}: the client library must stay UI-free"


def test_boundary_check_sees_imports(tmp_path: Path) -> None:
    """The checker itself must catch a widget import, or the tests above prove nothing."""
    probe = tmp_path / "probe.py"
    probe.write_text("from PySide6.QtWidgets import QLabel\nimport json\n")
    assert "PySide6.QtWidgets" in _imports(probe)


def _calls(path: Path) -> set[str]:
    """Names of what a module calls (``QApplication(...)``, ``qasync.QEventLoop(...)``)."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text("utf-8"))):
        if isinstance(node, ast.Call):
            func = node.func
            if isinstance(func, ast.Name):
                found.add(func.id)
            elif isinstance(func, ast.Attribute):
                found.add(func.attr)
    return found


def test_one_qt_start_up_for_every_windowed_mode() -> None:
    """Only ``app/qt.py`` makes the QApplication and the qasync loop, so every mode
    gets the GUI-thread collector (a second start-up would silently miss it)."""
    makers = {"QApplication", "QEventLoop"}
    starters = sorted(
        str(p.relative_to(PKG)) for p in PKG.rglob("*.py") if _calls(p) & makers
    )
    assert starters == ["app/qt.py"]
