"""Desktop notifications (issue 16): the tray icon, its messages, the optional sound.

:class:`client.desk.Notifier` decides what deserves a notification (window not
focused; a session you hold or nobody holds; a new approval); this only shows it.
Clicking a message brings the window up on that conversation.
"""

from __future__ import annotations

import logging

from PySide6.QtCore import QObject
from PySide6.QtWidgets import QApplication, QMainWindow, QSystemTrayIcon

from hitl_desktop.client.desk import Notification, Notifier
from hitl_desktop.ui.theme import app_icon

log = logging.getLogger(__name__)
MESSAGE_MS = 6000


class TrayNotifier(QObject):
    """One tray icon per agent window: tooltip with the unread count, messages."""

    def __init__(self, notifier: Notifier, window: QMainWindow) -> None:
        super().__init__(window)
        self.notifier = notifier
        self.window = window
        self.tray = QSystemTrayIcon(app_icon(), window)
        self.tray.setObjectName("deskTray")
        self.available = QSystemTrayIcon.isSystemTrayAvailable()
        self.shown: list[tuple[str, str]] = []  # what was handed to the tray (newest last)
        self.beeps = 0
        self._last: Notification | None = None
        if self.available:
            self.tray.show()
        self.tray.messageClicked.connect(self._open_last)
        self.tray.activated.connect(lambda _reason: self._raise())
        notifier.notify.connect(self.show_notification)
        notifier.unread_changed.connect(self.set_unread)
        self.set_unread(notifier.unread)

    def tooltip(self) -> str:
        return self.tray.toolTip()

    def set_unread(self, unread: int) -> None:
        self.tray.setToolTip(f"HITL Desk — {unread} unread" if unread else "HITL Desk")

    def show_notification(self, note: Notification) -> None:
        self._last = note
        self.shown.append((note.title, note.body))
        del self.shown[:-50]
        icon = (QSystemTrayIcon.MessageIcon.Warning if note.kind == "approval"
                else QSystemTrayIcon.MessageIcon.Information)
        self.tray.showMessage(note.title, note.body or " ", icon, MESSAGE_MS)
        if self.notifier.preferences.get("notify/sound"):
            self.beeps += 1
            QApplication.beep()
        log.info("notification: %s", note.title)

    def _raise(self) -> None:
        self.window.showNormal()
        self.window.raise_()
        self.window.activateWindow()

    def _open_last(self) -> None:
        self._raise()
        if self._last is not None:
            self.notifier.workspace.select_session(self._last.session_id)

    def hide(self) -> None:
        self.tray.hide()
