"""The relay's own text-frame serialiser (host/transport.py ``text_frame``) against
websockets' Sans-I/O ``ServerProtocol.send_text``: the same bytes for every payload size
class (7-bit, 16-bit and 64-bit lengths, their edges) and for non-ASCII text, and a real
websockets client reads them back."""

from __future__ import annotations

import asyncio

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from websockets.asyncio.client import connect
from websockets.http11 import Request
from websockets.server import ServerProtocol

from hitl_desktop.host.transport import WsConn, WsServer, text_frame


def _websockets_bytes(text: str) -> bytes:
    """What websockets' own server protocol writes for ``send_text(text)``."""
    protocol = ServerProtocol()
    protocol.receive_data(
        b"GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n")
    request = protocol.events_received()[0]
    assert isinstance(request, Request)
    protocol.send_response(protocol.accept(request))
    protocol.data_to_send()
    protocol.send_text(text.encode())
    return b"".join(protocol.data_to_send())


@pytest.mark.parametrize("size", [0, 1, 125, 126, 127, 65535, 65536, 70000])
def test_every_length_class_is_what_websockets_writes(size: int) -> None:
    text = "x" * size
    assert text_frame(text.encode()) == _websockets_bytes(text)


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=300))
def test_any_text_is_what_websockets_writes(text: str) -> None:
    try:
        data = text.encode()
    except UnicodeEncodeError:  # lone surrogates: the relay never has them to send
        return
    assert text_frame(data) == _websockets_bytes(text)


async def test_a_websockets_client_reads_the_frames() -> None:
    sent = ["hi", "é" * 200, "y" * 70_000]

    async def handler(conn: WsConn) -> None:
        for text in sent:
            assert conn.write(text)
        await conn.recv()  # until the client closes

    tasks: set[asyncio.Task[None]] = set()

    def spawn(coro: object, _name: str) -> asyncio.Task[None]:
        task = asyncio.ensure_future(coro)  # type: ignore[arg-type]
        tasks.add(task)
        return task

    server = WsServer(handler, spawn=spawn, on_accept=lambda _t: "127.0.0.1",
                      on_release=lambda _a: None, process_request=lambda _c, _r: None,
                      max_size=2**20, ping_interval=None, ping_timeout=20.0,
                      open_timeout=10.0, close_timeout=2.0, server_header=None)
    await server.listen("127.0.0.1", 0, ssl_context=None, backlog=16)
    port = server.sockets[0].getsockname()[1]
    try:
        async with connect(f"ws://127.0.0.1:{port}", max_size=2**20) as ws:
            assert [await ws.recv() for _ in sent] == sent
    finally:
        await server.aclose(1001, "bye")
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
