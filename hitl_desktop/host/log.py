"""The durable session log: SQLite in the data dir, written *before* anything is relayed.

Why SQLite: one file, crash-safe (WAL; a committed row survives SIGKILL of the
host), readable by a second process (``session new`` writes sessions while a
host runs). ``synchronous=NORMAL`` in WAL mode skips the fsync per commit
(durable against process crashes, not power loss), which keeps an append in the
tens of microseconds so it can sit on the relay's hot path.

Each durable message is stored as the exact frame that was relayed, so resume
replays bytes without re-encoding. Sequence numbers are per session, start at 1
(``session.opened``) and have no gaps.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import itertools
import json
import json.encoder
import logging
import operator
import os
import secrets
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

from hitl_desktop.core.identity import ANONYMOUS, verified_customer
from hitl_desktop.core.protocol import (
    HOST_MESSAGES,
    IdentityChanged,
    Payload,
    SessionIdentity,
    SessionOpened,
    SessionSummary,
    encode,
    host_type,
)
from hitl_desktop.store.sqlite_files import check_not_emptied, damaged_as_error, make_private

log = logging.getLogger(__name__)

LOG_FILE = "relay.sqlite3"
SEQ_FILE = "relay-seq.sqlite3"
#: seqs reserved ahead per session, durably (one fsync per block, off the common path)
SEQ_BLOCK = 256
# The WAL under sustained writes (issue 18). A checkpoint in a worker thread copies it
# into the database, but cannot *restart* it while the loop keeps appending (SQLite
# starts the WAL over only when a write begins with every frame copied), so alone it
# let the file grow without end (5.7 GB over a 500k-line load). The policy: a thread
# pass every CHECKPOINT_S or as soon as the file holds WAL_SOON_BYTES, racing the
# appends (it copies the bulk); when the file still holds WAL_FINISH_BYTES after one,
# the group commit is *held* (chat lines keep arriving and wait in memory, relayed
# later as always: nothing before it is durable) while a second thread pass copies the
# rest with no writer racing it; the held lines' commit then starts the WAL over and
# ``journal_size_limit`` cuts the file back to WAL_KEEP_BYTES. The loop never copies a
# frame. A hold lasts at most HOLD_MAX_S (then the lines are committed anyway and the
# finish is tried again) or HOLD_MAX_LINES lines; any other write on the log during a
# hold (a co-pilot frame, a new session) commits the held lines first, spoils that try
# (``finish_raced``) and ends the hold at once; after FINISH_TRIES spoiled tries in a
# row with the WAL past half its bound, the loop does the last copy itself as before
# (milliseconds).
WAL_LIMIT_BYTES = 64 * 1024 * 1024  # the bound (tests/integration/test_wal_bound.py)
WAL_FINISH_BYTES = 16 * 1024 * 1024
WAL_SOON_BYTES = 8 * 1024 * 1024
WAL_KEEP_BYTES = 4 * 1024 * 1024
WAL_LOOK_S = 0.25  # how often the loop looks at the WAL's size (one stat)
HOLD_MAX_S = 0.25
HOLD_MAX_LINES = 20_000
GROUP_MAX_LINES = 1_000  # lines one commit takes unforced (the rest: the next tick)
FINISH_TRIES = 8
FINISHES_KEPT = 10_000
#: pages the log's connection caches (KiB when negative): a burst over 1,000 sessions
#: touches a leaf page per session per commit; SQLite's 2 MB default made each insert
#: read its page back from the WAL
CACHE_KIB = 32 * 1024
_INSERT = "INSERT INTO messages(session_id, seq, type, ts, frame) VALUES (?, ?, ?, ?, ?)"
_RESERVE = ("INSERT INTO reserved(session_id, seq) VALUES (?, ?) ON CONFLICT(session_id)"
            " DO UPDATE SET seq = MAX(seq, excluded.seq)")
#: durable types whose record is the frame alone (no session, approval or identity
#: column changes, nothing read back right after): the co-pilot's turn frames, which
#: may be logged through the group commit (:meth:`RelayLog.append_grouped`)
GROUPED_TYPES = frozenset({"draft.started", "draft.completed", "draft.stale", "draft.failed",
                           "turn.ended", "articles", "tool.call", "tool.result"})
_Values = tuple[str, int, str, float, str]
_Entry = tuple["SessionRow | None", int, "str | None", "float | None", int, object, str,
               "_Values | None"]

# messages: appended in arrival order (rowid), the index keeps (session, seq) unique
# and ordered (see RelayLog._migrate_messages for why not clustered by it)
_MESSAGES = """CREATE TABLE IF NOT EXISTS messages (
    session_id TEXT NOT NULL,
    seq        INTEGER NOT NULL,
    type       TEXT NOT NULL,
    ts         REAL NOT NULL,
    frame      TEXT NOT NULL
)"""
_MESSAGES_INDEX = ("CREATE UNIQUE INDEX IF NOT EXISTS messages_by_key"
                   " ON messages(session_id, seq)")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS sessions (
    session_id      TEXT PRIMARY KEY,
    title           TEXT NOT NULL,
    customer_id     TEXT,
    state           TEXT NOT NULL DEFAULT 'open',
    created_at      REAL NOT NULL,
    closed_at       REAL
);
CREATE TABLE IF NOT EXISTS approvals (
    session_id  TEXT NOT NULL,
    approval_id TEXT NOT NULL,
    state       TEXT NOT NULL,
    PRIMARY KEY (session_id, approval_id)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS tokens (
    token_id    TEXT PRIMARY KEY,
    secret_hash TEXT NOT NULL,
    kind        TEXT NOT NULL,
    session_id  TEXT,
    label       TEXT,
    created_at  REAL NOT NULL,
    revoked_at  REAL
);
CREATE INDEX IF NOT EXISTS tokens_by_session ON tokens(session_id);
CREATE INDEX IF NOT EXISTS tokens_by_revoked ON tokens(revoked_at);
CREATE INDEX IF NOT EXISTS tokens_by_kind ON tokens(kind);
""" + f"{_MESSAGES};\n{_MESSAGES_INDEX};\n"

# Who the session's customer is (see core/identity.py); ``sessions.customer_id`` is the
# *verified* customer only. Added to logs written before identity was tracked.
_IDENTITY_COLUMNS = (
    ("id_state", "TEXT"),
    ("id_customer", "TEXT"),
    ("id_name", "TEXT"),
    ("id_method", "TEXT"),
    ("id_by", "TEXT"),
    ("id_at", "REAL"),
)
_SESSION_COLUMNS = ("rowid, session_id, title, customer_id, state, created_at, id_state, "
                    "id_customer, id_name, id_method, id_by, id_at")


class Finish(NamedTuple):
    """One held WAL finish (see RelayLog.run_checkpoints)."""

    at: float  # wall clock when the hold began
    held_ms: float  # how long chat lines' commits waited
    waited: int  # chat lines that waited
    ok: bool  # the WAL was copied with no writer racing (else spoiled or overran)
    wal_before: int  # WAL file bytes when the hold began
    wal_after: int  # ... after the held lines' commit (started over: small)


@dataclass(slots=True)
class SessionRow:
    """What the log knows about one session (the relay keeps these in memory)."""

    session_id: str
    title: str
    customer_id: str | None
    state: str
    created_at: float
    last_seq: int
    last_message: str | None
    last_message_at: float | None
    pending_approvals: int = 0
    messages: int = 0  # chat lines (customer and agent), for the inbox and the host window
    identity: SessionIdentity = ANONYMOUS
    number: int = 0  # the session's rowid: "Visitor #N" in the inbox

    def summary(self, *, customer_name: str | None = None, clients: int = 0,
                customer_online: bool = False) -> SessionSummary:
        verified = verified_customer(self.identity)
        return SessionSummary(
            session_id=self.session_id,
            title=self.title,
            customer_id=verified,
            customer_name=(customer_name or self.identity.customer_name) if verified else None,
            state="closed" if self.state == "closed" else "open",
            created_at=self.created_at,
            last_seq=self.last_seq,
            last_message=self.last_message,
            last_message_at=self.last_message_at,
            pending_approvals=self.pending_approvals,
            clients=clients,
            messages=self.messages,
            identity=self.identity,
            number=self.number,
            customer_online=customer_online,
        )


# ``encode_data("chat.message", ...)`` as a template: the same bytes in a quarter of the time
_CHAT_FRAME = (
    '{"v":1,"type":"chat.message","id":%s,"session":%s,"seq":%d,"ts":%r,"ref":%s,'
    '"data":{"message_id":%s,"author":{"role":%s,"name":%s},"text":%s,"draft_id":%s,'
    '"edited":%s}}'
)
_q: Callable[[str], str] = json.encoder.encode_basestring  # json.dumps(s, ensure_ascii=False)


_JSON_BOOL = {None: "null", True: "true", False: "false"}
_KEY: Callable[[tuple[str, int, str, float, str]], tuple[str, int]] = operator.itemgetter(0, 1)


def _log_late_checkpoint(job: asyncio.Future[None]) -> None:
    """A held checkpoint pass that outran HOLD_MAX_S ends on its own: report a failure."""
    if not job.cancelled() and job.exception() is not None:
        log.error("WAL checkpoint failed: %s", job.exception())


def _qn(value: str | None) -> str:
    return "null" if value is None else _q(value)


_ID_BASE = secrets.token_hex(4)
_ID_COUNTER = itertools.count(1)
_ID_HEADS: dict[str, str] = {}  # prefix -> "prefix_BASE"


def fast_id(prefix: str) -> str:
    """A unique id without a syscall: a random per-process base plus a counter."""
    head = _ID_HEADS.get(prefix)
    if head is None:
        head = _ID_HEADS[prefix] = f"{prefix}_{_ID_BASE}"
    return f"{head}{next(_ID_COUNTER):x}"


def new_session_id() -> str:
    return f"s_{secrets.token_hex(6)}"


def _identity_values(ident: SessionIdentity) -> tuple[Any, ...]:
    return (ident.state, ident.customer_id, ident.customer_name, ident.method, ident.by,
            ident.at)


def _identity_from(values: tuple[Any, ...]) -> SessionIdentity:
    state, customer, name, method, by, at = values
    if state not in ("claimed", "verified") or not customer:
        return ANONYMOUS
    if state == "verified" and method not in ("link", "sign_in", "representative"):
        return ANONYMOUS  # a record we cannot account for is not proof
    return SessionIdentity(state=state, customer_id=customer, customer_name=name,
                           method=method if state == "verified" else None, by=by, at=at)


class RelayLog:
    """Append-only per-session message log plus the sessions and tokens tables."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        check_not_emptied(path, "session log")
        # group commit (see append_chat_grouped): chat lines of one loop tick share a
        # transaction; every other use of the connection commits them first (``db``)
        self._group_open = False
        # (row, its state before: last_seq, last_message, last_message_at, messages; the
        # caller's token, the frame, the INSERT's values) in append order; a deferred
        # entry (:meth:`defer`) has no row and no values: handed back in its place
        self._group: list[_Entry] = []
        # the WAL's last copy is under way in a thread: the group is not committed
        # (see run_checkpoints); ``finish_raced``: something wrote meanwhile
        self._held = False
        self.finish_raced = False
        self._hold_began, self._hold_ms, self._hold_lines = 0.0, 0.0, 0
        # called after each group commit with [(token, frame)] of its lines and the error
        self.on_group_commit: (
            Callable[[list[tuple[object, str]], BaseException | None], None] | None) = None
        # group commits that failed so far (the desk's search index trusts the lines it
        # was handed only while this stays put)
        self.failed_commits = 0
        self._db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        try:
            with damaged_as_error(path, "session log"):
                self.db.execute("PRAGMA journal_mode=WAL")
                self.db.execute("PRAGMA synchronous=NORMAL")
                self.db.execute("PRAGMA busy_timeout=5000")
                self.db.execute(f"PRAGMA journal_size_limit={WAL_KEEP_BYTES}")
                self.db.execute(f"PRAGMA cache_size=-{CACHE_KIB}")
                self._migrate_messages()
                self.db.executescript(_SCHEMA)
                self._migrate()
        except BaseException:
            self.db.close()
            raise
        make_private(path)
        self._open_reservations()
        self._checkpointer: sqlite3.Connection | None = None
        # the latest held finishes, for benchmarks and tests (bounded: a host runs for months)
        self.finishes: collections.deque[Finish] = collections.deque(maxlen=FINISHES_KEPT)
        self._checkpoint_lock = threading.Lock()  # one checkpoint pass, or close()
        self._closed = False

    def _migrate_messages(self) -> None:
        """Rewrite a log whose messages were clustered by (session, seq) (``WITHOUT
        ROWID``, before issue 18): appends now go to the end of the table in arrival
        order, and a small index keeps (session, seq) unique and ordered. Clustered,
        each line of a busy host dirtied a page of its own session (~10 KB of WAL per
        line at 1,000 sessions, 5x this layout; 3x the CPU per insert)."""
        row = self.db.execute(
            "SELECT sql FROM sqlite_master WHERE type = 'table' AND name = 'messages'"
        ).fetchone()
        if row is None or "WITHOUT ROWID" not in str(row[0]).upper():
            return
        started = time.perf_counter()
        with self._tx():
            row = self.db.execute(
                "SELECT sql FROM sqlite_master WHERE type = 'table' AND name = 'messages'"
            ).fetchone()
            if "WITHOUT ROWID" not in str(row[0]).upper():  # another process did it
                return
            self.db.execute("ALTER TABLE messages RENAME TO messages_clustered")
            self.db.execute(_MESSAGES)  # (executescript would commit the transaction)
            self.db.execute(_MESSAGES_INDEX)
            n = self.db.execute(
                "INSERT INTO messages(session_id, seq, type, ts, frame)"
                " SELECT session_id, seq, type, ts, frame FROM messages_clustered"
                " ORDER BY session_id, seq").rowcount
            self.db.execute("DROP TABLE messages_clustered")
        log.warning("session log: %d messages moved to the append-ordered layout in %.1f s",
                    n, time.perf_counter() - started)

    def _migrate(self) -> None:
        """Add the identity columns to an older log. Its sessions become anonymous: they
        were defaulted to a customer without proof, and nothing may rely on that."""
        have = {r[1] for r in self.db.execute("PRAGMA table_info(sessions)")}
        missing = [(n, t) for n, t in _IDENTITY_COLUMNS if n not in have]
        if not missing:
            return
        with self._tx():
            have = {r[1] for r in self.db.execute("PRAGMA table_info(sessions)")}
            for name, type_ in missing:
                if name not in have:  # another process may have migrated meanwhile
                    self.db.execute(f"ALTER TABLE sessions ADD COLUMN {name} {type_}")
            n = self.db.execute(
                "UPDATE sessions SET customer_id = NULL, id_state = 'anonymous'"
                " WHERE id_state IS NULL").rowcount
        if n:
            log.warning("%d sessions from before identity was tracked are now unverified", n)

    # ------------------------------------------------------------------ seq high-water mark

    def _open_reservations(self) -> None:
        """The seq high-water mark, kept apart from the log and fsynced on every commit.

        The log commits without an fsync (``synchronous=NORMAL``), so a power cut can
        take its last commits while clients already hold their seqs. Before a session's
        seq passes its reservation, a block of seqs is reserved here, durably; after an
        unclean stop the host continues *after* the reservation (see
        :meth:`unclean_sessions`), so no seq a client may hold is ever used again."""
        seq_path = self.path.with_name(SEQ_FILE)
        check_not_emptied(seq_path, "seq high-water mark")
        self._seq_db = sqlite3.connect(seq_path, isolation_level=None, check_same_thread=False)
        with damaged_as_error(seq_path, "seq high-water mark"):
            self._seq_db.execute("PRAGMA journal_mode=WAL")
            self._seq_db.execute("PRAGMA synchronous=FULL")
            self._seq_db.execute("PRAGMA busy_timeout=5000")
            self._seq_db.execute(
                "CREATE TABLE IF NOT EXISTS reserved ("
                " session_id TEXT PRIMARY KEY, seq INTEGER NOT NULL) WITHOUT ROWID")
            self._reserved: dict[str, int] = {
                str(r[0]): int(r[1])
                for r in self._seq_db.execute("SELECT session_id, seq FROM reserved")}
        make_private(seq_path)
        self._touched: set[str] = set()  # sessions this process reserved for
        # sessions of the open group past their reservation -> the highest seq they need
        # (reserved together before the group commits: _reserve_due)
        self._due: dict[str, int] = {}
        self.reserve_commits = 0  # durable reservation transactions (tests, benches)

    def _reserve(self, session_id: str, seq: int) -> None:
        if seq <= self._reserved.get(session_id, 0):
            return
        upto = seq + SEQ_BLOCK
        self._seq_db.execute(_RESERVE, (session_id, upto))
        self.reserve_commits += 1
        self._reserved[session_id] = upto
        self._touched.add(session_id)

    def _reserve_due(self) -> None:
        """Reserve for every session of the open group whose seqs passed its
        reservation, in one transaction: one fsync, not one per session (issue 18:
        1,000 sessions chatting in step all pass a block within a few ticks, and their
        fsyncs one by one held the loop for 120 ms a group). Called before the group's
        commit: its lines are relayed (their seqs handed out) only after it."""
        todo = [(sid, seq + SEQ_BLOCK) for sid, seq in self._due.items()
                if seq > self._reserved.get(sid, 0)]
        if not todo:
            self._due.clear()
            return
        db = self._seq_db
        db.execute("BEGIN IMMEDIATE")
        try:
            db.executemany(_RESERVE, todo)
            db.execute("COMMIT")
        except BaseException:
            with contextlib.suppress(Exception):
                db.execute("ROLLBACK")
            raise
        self._due.clear()  # (kept on a failure: lines held past this group still need it)
        self.reserve_commits += 1
        for sid, upto in todo:
            self._reserved[sid] = upto
            self._touched.add(sid)

    def unclean_sessions(self) -> dict[str, tuple[int, int]]:
        """session id -> (last seq in the log, reserved seq) where the reservation runs
        ahead of the log: the last run did not stop cleanly, and the log may have lost
        seqs a client holds. (A clean stop sets reservations back to the log's end.)"""
        rows = self.db.execute(
            "SELECT session_id, MAX(seq) FROM messages GROUP BY session_id").fetchall()
        last = {str(r[0]): int(r[1]) for r in rows}
        return {sid: (last.get(sid, 0), upto) for sid, upto in self._reserved.items()
                if upto > last.get(sid, 0) and sid in last}

    def _release_reservations(self) -> None:
        """Clean stop: this process's reservations back to the log's real end."""
        for sid in self._touched:
            (last,) = self.db.execute(
                "SELECT COALESCE(MAX(seq), 0) FROM messages WHERE session_id = ?", (sid,)
            ).fetchone()
            self._seq_db.execute("UPDATE reserved SET seq = ? WHERE session_id = ?",
                                 (int(last), sid))

    @property
    def db(self) -> sqlite3.Connection:
        """The connection. Any use but the grouped chat append first commits the open
        group (and relays it, through ``on_group_commit``): whatever is read or written
        next comes after those lines, durable, in seq order."""
        if self._group_open:
            self.commit_group(force=True)
        return self._db

    def append_chat_grouped(
        self, row: SessionRow, token: object, *, message_id: str, role: str, name: str,
        text: str, draft_id: str | None, ref: str | None, edited: bool | None = None,
    ) -> tuple[int, str, bool]:
        """:meth:`append_chat` into the open group (begun if none is): (seq, frame, True
        when this line began the group — the caller then arranges :meth:`commit_group`
        for the end of the loop tick). Nothing may be relayed until ``on_group_commit``
        gets ``token`` back with no error: the line is durable then. ``row`` moves ahead
        now (the next line's seq) and back if the commit fails. The row is written at the
        commit, with the group's others in one ``executemany`` in key order (the B-tree
        walked once, not once per line between a tick's socket work)."""
        began = not self._group_open
        self._group_open = True
        before = (row.last_seq, row.last_message, row.last_message_at, row.messages)
        seq, frame, values = self._chat_row(
            row, message_id=message_id, role=role, name=name, text=text,
            draft_id=draft_id, ref=ref, edited=edited)
        if seq > self._reserved.get(row.session_id, 0):
            self._due[row.session_id] = seq  # (seqs only grow: the latest is the highest)
        self._group.append((row, *before, token, frame, values))
        if self._held and len(self._group) >= HOLD_MAX_LINES:
            self.commit_group(force=True)  # a hold stays bounded in memory
        return seq, frame, began

    def append_grouped(
        self, row: SessionRow, payload: Payload, token: object, *, ref: str | None = None,
        type_: str | None = None,
    ) -> tuple[int, str, bool]:
        """:meth:`append` into the open group, for the types whose record is the frame
        alone (:data:`GROUPED_TYPES`: the co-pilot's turn frames): (seq, frame, True when
        this began the group). As for a chat line: nothing may be relayed until
        ``on_group_commit`` hands ``token`` back with no error; ``row.last_seq`` moves
        ahead now and back if the commit fails (issue 18: each of these was an autocommit
        INSERT on the loop that also cut the open chat group short)."""
        t = type_ or host_type(payload)
        if t not in GROUPED_TYPES:
            raise ValueError(f"{t} is not logged through the group commit")
        began = not self._group_open
        self._group_open = True
        seq = row.last_seq + 1
        if seq > self._reserved.get(row.session_id, 0):
            self._due[row.session_id] = seq  # (seqs only grow: the latest is the highest)
        now = time.time()
        frame = encode(t, payload, session=row.session_id, seq=seq, ts=now, ref=ref,
                       msg_id=fast_id("m"))
        self._group.append((row, row.last_seq, row.last_message, row.last_message_at,
                            row.messages, token, frame, (row.session_id, seq, t, now, frame)))
        row.last_seq = seq
        if self._held and len(self._group) >= HOLD_MAX_LINES:
            self.commit_group(force=True)
        return seq, frame, began

    def defer(self, token: object, frame: str) -> None:
        """Hand ``token`` (and ``frame``, which is not logged) back through
        ``on_group_commit`` after the open group's entries before it, in order: an
        ephemeral frame of a session whose durable frames wait for the commit is relayed
        after them, not before. The group must be open."""
        if not self._group_open:
            raise RuntimeError("no open group to defer behind")
        self._group.append((None, 0, None, None, 0, token, frame, None))

    @property
    def group_open(self) -> bool:
        """Entries wait for the group commit (appended, not yet handed back)."""
        return self._group_open

    def commit_group(self, *, force: bool = False) -> BaseException | None:
        """Commit the open group (one transaction for every chat line since it began),
        then hand the lines' tokens to ``on_group_commit`` (with the error, and the rows
        moved back, when the commit failed: nothing of the group may be relayed). While
        the WAL's last copy is held (:meth:`hold`) only ``force`` commits (any other use
        of the log: it must come after these lines). Returns the commit's error, if any."""
        if not self._group_open:
            return None
        if self._held:
            if not force:
                return None
            # this finish is lost (a write races the thread): stop holding now, so no
            # line waits for a hold that can no longer restart the WAL
            self.finish_raced = True
            self._end_hold()
        if not force and len(self._group) > GROUP_MAX_LINES:
            # (lines held through a finish) a bounded commit per loop tick, in order
            group, self._group = self._group[:GROUP_MAX_LINES], self._group[GROUP_MAX_LINES:]
            asyncio.get_running_loop().call_soon(self.commit_group)
        else:
            group, self._group = self._group, []
            self._group_open = False
        error: BaseException | None = None
        rows = [g[7] for g in group if g[7] is not None]
        try:
            if self._due:  # seqs past their reservation: reserved (durably) first
                self._reserve_due()
            if rows:
                self._db.execute("BEGIN")
                try:
                    rows.sort(key=_KEY)
                    self._db.executemany(_INSERT, rows)
                except BaseException:
                    self._db.execute("ROLLBACK")
                    raise
                self._db.execute("COMMIT")
        except Exception as exc:
            error = exc
            self.failed_commits += 1
            log.error("group commit of %d frames failed: %s", len(rows), exc)
            with contextlib.suppress(Exception):
                self._db.execute("ROLLBACK")
            for row, last_seq, last_message, last_at, messages, _t, _f, _v in reversed(group):
                if row is not None:
                    row.last_seq, row.last_message, row.last_message_at = (
                        last_seq, last_message, last_at)
                    row.messages = messages
        if self.on_group_commit is not None:
            self.on_group_commit([(g[5], g[6]) for g in group], error)
        return error

    def defer_checkpoints(self) -> None:
        """Stop checkpointing inside commits (a checkpoint fsyncs: milliseconds on the hot
        path); the owner then calls :meth:`checkpoint` from a worker thread instead."""
        self.db.execute("PRAGMA wal_autocheckpoint=0")

    def checkpoint(self, passes: int = 6) -> None:
        """Copy the WAL into the database (PASSIVE: never blocks the writer). Uses its own
        connection, opened once (so a host at its open-file limit still checkpoints);
        callers run one checkpoint at a time, from any thread. While a pass takes long
        (appends kept coming), another takes what they added, so what is left for
        :meth:`finish_checkpoint` is a few milliseconds' worth."""
        with self._checkpoint_lock:  # close() waits for a pass in flight
            if self._closed:
                return
            db = self._checkpointer
            if db is None:
                db = self._checkpointer = sqlite3.connect(self.path, isolation_level=None,
                                                          check_same_thread=False)
                db.execute("PRAGMA busy_timeout=1000")
            for _ in range(passes):
                started = time.perf_counter()
                busy, _frames, _copied = db.execute(
                    "PRAGMA wal_checkpoint(PASSIVE)").fetchone()
                if busy or time.perf_counter() - started < 0.005:
                    return

    def finish_checkpoint(self) -> None:
        """On the loop, between two appends: copy the frames appended while a worker
        thread checkpointed (so there is no writer to race), which lets the next append
        start the WAL over. Costs the copy of those frames and the checkpoint's fsyncs:
        the fallback when held finishes keep being spoiled (see run_checkpoints)."""
        self.db.execute("PRAGMA wal_checkpoint(PASSIVE)")

    def hold(self) -> None:
        """Hold the group commit: chat lines wait in memory (not relayed: not durable),
        so a worker thread's checkpoint has no writer to race. :meth:`release` commits
        them; any other use of the log commits them at once (``finish_raced``)."""
        self._held = True
        self.finish_raced = False
        self._hold_began = time.perf_counter()

    def _end_hold(self) -> None:
        if self._held:
            self._held = False
            self._hold_ms = (time.perf_counter() - self._hold_began) * 1000
            self._hold_lines = len(self._group)

    @property
    def held(self) -> bool:
        """A finish holds the group commit: chat lines handed out are not in the log yet
        (for up to HOLD_MAX_S; e.g. the desk's search index reads lines back)."""
        return self._held

    def release(self) -> None:
        """End a hold: commit (and relay) what waited. That commit is the first write
        after a complete checkpoint: SQLite starts the WAL over."""
        self._end_hold()
        self.commit_group()

    def wal_bytes(self) -> int:
        """The WAL file's size (0 when there is none)."""
        try:
            return os.stat(f"{self.path}-wal").st_size
        except OSError:
            return 0

    async def run_checkpoints(self, interval: float) -> None:
        """The relay's checkpoint task (until cancelled): keeps the WAL under
        :data:`WAL_LIMIT_BYTES` whatever the write load, every copy in a worker thread
        (see WAL_FINISH_BYTES); ``finishes`` records each held finish (ms held, lines
        that waited, spoiled or not) for the benchmarks and tests."""
        loop = asyncio.get_running_loop()
        last, seen, spoiled = loop.time(), 0, 0
        while True:
            await asyncio.sleep(min(interval, WAL_LOOK_S))
            size = self.wal_bytes()
            growing = size >= WAL_SOON_BYTES and size != seen  # (a restarted WAL is reused)
            if not growing and loop.time() - last < interval:
                continue
            last = loop.time()
            try:
                # the bulk, racing the appends ("complete" as of its start only); should
                # the thread lag (a starved machine) and the WAL reach half its bound
                # meanwhile, the hold starts at once: a held WAL does not grow
                bulk = asyncio.ensure_future(asyncio.to_thread(self.checkpoint, passes=2))
                while not bulk.done():
                    await asyncio.wait({bulk}, timeout=WAL_LOOK_S)
                    if not bulk.done() and self.wal_bytes() >= WAL_LIMIT_BYTES // 2:
                        break
                if bulk.done():
                    bulk.result()
                    seen = self.wal_bytes()
                    if seen < WAL_FINISH_BYTES:  # restarted meanwhile (or small): done
                        spoiled = 0
                        continue
                if spoiled >= FINISH_TRIES and self.wal_bytes() >= WAL_LIMIT_BYTES // 2:
                    await bulk
                    started = time.perf_counter()
                    self.finish_checkpoint()  # the fallback: see WAL_FINISH_BYTES
                    spoiled = 0
                    log.warning("WAL checkpoint finished on the loop in %.1f ms (%d held "
                                "finishes spoiled by other writes)",
                                (time.perf_counter() - started) * 1000, FINISH_TRIES)
                    continue
                if await self._held_finish(bulk):
                    spoiled = 0
                else:
                    spoiled += 1
                    last = 0.0  # try again at the next look
                seen = self.wal_bytes()
            except Exception:
                log.exception("WAL checkpoint failed (will retry)")

    async def _held_finish(self, bulk: asyncio.Future[None]) -> bool:
        """Hold the group commit, let ``bulk`` (a thread pass) end, copy the WAL's rest
        in a thread with no writer racing it, release; True unless another write spoiled
        it or it overran HOLD_MAX_S (the held lines are committed then all the same)."""
        at = time.time()
        deadline = asyncio.get_running_loop().time() + HOLD_MAX_S
        wal_before = self.wal_bytes()
        self.hold()
        try:
            if not bulk.done():
                await asyncio.wait({bulk}, timeout=HOLD_MAX_S)
            job = bulk
            if bulk.done():  # the bulk pass is over: one more, with no writer racing it
                bulk.result()
                job = asyncio.ensure_future(asyncio.to_thread(self.checkpoint, passes=1))
            left = deadline - asyncio.get_running_loop().time()
            if not job.done() and left > 0:
                await asyncio.wait({job}, timeout=left)
            if job.done():
                job.result()
            else:  # the thread ends its pass on its own; appends go on meanwhile
                job.add_done_callback(_log_late_checkpoint)
                self.finish_raced = True
        finally:
            self.release()
        held_ms, waited = self._hold_ms, self._hold_lines
        ok = not self.finish_raced
        self.finishes.append(Finish(at, held_ms, waited, ok, wal_before, self.wal_bytes()))
        log.info("WAL checkpoint finished in a thread: appends held %.1f ms (%d lines "
                 "waited)%s", held_ms, waited, "" if ok else "; spoiled or overran")
        return ok

    @classmethod
    def open_in(cls, data_dir: Path) -> RelayLog:
        return cls(data_dir / LOG_FILE)

    def close(self) -> None:
        # a checkpoint may still run in a worker thread (its task was cancelled, the
        # thread was not): closing a connection another thread uses crashes CPython
        with self._checkpoint_lock:
            self._closed = True
            if self._checkpointer is not None:
                self._checkpointer.close()
                self._checkpointer = None
        try:
            self._release_reservations()
        finally:
            self._seq_db.close()
            self.db.close()

    def data_version(self) -> int:
        """Changes whenever *another* connection commits (used to notice CLI-made sessions).
        Reads nothing of the log: a held group (see :meth:`hold`) stays held."""
        row = self._db.execute("PRAGMA data_version").fetchone()
        return int(row[0])

    # ------------------------------------------------------------------ sessions

    def create_session(
        self,
        *,
        title: str | None = None,
        identity: SessionIdentity = ANONYMOUS,
        greeting: str | None = None,
        session_id: str | None = None,
    ) -> tuple[SessionRow, str]:
        """Create a session and its durable seq 1 (``session.opened``); returns the row
        and the encoded opening frame. ``identity`` is who the customer is from the start
        (a link issued for one customer is verified); no session defaults to a customer."""
        sid = session_id or new_session_id()
        now = time.time()
        row = SessionRow(
            session_id=sid,
            title=title or f"Chat {time.strftime('%Y-%m-%d %H:%M', time.localtime(now))}",
            customer_id=verified_customer(identity),
            state="open",
            created_at=now,
            last_seq=1,
            last_message=None,
            last_message_at=None,
            identity=identity,
        )
        self._reserve(sid, 1)
        with self._tx():
            cur = self.db.execute(
                "INSERT INTO sessions(session_id, title, customer_id, state, created_at,"
                " id_state, id_customer, id_name, id_method, id_by, id_at)"
                " VALUES (?, ?, ?, 'open', ?, ?, ?, ?, ?, ?, ?)",
                (sid, row.title, row.customer_id, now, *_identity_values(identity)),
            )
            row.number = int(cur.lastrowid or 0)
            frame = encode(
                "session.opened",
                SessionOpened(summary=row.summary(), greeting=greeting),
                session=sid,
                seq=1,
                ts=now,
            )
            self.db.execute(
                "INSERT INTO messages(session_id, seq, type, ts, frame) VALUES (?, 1, ?, ?, ?)",
                (sid, "session.opened", now, frame),
            )
        return row, frame

    def load_sessions(self, *, since_rowid: int = 0) -> list[tuple[int, SessionRow]]:
        rows = self.db.execute(
            f"SELECT {_SESSION_COLUMNS} FROM sessions WHERE rowid > ? ORDER BY rowid",
            (since_rowid,),
        ).fetchall()
        return [(r[0], self._complete(r)) for r in rows]

    def get_session(self, session_id: str) -> SessionRow | None:
        r = self.db.execute(
            f"SELECT {_SESSION_COLUMNS} FROM sessions WHERE session_id = ?",
            (session_id,),
        ).fetchone()
        return None if r is None else self._complete(r)

    def _complete(self, r: tuple[Any, ...]) -> SessionRow:
        """A session row with what is derived from its messages (last seq, last chat line,
        pending approvals): the hot path then writes one row per message, nothing else."""
        rowid, r, ident = r[0], r[1:6], r[6:]
        sid = r[0]
        (last_seq,) = self.db.execute(
            "SELECT COALESCE(MAX(seq), 0) FROM messages WHERE session_id = ?", (sid,)
        ).fetchone()
        last = self.db.execute(
            "SELECT frame, ts FROM messages WHERE session_id = ? AND type = 'chat.message'"
            " ORDER BY seq DESC LIMIT 1",
            (sid,),
        ).fetchone()
        (pending,) = self.db.execute(
            "SELECT COUNT(*) FROM approvals WHERE session_id = ? AND state = 'pending'", (sid,)
        ).fetchone()
        (messages,) = self.db.execute(
            "SELECT COUNT(*) FROM messages WHERE session_id = ? AND type = 'chat.message'",
            (sid,),
        ).fetchone()
        text = str(json.loads(last[0])["data"]["text"])[:200] if last else None
        return SessionRow(
            session_id=sid, title=r[1], customer_id=r[2], state=r[3], created_at=r[4],
            last_seq=int(last_seq), last_message=text, last_message_at=last[1] if last else None,
            pending_approvals=int(pending), messages=int(messages),
            identity=_identity_from(ident), number=int(rowid),
        )

    # ------------------------------------------------------------------ messages

    def append_chat(
        self, row: SessionRow, *, message_id: str, role: str, name: str, text: str,
        draft_id: str | None, ref: str | None, edited: bool | None = None,
    ) -> tuple[int, str]:
        """The hot path for ``chat.message``: the frame is filled into a template (byte for
        byte what ``encode("chat.message", ChatMessage(...))`` gives, see tests) and
        written with one INSERT."""
        if self._group_open:
            self.commit_group(force=True)
        return self._insert_chat(self._db, row, message_id=message_id, role=role, name=name,
                                 text=text, draft_id=draft_id, ref=ref, edited=edited)

    def _insert_chat(
        self, db: sqlite3.Connection, row: SessionRow, *, message_id: str, role: str,
        name: str, text: str, draft_id: str | None, ref: str | None, edited: bool | None,
    ) -> tuple[int, str]:
        before = (row.last_seq, row.last_message, row.last_message_at, row.messages)
        if row.last_seq + 1 > self._reserved.get(row.session_id, 0):
            self._reserve(row.session_id, row.last_seq + 1)
        seq, frame, values = self._chat_row(row, message_id=message_id, role=role, name=name,
                                            text=text, draft_id=draft_id, ref=ref,
                                            edited=edited)
        try:
            db.execute(_INSERT, values)
        except BaseException:
            row.last_seq, row.last_message, row.last_message_at, row.messages = before
            raise
        return seq, frame

    def _chat_row(
        self, row: SessionRow, *, message_id: str, role: str, name: str, text: str,
        draft_id: str | None, ref: str | None, edited: bool | None,
    ) -> tuple[int, str, tuple[str, int, str, float, str]]:
        """The next chat line of ``row``: (seq, frame, the INSERT's values); ``row`` moves
        ahead (the caller moves it back if the write fails). The seq may be past the
        session's reservation: the caller reserves (at once, or before the group
        commits)."""
        seq = row.last_seq + 1
        now = time.time()
        frame = _CHAT_FRAME % (
            _q(fast_id("m")), _q(row.session_id), seq, now, _qn(ref), _q(message_id), _q(role),
            _q(name), _q(text), _qn(draft_id), _JSON_BOOL[edited],
        )
        row.last_seq = seq
        row.last_message, row.last_message_at = text[:200], now
        row.messages += 1
        return seq, frame, (row.session_id, seq, "chat.message", now, frame)

    def append(
        self, row: SessionRow, payload: Payload, *, ref: str | None = None, type_: str | None = None
    ) -> tuple[int, str]:
        """Log one durable message of ``row``'s session; returns (seq, frame).

        Updates ``row`` in place (last_seq, last message, pending approvals) only
        after the commit succeeded, so memory never runs ahead of the disk.
        """
        t = type_ or host_type(payload)
        if not HOST_MESSAGES[t].durable:
            raise ValueError(f"{t} is not a durable message type")
        if self._group_open:  # the open group's lines come first (and set last_seq)
            self.commit_group(force=True)
        seq = row.last_seq + 1
        self._reserve(row.session_id, seq)
        now = time.time()
        frame = encode(t, payload, session=row.session_id, seq=seq, ts=now, ref=ref,
                       msg_id=fast_id("m"))
        last_message, last_at, state = row.last_message, row.last_message_at, row.state
        pending_now = row.pending_approvals
        data: Any = payload
        insert = (
            "INSERT INTO messages(session_id, seq, type, ts, frame) VALUES (?, ?, ?, ?, ?)",
            (row.session_id, seq, t, now, frame),
        )
        if t == "chat.message":  # the hot path: one statement, one (WAL, no fsync) commit
            self.db.execute(*insert)
            last_message, last_at = data.text[:200], now
            row.messages += 1
        elif t not in ("session.closed", "session.reopened", "approval.created",
                       "approval.updated", "identity.changed"):
            self.db.execute(*insert)
        else:
            with self._tx():
                self.db.execute(*insert)
                if t == "identity.changed":
                    ident: SessionIdentity = data.identity
                    self.db.execute(
                        "UPDATE sessions SET customer_id = ?, id_state = ?, id_customer = ?,"
                        " id_name = ?, id_method = ?, id_by = ?, id_at = ?"
                        " WHERE session_id = ?",
                        (verified_customer(ident), *_identity_values(ident), row.session_id),
                    )
                elif t == "session.closed":
                    state = "closed"
                    self.db.execute(
                        "UPDATE sessions SET state = 'closed', closed_at = ? WHERE session_id = ?",
                        (now, row.session_id),
                    )
                elif t == "session.reopened":
                    state = "open"
                    self.db.execute(
                        "UPDATE sessions SET state = 'open', closed_at = NULL"
                        " WHERE session_id = ?", (row.session_id,),
                    )
                else:
                    self.db.execute(
                        "INSERT OR REPLACE INTO approvals(session_id, approval_id, state)"
                        " VALUES (?, ?, ?)",
                        (row.session_id, data.approval_id,
                         "pending" if t == "approval.created" else data.state),
                    )
                    (pending,) = self.db.execute(
                        "SELECT COUNT(*) FROM approvals WHERE session_id = ? AND state = 'pending'",
                        (row.session_id,),
                    ).fetchone()
                    pending_now = int(pending)
        row.last_seq = seq
        row.pending_approvals = pending_now
        row.last_message, row.last_message_at, row.state = last_message, last_at, state
        if isinstance(payload, IdentityChanged):
            row.identity = payload.identity
            row.customer_id = verified_customer(payload.identity)
        return seq, frame

    def frames_after(self, session_id: str, after_seq: int) -> list[str]:
        """The durable frames with seq > ``after_seq``, in order (what resume replays)."""
        return [
            r[0]
            for r in self.db.execute(
                "SELECT frame FROM messages WHERE session_id = ? AND seq > ? ORDER BY seq",
                (session_id, after_seq),
            )
        ]

    def page_after(self, session_id: str, after_seq: int, max_frames: int,
                   max_chars: int) -> list[tuple[int, str, str]]:
        """(seq, type, frame) with seq > ``after_seq``, in order: at most ``max_frames``,
        stopping after the frame that reaches ``max_chars`` (replays read page by page)."""
        out: list[tuple[int, str, str]] = []
        total = 0
        cur = self.db.execute(
            "SELECT seq, type, frame FROM messages WHERE session_id = ? AND seq > ?"
            " ORDER BY seq LIMIT ?",
            (session_id, after_seq, max_frames),
        )
        for seq, type_, frame in cur:
            out.append((int(seq), str(type_), str(frame)))
            total += len(frame)
            if total >= max_chars:
                break
        cur.close()
        return out

    def page_before(self, session_id: str, before_seq: int, max_frames: int,
                    max_chars: int) -> tuple[list[tuple[int, str, str]], bool]:
        """(seq, type, frame) with seq < ``before_seq``, newest first: at most
        ``max_frames`` and ``max_chars`` (at least one frame), and whether older ones
        remain (``session.history`` pages; issue 18). One indexed range scan."""
        out: list[tuple[int, str, str]] = []
        total = 0
        more = False
        cur = self.db.execute(
            "SELECT seq, type, frame FROM messages WHERE session_id = ? AND seq < ?"
            " ORDER BY seq DESC LIMIT ?",
            (session_id, before_seq, max_frames + 1),
        )
        for seq, type_, frame in cur:
            if len(out) >= max_frames or (out and total + len(frame) > max_chars):
                more = True
                break
            out.append((int(seq), str(type_), str(frame)))
            total += len(frame)
        cur.close()
        return out, more

    def typed_frames_after(self, session_id: str, after_seq: int) -> list[tuple[str, str]]:
        """(type, frame) pairs with seq > ``after_seq``, in order (resume filters on type)."""
        return [
            (r[0], r[1])
            for r in self.db.execute(
                "SELECT type, frame FROM messages WHERE session_id = ? AND seq > ? ORDER BY seq",
                (session_id, after_seq),
            )
        ]

    def approval_states(self) -> dict[str, tuple[str, str]]:
        """approval id -> (session id, state) as the agents were told (the last
        ``approval.created``/``approval.updated`` logged for it)."""
        return {
            str(r[1]): (str(r[0]), str(r[2]))
            for r in self.db.execute("SELECT session_id, approval_id, state FROM approvals")
        }

    def messages(self, session_id: str) -> list[dict[str, Any]]:
        """Every durable message of a session as decoded envelopes (tests, tools)."""
        return [json.loads(f) for f in self.frames_after(session_id, 0)]

    # ------------------------------------------------------------------ helpers

    class _Tx:
        def __init__(self, db: sqlite3.Connection) -> None:
            self.db = db

        def __enter__(self) -> None:
            self.db.execute("BEGIN IMMEDIATE")

        def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
            self.db.execute("ROLLBACK" if exc_type else "COMMIT")

    def _tx(self) -> RelayLog._Tx:
        return RelayLog._Tx(self.db)

    def iter_session_ids(self) -> Iterator[str]:
        for (sid,) in self.db.execute("SELECT session_id FROM sessions ORDER BY rowid"):
            yield sid
