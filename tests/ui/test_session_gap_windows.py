"""A host that lost the end of its log (a power cut after clients got the lines) tells
both windows with ``session.gap``: the agent window and the customer's chat window each
show one line where the gap is and mark the lines the host no longer has — exactly once,
also after another reconnect and replay.

Real parts: the host's log files are copied while it runs (what reached the disk), the
conversation goes on, the host stops, the copy is put back (the lost tail), and a new
host starts on the same port from it; the windows reconnect by themselves."""

from __future__ import annotations

import contextlib
import shutil
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

from hitl_desktop.client.chat import ChatModel, gap_notice
from hitl_desktop.client.connection import HostConnection
from hitl_desktop.client.workspace import ChatItem, GapItem, Workspace, gap_text
from hitl_desktop.core.links import InviteLink
from hitl_desktop.host.relay import RelayConfig
from hitl_desktop.ui.agent.conversation import LOST_MARK, ConversationPanel
from hitl_desktop.ui.customer_window import LOST_MARK as CUSTOMER_LOST_MARK
from hitl_desktop.ui.customer_window import CustomerWindow
from tests.ui.conftest import agent_window_on, running_host, until

pytestmark = pytest.mark.qt_log_ignore("This plugin does not support")
LOG_FILES = ("relay.sqlite3", "relay.sqlite3-wal")


def _chat_texts(ws: Workspace, sid: str) -> list[str]:
    view = ws.session(sid)
    return [] if view is None else [i.text for i in view.transcript if isinstance(i, ChatItem)]


def _counts(ws: Workspace, sid: str, panel: ConversationPanel, window: CustomerWindow
            ) -> dict[str, Any]:
    view = ws.session(sid)
    assert view is not None
    gaps = [i for i in view.transcript if isinstance(i, GapItem)]
    shown = panel.browser.toPlainText()
    return {
        "agent_gaps": len(gaps),
        "agent_gap_lines": sum(shown.count(gap_text(g)) for g in gaps),
        "agent_lost": sorted(i.text for i in view.transcript
                             if isinstance(i, ChatItem) and i.lost),
        "agent_marks": shown.count(LOST_MARK),
        "customer_notices": sum(b.gap for b in window.bubbles),
        "customer_lost": sorted(b.item.text for b in window.bubbles if b.item.lost),
        "customer_marks": sum(CUSTOMER_LOST_MARK in b.meta_label.text()
                              for b in window.bubbles),
    }


async def _host_on(stack: contextlib.AsyncExitStack, data: Path, port: int = 0) -> Any:
    return await stack.enter_async_context(running_host(
        data, config=RelayConfig(checkpoint_interval=3600.0), port=port))


async def test_both_windows_show_the_gap_once_and_mark_the_lost_lines(
        tmp_path: Path, qtbot: Any) -> None:
    data, snapshot = tmp_path / "data", tmp_path / "snapshot"
    snapshot.mkdir()
    first = contextlib.AsyncExitStack()
    host = await _host_on(first, data)
    port = urlsplit(host.local_url).port
    assert port
    created = host.create_session(customer_id="CUST1001")
    sid = created.session_id
    customer = HostConnection(InviteLink.parse(created.customer_link), backoff_base=0.2,
                              backoff_max=0.5)
    chat = ChatModel(customer)
    window = CustomerWindow(chat, customer)
    qtbot.addWidget(window)
    window.resize(480, 640)
    window.show()
    customer.open()
    try:
        async with agent_window_on(created.agent_link, qtbot, tmp_path / "cfg") as (
                conn, ws, agent_window):
            await customer.wait_connected()
            panel = agent_window.findChild(ConversationPanel)
            assert panel is not None

            async def exchange(question: str, answer: str) -> None:
                chat.send_text(question)
                await until(lambda: question in _chat_texts(ws, sid), what=question)
                ws.send_message(answer)
                await until(lambda: any(i.text == answer and i.seq for i in chat.items),
                            what=answer)

            await exchange("Where is my parcel?", "Let me look.")
            host.relay_log.db.execute("SELECT 1")  # whatever is grouped is committed
            for name in LOG_FILES:  # what reached the disk before the power cut
                shutil.copy2(data / name, snapshot / name)
            await exchange("It was due Monday.", "I see it left the depot.")
            await first.aclose()  # the host is gone ...
            for name in LOG_FILES:  # ... and its log lost its last lines
                shutil.copy2(snapshot / name, data / name)
            (data / "relay.sqlite3-shm").unlink(missing_ok=True)

            lost = ["I see it left the depot.", "It was due Monday."]
            expected = {"agent_gaps": 1, "agent_gap_lines": 1, "agent_lost": lost,
                        "agent_marks": 2, "customer_notices": 1, "customer_lost": lost,
                        "customer_marks": 2}
            async with contextlib.AsyncExitStack() as second:
                restarted = await _host_on(second, data, port)
                await until(lambda: _counts(ws, sid, panel, window) == expected,
                            what=f"the gap in both windows: {_counts(ws, sid, panel, window)}")
                notice = next(b for b in window.bubbles if b.gap)
                assert notice.text_label.text().replace("\u200b", "") == gap_notice(2)
                # the conversation carries on after the gap, nothing new is marked
                await exchange("Thanks, any news?", "It arrives tomorrow.")
                assert _counts(ws, sid, panel, window) == expected
                # a desk opening the conversation now gets it newest first: the gap
                # line in place between the lines around it, nothing marked
                async with agent_window_on(restarted.desk_link, qtbot, tmp_path / "desk") \
                        as (_desk_conn, desk_ws, desk_window):
                    await until(lambda: desk_ws.session(sid) is not None, what="the inbox")
                    desk_ws.select_session(sid)
                    desk_view = desk_ws.session(sid)
                    assert desk_view is not None and desk_view.paged
                    desk_panel = desk_window.findChild(ConversationPanel)
                    assert desk_panel is not None
                    await until(lambda: "It arrives tomorrow." in
                                desk_panel.browser.toPlainText(), what="the desk's page")
                    gaps = [i for i in desk_view.transcript if isinstance(i, GapItem)]
                    assert len(gaps) == 1 and gaps[0].lost == 0
                    shown = desk_panel.browser.toPlainText()
                    assert shown.count(gap_text(gaps[0])) == 1 and LOST_MARK not in shown
                    assert shown.index("Let me look.") < shown.index(gap_text(gaps[0])) \
                        < shown.index("Thanks, any news?")
                    assert "It was due Monday." not in shown  # the host has no copy
            # another (clean) restart: both reconnect and resume after the gap
            async with contextlib.AsyncExitStack() as third:
                await _host_on(third, data, port)
                await until(lambda: conn.connects >= 3 and customer.connects >= 3,
                            what="both reconnected")
                await exchange("Great, bye!", "Bye!")
                assert _counts(ws, sid, panel, window) == expected
    finally:
        window.close()
        await customer.aclose()
        await first.aclose()
