"""Issue 18 item 2: a desk starts in constant time.

A desk agent's hello gets session summaries (the first page, most recent activity
first, and a cursor), no history; ``session.list {cursor}`` pages the rest; a session's
history comes when it is opened (``session.sync``); a reconnect resumes exactly the
sessions the client opened. Real host, real sockets.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from tests.support.host import running_host
from tests.support.protocol_client import Client, token_of


def _durable(frames: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [f for f in frames if f["seq"] is not None]


async def _reply(client: Client, mid: str) -> dict[str, Any]:
    """The frame answering ``mid`` (a session.list or an error)."""
    for _ in range(200):
        for f in client.frames:
            if f["ref"] == mid and f["type"] in ("session.list", "error"):
                return f
        await asyncio.sleep(0.02)
    raise AssertionError(f"no answer to {mid}")


async def _page_all(desk: Client, cursor: str | None, limit: int) -> list[list[str]]:
    pages: list[list[str]] = []
    while cursor is not None:
        mid = await desk.send("session.list", {"cursor": cursor, "limit": limit})
        reply = await _reply(desk, mid)
        assert reply["type"] == "session.list", reply
        pages.append([s["session_id"] for s in reply["data"]["sessions"]])
        cursor = reply["data"]["cursor"]
    return pages


async def test_desk_hello_gets_summaries_only_and_paging_names_every_session_once(
        tmp_path: Path) -> None:
    async with running_host(tmp_path) as host:
        ids = [host.create_session().session_id for _ in range(260)]
        # a few chat: their activity puts them first
        chatty = ids[5:8]
        custs = []
        for s in chatty:
            c = await Client.connect(host.url, _customer_token(host, s))
            await c.send("chat.send", {"text": f"hi from {s}"}, session=s)
            await c.expect("chat.message")
            custs.append(c)

        desk = await Client.connect(host.url, token_of(host.desk_link))
        welcome = desk.welcome
        first = [s["session_id"] for s in welcome["sessions"]]
        assert len(first) == 200 and welcome["cursor"] is not None
        assert first[:3] == list(reversed(chatty))  # most recent activity first
        activity = [s["last_message_at"] or s["created_at"] for s in welcome["sessions"]]
        assert activity == sorted(activity, reverse=True)
        await desk.drain(0.3)
        assert _durable(desk.frames) == []  # no history replayed for unopened sessions

        pages = await _page_all(desk, welcome["cursor"], 25)
        assert [len(p) for p in pages] == [25, 25, 10]
        listed = first + [sid for p in pages for sid in p]
        assert len(listed) == len(set(listed)) == 260  # every session exactly once
        assert set(listed) == set(ids)

        # a cursor this host did not hand out: a clear error, the connection lives on
        mid = await desk.send("session.list", {"cursor": "not-a-cursor"})
        err = await _reply(desk, mid)
        assert err["type"] == "error" and err["data"]["code"] == "invalid_arguments"
        mid = await desk.send("session.list", {})
        again = await _reply(desk, mid)
        assert [s["session_id"] for s in again["data"]["sessions"]] == first
        for c in custs:
            await c.close()
        await desk.close()


async def test_a_session_chatting_while_the_desk_pages_is_not_listed_twice(
        tmp_path: Path) -> None:
    async with running_host(tmp_path) as host:
        ids = [host.create_session().session_id for _ in range(30)]
        desk = await Client.connect(host.url, token_of(host.desk_link))
        mid = await desk.send("session.list", {"limit": 10})
        page1 = await _reply(desk, mid)
        seen = [s["session_id"] for s in page1["data"]["sessions"]]
        late = ids[0]  # the oldest: on the last page, until it chats
        assert late not in seen
        cust = await Client.connect(host.url, _customer_token(host, late))
        await cust.send("chat.send", {"text": "still there?"}, session=late)
        # the desk gets it live (summaries move with live frames and session.updated)
        await desk.wait("chat.message", where=lambda f: f["session"] == late)
        updated = await desk.wait(
            "session.updated", where=lambda f: f["session"] == late
            and f["data"]["summary"]["last_message"] is not None)
        assert updated["data"]["summary"]["last_message"] == "still there?"
        rest = await _page_all(desk, page1["data"]["cursor"], 10)
        listed = seen + [sid for p in rest for sid in p]
        assert late not in listed  # it moved above the cursor: not named twice
        assert len(listed) == len(set(listed)) == 29
        await cust.close()
        await desk.close()


def _customer_token(host: Any, session_id: str) -> str:
    """A customer token of an existing session (issued on the host, as `session new` does)."""
    from hitl_desktop.host.tokens import TokenKind

    return str(host.relay.tokens.issue(TokenKind.CUSTOMER_SESSION, session_id=session_id))


async def test_opening_a_session_fetches_its_whole_history(tmp_path: Path) -> None:
    async with running_host(tmp_path) as host:
        a = host.create_session()
        b = host.create_session()
        cust = await Client.connect(host.url, token_of(a.customer_link))
        agent = await Client.connect(host.url, token_of(a.agent_link))
        for i in range(40):
            who = cust if i % 2 == 0 else agent
            await who.send("chat.send", {"text": f"line {i}"}, session=a.session_id)
            await cust.expect("chat.message", text=f"line {i}")
        last = host.relay.session_summary(a.session_id)
        assert last is not None and last.last_seq == 41

        desk = await Client.connect(host.url, token_of(host.desk_link))
        await desk.drain(0.2)
        assert _durable(desk.frames) == []
        await desk.send("session.sync", {"after_seq": 0}, session=a.session_id)
        got: list[dict[str, Any]] = []
        while len(got) < 41:
            f = await desk.recv(3)
            if f["seq"] is not None:
                got.append(f)
        assert [f["seq"] for f in got] == list(range(1, 42))
        assert {f["session"] for f in got} == {a.session_id}  # nothing of b
        assert [f["data"]["text"] for f in got if f["type"] == "chat.message"] == [
            f"line {i}" for i in range(40)]
        # then live, in order, right after
        await cust.send("chat.send", {"text": "after"}, session=a.session_id)
        live = await desk.expect("chat.message", text="after")
        assert live["seq"] == 42
        assert b.session_id  # b never came up
        for c in (cust, agent, desk):
            await c.close()


async def test_reconnect_resumes_only_the_opened_sessions_and_misses_nothing(
        tmp_path: Path) -> None:
    async with running_host(tmp_path) as host:
        made = [host.create_session() for _ in range(5)]
        custs = [await Client.connect(host.url, token_of(m.customer_link)) for m in made]
        sids = [m.session_id for m in made]

        async def chat(i: int, text: str) -> int:
            await custs[i].send("chat.send", {"text": text}, session=sids[i])
            return int((await custs[i].expect("chat.message", text=text))["seq"])

        for i in range(5):
            await chat(i, f"before {i}")
        desk = await Client.connect(host.url, token_of(host.desk_link))
        opened = sids[:2]
        have: dict[str, list[int]] = {sid: [] for sid in sids}
        for sid in opened:
            await desk.send("session.sync", {"after_seq": 0}, session=sid)
        while any(len(have[sid]) < 2 for sid in opened):
            f = await desk.recv(3)
            if f["seq"] is not None:
                have[f["session"]].append(f["seq"])
        resume = {sid: have[sid][-1] for sid in opened}
        desk.ws.transport.abort()  # the line dies

        for i in range(5):  # everyone chats while the desk is away
            await chat(i, f"away {i}")
            await chat(i, f"away again {i}")
        desk = await Client.connect(host.url, token_of(host.desk_link), resume=resume)
        replayed: dict[str, list[int]] = {sid: [] for sid in sids}
        for f in await desk.drain(0.4):
            if f["seq"] is not None:
                replayed[f["session"]].append(f["seq"])
        for sid in opened:  # exactly what was missed, in order
            last = host.relay.session_summary(sid)
            assert last is not None
            assert replayed[sid] == list(range(resume[sid] + 1, last.last_seq + 1)), sid
        for sid in sids[2:]:  # the unopened ones: nothing replayed
            assert replayed[sid] == [], sid
        # live frames of every session still arrive (unread counts, notifications)
        seq = await chat(4, "live in an unopened session")
        live = await desk.expect("chat.message", text="live in an unopened session")
        assert live["session"] == sids[4] and live["seq"] == seq
        for c in (*custs, desk):
            await c.close()


async def test_customers_and_session_agents_still_get_their_history_on_hello(
        tmp_path: Path) -> None:
    async with running_host(tmp_path) as host:
        s = host.create_session()
        cust = await Client.connect(host.url, token_of(s.customer_link))
        await cust.send("chat.send", {"text": "hello"}, session=s.session_id)
        await cust.expect("chat.message")
        for token in (token_of(s.customer_link), token_of(s.agent_link)):
            c = await Client.connect(host.url, token)
            assert c.welcome["cursor"] is None
            assert [x["session_id"] for x in c.welcome["sessions"]] == [s.session_id]
            got = [f["seq"] for f in await c.drain(0.3) if f["seq"] is not None]
            assert got == [1, 2]
            await c.close()
        await cust.close()
