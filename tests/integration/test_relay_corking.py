"""Write corking (issue 18) on a real host and real sockets: the frames a group commit
relays (chat lines, the co-pilot's turn frames, the deltas queued behind them) reach each
connection's transport in one write (one ``send``), byte for byte the frames one after
the other; a frame outside such a batch goes at once; past the transport's high-water
mark a batch's frames go at once (the buffer limits hold as before); a close still comes
after what was written."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from hitl_desktop.app.services import RunningHost
from hitl_desktop.core.protocol import DraftDelta, DraftStarted, TurnEnded
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


async def _session_with_agent(host: RunningHost) -> tuple[str, Client, Conn]:
    """A new session with one connected agent: its id, the client, and the host's side
    of the connection (whose transport the tests watch)."""
    created = host.create_session()
    agent = await Client.connect(host.local_url, created.agent_token)
    await agent.drain()
    (conn,) = host.relay.sessions[created.session_id].agents
    return created.session_id, agent, conn


async def test_a_group_commits_frames_leave_in_one_write_per_connection(
        tmp_path: Path) -> None:
    async with running_host(tmp_path / "host") as host:
        relay = host.relay
        created = host.create_session()
        sid = created.session_id
        agent = await Client.connect(host.local_url, created.agent_token)
        customer = await Client.connect(host.local_url, created.customer_token)
        await agent.drain()
        (conn,) = relay.sessions[sid].agents
        writes = _count_writes(conn)
        # one tick of a turn: its frames join the group, its deltas queue behind them
        await relay.publish(sid, DraftStarted(turn_id="t_1", reason="customer_message",
                                              provider="offline"))
        deltas = [DraftDelta(turn_id="t_1", offset=i * 5, text=f"part{i}") for i in range(8)]
        for d in deltas:
            await relay.publish(sid, d)
        await relay.publish(sid, TurnEnded(turn_id="t_1", outcome="completed",
                                           reason="customer_message"))
        assert writes == []  # nothing relayed before the commit
        got = [await agent.recv() for _ in range(len(deltas) + 2)]
        assert [g["type"] for g in got] == ["draft.started", *["draft.delta"] * 8, "turn.ended"]
        assert len(writes) == 1  # one send for the ten
        # the bytes: the ten frames one after the other, as relayed (and as logged)
        assert writes[0] == b"".join(text_frame(json.dumps(g, separators=(",", ":"),
                                                           ensure_ascii=False).encode())
                                     for g in got)
        stored = relay.log.messages(sid)
        assert stored[-2] == got[0] and stored[-1] == got[-1]
        # outside a batch a frame goes at once (no added latency)
        await relay.publish(sid, DraftDelta(turn_id="t_2", offset=0, text="now"))
        assert len(writes) == 2
        assert (await agent.expect("draft.delta"))["data"]["text"] == "now"
        await agent.close()
        await customer.close()


async def test_past_the_high_water_mark_frames_go_at_once_and_then_queue(
        tmp_path: Path) -> None:
    async with running_host(tmp_path / "host") as host:
        sid, agent, conn = await _session_with_agent(host)
        writes = _count_writes(conn)
        limit = host.relay.server.write_limit  # type: ignore[union-attr]
        text = "x" * 4000
        n = 3 * limit // 4000 + 2
        with host.relay.server.batch():  # type: ignore[union-attr]
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
        sid, agent, conn = await _session_with_agent(host)
        with host.relay.server.batch():  # type: ignore[union-attr]
            for i in range(3):
                await host.relay.publish(sid, DraftDelta(turn_id="t_1", offset=i, text="y"))
            conn.ws.close(4000, "bye")  # before the batch ends
        got = [(await agent.expect("draft.delta"))["data"]["offset"] for _ in range(3)]
        assert got == [0, 1, 2]
        assert await agent.closed_code() == 4000
        await asyncio.sleep(0)
