"""The desk's search index takes the relay's live lines as the loop had them (issue 18:
no read back from the log per line), and still holds exactly what the log holds: every
line of a burst from many sessions at once (batches cut by size and by time), and none
of the lines a failed group commit lost, whose seqs later lines then carry."""

from __future__ import annotations

import asyncio
import json
import sqlite3
from pathlib import Path

import pytest

from hitl_desktop.host import desk as desk_module
from hitl_desktop.host.desk_store import DESK_FILE
from tests.integration.test_desk_host import answer
from tests.support.host import running_host
from tests.support.protocol_client import Client, token_of

SESSIONS = 20
LINES = 25


def _logged(path: Path) -> set[tuple[str, int, str, str]]:
    """(session, seq, author role, text) of every chat line in the log (another reader)."""
    db = sqlite3.connect(path)
    try:
        out = set()
        for sid, seq, frame in db.execute(
                "SELECT session_id, seq, frame FROM messages WHERE type = 'chat.message'"):
            data = json.loads(frame)["data"]
            out.add((sid, int(seq), data["author"]["role"], data["text"]))
        return out
    finally:
        db.close()


def _indexed(path: Path) -> set[tuple[str, int, str, str]]:
    db = sqlite3.connect(path)
    try:
        rows = db.execute("SELECT session_id, seq, role, text FROM search_docs").fetchall()
        assert len(rows) == len(set(rows))
        return {(str(r[0]), int(r[1]), str(r[2]), str(r[3])) for r in rows}
    finally:
        db.close()


async def test_every_line_of_a_burst_is_indexed_once(tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(desk_module, "INDEX_BATCH_LINES", 64)  # batches cut by size too
    async with running_host(tmp_path) as host:
        desk = await Client.connect(host.url, host.desk_token)
        customers = [await Client.connect(host.url, token_of(host.relay.create_session()
                                                             .customer_link))
                     for _ in range(SESSIONS)]

        async def burst(n: int, c: Client) -> None:
            for i in range(LINES):  # no waiting: the lines of many sessions share ticks
                await c.send("chat.send", {"text": f"parcel w{n}x{i} late"},
                             session=c.session)

        await asyncio.gather(*(burst(n, c) for n, c in enumerate(customers)))
        await desk.wait("chat.message", count=SESSIONS * LINES, within=30.0)
        mid = await desk.send("search", {"query": "parcel", "limit": 50})
        hits = (await answer(desk, mid))["data"]["hits"]  # the search flushed the queue
        assert len(hits) == 50
        # newest first: the last line of some session
        assert hits[0]["snippet"].endswith(f"x{LINES - 1} late")
        mid = await desk.send("search", {"query": "w7x13"})
        (hit,) = (await answer(desk, mid))["data"]["hits"]
        assert hit["session_id"] == customers[7].session and hit["author_role"] == "customer"

        logged = _logged(host.relay_log.path)
        assert len(logged) == SESSIONS * LINES
        assert _indexed(tmp_path / DESK_FILE) == logged  # each line, once, as logged
        for c in customers:
            await c.close()
        await desk.close()


async def test_lines_a_failed_commit_lost_are_not_indexed(tmp_path: Path) -> None:
    async with running_host(tmp_path) as host:
        desk = await Client.connect(host.url, host.desk_token)
        customer = await Client.connect(host.url, host.lobby_token)
        sid = customer.session
        await customer.send("chat.send", {"text": "first line, stored"}, session=sid)
        first = await desk.wait("chat.message", where=lambda f: f["session"] == sid)

        def no_commit(action: int, arg1: str | None, *_: object) -> int:
            deny = action == sqlite3.SQLITE_TRANSACTION and arg1 == "COMMIT"
            return sqlite3.SQLITE_DENY if deny else sqlite3.SQLITE_OK

        host.relay_log._db.set_authorizer(no_commit)  # the disk says no
        try:
            lost = await customer.send("chat.send", {"text": "my kettle whistles"},
                                       session=sid)
            err = await customer.wait("error", where=lambda f: f["ref"] == lost)
            assert err["data"]["code"] == "internal"
        finally:
            host.relay_log._db.set_authorizer(None)
        await customer.send("chat.send", {"text": "the toaster then"}, session=sid)
        later = await desk.wait("chat.message",
                                where=lambda f: "toaster" in f["data"]["text"])
        assert later["seq"] == first["seq"] + 1  # the seq the lost line had

        mid = await desk.send("search", {"query": "kettle"})
        assert (await answer(desk, mid))["data"]["hits"] == []
        mid = await desk.send("search", {"query": "toaster"})
        (hit,) = (await answer(desk, mid))["data"]["hits"]
        assert (hit["session_id"], hit["seq"]) == (sid, later["seq"])
        assert _indexed(tmp_path / DESK_FILE) == _logged(host.relay_log.path)
        # and the next batch is trusted again
        await customer.send("chat.send", {"text": "and a blender"}, session=sid)
        await desk.wait("chat.message", where=lambda f: "blender" in f["data"]["text"])
        mid = await desk.send("search", {"query": "blender"})
        assert len((await answer(desk, mid))["data"]["hits"]) == 1
        await customer.close()
        await desk.close()
