"""The keyboard in the agent window's dialogs: focus starts where the work is, Enter
does the dialog's default action (once), Escape closes it.

Real dialogs offscreen, opened through the window's own shortcuts; keys go to the
widget that has the focus, as a person's would.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from PySide6.QtCore import Qt
from PySide6.QtTest import QTest
from PySide6.QtWidgets import QApplication, QDialog, QMessageBox, QWidget
from pytestqt.qtbot import QtBot

from hitl_desktop.client.workspace import Workspace
from hitl_desktop.core import protocol as p
from hitl_desktop.ui.agent.window import AgentWindow
from hitl_desktop.ui.join_dialog import JoinDialog
from tests.ui.agent_feed import Feed, Sent, summary, welcome

pytestmark = pytest.mark.qt_log_ignore("This plugin does not support")

CTRL = Qt.KeyboardModifier.ControlModifier
SHIFT = Qt.KeyboardModifier.ShiftModifier
NONE = Qt.KeyboardModifier.NoModifier


@pytest.fixture
def sent() -> Sent:
    return Sent()


@pytest.fixture
def window(qtbot: QtBot, sent: Sent, tmp_path: Path) -> AgentWindow:
    """A representative's desk with one conversation, focused."""
    ws = Workspace(send=sent)
    you = p.RepRef(rep_id="t_sam", name="Sam")
    ws.apply_welcome(welcome(summary("s1", "Alex Morgan")).model_copy(update={
        "you": you, "reps": [p.RepInfo(rep_id="t_sam", name="Sam", online=True)]}))
    ws.select_session("s1")
    win = AgentWindow(ws, config_dir=tmp_path, restore=False)
    qtbot.addWidget(win)
    win.show()
    qtbot.waitExposed(win)
    win.activateWindow()
    qtbot.waitUntil(win.isActiveWindow, timeout=2000)
    return win


def press(k: Qt.Key, mods: Qt.KeyboardModifier = NONE) -> None:
    """A key as a person presses it: to whatever has the keyboard focus."""
    target = QApplication.focusWidget()
    assert target is not None, "nothing has the keyboard focus"
    QTest.keyClick(target, k, mods)


def focused_in(dialog: QWidget) -> QWidget | None:
    widget = QApplication.focusWidget()
    return widget if widget is not None and dialog.isAncestorOf(widget) else None


def _help_box(qtbot: QtBot, window: AgentWindow) -> QMessageBox:
    window.activateWindow()
    qtbot.waitUntil(lambda: focused_in(window) is not None, timeout=2000)
    press(Qt.Key.Key_F1)
    box = window.help_box
    assert isinstance(box, QMessageBox)
    qtbot.waitUntil(lambda: focused_in(box) is not None, timeout=2000)
    return box


def test_the_f1_box_closes_on_escape_and_on_enter(qtbot: QtBot, window: AgentWindow) -> None:
    _help_box(qtbot, window)
    press(Qt.Key.Key_Escape)
    qtbot.waitUntil(lambda: window.help_box is None, timeout=2000)
    _help_box(qtbot, window)
    press(Qt.Key.Key_Return)
    qtbot.waitUntil(lambda: window.help_box is None, timeout=2000)


def test_preferences_start_on_the_first_box_and_close_on_escape_or_enter(
        qtbot: QtBot, window: AgentWindow) -> None:
    press(Qt.Key.Key_Comma, CTRL)
    dialog = window.preferences_dialog
    assert dialog is not None and dialog.isVisible()
    qtbot.waitUntil(lambda: focused_in(dialog) is dialog.boxes["notify/enabled"],
                    timeout=2000)
    before = window.preferences.get("notify/enabled")
    press(Qt.Key.Key_Space)  # the focused box toggles; the dialog stays
    assert window.preferences.get("notify/enabled") is (not before)
    press(Qt.Key.Key_Escape)
    assert not dialog.isVisible()
    assert window.preferences.get("notify/enabled") is (not before)  # applied at once
    window.activateWindow()  # what the window manager does when a dialog closes
    qtbot.waitUntil(lambda: focused_in(window) is not None, timeout=2000)
    press(Qt.Key.Key_Comma, CTRL)
    qtbot.waitUntil(lambda: focused_in(dialog) is not None, timeout=2000)
    press(Qt.Key.Key_Return)  # Close is the default button
    assert not dialog.isVisible()


def _open_macros(qtbot: QtBot, window: AgentWindow) -> QWidget:
    press(Qt.Key.Key_M, CTRL | SHIFT)
    dialog = window.macros_dialog
    assert dialog is not None and dialog.isVisible()
    qtbot.waitUntil(lambda: focused_in(dialog) is not None, timeout=2000)
    return dialog


def test_macros_start_on_the_name_and_enter_saves_instead_of_inserting_a_placeholder(
        qtbot: QtBot, window: AgentWindow, sent: Sent) -> None:
    """Enter in the name field clicked the dialog's first auto-default button, the
    "{customer_first_name}" chip: it went into the text and nothing was saved. The
    dialog also opened with the focus on the empty list."""
    dialog = _open_macros(qtbot, window)
    assert window.macros_dialog is not None
    assert focused_in(dialog) is window.macros_dialog.name
    QTest.keyClicks(window.macros_dialog.name, "thanks")
    press(Qt.Key.Key_Tab)
    assert focused_in(dialog) is window.macros_dialog.text
    QTest.keyClicks(window.macros_dialog.text, "Thank you!")
    press(Qt.Key.Key_Tab, SHIFT)
    assert focused_in(dialog) is window.macros_dialog.name
    press(Qt.Key.Key_Return)
    assert window.macros_dialog.text.toPlainText() == "Thank you!"
    saved = sent.of("macro.save")
    assert len(saved) == 1
    assert isinstance(saved[0], p.MacroSave)
    assert (saved[0].name, saved[0].text) == ("thanks", "Thank you!")
    press(Qt.Key.Key_Escape)
    assert not dialog.isVisible()


def test_macros_start_on_the_list_and_enter_on_one_edits_its_text(
        qtbot: QtBot, window: AgentWindow, sent: Sent) -> None:
    Feed(window.workspace, None)(p.MacroList(macros=[
        p.Macro(name="thanks", text="Thank you!", updated_by="Sam", updated_at=1.0)]))
    dialog = _open_macros(qtbot, window)
    macros = window.macros_dialog
    assert macros is not None
    assert focused_in(dialog) is macros.list and macros.list.currentRow() == 0
    assert macros.name.text() == "thanks"
    press(Qt.Key.Key_Return)  # to its text, not Save of what did not change
    assert focused_in(dialog) is macros.text
    assert sent.of("macro.save") == []
    QTest.keyClicks(macros.text, " Bye.")
    press(Qt.Key.Key_Tab, SHIFT)
    press(Qt.Key.Key_Return)
    saved = sent.of("macro.save")
    assert len(saved) == 1 and isinstance(saved[0], p.MacroSave)
    assert saved[0].text == "Thank you! Bye."
    press(Qt.Key.Key_Escape)
    assert not dialog.isVisible()


def _hit(session_id: str, title: str) -> p.SearchHit:
    return p.SearchHit(session_id=session_id, seq=3, title=title, snippet="a refund of $48",
                       at=1_700_000_000.0, author_role="agent")


def test_search_enter_searches_once_then_opens_the_hit_and_escape_closes(
        qtbot: QtBot, window: AgentWindow, sent: Sent) -> None:
    """Enter in the field sent the search twice (the field's own Enter and the dialog's
    auto-default Search button), and Enter on a hit opened it and searched again."""
    press(Qt.Key.Key_F, CTRL)
    dialog = window.search_dialog
    assert dialog is not None and dialog.isVisible()
    qtbot.waitUntil(lambda: focused_in(dialog) is dialog.field, timeout=2000)
    QTest.keyClicks(dialog.field, "refund")
    press(Qt.Key.Key_Return)
    assert len(sent.of("search")) == 1
    Feed(window.workspace, None)(p.SearchResults(
        query="refund", hits=[_hit("s1", "Alex Morgan"), _hit("s2", "Jo Lee")]))
    assert dialog.results.currentRow() == 0 and focused_in(dialog) is dialog.field
    with qtbot.waitSignal(dialog.hit_opened, timeout=2000) as opened:
        press(Qt.Key.Key_Return)  # the query was answered: "Enter opens one"
    assert opened.args == ["s1", 3]
    dialog.results.setFocus()
    dialog.results.setCurrentRow(1)
    with qtbot.waitSignal(dialog.hit_opened, timeout=2000) as opened:
        press(Qt.Key.Key_Return)
    assert opened.args == ["s2", 3]
    assert len(sent.of("search")) == 1  # neither Enter searched again
    dialog.field.setFocus()
    press(Qt.Key.Key_Escape)
    assert not dialog.isVisible()


def test_the_join_dialog_starts_in_the_link_enter_joins_once_escape_cancels(
        qtbot: QtBot) -> None:
    """It opened with the keyboard in the list of discovered hosts, empty while the
    search runs: a pasted link (Ctrl+V) went nowhere."""
    link = "hitl://192.0.2.9:8765/customer#tok1.0123456789abcdefABCDEF"
    app = QApplication.instance()
    assert isinstance(app, QApplication)
    app.setQuitOnLastWindowClosed(False)
    dialog = JoinDialog("customer", discover=False)
    qtbot.addWidget(dialog)
    chosen: list[str] = []
    dialog.link_chosen.connect(chosen.append)
    dialog.show()
    dialog.activateWindow()
    qtbot.waitUntil(lambda: focused_in(dialog) is not None, timeout=2000)
    assert focused_in(dialog) is dialog.link
    QTest.keyClicks(dialog.link, link)
    press(Qt.Key.Key_Return)
    assert chosen == [link] and dialog.result() == QDialog.DialogCode.Accepted
    assert not dialog.isVisible()
    again = JoinDialog("customer", discover=False)
    qtbot.addWidget(again)
    again.show()
    again.activateWindow()
    qtbot.waitUntil(lambda: focused_in(again) is again.link, timeout=2000)
    press(Qt.Key.Key_Escape)
    assert not again.isVisible() and again.result() == QDialog.DialogCode.Rejected
