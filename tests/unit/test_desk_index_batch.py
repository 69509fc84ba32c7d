"""The desk's search index takes the relay's live lines in batches (issue 18: one lookup
query per few hundred lines and executemany, not three statements a line): it indexes
exactly the lines the log has, as the log has them, each once, in time order, also when
two lines share a microsecond with a line of an earlier batch."""

from __future__ import annotations

from pathlib import Path

from hitl_desktop.host.desk_store import _KEYS_PER_QUERY, DeskStore
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
        added, left = store.index_logged(docs)  # the first 10 are there already
        assert (added, left) == (len(docs) - 10, [])
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
