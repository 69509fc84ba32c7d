"""Find files shipped with the app, whether run from a checkout, an installed
wheel or a PyInstaller bundle."""

from __future__ import annotations

from pathlib import Path

DATA_DIR = Path(__file__).resolve().parent / "data"


def data_path(*parts: str) -> Path:
    """A file under ``hitl_desktop/data`` (PyInstaller keeps the same layout)."""
    return DATA_DIR.joinpath(*parts)


def icon_path(size: int | None = None) -> Path:
    name = f"hitl-desktop-{size}.png" if size else "hitl-desktop.png"
    return data_path("icons", name)
