"""A line whose group commit is held through a WAL finish (up to log.HOLD_MAX_S) still
reaches the desk's search index: the index waits for the log instead of giving the line
up after one retry (the 500,000-line WAL run lost 10 lines that way)."""

from __future__ import annotations

import asyncio
from pathlib import Path

from hitl_desktop.host.log import HOLD_MAX_S
from tests.integration.test_desk_host import answer
from tests.support.host import running_host
from tests.support.protocol_client import Client


async def test_a_line_held_through_a_wal_finish_is_indexed(tmp_path: Path) -> None:
    async with running_host(tmp_path) as host:
        desk = await Client.connect(host.url, host.desk_token)
        customer = await Client.connect(host.url, host.lobby_token)
        sid = customer.session
        await customer.send("chat.send", {"text": "first line, committed at once"},
                            session=sid)
        await desk.wait("chat.message", where=lambda f: f["session"] == sid)

        host.relay_log.hold()  # what run_checkpoints does while a thread finishes the WAL
        try:
            await customer.send("chat.send", {"text": "my kettle whistles oddly"},
                                session=sid)
            await asyncio.sleep(HOLD_MAX_S + 0.15)  # the longest hold, and then some
            assert not [f for f in desk.frames if f["type"] == "chat.message"
                        and "kettle" in f["data"]["text"]]  # not durable: not relayed
        finally:
            host.relay_log.release()
        await desk.wait("chat.message", where=lambda f: "kettle" in f["data"]["text"])

        loop = asyncio.get_running_loop()
        deadline = loop.time() + 5.0
        while True:  # the index is written shortly after the line (INDEX_DELAY_S)
            mid = await desk.send("search", {"query": "kettle whistles"})
            hits = (await answer(desk, mid))["data"]["hits"]
            if hits or loop.time() > deadline:
                break
            await asyncio.sleep(0.1)
        assert [(h["session_id"], h["author_role"]) for h in hits] == [(sid, "customer")]
        await desk.close()
        await customer.close()
