"""The agent window against a real host: relay + offline co-pilot + shop database.

The agent side is the production stack (HostConnection -> Workspace -> AgentWindow);
the customer is a bare protocol client on a real WebSocket, so this test is only
about the agent window. Async on the qasync loop (tests/ui/conftest.py); no
``qtbot.wait*`` inside coroutines.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest
from websockets.asyncio.client import connect

from hitl_desktop.client.connection import HostConnection
from hitl_desktop.client.workspace import Workspace
from hitl_desktop.core import protocol as p
from hitl_desktop.core.links import InviteLink
from hitl_desktop.ui.agent.window import AgentWindow
from tests.ui.conftest import agent_window_on, running_host, until

pytestmark = pytest.mark.qt_log_ignore("This plugin does not support")


class Customer:
    """A customer speaking the wire protocol directly."""

    def __init__(self, link: str) -> None:
        self.link = InviteLink.parse(link)
        self.frames: list[dict[str, Any]] = []
        self.session: str | None = None

    async def __aenter__(self) -> Customer:
        self.ws = await connect(self.link.ws_url)
        await self.ws.send(p.encode("hello", p.Hello(token=self.link.token)))
        welcome = json.loads(await self.ws.recv())
        assert welcome["type"] == "welcome", welcome
        self.session = welcome["data"]["session_id"]
        self._reader = asyncio.get_running_loop().create_task(self._read())
        return self

    async def _read(self) -> None:
        async for raw in self.ws:
            self.frames.append(json.loads(raw))

    async def say(self, text: str) -> None:
        await self.ws.send(p.encode("chat.send", p.ChatSend(text=text), session=self.session))

    def agent_messages(self) -> list[str]:
        return [f["data"]["text"] for f in self.frames
                if f["type"] == "chat.message" and f["data"]["author"]["role"] == "agent"]

    async def __aexit__(self, *exc: object) -> None:
        self._reader.cancel()
        await self.ws.close()


async def test_agent_window_drives_the_flow_against_a_real_host(tmp_path: Path,
                                                                qtbot: Any) -> None:
    async with running_host(tmp_path / "host", copilot=True) as host:
        created = host.create_session(customer_id="CUST1001", title="Alex")
        async with agent_window_on(host.desk_link, qtbot, tmp_path / "config") as (
                _conn, ws, window):
            await until(lambda: ws.session(created.session_id) is not None, what="session")
            ws.select_session(created.session_id)
            await until(lambda: ws.connection_state == "connected", what="state")
            assert "Connected" in window.connection_label.text()
            await until(lambda: ws.assistant_status is not None, what="assistant status")
            assert "Offline assistant" in window.assistant_label.text()
            view = ws.session(created.session_id)
            assert view is not None
            await until(lambda: view.customer is not None, what="customer details")
            assert "Alex Morgan" in window.customer.profile.text()

            # the Knowledge base dock lists the host's articles through kb.search
            lazy = window.kb_browser
            assert lazy is None, "built lazily, when first shown"
            window.focus_panel("kb")
            kb = window.ensure_kb_browser()
            assert kb is not None
            assert window.docks["kb"].objectName() == "dock_kb"
            await until(lambda: kb.results.count() > 5, what="KB listing")
            kb.open_article("faq/cancel-order")
            await until(lambda: "cancel" in kb.view.toPlainText().lower(), what="KB article")

            async with Customer(created.customer_link) as customer:
                await customer.say("How can I cancel my order?")
                await until(lambda: view.draft is not None and view.draft.state == "completed",
                            what="first draft")
                ws.flush()
                editor = window.suggestion_editor
                draft = view.draft
                assert draft is not None
                assert editor.text() == draft.text and editor.text()
                assert window.articles.articles(), "the KB search shows relevant articles"
                editor.send()
                await until(customer.agent_messages, what="reply at the customer")
                assert customer.agent_messages()[-1] == draft.text

                await customer.say("Help me cancel order ORD1001")
                await until(lambda: view.pending_approvals, what="cancel_order approval")
                card = window.action_queue.first_card()
                assert card is not None and card.approval.tool == "cancel_order"
                assert card.ask_approve()
                assert card.call_label.property("call") == 'cancel_order(order_id="ORD1001")'
                card.confirm_approve()
                await until(lambda: any(a.state == "executed" for a in view.approval_history),
                            what="executed")
                done = view.approval_history[0]
                assert done.tool == "cancel_order"
                await until(lambda: any(o.get("order_id") == "ORD1001"
                                        and o.get("status") == "cancelled"
                                        for o in (view.customer.orders if view.customer else [])),
                            what="orders refreshed")
                top = window.action_queue.history.topLevelItem(0)
                assert top is not None and "Executed" in top.text(2)


async def test_agent_socket_dropped_mid_draft_recovers_everything(tmp_path: Path,
                                                                  qtbot: Any) -> None:
    async with running_host(tmp_path / "host", copilot=True) as host:
        created = host.create_session(customer_id="CUST1001")
        conn = HostConnection(InviteLink.parse(host.desk_link), client_name="test agent",
                              backoff_base=0.05)
        ws = Workspace()
        ws.attach(conn)
        window = AgentWindow(ws, config_dir=tmp_path / "config")
        qtbot.addWidget(window)
        window.show()
        conn.open()
        dropped: list[int] = []

        def drop_on_first_delta(session_id: str) -> None:
            view = ws.session(session_id)
            if not dropped and view is not None and view.draft is not None \
                    and view.draft.state == "streaming":
                dropped.append(1)
                conn.drop_socket()

        try:
            async with asyncio.timeout(5):
                await conn.wait_connected()
            await until(lambda: ws.session(created.session_id) is not None, what="session")
            ws.select_session(created.session_id)
            view = ws.session(created.session_id)
            assert view is not None
            ws.draft_changed.connect(drop_on_first_delta)
            async with Customer(created.customer_link) as customer:
                await customer.say("How can I cancel my order?")
                await until(lambda: view.draft is not None and view.draft.state == "completed",
                            within=20, what="draft completed after the drop")
                assert dropped, "the socket was dropped while the draft streamed"
                ws.flush()
                completed = [f for f in customer.frames if f["type"] == "draft.completed"]
                assert completed == []  # drafts never reach the customer
                assert window.suggestion_editor.text() == view.draft.text  # type: ignore[union-attr]
                assert not view.draft.gap  # type: ignore[union-attr]
                customers = [i for i in view.transcript
                             if getattr(i, "role", None) == "customer"]
                assert [c.text for c in customers] == ["How can I cancel my order?"]  # type: ignore[union-attr]
                assert conn.connects >= 2
        finally:
            window.close()
            await conn.aclose()
