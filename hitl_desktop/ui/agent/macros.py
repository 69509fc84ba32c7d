"""Macros (issue 16): saved replies shared by the desk, inserted with "/" + name.

The host stores them (every representative sees the same list, pushed again after
each change); placeholders are filled here from the conversation shown
(``client.desk.expand_macro``). The picker is a QCompleter on the reply editor; the
dialog adds, edits and deletes them.
"""

from __future__ import annotations

from typing import Any

from PySide6.QtCore import QEvent, QModelIndex, QObject, QPersistentModelIndex, Qt
from PySide6.QtGui import QKeyEvent, QStandardItem, QStandardItemModel, QTextCursor
from PySide6.QtWidgets import (
    QCompleter,
    QDialog,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QListView,
    QListWidget,
    QListWidgetItem,
    QPlainTextEdit,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from hitl_desktop.client.desk import (
    PLACEHOLDERS,
    expand_macro,
    macro_context,
    macro_name_problem,
    macro_prefix,
)
from hitl_desktop.client.workspace import Workspace
from hitl_desktop.ui.ask import Question, ask
from hitl_desktop.ui.fit import WrapLabel, clip

ROLE_NAME = Qt.ItemDataRole.UserRole + 1


class ComposerEdit(QPlainTextEdit):
    """The reply editor: while the macro picker is open, Enter/Tab/Esc belong to it."""

    completer: QCompleter | None = None

    def keyPressEvent(self, event: QKeyEvent) -> None:
        popup = self.completer.popup() if self.completer is not None else None
        if popup is not None and popup.isVisible() and event.key() in (
                Qt.Key.Key_Enter, Qt.Key.Key_Return, Qt.Key.Key_Escape, Qt.Key.Key_Tab,
                Qt.Key.Key_Backtab):
            event.ignore()  # the completer acts on it
            return
        super().keyPressEvent(event)


class MacroCompleter(QCompleter):
    """The picker: "/" at the start of a word opens it, the letters after filter it,
    Enter (or a click) replaces "/name" with the macro, placeholders filled in; the
    first one it could not fill is selected for the representative to type over."""

    def __init__(self, workspace: Workspace, editor: QPlainTextEdit,
                 parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.workspace = workspace
        self.editor = editor
        self.items = QStandardItemModel(self)
        self.setModel(self.items)
        self.setCompletionRole(ROLE_NAME)
        self.setCaseSensitivity(Qt.CaseSensitivity.CaseInsensitive)
        self.setFilterMode(Qt.MatchFlag.MatchContains)
        self.setCompletionMode(QCompleter.CompletionMode.PopupCompletion)
        self.setMaxVisibleItems(8)
        self.setWidget(editor)
        self.picker = QListView()
        self.picker.setObjectName("macroPicker")
        self.picker.setUniformItemSizes(True)
        self.picker.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.picker.setTextElideMode(Qt.TextElideMode.ElideRight)
        self.setPopup(self.picker)
        if isinstance(editor, ComposerEdit):
            editor.completer = self
        activated: Any = self.activated  # the QModelIndex overload (the str one also exists)
        activated[QModelIndex].connect(self._insert_index)
        editor.textChanged.connect(self._update)
        workspace.macros_changed.connect(self._reload)
        self._inserting = False
        self._reload()

    def _reload(self) -> None:
        self.items.clear()
        for macro in self.workspace.macros:
            first = " ".join(macro.text.split())
            item = QStandardItem(f"/{macro.name}  —  {clip(first, 70)}")
            item.setData(macro.name, ROLE_NAME)
            item.setToolTip(macro.text)
            self.items.appendRow(item)

    def typed_prefix(self) -> str | None:
        cursor = self.editor.textCursor()
        block = cursor.block().text()
        return macro_prefix(block, cursor.positionInBlock())

    def _update(self) -> None:
        if self._inserting:
            return
        prefix = self.typed_prefix()
        popup = self.picker
        if prefix is None or not self.items.rowCount():
            if popup.isVisible():
                popup.hide()
            return
        self.setCompletionPrefix(prefix)
        if self.completionCount() == 0:
            popup.hide()
            return
        popup.setCurrentIndex(self.completionModel().index(0, 0))
        # the cursor's rectangle is in the viewport's coordinates, the popup goes under
        # it in the editor's
        rect = self.editor.cursorRect().translated(self.editor.viewport().pos())
        rect.setWidth(min(460, max(280, self.editor.width() - rect.left() - 8)))
        self.complete(rect)

    def _insert_index(self, index: QModelIndex | QPersistentModelIndex) -> None:
        name = index.data(ROLE_NAME)
        if name:
            self.insert(str(name))

    def insert(self, name: str) -> bool:
        """Replace the "/prefix" at the cursor (or insert at the cursor) with the macro."""
        macro = next((m for m in self.workspace.macros if m.name == name), None)
        if macro is None:
            return False
        text, unfilled = expand_macro(
            macro.text, macro_context(self.workspace, self.workspace.current))
        cursor = self.editor.textCursor()
        prefix = self.typed_prefix()
        self._inserting = True
        try:
            cursor.beginEditBlock()
            if prefix is not None:
                cursor.movePosition(QTextCursor.MoveOperation.Left,
                                    QTextCursor.MoveMode.KeepAnchor, len(prefix) + 1)
            start = cursor.selectionStart()
            cursor.insertText(text)
            cursor.endEditBlock()
            if unfilled:
                first = unfilled[0]
                cursor.setPosition(start + first[0])
                cursor.setPosition(start + first[1], QTextCursor.MoveMode.KeepAnchor)
            self.editor.setTextCursor(cursor)
        finally:
            self._inserting = False
        self.picker.hide()
        return True


class MacrosDialog(QDialog):
    """Add, edit and delete the desk's macros (shown, never exec()'d)."""

    def __init__(self, workspace: Workspace, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.workspace = workspace
        self.setObjectName("macrosDialog")
        self.setWindowTitle("Macros — HITL Desk")
        self.question: Question | None = None
        self.list = QListWidget(self)
        self.list.setObjectName("macroList")
        self.list.currentItemChanged.connect(self._on_current)
        self.name = QLineEdit(self)
        self.name.setObjectName("macroName")
        self.name.setPlaceholderText("name, e.g. thanks (type /thanks in a reply)")
        self.name.setMaxLength(40)
        self.name.textChanged.connect(self._validate)
        self.text = QPlainTextEdit(self)
        self.text.setObjectName("macroText")
        self.text.setPlaceholderText("Hi {customer_first_name}, …")
        self.text.setTabChangesFocus(True)  # (Shift+)Tab leaves it, as in every other field
        self.text.textChanged.connect(self._validate)
        hint = QLabel("Placeholders (click to insert):", self)
        hint.setObjectName("mutedLabel")
        chips = QHBoxLayout()
        chips.setSpacing(4)
        for key in PLACEHOLDERS:
            b = QPushButton(f"{{{key}}}", self)
            b.setObjectName(f"placeholder_{key}")
            b.setFlat(True)
            b.setAutoDefault(False)  # Enter in the name field saves, never inserts this
            b.clicked.connect(lambda _=False, k=key: self.text.insertPlainText(f"{{{k}}}"))
            chips.addWidget(b)
        chips.addStretch(1)
        self.problem = WrapLabel("", self, max_chars=200)
        self.problem.setObjectName("formErrors")
        self.new_button = QPushButton("New", self)
        self.new_button.setObjectName("newMacro")
        self.new_button.clicked.connect(self.new)
        self.save_button = QPushButton("Save", self)
        self.save_button.setObjectName("saveMacro")
        self.save_button.clicked.connect(self.save)
        self.delete_button = QPushButton("Delete…", self)
        self.delete_button.setObjectName("deleteMacro")
        self.delete_button.clicked.connect(self.delete)
        close = QPushButton("Close", self)
        close.clicked.connect(self.close)
        # Enter saves (when it can); a dialog's first auto-default button would take it
        # otherwise: Enter in the name field inserted "{customer_first_name}"
        for button in (self.new_button, self.delete_button, close):
            button.setAutoDefault(False)
        self.save_button.setDefault(True)
        self.list.installEventFilter(self)
        buttons = QHBoxLayout()
        buttons.addWidget(self.new_button)
        buttons.addWidget(self.delete_button)
        buttons.addStretch(1)
        buttons.addWidget(close)
        buttons.addWidget(self.save_button)
        right = QVBoxLayout()
        right.addWidget(QLabel("Name", self))
        right.addWidget(self.name)
        right.addWidget(QLabel("Text", self))
        right.addWidget(self.text, 1)
        right.addWidget(hint)
        right.addLayout(chips)
        right.addWidget(self.problem)
        body = QHBoxLayout()
        body.addWidget(self.list, 1)
        body.addLayout(right, 2)
        lay = QVBoxLayout(self)
        lay.addLayout(body, 1)
        lay.addLayout(buttons)
        self.resize(720, 420)
        workspace.macros_changed.connect(self.refresh)
        self.refresh()
        self._validate()

    def start(self) -> None:
        """Show (or bring up) the dialog with the keyboard where the work starts: the
        list when there are macros to choose from, else the name of a new one."""
        self.show()
        self.raise_()
        self.activateWindow()
        if self.list.count():
            if self.list.currentRow() < 0:
                self.list.setCurrentRow(0)
            self.list.setFocus()
        else:
            self.name.setFocus()

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:
        """Enter on a macro in the list goes to its text to edit it (the dialog would
        otherwise pass the key on to Save and store it unchanged)."""
        if watched is self.list and event.type() == QEvent.Type.KeyPress \
                and isinstance(event, QKeyEvent) \
                and event.key() in (Qt.Key.Key_Return, Qt.Key.Key_Enter) \
                and event.modifiers() == Qt.KeyboardModifier.NoModifier:
            self.text.setFocus()
            self.text.moveCursor(QTextCursor.MoveOperation.End)
            return True
        return super().eventFilter(watched, event)

    def names(self) -> list[str]:
        return [str(self.list.item(i).data(ROLE_NAME)) for i in range(self.list.count())]

    def refresh(self) -> None:
        keep = self.name.text().strip()
        self.list.blockSignals(True)
        self.list.clear()
        for macro in self.workspace.macros:
            item = QListWidgetItem(f"/{macro.name}")
            item.setData(ROLE_NAME, macro.name)
            item.setToolTip(f"{macro.text}\n\n— {macro.updated_by}")
            self.list.addItem(item)
            if macro.name == keep:
                self.list.setCurrentItem(item)
        self.list.blockSignals(False)
        self._validate()

    def _on_current(self, item: QListWidgetItem | None, _old: object = None) -> None:
        if item is None:
            return
        name = str(item.data(ROLE_NAME))
        macro = next((m for m in self.workspace.macros if m.name == name), None)
        if macro is not None:
            self.name.setText(macro.name)
            self.text.setPlainText(macro.text)

    def new(self) -> None:
        self.list.clearSelection()
        self.list.setCurrentRow(-1)
        self.name.clear()
        self.text.clear()
        self.name.setFocus()

    def _validate(self) -> None:
        name = self.name.text().strip()
        problem = macro_name_problem(name) if name else ""
        if not problem and len(self.text.toPlainText()) > 4000:
            problem = "A macro holds at most 4000 characters"
        self.problem.set_full_text(problem)
        self.problem.setVisible(bool(problem))
        self.save_button.setEnabled(bool(name) and not problem
                                    and bool(self.text.toPlainText().strip()))
        self.delete_button.setEnabled(name in self.names())

    def save(self) -> bool:
        name = self.name.text().strip()
        if macro_name_problem(name):
            return False
        return self.workspace.save_macro(name, self.text.toPlainText())

    def delete(self) -> None:
        name = self.name.text().strip()
        if name not in self.names():
            return
        self.question = ask(self, f"Delete the macro /{name}?",
                            detail="Every representative of the desk loses it.",
                            yes="Delete", no="Keep it",
                            on_yes=lambda: self._delete_now(name))

    def _delete_now(self, name: str) -> None:
        if self.workspace.delete_macro(name):
            self.name.clear()
            self.text.clear()

