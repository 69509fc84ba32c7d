"""Shared look: colours derived from the system's light/dark palette, a few style helpers.

Small and stable on purpose (the customer and agent windows both use it): windows
ask :func:`colors` for the current scheme and re-style on ``PaletteChange``.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass

from PySide6.QtGui import QColor, QFont, QGuiApplication, QIcon, QPalette
from PySide6.QtWidgets import QApplication, QWidget

ACCENT_LIGHT = "#2563eb"
ACCENT_DARK = "#3b82f6"
FONT_FAMILIES = ["Inter", "Segoe UI", "Noto Sans", "Cantarell", "DejaVu Sans", "sans-serif"]


@dataclass(frozen=True, slots=True)
class Colors:
    """One colour scheme; every value is a CSS colour string."""

    dark: bool
    window: str
    surface: str  # cards, bubbles of the other side
    surface_alt: str  # headers, composer background
    border: str
    text: str
    muted: str
    accent: str
    accent_text: str
    mine: str  # our own chat bubbles
    mine_text: str
    ok: str
    warn_bg: str
    warn_text: str
    error_bg: str
    error_text: str
    info_bg: str
    info_text: str
    highlight: str  # search hits, cited passages


def is_dark(palette: QPalette | None = None) -> bool:
    """Whether the system (or the given palette) is in dark mode."""
    hints = QGuiApplication.styleHints() if QGuiApplication.instance() else None
    if palette is None and hints is not None:
        from PySide6.QtCore import Qt

        scheme = hints.colorScheme()
        if scheme == Qt.ColorScheme.Dark:
            return True
        if scheme == Qt.ColorScheme.Light:
            return False
    pal = palette or QGuiApplication.palette()
    return pal.color(QPalette.ColorRole.Window).lightness() < 128


def colors(palette: QPalette | None = None) -> Colors:
    """The scheme matching the current palette (light or dark)."""
    return colors_for(dark=is_dark(palette))


def colors_for(*, dark: bool) -> Colors:
    """The dark or the light scheme."""
    if dark:
        return Colors(
            dark=True, window="#111418", surface="#1d2228", surface_alt="#171b20",
            border="#2c333b", text="#e6e9ed", muted="#8b949e", accent=ACCENT_DARK,
            accent_text="#ffffff", mine=ACCENT_DARK, mine_text="#ffffff", ok="#3fb950",
            warn_bg="#3b2f12", warn_text="#f2cc60", error_bg="#3d1618", error_text="#ff7b72",
            info_bg="#132339", info_text="#79c0ff", highlight="#5a4a00",
        )
    return Colors(
        dark=False, window="#f4f6f9", surface="#ffffff", surface_alt="#fbfcfd",
        border="#dde2e8", text="#1b1f24", muted="#66707a", accent=ACCENT_LIGHT,
        accent_text="#ffffff", mine=ACCENT_LIGHT, mine_text="#ffffff", ok="#1a7f37",
        warn_bg="#fff4d6", warn_text="#7a5200", error_bg="#ffe3e0", error_text="#a4161a",
        info_bg="#e6f0ff", info_text="#1d4ed8", highlight="#fff1a8",
    )


def palette_for(c: Colors) -> QPalette:
    """A full Qt palette from a scheme (for desktops that do not report dark mode)."""
    pal = QPalette()
    role = QPalette.ColorRole
    for r, value in (
        (role.Window, c.window), (role.WindowText, c.text), (role.Base, c.surface),
        (role.AlternateBase, c.surface_alt), (role.Text, c.text), (role.Button, c.surface),
        (role.ButtonText, c.text), (role.ToolTipBase, c.surface), (role.ToolTipText, c.text),
        (role.PlaceholderText, c.muted), (role.Highlight, c.accent),
        (role.HighlightedText, c.accent_text), (role.Link, c.accent), (role.Mid, c.border),
        (role.Midlight, c.surface_alt), (role.Dark, c.border), (role.Light, c.surface),
    ):
        pal.setColor(r, QColor(value))
    for r in (role.Text, role.WindowText, role.ButtonText):
        pal.setColor(QPalette.ColorGroup.Disabled, r, QColor(c.muted))
    return pal


def apply_app_style(app: QApplication) -> None:
    """Fusion style + a readable UI font: consistent across Linux, Windows and macOS.

    ``HITL_THEME=dark`` (or ``light``) overrides the system's scheme, for desktops
    that do not report one (and for screenshots); the default follows the system.
    """
    app.setStyle("Fusion")
    choice = os.environ.get("HITL_THEME", "").strip().lower()
    if choice in ("dark", "light"):
        app.setPalette(palette_for(colors_for(dark=choice == "dark")))
    font = QFont()
    font.setFamilies(FONT_FAMILIES)
    font.setPointSizeF(max(app.font().pointSizeF(), 10.0))
    app.setFont(font)
    app.setWindowIcon(app_icon())


def app_icon() -> QIcon:
    """The app's icon at every size we ship (window title bars, task bars, docks)."""
    from hitl_desktop.resources import icon_path

    icon = QIcon()
    for size in (16, 24, 32, 48, 64, 128, 256):
        icon.addFile(str(icon_path(size)))
    return icon


def button_css(c: Colors, *, primary: bool = True) -> str:
    """A flat rounded push button (primary = accent filled)."""
    if primary:
        return (
            f"QPushButton{{background:{c.accent};color:{c.accent_text};border:none;"
            f"border-radius:8px;padding:7px 16px;font-weight:600;}}"
            f"QPushButton:hover{{background:{QColor(c.accent).lighter(112).name()};}}"
            f"QPushButton:disabled{{background:{c.border};color:{c.muted};}}"
        )
    return (
        f"QPushButton{{background:transparent;color:{c.text};border:1px solid {c.border};"
        f"border-radius:8px;padding:6px 14px;}}"
        f"QPushButton:hover{{background:{c.surface_alt};}}"
    )


def banner_colors(c: Colors, kind: str) -> tuple[str, str]:
    """(background, text) of a status banner: kind is warn, error, info or ok."""
    return {
        "warn": (c.warn_bg, c.warn_text),
        "error": (c.error_bg, c.error_text),
        "info": (c.info_bg, c.info_text),
        "ok": (c.info_bg, c.ok),
    }.get(kind, (c.info_bg, c.info_text))


def banner_css(c: Colors, kind: str) -> str:
    """Style for a one-line status banner: kind is warn, error, info or ok."""
    bg, fg = banner_colors(c, kind)
    return f"background:{bg};color:{fg};border:none;border-radius:0;padding:6px 12px;"


def format_time(ts: float, now: float | None = None) -> str:
    """``14:03`` today, ``Mon 14:03`` this week, else ``12 Mar 14:03``."""
    now = time.time() if now is None else now
    t = time.localtime(ts)
    n = time.localtime(now)
    if (t.tm_year, t.tm_yday) == (n.tm_year, n.tm_yday):
        return time.strftime("%H:%M", t)
    if 0 <= now - ts < 6 * 86400:
        return time.strftime("%a %H:%M", t)
    return time.strftime("%d %b %H:%M", t)


def initials(name: str) -> str:
    parts = [p for p in name.replace("_", " ").split() if p]
    if not parts:
        return "?"
    if len(parts) == 1:
        return parts[0][:2].upper()
    return (parts[0][0] + parts[-1][0]).upper()


def set_object_style(widget: QWidget, name: str, css: str) -> None:
    """Give ``widget`` an object name and a style scoped to it (no style leaking to children)."""
    widget.setObjectName(name)
    widget.setStyleSheet(f"#{name}{{{css}}}")
