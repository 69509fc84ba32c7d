"""A session's lifecycle, coherent in every window: close asks, closed is read-only,
reopen exists for agents, panels follow every event.

Agent-window tests feed real protocol messages (tests/ui/agent_feed.py); the customer
window runs against a real relay on loopback, the agent side through a real
HostConnection.
"""

from __future__ import annotations

import asyncio
import html
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from PySide6.QtCore import QModelIndex, Qt
from PySide6.QtTest import QTest
from pytestqt.qtbot import QtBot

from hitl_desktop.client.chat import ChatModel
from hitl_desktop.client.connection import HostConnection
from hitl_desktop.client.workspace import Workspace
from hitl_desktop.core import protocol as p
from hitl_desktop.core.links import InviteLink
from hitl_desktop.ui.agent.inbox import ROLE_ID
from hitl_desktop.ui.agent.window import AgentWindow
from hitl_desktop.ui.customer_window import CustomerWindow
from tests.ui.agent_feed import Feed, Sent
from tests.ui.conftest import running_host, until

pytestmark = pytest.mark.qt_log_ignore("This plugin does not support")

CLICK = Qt.MouseButton.LeftButton


@pytest.fixture
def window(qtbot: QtBot, ws: Workspace, tmp_path: Path) -> AgentWindow:
    win = AgentWindow(ws, config_dir=tmp_path, restore=False)
    qtbot.addWidget(win)
    win.resize(1342, 744)
    win.show()
    qtbot.waitExposed(win)
    return win


def test_close_asks_when_an_action_is_pending(window: AgentWindow, feed: Feed,
                                              sent: Sent) -> None:
    feed.approval("a1")
    window.close_session()
    question = window.question
    assert question is not None and question.isVisible()
    assert "waiting for approval" in question.informativeText()
    assert sent.of("session.close") == [], "nothing closes before the answer"
    QTest.mouseClick(question.no_button, CLICK)
    assert sent.of("session.close") == []
    window.close_session()
    assert window.question is not None
    QTest.mouseClick(window.question.yes_button, CLICK)
    assert len(sent.of("session.close")) == 1 and sent.items[-1][2] == "s1"


def test_a_closed_session_is_read_only_keeps_the_draft_and_reopens(
        window: AgentWindow, feed: Feed, sent: Sent) -> None:
    ed = window.suggestion_editor
    feed(p.DraftStarted(turn_id="t1", reason="customer_message", provider="offline"))
    feed(p.DraftCompleted(turn_id="t1", text="Here is how to cancel."))
    feed.approval("a1")
    QTest.keyClicks(ed.editor, " Anything else?")
    feed(p.SessionClosed(by="Sam", reason=None))
    # read-only, with the reason, and the draft kept
    assert not ed.send_button.isEnabled() and "closed" in ed.send_button.toolTip()
    assert not ed.regenerate_button.isEnabled()
    assert ed.closed_bar.isVisible() and "draft is kept" in ed.closed_note.text()
    before = len(sent.items)
    ed.send()
    QTest.keyClick(ed.editor, Qt.Key.Key_Return, Qt.KeyboardModifier.ControlModifier)
    assert sent.of("chat.send") == [] and len(sent.items) == before
    assert ed.text() == "Here is how to cancel. Anything else?"
    assert not window.approve_action.isEnabled() and "closed" in window.approve_action.toolTip()
    card = window.action_queue.first_card()
    assert card is not None and not card.isEnabled()
    assert "conversation closed" in window.action_queue.pending_title.text()
    assert "closed" in window.session_title.full_text()
    # reopen: from the bar or the Conversation menu
    assert window.reopen_session_action.isEnabled()
    assert not window.close_session_action.isEnabled()
    QTest.mouseClick(ed.reopen_button, CLICK)
    assert sent.of("session.reopen") and sent.items[-1][2] == "s1"
    feed(p.SessionReopened(by="Sam"))
    assert ed.send_button.isEnabled() and not ed.closed_bar.isVisible()
    assert not window.reopen_session_action.isEnabled()
    assert card.isEnabled()
    assert "Session reopened by Sam" in window.conversation.browser.toPlainText()
    QTest.mouseClick(ed.send_button, CLICK)
    msg = sent.of("chat.send")[-1]
    assert isinstance(msg, p.ChatSend) and msg.text == "Here is how to cancel. Anything else?"


def test_regenerate_asks_before_replacing_an_edited_draft(window: AgentWindow, feed: Feed,
                                                          sent: Sent) -> None:
    ed = window.suggestion_editor
    feed(p.DraftStarted(turn_id="t1", reason="customer_message", provider="offline"))
    feed(p.DraftCompleted(turn_id="t1", text="Draft"))
    QTest.mouseClick(ed.regenerate_button, CLICK)  # untouched: no question
    assert len(sent.of("draft.regenerate")) == 1
    feed(p.DraftStarted(turn_id="t2", reason="regenerate", provider="offline"))
    feed(p.DraftCompleted(turn_id="t2", text="Second draft"))
    QTest.keyClicks(ed.editor, " with my careful edits")
    QTest.mouseClick(ed.regenerate_button, CLICK)
    assert ed.question is not None and ed.question.isVisible()
    assert len(sent.of("draft.regenerate")) == 1, "nothing replaced before the answer"
    QTest.mouseClick(ed.question.no_button, CLICK)
    assert ed.text() == "Second draft with my careful edits"
    assert len(sent.of("draft.regenerate")) == 1
    window.regenerate_draft()  # the shortcut asks too
    assert ed.question is not None
    QTest.mouseClick(ed.question.yes_button, CLICK)
    assert len(sent.of("draft.regenerate")) == 2
    feed(p.DraftStarted(turn_id="t3", reason="regenerate", provider="offline"))
    feed(p.DraftCompleted(turn_id="t3", text="Third draft"))
    assert ed.text() == "Third draft"


def test_the_selected_inbox_row_repaints_on_every_event(window: AgentWindow, feed: Feed,
                                                        ws: Workspace) -> None:
    inbox = window.inbox
    changed: list[str] = []

    def on_changed(top: QModelIndex, _bottom: QModelIndex, _roles: object = None) -> None:
        changed.append(str(top.data(ROLE_ID)))

    inbox.model.dataChanged.connect(on_changed)
    for n in range(4):
        before = changed.count("s1")
        feed.customer(f"message {n}")
        assert changed.count("s1") > before, f"row not repainted after message {n}"
    view = ws.session("s1")
    assert view is not None and view.summary.last_message == "message 3"
    feed.approval("a1")
    before = changed.count("s1")
    feed(p.ApprovalUpdated(approval_id="a1", state="executed", by="Sam",
                           result={"message": "done"}))
    assert changed.count("s1") > before
    assert view.summary.pending_approvals == 0


def test_article_panels_follow_a_new_turn(window: AgentWindow, feed: Feed) -> None:
    art = p.Article(article_id="kb/cancel-order", title="How to cancel an order",
                    kind="kb", score=0.8, snippet="You can cancel an order")
    feed(p.DraftStarted(turn_id="t1", reason="customer_message", provider="offline"))
    feed(p.ArticlesFound(turn_id="t1", articles=[art]))
    assert [a.article_id for a in window.articles.articles()] == ["kb/cancel-order"]
    viewer = window.article_viewer
    viewer.open_article("kb/cancel-order", "You can cancel")
    viewer.show_content(p.ArticleContent(article_id="kb/cancel-order", title=art.title,
                                         kind="kb", markdown="You can cancel an order."))
    assert not viewer.earlier
    # the customer writes again: a new turn starts, its articles are not known yet
    feed.customer("And my refund?")
    feed(p.DraftStarted(turn_id="t2", reason="customer_message", provider="offline"))
    window.workspace.flush()
    assert window.articles.articles() == []
    assert "latest message" in window.articles.empty.text()
    other = p.Article(article_id="kb/refunds", title="Refunds", kind="kb", score=0.7,
                      snippet="Refunds take")
    feed(p.ArticlesFound(turn_id="t2", articles=[other]))
    assert [a.article_id for a in window.articles.articles()] == ["kb/refunds"]
    assert viewer.earlier and "earlier message" in viewer.title.text()


def test_typed_reply_is_not_called_discarded(window: AgentWindow, feed: Feed,
                                             ws: Workspace) -> None:
    ed = window.suggestion_editor
    feed(p.DraftStarted(turn_id="t1", reason="customer_message", provider="offline"))
    feed(p.DraftCompleted(turn_id="t1", text="Draft"))
    QTest.mouseClick(ed.discard_button, CLICK)
    QTest.keyClicks(ed.editor, "I'll write this one myself.")
    QTest.mouseClick(ed.send_button, CLICK)
    ws.flush()
    assert "Discarded" not in ed.state_chip.full_text()
    assert "your own reply" in ed.state_chip.full_text()


# ----------------------------------------------------------------------------- customer


@pytest.fixture
async def chat(tmp_path: Path) -> AsyncIterator[tuple[CustomerWindow, HostConnection, str]]:
    async with running_host(tmp_path) as host:
        created = host.create_session(customer_id="CUST1001")
        customer = HostConnection(InviteLink.parse(created.customer_link))
        agent = HostConnection(InviteLink.parse(created.agent_link))
        window = CustomerWindow(ChatModel(customer), customer)
        window.show()
        customer.open()
        agent.open()
        async with asyncio.timeout(10):
            await customer.wait_connected()
            await agent.wait_connected()
        try:
            yield window, agent, created.session_id
        finally:
            window.close()
            await customer.aclose()
            await agent.aclose()
            window.deleteLater()


async def test_the_customer_window_says_closed_disables_input_and_reopens(
        chat: tuple[CustomerWindow, HostConnection, str]) -> None:
    window, agent, sid = chat
    await until(lambda: "Online" in window.status_label.text(), what="online")
    agent.send(p.SessionClose(), session=sid)
    await until(window.closed_label.isVisible, what="closed notice")
    assert "Online" not in window.status_label.text()
    assert window.status_label.text() == "Conversation ended"
    assert not window.composer.isEnabled() and not window.send_button.isEnabled()
    assert "ended" in window.composer.placeholderText()
    # the connection staying up must not bring "Online" back
    window._on_state("connected")
    assert window.status_label.text() == "Conversation ended"
    agent.send(p.SessionReopen(), session=sid)
    await until(window.composer.isEnabled, what="composer enabled again")
    assert not window.closed_label.isVisible() and "Online" in window.status_label.text()
    QTest.keyClicks(window.composer, "Thanks for reopening")
    QTest.keyClick(window.composer, Qt.Key.Key_Return)
    await until(lambda: any(b.item.text == "Thanks for reopening" and b.item.delivery
                            and str(b.item.delivery) != "failed" for b in window.bubbles),
                what="message delivered")


async def test_a_long_url_wraps_inside_its_bubble(
        chat: tuple[CustomerWindow, HostConnection, str]) -> None:
    window, agent, sid = chat
    url = "https://northwind.example/orders/ORD1001/returns/" + "a1b2c3d4" * 20
    agent.send(p.ChatSend(text=f"Start your return here: {url}"), session=sid)
    await until(lambda: any(url[:30] in b.item.text for b in window.bubbles), what="bubble")
    bubble = next(b for b in window.bubbles if url[:30] in b.item.text)
    window.resize(440, 660)
    await asyncio.sleep(0.05)
    label = bubble.text_label
    # every line fits the bubble: nothing is clipped on the right
    assert label.minimumSizeHint().width() <= label.width()
    assert bubble.width() <= window.scroll_area.viewport().width()
    assert label.text().replace("\u200b", "") == f"Start your return here: {url}"


# ----------------------------------------------------------------------------- links


async def test_a_revoked_link_offers_another_and_switching_forgets_the_old(
        qtbot: QtBot, tmp_path: Path) -> None:
    from hitl_desktop.app.agent import switch_connection
    from tests.support.protocol_client import token_of

    async with running_host(tmp_path / "a") as host_a, \
            running_host(tmp_path / "b") as host_b:
        first = host_a.create_session(customer_id="CUST1001")
        second = host_b.create_session(customer_id="CUST1002")
        ws = Workspace()
        win = AgentWindow(ws, config_dir=tmp_path, restore=False)
        qtbot.addWidget(win)
        win.show()
        conn = HostConnection(InviteLink.parse(first.agent_link))
        ws.attach(conn)
        conn.open()
        try:
            await until(lambda: ws.session(first.session_id) is not None, what="session")
            assert not win.other_link_button.isVisible()
            host_a.relay.revoke(token_of(first.agent_link))
            await until(win.other_link_button.isVisible, what="Open another link… offered")
            assert "✕" in win.connection_label.text()
            asked: list[bool] = []
            win.open_link_requested.connect(lambda: asked.append(True))
            QTest.mouseClick(win.other_link_button, CLICK)
            win.open_link_action.trigger()  # the File menu offers the same
            assert asked == [True, True]
            assert win.open_link_action in win.menuBar().actions()[0].menu().actions()
            conn = await switch_connection(ws, conn, InviteLink.parse(second.agent_link))
            await until(lambda: ws.session(second.session_id) is not None, what="new session")
            assert ws.session(first.session_id) is None, "the old link's sessions are gone"
            await until(lambda: not win.other_link_button.isVisible(), what="connected")
            assert win.inbox.session_ids() == [second.session_id]
        finally:
            await conn.aclose()


def test_help_lists_the_shortcuts_and_about(window: AgentWindow) -> None:
    menus = [a.text().replace("&", "") for a in window.menuBar().actions()]
    assert menus[0] == "File" and menus[-1] == "Help"
    rows = dict(window.shortcut_rows())
    assert rows["Send"].startswith("Ctrl+Return")
    assert "Ctrl+Shift+A" in rows["Approve first action"]
    assert "Open another link…" in rows and "Keyboard shortcuts" in rows
    window.shortcuts_action.trigger()
    box = window.help_box
    assert box is not None and box.isVisible() and not box.isModal()
    assert "Ctrl+Shift+W" in box.text()  # type: ignore[attr-defined]
    # every row is there, and the box fits a 1366x768 laptop under a title bar and a
    # panel (one column of 25 rows was 712 px tall: Close below the screen's edge)
    for what, keys in rows.items():
        assert html.escape(what) in box.text() and html.escape(keys) in box.text()  # type: ignore[attr-defined]
    hint = box.sizeHint()
    assert hint.height() <= 500 and hint.width() <= 1300, hint
    window.about_action.trigger()
    assert window.help_box is not None and "HITL Desk" in window.help_box.text()  # type: ignore[attr-defined]


async def test_the_customer_window_offers_another_link_and_switches(tmp_path: Path) -> None:
    from tests.support.protocol_client import token_of

    async with running_host(tmp_path) as host:
        first = host.create_session(customer_id="CUST1001")
        second = host.create_session(customer_id="CUST1002")
        conn = HostConnection(InviteLink.parse(first.customer_link))
        window = CustomerWindow(ChatModel(conn), conn)
        window.show()
        conn.open()
        try:
            await until(lambda: window.greeting_bubble is not None, what="greeting")
            QTest.keyClicks(window.composer, "first chat")
            QTest.keyClick(window.composer, Qt.Key.Key_Return)
            await until(lambda: len(window.bubbles) == 1, what="my bubble")
            host.relay.revoke(token_of(first.customer_link))
            offer = window.banner.other_link_button
            await until(offer.isVisible, what="Open another link… offered")
            asked: list[bool] = []
            window.open_link_requested.connect(lambda: asked.append(True))
            QTest.mouseClick(offer, CLICK)
            assert asked == [True]
            # what app.customer does once the join dialog returns a link
            await conn.aclose()
            window.unbind()
            assert window.bubbles == [] and window.greeting_bubble is None
            conn = HostConnection(InviteLink.parse(second.customer_link))
            window.bind(ChatModel(conn), conn)
            conn.open()
            await until(lambda: "Online" in window.status_label.text(), what="online again")
            assert not window.banner.isVisible() and window.composer.isEnabled()
            QTest.keyClicks(window.composer, "second chat")
            QTest.keyClick(window.composer, Qt.Key.Key_Return)
            await until(lambda: [m["type"] for m in host.relay_log.messages(second.session_id)
                                 ].count("chat.message") == 1, what="sent on the new link")
        finally:
            window.close()
            await conn.aclose()
            window.deleteLater()


async def test_the_header_status_is_elided_beside_the_account_badge_not_clipped(
        chat: tuple[CustomerWindow, HostConnection, str]) -> None:
    """At the window's 430 px the status used to run under "Signed in as …", cut mid-word."""
    window, _agent, _sid = chat
    window.resize(430, window.height())
    await until(lambda: "Online" in window.status_label.text(), what="online")
    await until(window.account.label.isVisible, what="signed-in badge")
    await until(lambda: window.status_label.text() != window.status_label.full_text()
                or window.status_label.geometry().right()
                < window.account.geometry().left(), what="laid out")
    label, badge = window.status_label, window.account
    assert label.full_text() == "● Online · a representative will answer you here"
    right = label.mapTo(window, label.rect().topRight()).x()
    assert right < badge.mapTo(window, badge.rect().topLeft()).x()
    shown = label.text()
    assert shown == label.full_text() or (
        shown.endswith("…") and label.toolTip() == label.full_text())
