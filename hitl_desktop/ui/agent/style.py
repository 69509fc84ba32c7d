"""The agent window's style sheet, derived from the current (light or dark) palette."""

from __future__ import annotations

from PySide6.QtGui import QPalette
from PySide6.QtWidgets import QWidget


def is_dark(widget: QWidget) -> bool:
    return widget.palette().color(QPalette.ColorRole.Window).lightness() < 128


def agent_style(widget: QWidget) -> str:
    """Accents and chips on top of the platform style, for light and dark palettes."""
    dark = is_dark(widget)
    accent = "#4c8dff" if dark else "#2f6fde"
    card = "#23272e" if dark else "#ffffff"
    border = "#3a3f47" if dark else "#dde1e6"
    muted = "#9aa0a6" if dark else "#6b7280"
    confirm = "#2b3a55" if dark else "#eef4ff"
    reject = "#4a2f2a" if dark else "#fff3ed"
    warn = "#4a3f1a" if dark else "#fff6d6"
    return f"""
QLabel#mutedLabel, QLabel#emptyLabel {{ color: {muted}; }}
QLabel#emptyLabel {{ padding: 24px; }}
QLabel#sectionTitle {{ font-weight: 600; padding: 2px 0; }}
QLabel#viewerTitle {{ padding: 2px 0 6px 0; }}
QFrame#approvalCard {{ background: {card}; border: 1px solid {border}; border-radius: 8px; }}
QFrame#confirmPanel {{ background: {confirm}; border: 1px solid {accent}; border-radius: 6px; }}
QFrame#rejectPanel {{ background: {reject}; border: 1px solid #d9822b; border-radius: 6px; }}
QFrame#reloadBar {{ background: {warn}; border: 1px solid #d9b12b; border-radius: 6px; }}
QLabel#callPreview {{ font-family: monospace; }}
QLabel#formErrors {{ color: #d64545; }}
QPushButton#sendButton, QPushButton#approveButton, QPushButton#confirmApprove {{
    background: {accent}; color: white; border: none; border-radius: 5px;
    padding: 5px 16px; font-weight: 600; }}
QPushButton#sendButton:disabled {{ background: {border}; color: {muted}; }}
QPushButton#confirmReject {{ background: #d64545; color: white; border: none;
    border-radius: 5px; padding: 5px 14px; font-weight: 600; }}
QPushButton#confirmReject:disabled {{ background: {border}; color: {muted}; }}
QLabel#draftState {{ border-radius: 9px; padding: 2px 10px; font-weight: 600;
    background: {border}; color: {muted}; }}
QLabel#draftState[state="streaming"] {{ background: {confirm}; color: {accent}; }}
QLabel#draftState[state="completed"] {{ background: #dff3e6; color: #1e7a45; }}
QLabel#draftState[state="stale"] {{ background: {warn}; color: #9a6b00; }}
QLabel#draftState[state="failed"] {{ background: #fde2e2; color: #b42323; }}
QPlainTextEdit#draftEditor {{ border: 1px solid {border}; border-radius: 6px; padding: 6px; }}
QPlainTextEdit#draftEditor:focus {{ border: 1px solid {accent}; }}
QLabel#citations {{ color: {muted}; }}
QStatusBar QLabel#statusChip {{ padding: 0 8px; }}
QMainWindow::separator {{ width: 4px; height: 4px; }}
"""
