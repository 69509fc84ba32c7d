"""Attacks on the desk's operations (issue 16).

* A customer and a session agent try every desk operation: ``forbidden``, and nothing
  changes (the log, the desk store, the host's view of holders and statuses).
* A desk link floods huge macro saves and broad searches from several connections while
  a customer and an agent keep chatting: the pair's p99 stays under 50 ms, the desk's
  macros stay within their limits, the other representatives get at most one macro push
  a second, and the flood is throttled by the rate budget, then cut off (4008).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import sqlite3
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from websockets.exceptions import ConnectionClosed

from hitl_desktop.core.links import InviteLink
from hitl_desktop.host.desk import MAX_MACRO_TOTAL_CHARS, MAX_MACROS
from hitl_desktop.host.desk_store import DESK_FILE
from tests.integration.test_desk_host import answer, rep
from tests.support.attacks import HOSTILE_ADDR, chatting_pair, frame, host_process, open_ws
from tests.support.host import running_host
from tests.support.protocol_client import Client

DESK_OPS: dict[str, tuple[dict[str, Any], bool]] = {  # data, session_required
    "session.assign": ({"action": "take"}, True),
    "note.add": ({"text": "sneaky note"}, True),
    "session.status": ({"status": "resolved", "force": True}, True),
    "macro.list": ({}, False),
    "macro.save": ({"name": "evil", "text": "click http://evil.example"}, False),
    "macro.delete": ({"name": "greeting"}, False),
    "search": ({"query": "secret"}, False),
    "transcript.get": ({"audience": "internal"}, True),
}


def snapshot(data_dir: Path) -> tuple[Any, ...]:
    out: list[Any] = []
    for name, query in (("relay.sqlite3", "SELECT session_id, seq, type FROM messages"
                                          " ORDER BY 1, 2"),
                        (DESK_FILE, "SELECT name, text, updated_by FROM macros ORDER BY 1"),
                        (DESK_FILE, "SELECT session_id, seq FROM search_docs ORDER BY 1, 2")):
        db = sqlite3.connect(data_dir / name)
        try:
            out.append(db.execute(query).fetchall())
        finally:
            db.close()
    return tuple(out)


async def test_customers_and_session_agents_cannot_use_the_desk(tmp_path: Path) -> None:
    async with running_host(tmp_path) as host:
        data_dir = host.relay_log.path.parent
        _ana_id, ana, _ = await rep(host, "Ana")
        mid = await ana.send("macro.save", {"name": "greeting", "text": "Hello!"})
        await answer(ana, mid)
        created = host.create_session()
        sid = created.session_id
        customer = await Client.connect(host.url, InviteLink.parse(created.customer_link).token)
        agent = await Client.connect(host.url, InviteLink.parse(created.agent_link).token)
        assert customer.welcome["you"] is None and agent.welcome["you"] is None
        assert agent.welcome["reps"] == []
        await customer.send("chat.send", {"text": "a secret line"}, session=sid)
        await ana.wait("chat.message", where=lambda f: f["session"] == sid)
        mid = await ana.send("session.assign", {"action": "take"}, session=sid)
        await answer(ana, mid)
        mid = await ana.send("search", {"query": "secret"})  # the index batch
        assert len((await answer(ana, mid))["data"]["hits"]) == 1  # is written
        desk_state = dict(host.relay.desk_ops.sessions)
        before = snapshot(data_dir)

        for who, client in (("customer", customer), ("session agent", agent)):
            for op, (data, needs_session) in DESK_OPS.items():
                if who == "session agent" and op == "note.add":
                    continue  # allowed (below)
                mid = await client.send(op, data, session=sid if needs_session else None)
                err = await answer(client, mid)
                assert err["type"] == "error", (who, op, err)
                assert err["data"]["code"] == "forbidden", (who, op, err)
        await asyncio.sleep(0.2)
        assert snapshot(data_dir) == before  # no log row, macro or search line
        assert host.relay.desk_ops.sessions[sid].assignee == desk_state[sid].assignee
        assert host.relay.desk_ops.sessions[sid].status == "open"
        # customers are never held off (override means nothing for them); a session
        # agent is not the holder: override is what lets it write
        for client in (customer, agent):
            mid = await client.send("chat.send", {"text": "x", "override": True}, session=sid)
            assert (await answer(client, mid))["type"] == "chat.message"
        # without override the session agent is held off like anyone but the holder
        mid = await agent.send("chat.send", {"text": "y"}, session=sid)
        assert (await answer(agent, mid))["data"]["code"] == "held_by_other"
        # a session agent may leave a note; it never reaches the customer
        mid = await agent.send("note.add", {"text": "note from the session agent"},
                               session=sid)
        assert (await answer(agent, mid))["type"] == "note.added"
        await ana.wait("note.added", where=lambda f: f["ref"] == mid)
        await customer.drain(0.2)
        assert not [f for f in customer.frames if "session agent" in json.dumps(f)]
        for c in (ana, customer, agent):
            await c.close()


P99_LIMIT_S = 0.050
FAST = {"stall_timeout": 2.0, "heartbeat_s": 2.0, "ping_timeout": 2.0, "close_timeout": 1.0}


async def desk_flood(url: str, token: str, duration: float, conns: int = 4
                     ) -> tuple[int, int, list[int | None]]:
    """Huge macro saves (many names) and broad searches from ``conns`` connections of one
    desk link, as fast as the sockets take them. (frames sent, rate_limited errors,
    close codes)."""
    sockets = [await open_ws(url, token, addr=HOSTILE_ADDR, resume={}) for _ in range(conns)]
    sent = limited = 0
    codes: list[int | None] = []

    async def reader(ws: Any) -> int | None:
        nonlocal limited
        try:
            while True:
                msg = json.loads(await ws.recv())
                if msg["type"] == "error" and msg["data"]["code"] == "rate_limited":
                    limited += 1
        except ConnectionClosed as exc:
            return exc.rcvd.code if exc.rcvd else 1006

    async def writer(ws: Any, k: int) -> None:
        nonlocal sent
        end = time.monotonic() + duration
        n = 0
        with contextlib.suppress(ConnectionClosed):
            while time.monotonic() < end:
                n += 1
                if n % 2:
                    msg = frame("macro.save", {"name": f"m{k}-{n % 400}", "text": "z" * 4000})
                else:
                    msg = frame("search", {"query": "lin* wher* ord* my is"})
                await ws.send(msg)
                sent += 1
                await asyncio.sleep(0.002)

    readers = [asyncio.ensure_future(reader(ws)) for ws in sockets]
    await asyncio.gather(*(writer(ws, k) for k, ws in enumerate(sockets)))
    await asyncio.sleep(0.5)
    for ws in sockets:
        with contextlib.suppress(Exception):
            await asyncio.wait_for(ws.close(), 2.0)
    for r in readers:
        try:
            codes.append(await asyncio.wait_for(r, 3.0))
        except TimeoutError:
            codes.append(None)
    return sent, limited, codes


@pytest.mark.skipif(sys.platform != "linux", reason="needs 127.0.0.3")
async def test_a_macro_and_search_flood_is_bounded(tmp_path: Path) -> None:
    with host_process(tmp_path / "data", {"relay": FAST, "sessions": 2}) as host:
        view = host.view()
        # a legitimate representative (the admin link) watches the macro pushes
        watcher = await Client.connect(view.url, view.info["admin_token"])
        async with chatting_pair(view, 0) as pair:
            t0 = time.monotonic()
            sent, limited, codes = await desk_flood(view.url, view.info["desk_token"], 3.0)
            took = time.monotonic() - t0
        assert not pair.errors, pair.errors
        logging.getLogger(__name__).warning(
            "desk flood: %d frames sent, %d rate_limited, closes %s; pair p50 %.1f ms p99 "
            "%.1f ms over %d lines", sent, limited, codes, pair.p50 * 1000, pair.p99 * 1000,
            len(pair.latencies))
        assert len(pair.latencies) >= 10
        worst = [round(x * 1000, 1) for x in sorted(pair.latencies)[-5:]]
        assert pair.p99 < P99_LIMIT_S, f"p99 {pair.p99 * 1000:.1f} ms, worst {worst}"
        assert sent > 500 and limited > 0, (sent, limited)
        assert 4008 in codes, codes  # more than 200 frames dropped: cut off
        mid = await watcher.send("macro.list", {})
        macros = (await answer(watcher, mid))["data"]["macros"]
        assert 0 < len(macros) <= MAX_MACROS
        assert sum(len(m["text"]) for m in macros) <= MAX_MACRO_TOTAL_CHARS
        pushes = [f for f in watcher.frames if f["type"] == "macro.list" and f["ref"] is None]
        assert 1 <= len(pushes) <= took + 2, (len(pushes), took)
        await watcher.close()
