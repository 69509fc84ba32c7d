"""The agent window's style sheet, from the shared light/dark scheme in ``ui.theme``."""

from __future__ import annotations

from PySide6.QtWidgets import QWidget

from hitl_desktop.ui import theme


def is_dark(widget: QWidget | None = None) -> bool:
    """The system's scheme, not the widget's palette: our own style sheet sets the
    window background, which would otherwise feed back into the answer."""
    return theme.is_dark()


def agent_style(widget: QWidget) -> str:
    """Accents, cards and chips on top of the platform style, for light and dark palettes."""
    c = theme.colors()
    ok_bg = "#17351f" if c.dark else "#e3f5e8"
    return f"""
QMainWindow {{ background: {c.window}; }}
QDockWidget {{ font-weight: 600; }}
QDockWidget::title {{ background: {c.surface_alt}; padding: 5px 8px;
    border-bottom: 1px solid {c.border}; }}
QDockWidget > QWidget {{ font-weight: normal; }}
QListView#inboxList, QListWidget#articlesList, QTextBrowser#transcript,
QTextBrowser#articleBrowser, QTreeWidget#approvalHistory, QTableWidget#ordersTable {{
    background: {c.surface}; border: none; }}
QLabel#mutedLabel, QLabel#emptyLabel {{ color: {c.muted}; }}
QLabel#emptyLabel {{ padding: 24px; }}
QLabel#sectionTitle {{ font-weight: 600; padding: 2px 0; }}
QLabel#viewerTitle {{ padding: 2px 0 6px 0; }}
QLabel#typingLabel {{ color: {c.muted}; font-style: italic; padding: 2px 8px;
    background: {c.surface}; }}
QFrame#approvalCard {{ background: {c.surface}; border: 1px solid {c.border};
    border-left: 3px solid #d9822b; border-radius: 8px; }}
QFrame#approvalCard QLabel {{ background: transparent; }}
QFrame#confirmPanel {{ background: {c.info_bg}; border: 1px solid {c.accent};
    border-radius: 6px; }}
QFrame#rejectPanel {{ background: {c.warn_bg}; border: 1px solid #d9822b; border-radius: 6px; }}
QFrame#reloadBar {{ background: {c.warn_bg}; color: {c.warn_text}; border-radius: 6px; }}
QFrame#reloadBar QLabel {{ color: {c.warn_text}; }}
QLabel#callPreview {{ font-family: monospace; color: {c.text}; }}
QLabel#formErrors {{ color: {c.error_text}; }}
QLabel#provenance[flagged="true"], QLabel#draftClaims {{ color: {c.error_text}; }}
QLabel#actionSummary {{ font-weight: 600; }}
QPushButton {{ padding: 5px 12px; }}
QPushButton#sendButton, QPushButton#approveButton, QPushButton#confirmApprove {{
    background: {c.accent}; color: {c.accent_text}; border: none; border-radius: 6px;
    padding: 6px 18px; font-weight: 600; }}
QPushButton#sendButton:disabled, QPushButton#approveButton:disabled {{
    background: {c.border}; color: {c.muted}; }}
QPushButton#confirmReject {{ background: {c.error_text}; color: white; border: none;
    border-radius: 6px; padding: 6px 14px; font-weight: 600; }}
QPushButton#confirmReject:disabled {{ background: {c.border}; color: {c.muted}; }}
QLabel#draftState {{ border-radius: 10px; padding: 2px 10px; font-weight: 600;
    background: {c.border}; color: {c.muted}; }}
QLabel#draftState[state="streaming"] {{ background: {c.info_bg}; color: {c.info_text}; }}
QLabel#draftState[state="completed"] {{ background: {ok_bg}; color: {c.ok}; }}
QLabel#draftState[state="stale"] {{ background: {c.warn_bg}; color: {c.warn_text}; }}
QLabel#draftState[state="failed"] {{ background: {c.error_bg}; color: {c.error_text}; }}
QPlainTextEdit#draftEditor {{ background: {c.surface}; border: 1px solid {c.border};
    border-radius: 8px; padding: 6px; }}
QPlainTextEdit#draftEditor:focus {{ border: 1px solid {c.accent}; }}
QPlainTextEdit#draftEditor[streaming="true"] {{ border: 1px dashed {c.accent}; }}
QLabel#citations {{ color: {c.muted}; }}
QLabel#statusChip {{ padding: 0 10px; }}
QLabel#statusChip[conn="ok"] {{ color: #2e9d5b; }}
QLabel#statusChip[conn="busy"] {{ color: #d9822b; }}
QLabel#statusChip[conn="bad"] {{ color: #d64545; }}
QToolBar#toolbar_main {{ background: {c.surface_alt}; border-bottom: 1px solid {c.border};
    spacing: 6px; padding: 3px; }}
QLabel#sessionTitle {{ font-weight: 600; padding: 0 10px; }}
QMainWindow::separator {{ background: {c.border}; width: 1px; height: 1px; }}
QMainWindow::separator:hover {{ background: {c.accent}; }}
"""
