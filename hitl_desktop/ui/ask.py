"""Questions that never block: a window-modal message box opened, not exec()'d.

The answer arrives through a callback, so no nested event loop runs inside the
qasync loop (asyncio tasks keep running while the box is up). Each caller keeps the
returned box (tests press its buttons; a second question replaces the first).
"""

from __future__ import annotations

from collections.abc import Callable

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QMessageBox, QPushButton, QWidget


class Question(QMessageBox):
    """Yes/No with buttons that say what they do; ``yes_button`` runs ``on_yes``."""

    def __init__(self, parent: QWidget | None, text: str, *, yes: str, no: str,
                 on_yes: Callable[[], object], detail: str = "") -> None:
        super().__init__(QMessageBox.Icon.Question, "HITL Desk", text,
                         QMessageBox.StandardButton.NoButton, parent)
        self.setInformativeText(detail)
        self.yes_button: QPushButton = self.addButton(yes, QMessageBox.ButtonRole.AcceptRole)
        self.no_button: QPushButton = self.addButton(no, QMessageBox.ButtonRole.RejectRole)
        self.setDefaultButton(self.no_button)
        self.setEscapeButton(self.no_button)
        self.setWindowModality(Qt.WindowModality.WindowModal)
        self.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        self._on_yes = on_yes
        self.buttonClicked.connect(self._clicked)

    def _clicked(self, button: object) -> None:
        if button is self.yes_button:
            self._on_yes()


def ask(parent: QWidget | None, text: str, *, yes: str, no: str = "Cancel",
        on_yes: Callable[[], object], detail: str = "") -> Question:
    """Open the question (window-modal, non-blocking) and return it."""
    box = Question(parent, text, yes=yes, no=no, on_yes=on_yes, detail=detail)
    box.open()
    return box
