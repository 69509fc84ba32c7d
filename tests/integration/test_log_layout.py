"""The session log's messages table is appended in arrival order with a (session, seq)
index (issue 18: clustered by (session, seq), each line of a busy host dirtied a page of
its own session). A log written in the clustered layout is moved over when opened, with
every message, and (session, seq) stays unique. Real SQLite files."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from hitl_desktop.core.protocol import Author, ChatMessage, Role
from hitl_desktop.host.log import RelayLog


def _layout(path: Path) -> str:
    db = sqlite3.connect(path)
    try:
        return str(db.execute("SELECT sql FROM sqlite_master WHERE name = 'messages'")
                   .fetchone()[0])
    finally:
        db.close()


def _cluster(path: Path) -> None:
    """Rewrite the messages table as logs before issue 18 had it."""
    db = sqlite3.connect(path, isolation_level=None)
    try:
        db.execute("BEGIN")
        db.execute("CREATE TABLE old (session_id TEXT NOT NULL, seq INTEGER NOT NULL,"
                   " type TEXT NOT NULL, ts REAL NOT NULL, frame TEXT NOT NULL,"
                   " PRIMARY KEY (session_id, seq)) WITHOUT ROWID")
        db.execute("INSERT INTO old SELECT session_id, seq, type, ts, frame FROM messages")
        db.execute("DROP TABLE messages")
        db.execute("ALTER TABLE old RENAME TO messages")
        db.execute("COMMIT")
    finally:
        db.close()


def test_a_clustered_log_is_moved_over_with_every_message(tmp_path: Path,
                                                          caplog: pytest.LogCaptureFixture
                                                          ) -> None:
    path = tmp_path / "relay.sqlite3"
    log = RelayLog(path)
    author = Author(role=Role.CUSTOMER, name="Ann")
    rows = [log.create_session(title=f"s{i}")[0] for i in range(3)]
    for n in range(5):
        for row in rows:
            log.append(row, ChatMessage(message_id=f"m{n}{row.session_id}", author=author,
                                        text=f"line {n}"))
    before = {row.session_id: log.frames_after(row.session_id, 0) for row in rows}
    log.close()
    _cluster(path)
    assert "WITHOUT ROWID" in _layout(path)

    log = RelayLog(path)
    try:
        assert "WITHOUT ROWID" not in _layout(path)
        assert "moved to the append-ordered layout" in caplog.text
        assert {row.session_id: log.frames_after(row.session_id, 0) for row in rows} == before
        row = log.get_session(rows[1].session_id)
        assert row is not None and row.last_seq == 6 and row.messages == 5
        seq, _frame = log.append(row, ChatMessage(message_id="after", author=author,
                                                  text="after the move"))
        assert seq == 7
        with pytest.raises(sqlite3.IntegrityError):  # (session, seq) is still unique
            log.db.execute("INSERT INTO messages(session_id, seq, type, ts, frame)"
                           " VALUES (?, 7, 'chat.message', 0, '{}')", (row.session_id,))
    finally:
        log.close()
    log = RelayLog(path)  # opened again: nothing to move
    log.close()
    assert caplog.text.count("moved to the append-ordered layout") == 1
