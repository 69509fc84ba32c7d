"""DESIGN.md §3 end to end through the two real windows, as ``hitl-desktop demo`` wires them.

An in-process host (relay + offline co-pilot + shop database) on loopback; the
customer window and the agent window each talk to it over their own WebSocket.
The customer types with real key events, the agent presses the real buttons.
Async on the qasync loop (tests/ui/conftest.py), never ``qtbot.wait*``.
"""

from __future__ import annotations

import argparse
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any, cast

import pytest
from PySide6.QtCore import Qt
from PySide6.QtTest import QTest

from hitl_desktop.app.demo import Demo
from hitl_desktop.config import Settings, resolve_paths
from hitl_desktop.ui.customer_window import CustomerWindow
from tests.ui.conftest import until

pytestmark = pytest.mark.qt_log_ignore("This plugin does not support")


@pytest.fixture
async def demo(tmp_path: Path) -> AsyncIterator[Demo]:
    paths = resolve_paths(tmp_path / "data", tmp_path / "config").ensure()
    d = Demo(paths, Settings(), argparse.Namespace(provider=None, model=None))
    try:
        await d.start(restore_layout=False)
        await d.wait_ready()
        yield d
    finally:
        await d.stop()


def _type(window: CustomerWindow, text: str) -> None:
    QTest.keyClicks(window.composer, text)
    QTest.keyClick(window.composer, Qt.Key.Key_Return)


def _agent_bubbles(window: CustomerWindow) -> list[str]:
    return [b.text_label.text() for b in window.bubbles if not b.mine]


async def _completed_draft(demo: Demo, seen: set[str], within: float = 30.0) -> Any:
    draft = await demo.wait_draft(after=seen, within=within)
    seen.add(draft.turn_id)
    demo.workspace.flush()
    return draft


async def _press_send(demo: Demo, draft: Any) -> None:
    editor = demo.agent_window.suggestion_editor  # type: ignore[union-attr]
    await until(lambda: editor.text() == draft.text, what="draft in the editor")
    assert editor.send_button.isEnabled()
    QTest.mouseClick(editor.send_button, Qt.MouseButton.LeftButton)


async def test_design_flow_through_both_windows(demo: Demo) -> None:
    customer, agent = demo.customer_window, demo.agent_window
    assert customer is not None and agent is not None, "both windows in this build"
    agent = cast(Any, agent)
    view = demo._view()
    seen: set[str] = set()

    # 1. the customer asks; the agent sees articles and a streamed draft with citations
    _type(customer, "How can I cancel my order?")
    assert customer.bubbles[-1].text_label.text() == "How can I cancel my order?"
    draft = await _completed_draft(demo, seen)
    assert view.current_articles, "relevant articles shown"
    assert any("cancel" in a.title.lower() for a in view.current_articles)
    assert draft.citations, "the draft cites the knowledge base"

    # 2. the agent sends it as-is; the customer sees exactly that text
    await _press_send(demo, draft)
    await until(lambda: _agent_bubbles(customer) == [draft.text], what="reply 1 at customer")

    # 3. an action: cancel_order waits for approval, the draft says so
    _type(customer, "Help me cancel order ORD1001")
    holding = await _completed_draft(demo, seen)
    await until(lambda: view.pending_approvals, what="approval")
    card = agent.action_queue.first_card()
    assert card is not None and card.approval.tool == "cancel_order"
    assert card.approval.arguments == {"order_id": "ORD1001"}

    # 4. the holding reply goes out
    await _press_send(demo, holding)
    await until(lambda: _agent_bubbles(customer)[-1:] == [holding.text], what="reply 2")

    # 5. approve in the queue: the exact call is shown, then it runs once
    QTest.mouseClick(card.approve_button, Qt.MouseButton.LeftButton)
    assert card.call_label.property("call") == 'cancel_order(order_id="ORD1001")'
    QTest.mouseClick(card.run_button, Qt.MouseButton.LeftButton)
    await until(lambda: any(a.state == "executed" for a in view.approval_history),
                what="executed")
    confirmation = await _completed_draft(demo, seen)
    assert "cancel" in confirmation.text.lower()

    # 6. the confirmation reaches the customer; the order really is cancelled
    await _press_send(demo, confirmation)
    await until(lambda: len(_agent_bubbles(customer)) == 3, what="reply 3")
    assert _agent_bubbles(customer) == [draft.text, holding.text, confirmation.text]
    await until(lambda: any(o.get("order_id") == "ORD1001" and o.get("status") == "cancelled"
                            for o in (view.customer.orders if view.customer else [])),
                what="ORD1001 cancelled in the shop database")
    # the customer never saw a draft, a tool or an approval: only the chat
    assert [b.item.role for b in customer.bubbles] == [
        "customer", "agent", "customer", "agent", "agent"]
    assert all(b.item.delivery is not None for b in customer.bubbles if b.mine)

    # the host stored what was drafted next to what was sent, exactly once each
    assert demo.host is not None
    sent = [m["data"] for m in demo.host.relay_log.messages(demo.session_id)
            if m["type"] == "chat.message" and m["data"]["author"]["role"] == "agent"]
    assert [(s["text"], s["draft_id"]) for s in sent] == [
        (draft.text, draft.turn_id), (holding.text, holding.turn_id),
        (confirmation.text, confirmation.turn_id)]


async def test_agent_socket_killed_mid_draft_window_recovers_nothing_missing(
    demo: Demo,
) -> None:
    customer, agent, conn = demo.customer_window, demo.agent_window, demo.agent_conn
    assert customer is not None and agent is not None and conn is not None
    agent = cast(Any, agent)
    view = demo._view()
    dropped: list[int] = []

    def drop_mid_draft(session_id: str) -> None:
        d = view.draft
        if not dropped and d is not None and d.state == "streaming" and d.text:
            dropped.append(len(d.text))
            conn.drop_socket()

    demo.workspace.draft_changed.connect(drop_mid_draft)
    seen: set[str] = set()
    _type(customer, "How can I cancel my order?")
    await until(lambda: dropped, what="the agent's socket dropped while the draft streamed")
    draft = await _completed_draft(demo, seen)
    assert conn.connects >= 2, "the agent window reconnected"
    assert not draft.gap
    assert len(draft.text) > dropped[0]
    assert "Connected" in agent.connection_label.text()
    # the transcript has the customer's message once, and the editor the whole draft
    assert [getattr(i, "text", None) for i in view.transcript
            if getattr(i, "role", None) == "customer"] == ["How can I cancel my order?"]
    await _press_send(demo, draft)
    await until(lambda: _agent_bubbles(customer) == [draft.text], what="reply at customer")
    # and the customer's side saw nothing of it: no banner, one bubble each way
    assert not customer.banner.isVisible() or customer.banner.kind == "ok"
    assert [b.item.role for b in customer.bubbles] == ["customer", "agent"]


async def test_closing_the_customer_window_keeps_the_agent_window(demo: Demo) -> None:
    """The demo ends when the representative's window closes, not the customer's."""
    assert demo.customer_window is not None and demo.agent_window is not None
    demo.customer_window.close()
    await until(lambda: not demo.customer_window.isVisible(),  # type: ignore[union-attr]
                what="customer window hidden")
    assert not demo.closed.is_set()
    assert demo.agent_window.isVisible()
    demo.agent_window.close()
    await until(demo.closed.is_set, what="the demo ends with the agent window")
