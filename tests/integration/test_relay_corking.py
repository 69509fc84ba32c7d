"""Write corking (issue 18) on a real host and real sockets: the frames written to one
connection in one loop tick reach its transport in one write (one ``send``), byte for
byte the frames one after the other; past the transport's high-water mark they go at
once (the buffer limits hold as before); a close still comes after what was written."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path
from typing import Any

from hitl_desktop.core.protocol import DraftDelta, encode
from hitl_desktop.host.relay import Conn
from hitl_desktop.host.transport import text_frame
from tests.support.host import running_host
from tests.support.protocol_client import Client


def _count_writes(conn: Conn) -> list[bytes]:
    """Every write the connection's transport gets (the transport is real; it also
    sends them)."""
    transport: Any = conn.ws.transport
    writes: list[bytes] = []
    real: Callable[[bytes], None] = transport.write

    def write(data: bytes) -> None:
        writes.append(bytes(data))
        real(data)

    transport.write = write
    return writes


async def test_a_ticks_frames_to_one_connection_leave_in_one_write(tmp_path: Path) -> None:
    async with running_host(tmp_path / "host") as host:
        created = host.create_session()
        sid = created.session_id
        agent = await Client.connect(host.local_url, created.agent_token)
        customer = await Client.connect(host.local_url, created.customer_token)
        await agent.drain()
        (conn,) = host.relay.sessions[sid].agents
        writes = _count_writes(conn)
        deltas = [DraftDelta(turn_id="t_1", offset=i * 5, text=f"part{i}") for i in range(12)]
        for d in deltas:  # one tick: publish does not suspend for an ephemeral frame
            await host.relay.publish(sid, d)
        assert writes == []  # corked until the tick ends
        got = [await agent.expect("draft.delta") for _ in deltas]
        assert [g["data"]["text"] for g in got] == [d.text for d in deltas]
        assert len(writes) == 1  # one send for the twelve
        # the same bytes as twelve frames written one by one (ids and timestamps differ
        # per encode: rebuild each frame from what arrived)
        expected = b"".join(text_frame(encode("draft.delta", d, session=sid, msg_id=g["id"],
                                               ts=g["ts"]).encode())
                            for d, g in zip(deltas, got, strict=True))
        assert writes[0] == expected
        # a chat line: its group commit relays it at once (not a tick later)
        await customer.send("chat.send", {"text": "hello"}, session=sid)
        line = await agent.expect("chat.message")
        assert line["data"]["text"] == "hello" and len(writes) == 2
        await agent.close()
        await customer.close()


async def test_past_the_high_water_mark_frames_go_at_once_and_then_queue(
        tmp_path: Path) -> None:
    async with running_host(tmp_path / "host") as host:
        created = host.create_session()
        sid = created.session_id
        agent = await Client.connect(host.local_url, created.agent_token)
        await agent.drain()
        (conn,) = host.relay.sessions[sid].agents
        writes = _count_writes(conn)
        limit = host.relay.server.write_limit  # type: ignore[union-attr]
        text = "x" * 4000
        n = 3 * limit // 4000 + 2
        for i in range(n):
            await host.relay.publish(sid, DraftDelta(turn_id="t_1", offset=i * 4000,
                                                     text=text))
        # each write carried at most the high-water mark plus one frame: the cork never
        # holds more than the transport's own buffer would before it pauses writing
        assert len(writes) >= 3 and all(len(w) < limit + 4100 for w in writes)
        got = [await agent.expect("draft.delta", wait=10) for _ in range(n)]
        assert [g["data"]["offset"] for g in got] == [i * 4000 for i in range(n)]
        await agent.close()


async def test_a_close_goes_after_the_frames_written_before_it(tmp_path: Path) -> None:
    async with running_host(tmp_path / "host") as host:
        created = host.create_session()
        sid = created.session_id
        agent = await Client.connect(host.local_url, created.agent_token)
        await agent.drain()
        (conn,) = host.relay.sessions[sid].agents
        for i in range(3):
            await host.relay.publish(sid, DraftDelta(turn_id="t_1", offset=i, text="y"))
        conn.ws.close(4000, "bye")  # in the same tick as the corked frames
        got = [(await agent.expect("draft.delta"))["data"]["offset"] for _ in range(3)]
        assert got == [0, 1, 2]
        assert await agent.closed_code() == 4000
        await asyncio.sleep(0)
