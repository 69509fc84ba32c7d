"""Issue 18 item 2 in the agent window: a long conversation opens on its newest page,
"Earlier messages" / "Loading older messages…" at the top, older pages put before it
when the representative scrolls up (the lines being read stay where they were), an
approval proposed in an older page and decided in a newer one shown right, a search hit
far back loaded back to, live lines arriving meanwhile and a dropped connection mid-way:
every line exactly once.

The production stack (HostConnection -> Workspace -> AgentWindow) against a real host;
the customer is a bare protocol client. Offscreen Qt.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from hitl_desktop.client.connection import HostConnection
from hitl_desktop.client.workspace import NEWEST_PAGE, ChatItem, InternalNote, ToolItem, Workspace
from hitl_desktop.core import protocol as p
from hitl_desktop.core.links import InviteLink
from hitl_desktop.ui.agent.window import AgentWindow
from tests.support.protocol_client import Client, token_of
from tests.ui.conftest import running_host, until

pytestmark = pytest.mark.qt_log_ignore("This plugin does not support")

CUSTOMER = p.Author(role=p.Role.CUSTOMER, name="Priya")
AGENT = p.Author(role=p.Role.AGENT, name="Sam")


async def _long_session(host: Any, lines: int) -> tuple[str, Any]:
    """A session with an approval proposed early and decided late, a note, and
    ``lines`` chat lines, written through the relay's own publish (durable, in order)."""
    made = host.create_session()
    sid = made.session_id
    relay = host.relay
    await relay.publish(sid, p.ToolCall(turn_id="t1", call_id="call1", name="cancel_order",
                                        arguments={"order_id": "ORD1001"}, mode="approval"))
    await relay.publish(sid, p.ApprovalCreated(
        approval_id="a1", call_id="call1", tool="cancel_order", description="Cancel ORD1001",
        arguments={"order_id": "ORD1001"}, parameters_schema={"type": "object"},
        expires_at=None))
    await relay.publish(sid, p.NoteAdded(note_id="n1", author=AGENT, text="VIP customer"))
    for i in range(lines):
        await relay.publish(sid, p.ChatMessage(message_id=f"m{i}", author=(
            CUSTOMER if i % 2 == 0 else AGENT), text=f"line {i}"))
        if i == lines - 20:
            await relay.publish(sid, p.ApprovalUpdated(approval_id="a1", state="executed",
                                                       by="Sam", result={"ok": True}))
    return sid, made


def _chat_seqs(ws: Workspace, sid: str) -> list[int]:
    view = ws.session(sid)
    assert view is not None
    return [i.seq or 0 for i in view.transcript if isinstance(i, ChatItem)]


async def test_a_long_conversation_opens_newest_first_and_loads_older_on_scroll(
        tmp_path: Path, qtbot: Any) -> None:
    async with running_host(tmp_path / "host") as host:
        far, _ = await _long_session(host, 300)  # opened second: a search hit far back
        sid, made = await _long_session(host, 240)  # the most recent: selected first
        last = host.relay.session_summary(sid)
        assert last is not None and last.last_seq == 245
        cust = await Client.connect(host.url, token_of(made.customer_link))

        conn = HostConnection(InviteLink.parse(host.desk_link), client_name="desk test",
                              backoff_base=0.05)
        ws = Workspace()
        ws.attach(conn)
        window = AgentWindow(ws, config_dir=tmp_path / "config")
        window.resize(1100, 700)
        qtbot.addWidget(window)
        window.show()
        conn.open()
        panel = window.conversation
        bar = panel.browser.verticalScrollBar()
        try:
            async with asyncio.timeout(5):
                await conn.wait_connected()
            assert ws.current_session_id == sid
            view = ws.session(sid)
            assert view is not None and view.paged
            await until(lambda: view.history == "loaded", what="the newest page")
            # the newest page only: 50 frames (seq 196..245; 226 is the approval update)
            assert view.oldest_seq == 245 - NEWEST_PAGE + 1 and view.older
            assert _chat_seqs(ws, sid) == [s for s in range(196, 246) if s != 226]
            assert conn.resume_points() == {sid: 245}
            assert panel.older.isVisible() and "Earlier messages" in panel.older.text()
            assert "line 239" in panel.browser.toPlainText()
            assert "line 150" not in panel.browser.toPlainText()
            # its approval was proposed before the page: kept until the page that has it
            assert "a1" not in view.approvals and len(view.orphans) == 1

            live: list[int] = []
            dropped = False
            while view.older:
                await asyncio.sleep(0.05)  # the view settles at the bottom first
                bar.setValue(0)  # scrolled to the top: the page before it is asked for
                assert view.older_loading and "Loading older" in panel.older.text()
                await cust.send("chat.send", {"text": f"live {len(live)}"}, session=sid)
                live.append(int((await cust.expect("chat.message",
                                                   text=f"live {len(live)}"))["seq"]))
                if not dropped and view.oldest_seq < 150:
                    conn.drop_socket()  # mid-way: the page asked for is asked again
                    dropped = True
                await until(lambda: not view.older_loading, what="an older page")
                # the line that was at the top stays in view: the scroll moved down by
                # what was put before it
                assert bar.value() > 0
            assert dropped and conn.connects >= 2
            await until(lambda: _chat_seqs(ws, sid)[-1:] == live[-1:], what="live lines")
            # every line exactly once, in order: history, then the live ones
            history = [s for s in range(5, 246) if s != 226]
            assert _chat_seqs(ws, sid) == history + live
            assert not panel.older.isVisible()
            # the approval from the first page, decided in the newest one
            assert view.approvals["a1"].state == "executed" and view.orphans == []
            tool = next(i for i in view.transcript if isinstance(i, ToolItem))
            assert tool.call_id == "call1" and tool.outcome == "executed"
            assert any(isinstance(i, InternalNote) and i.text == "VIP customer"
                       for i in view.transcript)
            assert view.transcript[0].kind == "note"  # "Session opened" first
            assert view.unread == 0

            # a search hit far back in another conversation, opened as the search
            # dialog does (the session, then the hit at once): loaded back to, shown
            ws.open_session(far)
            window._on_hit_opened(far, 150)  # "line 145", three pages back
            far_view = ws.session(far)
            assert far_view is not None and far_view.load_until == 150
            await until(lambda: panel.wanted is None, what="scrolled to the hit")
            assert far_view.history == "loaded" and far_view.load_until is None
            assert 56 <= far_view.oldest_seq <= 150  # pages back to it, not the whole
            assert "line 145" in panel.browser.toPlainText()
        finally:
            window.close()
            await conn.aclose()
            await cust.close()


async def test_pages_the_host_refuses_for_its_byte_budget_are_asked_again(
        tmp_path: Path, qtbot: Any) -> None:
    """A history page costs the connection's replay byte budget; past it the host
    answers rate_limited with retry_after, and the window asks again then: scrolling
    up through a long conversation on a tight budget still gets every line, once."""
    from hitl_desktop.host.relay import RelayConfig

    tight = RelayConfig(replay_burst_bytes=20_000, replay_rate_bytes=60_000)
    async with running_host(tmp_path / "host", config=tight) as host:
        sid, _made = await _long_session(host, 400)
        conn = HostConnection(InviteLink.parse(host.desk_link), client_name="desk test",
                              backoff_base=0.05)
        ws = Workspace()
        ws.attach(conn)
        refused: list[str] = []
        conn.error_received.connect(lambda code, msg, ref: refused.append(code))
        conn.open()
        try:
            async with asyncio.timeout(5):
                await conn.wait_connected()
            view = ws.session(sid)
            assert view is not None
            await until(lambda: view.history == "loaded", what="the newest page")
            while view.older:
                assert ws.load_older(sid) or view.older_loading
                await until(lambda: not view.older_loading, within=15, what="older page")
            assert "rate_limited" in refused  # the budget did bite ...
            history = [s for s in range(5, 406) if s != 386]
            assert _chat_seqs(ws, sid) == history  # ... and nothing was lost or doubled
        finally:
            await conn.aclose()
