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

``search_docs`` has no (session, seq) index (issue 18): every line of a busy host went to
a leaf page of its own session in it, so each batch dirtied a page per session and the
index thread's cost per line tripled as the index grew (9.7 -> 31 us a line over 200k
lines, most of it that index's inserts and WAL pages). What it was for is kept another
way: ``search_seen`` holds each session's highest indexed seq (one row per session, a
batch updates one row per session it touches), which is what start-up's catch-up asks;
and no live line is offered twice (catch-up reads only the log's lines from before the
desk started, see :meth:`DeskStore.catch_up`; each live line is in one batch).
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
    text       TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS search_seen (
    session_id TEXT PRIMARY KEY,
    seq        INTEGER NOT NULL      -- the session's highest indexed seq
) WITHOUT ROWID;
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
_SEEN: Final = ("INSERT INTO search_seen(session_id, seq) VALUES (?, ?) ON CONFLICT(session_id)"
                " DO UPDATE SET seq = max(seq, excluded.seq)")
#: the index of a store from before issue 18's layout (dropped by _migrate)
_OLD_KEY_INDEX: Final = "sqlite_autoindex_search_docs_1"


def _highest(docs: Iterable[DocRow]) -> list[tuple[str, int]]:
    """(session, its highest seq in ``docs``) for ``search_seen``."""
    top: dict[str, int] = {}
    for doc in docs:
        sid, seq = doc[0], doc[1]
        if seq > top.get(sid, 0):
            top[sid] = seq
    return list(top.items())


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
                self._migrate()
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

    def _migrate(self) -> None:
        """A store from before issue 18 (``search_docs`` unique on (session, seq)): each
        session's highest seq into ``search_seen``, and the table rebuilt without that
        index (its rowids kept, so the FTS5 index over it stays as it is). Once, at
        start-up; ~1 s per 500k lines."""
        db = self._db
        if db.execute("SELECT 1 FROM sqlite_master WHERE name = ?",
                      (_OLD_KEY_INDEX,)).fetchone() is None:
            return
        db.execute("BEGIN IMMEDIATE")
        try:
            db.execute("INSERT OR REPLACE INTO search_seen(session_id, seq)"
                       " SELECT session_id, MAX(seq) FROM search_docs GROUP BY session_id")
            db.execute("CREATE TABLE search_docs_new (id INTEGER PRIMARY KEY,"
                       " session_id TEXT NOT NULL, seq INTEGER NOT NULL, kind TEXT NOT NULL,"
                       " role TEXT NOT NULL, ts REAL NOT NULL, text TEXT NOT NULL)")
            db.execute("INSERT INTO search_docs_new SELECT id, session_id, seq, kind, role,"
                       " ts, text FROM search_docs ORDER BY id")
            db.execute("DROP TABLE search_docs")
            db.execute("ALTER TABLE search_docs_new RENAME TO search_docs")
        except BaseException:
            db.execute("ROLLBACK")
            raise
        db.execute("COMMIT")
        log.info("search index: rebuilt without its (session, seq) index")

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
        """Add lines to the index in one transaction; how many were added. A line at or
        below its session's highest indexed seq counts as there already and is skipped
        (as start-up's catch-up has always judged). A ``Doc`` or a plain tuple in its
        field order."""
        with self._lock:
            return self._index_locked(docs, skip_seen=True)

    def index_committed(self, docs: list[DocRow]) -> int:
        """The relay's live lines, each committed to the log (the desk made sure, see
        :meth:`~hitl_desktop.host.desk.Desk._flush_index`), as the loop had them: no read
        back from the log and no lookup of what is there already, one ``executemany`` per
        table (issue 18: a SELECT back and a JSON parse per line were two thirds of this
        thread's work, and its Python holds the GIL the event loop needs). Should a line
        be there already (catch-up read it too) or its id be taken (a line of the same
        microsecond in an earlier batch), the batch goes the careful way (ids moved on).
        No line is offered twice (see the module's docstring), so none is looked up."""
        with self._lock:
            rows = _rows(docs)
            db = self._db
            db.execute("BEGIN IMMEDIATE")
            try:
                db.executemany(_INSERT_DOC, rows)
                db.executemany(_INSERT_FTS, [(row[0], row[6]) for row in rows])
                db.executemany(_SEEN, _highest(docs))
            except sqlite3.IntegrityError:
                db.execute("ROLLBACK")
                return self._index_locked(docs, skip_seen=False)
            except BaseException:
                db.execute("ROLLBACK")
                raise
            db.execute("COMMIT")
            return len(rows)

    def _index_locked(self, docs: Iterable[DocRow], *, skip_seen: bool) -> int:
        """One transaction: the lines, each (session, seq) once, inserted with
        ``executemany``; with ``skip_seen`` not those at or below their session's
        highest indexed seq (one lookup query per _KEYS_PER_QUERY sessions)."""
        db = self._db
        docs = list(docs)
        seen = self._seen(docs) if skip_seen else {}
        there: set[tuple[str, int]] = set()
        fresh: list[DocRow] = []
        for doc in docs:
            key = (doc[0], doc[1])
            if key not in there and doc[1] > seen.get(doc[0], 0):
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
            db.executemany(_SEEN, _highest(fresh))
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

    def _seen(self, docs: list[DocRow]) -> dict[str, int]:
        """The highest indexed seq of each session in ``docs`` that has one."""
        sids = list({doc[0] for doc in docs})
        out: dict[str, int] = {}
        for i in range(0, len(sids), _KEYS_PER_QUERY):
            chunk = sids[i:i + _KEYS_PER_QUERY]
            marks = ",".join("?" * len(chunk))
            out.update((str(r[0]), int(r[1])) for r in self._db.execute(
                f"SELECT session_id, seq FROM search_seen WHERE session_id IN ({marks})",
                chunk))
        return out

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
            return (self._index_locked(found, skip_seen=False) if found else 0), missing

    def _attach_log(self) -> None:
        if self._log_attached:
            return
        if self.log_path is None or not self.log_path.exists():
            raise FileNotFoundError("no session log to read")
        uri = f"file:{self.log_path.as_posix()}?mode=ro"
        self._db.execute("ATTACH DATABASE ? AS log", (uri,))
        self._log_attached = True

    def catch_up(self, upto: int | None = None) -> int:
        """Index the chat lines and notes the log has and the index lacks (lines logged
        just before a crash, or by a host from before the index existed): each above its
        session's highest indexed seq; how many. ``upto``: only the log's rows up to
        this rowid (the log's last row when the desk started: every later line is
        handed over live, so none is offered twice)."""
        with self._lock:
            try:
                self._attach_log()
            except (FileNotFoundError, sqlite3.Error) as exc:
                log.warning("search index: cannot read the session log (%s)", exc)
                return 0
            rows = self._db.execute(
                "SELECT m.session_id, m.seq, m.type, m.ts, m.frame FROM log.messages m"
                " LEFT JOIN search_seen h ON h.session_id = m.session_id"
                " WHERE m.type IN ('chat.message', 'note.added')"
                " AND m.seq > COALESCE(h.seq, 0) AND m.rowid <= ?",
                (2**63 - 1 if upto is None else upto,)).fetchall()
            # parsed in Python: let the loop have the GIL now and then (a host that
            # crashed under load may have many lines to take back while serving)
            docs = [d for d in (doc_from_frame(r[0], r[1], r[2], r[3], r[4])
                                for r in _yielding(iter(rows))) if d is not None]
            added = self._index_locked(docs, skip_seen=True) if docs else 0
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
