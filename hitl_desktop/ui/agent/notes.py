"""The note box: internal notes for colleagues, never for the customer (issue 16).

A box of its own under the transcript rather than a mode of the reply editor: the
draft and the note never share a text field, so a note cannot be sent to the
customer by a slip of Ctrl+Enter, and the reply editor keeps its draft.
"""

from __future__ import annotations

from PySide6.QtCore import QEvent, QObject, Qt
from PySide6.QtGui import QKeyEvent
from PySide6.QtWidgets import QFrame, QHBoxLayout, QPlainTextEdit, QPushButton, QVBoxLayout, QWidget

from hitl_desktop.client.workspace import NOTE_MAX_CHARS, Workspace
from hitl_desktop.ui.agent.style import is_dark
from hitl_desktop.ui.fit import ElideLabel

PLACEHOLDER = "Internal note — only representatives see this. Ctrl+Enter adds it."


class NoteBox(QFrame):
    """Yellow, labelled, hidden until asked for (the ✎ Note button or Ctrl+Shift+N)."""

    def __init__(self, workspace: Workspace, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.workspace = workspace
        self.setObjectName("noteBox")
        self.label = ElideLabel("✎ Internal note — the customer never sees it", self,
                                max_hint=360)
        self.label.setObjectName("noteLabel")
        self.editor = QPlainTextEdit(self)
        self.editor.setObjectName("noteEditor")
        self.editor.setPlaceholderText(PLACEHOLDER)
        self.editor.setAccessibleName("Internal note")
        self.editor.setFixedHeight(54)
        self.editor.installEventFilter(self)
        self.editor.textChanged.connect(self._update)
        self.add_button = QPushButton("Add note", self)
        self.add_button.setObjectName("addNote")
        self.add_button.setToolTip("Add the note to the conversation (Ctrl+Enter); "
                                   "only representatives see it")
        self.add_button.clicked.connect(self.submit)
        self.close_button = QPushButton("Close", self)
        self.close_button.setObjectName("closeNote")
        self.close_button.setToolTip("Hide the note box (Esc); what you typed stays")
        self.close_button.clicked.connect(self.hide)
        # compact: the transcript above keeps its room on a 768-pixel-high screen
        side = QVBoxLayout()
        side.setSpacing(4)
        side.addWidget(self.add_button)
        side.addWidget(self.close_button)
        row = QHBoxLayout()
        row.setSpacing(6)
        row.addWidget(self.editor, 1)
        row.addLayout(side)
        lay = QVBoxLayout(self)
        lay.setContentsMargins(8, 4, 8, 6)
        lay.setSpacing(2)
        lay.addWidget(self.label)
        lay.addLayout(row)
        self.setFocusProxy(self.editor)
        # yellow like the notes in the transcript: this text is for colleagues only
        bg, edge, field = (("#4a3f12", "#c9a227", "#3a3210") if is_dark()
                           else ("#fff4c2", "#e0b400", "#fffbe6"))
        self.setStyleSheet(f"QFrame#noteBox {{ background: {bg}; border-top: 2px solid {edge}; }}"
                           f" QPlainTextEdit#noteEditor {{ background: {field}; }}"
                           " QLabel#noteLabel { font-size: small; font-weight: 600; }")
        workspace.current_session_changed.connect(self._update)
        self._update()
        self.hide()

    def open_box(self) -> None:
        self.show()
        self.editor.setFocus(Qt.FocusReason.ShortcutFocusReason)

    def text(self) -> str:
        return self.editor.toPlainText()

    def submit(self) -> bool:
        """Add the note to the current conversation; the box empties once sent."""
        text = self.editor.toPlainText().strip()
        if not text or len(text) > NOTE_MAX_CHARS:
            return False
        if self.workspace.add_note(text):
            self.editor.clear()
            return True
        return False

    def _update(self, *_args: object) -> None:
        text = self.editor.toPlainText().strip()
        has_session = self.workspace.current is not None
        too_long = len(text) > NOTE_MAX_CHARS
        self.add_button.setEnabled(has_session and bool(text) and not too_long)
        self.add_button.setToolTip(
            f"A note holds at most {NOTE_MAX_CHARS} characters" if too_long
            else "Add the note to the conversation (Ctrl+Enter); only representatives see it")

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:
        if watched is self.editor and event.type() == QEvent.Type.KeyPress:
            assert isinstance(event, QKeyEvent)
            key = event.key()
            if key in (Qt.Key.Key_Return, Qt.Key.Key_Enter) \
                    and event.modifiers() & Qt.KeyboardModifier.ControlModifier:
                self.submit()
                return True
            if key == Qt.Key.Key_Escape:
                self.hide()
                return True
        return super().eventFilter(watched, event)
