"""Issue 18 item 2: a session's history newest first, older pages as the user scrolls.

``session.history {before_seq, limit}`` answers with one frame holding the latest
``limit`` durable messages below ``before_seq`` (oldest first inside the page). A
client stitches: the newest page, live frames after its ``last_seq``, older pages
below its ``first_seq``, and a reconnect resuming from the newest seq it holds. Real
host, real sockets; the hostile client runs against a host process beside a chatting
pair.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from websockets.exceptions import ConnectionClosed

from hitl_desktop.host.relay import RelayConfig
from tests.support.attacks import (
    HOSTILE_ADDR,
    HostView,
    chatting_pair,
    frame,
    host_process,
    open_ws,
)
from tests.support.host import running_host
from tests.support.protocol_client import Client, token_of

# the tests write hundreds of lines quickly: a budget that does not get in the way
ROOMY = RelayConfig(rate=5000.0, burst=5000.0)


async def _answer(client: Client, mid: str, wait: float = 5.0) -> dict[str, Any]:
    """The frame answering ``mid`` (a session.history or an error)."""
    deadline = time.monotonic() + wait
    while time.monotonic() < deadline:
        for f in client.frames:
            if f["ref"] == mid and f["type"] in ("session.history", "error"):
                return f
        await asyncio.sleep(0.01)
    raise AssertionError(f"no answer to {mid}")


async def _page(client: Client, sid: str, before: int | None, limit: int) -> dict[str, Any]:
    mid = await client.send("session.history", {"before_seq": before, "limit": limit},
                            session=sid)
    reply = await _answer(client, mid)
    assert reply["type"] == "session.history", reply
    assert reply["session"] == sid and reply["seq"] is None
    return reply


async def _chat(cust: Client, sid: str, text: str) -> int:
    await cust.send("chat.send", {"text": text}, session=sid)
    return int((await cust.expect("chat.message", text=text))["seq"])


async def test_newest_page_first_then_older_pages_in_order_with_live_lines_meanwhile(
        tmp_path: Path) -> None:
    async with running_host(tmp_path, config=ROOMY) as host:
        s = host.create_session()
        sid = s.session_id
        cust = await Client.connect(host.url, token_of(s.customer_link))
        for i in range(120):
            await _chat(cust, sid, f"line {i}")
        desk = await Client.connect(host.url, token_of(host.desk_link))

        newest = await _page(desk, sid, None, 50)
        data = newest["data"]
        assert (data["first_seq"], data["last_seq"], data["more"]) == (72, 121, True)
        assert [f["seq"] for f in data["frames"]] == list(range(72, 122))  # oldest first
        assert data["frames"][-1]["data"]["text"] == "line 119"
        assert all(f["session"] == sid and f["type"] == "chat.message"
                   for f in data["frames"])

        held = {f["seq"]: f for f in data["frames"]}
        oldest = data["first_seq"]
        newest_seq = data["last_seq"]
        live_sent: list[int] = []
        while True:  # older pages as the user scrolls; the customer keeps writing
            live_sent.append(await _chat(cust, sid, f"live {len(live_sent)}"))
            page = (await _page(desk, sid, oldest, 30))["data"]
            seqs = [f["seq"] for f in page["frames"]]
            assert seqs == list(range(page["first_seq"], page["last_seq"] + 1))
            assert page["last_seq"] == oldest - 1  # no gap, no overlap
            assert not set(seqs) & set(held)
            held.update({f["seq"]: f for f in page["frames"]})
            oldest = page["first_seq"]
            if not page["more"]:
                break
        assert oldest == 1 and held[1]["type"] == "session.opened"
        # the live lines arrived as ordinary frames after the newest page, in order
        await desk.wait("chat.message", where=lambda f: f["seq"] == live_sent[-1])
        live = [f["seq"] for f in desk.frames if f["type"] == "chat.message"
                and f["session"] == sid]
        assert live == live_sent
        assert min(live) == newest_seq + 1
        # stitched: every seq of the session exactly once
        assert sorted(held) + live == list(range(1, live_sent[-1] + 1))
        # asking below the first seq: an empty page
        empty = (await _page(desk, sid, 1, 50))["data"]
        assert (empty["frames"], empty["first_seq"], empty["last_seq"], empty["more"]) == (
            [], None, None, False)
        # past the end: the newest page
        past = (await _page(desk, sid, 10**12, 5))["data"]
        assert past["last_seq"] == live_sent[-1] and len(past["frames"]) == 5
        await cust.close()
        await desk.close()


async def test_a_reconnect_mid_way_resumes_from_the_newest_seq_held(tmp_path: Path) -> None:
    async with running_host(tmp_path, config=ROOMY) as host:
        s = host.create_session()
        sid = s.session_id
        cust = await Client.connect(host.url, token_of(s.customer_link))
        for i in range(60):
            await _chat(cust, sid, f"line {i}")
        desk = await Client.connect(host.url, token_of(host.desk_link))
        first = (await _page(desk, sid, None, 20))["data"]
        older = (await _page(desk, sid, first["first_seq"], 20))["data"]
        held = [f["seq"] for f in older["frames"] + first["frames"]]
        desk.ws.transport.abort()  # the line dies half way up the history

        away = [await _chat(cust, sid, f"away {i}") for i in range(3)]
        desk = await Client.connect(host.url, token_of(host.desk_link),
                                    resume={sid: max(held)})
        missed = [f["seq"] for f in await desk.drain(0.3) if f["seq"] is not None]
        assert missed == away  # exactly what came after the newest seq held
        rest = (await _page(desk, sid, min(held), 200))["data"]
        assert rest["more"] is False
        got = [f["seq"] for f in rest["frames"]] + held + missed
        assert got == list(range(1, away[-1] + 1))  # nothing lost, nothing twice
        await cust.close()
        await desk.close()


async def test_roles_and_binding_are_checked_and_customers_get_no_agent_only_types(
        tmp_path: Path) -> None:
    async with running_host(tmp_path, config=ROOMY) as host:
        a = host.create_session()
        b = host.create_session()
        cust = await Client.connect(host.url, token_of(a.customer_link))
        agent = await Client.connect(host.url, token_of(a.agent_link))
        await _chat(cust, a.session_id, "hello")
        await agent.send("note.add", {"text": "internal: VIP"}, session=a.session_id)
        await agent.wait("note.added")
        await _chat(cust, a.session_id, "still there?")

        mine = (await _page(cust, a.session_id, None, 50))["data"]
        types = [f["type"] for f in mine["frames"]]
        assert "note.added" not in types and types.count("chat.message") == 2
        # the page still covers every seq (the note's included): resume from last_seq
        assert (mine["first_seq"], mine["last_seq"]) == (1, 4)
        theirs = (await _page(agent, a.session_id, None, 50))["data"]
        assert [f["type"] for f in theirs["frames"]] == [
            "session.opened", "chat.message", "note.added", "chat.message"]

        # bound connections: another session (existing or not) is forbidden, unread
        for client in (cust, agent):
            for other in (b.session_id, "s_doesnotexist"):
                mid = await client.send("session.history", {"limit": 5}, session=other)
                err = await _answer(client, mid)
                assert err["type"] == "error" and err["data"]["code"] == "forbidden", err
        desk = await Client.connect(host.url, token_of(host.desk_link))
        mid = await desk.send("session.history", {"limit": 5}, session="s_doesnotexist")
        err = await _answer(desk, mid)
        assert err["data"]["code"] == "not_found"
        mid = await desk.send("session.history", {"limit": 5})  # no session
        err = await _answer(desk, mid)
        assert err["data"]["code"] == "bad_message"
        for c in (cust, agent, desk):
            await c.close()


async def test_absurd_ranges_are_refused_with_a_clear_error(tmp_path: Path) -> None:
    async with running_host(tmp_path, config=ROOMY) as host:
        s = host.create_session()
        desk = await Client.connect(host.url, token_of(host.desk_link))
        for data in ({"limit": 0}, {"limit": 201}, {"limit": 10**12}, {"limit": -1},
                     {"before_seq": 0}, {"before_seq": -5}, {"before_seq": "12"},
                     {"limit": "50"}, {"before_seq": 1.5}, {"after_seq": 3}):
            mid = await desk.send("session.history", data, session=s.session_id)
            err = await _answer(desk, mid)
            assert err["type"] == "error" and err["data"]["code"] == "bad_message", (data, err)
        ok = (await _page(desk, s.session_id, None, 200))["data"]
        assert [f["seq"] for f in ok["frames"]] == [1]
        await desk.close()


async def test_a_page_is_bounded_in_bytes(tmp_path: Path) -> None:
    async with running_host(tmp_path, config=ROOMY) as host:
        s = host.create_session()
        sid = s.session_id
        cust = await Client.connect(host.url, token_of(s.customer_link))
        for i in range(80):  # 80 lines of 7,000 characters: ~560 KB
            await _chat(cust, sid, f"{i} " + "x" * 7000)
        desk = await Client.connect(host.url, token_of(host.desk_link))
        seqs: list[int] = []
        before: int | None = None
        sizes = []
        while True:
            mid = await desk.send("session.history", {"before_seq": before, "limit": 200},
                                  session=sid)
            reply = await _answer(desk, mid)
            sizes.append(len(json.dumps(reply)))
            page = reply["data"]
            seqs = [f["seq"] for f in page["frames"]] + seqs
            before = page["first_seq"]
            if not page["more"]:
                break
        assert seqs == list(range(1, 82))
        assert len(sizes) >= 3 and max(sizes) < 256 * 1024 + 8 * 1024, sizes
        await cust.close()
        await desk.close()


async def _history_flood(host: HostView, duration: float
                         ) -> tuple[int, int, int, int | None]:
    """A desk asks for the biggest history page of a long session every 5 ms, with an
    absurd range every other time, reading what comes (pages answered, rate_limited
    errors, bad_message errors, the close code)."""
    ws = await open_ws(host.url, host.info["desk_token"], addr=HOSTILE_ADDR, max_queue=None,
                       max_size=2**24)
    sid = host.session(1)["session_id"]
    pages = limited = refused = 0

    async def read() -> None:
        nonlocal pages, limited, refused
        async for raw in ws:
            msg = json.loads(raw)
            if msg["type"] == "session.history":
                pages += 1
            elif msg["type"] == "error" and msg["data"]["code"] == "rate_limited":
                limited += 1
            elif msg["type"] == "error" and msg["data"]["code"] == "bad_message":
                refused += 1

    reader = asyncio.ensure_future(read())
    code: int | None = None
    try:
        end = time.monotonic() + duration
        n = 0
        with contextlib.suppress(ConnectionClosed):
            while time.monotonic() < end:
                n += 1
                data: dict[str, Any] = [
                    {"before_seq": None, "limit": 200}, {"before_seq": 10**18, "limit": 200},
                    {"before_seq": -(10**18), "limit": 200}, {"limit": 10**12},
                    {"before_seq": 1e308, "limit": -1}][n % 5]
                await ws.send(frame("session.history", data, session=sid))
                await asyncio.sleep(0.005)
        await asyncio.sleep(0.3)
        code = ws.close_code
    finally:
        reader.cancel()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(ws.close(), 1.0)
    return pages, limited, refused, code


@pytest.mark.skipif(sys.platform != "linux", reason="needs /proc and 127.0.0.3")
async def test_a_desk_asking_history_pages_flat_out_is_bounded_beside_the_pair(
        tmp_path: Path) -> None:
    spec = {"relay": {"stall_timeout": 2.0, "heartbeat_s": 2.0, "ping_timeout": 2.0,
                      "close_timeout": 1.0},
            "sessions": 2, "history": {"session": 1, "lines": 400, "chars": 4000}}
    with host_process(tmp_path / "data", spec) as host:
        base = host.rss_mb()
        async with chatting_pair(host, 0) as pair:
            pages, limited, refused, code = await _history_flood(host, duration=3.0)
        assert not pair.errors, pair.errors
        assert len(pair.latencies) >= 10
        assert pair.p99 < 0.050, sorted(pair.latencies)[-5:]
        # the rate budget: a burst of 60 units, 20/s, 6 units a page: ~10 + ~3/s
        assert 5 <= pages <= 40, pages
        assert limited >= 1 and refused >= 1  # clear errors for both
        assert code == 4008, code  # more than 200 dropped frames
        assert host.rss_mb() - base < 60
