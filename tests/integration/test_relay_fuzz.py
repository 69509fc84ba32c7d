"""Hostile input: 1,000+ malformed, oversized, binary and unknown-type frames (hypothesis)
while another session keeps chatting; plus the rate limit and the error limit."""

from __future__ import annotations

import asyncio
import json
import socket
import threading
import time
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from hitl_desktop.core.protocol import CLIENT_MESSAGES, MAX_FRAME_BYTES
from hitl_desktop.host.relay import RelayConfig
from tests.support.budget import examples
from tests.support.host import running_host
from tests.support.protocol_client import Client, refused, token_of

FRAMES_PER_EXAMPLE = 25
EXAMPLES = examples(44, quick=16)  # x 25 hostile frames (1,100 with HITL_SLOW=1)
TOTAL_SENT: list[int] = []

json_scalar = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False),
                        st.text(max_size=30))
json_value = st.recursive(json_scalar, lambda kids: st.one_of(
    st.lists(kids, max_size=4), st.dictionaries(st.text(max_size=8), kids, max_size=4)),
    max_leaves=6)
known_type = st.sampled_from(sorted(CLIENT_MESSAGES))
any_type = st.one_of(known_type, st.text(min_size=0, max_size=70), json_value)


@st.composite
def envelope(draw: st.DrawFn) -> str:
    env: dict[str, Any] = {
        "v": draw(st.one_of(st.just(1), json_value)),
        "type": draw(any_type),
        "id": draw(st.one_of(st.text(min_size=1, max_size=80), json_value)),
        "session": draw(st.one_of(st.none(), st.text(max_size=70), json_value)),
        "seq": draw(st.one_of(st.none(), st.integers(-3, 10**12))),
        "ts": draw(st.one_of(st.floats(allow_nan=False), json_value)),
        "data": draw(st.one_of(st.dictionaries(st.text(max_size=12), json_value, max_size=3),
                               json_value)),
    }
    for key in draw(st.lists(st.sampled_from(sorted(env)), max_size=3)):
        env.pop(key, None)
    if draw(st.booleans()):
        env[draw(st.text(max_size=6))] = draw(json_value)
    return json.dumps(env)


hostile = st.one_of(
    envelope(),
    envelope(),
    st.binary(max_size=200),
    st.text(max_size=300),
    json_value.map(json.dumps),
    st.sampled_from([
        "[" * 100_000,  # nesting bomb
        '{"v":1,"type":"chat.send","id":"x","session":"S","ts":0,"data":{"text":""}}',
        '{"v":1,"type":"hello","id":"x","ts":0,"data":{"token":"aaaa.bbbbbbbbbbbbbbbbbb"}}',
        "x" * (MAX_FRAME_BYTES + 1),  # oversized: the host closes with 1009
        '{"v":1,"type":"chat.send","id":"x","session":"S","ts":0,"data":{"text":"%s"}}'
        % ("y" * 9000),
    ]),
)


async def _chatter(url: str, cust_tok: str, agent_tok: str, sid: str,
                   stop: asyncio.Event) -> list[float]:
    """A well-behaved pair chatting the whole time; returns each round trip's latency."""
    cust = await Client.connect(url, cust_tok)
    agent = await Client.connect(url, agent_tok)
    latencies = []
    i = 0
    while not stop.is_set() or i < 3:
        i += 1
        t0 = time.perf_counter()
        await cust.send("chat.send", {"text": f"ping {i}"}, session=sid)
        await agent.expect("chat.message", text=f"ping {i}", wait=5)
        latencies.append(time.perf_counter() - t0)
        await cust.expect("chat.message", text=f"ping {i}", wait=5)  # its own echo
        await asyncio.sleep(0.005)
    await cust.close()
    await agent.close()
    return latencies


async def _attack(url: str, token: str, frames: list[str | bytes]) -> int:
    """Send every frame; reconnect whenever the host throws us out. Returns reconnects."""
    reconnects = 0
    ws = None
    reader: asyncio.Task[None] | None = None

    async def read(client: Client) -> None:
        """Everything the host sent until it closed: never a chat line without a session."""
        try:
            while True:
                msg = await client.recv(60)
                assert msg["type"] != "chat.message" or msg["session"] is not None
        except (ConnectionClosed, TimeoutError):
            pass

    for frame in frames:
        if ws is None:
            client = await Client.connect(url, token)
            ws = client.ws
            reader = asyncio.ensure_future(read(client))
        try:
            await ws.send(frame)
        except ConnectionClosed:
            reconnects += 1
            ws = None
            if reader is not None:
                await reader
    if ws is not None:
        await ws.close()
    if reader is not None:
        await reader
    return reconnects


def test_hostile_frames_leave_other_clients_unaffected(tmp_path: Path) -> None:
    """One host on a background loop; a well-behaved pair chats the whole time while
    hypothesis throws batches of hostile frames at it from another session."""
    # limits high enough that every frame goes through validation (the default limits
    # would throw the attacker out early, which is tested separately below)
    cfg = RelayConfig(rate=1e6, burst=1e6, max_errors=10**6)
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()

    def on_loop(coro: Any, timeout: float = 60) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, loop).result(timeout)

    host_cm = running_host(tmp_path, config=cfg)
    host = on_loop(host_cm.__aenter__())
    stop = asyncio.Event()
    try:
        victim = host.create_session()
        attacker = token_of(host.create_session().agent_link)

        async def start_chat() -> asyncio.Future[list[float]]:
            return asyncio.ensure_future(_chatter(
                host.url, token_of(victim.customer_link), token_of(victim.agent_link),
                victim.session_id, stop))

        chat = on_loop(start_chat())

        @settings(max_examples=EXAMPLES, deadline=None, database=None,
                  suppress_health_check=list(HealthCheck))
        @given(frames=st.lists(hostile, min_size=FRAMES_PER_EXAMPLE,
                               max_size=FRAMES_PER_EXAMPLE))
        def attack(frames: list[str | bytes]) -> None:
            on_loop(_attack(host.url, attacker, frames))
            TOTAL_SENT.append(len(frames))
            assert not chat.done(), chat  # the victim's chat is still running

        attack()

        async def finish() -> list[float]:
            stop.set()
            return await chat

        latencies = on_loop(finish())
        assert sum(TOTAL_SENT) >= EXAMPLES * FRAMES_PER_EXAMPLE  # every example ran
        assert len(latencies) > 20 and max(latencies) < 2.0
        # the victim's log holds exactly its own conversation
        msgs = host.relay_log.messages(victim.session_id)
        assert [m["data"]["text"] for m in msgs if m["type"] == "chat.message"] == [
            f"ping {i}" for i in range(1, len(latencies) + 1)]

        async def newcomer() -> str:
            desk = await Client.connect(host.url, token_of(host.desk_link))
            await desk.close()
            return str(desk.welcome["role"])

        assert on_loop(newcomer()) == "agent"
    finally:
        loop.call_soon_threadsafe(stop.set)
        on_loop(host_cm.__aexit__(None, None, None))
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)
        loop.close()


async def test_rate_limit_throttles_then_closes_only_the_flooder(tmp_path: Path) -> None:
    cfg = RelayConfig(rate=50, burst=20, max_rate_drops=100)
    async with running_host(tmp_path, config=cfg) as host:
        s1, s2 = host.create_session(), host.create_session()
        flooder = await Client.connect(host.url, token_of(s1.customer_link))
        calm = await Client.connect(host.url, token_of(s2.customer_link))
        agent = await Client.connect(host.url, token_of(s2.agent_link))
        for i in range(200):
            try:
                await flooder.send("typing", {"active": i % 2 == 0}, session=s1.session_id)
            except ConnectionClosed:
                break
        frames = []
        try:
            while True:
                frames.append(await flooder.recv(3))
        except ConnectionClosed as exc:
            assert exc.rcvd is not None and exc.rcvd.code == 4008
        codes = [f["data"]["code"] for f in frames if f["type"] == "error"]
        assert codes and set(codes) == {"rate_limited"}
        assert any(f["data"].get("retry_after") for f in frames if f["type"] == "error")
        await calm.send("chat.send", {"text": "still here"}, session=s2.session_id)
        assert (await agent.expect("chat.message"))["data"]["text"] == "still here"


async def test_too_many_errors_close_4003_and_oversize_1009(tmp_path: Path) -> None:
    cfg = RelayConfig(max_errors=10, rate=1e6, burst=1e6)
    async with running_host(tmp_path, config=cfg) as host:
        s = host.create_session()
        bad = await Client.connect(host.url, token_of(s.customer_link))
        for _ in range(12):
            await bad.ws.send("not json")
        assert await bad.closed_code() == 4003
        big = await Client.connect(host.url, token_of(s.customer_link))
        await big.ws.send("x" * (MAX_FRAME_BYTES + 1))
        assert await big.closed_code() == 1009
        binary = await Client.connect(host.url, token_of(s.customer_link))
        await binary.ws.send(b"\x00\x01")
        err = await binary.expect("error")
        assert err["data"]["code"] == "bad_frame"
        ok = await Client.connect(host.url, token_of(s.agent_link))
        assert ok.welcome["role"] == "agent"


async def test_a_reader_that_never_reads_is_dropped_not_waited_for(tmp_path: Path) -> None:
    cfg = RelayConfig(max_queue=50, rate=1e6, burst=1e6)
    async with running_host(tmp_path, config=cfg) as host:
        s = host.create_session()
        # a client with a tiny receive buffer that never reads
        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        sock.connect(("127.0.0.1", host.port))
        sock.setblocking(False)
        stuck = await connect(host.url, compression=None, max_queue=1, sock=sock)
        await stuck.send(json.dumps({"v": 1, "type": "hello", "id": "h", "ts": 0,
                                     "data": {"token": token_of(s.agent_link)}}))
        stuck.transport.pause_reading()
        cust = await Client.connect(host.url, token_of(s.customer_link))
        other = await Client.connect(host.url, token_of(s.agent_link))
        text = "€" * 7000  # 21 kB a frame: fills the kernel buffers quickly
        t0 = time.perf_counter()
        for i in range(400):
            await cust.send("chat.send", {"text": f"{i}{text}"}, session=s.session_id)
            await other.expect("chat.message", wait=5)
            await cust.expect("chat.message", wait=5)
        assert time.perf_counter() - t0 < 20
        # dropped (closing with 1013) once its queue overflowed: out of every fan-out
        assert len(host.relay.sessions[s.session_id].agents) == 1
        assert len(host.relay.conns) == 2
        stuck.transport.abort()


async def test_a_long_replay_is_not_mistaken_for_a_slow_reader(tmp_path: Path) -> None:
    cfg = RelayConfig(max_queue=50, rate=1e6, burst=1e6)
    async with running_host(tmp_path, config=cfg) as host:
        s = host.create_session()
        cust = await Client.connect(host.url, token_of(s.customer_link))
        for i in range(120):
            await cust.send("chat.send", {"text": f"m{i}"}, session=s.session_id)
            await cust.expect("chat.message", text=f"m{i}")
        # a desk that had the session open resumes it from 0 (its whole history)
        desk = await Client.connect(host.url, token_of(host.desk_link),
                                    resume={s.session_id: 0})
        frames = [m for m in await desk.drain(0.3) if m["session"] == s.session_id
                  and m["seq"] is not None]
        assert [m["seq"] for m in frames] == list(range(1, 122))
        await cust.send("chat.send", {"text": "live"}, session=s.session_id)
        assert (await desk.expect("chat.message"))["data"]["text"] == "live"


async def test_lobby_sessions_are_rate_limited_per_address(tmp_path: Path) -> None:
    cfg = RelayConfig(lobby_rate=0.01, lobby_burst=3)
    async with running_host(tmp_path, config=cfg) as host:
        lobby = token_of(host.lobby_link)
        for _ in range(3):
            c = await Client.connect(host.url, lobby)
            await c.close()
        before = len(host.relay.sessions)
        frames, code = await refused(host.url, lobby)
        assert code == 4008 and [f["data"]["code"] for f in frames] == ["rate_limited"]
        assert len(host.relay.sessions) == before
        desk = await Client.connect(host.url, token_of(host.desk_link))  # others unaffected
        assert desk.welcome["role"] == "agent"
