"""The fastest Python floor we know: a bare forwarder on ``picows`` (Cython framing).

Same topology and contract as ``py_ws_relay.py`` / ``ws_relay.mjs``: ``/fwd/a/KEY`` sends
each message back to itself and to ``/fwd/b/KEY``; prints ``{"port": N}``; ``cpu`` on
stdin prints ``{"cpu_s": T}``; exits when stdin closes. ``bench.load``'s ``picows``
system: not a project dependency (``pip install picows`` to run it).
"""

from __future__ import annotations

import asyncio
import json
import os
import sys

from picows import WSFrame, WSListener, WSMsgType, WSTransport, WSUpgradeRequest, ws_create_server


def main() -> None:
    receivers: dict[str, WSTransport] = {}

    class Receiver(WSListener):
        def __init__(self, key: str) -> None:
            self.key = key

        def on_ws_connected(self, transport: WSTransport) -> None:
            receivers[self.key] = transport

        def on_ws_disconnected(self, transport: WSTransport) -> None:
            if receivers.get(self.key) is transport:
                del receivers[self.key]

    class Sender(WSListener):
        def __init__(self, key: str) -> None:
            self.key = key

        def on_ws_frame(self, transport: WSTransport, frame: WSFrame) -> None:
            if frame.msg_type is WSMsgType.TEXT:
                data = frame.get_payload_as_bytes()
                transport.send(WSMsgType.TEXT, data)
                other = receivers.get(self.key)
                if other is not None:
                    other.send(WSMsgType.TEXT, data)
            elif frame.msg_type is WSMsgType.CLOSE:
                transport.send_close(frame.get_close_code())
                transport.disconnect()

    def factory(request: WSUpgradeRequest) -> WSListener | None:
        parts = request.path.decode().split("/")
        if len(parts) < 4:
            return None
        return Receiver(parts[3]) if parts[2] == "b" else Sender(parts[3])

    async def serve() -> None:
        server = await ws_create_server(factory, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        print(json.dumps({"port": port}), flush=True)
        loop = asyncio.get_running_loop()
        while True:
            line = await loop.run_in_executor(None, sys.stdin.readline)
            if not line:
                return
            if line.strip() == "cpu":
                t = os.times()
                print(json.dumps({"cpu_s": t.user + t.system}), flush=True)

    asyncio.run(serve())


if __name__ == "__main__":
    main()
