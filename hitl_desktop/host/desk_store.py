"""``desk.sqlite3``: the desk's shared macros and the full-text index over every session's
chat lines and internal notes (issue 16).

Why a file of its own, with its own worker thread: the relay log is owned by the event
loop (its appends sit on the hot path), and an FTS5 insert or a search must not run
there. The relay hands each new chat line / note to :class:`~hitl_desktop.host.desk.Desk`,
which queues it and writes batches through this store's worker (one transaction per
batch); a search first waits for what is queued, so it sees every line sent before it.
What the index is missing after a crash (lines logged but not yet indexed) is taken from
the log at start-up (:meth:`DeskStore.catch_up`, the log attached read-only).

The index keeps one row per chat line / note in ``search_docs`` (the FTS5 table is
external-content over it). A row's id is the message's time in microseconds (bumped on
a collision), so "newest first" is FTS5's own ``ORDER BY rowid DESC`` and paging
(``before``) is a rowid range, with no sort of all the matches.
"""

from __future__ import annotations

import json
import logging
import sqlite3
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final, NamedTuple, TypeVar

from hitl_desktop.core.protocol import Macro
from hitl_desktop.core.threads import StoreLock, StoreWorker
from hitl_desktop.store.sqlite_files import check_not_emptied, damaged_as_error, make_private

log = logging.getLogger(__name__)

DESK_FILE: Final = "desk.sqlite3"
#: (session, seq) keys looked up per query (two SQL variables each)
_KEYS_PER_QUERY: Final = 400
#: a search that runs longer than this is stopped (SQLite's progress handler)
SEARCH_BUDGET_S: Final = 0.25

_SCHEMA = """
CREATE TABLE IF NOT EXISTS macros (
    name       TEXT PRIMARY KEY,
    text       TEXT NOT NULL,
    updated_by TEXT NOT NULL,
    updated_at REAL NOT NULL
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS search_docs (
    id         INTEGER PRIMARY KEY,  -- the message's ts in microseconds (time order)
    session_id TEXT NOT NULL,
    seq        INTEGER NOT NULL,
    kind       TEXT NOT NULL,         -- chat | note
    role       TEXT NOT NULL,         -- the author's role
    ts         REAL NOT NULL,
    text       TEXT NOT NULL,
    UNIQUE (session_id, seq)
);
CREATE VIRTUAL TABLE IF NOT EXISTS search_fts USING fts5(
    text, content='search_docs', content_rowid='id',
    tokenize='unicode61 remove_diacritics 2'
);
"""


#: (session id, seq, kind, author role, ts, text): what the relay queues per line
DocRow = tuple[str, int, str, str, float, str]
#: a search_docs row: (id, session id, seq, kind, role, ts, text)
_DocsRow = tuple[int, str, int, str, str, float, str]
_INSERT_DOC: Final = ("INSERT INTO search_docs(id, session_id, seq, kind, role, ts, text)"
                      " VALUES (?,?,?,?,?,?,?)")
_INSERT_FTS: Final = "INSERT INTO search_fts(rowid, text) VALUES (?, ?)"


def _rows(docs: Iterable[DocRow]) -> list[_DocsRow]:
    """search_docs rows: the id is the line's time in microseconds (time order), lines of
    the same microsecond one apart."""
    rows: list[_DocsRow] = []
    taken: set[int] = set()
    for session_id, seq, kind, role, ts, text in docs:
        rowid = int(ts * 1_000_000)
        while rowid in taken:
            rowid += 1
        taken.add(rowid)
        rows.append((rowid, session_id, seq, kind, role, ts, text))
    return rows


class Doc(NamedTuple):
    """One searchable line: a chat message or a note (a tuple: made on the relay's hot
    path for every chat line)."""

    session_id: str
    seq: int
    kind: str
    role: str
    ts: float
    text: str


@dataclass(frozen=True, slots=True)
class Hit:
    session_id: str
    seq: int
    kind: str
    role: str
    ts: float
    snippet: str


class MacroLimit(Exception):
    """The desk has as many macros (or as much macro text) as it may keep."""


class SearchTooBroad(Exception):
    """The search ran out of its time budget."""


class DeskStore:
    """Macros and the search index; called from the loop only through :attr:`worker`."""

    def __init__(self, data_dir: Path, *, log_path: Path | None = None) -> None:
        data_dir.mkdir(parents=True, exist_ok=True)
        self.path = data_dir / DESK_FILE
        self.log_path = log_path
        check_not_emptied(self.path, "desk store")
        # uri=True: the log is attached read-only by a ``file:...?mode=ro`` URI
        self._db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False,
                                   uri=True)
        try:
            with damaged_as_error(self.path, "desk store"):
                self._db.execute("PRAGMA journal_mode=WAL")
                self._db.execute("PRAGMA synchronous=NORMAL")
                self._db.execute("PRAGMA busy_timeout=5000")
                self._db.executescript(_SCHEMA)
        except BaseException:
            self._db.close()
            raise
        make_private(self.path)
        self._lock = StoreLock("the desk store")
        self._log_attached = False
        self.worker = StoreWorker("desk-store")

    def close(self) -> None:
        with self._lock:
            self._db.close()

    # ------------------------------------------------------------------ macros

    def macros(self) -> list[Macro]:
        with self._lock:
            rows = self._db.execute(
                "SELECT name, text, updated_by, updated_at FROM macros ORDER BY name").fetchall()
        return [Macro(name=r[0], text=r[1], updated_by=r[2], updated_at=r[3]) for r in rows]

    def save_macro(self, name: str, text: str, by: str, *, max_macros: int,
                   max_total_chars: int) -> None:
        """Insert or replace one macro, within the desk's limits (:class:`MacroLimit`)."""
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                count, total = self._db.execute(
                    "SELECT COUNT(*), COALESCE(SUM(LENGTH(text)), 0) FROM macros"
                    " WHERE name != ?", (name,)).fetchone()
                if count >= max_macros:
                    raise MacroLimit(f"the desk keeps at most {max_macros} macros; "
                                     "delete one first")
                if total + len(text) > max_total_chars:
                    raise MacroLimit(f"the desk's macros may hold {max_total_chars:,} "
                                     "characters in all; shorten or delete some first")
                self._db.execute(
                    "INSERT INTO macros(name, text, updated_by, updated_at) VALUES (?,?,?,?)"
                    " ON CONFLICT(name) DO UPDATE SET text = excluded.text,"
                    " updated_by = excluded.updated_by, updated_at = excluded.updated_at",
                    (name, text, by, time.time()))
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")

    def delete_macro(self, name: str) -> bool:
        with self._lock:
            return self._db.execute("DELETE FROM macros WHERE name = ?", (name,)).rowcount > 0

    # ------------------------------------------------------------------ search index

    def index(self, docs: Iterable[DocRow]) -> int:
        """Add lines to the index in one transaction (lines already there are skipped);
        how many were added. A ``Doc`` or a plain tuple in its field order."""
        with self._lock:
            return self._index_locked(docs)

    def index_committed(self, docs: list[DocRow]) -> int:
        """The relay's live lines, each committed to the log (the desk made sure, see
        :meth:`~hitl_desktop.host.desk.Desk._flush_index`), as the loop had them: no read
        back from the log and no lookup of what is there already, one ``executemany`` per
        table (issue 18: a SELECT back and a JSON parse per line were two thirds of this
        thread's work, and its Python holds the GIL the event loop needs). Should a line
        be there already (catch-up read it too) or its id be taken (a line of the same
        microsecond in an earlier batch), the batch goes :meth:`index`'s careful way."""
        with self._lock:
            rows = _rows(docs)
            db = self._db
            db.execute("BEGIN IMMEDIATE")
            try:
                db.executemany(_INSERT_DOC, rows)
                db.executemany(_INSERT_FTS, [(row[0], row[6]) for row in rows])
            except sqlite3.IntegrityError:
                db.execute("ROLLBACK")
                return self._index_locked(docs)
            except BaseException:
                db.execute("ROLLBACK")
                raise
            db.execute("COMMIT")
            return len(rows)

    def _index_locked(self, docs: Iterable[DocRow]) -> int:
        """One transaction: the lines not indexed yet, inserted with ``executemany`` (one
        lookup query per _KEYS_PER_QUERY lines for those already there, not one each:
        issue 18, the index keeps up with a thousand chatting sessions cheaply)."""
        db = self._db
        docs = list(docs)
        there = {key for key, _row in self._lookup(
            "SELECT d.session_id, d.seq FROM want JOIN search_docs d"
            " ON d.session_id = want.sid AND d.seq = want.seq", docs)}
        fresh: list[DocRow] = []
        for doc in docs:
            key = (doc[0], doc[1])
            if key not in there:
                there.add(key)
                fresh.append(doc)
        rows = _rows(fresh)
        if not rows:
            return 0
        db.execute("BEGIN IMMEDIATE")
        try:
            try:
                db.executemany(_INSERT_DOC, rows)
            except sqlite3.IntegrityError:
                # an id an earlier batch took (a line of the same microsecond): this
                # batch again, one line at a time, moving such ids on
                db.execute("ROLLBACK")
                db.execute("BEGIN IMMEDIATE")
                rows = [self._insert_moving(row) for row in rows]
            db.executemany(_INSERT_FTS, [(row[0], row[6]) for row in rows])
        except BaseException:
            db.execute("ROLLBACK")
            raise
        db.execute("COMMIT")
        return len(rows)

    def _insert_moving(self, row: _DocsRow) -> _DocsRow:
        rowid = row[0]
        while True:
            try:
                self._db.execute(_INSERT_DOC, (rowid, *row[1:]))
                return (rowid, *row[1:])
            except sqlite3.IntegrityError:
                rowid += 1

    def _lookup(self, select: str, docs: list[DocRow]) -> Iterator[tuple[tuple[str, int],
                                                                          tuple[Any, ...]]]:
        """``select`` (which joins a CTE ``want(sid, seq)``) for the (session, seq) keys of
        ``docs``, _KEYS_PER_QUERY at a time: ((session, seq), the row) per match."""
        for i in range(0, len(docs), _KEYS_PER_QUERY):
            chunk = docs[i:i + _KEYS_PER_QUERY]
            values = ",".join(["(?,?)"] * len(chunk))
            params = [x for d in chunk for x in (d[0], d[1])]
            for row in self._db.execute(
                    f"WITH want(sid, seq) AS (VALUES {values}) {select}", params):
                yield (str(row[0]), int(row[1])), tuple(row)

    def index_logged(self, docs: Iterable[DocRow]) -> tuple[int, list[DocRow]]:
        """The relay's live lines, indexed as the log has them: each (session, seq) is read
        back from the log (one query per _KEYS_PER_QUERY lines) and indexed with the
        logged text and time, so the index never holds a line the log lost (a group
        commit that failed gives its seqs to later messages). (added, lines not in the
        log yet: the caller tries those once more.)"""
        with self._lock:
            self._attach_log()
            docs = list(docs)
            logged = dict(self._lookup(
                "SELECT m.session_id, m.seq, m.type, m.ts, m.frame FROM want JOIN"
                " log.messages m ON m.session_id = want.sid AND m.seq = want.seq", docs))
            found: list[DocRow] = []
            missing: list[DocRow] = []
            for doc in docs:
                row = logged.get((doc[0], doc[1]))
                if row is None:
                    missing.append(doc)
                    continue
                type_ = str(row[2])
                if type_ not in ("chat.message", "note.added"):
                    continue
                parsed = doc_from_frame(doc[0], doc[1], type_, float(row[3]), str(row[4]))
                if parsed is not None:
                    found.append(parsed)
            return (self._index_locked(found) if found else 0), missing

    def _attach_log(self) -> None:
        if self._log_attached:
            return
        if self.log_path is None or not self.log_path.exists():
            raise FileNotFoundError("no session log to read")
        uri = f"file:{self.log_path.as_posix()}?mode=ro"
        self._db.execute("ATTACH DATABASE ? AS log", (uri,))
        self._log_attached = True

    def catch_up(self) -> int:
        """Index the chat lines and notes the log has and the index lacks (lines logged
        just before a crash, or by a host from before the index existed); how many."""
        with self._lock:
            try:
                self._attach_log()
            except (FileNotFoundError, sqlite3.Error) as exc:
                log.warning("search index: cannot read the session log (%s)", exc)
                return 0
            rows = self._db.execute(
                "SELECT m.session_id, m.seq, m.type, m.ts, m.frame FROM log.messages m"
                " WHERE m.type IN ('chat.message', 'note.added') AND m.seq > COALESCE("
                "  (SELECT MAX(d.seq) FROM search_docs d WHERE d.session_id = m.session_id), 0)"
            ).fetchall()
            # parsed in Python: let the loop have the GIL now and then (a host that
            # crashed under load may have many lines to take back while serving)
            docs = [d for d in (doc_from_frame(r[0], r[1], r[2], r[3], r[4])
                                for r in _yielding(iter(rows))) if d is not None]
            added = self._index_locked(docs) if docs else 0
        if added:
            log.info("search index: %d lines taken from the session log", added)
        return added

    def search(self, match: str, limit: int, before: float | None,
               budget_s: float = SEARCH_BUDGET_S) -> list[Hit]:
        """Newest first: lines matching the FTS5 expression ``match`` (built by
        :func:`hitl_desktop.host.desk.fts_query`, never the user's text), older than
        ``before``. Stopped after ``budget_s`` (:class:`SearchTooBroad`)."""
        upper = int(before * 1_000_000) if before is not None else 2**62
        deadline = time.monotonic() + budget_s
        with self._lock:
            self._db.set_progress_handler(lambda: int(time.monotonic() > deadline), 2000)
            try:
                rows = self._db.execute(
                    "SELECT d.session_id, d.seq, d.kind, d.role, d.ts,"
                    " snippet(search_fts, 0, '', '', '…', 16)"
                    " FROM search_fts JOIN search_docs d ON d.id = search_fts.rowid"
                    " WHERE search_fts MATCH ? AND search_fts.rowid < ?"
                    " ORDER BY search_fts.rowid DESC LIMIT ?",
                    (match, upper, limit)).fetchall()
            except sqlite3.OperationalError as exc:
                if "interrupt" in str(exc):
                    raise SearchTooBroad(str(exc)) from None
                raise
            finally:
                self._db.set_progress_handler(None, 0)
        return [Hit(str(r[0]), int(r[1]), str(r[2]), str(r[3]), float(r[4]), str(r[5]))
                for r in rows]

    def like_search(self, phrase: str, limit: int) -> list[tuple[str, int]]:
        """The baseline the bench compares with: a plain ``LIKE '%phrase%'`` scan."""
        escaped = phrase.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        with self._lock:
            rows = self._db.execute(
                "SELECT session_id, seq FROM search_docs WHERE text LIKE ? ESCAPE '\\'"
                " ORDER BY id DESC LIMIT ?", (f"%{escaped}%", limit)).fetchall()
        return [(str(r[0]), int(r[1])) for r in rows]

    def indexed_count(self) -> int:
        with self._lock:
            (n,) = self._db.execute("SELECT COUNT(*) FROM search_docs").fetchone()
        return int(n)

    # ------------------------------------------------------------------ transcript

    def render_session(self, session_id: str, render: Callable[[Iterable[str]], str]) -> str:
        """``render`` over a session's durable frames in seq order, read from the log one
        row at a time under the store's lock (a renderer that stops early stops the
        read: a transcript never holds a whole long session in memory)."""
        with self._lock:
            self._attach_log()
            cur = self._db.execute(
                "SELECT frame FROM log.messages WHERE session_id = ? ORDER BY seq",
                (session_id,))
            try:
                return render(_yielding(str(r[0]) for r in cur))
            finally:
                cur.close()


T = TypeVar("T")
#: frames a transcript renders between two voluntary releases of the GIL
YIELD_FRAMES = 200


def _yielding(frames: Iterator[T]) -> Iterator[T]:
    """``frames``, letting the event loop's thread have the GIL every YIELD_FRAMES: a
    worker rendering a long transcript in pure Python would otherwise keep it for the
    interpreter's whole switch interval (5 ms) at every turn, and the loop waits that
    long each time it comes back from its selector (issue 18: the other sessions' hops)."""
    for n, frame in enumerate(frames, 1):
        if n % YIELD_FRAMES == 0:
            time.sleep(0)
        yield frame


def doc_from_frame(session_id: str, seq: int, type_: str, ts: float,
                   frame: str) -> Doc | None:
    """The searchable line of a logged ``chat.message`` / ``note.added`` frame."""
    try:
        data: Any = json.loads(frame)["data"]
        text = str(data["text"])
        role = str(data["author"]["role"])
    except (ValueError, KeyError, TypeError):
        return None
    kind = "note" if type_ == "note.added" else "chat"
    return Doc(session_id, int(seq), kind, role, float(ts), text)
