"""Helpers for relay tests: a real host on port 0 and a thin real websockets client."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from hitl_desktop.app.services import RunningHost, start_host
from hitl_desktop.config import Settings, resolve_paths
from hitl_desktop.core.links import InviteLink
from hitl_desktop.core.protocol import PROTOCOL_VERSION, new_id
from hitl_desktop.host.relay import CopilotFactory, RelayConfig


@asynccontextmanager
async def running_host(
    data_dir: Path,
    *,
    config: RelayConfig | None = None,
    copilot_factory: CopilotFactory | None = None,
    **kw: Any,
) -> AsyncIterator[RunningHost]:
    paths = resolve_paths(data_dir, data_dir / "config")
    host = await start_host(paths, Settings(), port=0, config=config,
                            copilot_factory=copilot_factory, **kw)
    try:
        yield host
    finally:
        await host.stop()


def token_of(link: str) -> str:
    return InviteLink.parse(link).token


class Client:
    """A protocol client for tests: explicit frames, nothing hidden."""

    def __init__(self, ws: ClientConnection) -> None:
        self.ws = ws
        self.welcome: dict[str, Any] = {}
        self.seen: list[dict[str, Any]] = []

    @classmethod
    async def connect(
        cls, url: str, token: str, *, resume: dict[str, int] | None = None, **kw: Any
    ) -> Client:
        kw.setdefault("max_queue", None)  # tests may leave frames unread; never stall a close
        ws = await connect(url, compression=None, **kw)
        client = cls(ws)
        hello = {"token": token}
        if resume is not None:
            hello["resume"] = resume  # type: ignore[assignment]
        await client.send("hello", hello)
        first = await client.recv()
        if first["type"] != "welcome":
            raise AssertionError(f"expected welcome, got {first}")
        client.welcome = first["data"]
        return client

    @property
    def session(self) -> str | None:
        return self.welcome.get("session_id")

    async def send(self, type_: str, data: dict[str, Any], *, session: str | None = None,
                   msg_id: str | None = None) -> str:
        mid = msg_id or new_id("t")
        await self.ws.send(json.dumps({
            "v": PROTOCOL_VERSION, "type": type_, "id": mid, "session": session,
            "seq": None, "ts": 0.0, "data": data,
        }))
        return mid

    async def recv(self, wait: float = 5.0) -> dict[str, Any]:
        raw = await asyncio.wait_for(self.ws.recv(), wait)
        msg: dict[str, Any] = json.loads(raw)
        self.seen.append(msg)
        return msg

    async def expect(self, type_: str, *, wait: float = 5.0,
                     **match: Any) -> dict[str, Any]:
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
        try:
            while True:
                await asyncio.wait_for(self.ws.recv(), wait)
        except ConnectionClosed as exc:
            return exc.rcvd.code if exc.rcvd else None

    async def close(self) -> None:
        await self.ws.close()


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
