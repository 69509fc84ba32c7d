"""Issue 18 item 2 in the agent window: the desk opens on summaries, pages in the rest,
fetches a conversation's history when it is opened ("Loading…"), counts unread lines of
the others from live frames, and resumes exactly the opened ones after a drop.

The production stack (HostConnection -> Workspace -> AgentWindow) against a real host;
customers are bare protocol clients (tests.support.protocol_client). Offscreen Qt.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from hitl_desktop.client.connection import HostConnection
from hitl_desktop.client.workspace import ChatItem, Workspace
from hitl_desktop.core.links import InviteLink
from hitl_desktop.ui.agent.window import AgentWindow
from tests.support.protocol_client import Client, token_of
from tests.ui.conftest import running_host, until

pytestmark = pytest.mark.qt_log_ignore("This plugin does not support")


def _lines(ws: Workspace, sid: str) -> list[str]:
    view = ws.session(sid)
    assert view is not None
    return [i.text for i in view.transcript if isinstance(i, ChatItem)]


async def test_the_desk_window_opens_sessions_on_demand(tmp_path: Path, qtbot: Any) -> None:
    async with running_host(tmp_path / "host") as host:
        fillers = [host.create_session().session_id for _ in range(230)]  # > one page
        a, b, c = (host.create_session() for _ in range(3))
        custs = {}
        for made in (a, b, c):
            custs[made.session_id] = await Client.connect(host.url,
                                                          token_of(made.customer_link))
        agent_a = await Client.connect(host.url, token_of(a.agent_link))

        async def say(sid: str, text: str) -> None:
            await custs[sid].send("chat.send", {"text": text}, session=sid)
            await custs[sid].expect("chat.message", text=text)

        history = [f"a{i}" for i in range(12)]
        for i, text in enumerate(history):
            if i % 3 == 2:
                await agent_a.send("chat.send", {"text": text}, session=a.session_id)
                await custs[a.session_id].expect("chat.message", text=text)
            else:
                await say(a.session_id, text)
        await say(b.session_id, "b0")
        await say(c.session_id, "c0")  # c: the most recent, so selected first

        conn = HostConnection(InviteLink.parse(host.desk_link), client_name="desk test",
                              backoff_base=0.05)
        ws = Workspace()
        ws.attach(conn)
        window = AgentWindow(ws, config_dir=tmp_path / "config")
        qtbot.addWidget(window)
        window.show()
        conn.open()
        try:
            async with asyncio.timeout(5):
                welcome = await conn.wait_connected()
            assert len(welcome.sessions) == 200 and welcome.cursor is not None
            # the rest is paged in, in the background
            await until(lambda: len(ws.sessions()) == 233 and not ws.paging,
                        what="every summary")
            assert {v.session_id for v in ws.sessions()} >= set(fillers)
            # the first (most recent) session was selected, so opened; nothing else
            assert ws.current_session_id == c.session_id
            await until(lambda: _lines(ws, c.session_id) == ["c0"], what="c's history")
            view_a = ws.session(a.session_id)
            assert view_a is not None and view_a.history == "none"
            assert view_a.transcript == []
            assert set(conn.resume_points()) == {c.session_id}

            # opening a: "Loading…" until its history is there, then all of it, once
            ws.select_session(a.session_id)
            panel = window.conversation
            assert view_a.loading and panel.loading.isVisible()
            await until(lambda: view_a.history == "loaded", what="a loaded")
            assert not panel.loading.isVisible()
            assert _lines(ws, a.session_id) == history
            assert all(t in panel.browser.toPlainText() for t in history)
            assert view_a.unread == 0  # history, not unread

            # b (never opened) gets a line: unread and a notification from the live
            # frame, no history kept
            lines: list[tuple[str, str]] = []
            ws.customer_line.connect(lambda sid, text: lines.append((sid, text)))
            await say(b.session_id, "b1 while closed")
            view_b = ws.session(b.session_id)
            assert view_b is not None
            await until(lambda: view_b.unread == 1, what="b unread")
            assert lines == [(b.session_id, "b1 while closed")]
            assert view_b.summary.last_message == "b1 while closed"
            assert view_b.history == "none" and view_b.transcript == []
            ws.select_session(b.session_id)
            await until(lambda: view_b.history == "loaded", what="b loaded")
            assert _lines(ws, b.session_id) == ["b0", "b1 while closed"]
            assert view_b.unread == 0 and len(lines) == 1  # no second notification

            # the line drops; lines arrive while away; the resume covers a, b and c only
            conn.drop_socket()
            await say(a.session_id, "a while away")
            await say(b.session_id, "b while away")
            await until(lambda: conn.connects >= 2 and ws.connection_state == "connected",
                        what="reconnected")
            await until(lambda: _lines(ws, a.session_id)[-1:] == ["a while away"],
                        what="a resumed")
            await until(lambda: _lines(ws, b.session_id)[-1:] == ["b while away"],
                        what="b resumed")
            assert _lines(ws, a.session_id) == [*history, "a while away"]
            assert _lines(ws, b.session_id) == ["b0", "b1 while closed", "b while away"]
            assert set(conn.resume_points()) == {a.session_id, b.session_id, c.session_id}
            filler = ws.session(fillers[0])
            assert filler is not None and filler.history == "none"
        finally:
            window.close()
            await conn.aclose()
            for cl in (*custs.values(), agent_a):
                await cl.close()
