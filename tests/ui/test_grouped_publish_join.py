"""An agent that joins while a draft streams and its frames wait for the group commit
(issue 18: the co-pilot's frames are relayed once durable, its deltas queued behind
them), on the real client model (HostConnection -> Workspace): the draft so far it gets
and the queued deltas it gets after never show text twice or leave a hole."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import cast

import pytest

from hitl_desktop.client.connection import HostConnection
from hitl_desktop.client.workspace import Workspace
from hitl_desktop.config import Settings
from hitl_desktop.core.links import InviteLink
from hitl_desktop.core.protocol import ChatSend
from hitl_desktop.host.copilot import HostCopilot
from tests.support.protocol_client import Client
from tests.ui.conftest import running_host, until

pytestmark = pytest.mark.qt_log_ignore("This plugin does not support")


@pytest.mark.parametrize("link", ["desk", "session"])
async def test_an_agent_joining_mid_draft_sees_each_character_once(tmp_path: Path,
                                                                   link: str) -> None:
    settings = Settings(extra={"offline_delay_ms": 8})  # a draft streams for a while
    async with running_host(tmp_path / "host", copilot=True, settings=settings) as host:
        relay = host.relay
        copilot = cast(HostCopilot, relay.copilot)
        created = host.create_session(customer_id="CUST1001")
        sid = created.session_id
        customer = await Client.connect(host.local_url, created.customer_token)
        conn = HostConnection(InviteLink.parse(host.desk_link if link == "desk"
                                               else created.agent_link),
                              client_name="late agent")
        ws = Workspace()
        ws.attach(conn)
        texts: list[str] = []

        def seen(session_id: str) -> None:
            view = ws.session(session_id)
            if session_id == sid and view is not None and view.draft is not None:
                texts.append(view.draft.text)

        ws.draft_changed.connect(seen)
        try:
            relay.log.hold()  # a WAL finish: the turn's frames (and deltas) wait in the group
            await customer.send(ChatSend(text="How do I return an item?"), sid)
            await until(lambda: (copilot.draft_in_progress(sid) or ("", ""))[1],
                        what="some draft text queued")
            assert relay.log.held and not relay.log.finish_raced
            conn.open()  # joins now: its hello does not flush the group ...
            async with asyncio.timeout(10):
                await conn.wait_connected()
            await until(lambda: ws.session(sid) is not None, what="the session")
            ws.select_session(sid)  # ... opening the session reads the log: it does
            await until(lambda: (v := ws.session(sid)) is not None and v.draft is not None
                        and v.draft.state == "completed", within=20, what="draft completed")
            ws.flush()
            view = ws.session(sid)
            assert view is not None and view.draft is not None
            final = view.draft.text
            completed = [f for f in (await _frames_of(host.local_url, created.agent_token, sid))
                         if f["type"] == "draft.completed"]
            assert final == completed[-1]["data"]["text"] and final
            assert texts and all(final.startswith(t) for t in texts), texts  # never twice
            assert not view.draft.gap
        finally:
            if relay.log.held:
                relay.log.release()
            await conn.aclose()
            await customer.close()


async def _frames_of(url: str, token: str, sid: str) -> list[dict[str, object]]:
    """The session's durable history as a fresh session agent gets it."""
    agent = await Client.connect(url, token)
    try:
        await agent.wait("turn.ended")
        return [f for f in agent.frames if f.get("session") == sid]
    finally:
        await agent.close()
