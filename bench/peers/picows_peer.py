"""The Python floors on ``picows`` (Cython framing; in the dev extras, not the product's).

``PEER_MODE=forward`` (bench.load's ``picows``): a bare forwarder with the relay's topology,
like ``ws_relay.mjs``: ``/fwd/a/KEY`` sends each message back to itself and to
``/fwd/b/KEY``, nothing else: the cheapest Python forwarder we know of.

``PEER_MODE=log`` (``picows-log``), a durable floor: the least a relay that logs every line
before relaying it can cost in Python; ``nolog`` (``picows-nolog``) the same without the
log. Per ``chat.send`` from ``/fwd/a/KEY``: parse it, fill a ``chat.message`` frame from
the host log's template (the same bytes the host relays), append the row to the open group;
at the end of the loop tick the group goes into SQLite in one transaction (WAL,
``synchronous=NORMAL``, the log's ``messages`` table and key index, rows in key order) and
only then is each frame sent to its sender and to ``/fwd/b/KEY``: the host's guarantee
(nothing relayed before it is durable) with none of its other work (tokens, roles, rate
budgets, the desk, summaries). ``journal`` (``picows-journal``) writes each filled frame
to an append-only file with one ``os.write`` and relays it at once (no SQLite, no tick
batching: the cheapest durability, in the page cache's sense, we know of).
The peers' contract: see ``peer_stdin.py``.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import operator
import os
import sqlite3
import tempfile
import time
from collections.abc import Callable

from peer_stdin import serve_until_stdin_closes
from picows import WSFrame, WSListener, WSMsgType, WSTransport, WSUpgradeRequest, ws_create_server

_CHAT_FRAME = (  # hitl_desktop/host/log.py's template
    '{"v":1,"type":"chat.message","id":%s,"session":%s,"seq":%d,"ts":%r,"ref":%s,'
    '"data":{"message_id":%s,"author":{"role":%s,"name":%s},"text":%s,"draft_id":%s,'
    '"edited":%s}}'
)
_q: Callable[[str], str] = json.encoder.encode_basestring
Row = tuple[str, int, str, float, str]
_KEY: Callable[[Row], tuple[str, int]] = operator.itemgetter(0, 1)


def main() -> None:
    mode = os.environ.get("PEER_MODE", "log")
    keep = mode == "log"
    folder = tempfile.TemporaryDirectory(prefix="picows-durable-")
    journal = os.open(os.path.join(folder.name, "journal"),
                      os.O_WRONLY | os.O_CREAT | os.O_APPEND)
    db = sqlite3.connect(os.path.join(folder.name, "log.sqlite3"), isolation_level=None)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA synchronous=NORMAL")
    db.execute("CREATE TABLE messages (session_id TEXT NOT NULL, seq INTEGER NOT NULL, "
               "type TEXT NOT NULL, ts REAL NOT NULL, frame TEXT NOT NULL)")
    db.execute("CREATE UNIQUE INDEX messages_by_key ON messages(session_id, seq)")
    receivers: dict[str, WSTransport] = {}
    seqs: dict[str, int] = {}
    group: list[tuple[Row, WSTransport, str]] = []
    ids = itertools.count()

    def commit() -> None:
        if keep:
            db.execute("BEGIN")
            db.executemany("INSERT INTO messages VALUES (?, ?, ?, ?, ?)",
                           sorted((g[0] for g in group), key=_KEY))
            db.execute("COMMIT")
        done = group[:]
        group.clear()
        for row, sender, key in done:
            data = row[4].encode()
            sender.send(WSMsgType.TEXT, data)
            other = receivers.get(key)
            if other is not None:
                other.send(WSMsgType.TEXT, data)

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
            if frame.msg_type is WSMsgType.TEXT and mode == "forward":
                data = frame.get_payload_as_bytes()
                transport.send(WSMsgType.TEXT, data)
                other = receivers.get(self.key)
                if other is not None:
                    other.send(WSMsgType.TEXT, data)
            elif frame.msg_type is WSMsgType.TEXT:
                msg = json.loads(frame.get_payload_as_bytes())
                if msg.get("type") != "chat.send":
                    return
                seq = seqs[self.key] = seqs.get(self.key, 0) + 1
                now = time.time()
                text = _CHAT_FRAME % (
                    _q(f"m_{next(ids):x}"), _q(self.key), seq, now, _q(msg["id"]),
                    _q(f"c_{next(ids):x}"), '"customer"', _q("Customer"),
                    _q(msg["data"]["text"]), "null", "null")
                if mode == "journal":  # one write a line, relayed at once
                    os.write(journal, text.encode() + b"\n")
                    data = text.encode()
                    transport.send(WSMsgType.TEXT, data)
                    other = receivers.get(self.key)
                    if other is not None:
                        other.send(WSMsgType.TEXT, data)
                    return
                if not group:
                    asyncio.get_running_loop().call_soon(commit)
                group.append(((self.key, seq, "chat.message", now, text), transport, self.key))
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
        await serve_until_stdin_closes(server.sockets[0].getsockname()[1])

    try:
        asyncio.run(serve())
    finally:
        db.close()
        folder.cleanup()


if __name__ == "__main__":
    main()
