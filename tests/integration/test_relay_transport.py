"""The relay's WebSocket layer (host/transport.py, websockets' Sans-I/O protocol under
asyncio) over real sockets: what the relay tests do not already exercise — fragmented
messages, a client's pings, invalid UTF-8, a plain HTTP request to /ws, the closing
handshake, and the backpressure path a slow reader takes — each next to a chatting pair.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
import sqlite3
from pathlib import Path

from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from hitl_desktop.core.protocol import MAX_FRAME_BYTES
from hitl_desktop.core.tasks import TaskSupervisor
from hitl_desktop.host.relay import RelayConfig
from hitl_desktop.host.transport import READ_BUFFER_BYTES, WsConn, WsServer
from tests.support.host import running_host
from tests.support.protocol_client import Client, refused, token_of


def _chat(text: str, session: str) -> str:
    return json.dumps({"v": 1, "type": "chat.send", "id": f"f{len(text)}", "session": session,
                       "seq": None, "ts": 0.0, "data": {"text": text}})


async def test_fragmented_message_is_assembled_and_an_oversized_one_closes_1009(
        tmp_path: Path) -> None:
    async with running_host(tmp_path) as host:
        s = host.create_session()
        cust = await Client.connect(host.url, token_of(s.customer_link))
        agent = await Client.connect(host.url, token_of(s.agent_link))
        frame = _chat("hello in three parts", s.session_id)
        # websockets sends an iterable as one message in continuation frames
        await cust.ws.send([frame[:10], frame[10:30], frame[30:]])
        got = await agent.expect("chat.message")
        assert got["data"]["text"] == "hello in three parts"
        pong = await cust.ws.ping()
        assert await asyncio.wait_for(pong, 5) >= 0  # the host answers our pings

        big = await Client.connect(host.url, token_of(s.customer_link))
        part = "x" * (MAX_FRAME_BYTES // 2)
        await big.ws.send([part, part, part])  # each fragment fits, the message does not
        assert await big.closed_code() == 1009
        await cust.send("chat.send", {"text": "still here"}, session=s.session_id)
        assert (await agent.expect("chat.message"))["data"]["text"] == "still here"


async def test_invalid_utf8_closes_1007_and_plain_http_to_ws_gets_426(tmp_path: Path) -> None:
    async with running_host(tmp_path) as host:
        s = host.create_session()
        agent = await Client.connect(host.url, token_of(s.agent_link))
        port = host.port
        loop = asyncio.get_running_loop()

        def raw_exchange(payload: bytes) -> bytes:
            with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
                sock.sendall(payload)
                out = b""
                while True:
                    chunk = sock.recv(4096)
                    if not chunk:
                        return out
                    out += chunk

        plain = await loop.run_in_executor(None, raw_exchange,
                                           b"GET /ws HTTP/1.1\r\nHost: x\r\n\r\n")
        assert plain.startswith(b"HTTP/1.1 426")

        bad = await connect(host.url, compression=None)
        # a masked text frame whose payload is not UTF-8 (0xff never is)
        await bad.send(b"\xff\xfe")  # binary frames are fine for the transport ...
        text_frame = bytes([0x81, 0x82, 1, 2, 3, 4, 0xff ^ 1, 0xfe ^ 2])
        assert bad.transport is not None
        bad.transport.write(text_frame)  # ... a text frame with bad UTF-8 is not
        code = None
        try:
            async for _ in bad:
                pass
        except ConnectionClosed as exc:
            code = exc.rcvd.code if exc.rcvd else None
        if code is None and bad.close_code is not None:
            code = bad.close_code
        assert code == 1007
        await agent.send("chat.send", {"text": "fine"}, session=s.session_id)
        assert (await agent.expect("chat.message"))["data"]["text"] == "fine"


async def test_closing_handshake_and_slow_reader_backpressure(tmp_path: Path) -> None:
    cfg = RelayConfig(max_queue=50, rate=1e6, burst=1e6)
    async with running_host(tmp_path, config=cfg) as host:
        s = host.create_session()
        cust = await Client.connect(host.url, token_of(s.customer_link))
        agent = await Client.connect(host.url, token_of(s.agent_link))
        # a clean close: the host answers the close frame and closes TCP itself
        quitter = await Client.connect(host.url, token_of(s.customer_link))
        await asyncio.wait_for(quitter.ws.close(1000, "bye"), 5)
        assert quitter.ws.close_code == 1000

        # a customer socket (tiny receive buffer) that stops reading: the host's socket
        # buffer fills, the transport pauses writing, frames queue, and past max_queue the
        # host gives up on it with 1013 — which it reads once it reads again
        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        sock.connect(("127.0.0.1", host.port))
        sock.setblocking(False)
        slow = Client(await connect(host.url, compression=None, max_queue=None,
                                    max_size=2**22, sock=sock))
        await slow.send("hello", {"token": token_of(s.customer_link)})
        assert (await slow.recv())["type"] == "welcome"
        assert slow.ws.transport is not None
        slow.ws.transport.pause_reading()
        st = host.relay.sessions[s.session_id]
        text = "€" * 7000
        for i in range(300):
            await agent.send("chat.send", {"text": f"{i} {text}"}, session=s.session_id)
            await cust.expect("chat.message", wait=5)
            if len(st.customers) == 1:
                break
        assert len(st.customers) == 1  # the slow one left the fan-out; cust stayed
        slow.ws.transport.resume_reading()
        assert await slow.closed_code(10) == 1013
        got = [m["data"]["text"].split(" ", 1)[0] for m in cust.of("chat.message")]
        assert got == [str(i) for i in range(len(got))]  # everyone else: in order


async def test_nothing_is_relayed_before_it_is_durable(tmp_path: Path) -> None:
    """Group commit: lines sent back to back (many in one read, one loop tick, one
    transaction) each reach the other side in order, and every line a client has got is
    in the log as another connection (a crash's survivor) reads it. (That nothing is
    handed out before its commit is checked on the log itself: test_group_commit.py.)"""
    async with running_host(tmp_path) as host:
        s = host.create_session()
        cust = await Client.connect(host.url, token_of(s.customer_link))
        agent = await Client.connect(host.url, token_of(s.agent_link))
        path = host.relay.log.path

        def durable(seq: int) -> bool:
            db = sqlite3.connect(path)
            try:
                return db.execute("SELECT 1 FROM messages WHERE session_id = ? AND seq = ?",
                                  (s.session_id, seq)).fetchone() is not None
            finally:
                db.close()

        frames = [_chat(f"line {i}", s.session_id).replace(f'"f{len(f"line {i}")}"',
                                                            f'"g{i}"') for i in range(40)]
        for frame in frames:  # back to back: many arrive in one read, one loop tick
            await cust.ws.send(frame)
        for i in range(40):
            got = await agent.expect("chat.message")
            assert got["data"]["text"] == f"line {i}"
            assert durable(got["seq"]), got["seq"]
        # a refused hello (its handler stops reading) does not hold later lines' commit
        frames_, code = await refused(host.url, "nobody.000000000000000000")
        assert code == 4001 and frames_[0]["data"]["code"] == "auth_failed"
        await cust.send("chat.send", {"text": "after"}, session=s.session_id)
        assert (await agent.expect("chat.message"))["data"]["text"] == "after"
        server = host.relay.server
        assert server is not None and server.busy == 0  # every handler is waiting again


async def test_a_handler_that_falls_behind_stops_reading_the_socket() -> None:
    """The transport reads at most ``max_queue`` messages ahead of its handler (plus one
    socket read): a client flooding a connection whose handler is busy is held back by
    TCP, not buffered in host memory; nothing is lost once the handler reads again."""
    conns: list[WsConn] = []
    release = asyncio.Event()
    received: list[int] = []

    async def handler(conn: WsConn) -> None:
        conns.append(conn)
        await release.wait()  # a slow operation
        async for _ in conn:
            received.append(1)

    tasks = TaskSupervisor("transport test")
    server = WsServer(handler, spawn=tasks.spawn, on_accept=lambda _t: "127.0.0.1",
                      on_release=lambda _a: None, process_request=lambda _c, _r: None,
                      max_size=2**20, ping_interval=None, ping_timeout=20.0, open_timeout=10.0,
                      close_timeout=1.0, server_header=None, max_queue=16)
    await server.listen("127.0.0.1", 0, ssl_context=None, backlog=16)
    port = server.sockets[0].getsockname()[1]
    ws = await connect(f"ws://127.0.0.1:{port}/ws", compression=None)
    try:
        sent = 0
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(2.0):
                while sent < 200_000:
                    await ws.send("x" * 1000)
                    sent += 1
        assert sent < 200_000  # held back by TCP once the host stopped reading
        (conn,) = conns
        # one socket read (READ_BUFFER_BYTES, 64 KiB) of 1 kB messages at most beyond
        # the bound
        assert conn.queued() <= 16 + READ_BUFFER_BYTES // 1000 + 1
        release.set()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 10
        while len(received) < sent and loop.time() < deadline:  # noqa: ASYNC110
            await asyncio.sleep(0.02)
        await asyncio.sleep(0.1)
        # everything arrives once the handler reads again (the send the timeout
        # interrupted may have gone out too)
        assert len(received) in (sent, sent + 1)
    finally:
        await ws.close()
        await server.aclose(1001, "done")
        await tasks.aclose()


async def test_connections_reading_through_the_shared_buffer_keep_their_own_bytes() -> None:
    """Every socket read lands in the server's one read buffer (WsConn.get_buffer): many
    connections sending messages larger than it at once, interleaved on the loop, each
    get exactly their own messages, whole and in order."""
    got: dict[int, list[str]] = {}
    all_in = asyncio.Event()
    clients_n, sizes = 6, (10, 70_000, 3 * READ_BUFFER_BYTES + 17, 200)

    async def handler(conn: WsConn) -> None:
        mine = got.setdefault(id(conn), [])
        async for message in conn:
            assert isinstance(message, str)
            mine.append(message)
            if sum(map(len, got.values())) == clients_n * len(sizes):
                all_in.set()

    tasks = TaskSupervisor("transport test")
    server = WsServer(handler, spawn=tasks.spawn, on_accept=lambda _t: "127.0.0.1",
                      on_release=lambda _a: None, process_request=lambda _c, _r: None,
                      max_size=2**20, ping_interval=None, ping_timeout=20.0, open_timeout=10.0,
                      close_timeout=1.0, server_header=None)
    await server.listen("127.0.0.1", 0, ssl_context=None, backlog=16)
    port = server.sockets[0].getsockname()[1]
    clients = [await connect(f"ws://127.0.0.1:{port}/ws", compression=None, max_size=None)
               for _ in range(clients_n)]

    def message(c: int, i: int, size: int) -> str:
        return (f"<{c}:{i}>" + chr(0x41 + c) * size)[:size] if size > 8 else f"{c}{i}"

    try:
        await asyncio.gather(*(ws.send(message(c, i, size)) for c, ws in enumerate(clients)
                               for i, size in enumerate(sizes)))
        await asyncio.wait_for(all_in.wait(), 10)
        received = sorted(got.values())
        expected = sorted([message(c, i, size) for i, size in enumerate(sizes)]
                          for c in range(len(clients)))
        assert received == expected
    finally:
        for ws in clients:
            await ws.close()
        await server.aclose(1001, "done")
        await tasks.aclose()


async def test_without_group_commit_each_line_commits_and_is_relayed_at_once(
        tmp_path: Path) -> None:
    """``RelayConfig.group_commit=False`` (the comparison bench/relay.py can run): the
    lines still arrive in order, each stored before anyone sees it."""
    async with running_host(tmp_path, config=RelayConfig(group_commit=False)) as host:
        s = host.create_session()
        cust = await Client.connect(host.url, token_of(s.customer_link))
        agent = await Client.connect(host.url, token_of(s.agent_link))
        for i in range(10):
            await cust.send("chat.send", {"text": f"line {i}"}, session=s.session_id)
        got = [await agent.expect("chat.message") for _ in range(10)]
        assert [m["data"]["text"] for m in got] == [f"line {i}" for i in range(10)]
        db = sqlite3.connect(host.relay.log.path)
        try:
            seqs = [r[0] for r in db.execute(
                "SELECT seq FROM messages WHERE session_id = ? AND type = 'chat.message'",
                (s.session_id,))]
        finally:
            db.close()
        assert seqs == [m["seq"] for m in got]
        assert not host.relay.log._group_open  # nothing was ever grouped
