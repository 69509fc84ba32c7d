"""The transport takes complete, unfragmented, masked text frames without websockets'
parser (host/transport.py ``WsConn._text_frames``; issue 18) and hands every other frame
to websockets, which must therefore always stand at a frame boundary when a frame is
taken past it. Checked over real sockets with a raw client: random mixes of every kind
of frame, cut into random reads (a frame split anywhere, a header split, the first
frames sent with the handshake), arrive exactly as sent; a client's protocol errors
close the connection as websockets closes it (1002 for a text frame inside a fragmented
message or an unmasked one, 1009 over max_size, 1007 for invalid UTF-8)."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import os
import random
import socket
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from hitl_desktop.core.tasks import TaskSupervisor
from hitl_desktop.host.transport import WsConn, WsServer

MAX_SIZE = 200_000
SMALL_MAX = 1_000  # a host whose limit a 16-bit length can pass


def _frame(opcode: int, payload: bytes, *, fin: bool = True, mask: bool = True,
           long16: bool = False, long64: bool = False, key: bytes | None = None) -> bytes:
    n = len(payload)
    head = bytes([(0x80 if fin else 0) | opcode])
    bit = 0x80 if mask else 0
    if long64 or n >= 65536:
        head += bytes([bit | 127]) + n.to_bytes(8, "big")
    elif long16 or n >= 126:
        head += bytes([bit | 126]) + n.to_bytes(2, "big")
    else:
        head += bytes([bit | n])
    if not mask:
        return head + payload
    key = os.urandom(4) if key is None else key
    return head + key + bytes(b ^ key[i % 4] for i, b in enumerate(payload))


def _text(rng: random.Random, size: int) -> str:
    return "".join(rng.choice("aé€𝄞 ") for _ in range(size))


def _mix(rng: random.Random) -> tuple[bytes, list[str | bytes], int]:
    """(the client's bytes, the messages the handler must get, pings sent)."""
    out: list[bytes] = []
    want: list[str | bytes] = []
    pings = 0
    for _ in range(40):
        kind = rng.choice(["short", "short", "short", "mid", "long", "empty", "binary",
                           "ping", "fragments", "nonminimal", "long64"])
        if kind == "ping":
            out.append(_frame(0x9, os.urandom(rng.randint(0, 20))))
            pings += 1
            continue
        if kind == "binary":
            data = os.urandom(rng.randint(0, 300))
            out.append(_frame(0x2, data))
            want.append(data)
            continue
        size = {"short": rng.randint(1, 120), "mid": rng.randint(126, 2000),
                "long": rng.randint(20_000, 40_000), "empty": 0,
                "fragments": rng.randint(3, 400), "nonminimal": rng.randint(0, 125),
                "long64": rng.randint(0, 300)}[kind]
        text = _text(rng, size)
        raw = text.encode()
        want.append(text)
        if kind == "fragments":
            a, b = sorted(rng.sample(range(len(raw) + 1), 2))
            out.append(_frame(0x1, raw[:a], fin=False))
            out.append(_frame(0x9, b"mid"))  # a control frame between fragments
            pings += 1
            out.append(_frame(0x0, raw[a:b], fin=False))
            out.append(_frame(0x0, raw[b:]))
        else:
            out.append(_frame(0x1, raw, long16=kind == "nonminimal", long64=kind == "long64"))
    return b"".join(out), want, pings


def _handshake() -> bytes:
    key = base64.b64encode(os.urandom(16)).decode()
    return (f"GET /ws HTTP/1.1\r\nHost: test\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n").encode()


async def _listen(handler: Callable[[WsConn], Awaitable[None]], tasks: TaskSupervisor, *,
                  max_size: int, max_queue: int = 64) -> tuple[WsServer, int]:
    """A transport-only server on a free loopback port (no relay): (server, port)."""
    server = WsServer(handler, spawn=tasks.spawn,
                      on_accept=lambda _t: "127.0.0.1", on_release=lambda _a: None,
                      process_request=lambda _c, _r: None, max_size=max_size,
                      ping_interval=None, ping_timeout=20.0, open_timeout=10.0,
                      close_timeout=1.0, server_header=None, max_queue=max_queue)
    await server.listen("127.0.0.1", 0, ssl_context=None, backlog=16)
    return server, int(server.sockets[0].getsockname()[1])


class _Host:
    def __init__(self, max_size: int = MAX_SIZE) -> None:
        self.max_size = max_size
        self.got: dict[int, list[str | bytes]] = {}
        self.tasks = TaskSupervisor("fast path test")
        self.server: WsServer | None = None

    async def start(self) -> int:
        async def handler(conn: WsConn) -> None:
            mine = self.got.setdefault(conn.remote_address[1], [])
            async for message in conn:
                mine.append(message)

        self.server, port = await _listen(handler, self.tasks, max_size=self.max_size,
                                          max_queue=10_000)
        return port

    async def stop(self) -> None:
        assert self.server is not None
        await self.server.aclose(1001, "done")
        await self.tasks.aclose()


async def _reply_frames(reader: asyncio.StreamReader) -> list[tuple[int, bytes]]:
    """The server's frames (unmasked) until it closes: (opcode, payload)."""
    frames: list[tuple[int, bytes]] = []
    while True:
        try:
            b0, b1 = await reader.readexactly(2)
        except asyncio.IncompleteReadError:
            return frames
        n = b1 & 0x7F
        if n == 126:
            n = int.from_bytes(await reader.readexactly(2), "big")
        elif n == 127:
            n = int.from_bytes(await reader.readexactly(8), "big")
        frames.append((b0 & 0x0F, await reader.readexactly(n)))
        if b0 & 0x0F == 0x8:
            return frames


async def _session(port: int, data: bytes, rng: random.Random, *, with_handshake: bool
                   ) -> tuple[int, list[tuple[int, bytes]]]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    sock: Any = writer.get_extra_info("socket")
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    local_port = int(sock.getsockname()[1])
    hs = _handshake()
    if with_handshake:  # the first frames in the handshake's segment (text frames only:
        # a pipelined ping's pong would go out before the 101, websockets' own order)
        first = data.index(b"\x89") if b"\x89" in data[:300] else 300
        cut = rng.randint(0, min(first, len(data)))
        writer.write(hs + data[:cut])
        data = data[cut:]
    else:
        writer.write(hs)
    await writer.drain()
    assert (await reader.readuntil(b"\r\n\r\n")).startswith(b"HTTP/1.1 101")
    pos = 0
    while pos < len(data):  # random reads: frames and headers split anywhere
        step = rng.choice([1, 2, 3, 5, 7, 13, 64, 200, 1500, 40_000])
        writer.write(data[pos:pos + step])
        await writer.drain()
        pos += step
        await asyncio.sleep(0.002 if step < 64 else 0)
    writer.write(_frame(0x8, (1000).to_bytes(2, "big")))  # close: the server answers
    await writer.drain()
    replies = await asyncio.wait_for(_reply_frames(reader), 10)
    writer.close()
    return local_port, replies


@pytest.mark.parametrize("seed", range(6))
async def test_every_frame_arrives_as_sent_through_random_reads(seed: int) -> None:
    rng = random.Random(seed)
    host = _Host()
    port = await host.start()
    try:
        data, want, pings = _mix(rng)
        local, replies = await _session(port, data, rng, with_handshake=seed % 2 == 0)
        await asyncio.sleep(0.05)
        assert host.got[local] == want
        assert [op for op, _ in replies] == [0xA] * pings + [0x8]  # a pong per ping
        assert replies[-1][1][:2] == (1000).to_bytes(2, "big")
    finally:
        await host.stop()


@pytest.mark.parametrize(("frames", "code"), [
    # a text frame while a fragmented message is open: websockets' "expected a
    # continuation frame" (the fast path must not take it)
    ([_frame(0x1, b"part", fin=False), _frame(0x1, b"whole")], 1002),
    ([_frame(0x1, b"not masked", mask=False)], 1002),
    ([_frame(0x1, b"x" * (SMALL_MAX + 1))[:200]], 1009),  # refused from the header on
    ([_frame(0x1, b"ok"), _frame(0x1, b"\xff\xfe"), _frame(0x1, b"after")], 1007),
])
async def test_protocol_errors_close_as_websockets_closes(frames: list[bytes], code: int
                                                          ) -> None:
    host = _Host(SMALL_MAX)
    port = await host.start()
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(_handshake())
        await writer.drain()
        await reader.readuntil(b"\r\n\r\n")
        writer.write(b"".join(frames))
        await writer.drain()
        replies = await asyncio.wait_for(_reply_frames(reader), 10)
        assert replies[-1][0] == 0x8
        assert int.from_bytes(replies[-1][1][:2], "big") == code
        writer.close()
        (got,) = host.got.values()
        # nothing after the fault is delivered; what came before it is
        assert got == (["ok"] if code == 1007 else [])
    finally:
        await host.stop()


@pytest.mark.parametrize("with_handshake", [True, False])
async def test_a_frame_inside_another_frames_payload_is_never_taken_for_a_frame(
        with_handshake: bool) -> None:
    """A binary frame whose payload is a well-formed text frame, its header in one read
    (with the handshake, or alone) and its payload in the next: that read starts with
    what looks like a text frame, and must still be the binary frame's payload."""
    host = _Host()
    port = await host.start()
    try:
        inner = _frame(0x1, b"smuggled")
        outer = b"\x82" + bytes([0x80 | len(inner)]) + b"\x00\x00\x00\x00" + inner  # key 0
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.get_extra_info("socket").setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        head, payload = outer[:6], outer[6:]
        if with_handshake:
            writer.write(_handshake() + head)
            await writer.drain()
            await reader.readuntil(b"\r\n\r\n")
        else:
            writer.write(_handshake())
            await writer.drain()
            await reader.readuntil(b"\r\n\r\n")
            writer.write(head)
            await writer.drain()
        await asyncio.sleep(0.05)  # separate reads
        writer.write(payload + _frame(0x1, b"after"))
        await writer.drain()
        writer.write(_frame(0x8, (1000).to_bytes(2, "big")))
        await writer.drain()
        await asyncio.wait_for(_reply_frames(reader), 10)
        writer.close()
        (got,) = host.got.values()
        assert got == [inner, "after"]
    finally:
        await host.stop()


async def _open_raw(port: int) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.get_extra_info("socket").setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    writer.write(_handshake())
    await writer.drain()
    assert (await reader.readuntil(b"\r\n\r\n")).startswith(b"HTTP/1.1 101")
    return reader, writer


@pytest.mark.parametrize("split", ["one read", "close read alone"])
async def test_nothing_after_a_close_frame_is_delivered(split: str) -> None:
    """Text frames, a close, more text frames: the ones before the close arrive, the
    close is answered, the ones after it are discarded (RFC 6455 1.4) — whether they
    come in the close's read (the fast path must stop at the close) or later."""
    host = _Host()
    port = await host.start()
    try:
        reader, writer = await _open_raw(port)
        before = _frame(0x1, b"one") + _frame(0x1, "two €".encode())
        close = _frame(0x8, (1000).to_bytes(2, "big"))
        after = _frame(0x1, b"after the close") + _frame(0x1, b"x" * 300)
        if split == "one read":
            writer.write(before + close + after)
        else:
            writer.write(before)
            await writer.drain()
            await asyncio.sleep(0.05)
            writer.write(close)
            await writer.drain()
            await asyncio.sleep(0.05)
            with contextlib.suppress(ConnectionError):
                writer.write(after)
        with contextlib.suppress(ConnectionError):
            await writer.drain()
        replies = await asyncio.wait_for(_reply_frames(reader), 10)
        writer.close()
        assert replies == [(0x8, (1000).to_bytes(2, "big"))]
        await asyncio.sleep(0.05)
        (got,) = host.got.values()
        assert got == ["one", "two €"]
    finally:
        await host.stop()


async def test_a_stream_split_at_every_byte_arrives_as_sent() -> None:
    """The same frames sent again and again over one connection, each time in two reads
    cut one byte further on, so every header and payload is split at every byte and the
    second read starts there and goes on with whole frames (which the fast path takes
    only if it knows where they start). Mask keys of 0x81 bytes and a binary payload that
    is a text frame make a wrong guess look like a text frame."""
    host = _Host()
    port = await host.start()
    try:
        k81 = b"\x81\x81\x81\x81"
        inner = _frame(0x1, b"smuggled")
        texts = ["a", "", "\u00e9" * 70, "x" * 130, "\U0001d11e two"]
        unit = b"".join([
            _frame(0x1, texts[0].encode(), key=k81),
            _frame(0x9, b"pi", key=k81),
            _frame(0x1, texts[1].encode()),
            _frame(0x1, texts[2].encode(), key=k81),  # 140 bytes: a 16-bit length
            b"\x82" + bytes([0x80 | len(inner)]) + b"\x00\x00\x00\x00" + inner,  # key 0
            _frame(0x1, texts[3].encode()[:60], fin=False),
            _frame(0x0, texts[3].encode()[60:], key=k81),
            _frame(0x1, texts[4].encode(), long64=True),
        ])
        want = [texts[0], texts[1], texts[2], inner, texts[3], texts[4]]
        reader, writer = await _open_raw(port)
        for cut in range(len(unit) + 1):
            for part in (unit[:cut], unit[cut:]):
                writer.write(part)
                await writer.drain()
                await asyncio.sleep(0.001)  # each part its own read
        writer.write(_frame(0x8, (1000).to_bytes(2, "big")))
        await writer.drain()
        replies = await asyncio.wait_for(_reply_frames(reader), 10)
        writer.close()
        assert replies == [(0xA, b"pi")] * (len(unit) + 1) + [(0x8, (1000).to_bytes(2, "big"))]
        (got,) = host.got.values()
        assert got == want * (len(unit) + 1)
    finally:
        await host.stop()


async def test_a_frame_of_exactly_max_size_is_delivered_and_one_byte_more_closes() -> None:
    host = _Host(SMALL_MAX)
    port = await host.start()
    try:
        reader, writer = await _open_raw(port)
        writer.write(_frame(0x1, b"y" * SMALL_MAX) + _frame(0x1, b"z" * (SMALL_MAX + 1)))
        await writer.drain()
        replies = await asyncio.wait_for(_reply_frames(reader), 10)
        writer.close()
        assert int.from_bytes(replies[-1][1][:2], "big") == 1009
        (got,) = host.got.values()
        assert got == ["y" * SMALL_MAX]
    finally:
        await host.stop()
