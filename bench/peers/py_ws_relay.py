"""The Python floor: a bare ``websockets`` forwarder with the relay's topology, nothing else.

What the best Python chat relay with no disk, no JSON and no roles costs on this machine:
``bench.load``'s ``pyws`` system, beside the Node floor (``ws_relay.mjs``) and socket.io.
``/fwd/a/KEY`` sends each message back to itself (the sender's copy) and to
``/fwd/b/KEY``. Prints ``{"port": N}`` once listening; a ``cpu`` line on stdin prints
``{"cpu_s": T}``; exits when stdin closes (the Node peers' contract).
"""

from __future__ import annotations

import asyncio
import contextlib

from peer_stdin import serve_until_stdin_closes
from websockets.asyncio.server import ServerConnection, serve


async def main() -> None:
    receivers: dict[str, ServerConnection] = {}

    async def handler(ws: ServerConnection) -> None:
        _, _, side, key = (ws.request.path if ws.request else "").split("/")[:4]
        if side == "b":
            receivers[key] = ws
            try:
                await ws.wait_closed()
            finally:
                receivers.pop(key, None)
            return
        async for message in ws:
            await ws.send(message)
            other = receivers.get(key)
            if other is not None:
                with contextlib.suppress(Exception):
                    await other.send(message)

    async with serve(handler, "127.0.0.1", 0, compression=None, max_size=2**20,
                     max_queue=None, ping_interval=None) as server:
        await serve_until_stdin_closes(next(iter(server.sockets)).getsockname()[1])


if __name__ == "__main__":
    asyncio.run(main())
