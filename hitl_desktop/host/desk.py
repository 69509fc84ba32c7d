"""The desk, host side (issue 16): representatives, assignment, internal notes, status,
shared macros, search over every conversation and transcripts.

A *representative* is a desk-scope link: a personal desk link made by ``hitl-desktop
rep add NAME`` (its label is the name), the shared desk link ("Agent") or the admin
link ("Host"); ``rep_id`` is the token id. Session agents and customers are never
representatives: every operation here except ``note.add`` refuses them (``forbidden``).

What is durable lives in the relay log as agent-only events (``session.assigned``,
``note.added``, ``session.status_changed``), so it is replayed, survives restarts and
appears in transcripts; the current holder, status and waiting time of each session are
folded from the log when the host starts (:func:`load_state`) and kept in memory
(:class:`Desk`). Macros and the search index live in ``desk.sqlite3``
(:mod:`hitl_desktop.host.desk_store`), called only through its worker thread.

The relay calls in at a few places: its ``_ops`` table routes the desk's message types
to :meth:`Desk.handle`; ``chat.send`` asks :meth:`Desk.check_send` (a session another
representative holds needs ``override``) and tells :meth:`Desk.after_chat` (waiting
time, search index, a customer line reopening a resolved session); summaries and the
welcome get their desk fields from :meth:`Desk.decorate` and :meth:`Desk.welcome_fields`.
This module never imports the relay (no import cycle): it sees it through the small
protocols below.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import sqlite3
import time
import unicodedata
from collections.abc import Collection, Iterable, Mapping
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Any, Final, Protocol, cast

from hitl_desktop.core.ports import OperationError
from hitl_desktop.core.protocol import (
    Author,
    DeskStatus,
    Envelope,
    ErrorCode,
    Macro,
    MacroDelete,
    MacroList,
    MacroSave,
    NoteAdd,
    NoteAdded,
    Payload,
    RepInfo,
    RepRef,
    RepsUpdated,
    Role,
    Scope,
    SearchHit,
    SearchRequest,
    SearchResults,
    SessionAssign,
    SessionAssigned,
    SessionStatusChanged,
    SessionStatusSet,
    SessionSummary,
    Transcript,
    TranscriptGet,
    encode,
)
from hitl_desktop.core.tasks import TaskSupervisor
from hitl_desktop.host import transcript
from hitl_desktop.host.desk_store import DeskStore, Doc, DocRow, MacroLimit, SearchTooBroad
from hitl_desktop.host.log import RelayLog, SessionRow, fast_id
from hitl_desktop.host.tokens import TokenKind, TokenRecord, Tokens

log = logging.getLogger(__name__)

#: the desk's message types (client -> host), all handled by :meth:`Desk.handle`
DESK_TYPES: Final = frozenset({"session.assign", "note.add", "session.status", "macro.list",
                               "macro.save", "macro.delete", "search", "transcript.get"})
#: of them, the ones that cost ``RelayConfig.heavy_cost`` more of the rate budget
DESK_HEAVY: Final = frozenset({"search", "macro.save", "macro.delete", "transcript.get"})
#: session agents may add notes; every other desk operation needs a desk-scope link
_SESSION_AGENTS_MAY: Final = frozenset({"note.add"})

MAX_MACROS: Final = 100
MAX_MACRO_TOTAL_CHARS: Final = 100_000
#: every desk connection gets the macro list at most this often (saves are coalesced)
MACRO_PUSH_INTERVAL_S: Final = 1.0
#: chat lines and notes are written to the search index in batches this far apart, or
#: sooner when INDEX_BATCH_LINES are queued. A search never waits for it (it hands what is
#: queued to the worker first, so it sees every line sent before it); it only bounds what
#: a crash leaves for start-up's catch-up and the size of one batch (bigger batches cost
#: FTS5 less per line: fewer segments to write and merge)
INDEX_DELAY_S: Final = 0.25
INDEX_BATCH_LINES: Final = 2_000
MAX_QUERY_TERMS: Final = 8
MIN_PREFIX_CHARS: Final = 3
#: the representatives' list is read from the tokens table at most this often
REPS_TTL_S: Final = 5.0
#: who is online is compared this often; a change is pushed to the desk as ``reps``
REPS_WATCH_S: Final = 1.0

_REP_KINDS = (TokenKind.AGENT_DESK.value, TokenKind.ADMIN.value)


# ------------------------------------------------------------------------ what we see of the relay


class DeskConn(Protocol):
    """What the desk reads of a relay connection."""

    @property
    def role(self) -> Role: ...
    @property
    def scope(self) -> Scope: ...
    @property
    def name(self) -> str: ...
    @property
    def token(self) -> TokenRecord: ...
    @property
    def session_id(self) -> str | None: ...
    def push(self, frame: str) -> None: ...


class DeskSessionState(Protocol):
    @property
    def row(self) -> SessionRow: ...


class DeskRelay(Protocol):
    """What the desk uses of the relay."""

    @property
    def sessions(self) -> Mapping[str, DeskSessionState]: ...
    @property
    def desk(self) -> Collection[DeskConn]: ...
    @property
    def conns(self) -> Collection[DeskConn]: ...
    async def publish(self, session_id: str, payload: Payload, *,
                      ref: str | None = None) -> int: ...
    def _notify_summary(self, st: Any, *, agents: bool = True) -> None: ...


# ------------------------------------------------------------------------ state


@dataclass(slots=True)
class DeskSession:
    """The desk's view of one session (folded from the log, kept in memory)."""

    assignee: RepRef | None = None
    status: DeskStatus = "open"
    waiting_since: float | None = None  # the oldest customer line no agent line answered


def load_state(db: sqlite3.Connection) -> dict[str, DeskSession]:
    """Fold every session's holder, status and waiting time from the log: one pass over
    the messages in the order they were appended, which within a session is seq order
    (rowid order: a scan of the table instead of a walk of its (session, seq) index);
    author roles read by SQLite, not by parsing frames."""
    out: dict[str, DeskSession] = {}
    rows = db.execute(
        "SELECT session_id, type, ts, CASE WHEN type = 'chat.message'"
        " THEN json_extract(frame, '$.data.author.role') ELSE json_extract(frame, '$.data')"
        " END FROM messages"
        " WHERE type IN ('chat.message', 'session.assigned', 'session.status_changed')"
        " ORDER BY rowid")
    for sid, type_, ts, value in rows:
        state = out.get(sid)
        if state is None:
            state = out[sid] = DeskSession()
        if type_ == "chat.message":
            if value == "customer":
                if state.waiting_since is None:
                    state.waiting_since = float(ts)
            elif value in ("agent", "admin"):
                state.waiting_since = None
            continue
        try:
            data = json.loads(value)
            if type_ == "session.assigned":
                state.assignee = SessionAssigned.model_validate(data).assignee
            else:
                state.status = SessionStatusChanged.model_validate(data).status
        except (ValueError, TypeError):
            log.warning("session %s: an unreadable %s in the log was skipped", sid, type_)
    return out


def decorate(summary: SessionSummary, state: DeskSession | None) -> SessionSummary:
    """``summary`` with the desk's fields from ``state`` (unchanged for a session the
    desk never touched: unassigned, open, nobody waiting)."""
    if state is None or (state.assignee is None and state.status == "open"
                         and state.waiting_since is None):
        return summary
    return summary.model_copy(update={"assignee": state.assignee, "status": state.status,
                                      "waiting_since": state.waiting_since})


# ------------------------------------------------------------------------ search queries

_TOKEN = re.compile(r"[^\W_]+")
_PART = re.compile(r'"([^"]*)"?|(\S+)')


def fts_query(query: str) -> str:
    """The FTS5 expression for what a representative typed: every word (or "quoted
    phrase") must occur; ``word*`` matches words starting so (at least 3 characters).
    Built from word characters only, so no input is FTS5 syntax (nothing to fail on);
    a query without a word is ``invalid_arguments``."""
    phrases: list[str] = []
    for m in _PART.finditer(unicodedata.normalize("NFC", query)):
        quoted, word = m.group(1), m.group(2)
        raw = quoted if quoted is not None else word
        tokens = _TOKEN.findall(raw)
        if not tokens:
            continue
        phrase = '"' + " ".join(tokens) + '"'
        if word is not None and word.endswith("*") and len(tokens[-1]) >= MIN_PREFIX_CHARS:
            phrase += "*"
        phrases.append(phrase)
    if not phrases:
        raise OperationError(ErrorCode.INVALID_ARGUMENTS,
                             "nothing to search for: type at least one word")
    if len(phrases) > MAX_QUERY_TERMS:
        raise OperationError(ErrorCode.INVALID_ARGUMENTS,
                             f"search for at most {MAX_QUERY_TERMS} words or phrases")
    return " ".join(phrases)


# ------------------------------------------------------------------------ the desk


class Desk:
    """The desk's state and operations, owned by the relay (one per host)."""

    def __init__(self, relay: DeskRelay, relay_log: RelayLog) -> None:
        self.relay = relay
        self.log = relay_log
        self.tokens = Tokens(relay_log)
        self.store = DeskStore(relay_log.path.parent, log_path=relay_log.path)
        self.sessions: dict[str, DeskSession] = load_state(relay_log.db)
        self._pending: list[DocRow] = []
        # the log's failed group commits counted at the last batch (see _flush_index)
        self._failed_commits = relay_log.failed_commits
        self._loop: asyncio.AbstractEventLoop | None = None
        self._index_handle: asyncio.Handle | None = None
        self._macros: list[Macro] | None = None  # the latest list read (for the pushes)
        self._macro_handle: asyncio.TimerHandle | None = None
        self._last_macro_push = 0.0
        self._reps: tuple[float, list[tuple[str, str]]] | None = None
        self._reps_seen: tuple[tuple[str, str, bool], ...] | None = None  # last pushed
        self._tasks = TaskSupervisor("desk", logger=log)
        # first on the worker, before any live line: what the index lacks from the log,
        # up to its last row now (every later line is handed over live: none twice)
        (last_row,) = relay_log.db.execute("SELECT max(rowid) FROM messages").fetchone()
        self._catch_up: Future[int] = self.store.worker.submit(self.store.catch_up,
                                                               int(last_row or 0))
        self._catch_up.add_done_callback(_log_failure("search index catch-up"))

    async def aclose(self) -> None:
        """Write what is queued, close the store (through its worker)."""
        for handle in (self._index_handle, self._macro_handle):
            if handle is not None:
                handle.cancel()
        await self._tasks.aclose()
        self._flush_index()
        try:
            await self.store.worker.call(self.store.close)
        finally:
            self.store.worker.shutdown()

    def state(self, session_id: str) -> DeskSession:
        state = self.sessions.get(session_id)
        if state is None:
            state = self.sessions[session_id] = DeskSession()
        return state

    # ------------------------------------------------------------------ representatives

    @staticmethod
    def rep_of(conn: DeskConn) -> RepRef | None:
        """The representative a connection is: desk-scope links only."""
        if conn.scope is not Scope.DESK or conn.role is Role.CUSTOMER:
            return None
        return RepRef(rep_id=conn.token.token_id, name=conn.name)

    def _rep_tokens(self, must_have: str | None = None) -> list[tuple[str, str]]:
        """(rep id, name) of every live desk and admin link (cached for ``REPS_TTL_S``: the
        CLI's ``rep add`` in another process shows within that, and a link that connects
        is always in the list it gets)."""
        now = time.monotonic()
        if self._reps is not None and now - self._reps[0] < REPS_TTL_S and (
                must_have is None or any(rid == must_have for rid, _ in self._reps[1])):
            return self._reps[1]
        reps = [(rid, rep_name(kind, label))
                for rid, kind, label, _at in self.tokens.representatives()]
        self._reps = (now, reps)
        return reps

    def reps(self, me: str | None = None) -> list[RepInfo]:
        """Every representative, and whether a window of theirs is connected (``me``:
        the rep id of a connection about to join, counted as online)."""
        online = {c.token.token_id for c in self.relay.desk}
        if me is not None:
            online.add(me)
        return [RepInfo(rep_id=rid, name=name, online=rid in online)
                for rid, name in self._rep_tokens(me)]

    def find_rep(self, rep_id: str) -> RepRef | None:
        row = self.log.db.execute(
            "SELECT kind, label FROM tokens WHERE token_id = ? AND revoked_at IS NULL"
            " AND kind IN (?, ?)", (rep_id, *_REP_KINDS)).fetchone()
        return None if row is None else RepRef(rep_id=rep_id, name=rep_name(row[0], row[1]))

    def welcome_fields(self, conn: DeskConn) -> dict[str, Any]:
        """``you`` and ``reps`` for a welcome (desk agents and admins only)."""
        you = self.rep_of(conn)
        if you is None:
            return {}
        if not self._tasks:  # the first representative: start watching who is online
            self._reps_seen = self._reps_key(self.reps(you.rep_id))
            self._tasks.spawn(self._watch_reps(), "watch representatives")
        return {"you": you, "reps": self.reps(you.rep_id)}

    @staticmethod
    def _reps_key(reps: list[RepInfo]) -> tuple[tuple[str, str, bool], ...]:
        return tuple((r.rep_id, r.name, r.online) for r in reps)

    async def _watch_reps(self) -> None:
        """Once a second: has a representative come online, gone offline, been added or
        removed? Then every desk connection gets the list (``reps``), and the sessions a
        removed representative held are released."""
        await self.release_removed()  # holds of links removed while nobody watched
        while True:
            await asyncio.sleep(REPS_WATCH_S)
            if self.push_reps_if_changed():
                await self.release_removed()

    def push_reps_if_changed(self) -> bool:
        """Push the list if it changed; whether it did."""
        reps = self.reps()
        key = self._reps_key(reps)
        if key == self._reps_seen:
            return False
        self._reps_seen = key
        frame = encode("reps", RepsUpdated(reps=reps))
        for conn in list(self.relay.desk):
            conn.push(frame)
        return True

    async def release_removed(self) -> int:
        """Release (durably, ``by`` "NAME (removed)") every session held by a
        representative whose link was revoked (``rep remove``, a rotated shared link):
        nobody should have to override a colleague who left. How many."""
        alive: dict[str, bool] = {}  # rep id -> live link (read, not cached)
        released = 0
        for sid, state in list(self.sessions.items()):
            holder = state.assignee
            if holder is None:
                continue
            if holder.rep_id not in alive:
                alive[holder.rep_id] = self.find_rep(holder.rep_id) is not None
            if alive[holder.rep_id]:
                continue
            st = self.relay.sessions.get(sid)
            if st is None:
                continue
            await self.relay.publish(sid, SessionAssigned(
                assignee=None, by=f"{holder.name} (removed)", previous=holder))
            state.assignee = None
            self.relay._notify_summary(st)
            released += 1
        if released:
            log.info("released %d sessions held by removed representatives", released)
        return released

    # ------------------------------------------------------------------ summaries

    def decorate(self, summary: SessionSummary) -> SessionSummary:
        """The summary with the session's holder, status and waiting time."""
        return decorate(summary, self.sessions.get(summary.session_id))

    # ------------------------------------------------------------------ chat hooks

    def check_send(self, conn: DeskConn, session_id: str, override: bool) -> None:
        """An agent writing into a session another representative holds must say so
        (``override``), else ``held_by_other`` and nothing is logged."""
        if conn.role is Role.CUSTOMER or override:
            return
        state = self.sessions.get(session_id)
        holder = state.assignee if state is not None else None
        if holder is None:
            return
        me = self.rep_of(conn)
        if me is not None and me.rep_id == holder.rep_id:
            return
        raise OperationError(
            ErrorCode.HELD_BY_OTHER,
            f"{holder.name} is handling this conversation; send with override to write "
            "anyway", details={"assignee": holder.model_dump(mode="json")})

    def would_reopen(self, role: str, session_id: str) -> bool:
        """Whether :meth:`after_chat` would ask for :meth:`reopen` for this line (asked
        before logging it: the relay then takes the line where it may await)."""
        state = self.sessions.get(session_id)
        return role == "customer" and state is not None and state.status != "open"

    def after_chat(self, role: str, session_id: str, seq: int, text: str,
                   ts: float) -> bool:
        """A chat line was logged (the relay's hot path: no await, a few µs): the waiting
        time and the search index. True when it is a customer line in a waiting or
        resolved session, which :meth:`reopen` then sets back to open."""
        state = self.sessions.get(session_id)
        if state is None:
            state = self.sessions[session_id] = DeskSession()
        pending = self._pending
        pending.append((session_id, seq, "chat", role, ts, text))
        if self._index_handle is None or len(pending) == INDEX_BATCH_LINES:
            self._schedule_index(len(pending) >= INDEX_BATCH_LINES)
        if role == "customer":
            if state.waiting_since is None:
                state.waiting_since = ts
            return state.status != "open"
        state.waiting_since = None
        return False

    async def reopen(self, st: DeskSessionState, ref: str | None) -> None:
        """A customer wrote in a waiting or resolved session: open again (by customer)."""
        state = self.state(st.row.session_id)
        if state.status != "open":
            await self._set_status(st, state, "open", by="customer", ref=ref)

    # ------------------------------------------------------------------ search index

    def queue_doc(self, doc: DocRow) -> None:
        """A line for the index (a note: logged already)."""
        self._pending.append(doc)
        if self._index_handle is None:
            self._schedule_index()

    def _schedule_index(self, now: bool = False) -> None:
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:  # not on a loop (a tool writing the log): write it now
            self._flush_index()
            return
        self._loop = loop
        if self._index_handle is not None:
            self._index_handle.cancel()
        self._index_handle = (loop.call_soon(self._flush_index) if now
                              else loop.call_later(INDEX_DELAY_S, self._flush_index))

    def _flush_index(self) -> None:
        """Hand the queued lines to the store's worker (one transaction). Calls made on
        the worker after this see them: it runs its calls in order.

        The lines are indexed as the loop had them (issue 18: no read back from the log)
        once each is durable: the log's open group is committed first, so every queued
        line is then committed or its commit failed; a failed group commit gives its seqs
        to later lines, so a batch that a failure may have touched is indexed as the log
        has it instead (read back by (session, seq): the lost lines are not there). While
        the log holds its group through a WAL finish (up to log.HOLD_MAX_S) the batch
        waits: committing would spoil the finish."""
        handle, self._index_handle = self._index_handle, None
        if handle is not None:  # a search (or a full batch) came before the timer
            handle.cancel()
        if not self._pending:
            return
        if self.log.held and self._loop is not None:
            self._schedule_index()
            return
        self.log.commit_group(force=True)  # every queued line durable (or failed) now
        batch, self._pending = self._pending, []
        failed = self.log.failed_commits
        if failed == self._failed_commits:
            fut: Future[Any] = self.store.worker.submit(self.store.index_committed, batch)
            fut.add_done_callback(_log_failure("search index"))
            return
        self._failed_commits = failed
        fut = self.store.worker.submit(self.store.index_logged, batch)
        fut.add_done_callback(_index_logged_done)

    # ------------------------------------------------------------------ operations

    async def handle(self, conn: DeskConn, env: Envelope, p: Payload,
                     st: DeskSessionState | None) -> None:
        """One desk operation, already validated and role-checked by the relay."""
        if conn.scope is not Scope.DESK and env.type not in _SESSION_AGENTS_MAY:
            raise OperationError(ErrorCode.FORBIDDEN,
                                 f"only desk representatives may send {env.type}")
        if env.type == "session.assign":
            assert st is not None
            await self._assign(conn, env, cast(SessionAssign, p), st)
        elif env.type == "note.add":
            assert st is not None
            await self._note(conn, env, cast(NoteAdd, p), st)
        elif env.type == "session.status":
            assert st is not None
            s = cast(SessionStatusSet, p)
            await self._status(conn, env, s, st)
        elif env.type == "macro.list":
            self._reply(conn, env, "macro.list", MacroList(macros=await self._read_macros()))
        elif env.type == "macro.save":
            await self._macro_save(conn, env, cast(MacroSave, p))
        elif env.type == "macro.delete":
            await self._macro_delete(conn, env, cast(MacroDelete, p))
        elif env.type == "search":
            await self._search(conn, env, cast(SearchRequest, p))
        elif env.type == "transcript.get":
            assert st is not None
            await self._transcript(conn, env, cast(TranscriptGet, p), st)
        else:  # the relay routes only DESK_TYPES here
            raise OperationError(ErrorCode.INTERNAL, f"not a desk operation: {env.type}")

    def _reply(self, conn: DeskConn, env: Envelope, type_: str, payload: Payload) -> None:
        conn.push(encode(type_, payload, session=env.session, ref=env.id))

    async def _assign(self, conn: DeskConn, env: Envelope, a: SessionAssign,
                      st: DeskSessionState) -> None:
        me = self.rep_of(conn)
        assert me is not None  # desk scope checked above
        state = self.state(st.row.session_id)
        current = state.assignee
        new: RepRef | None
        if a.action == "take":
            if current is not None and current.rep_id == me.rep_id:
                raise OperationError(ErrorCode.CONFLICT, "you hold this conversation already")
            new = me
        elif a.action == "release":
            if current is None:
                raise OperationError(ErrorCode.CONFLICT, "nobody holds this conversation")
            new = None
        else:
            assert a.to is not None  # the payload model insists
            new = self.find_rep(a.to)
            if new is None:
                raise OperationError(ErrorCode.NOT_FOUND, f"no representative {a.to!r}")
            if current is not None and current.rep_id == new.rep_id:
                raise OperationError(ErrorCode.CONFLICT,
                                     f"{new.name} holds this conversation already")
        await self.relay.publish(st.row.session_id,
                                 SessionAssigned(assignee=new, by=conn.name, previous=current),
                                 ref=env.id)
        state.assignee = new
        self.relay._notify_summary(st)
        log.info("session %s: %s by %s (was %s)", st.row.session_id,
                 f"assigned to {new.rep_id}" if new else "released", conn.token.token_id,
                 current.rep_id if current else "unassigned")

    async def _note(self, conn: DeskConn, env: Envelope, n: NoteAdd,
                    st: DeskSessionState) -> None:
        role = conn.role
        seq = await self.relay.publish(
            st.row.session_id,
            NoteAdded(note_id=fast_id("n"), author=Author(role=role, name=conn.name),
                      text=n.text), ref=env.id)
        self.queue_doc(Doc(st.row.session_id, seq, "note", role.value, time.time(), n.text))

    async def _status(self, conn: DeskConn, env: Envelope, s: SessionStatusSet,
                      st: DeskSessionState) -> None:
        state = self.state(st.row.session_id)
        if s.status == state.status:
            raise OperationError(ErrorCode.CONFLICT, f"the conversation is {s.status} already")
        pending = st.row.pending_approvals
        if s.status == "resolved" and pending and not s.force:
            raise OperationError(
                ErrorCode.CONFLICT,
                f"{pending} action{'s' if pending != 1 else ''} still await"
                f"{'' if pending != 1 else 's'} approval; resolve with force to leave "
                f"{'them' if pending != 1 else 'it'} pending", details={"pending": pending})
        await self._set_status(st, state, s.status, by=conn.name, ref=env.id)

    async def _set_status(self, st: DeskSessionState, state: DeskSession, status: DeskStatus,
                          *, by: str, ref: str | None) -> None:
        previous = state.status
        await self.relay.publish(st.row.session_id,
                                 SessionStatusChanged(status=status, by=by, previous=previous),
                                 ref=ref)
        state.status = status
        self.relay._notify_summary(st)
        log.info("session %s: %s -> %s (by %s)", st.row.session_id, previous, status,
                 "customer" if by == "customer" else "a representative")

    # macros

    async def _read_macros(self) -> list[Macro]:
        self._macros = await self.store.worker.call(self.store.macros)
        return self._macros

    async def _macro_save(self, conn: DeskConn, env: Envelope, m: MacroSave) -> None:
        try:
            await self.store.worker.call(self.store.save_macro, m.name, m.text, conn.name,
                                         max_macros=MAX_MACROS,
                                         max_total_chars=MAX_MACRO_TOTAL_CHARS)
        except MacroLimit as exc:
            raise OperationError(ErrorCode.CONFLICT, str(exc),
                                 details={"max_macros": MAX_MACROS,
                                          "max_total_chars": MAX_MACRO_TOTAL_CHARS}) from None
        await self._macros_changed(conn, env)

    async def _macro_delete(self, conn: DeskConn, env: Envelope, m: MacroDelete) -> None:
        if not await self.store.worker.call(self.store.delete_macro, m.name):
            raise OperationError(ErrorCode.NOT_FOUND, f"no macro {m.name!r}")
        await self._macros_changed(conn, env)

    async def _macros_changed(self, conn: DeskConn, env: Envelope) -> None:
        """Answer the sender now; every desk connection gets the list soon after, at most
        once per ``MACRO_PUSH_INTERVAL_S`` however many saves come in."""
        macros = await self._read_macros()
        self._reply(conn, env, "macro.list", MacroList(macros=macros))
        if self._macro_handle is not None:
            return
        loop = asyncio.get_running_loop()
        delay = max(0.0, self._last_macro_push + MACRO_PUSH_INTERVAL_S - loop.time())
        self._macro_handle = loop.call_later(delay, self._push_macros)

    def _push_macros(self) -> None:
        self._macro_handle = None
        self._last_macro_push = asyncio.get_running_loop().time()
        if self._macros is None:
            return
        frame = encode("macro.list", MacroList(macros=self._macros))
        for conn in list(self.relay.desk):
            conn.push(frame)

    # search and transcripts

    async def _search(self, conn: DeskConn, env: Envelope, q: SearchRequest) -> None:
        match = fts_query(q.query)
        self._flush_index()  # the search runs after it on the worker: it sees every line
        try:
            hits = await self.store.worker.call(self.store.search, match, q.limit, q.before)
        except SearchTooBroad:
            raise OperationError(ErrorCode.INVALID_ARGUMENTS,
                                 "this search matches too much to answer quickly; add words "
                                 "or use a longer prefix") from None
        sessions = self.relay.sessions
        out = []
        for h in hits:
            st = sessions.get(h.session_id)
            out.append(SearchHit(session_id=h.session_id, seq=h.seq,
                                 title=st.row.title if st is not None else h.session_id,
                                 snippet=h.snippet, at=h.ts, author_role=h.role,
                                 kind="note" if h.kind == "note" else "chat"))
        self._reply(conn, env, "search.results", SearchResults(query=q.query, hits=out))

    async def _transcript(self, conn: DeskConn, env: Envelope, t: TranscriptGet,
                          st: DeskSessionState) -> None:
        sid, title = st.row.session_id, st.row.title
        # the frame is built in the store's worker too: a long session's transcript is
        # ~2 MB, and validating and JSON-escaping it in one C call would hold the loop
        # (and the GIL) for tens of milliseconds (issue 18). Escaped 64 K characters at
        # a time (the loop gets the GIL between them), spliced into the envelope.
        head = encode("transcript", Transcript(session_id=sid, audience=t.audience,
                                               markdown=""), session=env.session, ref=env.id)

        def render(frames: Iterable[str]) -> str:
            markdown = transcript.render(frames, session_id=sid, title=title,
                                         audience=t.audience)
            return splice_text(head, '"markdown":""', "markdown", markdown)

        conn.push(await self.store.worker.call(self.store.render_session, sid, render))


_ESCAPE_CHUNK = 65_536  # characters JSON-escaped per C call (splice_text)


def splice_text(frame: str, marker: str, field_name: str, text: str) -> str:
    """``frame`` (an encoded envelope whose ``field_name`` is the empty string, written
    as ``marker``) with ``text`` in that field: JSON-escaped a chunk at a time, so a
    worker thread building a 2 MB frame lets the loop thread in between chunks. Gives
    the same JSON value as encoding the payload with ``text`` (a test checks)."""
    assert frame.count(marker) == 1 and marker == f'"{field_name}":""'
    escape = json.encoder.encode_basestring  # what json.dumps(ensure_ascii=False) uses
    body = "".join(escape(text[i:i + _ESCAPE_CHUNK])[1:-1]
                   for i in range(0, len(text), _ESCAPE_CHUNK))
    return frame.replace(marker, f'"{field_name}":"{body}"', 1)


def rep_name(kind: str, label: str | None) -> str:
    """A representative's name: the link's label, else "Agent" (desk) / "Host" (admin)."""
    if label:
        return label
    return "Host" if kind == TokenKind.ADMIN.value else "Agent"


def _index_logged_done(fut: Future[tuple[int, list[DocRow]]]) -> None:
    """(worker thread) A batch read back after a failed group commit: the lines the log
    does not have were lost with it."""
    if fut.cancelled() or fut.exception() is not None:
        _log_failure("search index")(fut)
        return
    lost = fut.result()[1]
    if lost:
        log.warning("search index: %d lines never reached the session log (a failed "
                    "commit); not indexed", len(lost))


def _log_failure(what: str) -> Any:
    def done(fut: Future[Any]) -> None:
        if not fut.cancelled() and fut.exception() is not None:
            log.error("%s failed: %s", what, fut.exception())
    return done
