"""The steer line under the suggestion editor (issue 16 item 4): real widgets offscreen,
fed real protocol frames; what it sends is recorded."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from PySide6.QtCore import Qt
from PySide6.QtTest import QTest
from pytestqt.qtbot import QtBot

from hitl_desktop.client.workspace import Workspace
from hitl_desktop.core import protocol as p
from hitl_desktop.ui.agent.suggestion import SuggestionEditor
from hitl_desktop.ui.agent.window import AgentWindow
from tests.ui.agent_feed import Feed, Sent
from tests.ui.conftest import agent_window_on, dark_palette, running_host, until
from tests.ui.test_agent_window_relay import Customer

pytestmark = pytest.mark.qt_log_ignore("This plugin does not support")

FIRST = "Your order ORD1003 was delivered on 2026-11-20. Is there anything else I can help with?"
SHORT = "Your order ORD1003 was delivered on 2026-11-20."
FORMAL = "Your order ORD1003 was delivered on 2026-11-20.\n\nKind regards"


@pytest.fixture
def window(qtbot: QtBot, ws: Workspace) -> AgentWindow:
    win = AgentWindow(ws)
    qtbot.addWidget(win)
    win.show()
    qtbot.waitExposed(win)
    return win


def draft(feed: Feed, turn: str, text: str, *, replaces: str | None = None,
          instruction: str | None = None) -> None:
    feed(p.DraftStarted(turn_id=turn, reason="steer" if replaces else "customer_message",
                        provider="offline", replaces=replaces, instruction=instruction))
    feed.stream(turn, text)
    feed(p.DraftCompleted(turn_id=turn, text=text))
    feed.ws.flush()


def steers(sent: Sent) -> list[p.DraftSteer]:
    return [s for s in sent.of("draft.steer") if isinstance(s, p.DraftSteer)]


def test_enter_and_chips_steer_the_draft_in_the_editor(window: AgentWindow, feed: Feed,
                                                      sent: Sent) -> None:
    ed = window.suggestion_editor
    line = ed.steer
    draft(feed, "t1", FIRST)
    assert line.isVisible() and line.line.isEnabled() and not line.undo_button.isEnabled()
    QTest.keyClicks(line.line, "offer a $10 voucher")
    QTest.keyClick(line.line, Qt.Key.Key_Return)
    assert [(s.instruction, s.draft_id) for s in steers(sent)] == [("offer a $10 voucher", "t1")]
    assert line.line.text() == ""
    QTest.mouseClick(line.chips[0], Qt.MouseButton.LeftButton)  # "Shorter"
    QTest.mouseClick(line.chips[1], Qt.MouseButton.LeftButton)  # "More formal"
    assert [s.instruction for s in steers(sent)][1:] == ["shorter", "more formal"]
    assert sent.items[-1][2] == "s1"


def test_new_drafts_replace_the_text_and_undo_restores_each_previous_one(
        window: AgentWindow, feed: Feed, sent: Sent, qtbot: QtBot) -> None:
    ed = window.suggestion_editor
    line = ed.steer
    draft(feed, "t1", FIRST)
    # the representative edits the first draft, then asks for a shorter one
    ed.editor.setFocus()
    QTest.keyClicks(ed.editor, " Thanks!")
    edited = ed.text()
    assert ed.user_edited
    line.steer("shorter")
    draft(feed, "t2", SHORT, replaces="t1", instruction="shorter")
    assert ed.text() == SHORT and not ed.reload_bar.isVisible()
    line.steer("more formal")
    assert steers(sent)[-1].draft_id == "t2"
    draft(feed, "t3", FORMAL, replaces="t2", instruction="more formal")
    assert ed.text() == FORMAL and line.undo_button.isEnabled()
    assert "more formal" in line.undo_button.toolTip()

    # Undo (button): the short draft; Ctrl+Z in the empty line: the first, with the edits
    QTest.mouseClick(line.undo_button, Qt.MouseButton.LeftButton)
    assert ed.text() == SHORT and ed.draft is not None and ed.draft.turn_id == "t2"
    line.line.setFocus()
    QTest.keyClick(line.line, Qt.Key.Key_Z, Qt.KeyboardModifier.ControlModifier)
    assert ed.text() == edited and ed.draft is not None and ed.draft.turn_id == "t1"
    assert not line.undo_button.isEnabled()
    # sending now sends the restored draft's text with its own id
    QTest.keyClick(ed.editor, Qt.Key.Key_Return, Qt.KeyboardModifier.ControlModifier)
    msg = sent.of("chat.send")[-1]
    assert isinstance(msg, p.ChatSend) and msg.draft_id == "t1" and msg.text == edited.strip()
    # late frames of a draft left behind do not take the editor back
    feed(p.DraftCompleted(turn_id="t3", text=FORMAL))
    assert ed.draft is not None and ed.draft.turn_id == "t1"


def test_ctrl_z_undoes_typing_in_the_line_first(window: AgentWindow, feed: Feed,
                                                sent: Sent) -> None:
    line = window.suggestion_editor.steer
    draft(feed, "t1", FIRST)
    line.steer("shorter")
    draft(feed, "t2", SHORT, replaces="t1", instruction="shorter")
    QTest.keyClicks(line.line, "ask for a photo")
    QTest.keyClick(line.line, Qt.Key.Key_Z, Qt.KeyboardModifier.ControlModifier)
    assert window.suggestion_editor.draft.turn_id == "t2"  # type: ignore[union-attr]
    assert line.line.text() != "ask for a photo"


def test_undo_of_a_streaming_draft_discards_it_on_the_host(window: AgentWindow, feed: Feed,
                                                           sent: Sent) -> None:
    ed = window.suggestion_editor
    draft(feed, "t1", FIRST)
    ed.steer.steer("shorter")
    feed(p.DraftStarted(turn_id="t2", reason="steer", provider="offline", replaces="t1",
                        instruction="shorter"))
    feed.stream("t2", "Your order")
    assert ed.steer.undo()
    discard = sent.of("draft.discard")[-1]
    assert isinstance(discard, p.DraftDiscard) and discard.turn_id == "t2"
    feed.stream("t2", "Your order ORD1003")  # late deltas are ignored
    feed.ws.flush()
    assert ed.text() == FIRST


def test_refusals_show_under_the_line_and_a_new_reply_forgets_undo(
        window: AgentWindow, feed: Feed, sent: Sent, ws: Workspace) -> None:
    line = window.suggestion_editor.steer
    draft(feed, "t1", FIRST)
    line.steer("write it in French")
    message = "The offline assistant (no AI model) cannot follow \u201cfrench\u201d."
    feed.error(p.ErrorCode.UNSUPPORTED, message, ref=sent.ids[-1])
    assert line.problem.isVisible() and line.problem.full_text() == message
    line.steer("shorter")
    assert not line.problem.isVisible()
    draft(feed, "t2", SHORT, replaces="t1", instruction="shorter")
    assert ws.can_undo()
    feed.customer("hello?")
    draft(feed, "t3", FIRST)  # a new reply: nothing to go back to
    assert not ws.can_undo() and not line.undo_button.isEnabled()
    # a closed conversation cannot be steered
    feed(p.SessionClosed(by="Sam", reason="resolved"))
    assert not line.line.isEnabled() and not line.chips[0].isEnabled()


def test_in_a_narrow_dock_the_chips_go_under_the_line(ws: Workspace, feed: Feed,
                                                       qtbot: QtBot) -> None:
    editor = SuggestionEditor(ws)  # on its own, as in a floated dock
    qtbot.addWidget(editor)
    editor.resize(340, 400)
    editor.show()
    qtbot.waitExposed(editor)
    line = editor.steer
    draft(feed, "t1", FIRST)
    qtbot.waitUntil(lambda: line.chips[0].y() > line.line.y() + line.line.height() // 2)
    assert line.line.width() >= 200 and line.undo_button.isVisible()
    editor.resize(900, 400)
    qtbot.waitUntil(lambda: abs(line.chips[0].geometry().center().y()
                                - line.line.geometry().center().y()) < 4)
    assert line.line.width() >= 200


def test_a_card_the_representative_asked_for_says_so(window: AgentWindow, feed: Feed) -> None:
    feed(p.ApprovalCreated(
        approval_id="a1", call_id="c1", tool="issue_voucher", description="voucher",
        arguments={"user_id": "CUST1001", "amount": 10, "reason": "Goodwill voucher"},
        parameters_schema={"type": "object"}, expires_at=None,
        provenance=p.Provenance(message_id="m1", quote="My parcel is late",
                                instruction="offer a $10 voucher", instructed_by="Dana")))
    feed.ws.flush()
    text = window.action_queue.cards["a1"].provenance_label.full_text()
    assert text.startswith("Asked for by Dana: \u201coffer a $10 voucher\u201d")
    assert "In reply to the customer: \u201cMy parcel is late\u201d" in text
    assert "Customer wrote" not in text


async def test_steering_against_a_real_host(tmp_path: Path, qtbot: Any) -> None:
    """Production stack (HostConnection -> Workspace -> AgentWindow) against a real host
    with the offline co-pilot: chips and the line steer, the voucher becomes a card,
    Undo goes back, an instruction it cannot follow is refused under the line."""
    async with running_host(tmp_path / "host", copilot=True) as host:
        created = host.create_session(customer_id="CUST1001", title="Alex")
        async with agent_window_on(host.desk_link, qtbot, tmp_path / "config") as (
                _conn, ws, window):
            await until(lambda: ws.session(created.session_id) is not None, what="session")
            ws.select_session(created.session_id)
            view = ws.session(created.session_id)
            assert view is not None
            editor, line = window.suggestion_editor, window.suggestion_editor.steer
            async with Customer(created.customer_link) as customer:
                await customer.say("My order ORD1003 is late, where is it? It's been ages.")
                await until(lambda: view.draft is not None and view.draft.state == "completed",
                            what="first draft")
                first = view.draft
                assert first is not None

                def completed_after(turn: str) -> bool:
                    d = view.draft
                    return d is not None and d.turn_id != turn and d.state == "completed"

                QTest.mouseClick(line.chips[0], Qt.MouseButton.LeftButton)  # Shorter
                await until(lambda: completed_after(first.turn_id), what="shorter draft")
                ws.flush()
                short = view.draft
                assert short is not None and len(short.text) < len(first.text)
                assert editor.text() == short.text
                QTest.keyClicks(line.line, "offer a $10 voucher")
                QTest.keyClick(line.line, Qt.Key.Key_Return)
                await until(lambda: completed_after(short.turn_id), what="voucher draft")
                await until(lambda: view.pending_approvals, what="voucher card")
                card = window.action_queue.first_card()
                assert card is not None and card.approval.tool == "issue_voucher"
                assert card.approval.arguments["amount"] == 10
                assert "Asked for by" in card.provenance_label.full_text()
                ws.flush()
                assert "$10.00 voucher" in editor.text()

                assert line.undo()  # back to the short draft
                assert editor.text() == short.text and ws.can_undo()
                line.steer("write it in French")
                await until(line.problem.isVisible, what="refusal under the line")
                assert "cannot follow" in line.problem.full_text()
                assert view.draft is short
                assert not customer.agent_messages()  # nothing reached the customer


def test_the_chips_follow_a_dark_palette(window: AgentWindow, qapp: Any) -> None:
    line = window.suggestion_editor.steer
    light = line.styleSheet()
    with dark_palette(qapp):
        assert line.styleSheet() != light and "#1d2228" in line.styleSheet()
    assert line.styleSheet() == light


def test_a_regenerated_draft_keeps_the_way_back(window: AgentWindow, feed: Feed,
                                                ws: Workspace) -> None:
    """Regenerate drafts the same reply again (the host keeps the instructions in force):
    Undo goes back to the draft it replaced, and the line still says what was asked."""
    ed, line = window.suggestion_editor, window.suggestion_editor.steer
    draft(feed, "t1", FIRST)
    line.steer("shorter")
    draft(feed, "t2", SHORT, replaces="t1", instruction="shorter")
    feed(p.DraftStarted(turn_id="t3", reason="regenerate", provider="offline"))
    feed(p.DraftCompleted(turn_id="t3", text="Your order ORD1003 arrived on 2026-11-20."))
    ws.flush()
    assert ws.can_undo() and line.line.placeholderText().startswith("Steered: shorter")
    assert line.undo() and ed.text() == SHORT
    assert line.undo() and ed.text() == FIRST and not ws.can_undo()
