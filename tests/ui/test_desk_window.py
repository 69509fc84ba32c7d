"""The desk in the agent window (issue 16): real widgets offscreen, fed real protocol
frames — inbox filters and holders, the context menu, notes, the warning before
writing into a colleague's conversation, status, the macro picker and dialog,
preferences, search, export and the tray notification."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from PySide6.QtCore import QPoint, Qt
from PySide6.QtTest import QTest
from pytestqt.qtbot import QtBot

from hitl_desktop.client.workspace import Workspace
from hitl_desktop.core import protocol as p
from hitl_desktop.ui.agent.window import AgentWindow
from tests.ui.agent_feed import Feed, Sent
from tests.ui.conftest import until
from tests.ui.test_desk_models import KIM, SAM, desk_summary, desk_welcome

pytestmark = pytest.mark.qt_log_ignore("This plugin does not support")


@pytest.fixture
def ws(sent: Sent) -> Workspace:
    now = time.time()
    model = Workspace(send=sent)
    model.apply_welcome(desk_welcome(
        desk_summary("s1", "Alex Morgan", assignee=SAM, waiting=now - 200),
        desk_summary("s2", "Priya Shah", assignee=KIM, waiting=now - 1000),
        desk_summary("s3", "Jo Lee", last_at=now - 5),
        desk_summary("s4", "Ann Bell", status="resolved")))
    model.select_session("s1")
    return model


@pytest.fixture
def window(qtbot: QtBot, ws: Workspace, tmp_path: Path) -> AgentWindow:
    win = AgentWindow(ws, config_dir=tmp_path, restore=False)
    qtbot.addWidget(win)
    win.show()
    qtbot.waitExposed(win)
    return win


def test_inbox_filters_holders_and_live_assignment(window: AgentWindow, ws: Workspace,
                                                   tmp_path: Path, qtbot: QtBot) -> None:
    inbox = window.inbox
    assert inbox.filter_bar.isVisible()
    assert {w: b.text() for w, b in inbox.filter_buttons.items()} == {
        "mine": "Mine 1", "unassigned": "Unassigned 1", "open": "All open 3",
        "resolved": "Resolved 1"}
    assert inbox.session_ids() == ["s2", "s1", "s3"], "longest wait first"
    assert "Held by: Kim" in inbox.model.item(0).toolTip()
    assert "waiting 16 min" in inbox.model.item(0).toolTip()
    inbox.filter_buttons["unassigned"].click()
    assert inbox.session_ids() == ["s3"]
    Feed(ws, "s3")(p.SessionAssigned(assignee=KIM, by="Kim", previous=None))
    assert inbox.session_ids() == [], "taken by Kim: gone from Unassigned, live"
    assert inbox.filter_buttons["unassigned"].text() == "Unassigned 0"
    inbox.set_filter("resolved")
    assert inbox.session_ids() == ["s4"]
    again = AgentWindow(ws, config_dir=tmp_path, restore=False)
    qtbot.addWidget(again)
    assert again.inbox.filter == "resolved", "the filter is remembered"


def test_inbox_context_menu_takes_and_transfers(window: AgentWindow, sent: Sent) -> None:
    menu = window.inbox.build_menu("s3")
    acts = {a.objectName(): a for a in menu.findChildren(type(menu.actions()[0]))}
    acts["menuTake"].trigger()
    assert sent.items[-1] == ("session.assign", p.SessionAssign(action="take"), "s3")
    transfer = next(a for a in menu.actions() if a.text() == "Transfer to…").menu()
    kim = next(a for a in transfer.actions() if a.objectName() == "transfer_t_kim")
    assert "offline" in kim.text()
    kim.trigger()
    assert sent.items[-1] == ("session.assign", p.SessionAssign(action="transfer", to="t_kim"),
                              "s3")
    # the keyboard's menu key opens the current row's menu
    window.inbox.list.setFocus()
    window.inbox._context_menu(QPoint(-5, -5))
    assert window.inbox.menu is not None and window.inbox.menu.isVisible()
    window.inbox.menu.close()
    mine = window.inbox.build_menu("s1")
    take = next(a for a in mine.actions() if a.objectName() == "menuTake")
    assert not take.isEnabled(), "you cannot take what you hold"


def test_desk_bar_and_shortcuts(window: AgentWindow, ws: Workspace, sent: Sent) -> None:
    bar = window.conversation.desk_bar
    assert bar.holder.full_text() == "Held by you · Open"
    assert not bar.take_button.isEnabled() and bar.release_button.isEnabled()
    window.release_action.trigger()
    assert sent.items[-1] == ("session.assign", p.SessionAssign(action="release"), "s1")
    ws.select_session("s2")
    assert bar.holder.full_text() == "Held by Kim · Open"
    assert bar.take_button.text() == "Take from Kim"
    window.take_action.trigger()
    assert sent.items[-1] == ("session.assign", p.SessionAssign(action="take"), "s2")
    menu = bar.popup_transfer()
    assert [a.objectName() for a in menu.actions()] == ["transfer_t_sam"]
    menu.close()
    window.transfer_action.trigger()  # Ctrl+Shift+X: the same menu, under the button
    assert bar.transfer_menu.isVisible()
    bar.transfer_menu.close()


def test_a_note_is_shown_apart_and_written_from_the_note_box(
        window: AgentWindow, ws: Workspace, sent: Sent, qtbot: QtBot) -> None:
    Feed(ws, "s1").customer("Where is my parcel?")
    Feed(ws, "s1")(p.NoteAdded(note_id="n1", author=p.Author(role=p.Role.AGENT,
                                                                   name="Kim"),
                               text="Checked with the carrier: lost."), seq=2)
    text = window.conversation.browser.toPlainText()
    assert "Internal note — only representatives see this" in text
    assert "Checked with the carrier: lost." in text
    html = window.conversation.browser.toHtml()
    assert "#fff4c2" in html.lower() or "#4a3f12" in html.lower(), "the note is yellow"
    window.note_action.trigger()
    box = window.conversation.note_box
    assert box.isVisible()
    QTest.keyClicks(box.editor, "Offer a voucher next time")
    QTest.keyClick(box.editor, Qt.Key.Key_Return, Qt.KeyboardModifier.ControlModifier)
    assert sent.items[-1] == ("note.add", p.NoteAdd(text="Offer a voucher next time"), "s1")
    assert not sent.of("chat.send"), "Ctrl+Enter in the note box never sends a reply"
    assert box.text() == ""


def test_writing_into_a_colleagues_conversation_asks_once(
        window: AgentWindow, ws: Workspace, sent: Sent) -> None:
    ws.select_session("s2")
    editor = window.suggestion_editor
    assert editor.held_bar.isVisible()
    assert "Kim holds this conversation" in editor.held_note.full_text()
    editor.editor.setPlainText("I can help with that")
    editor.send()
    assert editor.question is not None and not sent.of("chat.send"), "asked first"
    assert "Kim holds this conversation" in editor.question.text()
    editor.question.yes_button.click()
    assert sent.of("chat.send")[-1] == p.ChatSend(text="I can help with that", override=True)
    editor.question = None
    editor.editor.setPlainText("One more thing")
    editor.send()
    assert editor.question is None, "asked once per conversation"
    assert sent.of("chat.send")[-1] == p.ChatSend(text="One more thing", override=True)


def test_a_refused_send_puts_the_reply_back_and_asks(
        window: AgentWindow, ws: Workspace, sent: Sent) -> None:
    ws.select_session("s3")
    editor = window.suggestion_editor
    editor.editor.setPlainText("Your parcel ships today")
    editor.send()
    assert editor.text() == ""
    ref = sent.ids[-1]
    env, payload, _ = p.decode_host(p.error_frame(
        p.ErrorCode.HELD_BY_OTHER, "Kim holds this session", ref=ref, session="s3",
        details={"assignee": {"rep_id": "t_kim", "name": "Kim"}}))
    ws.handle(env, payload)
    assert editor.text() == "Your parcel ships today", "nothing typed is lost"
    assert editor.question is not None and "Kim took this conversation" in editor.question.text()


def test_resolving_with_pending_actions_asks_then_forces(
        window: AgentWindow, ws: Workspace, sent: Sent) -> None:
    Feed(ws, "s1").approval("a1")
    window.status_actions["resolved"].trigger()
    assert window.desk_question is not None and not sent.of("session.status")
    assert "1 action still waits" in window.desk_question.informativeText()
    window.desk_question.yes_button.click()
    assert sent.of("session.status")[-1] == p.SessionStatusSet(status="resolved", force=True)
    window.status_actions["waiting"].trigger()
    assert sent.of("session.status")[-1] == p.SessionStatusSet(status="waiting")


def test_macro_picker_inserts_with_placeholders(window: AgentWindow, ws: Workspace,
                                                qtbot: QtBot) -> None:
    Feed(ws, None)(p.MacroList(macros=[
        p.Macro(name="thanks", text="Thanks {customer_first_name}, {rep_name} here.",
                updated_by="Kim", updated_at=1.0),
        p.Macro(name="order", text="About {order_id}:", updated_by="Kim", updated_at=1.0)]),
        session=None)
    editor = window.suggestion_editor
    editor.editor.setFocus()
    QTest.keyClicks(editor.editor, "Hello! /tha")
    completer = editor.macro_completer
    qtbot.waitUntil(completer.picker.isVisible, timeout=2000)
    assert completer.completionCount() == 1
    QTest.keyClick(completer.picker, Qt.Key.Key_Return)
    assert editor.text() == "Hello! Thanks Alex, Sam here."
    QTest.keyClicks(editor.editor, " /order")
    qtbot.waitUntil(completer.picker.isVisible, timeout=2000)
    QTest.keyClick(completer.picker, Qt.Key.Key_Return)
    assert editor.text() == "Hello! Thanks Alex, Sam here. About {order_id}:"
    assert editor.editor.textCursor().selectedText() == "{order_id}", "unknown: selected"


def test_macros_dialog_saves_and_deletes(window: AgentWindow, ws: Workspace,
                                         sent: Sent) -> None:
    dialog = window.open_macros()
    assert dialog.isVisible()
    dialog.name.setText("Bad Name")
    assert not dialog.save_button.isEnabled() and dialog.problem.full_text()
    dialog.name.setText("late")
    dialog.text.setPlainText("Sorry for the wait, {customer_first_name}.")
    assert dialog.save_button.isEnabled()
    dialog.save_button.click()
    assert sent.of("macro.save")[-1] == p.MacroSave(
        name="late", text="Sorry for the wait, {customer_first_name}.")
    Feed(ws, None)(p.MacroList(macros=[p.Macro(name="late", text="Sorry.", updated_by="Sam",
                                               updated_at=2.0)]), session=None)
    assert dialog.names() == ["late"]
    dialog.delete()
    assert dialog.question is not None
    dialog.question.yes_button.click()
    assert sent.of("macro.delete")[-1] == p.MacroDelete(name="late")


def test_preferences_dialog_toggles_the_model(window: AgentWindow) -> None:
    dialog = window.open_preferences()
    sound = dialog.boxes["notify/sound"]
    assert not sound.isChecked(), "sound is off by default"
    sound.click()
    assert window.preferences.get("notify/sound")
    dialog.boxes["notify/enabled"].click()
    assert not window.preferences.get("notify/enabled") and not sound.isEnabled()
    dialog.defaults_button.click()
    assert window.preferences.get("notify/enabled") and not sound.isChecked()


def test_search_opens_a_hit_in_the_workspace(window: AgentWindow, ws: Workspace,
                                             sent: Sent) -> None:
    s3 = Feed(ws, "s3")
    for n in range(1, 41):
        s3.customer(f"line {n}: " + "a long customer line that takes room " * 3)
    dialog = window.open_search()
    dialog.field.setText("lost parcel")
    dialog.run()
    assert sent.of("search")[-1] == p.SearchRequest(query="lost parcel", limit=20)
    hits = [p.SearchHit(session_id="s_old", seq=4, title="Chat with Old Customer",
                        snippet="my parcel was lost in transit", at=time.time() - 86400 * 8,
                        author_role="customer"),
            p.SearchHit(session_id="s3", seq=2, title="Chat with Jo Lee",
                        snippet="lost parcel note", at=time.time() - 60,
                        author_role="agent", kind="note")]
    env, payload, _ = p.decode_host(p.encode("search.results",
                                             p.SearchResults(query="lost parcel", hits=hits),
                                             ref=sent.ids[-1]))
    ws.handle(env, payload)
    assert dialog.results.count() == 2
    assert "internal note" in dialog.results.item(1).text()
    dialog.results.setCurrentRow(1)
    dialog.open_current()
    assert ws.current_session_id == "s3"
    conversation = window.conversation
    bar = conversation.browser.verticalScrollBar()
    assert conversation.wanted is None, "scrolled to the hit's line"
    assert bar.maximum() > 0 and bar.value() < bar.maximum() // 4, "near the top: line 2"
    dialog.results.setCurrentRow(0)
    dialog.open_current()
    assert ws.current_session_id == "s_old", "a conversation this window never had"
    assert conversation.wanted == ("s_old", 4), "waits for the session's history"
    old = Feed(ws, "s_old")
    for n in range(1, 5):
        old.customer(f"old line {n}")
    assert conversation.wanted is None


async def test_export_writes_markdown_and_pdf(window: AgentWindow, ws: Workspace,
                                              sent: Sent, tmp_path: Path) -> None:
    exporter = window.ensure_exporter()
    md = "# Chat with Alex Morgan\n\n**Alex Morgan:** Where is my parcel?\n\n" \
         "> Internal note (Kim): lost.\n"
    for name, audience in (("t.md", "internal"), ("t.pdf", "customer")):
        assert exporter.export("s1", audience, tmp_path / name)
        assert sent.of("transcript.get")[-1] == p.TranscriptGet(audience=audience)  # type: ignore[arg-type]
        env, payload, _ = p.decode_host(p.encode(
            "transcript", p.Transcript(session_id="s1", audience=audience,  # type: ignore[arg-type]
                                       markdown=md), session="s1", ref=sent.ids[-1]))
        ws.handle(env, payload)
    # written by a worker thread: the window says so until both are there
    assert window.statusBar().currentMessage().startswith("Writing ")
    await until(lambda: not exporter.working, what="both files written")
    assert (tmp_path / "t.md").read_text("utf-8") == md
    assert (tmp_path / "t.pdf").read_bytes().startswith(b"%PDF")
    dialog = exporter.start("internal")
    assert dialog is not None and dialog.isVisible() and dialog.selectedFiles()[0].endswith(
        "-internal.md")
    dialog.close()


def test_notification_when_unfocused_goes_to_the_tray(window: AgentWindow, ws: Workspace) -> None:
    tray = window.ensure_tray()
    window.notifier.set_focused(False)
    Feed(ws, "s3").customer("Hello? Anyone?")
    Feed(ws, "s2").customer("Kim's customer")  # a colleague's: no notification
    assert tray.shown == [("Jo Lee (unassigned)", "Hello? Anyone?")]
    assert tray.tooltip() == "HITL Desk — 2 unread"
    assert window.windowTitle().startswith("(2) ")
    assert tray.beeps == 0, "no sound by default"
    window.preferences.set("notify/sound", True)
    Feed(ws, "s1").customer("Mine")
    assert tray.beeps == 1 and tray.shown[-1][0] == "Alex Morgan"
