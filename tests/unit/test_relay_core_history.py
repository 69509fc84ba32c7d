"""session.history's rules (relay_core) and its log read (RelayLog.page_before), without
sockets: the page's range, the newest-first read, the bounds, the customer filter."""

from __future__ import annotations

from pathlib import Path

from hitl_desktop.core.protocol import HOST_MESSAGES, Author, NoteAdded, Role
from hitl_desktop.host.log import RelayLog
from hitl_desktop.host.relay_core import HEAVY_TYPES, history_before, history_page


def test_where_a_page_ends() -> None:
    assert history_before(40, None) == 41  # the newest page
    assert history_before(40, 12) == 12
    assert history_before(40, 41) == 41
    assert history_before(40, 10**12) == 41  # past the end: the newest page
    assert history_before(0, None) == 1


def test_a_page_is_oldest_first_and_covers_what_a_customer_does_not_get() -> None:
    rows = [(9, "chat.message", "c9"), (8, "note.added", "n8"), (7, "chat.message", "c7")]
    agent = history_page(rows, True, Role.AGENT)
    assert agent.frames == ["c7", "n8", "c9"]
    assert (agent.first_seq, agent.last_seq, agent.more, agent.nbytes) == (7, 9, True, 6)
    cust = history_page(rows, True, Role.CUSTOMER)
    assert cust.frames == ["c7", "c9"]  # the note is agent-only ...
    assert (cust.first_seq, cust.last_seq) == (7, 9)  # ... but covered
    assert cust.nbytes == 6  # the budget counts what was read
    empty = history_page([], False, Role.AGENT)
    assert (empty.frames, empty.first_seq, empty.last_seq, empty.more) == ([], None, None, False)
    assert "session.history" in HEAVY_TYPES
    assert not HOST_MESSAGES["session.history"].durable


def test_the_log_reads_newest_first_within_its_bounds(tmp_path: Path) -> None:
    log = RelayLog.open_in(tmp_path)
    try:
        row, _ = log.create_session(title="t")
        other, _ = log.create_session(title="other")
        for i in range(30):
            log.append_chat(row, message_id=f"m{i}", role="customer", name="C",
                            text=("x" * 900) if i == 20 else f"line {i}", draft_id=None,
                            ref=None)
            log.append_chat(other, message_id=f"o{i}", role="customer", name="C",
                            text="elsewhere", draft_id=None, ref=None)
        log.append(row, NoteAdded(note_id="n1", author=Author(role=Role.AGENT, name="A"),
                                  text="internal"))
        last = row.last_seq
        assert last == 32
        rows, more = log.page_before(row.session_id, last + 1, 5, 10**6)
        assert [r[0] for r in rows] == [32, 31, 30, 29, 28] and more
        assert rows[0][1] == "note.added"
        rows, more = log.page_before(row.session_id, 5, 50, 10**6)
        assert [r[0] for r in rows] == [4, 3, 2, 1] and not more
        rows, more = log.page_before(row.session_id, 1, 50, 10**6)
        assert rows == [] and not more
        # the byte bound: the 900-character line (seq 22) does not fit after 28..23
        whole, _ = log.page_before(row.session_id, 29, 50, 10**6)
        fits = sum(len(r[2]) for r in whole if r[0] >= 23)  # 28..23
        rows, more = log.page_before(row.session_id, 29, 50, fits + 100)
        assert [r[0] for r in rows] == [28, 27, 26, 25, 24, 23] and more
        # ... but a page always holds at least one frame
        rows, more = log.page_before(row.session_id, 23, 50, 10)
        assert [r[0] for r in rows] == [22] and more
        assert all(r[2].startswith("{") for r in rows)
    finally:
        log.close()


def test_pages_from_a_snapshot_are_the_keyset_pages_of_the_moment() -> None:
    """Issue 18: the pages after a desk's first one come from the order frozen then, in
    O(page). With sessions getting activity and new ones created between pages, each
    page equals what the full keyset rule (``session_page`` on the current keys) gives,
    so a session is never named twice and none that kept its place is missed."""
    import random

    from hitl_desktop.host.relay_core import (
        InboxSnapshots,
        decode_page_cursor,
        encode_page_cursor,
        session_page,
        snapshot_page,
    )

    rng = random.Random(18)
    for _round in range(30):
        now = 1000.0
        keys = {f"s{i:04d}": (float(rng.randint(1, 900)), f"s{i:04d}") for i in range(300)}
        snaps = InboxSnapshots(keep=2)
        gen, frozen = snaps.build(list(keys.values()))
        after = None
        named: list[str] = []
        limit = rng.choice([1, 7, 50, 120])
        while True:
            ids, more = snapshot_page(frozen, after, limit, keys.get)
            want, want_more = session_page(list(keys.values()), lambda k: k, after, limit)
            assert ids == [k[1] for k in want]
            assert more == want_more
            named += ids
            if more is None:
                break
            cursor = encode_page_cursor(gen, more)
            assert decode_page_cursor(cursor) == (gen, more)
            after = more
            for sid in rng.sample(sorted(keys), 5):  # activity meanwhile: moves to the top
                now += 1.0
                keys[sid] = (now, sid)
            now += 1.0
            keys[f"new{now}"] = (now, f"new{now}")  # created meanwhile
        assert len(named) == len(set(named))
    # generations: the oldest are forgotten; a cursor of one falls back to a fresh build
    snaps = InboxSnapshots(keep=2)
    g1, _ = snaps.build([(1.0, "a")])
    snaps.build([(1.0, "a")])
    snaps.build([(1.0, "a")])
    assert snaps.get(g1) is None
    for bad in ("x/1.0~s", "1/notanumber~s", "1/1.0~", "-1/1.0~s", "1" * 30 + "/1.0~s"):
        assert decode_page_cursor(bad) is None, bad
    assert decode_page_cursor("1.5~s_1") == (None, (1.5, "s_1"))  # without a generation
