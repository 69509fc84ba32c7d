"""The agent window: real widgets offscreen, fed real protocol messages."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from PySide6.QtCore import Qt
from PySide6.QtTest import QTest
from PySide6.QtWidgets import QApplication, QDockWidget, QToolBar
from pytestqt.qtbot import QtBot

from hitl_desktop.client.workspace import Workspace
from hitl_desktop.core import protocol as p
from hitl_desktop.ui.agent.window import AgentWindow
from tests.ui.agent_feed import Feed, Sent
from tests.ui.conftest import dark_palette

# the offscreen platform plugin cannot propagate dock size hints; harmless there
pytestmark = pytest.mark.qt_log_ignore("This plugin does not support")

DOCKS = {"inbox", "conversation", "suggestion", "articles", "viewer", "actions", "customer",
         "kb"}


@pytest.fixture
def window(qtbot: QtBot, ws: Workspace) -> AgentWindow:
    win = AgentWindow(ws)
    qtbot.addWidget(win)
    win.show()
    qtbot.waitExposed(win)
    win.activateWindow()
    return win


CTRL = Qt.KeyboardModifier.ControlModifier
SHIFT = Qt.KeyboardModifier.ShiftModifier
ALT = Qt.KeyboardModifier.AltModifier


def key(win: AgentWindow, k: Qt.Key, mods: Qt.KeyboardModifier) -> None:
    """Press a shortcut as the user would (through the focused widget)."""
    QTest.keyClick(QApplication.focusWidget() or win, k, mods)


def test_every_dock_and_toolbar_has_an_object_name(window: AgentWindow) -> None:
    docks = window.findChildren(QDockWidget)
    names = {d.objectName() for d in docks}
    assert {f"dock_{k}" for k in DOCKS} <= names
    assert all(d.objectName() for d in docks)
    assert all(t.objectName() for t in window.findChildren(QToolBar))
    assert window.suggestion_editor is window.docks["suggestion"].widget()
    assert window.action_queue is window.docks["actions"].widget()


def test_view_menu_toggles_each_panel_and_reset_layout(window: AgentWindow,
                                                       qtbot: QtBot) -> None:
    actions = {a.objectName(): a for a in window.view_menu.actions()}
    for k in DOCKS:
        toggle = actions[f"toggle_{k}"]
        assert toggle.isCheckable() and toggle.isChecked()
    actions["toggle_customer"].trigger()
    assert not window.docks["customer"].isVisible()
    actions["toggle_customer"].trigger()
    assert window.docks["customer"].isVisible()
    window.docks["inbox"].hide()
    window.docks["actions"].setFloating(True)
    window.reset_action.trigger()
    qtbot.waitUntil(window.docks["inbox"].isVisible)
    assert not window.docks["actions"].isFloating()


def test_layout_is_saved_and_restored(qtbot: QtBot, ws: Workspace, tmp_path: Path) -> None:
    first = AgentWindow(ws)
    qtbot.addWidget(first)
    first.show()
    qtbot.waitExposed(first)
    first.docks["customer"].hide()
    first.tabifyDockWidget(first.docks["conversation"], first.docks["suggestion"])
    first.close()
    ini = Path(os.environ["HITL_CONFIG_DIR"]) / "agent-window.ini"
    assert ini.is_file()
    second = AgentWindow(ws)
    qtbot.addWidget(second)
    second.show()
    qtbot.waitExposed(second)
    assert not second.docks["customer"].isVisible()
    tabbed = second.tabifiedDockWidgets(second.docks["conversation"])
    assert second.docks["suggestion"] in tabbed
    third = AgentWindow(ws, restore=False)
    qtbot.addWidget(third)
    third.show()
    assert third.docks["customer"].isVisible()


def test_streaming_draft_shows_live_and_stays_editable(window: AgentWindow, feed: Feed,
                                                       ws: Workspace, qtbot: QtBot) -> None:
    ed = window.suggestion_editor
    feed(p.DraftStarted(turn_id="t1", reason="customer_message", provider="offline"))
    assert ed.state_chip.property("state") == "streaming"
    assert "Drafting" in ed.state_chip.text()
    feed.stream("t1", "You can cancel while the order is pending. ")
    qtbot.waitUntil(lambda: ed.text() == "You can cancel while the order is pending. ")
    assert not ed.editor.isReadOnly()
    # the representative edits mid-stream: their words are never replaced
    ed.editor.setFocus()
    ed.editor.moveCursor(ed.editor.textCursor().MoveOperation.End)
    QTest.keyClicks(ed.editor, "Hi Alex! ")
    mine = ed.text()
    feed(p.DraftDelta(turn_id="t1", offset=43, text="Shipped orders cannot be cancelled."))
    ws.flush()
    assert ed.text() == mine
    assert ed.reload_bar.isVisible()
    feed(p.DraftCompleted(turn_id="t1", text="You can cancel while the order is pending. "
                          "Shipped orders cannot be cancelled.", citations=[
                              p.Citation(article_id="kb/cancel-order",
                                         title="Cancelling an order")]))
    assert ed.text() == mine
    assert "Cancelling an order" in ed.citations.text() and ed.citations.isVisible()
    assert ed.state_chip.property("state") == "completed"
    QTest.mouseClick(ed.reload_button, Qt.MouseButton.LeftButton)
    assert ed.text().endswith("Shipped orders cannot be cancelled.")
    assert not ed.reload_bar.isVisible()


def test_stale_and_failed_drafts_are_marked(window: AgentWindow, feed: Feed) -> None:
    ed = window.suggestion_editor
    feed(p.DraftStarted(turn_id="t1", reason="customer_message", provider="offline"))
    feed(p.DraftCompleted(turn_id="t1", text="Old answer"))
    feed(p.DraftStale(turn_id="t1", reason="the customer wrote again"))
    assert ed.state_chip.property("state") == "stale"
    assert "customer wrote again" in ed.state_chip.text()
    feed(p.DraftStarted(turn_id="t2", reason="regenerate", provider="openai"))
    feed(p.DraftFailed(turn_id="t2", code=p.ErrorCode.ASSISTANT_UNAVAILABLE, message="timeout"))
    assert ed.state_chip.property("state") == "failed" and "timeout" in ed.problem.text()


def test_send_with_ctrl_enter_carries_the_draft_id(window: AgentWindow, feed: Feed,
                                                   sent: Sent, qtbot: QtBot) -> None:
    ed = window.suggestion_editor
    feed(p.DraftStarted(turn_id="t1", reason="customer_message", provider="offline"))
    feed(p.DraftCompleted(turn_id="t1", text="Here is how to cancel."))
    ed.editor.setFocus()
    QTest.keyClick(ed.editor, Qt.Key.Key_Return, Qt.KeyboardModifier.ControlModifier)
    msg = sent.of("chat.send")[-1]
    assert isinstance(msg, p.ChatSend)
    assert msg.text == "Here is how to cancel." and msg.draft_id == "t1"
    assert ed.text() == ""


def test_regenerate_and_discard_buttons(window: AgentWindow, feed: Feed, sent: Sent,
                                        qtbot: QtBot) -> None:
    ed = window.suggestion_editor
    feed(p.DraftStarted(turn_id="t1", reason="customer_message", provider="offline"))
    feed(p.DraftCompleted(turn_id="t1", text="Draft"))
    QTest.mouseClick(ed.regenerate_button, Qt.MouseButton.LeftButton)
    assert sent.items[-1][0] == "draft.regenerate"
    QTest.mouseClick(ed.discard_button, Qt.MouseButton.LeftButton)
    assert sent.items[-1][0] == "draft.discard" and ed.text() == ""


def test_approve_shows_the_exact_call_then_sends_edited_args(window: AgentWindow, feed: Feed,
                                                             sent: Sent, qtbot: QtBot) -> None:
    feed.approval("a1", "cancel_order", {"order_id": "ORD1001"})
    queue = window.action_queue
    card = queue.first_card()
    assert card is not None and card.approval.approval_id == "a1"
    card.form.field("order_id").set_value("ORD1008")
    QTest.mouseClick(card.approve_button, Qt.MouseButton.LeftButton)
    assert card.confirm.isVisible()
    assert card.call_label.property("call") == 'cancel_order(order_id="ORD1008")'
    assert "ORD1008" in card.call_label.text()
    assert "You changed" in card.diff_label.text() and "ORD1001" in card.diff_label.text()
    assert sent.of("approval.approve") == [], "nothing runs before the confirmation"
    QTest.mouseClick(card.run_button, Qt.MouseButton.LeftButton)
    msg = sent.of("approval.approve")[-1]
    assert isinstance(msg, p.ApprovalApprove)
    assert msg.approval_id == "a1" and msg.arguments == {"order_id": "ORD1008"}
    assert sent.items[-1][2] == "s1"
    feed(p.ApprovalUpdated(approval_id="a1", state="executed", by="Sam",
                           arguments={"order_id": "ORD1008"},
                           result={"message": "Order ORD1008 cancelled"}))
    assert queue.first_card() is None
    top = queue.history.topLevelItem(0)
    assert top is not None and "Executed" in top.text(2)
    assert "ORD1008 cancelled" in top.text(3)


def test_invalid_arguments_block_the_confirmation(window: AgentWindow, feed: Feed,
                                                  qtbot: QtBot) -> None:
    feed.approval("a1", "cancel_order", {"order_id": "ORD1001"})
    card = window.action_queue.first_card()
    assert card is not None
    card.form.field("order_id").set_value("")
    QTest.mouseClick(card.approve_button, Qt.MouseButton.LeftButton)
    assert not card.confirm.isVisible()
    assert "required" in card.form.errors.text()


def test_reject_needs_a_reason(window: AgentWindow, feed: Feed, sent: Sent,
                               qtbot: QtBot) -> None:
    feed.approval("a1")
    card = window.action_queue.first_card()
    assert card is not None
    QTest.mouseClick(card.reject_button, Qt.MouseButton.LeftButton)
    assert card.reject_panel.isVisible() and not card.reject_confirm.isEnabled()
    card.confirm_reject()
    assert sent.of("approval.reject") == []
    QTest.keyClicks(card.reason, "Order already shipped")
    assert card.reject_confirm.isEnabled()
    QTest.mouseClick(card.reject_confirm, Qt.MouseButton.LeftButton)
    msg = sent.of("approval.reject")[-1]
    assert isinstance(msg, p.ApprovalReject) and msg.reason == "Order already shipped"


def test_keyboard_shortcuts(window: AgentWindow, feed: Feed, ws: Workspace, sent: Sent,
                            qtbot: QtBot) -> None:
    feed.approval("a1")
    feed.approval("a2", "reset_password", {"user_id": "CUST1001"})
    window.inbox.list.setFocus()
    key(window, Qt.Key.Key_A, CTRL | SHIFT)
    card = window.action_queue.first_card()
    assert card is not None and card.approval.approval_id == "a1" and card.confirm.isVisible()
    key(window, Qt.Key.Key_A, CTRL | SHIFT)
    assert [m.approval_id for m in sent.of("approval.approve")] == ["a1"]  # type: ignore[attr-defined]
    feed(p.ApprovalUpdated(approval_id="a1", state="executed"))
    window.inbox.list.setFocus()
    key(window, Qt.Key.Key_R, CTRL | SHIFT)
    card2 = window.action_queue.first_card()
    assert card2 is not None and card2.approval.approval_id == "a2"
    assert card2.reject_panel.isVisible()
    window.inbox.list.setFocus()
    key(window, Qt.Key.Key_3, ALT)
    assert QApplication.focusWidget() is window.suggestion_editor.editor
    key(window, Qt.Key.Key_1, ALT)
    assert QApplication.focusWidget() is window.inbox.list
    before = ws.current_session_id
    key(window, Qt.Key.Key_Down, ALT)
    assert ws.current_session_id != before
    key(window, Qt.Key.Key_PageUp, CTRL)
    assert ws.current_session_id == before


def test_inbox_choice_switches_every_panel(window: AgentWindow, ws: Workspace,
                                           qtbot: QtBot) -> None:
    Feed(ws, "s2")(p.CustomerDetails(customer={"name": "Priya Shah", "customer_id": "CUST1002"},
                                     orders=[{"order_id": "ORD1009", "status": "shipped",
                                              "total": 20.0}]))
    Feed(ws, "s2").customer("Where is my parcel?")
    rows = window.inbox.session_ids()
    assert set(rows) == {"s1", "s2"}
    index = window.inbox.model.index(rows.index("s2"), 0)
    window.inbox.list.setCurrentIndex(index)
    assert ws.current_session_id == "s2"
    assert "Priya Shah" in window.customer.profile.text()
    cell = window.customer.orders.item(0, 0)
    assert cell is not None and cell.text() == "ORD1009"
    assert "Where is my parcel?" in window.conversation.browser.toPlainText()
    assert "Priya Shah" in window.session_title.text()


def test_conversation_shows_tool_calls_compactly_with_expandable_results(
        window: AgentWindow, feed: Feed) -> None:
    feed.customer("Help me cancel order ORD1001")
    feed(p.ToolCall(turn_id="t1", call_id="c1", name="get_order",
                    arguments={"order_id": "ORD1001"}, mode="auto"))
    feed(p.ToolResult(call_id="c1", name="get_order", ok=True,
                      output={"status": "pending", "tracking_number": "1Z999"}))
    text = window.conversation.browser.toPlainText()
    assert 'get_order(order_id="ORD1001")' in text and "auto-run" in text
    assert "1Z999" not in text
    window.conversation.toggle("c1")
    assert "1Z999" in window.conversation.browser.toPlainText()
    window.conversation.toggle("c1")
    assert "1Z999" not in window.conversation.browser.toPlainText()


def test_articles_open_in_the_viewer_with_the_passage_highlighted(
        window: AgentWindow, feed: Feed, sent: Sent) -> None:
    feed(p.ArticlesFound(turn_id="t1", articles=[
        p.Article(article_id="kb/returns", title="Returns", kind="kb", score=0.4,
                  snippet="Returns are accepted within 30 days."),
        p.Article(article_id="kb/cancel-order", title="Cancelling an order", kind="kb",
                  score=0.9, snippet="Once an order has **shipped** it cannot be cancelled."),
    ]))
    panel = window.articles
    assert [a.article_id for a in panel.articles()] == ["kb/cancel-order", "kb/returns"]
    assert "0.90" in panel.list.item(0).text()
    panel.choose_row(0)
    req = sent.of("article.get")[-1]
    assert isinstance(req, p.ArticleGet) and req.article_id == "kb/cancel-order"
    feed(p.ArticleContent(article_id="kb/cancel-order", title="Cancelling an order", kind="kb",
                          markdown="# Cancelling an order\n\nOrders can be cancelled while "
                                   "pending.\n\nOnce an order has **shipped** it cannot be "
                                   "cancelled. Return it instead.\n"), None)
    viewer = window.article_viewer
    assert "Cancelling an order" in viewer.title.text()
    assert "Once an order has shipped it cannot be cancelled" in viewer.highlighted_text()
    assert "pending" not in viewer.highlighted_text()
    assert window.docks["viewer"].isVisible()


def test_status_bar_shows_connection_and_engine(window: AgentWindow, ws: Workspace,
                                                feed: Feed) -> None:
    ws.set_connection_state("reconnecting")
    assert "Reconnecting" in window.connection_label.text()
    ws.set_connection_state("connected")
    assert "Connected" in window.connection_label.text()
    feed(p.AssistantStatus(provider="offline", model=None, is_ai=False, state="ready"), None)
    assert window.assistant_label.text() == "Offline assistant — not an AI model"
    feed(p.AssistantStatus(provider="openai", model="gpt-5-mini", is_ai=True, state="ready"),
         None)
    assert "gpt-5-mini" in window.assistant_label.text()
    # an engine notice while ready (OpenAI refuses to stream for an unverified org)
    feed(p.AssistantStatus(provider="openai", model="gpt-5-mini", is_ai=True, state="ready",
                           message="drafts arrive whole instead of word by word."), None)
    assert "drafts arrive whole" in window.assistant_label.full_text()


def test_unsent_edits_survive_switching_sessions(window: AgentWindow, ws: Workspace,
                                                 feed: Feed) -> None:
    ed = window.suggestion_editor
    feed(p.DraftStarted(turn_id="t1", reason="customer_message", provider="offline"))
    feed(p.DraftCompleted(turn_id="t1", text="Draft for Alex"))
    ed.editor.setFocus()
    QTest.keyClicks(ed.editor, " (checked)")
    mine = ed.text()
    assert mine.endswith("(checked)") and ed.user_edited
    ws.select_session("s2")
    assert ed.text() == ""
    ws.select_session("s1")
    assert ed.text() == mine and ed.user_edited


def test_typing_in_the_editor_tells_the_customer(window: AgentWindow, sent: Sent) -> None:
    ed = window.suggestion_editor
    ed.editor.setFocus()
    QTest.keyClicks(ed.editor, "Hi")
    typing = sent.of("typing")
    assert typing and isinstance(typing[0], p.Typing) and typing[0].active
    ed.send()
    assert sent.of("chat.send")[-1].text == "Hi"  # type: ignore[attr-defined]


def test_follows_a_dark_palette(window: AgentWindow, qapp: QApplication) -> None:
    light_css = window.styleSheet()
    with dark_palette(qapp):
        assert window.styleSheet() != light_css
        assert "#1d2228" in window.styleSheet()  # the dark surface colour of ui.theme
    assert window.styleSheet() == light_css


def test_close_conversation_takes_two_presses(window: AgentWindow, sent: Sent) -> None:
    window.inbox.list.setFocus()
    key(window, Qt.Key.Key_W, CTRL | SHIFT)
    assert sent.of("session.close") == []
    assert "again" in window.statusBar().currentMessage()
    key(window, Qt.Key.Key_W, CTRL | SHIFT)
    assert len(sent.of("session.close")) == 1 and sent.items[-1][2] == "s1"


def test_window_title_counts_unread_messages(window: AgentWindow, ws: Workspace) -> None:
    Feed(ws, "s2").customer("Hello?")
    Feed(ws, "s2").customer("Anyone there?")
    assert window.windowTitle().startswith("(2) Alex Morgan")
    ws.select_session("s2")
    assert window.windowTitle() == "Priya Shah — HITL Desk"


def test_a_refused_approval_lets_the_representative_retry(window: AgentWindow, feed: Feed,
                                                          sent: Sent) -> None:
    feed.approval("a1", "issue_voucher", {"user_id": "CUST1001", "amount": 20, "reason": "x"})
    card = window.action_queue.first_card()
    assert card is not None
    assert card.ask_approve()
    card.confirm_approve()
    assert card.waiting.isVisible() and not card.form.isEnabled()
    feed.error(p.ErrorCode.INVALID_ARGUMENTS, "amount must be at most 50.00", ref=sent.ids[-1])
    assert not card.waiting.isVisible() and card.form.isEnabled()
    assert card.approve_button.isVisible()
    assert "at most 50.00" in card.form.errors.text()
    assert "at most 50.00" in window.statusBar().currentMessage()


def test_a_citation_without_a_quote_highlights_the_matched_snippet(
        window: AgentWindow, feed: Feed) -> None:
    feed(p.DraftStarted(turn_id="t1", reason="customer_message", provider="offline"))
    feed(p.ArticlesFound(turn_id="t1", articles=[p.Article(
        article_id="faq/refunds", title="Refunds", kind="faq", score=0.8,
        snippet="Refunds go back to the original payment method within 5-10 business days.")]))
    feed(p.DraftCompleted(turn_id="t1", text="Your refund is on its way.", citations=[
        p.Citation(article_id="faq/refunds", title="Refunds")]))
    ed = window.suggestion_editor
    ed.citations.linkActivated.emit("faq/refunds")
    feed(p.ArticleContent(article_id="faq/refunds", title="Refunds", kind="faq",
                          markdown="# Refunds\n\nWe refund fast.\n\nRefunds go back to the "
                                   "original payment method within 5-10 business days.\n"), None)
    assert "within 5-10 business days" in window.article_viewer.highlighted_text()


def test_conversation_appends_match_a_full_render(window: AgentWindow, ws: Workspace,
                                                  feed: Feed, qtbot: QtBot) -> None:
    from hitl_desktop.ui.agent.conversation import ConversationPanel

    for i in range(5):
        feed.customer(f"question {i}")
        feed.agent(f"answer {i}")
    feed(p.ToolCall(turn_id="t1", call_id="c9", name="get_order_history",
                    arguments={"user_id": "CUST1001"}, mode="auto"))
    fresh = ConversationPanel(ws)
    qtbot.addWidget(fresh)
    assert window.conversation.browser.toPlainText() == fresh.browser.toPlainText()
    assert "answer 4" in fresh.browser.toPlainText()
