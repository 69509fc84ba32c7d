"""The desk's shared tools on a real host (issue 16): macros kept on the host and pushed
to every representative, search over every conversation (closed ones too) with SQLite
FTS5, transcripts for the customer and for the desk."""

from __future__ import annotations

import asyncio
import json
import math
import re
import time
from pathlib import Path
from typing import Any

from hitl_desktop.core.links import InviteLink
from hitl_desktop.host.desk import MAX_MACROS, fts_query
from hitl_desktop.host.desk_store import DeskStore, Doc
from hitl_desktop.host.relay import RelayConfig
from hitl_desktop.host.transcript import escape
from tests.integration.test_desk_host import answer, rep
from tests.support.host import running_host
from tests.support.protocol_client import Client


async def test_macros_are_shared_and_pushed(tmp_path: Path) -> None:
    async with running_host(tmp_path) as host:
        _ana_id, ana, _ = await rep(host, "Ana")
        _ben_id, ben, _ = await rep(host, "Ben")
        mid = await ana.send("macro.list", {})
        assert (await answer(ana, mid))["data"] == {"macros": []}

        text = "Hi {customer_first_name}, I'm {rep_name}. Your order {order_id} is on its way."
        mid = await ana.send("macro.save", {"name": "on-its-way", "text": text})
        reply = await answer(ana, mid)
        assert reply["type"] == "macro.list" and reply["session"] is None
        (macro,) = reply["data"]["macros"]
        assert (macro["name"], macro["text"], macro["updated_by"]) == ("on-its-way", text, "Ana")
        # Ben did nothing and gets the list pushed (ref null)
        pushed = await ben.wait("macro.list", where=lambda f: f["data"]["macros"])
        assert pushed["ref"] is None and pushed["data"]["macros"] == reply["data"]["macros"]

        # Ben replaces it; a burst of saves is pushed at most once a second
        t0 = time.monotonic()
        for i in range(5):
            await ben.send("macro.save", {"name": f"m{i}", "text": f"macro {i}"})
        mid = await ben.send("macro.save", {"name": "on-its-way", "text": "Updated by Ben"})
        final = await answer(ben, mid)
        assert [m["name"] for m in final["data"]["macros"]] == [
            "m0", "m1", "m2", "m3", "m4", "on-its-way"]
        await ana.wait("macro.list", where=lambda f: f["ref"] is None
                       and len(f["data"]["macros"]) == 6
                       and f["data"]["macros"][-1]["updated_by"] == "Ben")
        await asyncio.sleep(1.2)
        took = time.monotonic() - t0
        pushes = [f for f in ana.frames if f["type"] == "macro.list" and f["ref"] is None]
        # Ana's save, then Ben's 6 coalesced: one push per second they took at most
        assert 2 <= len(pushes) <= 2 + math.ceil(took), (len(pushes), took)

        # delete: answered and pushed; an unknown name is not_found
        mid = await ana.send("macro.delete", {"name": "m0"})
        assert "m0" not in [m["name"] for m in (await answer(ana, mid))["data"]["macros"]]
        await ben.wait("macro.list", where=lambda f: f["ref"] is None
                       and len(f["data"]["macros"]) == 5)
        mid = await ana.send("macro.delete", {"name": "m0"})
        assert (await answer(ana, mid))["data"]["code"] == "not_found"
        # names are checked by the protocol
        for bad in ("Has Space", "UPPER", "", "x" * 41, "émoji"):
            mid = await ana.send("macro.save", {"name": bad, "text": "x"})
            assert (await answer(ana, mid))["data"]["code"] == "bad_message", bad
        mid = await ana.send("macro.save", {"name": "big", "text": "x" * 4001})
        assert (await answer(ana, mid))["data"]["code"] == "bad_message"
        for c in (ana, ben):
            await c.close()


def test_macro_limits_hold_in_the_store(tmp_path: Path) -> None:
    store = DeskStore(tmp_path)
    try:
        for i in range(MAX_MACROS):
            store.save_macro(f"m{i}", "x", "Ana", max_macros=MAX_MACROS, max_total_chars=10**6)
        store.save_macro("m0", "replaced", "Ben", max_macros=MAX_MACROS, max_total_chars=10**6)
        try:
            store.save_macro("one-more", "x", "Ana", max_macros=MAX_MACROS,
                             max_total_chars=10**6)
            raise AssertionError("the 101st macro was saved")
        except Exception as exc:  # MacroLimit
            assert "at most 100" in str(exc)
        try:
            store.save_macro("m1", "y" * 1000, "Ana", max_macros=MAX_MACROS,
                             max_total_chars=1000)
            raise AssertionError("the total was exceeded")
        except Exception as exc:
            assert "characters in all" in str(exc)
        assert len(store.macros()) == MAX_MACROS
        assert next(m for m in store.macros() if m.name == "m0").text == "replaced"
    finally:
        store.close()
        store.worker.shutdown()


def test_queries_are_built_from_words_only() -> None:
    assert fts_query("parcel late") == '"parcel" "late"'
    assert fts_query('"blue kettle" refund*') == '"blue kettle" "refund"*'
    assert fts_query("ORD-1001") == '"ORD 1001"'
    assert fts_query("re*") == '"re"'  # too short a prefix: the word itself
    # what would be FTS5 syntax is just text
    assert fts_query("a AND (b OR NOT c)") == '"a" "AND" "b" "OR" "NOT" "c"'
    assert fts_query('NEAR(x y) col:z "open') == '"NEAR x" "y" "col z" "open"'
    assert fts_query('"say \'hi\' ; DROP TABLE x; --"') == '"say hi DROP TABLE x"'
    try:
        fts_query("a b c d e f g h i")
        raise AssertionError("nine words")
    except Exception as exc:
        assert getattr(exc, "code", None) == "invalid_arguments"
    for nothing in ("***", '""', "()", "-- :"):
        try:
            fts_query(nothing)
            raise AssertionError(nothing)
        except Exception as exc:
            assert getattr(exc, "code", None) == "invalid_arguments", nothing


async def chat_and_close(host: Any, lines: list[str], *, close: bool) -> str:
    customer = await Client.connect(host.url, host.lobby_token)
    sid = str(customer.session)
    for text in lines:
        await customer.send("chat.send", {"text": text}, session=sid)
        await customer.wait("chat.message", where=lambda f, t=text: f["data"]["text"] == t)
    if close:
        agent = await Client.connect(host.url, host.admin_token)
        await agent.send("session.close", {}, session=sid)
        await agent.wait("session.closed", where=lambda f: f["session"] == sid)
        await agent.close()
    await customer.close()
    return sid


async def test_search_finds_a_phrase_from_a_closed_conversation(tmp_path: Path) -> None:
    # more searches than the default rate budget's burst (rates: test_desk_attacks)
    async with running_host(tmp_path, config=RelayConfig(burst=1000.0)) as host:
        old = await chat_and_close(host, ["Hello", "The lid of my blue kettle cracked",
                                          "It was a gift"], close=True)
        await chat_and_close(host, ["My kettle is blue and fine", "where is my parcel"],
                             close=False)
        ana_id, ana, _ = await rep(host, "Ana")
        await ana.send("note.add", {"text": "Customer sent photos of the cracked lid"},
                       session=old)
        await ana.wait("note.added")

        mid = await ana.send("search", {"query": '"blue kettle" cracked'})
        res = await answer(ana, mid)
        assert res["type"] == "search.results" and res["data"]["query"] == '"blue kettle" cracked'
        (hit,) = res["data"]["hits"]
        assert hit["session_id"] == old and hit["kind"] == "chat"
        assert hit["author_role"] == "customer" and "cracked" in hit["snippet"]
        assert hit["title"] == host.relay.sessions[old].row.title
        log_seq = [m["seq"] for m in host.relay_log.messages(old)
                   if m["type"] == "chat.message"
                   and m["data"]["text"] == "The lid of my blue kettle cracked"]
        assert [hit["seq"]] == log_seq
        # case, accents and prefixes; notes are found too, newest first
        mid = await ana.send("search", {"query": "CRACKÉD"})
        hits = (await answer(ana, mid))["data"]["hits"]
        assert [h["kind"] for h in hits] == ["note", "chat"]
        assert hits[0]["at"] >= hits[1]["at"]
        mid = await ana.send("search", {"query": "kett*"})
        hits = (await answer(ana, mid))["data"]["hits"]
        assert len(hits) == 2 and hits[0]["at"] >= hits[1]["at"]
        # paging: before the newest hit's time, the older one only
        mid = await ana.send("search", {"query": "kettle", "limit": 1})
        first = (await answer(ana, mid))["data"]["hits"]
        mid = await ana.send("search", {"query": "kettle", "limit": 1,
                                        "before": first[0]["at"]})
        second = (await answer(ana, mid))["data"]["hits"]
        assert len(first) == len(second) == 1 and first[0]["seq"] != second[0]["seq"]
        assert second[0]["session_id"] == old
        # a line sent a moment ago is found at once (the search waits for the index)
        c = await Client.connect(host.url, host.lobby_token)
        await c.send("chat.send", {"text": "zebra crossing outside the depot"},
                     session=c.session)
        await ana.wait("chat.message", where=lambda f: "zebra" in f["data"]["text"])
        mid = await ana.send("search", {"query": "zebra depot"})
        assert len((await answer(ana, mid))["data"]["hits"]) == 1
        # odd input is text, never an error from SQLite; no word at all is invalid_arguments
        for q in ('kettle" OR "x', "NEAR(kettle", "kettle)", "^kettle", "kettle:lid"):
            mid = await ana.send("search", {"query": q})
            got = await answer(ana, mid)
            assert got["type"] == "search.results", (q, got)
        mid = await ana.send("search", {"query": '"" *'})
        err = await answer(ana, mid)
        assert err["data"]["code"] == "invalid_arguments"
        assert "word" in err["data"]["message"]
        # session agents and customers may not search
        mid = await c.send("search", {"query": "kettle"})
        assert (await answer(c, mid))["data"]["code"] == "forbidden"
        created = host.create_session()
        sa = await Client.connect(host.url, InviteLink.parse(created.agent_link).token)
        mid = await sa.send("search", {"query": "kettle"})
        assert (await answer(sa, mid))["data"]["code"] == "forbidden"
        assert ana_id
        for x in (ana, c, sa):
            await x.close()


async def test_transcripts_for_the_customer_and_for_the_desk(tmp_path: Path) -> None:
    async with running_host(tmp_path) as host:
        ana_id, ana, _ = await rep(host, "Ana")
        c = await Client.connect(host.url, host.lobby_token)
        sid = str(c.session)
        await c.send("chat.send", {"text": "# Big heading\n[click](http://evil.example) *now*"},
                     session=sid)
        await ana.wait("chat.message", where=lambda f: f["session"] == sid)
        await ana.send("session.assign", {"action": "take"}, session=sid)
        await ana.send("note.add", {"text": "Looks like phishing; do not click"}, session=sid)
        await ana.send("chat.send", {"text": "We never send links like that."}, session=sid)
        await ana.send("session.status", {"status": "resolved"}, session=sid)
        await ana.send("session.close", {}, session=sid)
        await ana.wait("session.closed", where=lambda f: f["session"] == sid)

        mid = await ana.send("transcript.get", {"audience": "customer"}, session=sid)
        cust = await answer(ana, mid)
        assert cust["type"] == "transcript" and cust["session"] == sid
        assert cust["data"]["audience"] == "customer"
        md = cust["data"]["markdown"]
        assert "We never send links like that" in md and "Conversation closed by Ana" in md
        for internal in ("phishing", "Internal note", "Assigned to", "Status:", ana_id):
            assert internal not in md, internal
        # the customer's Markdown is inert: no heading, no link
        assert not re.search(r"^#\s*Big", md, re.M) and "](http" not in md
        assert escape("# Big heading") in md

        mid = await ana.send("transcript.get", {"audience": "internal"}, session=sid)
        md = (await answer(ana, mid))["data"]["markdown"]
        assert "**Internal note** by Ana" in md and "phishing" in md
        assert "Assigned to Ana by Ana" in md and "Status: resolved" in md
        order = [md.index(s) for s in ("Big heading", "Assigned to", "phishing",
                                       "We never send", "Status: resolved",
                                       "Conversation closed")]
        assert order == sorted(order)
        mid = await c.send("transcript.get", {"audience": "customer"}, session=sid)
        assert (await answer(c, mid))["data"]["code"] == "forbidden"
        for x in (ana, c):
            await x.close()


def test_the_index_catches_up_with_the_log(tmp_path: Path) -> None:
    """Lines the log has and the index lacks (a crash between the two) are indexed when
    the store starts; a line already indexed is not indexed twice."""
    from hitl_desktop.host.log import RelayLog

    relay_log = RelayLog.open_in(tmp_path)
    row, _ = relay_log.create_session()
    relay_log.append_chat(row, message_id="c1", role="customer", name="Customer",
                          text="the umbrella broke", draft_id=None, ref=None)
    relay_log.append_chat(row, message_id="c2", role="agent", name="Ana",
                          text="sorry about the umbrella", draft_id=None, ref=None)
    store = DeskStore(tmp_path, log_path=relay_log.path)
    try:
        assert store.index([Doc(row.session_id, 2, "chat", "customer", 1.0,
                                "the umbrella broke")]) == 1
        assert store.catch_up() == 1  # only seq 3
        assert store.catch_up() == 0
        hits = store.search(fts_query("umbrella"), 10, None)
        assert sorted(h.seq for h in hits) == [2, 3]
        assert store.like_search("umbrella", 10) == [(row.session_id, s) for s in (3, 2)]
    finally:
        store.close()
        store.worker.shutdown()
        relay_log.close()


def test_the_search_bench_runs_in_quick_mode(capsys: Any) -> None:
    """bench/desk_search.py end to end on a small corpus: every planted phrase found by
    FTS5 and by the LIKE scan alike (the bench asserts both), and over a real host's
    socket (a loose target here: CI machines are shared; the bench's own is 50 ms)."""
    from bench import desk_search

    assert desk_search.main(["--sessions", "300", "--queries", "20", "--target-ms",
                             "2000"]) == 0
    out = capsys.readouterr().out
    assert "LIKE/FTS5 p99 ratio" in out and "(over the wire): met" in out


def test_a_transcript_of_a_huge_conversation_is_bounded(tmp_path: Path) -> None:
    """The log is read only as far as the transcript's limit: a conversation larger than
    one export is cut, says so, and the rest is never read."""
    from hitl_desktop.host import transcript
    from hitl_desktop.host.log import RelayLog

    relay_log = RelayLog.open_in(tmp_path)
    row, _ = relay_log.create_session(title="Long one")
    for n in range(300):
        relay_log.append_chat(row, message_id=f"c{n}", role="customer", name="Customer",
                              text=f"{n} " + "x" * 8000, draft_id=None, ref=None)
    store = DeskStore(tmp_path, log_path=relay_log.path)
    read = 0

    def render(frames: Any) -> str:
        def counted() -> Any:
            nonlocal read
            for f in frames:
                read += 1
                yield f
        return transcript.render(counted(), session_id=row.session_id, title="Long one",
                                 audience="customer")

    try:
        md = store.render_session(row.session_id, render)
        assert len(md) <= transcript.MAX_MARKDOWN_CHARS + 100
        assert md.rstrip().endswith("_The transcript was cut here: it is too long for one "
                                    "export._")
        assert read < 260  # ~1.9 M characters of 8 k lines, not all 301 frames
        frames = relay_log.frames_after(row.session_id, 0)
        short = transcript.render(frames[:10], session_id=row.session_id, title="t",
                                  audience="internal", max_frames=5)
        assert "more than 5 messages" in short and "4 xxx" not in short
    finally:
        store.close()
        store.worker.shutdown()
        relay_log.close()


def test_live_lines_are_indexed_as_the_log_has_them(tmp_path: Path) -> None:
    """The relay queues a line for the index when it appends it; the index takes it from
    the log: a seq the log gave to another line (a failed group commit moved the session
    back) is indexed with the logged text and time, a seq not in the log yet comes back
    to be tried again."""
    from hitl_desktop.host.log import RelayLog

    relay_log = RelayLog.open_in(tmp_path)
    row, _ = relay_log.create_session()
    seq, frame = relay_log.append_chat(row, message_id="c1", role="customer",
                                       name="Customer", text="the real line", draft_id=None,
                                       ref=None)
    logged_ts = json.loads(frame)["ts"]
    store = DeskStore(tmp_path, log_path=relay_log.path)
    try:
        lost = (row.session_id, seq, "chat", "customer", 1.0, "a line the log lost")
        later = (row.session_id, seq + 1, "chat", "agent", 2.0, "not committed yet")
        added, missing = store.index_logged([lost, later])
        assert added == 1 and missing == [later]
        (hit,) = store.search(fts_query("real line"), 10, None)
        assert (hit.seq, hit.ts) == (seq, logged_ts)
        assert store.search(fts_query("lost"), 10, None) == []
    finally:
        store.close()
        store.worker.shutdown()
        relay_log.close()
