"""The desk's search index takes the relay's live lines in batches (issue 18: one lookup
query per few hundred lines and executemany, not three statements a line): it indexes
exactly the lines the log has, as the log has them, each once, in time order, also when
two lines share a microsecond with a line of an earlier batch. It keeps no (session, seq)
index: each session's highest indexed seq in ``search_seen``."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

from hitl_desktop.host.desk_store import _KEYS_PER_QUERY, DESK_FILE, DeskStore
from hitl_desktop.host.log import RelayLog


def test_batches_index_what_the_log_has_once(tmp_path: Path) -> None:
    log = RelayLog.open_in(tmp_path)
    try:
        docs = []
        for s in range(3):
            row, _ = log.create_session(title=f"t{s}")
            for i in range(_KEYS_PER_QUERY // 2 + 7):  # more keys than one query takes
                seq, _f = log.append_chat(row, message_id=f"m{s}_{i}", role="customer",
                                          name="C", text=f"parcel {s} {i}", draft_id=None,
                                          ref=None)
                docs.append((row.session_id, seq, "chat", "customer", 1000.0, "as queued"))
        first = (docs[0][0], 1, "chat", "customer", 1000.0, "seq 1 is session.opened")
    finally:
        log.close()
    store = DeskStore(tmp_path / "desk", log_path=tmp_path / "relay.sqlite3")
    try:
        missing = ("s_nope", 3, "chat", "customer", 1.0, "never logged")
        added, left = store.index_logged([*docs[:10], docs[3], missing, first])
        assert (added, left) == (10, [missing])  # a duplicate once; seq 1 not a line
        added, left = store.index_logged(docs[10:])  # the next batch
        assert (added, left) == (len(docs) - 10, [])
        # catch-up's way: at or below a session's highest indexed seq counts as there
        assert store.index(docs) == 0
        rows = store._db.execute("SELECT id, session_id, seq, text FROM search_docs"
                                 " ORDER BY id").fetchall()
        assert len(rows) == len(docs) == len({(r[1], r[2]) for r in rows})
        assert all(r[3].startswith("parcel ") for r in rows)  # the logged text
        ids = [r[0] for r in rows]
        assert ids == sorted(set(ids))  # one id each, in time order
        hits = store.search('"parcel"', 50, None)
        assert len(hits) == 50
        # a line whose microsecond an earlier batch took: moved on, not lost
        added = store.index([("s_x", 1, "chat", "customer", rows[0][0] / 1e6, "same µs"),
                             ("s_x", 2, "chat", "customer", rows[0][0] / 1e6, "same µs too")])
        assert added == 2
        assert len(store.search('"same"', 50, None)) == 2
    finally:
        store.close()


def test_a_live_line_below_its_sessions_seen_seq_is_indexed(tmp_path: Path) -> None:
    """A note's seq is taken before an await, so a later chat line of its session may
    reach an earlier batch: the live path indexes it all the same (it looks nothing up)."""
    store = DeskStore(tmp_path)
    try:
        assert store.index_committed([("s_a", 11, "chat", "customer", 2.0, "parcel line")]) == 1
        assert store.index_committed([("s_a", 10, "note", "agent", 1.0, "parcel note")]) == 1
        assert sorted(h.seq for h in store.search('"parcel"', 10, None)) == [10, 11]
        assert store._db.execute("SELECT seq FROM search_seen").fetchall() == [(11,)]
    finally:
        store.close()


def test_catch_up_takes_the_log_up_to_where_the_live_lines_begin(tmp_path: Path) -> None:
    """Start-up's catch-up reads the log only up to its last row when the desk started;
    lines after it come live, so none is indexed twice, and a restart finds none missing."""
    log = RelayLog.open_in(tmp_path)
    try:
        row, _ = log.create_session()

        def line(i: int) -> tuple[str, int, str, str, float, str]:
            seq, frame = log.append_chat(row, message_id=f"m{i}", role="customer",
                                         name="C", text=f"parcel {i}", draft_id=None, ref=None)
            return (row.session_id, seq, "chat", "customer", float(json.loads(frame)["ts"]),
                    f"parcel {i}")

        line(0)
        line(1)
        (upto,) = log.db.execute("SELECT max(rowid) FROM messages").fetchone()
        live = line(2)
        store = DeskStore(tmp_path / "desk", log_path=log.path)
        try:
            assert store.catch_up(upto) == 2
            assert store.index_committed([live]) == 1
            assert store.catch_up() == 0  # the next start: nothing missing
            hits = store.search('"parcel"', 10, None)
            assert [h.snippet for h in hits] == ["parcel 2", "parcel 1", "parcel 0"]
        finally:
            store.close()
        line(3)  # logged, not indexed (a crash before the batch)
        store = DeskStore(tmp_path / "desk", log_path=log.path)
        try:
            assert store.catch_up() == 1
            assert len(store.search('"parcel"', 10, None)) == 4
        finally:
            store.close()
    finally:
        log.close()


_OLD_LAYOUT = """
CREATE TABLE search_docs (
    id INTEGER PRIMARY KEY, session_id TEXT NOT NULL, seq INTEGER NOT NULL,
    kind TEXT NOT NULL, role TEXT NOT NULL, ts REAL NOT NULL, text TEXT NOT NULL,
    UNIQUE (session_id, seq)
);
CREATE VIRTUAL TABLE search_fts USING fts5(
    text, content='search_docs', content_rowid='id',
    tokenize='unicode61 remove_diacritics 2'
);
"""


def test_a_store_from_before_the_seen_table_is_rebuilt_once(tmp_path: Path) -> None:
    """A desk.sqlite3 whose search_docs was unique on (session, seq) is rebuilt without
    that index at start-up: every line still found, each session's seq carried over."""
    db = sqlite3.connect(tmp_path / DESK_FILE)
    db.executescript(_OLD_LAYOUT)
    for i, (sid, seq) in enumerate([("s_a", 2), ("s_a", 3), ("s_b", 5)]):
        db.execute("INSERT INTO search_docs VALUES (?,?,?,?,?,?,?)",
                   (1000 + i, sid, seq, "chat", "customer", 0.001 + i / 1e6, f"old parcel {i}"))
        db.execute("INSERT INTO search_fts(rowid, text) VALUES (?, ?)", (1000 + i,
                                                                       f"old parcel {i}"))
    db.commit()
    db.close()
    store = DeskStore(tmp_path)
    try:
        names = {r[0] for r in store._db.execute("SELECT name FROM sqlite_master")}
        assert "sqlite_autoindex_search_docs_1" not in names and "search_docs_new" not in names
        assert dict(store._db.execute("SELECT * FROM search_seen").fetchall()) == {
            "s_a": 3, "s_b": 5}
        assert [h.snippet for h in store.search('"old parcel"', 10, None)] == [
            "old parcel 2", "old parcel 1", "old parcel 0"]
        assert store.index([("s_a", 3, "chat", "customer", 5.0, "parcel again")]) == 0
        assert store.index([("s_a", 4, "chat", "customer", 5.0, "parcel new")]) == 1
        store._db.execute("INSERT INTO search_fts(search_fts) VALUES ('integrity-check')")
    finally:
        store.close()
    store = DeskStore(tmp_path)  # the next start: nothing to do
    try:
        assert len(store.search('"parcel"', 10, None)) == 4
    finally:
        store.close()
