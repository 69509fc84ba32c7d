"""The one protocol test client: a real WebSocket, explicit frames, nothing hidden.

Independent clients are written from docs/PROTOCOL.md alone, so the tests talk to
the host the same way: JSON envelopes over a real socket. A reader task keeps every
frame in :attr:`Client.frames` as it arrives; two ways to look at them:

* in order, consuming: :meth:`recv`, :meth:`expect`, :meth:`drain` (the consumed ones
  are :attr:`Client.seen`) — the relay tests;
* by type, not consuming: :meth:`of`, :meth:`wait`, :meth:`barrier` — the co-pilot
  tests, which follow several kinds of frames at once.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from typing import Any

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from hitl_desktop.core.links import InviteLink
from hitl_desktop.core.protocol import (
    PROTOCOL_VERSION,
    CustomerGet,
    Payload,
    client_type,
    encode,
    new_id,
)

TIMEOUT = 10.0


class Client:
    """A protocol client for tests on a real websocket."""

    def __init__(self, ws: ClientConnection) -> None:
        self.ws = ws
        self.welcome: dict[str, Any] = {}
        self.frames: list[dict[str, Any]] = []  # everything received, in order
        self.seen: list[dict[str, Any]] = []  # what recv() consumed, in order
        self._queue: asyncio.Queue[dict[str, Any] | None] = asyncio.Queue()
        self._new = asyncio.Event()
        self._closed: ConnectionClosed | None = None
        self._reader = asyncio.get_running_loop().create_task(self._read())

    @classmethod
    async def connect(
        cls, url: str, token: str, *, resume: dict[str, int] | None = None, **kw: Any
    ) -> Client:
        """Connect, say hello (resuming if asked), and wait for the welcome."""
        kw.setdefault("max_queue", None)  # tests may leave frames unread; never stall a close
        kw.setdefault("max_size", 2**22)
        ws = await connect(url, compression=None, **kw)
        client = cls(ws)
        hello: dict[str, Any] = {"token": token}
        if resume is not None:
            hello["resume"] = resume
        await client.send("hello", hello)
        first = await client.recv()
        if first["type"] != "welcome":
            raise AssertionError(f"expected welcome, got {first}")
        client.welcome = first["data"]
        return client

    async def _read(self) -> None:
        try:
            while True:
                msg: dict[str, Any] = json.loads(await self.ws.recv())
                self.frames.append(msg)
                self._queue.put_nowait(msg)
                self._new.set()
        except ConnectionClosed as exc:
            self._closed = exc
        finally:
            self._queue.put_nowait(None)  # recv() raises the close from here on
            self._new.set()

    @property
    def session(self) -> str | None:
        return self.welcome.get("session_id")

    # ------------------------------------------------------------------ sending

    async def send(self, what: str | Payload, data: Any = None, *,
                   session: str | None = None, msg_id: str | None = None) -> str:
        """``send("chat.send", {...}, session=sid)`` sends exactly that envelope;
        ``send(ChatSend(...), sid)`` encodes a payload model. The message id."""
        if not isinstance(what, str):
            frame = encode(client_type(what), what, session=data if session is None else session)
            await self.ws.send(frame)
            return str(json.loads(frame)["id"])
        mid = msg_id or new_id("t")
        await self.ws.send(json.dumps({
            "v": PROTOCOL_VERSION, "type": what, "id": mid, "session": session,
            "seq": None, "ts": 0.0, "data": data,
        }))
        return mid

    # ------------------------------------------------------------------ in order

    async def recv(self, wait: float = 5.0) -> dict[str, Any]:
        """The next frame not consumed yet (ConnectionClosed once the host closed)."""
        msg = await asyncio.wait_for(self._queue.get(), wait)
        if msg is None:
            self._queue.put_nowait(None)
            assert self._closed is not None
            raise self._closed
        self.seen.append(msg)
        return msg

    async def expect(self, type_: str, *, wait: float = 5.0, **match: Any) -> dict[str, Any]:
        """The next frame of ``type_`` (matching ``match`` on envelope/data keys)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + wait
        while True:
            msg = await self.recv(max(0.01, deadline - loop.time()))
            if msg["type"] != type_:
                continue
            if all(msg.get(k, msg["data"].get(k)) == v for k, v in match.items()):
                return msg

    async def drain(self, quiet: float = 0.15) -> list[dict[str, Any]]:
        """Everything that arrives until the line is quiet for ``quiet`` seconds."""
        out = []
        while True:
            try:
                out.append(await self.recv(quiet))
            except TimeoutError:
                return out

    async def closed_code(self, wait: float = 5.0) -> int | None:
        """Wait for the host to close the connection; its close code."""
        await asyncio.wait_for(asyncio.shield(self._reader), wait)
        closed = self._closed
        return closed.rcvd.code if closed is not None and closed.rcvd else None

    # ------------------------------------------------------------------ by type

    def of(self, type_: str, **match: Any) -> list[dict[str, Any]]:
        """Every frame of this type received so far whose data matches ``match``."""
        return [f for f in self.frames if f["type"] == type_
                and all(f["data"].get(k) == v for k, v in match.items())]

    async def wait(self, type_: str, *, count: int = 1, within: float = TIMEOUT,
                   where: Callable[[dict[str, Any]], bool] | None = None,
                   **match: Any) -> dict[str, Any]:
        """The ``count``-th frame of this type matching ``match`` (waits for it)."""
        async def found() -> dict[str, Any]:
            while True:
                hits = [f for f in self.of(type_, **match) if where is None or where(f)]
                if len(hits) >= count:
                    return hits[count - 1]
                if self._reader.done():
                    raise AssertionError(f"closed before {type_} {match}")
                self._new.clear()
                await self._new.wait()
        try:
            return await asyncio.wait_for(found(), within)
        except TimeoutError:
            seen = [(f["type"], f["data"]) for f in self.frames[-15:]]
            raise AssertionError(f"no {type_} {match} within {within}s; last frames: {seen}")\
                from None

    async def barrier(self, session: str) -> None:
        """Until everything the host sent this client so far has arrived: the reply to a
        request comes after it on the one ordered socket (an event to wait for, instead
        of sleeping and hoping nothing else would have come). Agents only."""
        n = len(self.of("customer.details")) + 1
        await self.send(CustomerGet(), session)
        await self.wait("customer.details", count=n)

    async def close(self) -> None:
        await self.ws.close()
        self._reader.cancel()
        await asyncio.gather(self._reader, return_exceptions=True)


async def refused(url: str, token: str) -> tuple[list[dict[str, Any]], int | None]:
    """Connect with ``token``; everything received and the close code."""
    ws = await connect(url, compression=None)
    client = Client(ws)
    await client.send("hello", {"token": token})
    frames: list[dict[str, Any]] = []
    try:
        while True:
            frames.append(await client.recv())
    except ConnectionClosed as exc:
        return frames, exc.rcvd.code if exc.rcvd else None


def token_of(link: str) -> str:
    """The token of an invite link (what a client presents in its hello)."""
    return InviteLink.parse(link).token
