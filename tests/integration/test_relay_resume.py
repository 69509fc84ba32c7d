"""Resume: a client that drops (at random points) and reconnects with its last seq
receives exactly what it missed, in order, without duplicates."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.support.host import running_host
from tests.support.protocol_client import Client, token_of

# one "cycle": the sender sends some messages, the receiver reads `cut` frames and then
# its connection dies abruptly; the sender sends more while it is away
cycle = st.tuples(st.integers(0, 6), st.integers(0, 8), st.integers(0, 6))


@settings(max_examples=25, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(receiver=st.sampled_from(["customer", "agent", "desk"]),
       cycles=st.lists(cycle, min_size=1, max_size=4), tail=st.integers(0, 5))
def test_resume_delivers_exactly_the_missed_messages(
    tmp_path: Path, receiver: str, cycles: list[tuple[int, int, int]], tail: int
) -> None:
    asyncio.run(_scenario(tmp_path, receiver, cycles, tail))


async def _scenario(tmp_path: Path, receiver: str, cycles: list[tuple[int, int, int]],
                    tail: int) -> None:
    data = tmp_path / f"d{id(cycles)}"
    async with running_host(data) as host:
        created = host.create_session()
        sid = created.session_id
        recv_token = {
            "customer": token_of(created.customer_link),
            "agent": token_of(created.agent_link),
            "desk": token_of(host.desk_link),
        }[receiver]
        send_token = token_of(created.agent_link if receiver == "customer"
                              else created.customer_link)
        sender = await Client.connect(host.url, send_token)
        sent = 0
        got: list[dict[str, Any]] = []  # durable frames of our session, as received

        async def send(n: int) -> None:
            nonlocal sent
            for _ in range(n):
                sent += 1
                await sender.send("chat.send", {"text": f"m{sent}"}, session=sid)
                await sender.expect("chat.message", text=f"m{sent}")

        def last_seq() -> int:
            return got[-1]["seq"] if got else 0

        def keep(msg: dict[str, Any]) -> None:
            if msg["session"] == sid and msg["seq"] is not None:
                got.append(msg)

        client = await Client.connect(host.url, recv_token, resume={sid: 0})
        for before, cut, away in cycles:
            await send(before)
            for _ in range(cut):
                try:
                    keep(await client.recv(0.3))
                except TimeoutError:
                    break
            client.ws.transport.abort()  # the line dies: no close handshake
            await send(away)
            client = await Client.connect(host.url, recv_token, resume={sid: last_seq()})
        await send(tail)
        final = host.relay.session_summary(sid)
        assert final is not None
        while last_seq() < final.last_seq:
            keep(await client.recv(3))
        await client.close()
        await sender.close()

    assert [m["seq"] for m in got] == list(range(1, final.last_seq + 1))
    assert [m["data"]["text"] for m in got if m["type"] == "chat.message"] == [
        f"m{i}" for i in range(1, sent + 1)]
