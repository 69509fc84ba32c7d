"""What the model sees of each session, and what became of each draft.

The relay's durable log is the *customers' and agents'* record; this store is
the *model's*: per session, the typed turn history (:mod:`hitl_desktop.core.turns`:
customer lines, the replies agents actually sent with their drafts, tool calls
with their outputs, approval outcomes with who and why, identity changes,
model output items kept for the next request). Drafts the agents never sent
stay out of it, so the model sees exactly what the customer saw. Rows written
before the typed history (plain Responses items) are read through
:func:`~hitl_desktop.core.turns.from_responses_item`.
It also keeps every draft next to the text the agent finally sent (draft vs
sent), and survives a host restart (SQLite, WAL, in the data dir).
"""

from __future__ import annotations

import collections
import json
import logging
import sqlite3
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from pydantic import ValidationError

from hitl_desktop.core.threads import StoreLock, StoreWorker
from hitl_desktop.core.turns import (
    SentReply,
    ToolCallItem,
    ToolOutputItem,
    TurnItem,
    dump_item,
    from_responses_item,
    load_item,
)
from hitl_desktop.store.sqlite_files import check_not_emptied, damaged_as_error, make_private

log = logging.getLogger(__name__)

DraftState = Literal["drafting", "completed", "failed", "stale", "discarded", "sent", "interrupted"]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS items (
    session_id TEXT NOT NULL,
    idx        INTEGER NOT NULL,
    item       TEXT NOT NULL,
    created_at REAL NOT NULL,
    PRIMARY KEY (session_id, idx)
);
CREATE TABLE IF NOT EXISTS drafts (
    turn_id     TEXT PRIMARY KEY,
    session_id  TEXT NOT NULL,
    reason      TEXT NOT NULL,
    state       TEXT NOT NULL,
    text        TEXT NOT NULL DEFAULT '',
    citations   TEXT NOT NULL DEFAULT '[]',
    error       TEXT,
    created_at  REAL NOT NULL,
    finished_at REAL
);
CREATE INDEX IF NOT EXISTS drafts_by_session ON drafts (session_id, created_at);
CREATE TABLE IF NOT EXISTS sent (
    message_id TEXT PRIMARY KEY,
    session_id TEXT NOT NULL,
    draft_id   TEXT,
    agent      TEXT NOT NULL,
    draft_text TEXT,
    sent_text  TEXT NOT NULL,
    edited     INTEGER,
    sent_at    REAL NOT NULL
);
"""


def _parse_row(raw: str) -> TurnItem | None:
    """A stored row: a typed item, or a plain Responses item from before the typed store."""
    try:
        data = json.loads(raw)
    except ValueError:
        log.warning("skipping an unreadable conversation row")
        return None
    if isinstance(data, dict) and "kind" in data:
        try:
            return load_item(data)
        except ValidationError:
            log.warning("skipping a conversation row of unknown shape")
            return None
    return from_responses_item(data) if isinstance(data, dict) else None


@dataclass(frozen=True, slots=True)
class DraftRecord:
    turn_id: str
    session_id: str
    reason: str
    state: str
    text: str
    citations: list[dict[str, Any]]
    error: str | None


_SELECT_DRAFTS = "SELECT turn_id, session_id, reason, state, text, citations, error FROM drafts"


def _draft_of(row: tuple[Any, ...], state: str | None = None) -> DraftRecord:
    """A row of ``_SELECT_DRAFTS`` as a record (``state`` overrides the stored one)."""
    turn_id, session_id, reason, stored, text, citations, error = row
    return DraftRecord(turn_id, session_id, reason, state or stored, text, json.loads(citations),
                       error)


@dataclass(frozen=True, slots=True)
class SentRecord:
    message_id: str
    session_id: str
    draft_id: str | None
    agent: str
    draft_text: str | None
    sent_text: str
    edited: bool | None


@dataclass(frozen=True, slots=True)
class _Sent:
    record: SentRecord
    turn_id: str | None  # the draft it came from (this session's), marked sent with it


class ConversationStore:
    """The model-facing history and draft records; writes are tiny and synchronous.

    Items are cached in memory per session (the turn loop reads the whole
    history for every model request), written through to SQLite.
    """

    def __init__(self, path: Path, *, max_cache_chars: int = 32 * 1024 * 1024) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        check_not_emptied(path, "conversation store")
        self._db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        try:
            with damaged_as_error(path, "conversation store"):
                self._db.execute("PRAGMA journal_mode=WAL")
                self._db.execute("PRAGMA synchronous=NORMAL")
                self._db.executescript(_SCHEMA)
        except BaseException:
            self._db.close()
            raise
        make_private(path)
        self._lock = StoreLock("the conversation store")
        self.worker = StoreWorker("conversations")  # the loop calls us only through it
        # most recently used sessions' histories, bounded in (stored JSON) bytes: a host
        # that has seen many long conversations must not keep them all in memory
        self._cache: collections.OrderedDict[str, list[TurnItem]] = collections.OrderedDict()
        self._rows: dict[str, int] = {}  # stored rows per session (a legacy row may be skipped)
        self._sizes: dict[str, int] = {}  # cached characters per session
        self._cached_chars = 0
        self.max_cache_chars = max_cache_chars

    # ------------------------------------------------------------------ items

    def items(self, session_id: str) -> list[TurnItem]:
        """A copy of the session's typed history, oldest first."""
        return list(self._load(session_id))

    def _load(self, session_id: str) -> list[TurnItem]:
        cached = self._cache.get(session_id)
        if cached is not None:
            self._cache.move_to_end(session_id)
        else:
            with self._lock:
                rows = self._db.execute(
                    "SELECT item FROM items WHERE session_id = ? ORDER BY idx", (session_id,)
                ).fetchall()
            cached = []
            names: dict[str, str] = {}  # call id -> tool (legacy outputs have no name)
            for (raw,) in rows:
                item = _parse_row(raw)
                if isinstance(item, ToolCallItem):
                    names[item.call_id] = item.name
                elif isinstance(item, ToolOutputItem) and not item.name:
                    item = item.model_copy(update={"name": names.get(item.call_id, "")})
                if item is not None:
                    cached.append(item)
            self._cache[session_id] = cached
            self._rows[session_id] = len(rows)
            self._account(session_id, sum(len(r[0]) for r in rows))
        return cached

    def _account(self, session_id: str, chars: int) -> None:
        """Add ``chars`` to the session's cached size; evict least recently used
        sessions (never this one) while the cache is over its bound."""
        self._sizes[session_id] = self._sizes.get(session_id, 0) + chars
        self._cached_chars += chars
        while self._cached_chars > self.max_cache_chars and len(self._cache) > 1:
            oldest = next(iter(self._cache))
            if oldest == session_id:
                self._cache.move_to_end(oldest)
                continue
            del self._cache[oldest]
            self._rows.pop(oldest, None)
            self._cached_chars -= self._sizes.pop(oldest, 0)

    def append(self, session_id: str, *items: TurnItem) -> None:
        """Append items atomically (a function call and its output land together)."""
        if items:
            self._write(session_id, items, None)

    def start_turn(self, session_id: str, turn_id: str, reason: str, *items: TurnItem) -> None:
        """Append items and record the turn's draft as started, in one transaction (the
        co-pilot starts every turn so: one commit, not two)."""
        self._write(session_id, items, (turn_id, reason))

    def _write(self, session_id: str, items: tuple[TurnItem, ...],
               draft: tuple[str, str] | None, sent: _Sent | None = None) -> None:
        current = self._load(session_id)
        start = self._rows.get(session_id, 0)
        now = time.time()
        rows = [(session_id, start + i, dump_item(item), now) for i, item in enumerate(items)]
        size = sum(len(r[2]) for r in rows)
        with self._lock, self._db:
            self._db.execute("BEGIN")
            if rows:
                self._db.executemany(
                    "INSERT INTO items (session_id, idx, item, created_at) VALUES (?, ?, ?, ?)",
                    rows,
                )
            if draft is not None:
                self._db.execute(
                    "INSERT INTO drafts (turn_id, session_id, reason, state, created_at)"
                    " VALUES (?, ?, ?, 'drafting', ?)",
                    (draft[0], session_id, draft[1], now),
                )
            if sent is not None:
                self._insert_sent(sent, now)
        current.extend(items)
        self._rows[session_id] = start + len(items)
        self._account(session_id, size)

    # ----------------------------------------------------------------- drafts

    def draft_started(self, turn_id: str, session_id: str, reason: str) -> None:
        with self._lock:
            self._db.execute(
                "INSERT INTO drafts (turn_id, session_id, reason, state, created_at)"
                " VALUES (?, ?, ?, 'drafting', ?)",
                (turn_id, session_id, reason, time.time()),
            )

    def draft_finished(
        self,
        turn_id: str,
        state: DraftState,
        *,
        text: str | None = None,
        citations: list[dict[str, Any]] | None = None,
        error: str | None = None,
    ) -> None:
        with self._lock:
            self._db.execute(
                "UPDATE drafts SET state = ?, text = COALESCE(?, text),"
                " citations = COALESCE(?, citations), error = COALESCE(?, error),"
                " finished_at = ? WHERE turn_id = ?",
                (
                    state,
                    text,
                    None if citations is None else json.dumps(citations),
                    error,
                    time.time(),
                    turn_id,
                ),
            )

    def draft(self, turn_id: str) -> DraftRecord | None:
        with self._lock:
            row = self._db.execute(_SELECT_DRAFTS + " WHERE turn_id = ?", (turn_id,)).fetchone()
        return None if row is None else _draft_of(row)

    def interrupted_drafts(self) -> list[DraftRecord]:
        """Drafts a previous host process left half-written; marks them interrupted."""
        with self._lock:
            rows = self._db.execute(_SELECT_DRAFTS + " WHERE state = 'drafting'").fetchall()
            self._db.execute(
                "UPDATE drafts SET state = 'interrupted', finished_at = ? WHERE state = 'drafting'",
                (time.time(),),
            )
        return [_draft_of(r, state="interrupted") for r in rows]

    # ------------------------------------------------------------------- sent

    def record_sent(
        self, session_id: str, message_id: str, text: str, draft_id: str | None, agent: str
    ) -> SentRecord:
        """Store what the agent sent next to the draft it came from (if any)."""
        sent = self._sent_of(session_id, message_id, text, draft_id, agent)
        with self._lock, self._db:
            self._db.execute("BEGIN")
            self._insert_sent(sent, time.time())
        return sent.record

    def record_reply(
        self, session_id: str, message_id: str, text: str, draft_id: str | None, agent: str
    ) -> tuple[SentRecord, SentReply]:
        """What the agent sent, next to its draft (:meth:`record_sent`), and the reply in
        the session's history (what the model sees next), in one transaction: one commit
        and one trip to the store's thread for each reply an agent sends, where there were
        three commits and two trips (issue 18: every line of a chatting desk has one)."""
        sent = self._sent_of(session_id, message_id, text, draft_id, agent)
        reply = SentReply(text=text, message_id=message_id, agent=agent,
                          draft_id=draft_id, draft_text=sent.record.draft_text)
        self._write(session_id, (reply,), None, sent)
        return sent.record, reply

    def _sent_of(self, session_id: str, message_id: str, text: str, draft_id: str | None,
                 agent: str) -> _Sent:
        """The sent record, and the draft it came from (one of this session's) if any."""
        draft = self.draft(draft_id) if draft_id else None
        if draft is not None and draft.session_id != session_id:
            draft = None
        draft_text = draft.text if draft is not None else None
        edited = None if draft_text is None else text.strip() != draft_text.strip()
        return _Sent(SentRecord(message_id, session_id, draft_id, agent, draft_text, text,
                                edited), None if draft is None else draft.turn_id)

    def _insert_sent(self, sent: _Sent, now: float) -> None:
        """(in a transaction, under the lock) The sent row; its draft marked sent."""
        r = sent.record
        self._db.execute(
            "INSERT OR IGNORE INTO sent (message_id, session_id, draft_id, agent, draft_text,"
            " sent_text, edited, sent_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (r.message_id, r.session_id, r.draft_id, r.agent, r.draft_text, r.sent_text,
             None if r.edited is None else int(r.edited), now),
        )
        if sent.turn_id is not None:
            self._db.execute("UPDATE drafts SET state = 'sent' WHERE turn_id = ?",
                             (sent.turn_id,))

    def sent(self, message_id: str) -> SentRecord | None:
        with self._lock:
            row = self._db.execute(
                "SELECT message_id, session_id, draft_id, agent, draft_text, sent_text, edited"
                " FROM sent WHERE message_id = ?",
                (message_id,),
            ).fetchone()
        if row is None:
            return None
        return SentRecord(row[0], row[1], row[2], row[3], row[4], row[5],
                          None if row[6] is None else bool(row[6]))

    def close(self) -> None:
        with self._lock:
            self._db.close()
        self.worker.shutdown()
