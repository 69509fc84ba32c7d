"""Group commit on the relay log (real SQLite files): the chat lines of one loop tick
share a transaction; none is handed back for relaying before it is committed; any other
use of the log commits the open group first (so seq order holds across types); a
failed commit hands nothing to relay and moves the sessions back."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest

from hitl_desktop.core.protocol import DraftStarted, SessionReopened, TurnEnded
from hitl_desktop.host.log import SEQ_BLOCK, SEQ_FILE, RelayLog, SessionRow

Committed = list[tuple[list[tuple[object, str]], BaseException | None]]


@pytest.fixture
def relay_log(tmp_path: Path) -> Iterator[RelayLog]:
    log = RelayLog(tmp_path / "relay.sqlite3")
    yield log
    log.close()


def _other_sees(path: Path, session_id: str) -> list[int]:
    """What another connection (another process, after a crash) can read."""
    db = sqlite3.connect(path)
    try:
        return [r[0] for r in db.execute(
            "SELECT seq FROM messages WHERE session_id = ? ORDER BY seq", (session_id,))]
    finally:
        db.close()


def _started(turn_id: str) -> DraftStarted:
    return DraftStarted(turn_id=turn_id, reason="customer_message", provider="offline")


def _line(log: RelayLog, row: SessionRow, token: object, text: str) -> tuple[int, str, bool]:
    return log.append_chat_grouped(row, token, message_id=f"c_{text}", role="customer",
                                   name="Customer", text=text, draft_id=None, ref=None)


def test_lines_of_a_tick_are_committed_together_then_handed_back(relay_log: RelayLog) -> None:
    committed: Committed = []
    relay_log.on_group_commit = lambda lines, err: committed.append((lines, err))
    a, _ = relay_log.create_session()
    b, _ = relay_log.create_session()
    seq1, f1, began1 = _line(relay_log, a, "t1", "one")
    seq2, f2, began2 = _line(relay_log, b, "t2", "two")
    seq3, f3, began3 = _line(relay_log, a, "t3", "three")
    assert (began1, began2, began3) == (True, False, False)
    assert (seq1, seq2, seq3) == (2, 2, 3)
    assert a.last_seq == 3  # the next line's seq is known before the commit
    assert committed == []  # nothing may be relayed yet ...
    assert _other_sees(relay_log.path, a.session_id) == [1]  # ... nothing is durable yet
    relay_log.commit_group()
    assert committed == [([("t1", f1), ("t2", f2), ("t3", f3)], None)]
    assert _other_sees(relay_log.path, a.session_id) == [1, 2, 3]
    assert _other_sees(relay_log.path, b.session_id) == [1, 2]
    relay_log.commit_group()  # nothing open: nothing happens
    assert len(committed) == 1


def test_any_other_use_of_the_log_commits_the_group_first(relay_log: RelayLog) -> None:
    order: list[str] = []
    relay_log.on_group_commit = lambda lines, err: order.extend(str(t) for t, _ in lines)
    row, _ = relay_log.create_session()
    _line(relay_log, row, "line-2", "hello")
    seq, _frame = relay_log.append(row, SessionReopened(by="Agent"))
    order.append(f"append-{seq}")
    assert order == ["line-2", "append-3"]  # relayed in seq order
    _line(relay_log, row, "line-4", "again")
    assert [f for s, _t, f in relay_log.page_after(row.session_id, 3, 10, 10**6)]
    assert order[-1] == "line-4"  # a replay page never reads past what was relayed
    _line(relay_log, row, "line-5", "and again")
    relay_log.db.execute("SELECT 1")  # tokens, desk, insights: every other user of db
    assert order[-1] == "line-5"
    assert _other_sees(relay_log.path, row.session_id) == [1, 2, 3, 4, 5]


def test_a_failed_commit_relays_nothing_and_moves_the_session_back(relay_log: RelayLog) -> None:
    committed: Committed = []
    relay_log.on_group_commit = lambda lines, err: committed.append((lines, err))
    row, _ = relay_log.create_session()
    _line(relay_log, row, "ok", "stored")
    relay_log.commit_group()
    before = (row.last_seq, row.last_message, row.messages)

    deny = sqlite3.SQLITE_DENY

    def no_commit(action: int, arg1: str | None, *_: object) -> int:
        return deny if action == sqlite3.SQLITE_TRANSACTION and arg1 == "COMMIT" else 0

    _line(relay_log, row, "lost-1", "one")
    _line(relay_log, row, "lost-2", "two")
    relay_log._db.set_authorizer(no_commit)  # the disk says no (real SQLite refuses)
    try:
        relay_log.commit_group()
    finally:
        relay_log._db.set_authorizer(None)
    lines, err = committed[-1]
    assert err is not None and [t for t, _ in lines] == ["lost-1", "lost-2"]
    assert (row.last_seq, row.last_message, row.messages) == before
    assert _other_sees(relay_log.path, row.session_id) == [1, 2]
    seq, _f, began = _line(relay_log, row, "next", "after the failure")
    assert began and seq == 3  # the log carries on from what is durable
    relay_log.commit_group()
    assert _other_sees(relay_log.path, row.session_id) == [1, 2, 3]


def test_a_hold_keeps_lines_unrelayed_until_release(relay_log: RelayLog) -> None:
    """While a WAL finish holds the group commit (log.hold), a tick's commit does nothing:
    the lines are neither durable nor handed back; release commits them, in order."""
    committed: Committed = []
    relay_log.on_group_commit = lambda lines, err: committed.append((lines, err))
    row, _ = relay_log.create_session()
    relay_log.hold()
    assert relay_log.held
    _line(relay_log, row, "h1", "one")
    _line(relay_log, row, "h2", "two")
    relay_log.commit_group()  # the end of a tick: held
    assert committed == [] and _other_sees(relay_log.path, row.session_id) == [1]
    assert relay_log.data_version() >= 0  # (reads nothing of the log: stays held)
    assert committed == []
    relay_log.release()
    assert not relay_log.held and not relay_log.finish_raced
    assert [t for t, _ in committed[0][0]] == ["h1", "h2"] and committed[0][1] is None
    assert _other_sees(relay_log.path, row.session_id) == [1, 2, 3]


def test_another_write_during_a_hold_commits_the_held_lines_first(relay_log: RelayLog) -> None:
    order: list[str] = []
    relay_log.on_group_commit = lambda lines, err: order.extend(str(t) for t, _ in lines)
    row, _ = relay_log.create_session()
    relay_log.hold()
    _line(relay_log, row, "held-2", "before the reopen")
    seq, _frame = relay_log.append(row, SessionReopened(by="Agent"))  # e.g. a co-pilot frame
    order.append(f"append-{seq}")
    assert order == ["held-2", "append-3"]  # seq order kept ...
    assert relay_log.finish_raced  # ... and that finish is spoiled (tried again later),
    assert not relay_log.held  # so nothing waits for it any more
    _line(relay_log, row, "line-4", "after")
    relay_log.commit_group()  # the end of the tick commits as usual
    assert order[-1] == "line-4"
    relay_log.release()
    assert _other_sees(relay_log.path, row.session_id) == [1, 2, 3, 4]


def test_host_frames_and_deferred_ones_share_the_group_in_order(relay_log: RelayLog) -> None:
    """Issue 18: the co-pilot's turn frames join the group (their seq at once, handed back
    after the commit), and an ephemeral frame deferred behind them comes back in its
    place, unlogged; one transaction for all of it."""
    committed: Committed = []
    relay_log.on_group_commit = lambda lines, err: committed.append((lines, err))
    row, _ = relay_log.create_session()
    _line(relay_log, row, "line-2", "where is my parcel?")
    seq, frame, began = relay_log.append_grouped(row, _started("t_1"), "started")
    assert (seq, began) == (3, False) and row.last_seq == 3
    assert json.loads(frame)["seq"] == 3 and json.loads(frame)["type"] == "draft.started"
    relay_log.defer("delta", '{"type":"draft.delta"}')
    ended = TurnEnded(turn_id="t_1", outcome="completed", reason="customer_message")
    seq4, _f, _b = relay_log.append_grouped(row, ended, "ended")
    assert seq4 == 4 and committed == []
    assert _other_sees(relay_log.path, row.session_id) == [1]
    assert relay_log.commit_group() is None
    (lines, err), = committed
    assert err is None and [t for t, _ in lines] == ["line-2", "started", "delta", "ended"]
    assert lines[2][1] == '{"type":"draft.delta"}'
    assert _other_sees(relay_log.path, row.session_id) == [1, 2, 3, 4]
    assert [m["type"] for m in relay_log.messages(row.session_id)] == [
        "session.opened", "chat.message", "draft.started", "turn.ended"]
    with pytest.raises(ValueError, match="not logged through the group"):
        relay_log.append_grouped(row, SessionReopened(by="Agent"), "no")
    with pytest.raises(RuntimeError, match="no open group"):
        relay_log.defer("alone", "{}")


def test_a_failed_commit_of_host_frames_moves_the_session_back(relay_log: RelayLog) -> None:
    committed: Committed = []
    relay_log.on_group_commit = lambda lines, err: committed.append((lines, err))
    row, _ = relay_log.create_session()
    _line(relay_log, row, "line-2", "hello")
    relay_log.append_grouped(row, _started("t_1"), "started")
    relay_log.defer("delta", "{}")

    def no_commit(action: int, arg1: str | None, *_: object) -> int:
        return sqlite3.SQLITE_DENY if action == sqlite3.SQLITE_TRANSACTION and \
            arg1 == "COMMIT" else 0

    relay_log._db.set_authorizer(no_commit)
    try:
        error = relay_log.commit_group()
    finally:
        relay_log._db.set_authorizer(None)
    assert error is not None and committed[-1][1] is error
    assert [t for t, _ in committed[-1][0]] == ["line-2", "started", "delta"]
    assert row.last_seq == 1 and row.messages == 0
    assert _other_sees(relay_log.path, row.session_id) == [1]
    seq, _f, began = relay_log.append_grouped(row, _started("t_2"), "again")
    assert began and seq == 2
    relay_log.commit_group()
    assert _other_sees(relay_log.path, row.session_id) == [1, 2]


def _reserved_on_disk(log: RelayLog) -> dict[str, int]:
    """The seq reservations another process (the next start, after a power cut) reads."""
    db = sqlite3.connect(log.path.with_name(SEQ_FILE))
    try:
        return {str(r[0]): int(r[1]) for r in db.execute("SELECT session_id, seq FROM reserved")}
    finally:
        db.close()


def test_sessions_passing_their_reservation_in_one_group_reserve_together_first(
        relay_log: RelayLog) -> None:
    """40 sessions chatting in step pass their seq reservation in the same group: one
    durable reservation for all of them (not an fsync each on the loop), on disk before
    any line of the group is handed back for relaying (a client may keep its seq)."""
    rows = [relay_log.create_session()[0] for _ in range(40)]
    reserved_then: list[dict[str, int]] = []
    handed: list[tuple[str, int]] = []

    def committed(lines: list[tuple[object, str]], err: BaseException | None) -> None:
        assert err is None
        reserved_then.append(_reserved_on_disk(relay_log))
        handed.extend((json.loads(f)["session"], json.loads(f)["seq"]) for _t, f in lines)

    relay_log.on_group_commit = committed
    for n in range(SEQ_BLOCK + 1):  # seqs 2 .. SEQ_BLOCK + 2 (reserved at first: 1 + BLOCK)
        before = relay_log.reserve_commits
        for row in rows:
            _line(relay_log, row, None, f"line {n}")
        relay_log.commit_group()
        passing = rows[0].last_seq > 1 + SEQ_BLOCK
        assert relay_log.reserve_commits - before == (1 if passing else 0)
    assert rows[0].last_seq == SEQ_BLOCK + 2
    for (sid, seq), on_disk in zip(handed, [r for r in reserved_then for _ in rows],
                                   strict=True):
        assert seq <= on_disk[sid]
    assert _reserved_on_disk(relay_log) == {row.session_id: 2 * SEQ_BLOCK + 2 for row in rows}
