"""The join dialog of the customer and agent windows: pick a host found on the LAN,
or paste an invite link (checked as you type, with the reason shown inline).

API:
- ``JoinDialog(role)``: a QDialog emitting ``link_chosen(str)`` when the user joins;
  show it with ``open()``/``show()`` from a running qasync loop (LAN discovery runs
  on that loop).
- ``await choose_link(role)``: the same, as a coroutine, on a running loop (what
  ``app.customer``/``app.agent`` await inside the one Qt start-up, ``app.qt.run_qt``).
"""

from __future__ import annotations

import asyncio
import logging
from typing import Literal

from PySide6.QtCore import Qt, QTimer, Signal
from PySide6.QtGui import QGuiApplication
from PySide6.QtWidgets import (
    QDialog,
    QDialogButtonBox,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QListWidget,
    QListWidgetItem,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from hitl_desktop.client.discovery import DiscoveredHost, HostBrowser
from hitl_desktop.core.links import InvalidLink, InviteLink

log = logging.getLogger(__name__)

Role = Literal["customer", "agent"]


#: after this long without a host, "Searching…" says what to do instead
SEARCH_PATIENCE_MS = 4000


def _a(word: str) -> str:
    """``word`` with its indefinite article: "an agent", "a customer"."""
    return f"{'an' if word[:1].lower() in 'aeiou' else 'a'} {word}"


class JoinDialog(QDialog):
    """Discovered hosts next to a validated "paste a link" field."""

    link_chosen = Signal(str)

    def __init__(self, role: str, parent: QWidget | None = None, *,
                 discover: bool = True, browser: HostBrowser | None = None) -> None:
        super().__init__(parent)
        self.role: Role = "agent" if role == "agent" else "customer"
        self.setWindowTitle("Join a support desk" if self.role == "agent" else "Start a chat")
        self.setMinimumWidth(520)
        self.chosen: InviteLink | None = None

        intro = QLabel(
            "Paste the agent link your host shows, or pick a host found on this network."
            if self.role == "agent" else
            "Paste the chat link you received, or pick a support desk on this network."
        )
        intro.setWordWrap(True)

        self.hosts = QListWidget()
        self.hosts.setMinimumHeight(110)
        self.hosts.itemActivated.connect(self._pick)
        self.hosts.itemClicked.connect(self._pick)
        self.discovery_status = QLabel("Searching the local network…")
        self.discovery_status.setWordWrap(True)
        self.discovery_status.setStyleSheet("color: palette(placeholder-text);")

        self.link = QLineEdit()
        self.link.setPlaceholderText(f"hitl://HOST:PORT/{self.role}#TOKEN")
        self.link.setClearButtonEnabled(True)
        self.link.textChanged.connect(self._validate)
        self.link.returnPressed.connect(self._join)
        paste = QPushButton("Paste")
        paste.clicked.connect(self._paste)
        self.error = QLabel("")
        self.error.setWordWrap(True)
        self.error.setStyleSheet("color: #b3261e;")

        self.buttons = QDialogButtonBox(
            QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel
        )
        self.join_button = self.buttons.button(QDialogButtonBox.StandardButton.Ok)
        self.join_button.setText("Join")
        self.join_button.setEnabled(False)
        self.buttons.accepted.connect(self._join)
        self.buttons.rejected.connect(self.reject)

        row = QHBoxLayout()
        row.addWidget(self.link, 1)
        row.addWidget(paste)
        lay = QVBoxLayout(self)
        lay.addWidget(intro)
        lay.addWidget(QLabel("<b>Hosts on this network</b>"))
        lay.addWidget(self.hosts)
        lay.addWidget(self.discovery_status)
        lay.addSpacing(6)
        lay.addWidget(QLabel("<b>Invite link</b>"))
        lay.addLayout(row)
        lay.addWidget(self.error)
        lay.addWidget(self.buttons)
        # the keyboard starts in the link (Ctrl+V, Enter joins), not in the list of
        # hosts, which is empty while the search runs (Tab goes there)
        self.link.setFocus()

        self.browser = browser
        self._own_browser = False
        if discover and browser is None:
            self.browser = HostBrowser(parent=self)
            self._own_browser = True
        if self.browser is not None:
            self.browser.host_found.connect(self.add_host)
            self.browser.host_lost.connect(self.remove_host)
            self.browser.failed.connect(self._discovery_failed)
            for host in self.browser.hosts.values():
                self.add_host(host)
            if self._own_browser:
                self._start_browser()
            self._patience = QTimer(self)
            self._patience.setSingleShot(True)
            self._patience.setInterval(SEARCH_PATIENCE_MS)
            self._patience.timeout.connect(self._nothing_found)
            self._patience.start()
        else:
            self.discovery_status.setText("LAN discovery is off.")
        self.finished.connect(self._stop_browser)

    # ------------------------------------------------------------------ discovery

    def _start_browser(self) -> None:
        assert self.browser is not None
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            self.discovery_status.setText("LAN discovery needs the app's event loop.")
            return
        self.browser.start()

    def _stop_browser(self) -> None:
        if self._own_browser and self.browser is not None:
            try:
                asyncio.get_running_loop()
            except RuntimeError:
                return
            self.browser.stop()

    def _nothing_found(self) -> None:
        """Never "Searching…" forever: say nothing was found and what to do."""
        if self.hosts.count() == 0 and "unavailable" not in self.discovery_status.text():
            self.discovery_status.setText(
                "No host found on this network yet (still looking). Paste the invite "
                "link you were given below.")

    def _discovery_failed(self, why: str) -> None:
        self.discovery_status.setText(f"LAN discovery is unavailable here ({why}). "
                                      "Paste a link instead.")

    def add_host(self, host: DiscoveredHost) -> None:
        self.remove_host(host.service)
        item = QListWidgetItem(host.label())
        item.setData(Qt.ItemDataRole.UserRole, host)
        hint = ("one click starts a chat" if self.role == "customer" and host.lobby()
                else "paste the secret from the host after '#'")
        item.setToolTip(f"Version {host.version or '?'}: {hint}")
        self.hosts.addItem(item)
        self.discovery_status.setText(f"{self.hosts.count()} host(s) found.")

    def remove_host(self, service: str) -> None:
        for i in range(self.hosts.count()):
            item = self.hosts.item(i)
            host = item.data(Qt.ItemDataRole.UserRole) if item is not None else None
            if isinstance(host, DiscoveredHost) and host.service == service:
                self.hosts.takeItem(i)
                break

    def _pick(self, item: QListWidgetItem) -> None:
        host = item.data(Qt.ItemDataRole.UserRole)
        if not isinstance(host, DiscoveredHost):
            return
        lobby = host.lobby()
        if self.role == "customer" and lobby is not None:
            self.link.setText(str(lobby))
            return
        current = self.link.text().strip()
        secret = current.split("#", 1)[1] if "#" in current else ""
        self.link.setText(host.link_prefix(self.role) + secret)
        self.link.setFocus()
        self.link.end(False)

    # ------------------------------------------------------------------ the link

    def _paste(self) -> None:
        clip = QGuiApplication.clipboard()
        if clip is not None and clip.text().strip():
            self.link.setText(clip.text().strip())

    def parse(self) -> InviteLink | None:
        """The link in the field, or None (the reason is shown inline)."""
        text = self.link.text().strip()
        if not text:
            self.error.setText("")
            return None
        try:
            link = InviteLink.parse(text)
        except InvalidLink as exc:
            self.error.setText(str(exc).capitalize() + ".")
            return None
        if link.role != self.role:
            self.error.setText(
                f"This is {_a(link.role)} link; this window needs {_a(self.role)} link."
            )
            return None
        self.error.setText("")
        return link

    def _validate(self) -> None:
        self.join_button.setEnabled(self.parse() is not None)

    def _join(self) -> None:
        link = self.parse()
        if link is None:
            return
        self.chosen = link
        self.link_chosen.emit(str(link))
        self.accept()


async def choose_link(role: str, parent: QWidget | None = None) -> InviteLink | None:
    """Show the join dialog on the running loop and wait (no nested event loop)."""
    dialog = JoinDialog(role, parent)
    done: asyncio.Future[InviteLink | None] = asyncio.get_running_loop().create_future()

    def finished(_result: int) -> None:
        if not done.done():
            done.set_result(dialog.chosen)

    dialog.finished.connect(finished)
    dialog.open()
    try:
        return await done
    finally:
        if dialog.browser is not None and dialog._own_browser:
            await dialog.browser.aclose()
        dialog.deleteLater()

