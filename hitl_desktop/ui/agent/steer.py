"""The steer line under the suggestion editor: tell the co-pilot what to change.

The representative types an instruction ("offer a $10 voucher") or clicks a chip
("Shorter", "More formal", "Apologise"); Enter sends ``draft.steer`` and the new
draft streams into the editor. Undo (the button, or Ctrl+Z in the line when it has
nothing of its own to undo) shows the draft the last steer replaced again, with the
representative's edits of it. What the host refuses (an instruction the offline
engine cannot follow, the steering budget) is shown under the line. The decisions
are the host's; this only sends intents and renders (``client.workspace``).
"""

from __future__ import annotations

from typing import Protocol

from PySide6.QtCore import QEvent, QObject, QSize, Qt, QTimer
from PySide6.QtGui import QKeyEvent, QKeySequence, QResizeEvent
from PySide6.QtWidgets import (
    QFrame,
    QHBoxLayout,
    QLineEdit,
    QPlainTextEdit,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from hitl_desktop.client.workspace import Workspace
from hitl_desktop.ui import theme
from hitl_desktop.ui.fit import WrapLabel


class Editor(Protocol):
    """What the steer line uses of ``suggestion.SuggestionEditor`` (no import: no cycle)."""

    user_edited: bool
    editor: QPlainTextEdit
    reload_bar: QFrame

    def text(self) -> str: ...

CHIPS = (("Shorter", "shorter"), ("More formal", "more formal"),
         ("Apologise", "apologise for the delay"))
LINE_MIN_WIDTH = 180  # the chips move under the line below this much room
MAX_CHARS = 500  # the protocol's bound (core.protocol.MAX_STEER_CHARS), checked host-side too
PLACEHOLDER = "Tell the co-pilot what to change, e.g. \u201coffer a $10 voucher\u201d (Enter)"
#: the placeholder where the whole one would be cut ("…e.g. “offer a $10 vou…" in the
#: demo's ~370 px column)
SHORT_PLACEHOLDER = "Tell the co-pilot what to change (Enter)"
STEERED = "Steered: {steps} \u2014 anything else? (Enter; Ctrl+Z goes back)"


class SteerLine(QWidget):
    """A line edit, quick chips and Undo, for the current session's draft."""

    def __init__(self, workspace: Workspace, editor: Editor,
                 parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("steerLine")
        self.workspace = workspace
        self.suggestion = editor

        self.line = QLineEdit(self)
        self.line.setObjectName("steerInput")
        self.line.setPlaceholderText(PLACEHOLDER)
        self.line.setMaxLength(MAX_CHARS)
        self.line.setClearButtonEnabled(True)
        self.line.setAccessibleName("Instruction to the co-pilot")
        self.line.returnPressed.connect(self.send)
        self.line.textChanged.connect(self._update)
        self.line.installEventFilter(self)

        self.line.setMinimumWidth(LINE_MIN_WIDTH)
        self.chips: list[QPushButton] = []
        row = self._row = QHBoxLayout()
        row.setContentsMargins(0, 0, 0, 0)
        row.setSpacing(4)
        row.addWidget(self.line, 1)
        self._buttons = QHBoxLayout()  # beside the line, or under it when the dock is narrow
        self._buttons.setContentsMargins(0, 0, 0, 0)
        self._buttons.setSpacing(4)
        row.addLayout(self._buttons)
        for label, instruction in CHIPS:
            chip = QPushButton(label, self)
            chip.setObjectName("steerChip")
            chip.setToolTip(f"Ask the co-pilot for a new draft: \u201c{instruction}\u201d")
            chip.setFocusPolicy(Qt.FocusPolicy.TabFocus)
            chip.clicked.connect(lambda _=False, i=instruction: self.steer(i))
            self.chips.append(chip)
            self._buttons.addWidget(chip)
        self.undo_button = QPushButton("Undo", self)
        self.undo_button.setObjectName("steerUndo")
        self.undo_button.setToolTip("Show the previous draft again (Ctrl+Z in this line)")
        self.undo_button.clicked.connect(self.undo)
        self._buttons.addWidget(self.undo_button)

        self.problem = WrapLabel("", self, max_chars=400)
        self.problem.setObjectName("steerProblem")
        self.problem.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.problem.hide()

        lay = self._lay = QVBoxLayout(self)
        lay.setContentsMargins(0, 0, 0, 0)
        lay.setSpacing(2)
        lay.addLayout(row)
        lay.addWidget(self.problem)
        lay.setSizeConstraint(QVBoxLayout.SizeConstraint.SetNoConstraint)  # minimumSizeHint
        self._stacked = False
        self._style()

        workspace.draft_changed.connect(self._on_draft_changed)
        workspace.current_session_changed.connect(self._on_session_changed)
        workspace.session_updated.connect(self._on_session_updated)
        workspace.steer_failed.connect(self._on_failed)
        self._update()

    def changeEvent(self, event: QEvent) -> None:
        """Follow the system's light/dark switch (the chips' colours are the scheme's)."""
        super().changeEvent(event)
        if event.type() in (QEvent.Type.PaletteChange, QEvent.Type.ApplicationPaletteChange) \
                and theme.is_dark() != self._dark:
            self._style()

    def _style(self) -> None:
        self._dark = theme.is_dark()
        c = theme.colors()
        self.setStyleSheet(
            f"QPushButton#steerChip {{ border: 1px solid {c.border}; border-radius: 10px;"
            f" padding: 2px 10px; background: {c.surface}; }}"
            f"QPushButton#steerChip:hover {{ background: {c.info_bg}; color: {c.info_text}; }}"
            f"QLabel#steerProblem {{ color: {c.warn_text}; background: {c.warn_bg};"
            " border-radius: 4px; padding: 2px 6px; }")

    def minimumSizeHint(self) -> QSize:
        """As narrow as the line needs: the chips wrap under it (see resizeEvent)."""
        hint = super().minimumSizeHint()
        return QSize(min(hint.width(), LINE_MIN_WIDTH), hint.height())

    def _unsteered_placeholder(self) -> str:
        """The whole hint when the line shows it whole, else the short one."""
        room = self.line.width() - 40  # text margins, frame and the clear button
        whole = self.line.fontMetrics().horizontalAdvance(PLACEHOLDER) <= room
        return PLACEHOLDER if whole else SHORT_PLACEHOLDER

    def resizeEvent(self, event: QResizeEvent) -> None:
        """Chips beside the line when there is room, else on a row of their own (the
        line keeps a usable width in a narrow dock)."""
        super().resizeEvent(event)
        QTimer.singleShot(0, self, self._update)  # the placeholder, at the line's width
        buttons = [*self.chips, self.undo_button]
        # the line beside the chips only if it shows at least the short hint whole
        line = max(LINE_MIN_WIDTH,
                   self.line.fontMetrics().horizontalAdvance(SHORT_PLACEHOLDER) + 40)
        need = line + sum(b.sizeHint().width() + 4 for b in buttons) + 8
        stacked = event.size().width() < need
        if stacked == self._stacked:
            return
        self._stacked = stacked
        if stacked:
            self._row.removeItem(self._buttons)
            self._lay.insertLayout(1, self._buttons)
            self._buttons.addStretch(1)
        else:
            self._lay.removeItem(self._buttons)
            self._buttons.takeAt(self._buttons.count() - 1)  # the stretch
            self._row.addLayout(self._buttons)

    # ------------------------------------------------------------------ intents

    def send(self) -> None:
        """Enter: steer with what is typed."""
        if self.steer(self.line.text()):
            self.line.clear()

    def steer(self, instruction: str) -> bool:
        """Ask for a new draft following ``instruction``; the editor takes the new draft
        (the representative's edits of the current one come back with Undo)."""
        if not instruction.strip() or not self._can_steer():
            return False
        edited = self.suggestion.text() if self.suggestion.user_edited else None
        if not self.workspace.steer(instruction, editor_text=edited):
            return False
        self._set_problem("")
        self.suggestion.user_edited = False  # asked for: the steered draft replaces the text
        self.suggestion.reload_bar.hide()
        return True

    def undo(self) -> bool:
        """Show the draft the last steer replaced, with the edits made to it."""
        if not self.workspace.can_undo():
            return False
        self.suggestion.user_edited = False
        entry = self.workspace.undo_draft()
        if entry is None:
            return False
        if entry.editor_text is not None:
            self.suggestion.editor.setPlainText(entry.editor_text)  # theirs: marked edited
        self._set_problem("")
        self._update()
        return True

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:
        """Ctrl+Z in the line: its own undo while it has one, else the previous draft."""
        if watched is self.line and event.type() == QEvent.Type.KeyPress:
            key = event if isinstance(event, QKeyEvent) else None
            if key is not None and key.matches(QKeySequence.StandardKey.Undo) \
                    and not self.line.isUndoAvailable() and self.undo():
                return True
        return super().eventFilter(watched, event)

    # ------------------------------------------------------------------ state

    def _can_steer(self) -> bool:
        return self.workspace.current is not None and not self.workspace.is_closed()

    def _update(self) -> None:
        can = self._can_steer()
        self.line.setEnabled(can)
        for chip in self.chips:
            chip.setEnabled(can)
        undo = can and self.workspace.can_undo()
        self.undo_button.setEnabled(undo)
        sid = self.workspace.current_session_id
        entry = self.workspace.undo.peek(sid) if sid else None
        steered = self.workspace.undo.instructions(sid) if sid else []
        placeholder = (STEERED.format(steps=" \u00b7 ".join(steered)) if steered
                       else self._unsteered_placeholder())
        if self.line.placeholderText() != placeholder:
            self.line.setPlaceholderText(placeholder)
        self.undo_button.setToolTip(
            f"Show the draft before \u201c{entry.instruction}\u201d again (Ctrl+Z in this line)"
            if entry is not None and entry.instruction else
            "Show the previous draft again (Ctrl+Z in this line)")

    def _set_problem(self, message: str) -> None:
        if self.problem.full_text() != message:
            self.problem.set_full_text(message)
        self.problem.setVisible(bool(message))

    def _on_failed(self, session_id: str, message: str) -> None:
        if session_id == self.workspace.current_session_id:
            self._set_problem(message)

    def _on_draft_changed(self, session_id: str) -> None:
        if session_id == self.workspace.current_session_id:
            self._update()

    def _on_session_changed(self, session_id: str) -> None:
        self._set_problem("")
        self._update()

    def _on_session_updated(self, session_id: str) -> None:
        if session_id == self.workspace.current_session_id:
            self._update()
