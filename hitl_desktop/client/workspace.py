"""The agent workspace model: everything the representative's window shows, no widgets.

The host decides everything (what runs, what needs approval, what the model
sees); this model only mirrors the protocol messages it receives into state the
views can render, and turns the representative's intents into protocol
messages. Views take a :class:`Workspace` and subscribe to its signals, so the
model is unit-tested by feeding it protocol messages directly.

On a desk (desk agents, admins) the model holds a *summary* of every session (the
welcome's first page, the rest paged in with ``session.list`` in the background, at
most ``MAX_SUMMARIES``) and the *history* only of the sessions the representative
opened: selecting one fetches it (``session.sync``; ``SessionView.history`` is
"loading" until it has arrived). Live frames of sessions not opened only move their
summary, unread count and notifications (issue 18: a desk starts in constant time).

Draft deltas arrive many times a second; the model assembles them by offset
(duplicates ignored, gaps detected) and tells views at most every
``DRAFT_COALESCE_MS`` so a fast stream never floods the Qt loop.
"""

from __future__ import annotations

import contextlib
import importlib
import inspect
import logging
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from types import ModuleType
from typing import TYPE_CHECKING, Any, Literal, Protocol

from PySide6.QtCore import QObject, QTimer, Signal

from hitl_desktop.client.steering import DraftUndo, UndoEntry

if TYPE_CHECKING:
    import asyncio

    from hitl_desktop.core import protocol as p
else:

    class _LazyProtocol:
        """``core.protocol`` on first use: building its pydantic models costs ~130 ms,
        which the window can spend after it is on screen."""

        _module: ModuleType | None = None

        def __getattr__(self, name: str) -> Any:
            if _LazyProtocol._module is None:
                _LazyProtocol._module = importlib.import_module("hitl_desktop.core.protocol")
            return getattr(_LazyProtocol._module, name)

    p = _LazyProtocol()

log = logging.getLogger(__name__)

DRAFT_COALESCE_MS = 40
#: summaries a desk workspace holds at most (paged in after the welcome's first page)
MAX_SUMMARIES = 50_000
#: summaries asked for per session.list page
SUMMARY_PAGE = 500
HistoryState = Literal["none", "loading", "loaded"]
#: above this many sessions the inbox order is checked at most every COALESCE_MS (a
#: sort of ten thousand summaries per live line would hold up the window)
LARGE_DESK = 1000
COALESCE_MS = 100
#: durable messages in the newest page of a session opened on a desk (session.history) ...
NEWEST_PAGE = 50
#: ... and in each older page fetched as the representative scrolls up
OLDER_PAGE = 100
#: ephemeral types that belong to a session's history view (ignored until it is opened)
_HISTORY_EPHEMERAL = frozenset({"draft.delta", "tool.call.delta", "chat.delivered"})

DraftState = Literal["streaming", "completed", "stale", "failed", "discarded", "sent"]
ApprovalStateName = Literal["pending", "approved", "executed", "failed", "rejected", "expired",
                            "cancelled"]
FINAL_APPROVAL_STATES: frozenset[str] = frozenset({"executed", "failed", "rejected", "expired"})


# ----------------------------------------------------------------------------- state records


@dataclass(slots=True)
class ChatItem:
    """A chat message in the transcript."""

    message_id: str
    role: str  # customer | agent | admin | assistant | system
    name: str
    text: str
    ts: float
    draft_id: str | None = None
    edited: bool | None = None
    seq: int | None = None  # the host's durable seq (a search hit points at it)
    lost: bool = False  # shown here, but the host lost it (session.gap): see GapItem
    kind: Literal["message"] = "message"


@dataclass(slots=True)
class ToolItem:
    """A tool call and (once it arrives) its result, shown compactly in the transcript."""

    call_id: str
    name: str
    arguments: dict[str, Any]
    mode: str  # auto | approval
    ts: float
    ok: bool | None = None
    output: dict[str, Any] | None = None
    outcome: str | None = None  # for approval calls: executed / failed / rejected / expired
    kind: Literal["tool"] = "tool"


@dataclass(slots=True)
class NoteItem:
    """A system line in the transcript (session opened/closed, greeting)."""

    text: str
    ts: float
    kind: Literal["note"] = "note"


@dataclass(slots=True)
class InternalNote:
    """A representative's note in the conversation (issue 16): agent-only on the host,
    never sent to the customer; the transcript shows it apart from chat lines."""

    note_id: str
    author: str
    role: str
    text: str
    ts: float
    seq: int | None = None
    lost: bool = False  # shown here, but the host lost it (session.gap)
    kind: Literal["internal"] = "internal"


@dataclass(slots=True)
class GapItem:
    """Where the host skipped seqs after an unclean stop (``session.gap``): lines this
    window showed from ``first_seq`` on were lost by the host (marked ``lost``), so the
    customer may never have got them and the saved history does not have them."""

    first_seq: int
    last_seq: int
    ts: float
    seq: int | None = None  # the gap frame's own seq (last_seq + 1)
    lost: int = 0  # how many shown lines the host lost
    kind: Literal["gap"] = "gap"


def gap_text(item: GapItem) -> str:
    """The system line a gap shows as (the agent window, the exported transcript)."""
    if item.lost:
        lines = "line" if item.lost == 1 else f"{item.lost} lines"
        return (f"The host stopped unexpectedly and lost the {lines} marked ⚠ above: they "
                "may not have reached the other side, and the saved history does not have "
                "them. The conversation continues below.")
    return ("The host stopped unexpectedly here; messages sent just before it may be "
            "missing.")


TranscriptItem = ChatItem | ToolItem | NoteItem | InternalNote | GapItem


def gap_appendix(view: SessionView, audience: str) -> str:
    """Markdown to add to an exported transcript of ``view`` when the host lost part of
    it (``session.gap``): the host's transcript cannot have those lines, this window
    showed them. Internal notes only in the internal transcript; "" without a gap."""
    gaps = [i for i in view.transcript if isinstance(i, GapItem)]
    if not gaps:
        return ""
    lost = [i for i in view.transcript
            if (isinstance(i, ChatItem) or (isinstance(i, InternalNote)
                                            and audience == "internal")) and i.lost]
    out = ["", "---", "", "**Messages lost by the host.** The host stopped unexpectedly "
           f"{'once' if len(gaps) == 1 else f'{len(gaps)} times'} during this conversation; "
           "messages sent just before may be missing above."]
    if lost:
        out.append(" These lines were shown in the agent window but are not in the saved "
                   "history; they may not have reached the other side:")
        out.append("")
        for item in lost:
            stamp = time.strftime("%Y-%m-%d %H:%M", time.localtime(item.ts))
            who = item.name if isinstance(item, ChatItem) else f"Internal note ({item.author})"
            text = item.text.replace("\n", " ")
            out.append(f"- {stamp} **{who}:** {text}")
    return "\n".join(out) + "\n"


@dataclass(slots=True)
class Draft:
    """The assistant's current suggestion for a session."""

    turn_id: str
    reason: str = ""
    provider: str = ""
    text: str = ""
    state: DraftState = "streaming"
    citations: list[p.Citation] = field(default_factory=list)
    gap: bool = False  # a delta went missing; the completed text will repair it
    claims: list[p.DraftClaim] = field(default_factory=list)  # host: says undone things done
    stale_reason: str | None = None
    error: str | None = None
    started_at: float = 0.0
    revision: int = 0  # bumps on every text change, so views can tell "new text arrived"


@dataclass(slots=True)
class Approval:
    """An action proposed by the assistant and its lifecycle on the host."""

    approval_id: str
    call_id: str
    tool: str
    description: str
    arguments: dict[str, Any]
    schema: dict[str, Any]
    expires_at: float | None
    created_at: float
    state: ApprovalStateName = "pending"
    updated_at: float = 0.0
    by: str | None = None
    final_arguments: dict[str, Any] | None = None
    result: dict[str, Any] | None = None
    error: str | None = None
    reason: str | None = None
    summary: str | None = None  # what approving will do (the host's dry run)
    provenance: p.Provenance | None = None  # the customer message that led to it

    @property
    def pending(self) -> bool:
        return self.state in ("pending", "approved")


@dataclass(slots=True)
class SessionView:
    """Everything the workspace knows about one session."""

    summary: p.SessionSummary
    history_seq: int  # durable messages up to here were history when we joined (not unread)
    unread: int = 0
    transcript: list[TranscriptItem] = field(default_factory=list)
    draft: Draft | None = None
    articles: dict[str, list[p.Article]] = field(default_factory=dict)  # turn_id -> ranked
    articles_turn: str | None = None
    approvals: dict[str, Approval] = field(default_factory=dict)
    customer: p.CustomerDetails | None = None
    customer_requested: bool = False
    customer_typing: bool = False
    seen_seq: int = 0
    old_turns: set[str] = field(default_factory=set)
    # the colleague this representative already agreed to write over (asked once; asked
    # again when the session changes hands)
    override_for: str | None = None
    # desk: "none" = a summary only (never opened), "loading" = its history is on the
    # way (up to ``history_target``), "loaded"; one-session links are always "loaded"
    history: HistoryState = "loaded"
    history_target: int = 0
    # desk, history fetched newest first (session.history): it comes by pages; the
    # oldest seq held, whether older messages exist, whether a page of them is on the way
    paged: bool = False
    oldest_seq: int = 0
    older: bool = False
    older_loading: bool = False
    load_until: int | None = None  # keep loading older pages until this seq is held
    # frames that refer to something in a page not loaded yet (an approval.updated whose
    # approval.created is older): applied again once an older page brings it
    orphans: list[tuple[p.Envelope, p.Payload]] = field(default_factory=list)
    _tool_index: dict[str, int] = field(default_factory=dict)

    @property
    def loading(self) -> bool:
        return self.history == "loading"

    @property
    def session_id(self) -> str:
        return self.summary.session_id

    @property
    def display_name(self) -> str:
        """Who the session is with: the verified customer's name, else "Visitor #N" (what a
        visitor claims is shown by the Customer panel, never as their name)."""
        if self.summary.customer_name:
            return self.summary.customer_name
        if self.summary.number:
            return f"Visitor #{self.summary.number}"
        return self.summary.title or self.summary.session_id

    @property
    def identity(self) -> p.SessionIdentity:
        return self.summary.identity

    @property
    def assignee(self) -> p.RepRef | None:
        """Who holds the session (issue 16), or None when unassigned."""
        return self.summary.assignee

    @property
    def status(self) -> str:
        """open | waiting (on the customer) | resolved; closed sessions keep theirs."""
        return self.summary.status

    @property
    def waiting_since(self) -> float | None:
        """When the oldest customer line still unanswered by a representative was sent."""
        return self.summary.waiting_since

    @property
    def verified(self) -> bool:
        return self.summary.identity.state == "verified" and bool(self.summary.customer_id)

    @property
    def pending_approvals(self) -> list[Approval]:
        return [a for a in self.approvals.values() if a.pending]

    @property
    def approval_history(self) -> list[Approval]:
        done = [a for a in self.approvals.values() if not a.pending]
        return sorted(done, key=lambda a: a.updated_at, reverse=True)

    @property
    def current_articles(self) -> list[p.Article]:
        if self.articles_turn is None:
            return []
        return self.articles.get(self.articles_turn, [])


# ----------------------------------------------------------------------------- the model


def _mark_lost(view: SessionView, first_seq: int, last_seq: int | None) -> int:
    """Mark the shown lines with seqs in ``first_seq``..``last_seq`` (None: no end) as
    lost by the host; how many lines of that range are marked (old marks included)."""
    count = 0
    for item in view.transcript:
        if (isinstance(item, ChatItem | InternalNote) and item.seq is not None
                and item.seq >= first_seq and (last_seq is None or item.seq <= last_seq)):
            item.lost = True
            count += 1
    return count


def identity_badge(identity: p.SessionIdentity) -> str:
    """The short badge the Customer panel shows: how the customer was verified."""
    if identity.state == "verified":
        if identity.method == "representative":
            return f"Verified by {identity.by or 'a representative'}"
        if identity.method == "sign_in":
            return "Verified · signed in"
        if identity.method == "link":
            return "Verified · issued link"
        return "Verified"
    if identity.state == "claimed":
        return "Claimed · not verified"
    return "Unverified visitor"


def identity_note(change: p.IdentityChanged) -> str:
    """The transcript's audit line for an identity change."""
    who = change.identity.customer_name or change.identity.customer_id or "?"
    if change.action == "sign_in":
        return f"Customer signed in as {who} (email + order number)"
    if change.action == "link":
        return f"{change.by} verified the customer as {who}"
    if change.action == "claim":
        return f"{change.by} noted the visitor says they are {who} (not verified)"
    why = f": {change.reason}" if change.reason else ""
    return f"{change.by} unlinked the customer{why}"


NOTE_MAX_CHARS = 4000
STATUS_TEXT = {"open": "open", "waiting": "waiting on the customer", "resolved": "resolved"}


def assignment_note(change: p.SessionAssigned) -> str:
    """The transcript's line for a take / release / transfer."""
    new, old = change.assignee, change.previous
    if new is None:
        if old is None:
            return f"{change.by} released the conversation"
        if old.name == change.by:
            return f"{change.by} released the conversation"
        return f"{change.by} released the conversation (was {old.name}'s)"
    if new.name == change.by and old is None:
        return f"{change.by} took the conversation"
    if new.name == change.by:
        return f"{change.by} took the conversation from {old.name}" if old else \
            f"{change.by} took the conversation"
    return f"{change.by} transferred the conversation to {new.name}"


def status_note(change: p.SessionStatusChanged) -> str:
    """The transcript's line for a status change (a customer line reopens: by customer)."""
    text = STATUS_TEXT.get(change.status, change.status)
    if change.by == "customer":
        return f"The customer wrote again: {text}"
    return f"{change.by} marked the conversation {text}"


class ConnectionLike(Protocol):
    """What the workspace needs from ``client.connection.HostConnection``."""

    def send(self, payload: p.Payload, *, session: str | None = None) -> object: ...


SendFn = Callable[["p.Payload", str | None], object]


class Workspace(QObject):
    """Mirror of the host's view of this agent's sessions, plus the agent's intents."""

    sessions_changed = Signal()  # a session appeared/disappeared or the order changed
    session_updated = Signal(str)  # summary, unread or pending count of one session
    current_session_changed = Signal(str)  # "" when none
    transcript_changed = Signal(str)
    draft_changed = Signal(str)  # coalesced while streaming; immediate on state changes
    draft_gap = Signal(str, str)  # session, turn_id: a delta went missing
    articles_changed = Signal(str)
    approvals_changed = Signal(str)
    customer_changed = Signal(str)
    identity_changed = Signal(str)  # who the session's customer is changed (summary.identity)
    customer_results = Signal(object)  # p.CustomerResults: answer to search_customers
    typing_changed = Signal(str)
    article_loaded = Signal(object)  # p.ArticleContent
    kb_results = Signal(object)  # p.KbResults
    assistant_status_changed = Signal(object)  # p.AssistantStatus
    connection_state_changed = Signal(str)
    error_occurred = Signal(str)  # a human-readable message for the status bar
    intent_sent = Signal(str, object)  # type, payload: what we asked the host to do
    approval_failed = Signal(str, str)  # approval_id, the host's reason (approve/reject refused)
    # issue 16: the desk
    reps_changed = Signal()  # who this representative is, and the desk's representatives
    assignment_changed = Signal(str)  # session: taken, released or transferred
    status_changed = Signal(str)  # session: open / waiting / resolved
    customer_line = Signal(str, str)  # session, text: a NEW customer line (not history)
    approval_arrived = Signal(str, str)  # session, approval_id: a NEW pending approval
    macros_changed = Signal()
    search_results = Signal(object)  # p.SearchResults (the latest search only)
    search_failed = Signal(str)  # the host refused the latest search (e.g. bad syntax)
    transcript_ready = Signal(object)  # p.Transcript answering request_transcript
    transcript_failed = Signal(str, str)  # session, why
    # the host refused a chat.send because a colleague holds the session (a race with
    # a take/transfer): session, the text (so nothing typed is lost), draft_id, holder
    send_held = Signal(str, str, object, str)
    # the host refused to resolve: actions still pending (session, status, how many)
    status_refused = Signal(str, str, int)
    steer_failed = Signal(str, str)  # session, the host's reason (draft.steer refused)
    history_changed = Signal(str)  # session: its history started or finished loading
    older_loaded = Signal(str, int)  # session, items put before the transcript (older page)

    def __init__(self, send: SendFn | None = None, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._send_fn: SendFn | None = send
        self._conn: QObject | None = None
        self._sync_fn: Callable[[str], object] | None = None
        self._history_fn: Callable[[str, int | None, int], object] | None = None
        self._merging = False  # applying an older page into a scratch view
        self._sessions: dict[str, SessionView] = {}
        self._current: str | None = None
        self._status: p.AssistantStatus | None = None
        self._connection_state = "disconnected"
        self.connection_message = ""  # the connection's last state message
        self._role: p.Role | None = None
        self._bound_session: str | None = None
        self._dirty_drafts: set[str] = set()
        self._order: list[str] = []
        self._refs: dict[str, str] = {}  # message id of an approve/reject -> approval id
        self.undo: DraftUndo[Draft] = DraftUndo()  # drafts a steer replaced (client/steering.py)
        self._tasks: set[asyncio.Task[Any]] = set()
        self._you: p.RepRef | None = None
        self._display_name: str | None = None
        self._reps: list[p.RepInfo] = []
        self._macros: list[p.Macro] = []
        self._active = True  # the window has focus (unread counts the current session too)
        # message id of a request whose refusal we handle -> (kind, session, extra)
        self._intents: dict[str, tuple[str, str | None, Any]] = {}
        self._search_id: str | None = None
        self._transcript_ids: set[str] = set()
        self._error_details: tuple[str | None, dict[str, Any] | None] = (None, None)
        self._lazy = False  # desk: histories are fetched when a session is opened
        self._page_ref: str | None = None  # the session.list page we wait for
        self._reorder_timer = QTimer(self)
        self._reorder_timer.setSingleShot(True)
        self._reorder_timer.setInterval(COALESCE_MS)
        self._reorder_timer.timeout.connect(self._reorder_now)
        self._draft_timer = QTimer(self)
        self._draft_timer.setSingleShot(True)
        self._draft_timer.setInterval(DRAFT_COALESCE_MS)
        self._draft_timer.timeout.connect(self._flush_drafts)

    # ------------------------------------------------------------------ wiring

    def attach(self, connection: QObject) -> None:
        """Subscribe to a HostConnection's signals and send intents through it.

        Attaching another connection (File → Open another link…) first lets go of
        the previous one and forgets everything it showed."""
        if self._conn is not None and self._conn is not connection:
            self._detach(self._conn)
            self.reset()
        self._conn = connection
        conn: Any = connection
        conn.message_received.connect(self.handle)
        if hasattr(conn, "welcome_received"):
            conn.welcome_received.connect(self._on_welcome_signal)
        if hasattr(conn, "state_changed"):
            conn.state_changed.connect(self._on_state_signal)
        if hasattr(conn, "error_received"):
            conn.error_received.connect(self._on_error_signal)
        if hasattr(conn, "error_details"):
            conn.error_details.connect(self._on_error_details)
        if hasattr(conn, "sessions_forgotten"):
            conn.sessions_forgotten.connect(self._on_forgotten)
        if hasattr(conn, "history_page"):
            conn.history_page.connect(self.apply_history_page)
        if hasattr(conn, "history_failed"):
            conn.history_failed.connect(self._on_history_failed)
        if hasattr(conn, "history_reset"):
            conn.history_reset.connect(self._on_history_reset)

        def send(payload: p.Payload, session: str | None) -> object:
            return conn.send(payload, session=session)

        self._send_fn = send
        if hasattr(conn, "sync_session"):
            self._sync_fn = conn.sync_session
        if hasattr(conn, "fetch_history"):
            self._history_fn = conn.fetch_history

    def _detach(self, connection: QObject) -> None:
        conn: Any = connection
        for name, slot in (("message_received", self.handle),
                           ("welcome_received", self._on_welcome_signal),
                           ("state_changed", self._on_state_signal),
                           ("error_received", self._on_error_signal),
                           ("error_details", self._on_error_details),
                           ("sessions_forgotten", self._on_forgotten),
                           ("history_page", self.apply_history_page),
                           ("history_failed", self._on_history_failed),
                           ("history_reset", self._on_history_reset)):
            signal = getattr(conn, name, None)
            if signal is not None:
                # never connected, or already gone
                with contextlib.suppress(RuntimeError, TypeError):
                    signal.disconnect(slot)
        self._send_fn = None
        self._sync_fn = None
        self._history_fn = None

    def reset(self) -> None:
        """Forget every session (a different host or link): views show the empty state."""
        self._sessions.clear()
        self._current = None
        self._lazy = False
        self._page_ref = None
        self._role = None
        self._bound_session = None
        self._dirty_drafts.clear()
        self._refs.clear()
        self._intents.clear()
        self.undo.clear()
        self._status = None
        self._you = None
        self._reps = []
        self._macros = []
        self.reps_changed.emit()
        self.macros_changed.emit()
        self._sessions_changed()
        self.current_session_changed.emit("")

    def _on_welcome_signal(self, *args: object) -> None:
        for arg in args:
            if isinstance(arg, p.Welcome):
                self.apply_welcome(arg)
                return

    def _on_state_signal(self, state: object) -> None:
        value = getattr(state, "value", state)
        # why it failed (a refused link, an untrusted certificate): the window shows it
        message = getattr(self._conn, "state_message", "")
        self.connection_message = message if isinstance(message, str) else ""
        self.set_connection_state(str(value))

    def _on_error_details(self, ref: object, details: object) -> None:
        """HostConnection.error_details(ref, details): kept for the error_received that
        follows it at once."""
        self._error_details = (ref if isinstance(ref, str) else None,
                               details if isinstance(details, dict) else None)

    def _on_error_signal(self, *args: object) -> None:
        """HostConnection.error_received(code, message, ref)."""
        for arg in args:
            if isinstance(arg, p.ErrorPayload):
                self._on_error(arg)
                return
        if len(args) >= 2:
            log.info("host error %s: %s", args[0], args[1])
            ref = args[2] if len(args) >= 3 and isinstance(args[2], str) else None
            self._refused(ref, str(args[1]))
            details = self._error_details[1] if ref is not None \
                and self._error_details[0] == ref else None
            self._error_details = (None, None)
            if self._intent_refused(ref, str(args[0]), str(args[1]), details):
                return
            self.error_occurred.emit(str(args[1]))
        elif args:
            self.error_occurred.emit(str(args[0]))

    # ------------------------------------------------------------------ read access

    @property
    def current_session_id(self) -> str | None:
        return self._current

    @property
    def current(self) -> SessionView | None:
        return self._sessions.get(self._current) if self._current else None

    @property
    def assistant_status(self) -> p.AssistantStatus | None:
        return self._status

    @property
    def connection_state(self) -> str:
        return self._connection_state

    def session(self, session_id: str) -> SessionView | None:
        return self._sessions.get(session_id)

    def sessions(self) -> list[SessionView]:
        """Open sessions first, then by latest activity (newest first)."""

        def key(s: SessionView) -> tuple[int, float]:
            when = s.summary.last_message_at or s.summary.created_at
            return (0 if s.summary.state == "open" else 1, -when)

        return sorted(self._sessions.values(), key=key)

    # ------------------------------------------------------------------ inbound

    def set_connection_state(self, state: str) -> None:
        if state != self._connection_state:
            self._connection_state = state
            self.connection_state_changed.emit(state)

    @property
    def you(self) -> p.RepRef | None:
        """This representative (desk links), or None (session agents, admins)."""
        return self._you

    @property
    def my_name(self) -> str:
        if self._you is not None:
            return self._you.name
        return self._display_name or "Agent"

    @property
    def reps(self) -> list[p.RepInfo]:
        """The desk's representatives (desk agents and admins get them at welcome)."""
        return list(self._reps)

    @property
    def macros(self) -> list[p.Macro]:
        return list(self._macros)

    def is_mine(self, view: SessionView) -> bool:
        return (view.assignee is not None and self._you is not None
                and view.assignee.rep_id == self._you.rep_id)

    def held_by_other(self, session_id: str | None = None) -> p.RepRef | None:
        """The colleague holding the session, when it is not this representative."""
        sid = session_id or self._current
        view = self._sessions.get(sid) if sid else None
        if view is None or view.assignee is None or self.is_mine(view):
            return None
        return view.assignee

    def needs_override_question(self, session_id: str | None = None) -> p.RepRef | None:
        """The colleague to ask about before sending (None: send without asking): asked
        once per session and holder."""
        holder = self.held_by_other(session_id)
        sid = session_id or self._current
        view = self._sessions.get(sid) if sid else None
        if holder is None or view is None or view.override_for == holder.rep_id:
            return None
        return holder

    def confirm_override(self, session_id: str | None = None) -> None:
        """The representative agreed to write into a colleague's session."""
        sid = session_id or self._current
        view = self._sessions.get(sid) if sid else None
        holder = self.held_by_other(sid)
        if view is not None and holder is not None:
            view.override_for = holder.rep_id

    def set_window_active(self, active: bool) -> None:
        """Whether the representative is looking: while not, lines in the selected
        session count as unread too (the title and the tray say so)."""
        if active == self._active:
            return
        self._active = active
        view = self.current
        if active and view is not None and view.unread:
            view.unread = 0
            self.session_updated.emit(view.session_id)

    @property
    def window_active(self) -> bool:
        return self._active

    def apply_welcome(self, welcome: p.Welcome) -> None:
        self._role = welcome.role
        self._bound_session = welcome.session_id
        self._you = welcome.you
        self._display_name = welcome.display_name
        self._reps = list(welcome.reps)
        self.reps_changed.emit()
        if self._send_fn is not None and (welcome.you is not None
                                          or welcome.role == p.Role.ADMIN):
            self.request_macros()  # the desk's saved replies, for "/" in the editor
        # a desk gets summaries; a session's history when it is opened (session.sync)
        self._lazy = welcome.session_id is None and (
            self._sync_fn is not None or self._history_fn is not None)
        for summary in welcome.sessions:
            self._upsert_summary(summary, emit=False)
        self._sessions_changed()
        self._page_ref = None
        if welcome.cursor is not None:
            self._next_page(welcome.cursor)
        if self._current is None:
            first = welcome.session_id or next((s.session_id for s in self.sessions()), None)
            if first:
                self.select_session(first)

    def handle(self, envelope: p.Envelope, payload: p.Payload) -> None:
        """Slot for ``HostConnection.message_received``: one host message in."""
        handler = self._handlers.get(envelope.type)
        if handler is None:
            log.debug("workspace ignores %s", envelope.type)
            return
        sid = envelope.session
        history = sid is not None and (envelope.seq is not None
                                       or envelope.type in _HISTORY_EPHEMERAL)
        try:
            if history and self._lazy:
                assert sid is not None
                view = self._sessions.get(sid)
                if view is None or view.history == "none" or (
                        view.paged and view.history == "loading"):
                    # not opened, or its newest page is on the way (which carries every
                    # durable frame sent before it): the summary only
                    self._summary_only(envelope, payload)
                    return
            handler(self, envelope, payload)
            if history and self._lazy and envelope.seq is not None:
                self._loading_progress(sid or "", envelope.seq)
        except Exception:  # a bad message must not take the window down
            log.exception("failed to apply %s", envelope.type)

    # ------------------------------------------------------------------ desk: lazy history

    def _summary_only(self, env: p.Envelope, payload: p.Payload) -> None:
        """A live frame of a session this desk has not opened: move its summary, unread
        count and notifications; its history comes (in order) when it is opened."""
        if isinstance(payload, p.SessionOpened):
            self._upsert_summary(payload.summary)
            return
        if env.seq is None:
            return  # a draft streaming, a receipt: nothing to show in a summary
        known = env.session in self._sessions
        view = self._view_for(env)
        if view is None:
            return
        if not known:
            view.history_seq = 0  # a session we learn of through its live frames
        update: dict[str, Any] = {"last_seq": max(view.summary.last_seq, env.seq)}
        if isinstance(payload, p.ChatMessage):
            update.update(last_message=payload.text, last_message_at=env.ts,
                          messages=view.summary.messages + 1)
            if payload.author.role == p.Role.CUSTOMER:
                view.customer_typing = False
                if env.seq > view.history_seq:
                    if view.session_id != self._current or not self._active:
                        view.unread += 1
                    self.customer_line.emit(view.session_id, payload.text)
        elif isinstance(payload, p.SessionClosed | p.SessionReopened):
            update["state"] = "closed" if isinstance(payload, p.SessionClosed) else "open"
        elif isinstance(payload, p.SessionAssigned):
            update["assignee"] = payload.assignee
        elif isinstance(payload, p.SessionStatusChanged):
            update["status"] = payload.status
        elif isinstance(payload, p.IdentityChanged):
            ident = payload.identity
            verified = ident.state == "verified" and ident.customer_id is not None
            update.update(identity=ident, customer_id=ident.customer_id if verified else None,
                          customer_name=ident.customer_name if verified else None)
        view.summary = view.summary.model_copy(update=update)
        if isinstance(payload, p.ApprovalCreated | p.ApprovalUpdated):
            # kept (the notification names the action); replaced when the session opens
            handler = self._handlers[env.type]
            handler(self, env, payload)
        elif isinstance(payload, p.SessionAssigned):
            self.assignment_changed.emit(view.session_id)
        elif isinstance(payload, p.SessionStatusChanged):
            self.status_changed.emit(view.session_id)
        elif isinstance(payload, p.IdentityChanged):
            self.identity_changed.emit(view.session_id)
        self.session_updated.emit(view.session_id)
        self._maybe_reorder()

    def _load_history(self, view: SessionView) -> None:
        """Open a session on a desk: fetch its newest page (session.history; older pages
        follow as the representative scrolls up), or, with a connection that cannot page,
        its whole history (session.sync from 0). What is in it now is history (not
        unread, no notification); the view shows "Loading…" until it has arrived."""
        self._clear_history(view)
        view.history_seq = max(view.history_seq, view.summary.last_seq)
        view.history_target = view.summary.last_seq
        view.paged = self._history_fn is not None
        view.history = "loading" if view.history_target > 0 or view.paged else "loaded"
        try:
            if self._history_fn is not None:
                self._history_fn(view.session_id, None, NEWEST_PAGE)
            else:
                assert self._sync_fn is not None
                self._sync_fn(view.session_id)
        except Exception:
            log.exception("cannot fetch session %s", view.session_id)
            view.history = "none"
            return
        self.history_changed.emit(view.session_id)
        self.transcript_changed.emit(view.session_id)
        self.approvals_changed.emit(view.session_id)
        self.draft_changed.emit(view.session_id)

    @staticmethod
    def _clear_history(view: SessionView) -> None:
        view.transcript.clear()
        view.approvals.clear()
        view.articles.clear()
        view.articles_turn = None
        view.draft = None
        view.old_turns.clear()
        view._tool_index.clear()
        view.orphans.clear()
        view.seen_seq = 0
        view.oldest_seq = 0
        view.older = False
        view.older_loading = False
        view.load_until = None

    # ------------------------------------------------------------------ desk: history pages

    def apply_history_page(self, page: Any) -> None:
        """Slot for ``HostConnection.history_page`` (a ``HistoryPage``): the newest page of
        a session being opened, or an older one the representative scrolled up to."""
        view = self._sessions.get(getattr(page, "session_id", ""))
        if view is None or not view.paged:
            return
        try:
            if page.newest:
                if view.history == "loading":
                    self._apply_newest(view, page)
            elif view.older_loading and page.before_seq == view.oldest_seq:
                self._apply_older(view, page)
        except Exception:  # a bad page must not take the window down
            log.exception("failed to apply a history page of %s", view.session_id)
            view.older_loading = False

    def _apply_newest(self, view: SessionView, page: Any) -> None:
        """The newest page: shown at once; live frames after its last seq follow."""
        # live lines that arrived while it was on the way were counted (unread,
        # notifications) by _summary_only: not again
        view.history_seq = max(view.history_seq, view.summary.last_seq)
        view.oldest_seq = page.first_seq or 0
        view.older = bool(page.more)
        blocked = self.blockSignals(True)  # one repaint for the page, not one per frame
        try:
            for env, payload in page.frames:
                self._apply_frame(env, payload)
        finally:
            self.blockSignals(blocked)
        view.seen_seq = max(view.seen_seq, page.last_seq or 0)
        view.history = "loaded"
        self._history_done(view, 0)
        self._continue_to_target(view)

    def _continue_to_target(self, view: SessionView) -> None:
        """A search hit further back than what is held: the next older page."""
        if view.load_until is None:
            return
        if view.older and view.oldest_seq > view.load_until:
            self.load_older(view.session_id)
        else:
            view.load_until = None

    def _apply_frame(self, env: p.Envelope, payload: p.Payload) -> None:
        handler = self._handlers.get(env.type)
        if handler is not None:
            handler(self, env, payload)

    def _apply_older(self, view: SessionView, page: Any) -> None:
        """An older page: its frames are applied, oldest first, into a scratch view (as a
        replay would), which is then put before what the view holds; frames of the newer
        part that referred to it (orphans) are applied again."""
        sid = view.session_id
        scratch = SessionView(summary=view.summary, history_seq=view.history_seq,
                              history="loaded", paged=True, oldest_seq=page.first_seq or 0,
                              older=bool(page.more))
        self._sessions[sid] = scratch
        blocked = self.blockSignals(True)
        self._merging = True
        try:
            for env, payload in page.frames:
                self._apply_frame(env, payload)
        finally:
            self._merging = False
            self._sessions[sid] = view
            self.blockSignals(blocked)
        view.oldest_seq = page.first_seq or view.oldest_seq
        view.older = bool(page.more) and page.first_seq is not None
        view.older_loading = False
        added = self._merge_older(view, scratch)
        self._history_done(view, added)
        self._continue_to_target(view)

    def _merge_older(self, view: SessionView, older: SessionView) -> int:
        """Put ``older`` (a scratch view of an older page) before ``view``; the number of
        transcript items it added."""
        newer = view.transcript
        calls = {i.call_id: i for i in older.transcript if isinstance(i, ToolItem)}
        kept: list[TranscriptItem] = []
        for item in newer:
            if isinstance(item, ToolItem) and item.call_id in calls:
                # a result that arrived before its call (the call is in the older page)
                call = calls[item.call_id]
                if call.output is None and item.output is not None:
                    call.ok, call.output, call.outcome = item.ok, item.output, item.outcome
                continue
            kept.append(item)
        view.transcript = older.transcript + kept
        view._tool_index = {i.call_id: n for n, i in enumerate(view.transcript)
                            if isinstance(i, ToolItem)}
        for aid, appr in older.approvals.items():
            view.approvals.setdefault(aid, appr)
        for turn, arts in older.articles.items():
            view.articles.setdefault(turn, arts)
        if view.articles_turn is None:
            view.articles_turn = older.articles_turn
        current = view.draft.turn_id if view.draft is not None else None
        view.old_turns |= {t for t in older.old_turns if t != current}
        if older.draft is not None and older.draft.turn_id != current:
            if view.draft is None:
                view.draft = older.draft  # the latest draft is in the older page
                if any(isinstance(i, ChatItem) and i.draft_id == older.draft.turn_id
                       and i.role != "customer" for i in kept):
                    view.draft.state = "sent"
            else:
                view.old_turns.add(older.draft.turn_id)
        # what the newer part could not apply yet, in seq order, on the merged view
        pending = older.orphans + view.orphans
        view.orphans = []
        blocked = self.blockSignals(True)
        try:
            for env, payload in pending:
                self._apply_frame(env, payload)
            for appr in list(view.approvals.values()):
                self._mirror_on_tool_item(view, appr)
        finally:
            self.blockSignals(blocked)
        return len(view.transcript) - len(kept)

    def _history_done(self, view: SessionView, added: int) -> None:
        """Tell the views once about a page applied with signals held back."""
        sid = view.session_id
        count = len(view.pending_approvals)
        if count != view.summary.pending_approvals:
            view.summary = view.summary.model_copy(update={"pending_approvals": count})
        self.history_changed.emit(sid)
        if added:
            self.older_loaded.emit(sid, added)
        self.transcript_changed.emit(sid)
        self.approvals_changed.emit(sid)
        self.articles_changed.emit(sid)
        self._emit_draft_now(sid)
        self.session_updated.emit(sid)
        self._maybe_reorder()

    def _orphan(self, view: SessionView, env: p.Envelope, payload: p.Payload) -> bool:
        """Keep a frame whose subject is in an older page not loaded yet; True if kept."""
        if not view.paged or view.oldest_seq <= 1 or env.seq is None \
                or env.seq < view.oldest_seq:
            return False
        view.orphans.append((env, payload))
        return True

    def load_older(self, session_id: str | None = None) -> bool:
        """Fetch the page before the oldest message shown (the representative scrolled
        to the top); False when there is none or one is already on the way."""
        sid = session_id or self._current
        view = self._sessions.get(sid) if sid else None
        if (view is None or not view.paged or view.history != "loaded" or not view.older
                or view.older_loading or self._history_fn is None):
            return False
        view.older_loading = True
        try:
            self._history_fn(view.session_id, view.oldest_seq, OLDER_PAGE)
        except Exception:
            log.exception("cannot fetch older messages of %s", view.session_id)
            view.older_loading = False
            return False
        self.history_changed.emit(view.session_id)
        return True

    def load_until(self, session_id: str, seq: int) -> bool:
        """Load older pages until ``seq`` is held (a search hit further back); True when
        pages are on the way."""
        view = self._sessions.get(session_id)
        if view is None or not view.paged:
            return False
        if view.history == "loaded" and (not view.older or view.oldest_seq <= seq):
            return False
        view.load_until = seq if view.load_until is None else min(view.load_until, seq)
        if view.history == "loaded" and not view.older_loading:
            return self.load_older(session_id)
        return True

    def _on_history_failed(self, session_id: object, before_seq: object, message: object
                           ) -> None:
        """The host refused a page (e.g. the session is gone): stop waiting for it."""
        view = self._sessions.get(str(session_id))
        if view is None or not view.paged:
            return
        if before_seq is None and view.history == "loading":
            view.history = "none"
        view.older_loading = False
        view.load_until = None
        self.history_changed.emit(view.session_id)
        self.error_occurred.emit(f"Could not load the conversation: {message}")

    def _loading_progress(self, session_id: str, seq: int) -> None:
        view = self._sessions.get(session_id)
        if view is None or view.history != "loading":
            return
        view.seen_seq = max(view.seen_seq, seq)
        if view.seen_seq >= view.history_target:
            view.history = "loaded"
            self.history_changed.emit(session_id)

    def _on_forgotten(self, session_ids: object) -> None:
        """The connection stopped following these sessions (too many opened): their
        history goes; it is fetched again when they are opened."""
        if not isinstance(session_ids, list):
            return
        for sid in session_ids:
            view = self._sessions.get(str(sid))
            if view is None or view.session_id == self._current:
                continue
            view.history = "none"
            self._clear_history(view)

    def _next_page(self, cursor: str) -> None:
        """Ask for the next page of summaries (one request at a time, bounded)."""
        if len(self._sessions) >= MAX_SUMMARIES:
            log.warning("holding %d session summaries: not paging in more", len(self._sessions))
            return
        self._page_ref = self._send_id(p.SessionListRequest(cursor=cursor, limit=SUMMARY_PAGE),
                                       None) or None

    @property
    def paging(self) -> bool:
        """Summaries are still being paged in after the welcome."""
        return self._page_ref is not None

    def _view_for(self, env: p.Envelope) -> SessionView | None:
        if env.session is None:
            return None
        view = self._sessions.get(env.session)
        if view is None:
            # a message for a session we have no summary of yet (e.g. a race with
            # session.opened): make a placeholder so nothing is lost
            summary = p.SessionSummary(
                session_id=env.session, title=env.session, customer_id=None,
                customer_name=None, state="open", created_at=env.ts, last_seq=0,
            )
            view = self._upsert_summary(summary)
        if env.seq is not None and env.seq > view.seen_seq:
            view.seen_seq = env.seq
        return view

    def _upsert_summary(self, summary: p.SessionSummary, *, emit: bool = True) -> SessionView:
        view = self._sessions.get(summary.session_id)
        if view is None:
            view = SessionView(summary=summary, history_seq=summary.last_seq,
                               history="none" if self._lazy else "loaded")
            self._sessions[summary.session_id] = view
            if emit:
                self._sessions_changed()
        else:
            view.summary = summary
            if emit:
                self.session_updated.emit(summary.session_id)
                self._maybe_reorder()
        return view

    @property
    def large(self) -> bool:
        """So many sessions that views coalesce their updates (LARGE_DESK)."""
        return len(self._sessions) > LARGE_DESK

    def _maybe_reorder(self) -> None:
        """Tell the inbox to rebuild only when the order really changed (on a large desk
        checked at most every COALESCE_MS)."""
        if self.large:
            if not self._reorder_timer.isActive():
                self._reorder_timer.start()
            return
        self._reorder_now()

    def _reorder_now(self) -> None:
        order = [s.session_id for s in self.sessions()]
        if order != self._order:
            self._order = order
            self.sessions_changed.emit()

    def _sessions_changed(self) -> None:
        self._order = [s.session_id for s in self.sessions()]
        self.sessions_changed.emit()

    def _on_welcome(self, env: p.Envelope, payload: p.Payload) -> None:
        assert isinstance(payload, p.Welcome)
        self.apply_welcome(payload)

    def _on_session_list(self, env: p.Envelope, payload: p.Payload) -> None:
        assert isinstance(payload, p.SessionList)
        for summary in payload.sessions:
            known = self._sessions.get(summary.session_id)
            if known is not None and known.summary.last_seq > summary.last_seq:
                continue  # a live session.updated was newer than this page
            self._upsert_summary(summary, emit=False)
        self._sessions_changed()
        if env.ref is not None and env.ref == self._page_ref:
            self._page_ref = None
            if payload.cursor is not None:
                self._next_page(payload.cursor)

    def _on_session_opened(self, env: p.Envelope, payload: p.Payload) -> None:
        assert isinstance(payload, p.SessionOpened)
        # the summary in seq 1 is the session as it was created: one already held (from
        # the welcome, a page or a live session.updated) is newer, e.g. when a desk opens
        # the session later and its history replays (the customer may be online by now)
        view = self._sessions.get(payload.summary.session_id)
        if view is None:
            view = self._upsert_summary(payload.summary)
        if env.seq is not None:
            view.seen_seq = max(view.seen_seq, env.seq)
        if not any(isinstance(i, NoteItem) and i.text.startswith("Session opened")
                   for i in view.transcript):
            view.transcript.insert(0, NoteItem("Session opened", env.ts))
            if payload.greeting:
                view.transcript.insert(1, NoteItem(f"Greeting: {payload.greeting}", env.ts))
            self.transcript_changed.emit(view.session_id)
        if self._current is None:
            self.select_session(view.session_id)

    def _on_session_updated(self, env: p.Envelope, payload: p.Payload) -> None:
        assert isinstance(payload, p.SessionUpdated)
        known = self._sessions.get(payload.summary.session_id)
        before = known.summary.identity if known is not None else None
        self._upsert_summary(payload.summary)
        if before is not None and before != payload.summary.identity:
            self.identity_changed.emit(payload.summary.session_id)

    def _on_identity_changed(self, env: p.Envelope, payload: p.Payload) -> None:
        """The audit line in the transcript, the summary at once (the coalesced
        session.updated follows), and the customer's records read again."""
        assert isinstance(payload, p.IdentityChanged)
        view = self._view_for(env)
        if view is None:
            return
        ident = payload.identity
        verified = ident.state == "verified" and ident.customer_id is not None
        view.summary = view.summary.model_copy(update={
            "identity": ident, "customer_id": ident.customer_id if verified else None,
            "customer_name": ident.customer_name if verified else None})
        view.transcript.append(NoteItem(identity_note(payload), env.ts))
        self.transcript_changed.emit(view.session_id)
        self.identity_changed.emit(view.session_id)
        self.session_updated.emit(view.session_id)
        if view.customer_requested:
            self.request_customer(view.session_id)

    def _on_customer_results(self, env: p.Envelope, payload: p.Payload) -> None:
        assert isinstance(payload, p.CustomerResults)
        self.customer_results.emit(payload)

    def _on_session_closed(self, env: p.Envelope, payload: p.Payload) -> None:
        assert isinstance(payload, p.SessionClosed)
        view = self._view_for(env)
        if view is None:
            return
        view.summary = view.summary.model_copy(update={"state": "closed"})
        if view.customer_typing:  # nobody types into a closed conversation
            view.customer_typing = False
            self.typing_changed.emit(view.session_id)
        why = f": {payload.reason}" if payload.reason else ""
        view.transcript.append(NoteItem(f"Session closed by {payload.by}{why}", env.ts))
        self.transcript_changed.emit(view.session_id)
        self.session_updated.emit(view.session_id)
        self._sessions_changed()

    def _on_session_reopened(self, env: p.Envelope, payload: p.Payload) -> None:
        assert isinstance(payload, p.SessionReopened)
        view = self._view_for(env)
        if view is None:
            return
        view.summary = view.summary.model_copy(update={"state": "open"})
        view.transcript.append(NoteItem(f"Session reopened by {payload.by}", env.ts))
        self.transcript_changed.emit(view.session_id)
        self.session_updated.emit(view.session_id)
        self._sessions_changed()

    def _on_chat_message(self, env: p.Envelope, payload: p.Payload) -> None:
        assert isinstance(payload, p.ChatMessage)
        view = self._view_for(env)
        if view is None:
            return
        if any(isinstance(i, ChatItem) and i.message_id == payload.message_id
               for i in view.transcript[-50:]):
            return  # replayed after a resume
        view.transcript.append(ChatItem(
            message_id=payload.message_id, role=str(payload.author.role),
            name=payload.author.name, text=payload.text, ts=env.ts,
            draft_id=payload.draft_id, edited=payload.edited, seq=env.seq,
        ))
        view.summary = view.summary.model_copy(update={
            "last_message": payload.text, "last_message_at": env.ts,
            "last_seq": max(view.summary.last_seq, env.seq or 0),
        })
        is_customer = payload.author.role == p.Role.CUSTOMER
        if is_customer:
            view.customer_typing = False
            new = env.seq is None or env.seq > view.history_seq
            if new and (view.session_id != self._current or not self._active):
                view.unread += 1
            if new:
                self.customer_line.emit(view.session_id, payload.text)
        draft = view.draft
        if draft is not None and payload.draft_id == draft.turn_id and not is_customer:
            draft.state = "sent"
            self._emit_draft_now(view.session_id)
        self.transcript_changed.emit(view.session_id)
        self.session_updated.emit(view.session_id)
        self._maybe_reorder()

    def _on_session_gap(self, env: p.Envelope, payload: p.Payload) -> None:
        """The host lost seqs ``first_seq``..``last_seq`` (unclean stop): lines shown
        from there on are marked lost, and one gap line goes where the gap is (once,
        also when a replay or an older page brings the frame again)."""
        assert isinstance(payload, p.SessionGap)
        view = self._view_for(env)
        if view is None:
            return
        if any(isinstance(i, GapItem) and i.seq == env.seq for i in view.transcript):
            return
        lost = _mark_lost(view, payload.first_seq, payload.last_seq)
        view.transcript.append(GapItem(first_seq=payload.first_seq, last_seq=payload.last_seq,
                                       ts=env.ts, seq=env.seq, lost=lost))
        view.summary = view.summary.model_copy(update={
            "last_seq": max(view.summary.last_seq, env.seq or 0)})
        if lost:
            log.warning("session %s: the host lost %d line(s) shown here (seqs %d-%d)",
                        view.session_id, lost, payload.first_seq, payload.last_seq)
        self.transcript_changed.emit(view.session_id)
        self.session_updated.emit(view.session_id)

    def _on_history_reset(self, session_id: object, first_seq: object) -> None:
        """Slot for ``HostConnection.history_reset``: the connection held seqs from
        ``first_seq`` on that the host lost; mark them now (the gap frame follows)."""
        view = self._sessions.get(str(session_id))
        if view is not None and isinstance(first_seq, int) and _mark_lost(
                view, first_seq, None):
            self.transcript_changed.emit(view.session_id)

    def _on_typing(self, env: p.Envelope, payload: p.Payload) -> None:
        assert isinstance(payload, p.TypingState)
        view = self._view_for(env)
        if view is None or payload.role != p.Role.CUSTOMER:
            return
        view.customer_typing = payload.active
        self.typing_changed.emit(view.session_id)

    def _on_draft_started(self, env: p.Envelope, payload: p.Payload) -> None:
        assert isinstance(payload, p.DraftStarted)
        view = self._view_for(env)
        if view is None:
            return
        if view.draft is not None and view.draft.turn_id == payload.turn_id:
            return  # replay of the draft we already have
        if not self._merging:  # an older page's drafts were never in the editor
            self.undo.started(view.session_id, view.draft, payload.replaces,
                              payload.instruction, payload.reason)
        draft = self._new_draft(view, payload.turn_id, env.ts)
        draft.reason = payload.reason
        draft.provider = payload.provider
        self._emit_draft_now(view.session_id)

    @staticmethod
    def _new_draft(view: SessionView, turn_id: str, ts: float) -> Draft:
        if view.draft is not None:
            view.old_turns.add(view.draft.turn_id)
        view.draft = Draft(turn_id=turn_id, started_at=ts)
        return view.draft

    def _on_draft_delta(self, env: p.Envelope, payload: p.Payload) -> None:
        assert isinstance(payload, p.DraftDelta)
        view = self._view_for(env)
        if view is None:
            return
        draft = view.draft
        if draft is None or draft.turn_id != payload.turn_id:
            if payload.turn_id in view.old_turns:
                return  # a late delta of an older turn
            # draft.started missed (joined mid-draft): adopt the turn
            draft = self._new_draft(view, payload.turn_id, env.ts)
        if draft.state != "streaming":
            return  # completed/stale/failed text is authoritative
        have = len(draft.text)
        end = payload.offset + len(payload.text)
        if payload.offset > have:
            if not draft.gap:
                draft.gap = True
                log.warning("draft %s: delta gap (have %d chars, delta at %d)",
                            draft.turn_id, have, payload.offset)
                self.draft_gap.emit(view.session_id, draft.turn_id)
            return
        if end <= have:
            return  # duplicate
        draft.text += payload.text[have - payload.offset:]
        draft.revision += 1
        if draft.gap:
            # a catch-up delta (e.g. the whole text so far after a reconnect) closed it;
            # later deltas beyond our end still wait for draft.completed
            draft.gap = False
        self._dirty_drafts.add(view.session_id)
        if not self._draft_timer.isActive():
            self._draft_timer.start()

    def _on_draft_completed(self, env: p.Envelope, payload: p.Payload) -> None:
        assert isinstance(payload, p.DraftCompleted)
        view = self._view_for(env)
        if view is None:
            return
        draft = view.draft
        if draft is None or draft.turn_id != payload.turn_id:
            if payload.turn_id in view.old_turns:
                return
            draft = self._new_draft(view, payload.turn_id, env.ts)
        if draft.state in ("discarded", "sent", "stale"):
            return
        if draft.text != payload.text:
            draft.text = payload.text
            draft.revision += 1
        draft.gap = False
        draft.citations = list(payload.citations)
        draft.claims = list(payload.claims)
        draft.state = "completed"
        self._emit_draft_now(view.session_id)

    def _on_draft_stale(self, env: p.Envelope, payload: p.Payload) -> None:
        assert isinstance(payload, p.DraftStale)
        view = self._view_for(env)
        if view is not None and view.draft is None:
            self._orphan(view, env, payload)  # its draft.started is in an older page
        if view is None or view.draft is None or view.draft.turn_id != payload.turn_id:
            return
        if view.draft.state in ("sent", "discarded"):
            return
        view.draft.state = "stale"
        view.draft.stale_reason = payload.reason
        self._emit_draft_now(view.session_id)

    def _on_draft_failed(self, env: p.Envelope, payload: p.Payload) -> None:
        assert isinstance(payload, p.DraftFailed)
        view = self._view_for(env)
        if view is None:
            return
        if view.draft is None or view.draft.turn_id != payload.turn_id:
            if payload.turn_id in view.old_turns:
                return
            self._new_draft(view, payload.turn_id, env.ts)
        assert view.draft is not None
        view.draft.state = "failed"
        view.draft.error = payload.message
        self._emit_draft_now(view.session_id)

    def _on_articles(self, env: p.Envelope, payload: p.Payload) -> None:
        assert isinstance(payload, p.ArticlesFound)
        view = self._view_for(env)
        if view is None:
            return
        view.articles[payload.turn_id] = sorted(payload.articles, key=lambda a: -a.score)
        view.articles_turn = payload.turn_id
        self.articles_changed.emit(view.session_id)

    def _on_tool_call(self, env: p.Envelope, payload: p.Payload) -> None:
        assert isinstance(payload, p.ToolCall)
        view = self._view_for(env)
        if view is None or payload.call_id in view._tool_index:
            return
        view._tool_index[payload.call_id] = len(view.transcript)
        view.transcript.append(ToolItem(
            call_id=payload.call_id, name=payload.name, arguments=dict(payload.arguments),
            mode=payload.mode, ts=env.ts,
        ))
        self.transcript_changed.emit(view.session_id)

    def _on_tool_result(self, env: p.Envelope, payload: p.Payload) -> None:
        assert isinstance(payload, p.ToolResult)
        view = self._view_for(env)
        if view is None:
            return
        idx = view._tool_index.get(payload.call_id)
        if idx is None:
            view._tool_index[payload.call_id] = len(view.transcript)
            view.transcript.append(ToolItem(call_id=payload.call_id, name=payload.name,
                                            arguments={}, mode="auto", ts=env.ts))
            idx = len(view.transcript) - 1
        item = view.transcript[idx]
        assert isinstance(item, ToolItem)
        item.ok = payload.ok
        item.output = dict(payload.output)
        self.transcript_changed.emit(view.session_id)

    def _on_approval_created(self, env: p.Envelope, payload: p.Payload) -> None:
        assert isinstance(payload, p.ApprovalCreated)
        view = self._view_for(env)
        if view is None or payload.approval_id in view.approvals:
            return
        view.approvals[payload.approval_id] = Approval(
            approval_id=payload.approval_id, call_id=payload.call_id, tool=payload.tool,
            description=payload.description, arguments=dict(payload.arguments),
            schema=dict(payload.parameters_schema), expires_at=payload.expires_at,
            created_at=env.ts, updated_at=env.ts, summary=payload.summary,
            provenance=payload.provenance,
        )
        self._sync_pending(view)
        self.approvals_changed.emit(view.session_id)
        if env.seq is None or env.seq > view.history_seq:
            self.approval_arrived.emit(view.session_id, payload.approval_id)

    def _on_approval_updated(self, env: p.Envelope, payload: p.Payload) -> None:
        assert isinstance(payload, p.ApprovalUpdated)
        view = self._view_for(env)
        if view is None:
            return
        appr = view.approvals.get(payload.approval_id)
        if appr is None:
            if not self._orphan(view, env, payload):  # its card is in an older page
                log.warning("update for unknown approval %s", payload.approval_id)
            return
        appr.state = payload.state
        appr.updated_at = env.ts
        appr.by = payload.by or appr.by
        if payload.arguments is not None:
            appr.final_arguments = dict(payload.arguments)
        if payload.result is not None:
            appr.result = dict(payload.result)
        appr.error = payload.error or appr.error
        appr.reason = payload.reason or appr.reason
        self._sync_pending(view)
        self.approvals_changed.emit(view.session_id)
        self._mirror_on_tool_item(view, appr)
        if payload.state == "executed" and view.customer_requested:
            self.request_customer(view.session_id)  # the action changed the account

    def _mirror_on_tool_item(self, view: SessionView, appr: Approval) -> None:
        """Show an approval's outcome on its call in the transcript (the host sends no
        tool.result for approval calls; the approval update carries it)."""
        idx = view._tool_index.get(appr.call_id)
        if idx is None or appr.state not in FINAL_APPROVAL_STATES:
            return
        item = view.transcript[idx]
        if not isinstance(item, ToolItem) or item.output is not None:
            return
        item.ok = appr.state == "executed"
        if appr.result is not None:
            item.output = dict(appr.result)
        else:
            item.output = {"state": appr.state, "error": appr.error, "reason": appr.reason,
                           "by": appr.by}
        item.outcome = appr.state
        if appr.final_arguments is not None:
            item.arguments = dict(appr.final_arguments)
        self.transcript_changed.emit(view.session_id)

    def _sync_pending(self, view: SessionView) -> None:
        count = len(view.pending_approvals)
        if count != view.summary.pending_approvals:
            view.summary = view.summary.model_copy(update={"pending_approvals": count})
        self.session_updated.emit(view.session_id)

    def _on_assistant_status(self, env: p.Envelope, payload: p.Payload) -> None:
        assert isinstance(payload, p.AssistantStatus)
        self._status = payload
        self.assistant_status_changed.emit(payload)

    def _on_customer_details(self, env: p.Envelope, payload: p.Payload) -> None:
        assert isinstance(payload, p.CustomerDetails)
        view = self._view_for(env)
        if view is None:
            return
        view.customer = payload
        self.customer_changed.emit(view.session_id)

    def _on_article_content(self, env: p.Envelope, payload: p.Payload) -> None:
        assert isinstance(payload, p.ArticleContent)
        self.article_loaded.emit(payload)

    def _on_kb_results(self, env: p.Envelope, payload: p.Payload) -> None:
        assert isinstance(payload, p.KbResults)
        self.kb_results.emit(payload)

    def _on_error_message(self, env: p.Envelope, payload: p.Payload) -> None:
        assert isinstance(payload, p.ErrorPayload)
        self._refused(env.ref, payload.message)
        if self._intent_refused(env.ref, payload.code.value, payload.message, payload.details):
            return
        self._on_error(payload)

    def _refused(self, ref: str | None, message: str) -> None:
        """The host refused one of our approve/reject requests: let its card recover."""
        approval_id = self._refs.pop(ref, None) if ref else None
        if approval_id is not None:
            self.approval_failed.emit(approval_id, message)

    def _on_error(self, payload: p.ErrorPayload) -> None:
        log.info("host error %s: %s", payload.code, payload.message)
        self.error_occurred.emit(payload.message)

    # ------------------------------------------------------------------ the desk (issue 16)

    def _on_session_assigned(self, env: p.Envelope, payload: p.Payload) -> None:
        assert isinstance(payload, p.SessionAssigned)
        view = self._view_for(env)
        if view is None:
            return
        view.summary = view.summary.model_copy(update={"assignee": payload.assignee})
        view.transcript.append(NoteItem(assignment_note(payload), env.ts))
        self.transcript_changed.emit(view.session_id)
        self.assignment_changed.emit(view.session_id)
        self.session_updated.emit(view.session_id)
        self._maybe_reorder()

    def _on_note_added(self, env: p.Envelope, payload: p.Payload) -> None:
        assert isinstance(payload, p.NoteAdded)
        view = self._view_for(env)
        if view is None:
            return
        if any(isinstance(i, InternalNote) and i.note_id == payload.note_id
               for i in view.transcript[-50:]):
            return  # replayed after a resume
        view.transcript.append(InternalNote(
            note_id=payload.note_id, author=payload.author.name,
            role=str(payload.author.role), text=payload.text, ts=env.ts, seq=env.seq))
        self.transcript_changed.emit(view.session_id)

    def _on_status_changed(self, env: p.Envelope, payload: p.Payload) -> None:
        assert isinstance(payload, p.SessionStatusChanged)
        view = self._view_for(env)
        if view is None:
            return
        view.summary = view.summary.model_copy(update={"status": payload.status})
        view.transcript.append(NoteItem(status_note(payload), env.ts))
        self.transcript_changed.emit(view.session_id)
        self.status_changed.emit(view.session_id)
        self.session_updated.emit(view.session_id)
        self._maybe_reorder()

    def _on_macro_list(self, env: p.Envelope, payload: p.Payload) -> None:
        assert isinstance(payload, p.MacroList)
        self._macros = sorted(payload.macros, key=lambda m: m.name)
        self.macros_changed.emit()

    def _on_reps(self, env: p.Envelope, payload: p.Payload) -> None:
        """A colleague came online or went offline, or a rep link was added or removed:
        Transfer to… offers who is on the desk now, not who was at connect time."""
        assert isinstance(payload, p.RepsUpdated)
        self._reps = list(payload.reps)
        self.reps_changed.emit()

    def _on_search_results(self, env: p.Envelope, payload: p.Payload) -> None:
        assert isinstance(payload, p.SearchResults)
        if self._search_id is not None and env.ref not in (None, self._search_id):
            return  # an older search overtaken by a newer one
        self._search_id = None
        self.search_results.emit(payload)

    def _on_transcript(self, env: p.Envelope, payload: p.Payload) -> None:
        assert isinstance(payload, p.Transcript)
        if env.ref is not None:
            self._transcript_ids.discard(env.ref)
        self.transcript_ready.emit(payload)

    def _intent_refused(self, ref: str | None, code: str, message: str,
                        details: dict[str, Any] | None) -> bool:
        """A refusal of one of our desk requests, turned into the signal its view
        handles (True: handled, no status-bar error)."""
        if ref is None:
            return False
        if ref == self._search_id:
            self._search_id = None
            self.search_failed.emit(message)
            return True
        intent = self._intents.pop(ref, None)
        if intent is None:
            return False
        kind, sid, extra = intent
        if kind == "steer" and sid is not None:  # shown under the steer line
            self.steer_failed.emit(sid, message)
            return True
        if kind == "send" and code == "held_by_other" and sid is not None:
            text, draft_id = extra
            holder = (details or {}).get("assignee") if details else None
            name = holder.get("name") if isinstance(holder, dict) else None
            if name is None:
                other = self.held_by_other(sid)
                name = other.name if other is not None else "a colleague"
            view = self._sessions.get(sid)
            if view is not None:
                view.override_for = None  # it changed hands: ask again
            self.send_held.emit(sid, text, draft_id, str(name))
            return True
        if kind == "status" and code == "conflict" and sid is not None:
            # only the "actions still pending" refusal asks again; "resolved already"
            # is a plain error. HostConnection's error signal carries no details: the
            # count is then read from the host's sentence ("2 actions still await …")
            pending = (details or {}).get("pending") if details else None
            if not isinstance(pending, int):
                counted = re.match(r"(\d+) actions? still await", message)
                pending = int(counted.group(1)) if counted else None
            if pending is None or str(extra) != "resolved":
                return False
            self.status_refused.emit(sid, str(extra), pending)
            return True
        if kind == "transcript" and sid is not None:
            self._transcript_ids.discard(ref)
            self.transcript_failed.emit(sid, message)
            return True
        return False

    _handlers: dict[str, Callable[[Workspace, p.Envelope, p.Payload], None]] = {
        "welcome": _on_welcome,
        "error": _on_error_message,
        "session.list": _on_session_list,
        "session.opened": _on_session_opened,
        "session.updated": _on_session_updated,
        "session.closed": _on_session_closed,
        "session.reopened": _on_session_reopened,
        "session.gap": _on_session_gap,
        "chat.message": _on_chat_message,
        "typing": _on_typing,
        "draft.started": _on_draft_started,
        "draft.delta": _on_draft_delta,
        "draft.completed": _on_draft_completed,
        "draft.stale": _on_draft_stale,
        "draft.failed": _on_draft_failed,
        "articles": _on_articles,
        "tool.call": _on_tool_call,
        "tool.result": _on_tool_result,
        "approval.created": _on_approval_created,
        "approval.updated": _on_approval_updated,
        "assistant.status": _on_assistant_status,
        "customer.details": _on_customer_details,
        "identity.changed": _on_identity_changed,
        "customer.results": _on_customer_results,
        "article.content": _on_article_content,
        "kb.results": _on_kb_results,
        "session.assigned": _on_session_assigned,
        "note.added": _on_note_added,
        "session.status_changed": _on_status_changed,
        "macro.list": _on_macro_list,
        "reps": _on_reps,
        "search.results": _on_search_results,
        "transcript": _on_transcript,
    }

    # ------------------------------------------------------------------ draft coalescing

    def _flush_drafts(self) -> None:
        dirty, self._dirty_drafts = self._dirty_drafts, set()
        for sid in dirty:
            self.draft_changed.emit(sid)

    def _emit_draft_now(self, session_id: str) -> None:
        self._dirty_drafts.discard(session_id)
        self.draft_changed.emit(session_id)

    def flush(self) -> None:
        """Deliver pending coalesced draft updates now (tests, shutdown)."""
        self._draft_timer.stop()
        self._flush_drafts()

    # ------------------------------------------------------------------ intents

    def select_session(self, session_id: str) -> None:
        view = self._sessions.get(session_id)
        if view is None:
            return
        changed = session_id != self._current
        self._current = session_id
        if view.unread:
            view.unread = 0
            self.session_updated.emit(session_id)
        if not view.customer_requested:
            self.request_customer(session_id)
        if self._lazy:
            if view.history == "none":
                self._load_history(view)
        elif (view.summary.state == "closed" and view.seen_seq == 0
              and self._sync_fn is not None):
            # closed sessions are not replayed on connect: fetch the history on demand
            try:
                self._sync_fn(session_id)
            except Exception:
                log.exception("cannot sync session %s", session_id)
        if changed:
            self.current_session_changed.emit(session_id)

    def select_relative(self, step: int) -> None:
        """Move to the next (step=1) or previous (step=-1) session in inbox order."""
        order = [s.session_id for s in self.sessions()]
        if not order:
            return
        idx = order.index(self._current) if self._current in order else -1
        self.select_session(order[(idx + step) % len(order)])

    def _target(self, session_id: str | None) -> str | None:
        sid = session_id or self._current
        if sid is None:
            self.error_occurred.emit("Choose a conversation first")
        return sid

    def send_message(self, text: str, *, draft_id: str | None = None,
                     session_id: str | None = None, override: bool | None = None) -> bool:
        """Send a reply. ``override`` (default: when this representative already agreed
        for this session and holder) lets it into a session a colleague holds; a
        refusal by the host comes back as ``send_held`` with the text."""
        text = text.strip()
        sid = self._target(session_id)
        if not text or sid is None:
            return False
        if override is None:
            view = self._sessions.get(sid)
            holder = self.held_by_other(sid)
            override = bool(holder is not None and view is not None
                            and view.override_for == holder.rep_id)
        payload = p.ChatSend(text=text, draft_id=draft_id, override=override) if override \
            else p.ChatSend(text=text, draft_id=draft_id)
        return self._send(payload, sid, intent=("send", sid, (text, draft_id)))

    # --- the desk (issue 16): assignment, notes, status, macros, search, transcripts

    def take(self, session_id: str | None = None) -> bool:
        """Assign the session to this representative."""
        sid = self._target(session_id)
        return sid is not None and self._send(p.SessionAssign(action="take"), sid)

    def release(self, session_id: str | None = None) -> bool:
        """Leave the session unassigned (anyone's, again)."""
        sid = self._target(session_id)
        return sid is not None and self._send(p.SessionAssign(action="release"), sid)

    def transfer(self, rep_id: str, session_id: str | None = None) -> bool:
        """Hand the session to a colleague (``rep_id`` from :attr:`reps`)."""
        sid = self._target(session_id)
        return sid is not None and bool(rep_id) and self._send(
            p.SessionAssign(action="transfer", to=rep_id), sid)

    def add_note(self, text: str, session_id: str | None = None) -> bool:
        """An internal note: representatives see it, the customer never does."""
        text = text.strip()
        sid = self._target(session_id)
        if not text or sid is None:
            return False
        if len(text) > NOTE_MAX_CHARS:
            self.error_occurred.emit(f"A note holds at most {NOTE_MAX_CHARS} characters")
            return False
        return self._send(p.NoteAdd(text=text), sid)

    def set_status(self, status: str, *, force: bool = False,
                   session_id: str | None = None) -> bool:
        """open / waiting / resolved. Resolving with actions pending needs ``force``
        (the view asks first; the host refuses otherwise: ``status_refused``)."""
        sid = self._target(session_id)
        if sid is None or status not in ("open", "waiting", "resolved"):
            return False
        payload = p.SessionStatusSet(status=status, force=force)
        return self._send(payload, sid, intent=("status", sid, status))

    def request_macros(self) -> bool:
        return self._send(p.MacroListRequest(), None)

    def save_macro(self, name: str, text: str) -> bool:
        """Add or replace a saved reply (the dialog checks the name with
        ``client.desk.macro_name_problem`` first; the host checks again)."""
        from pydantic import ValidationError

        try:
            payload = p.MacroSave(name=name.strip(), text=text.strip())
        except ValidationError:
            self.error_occurred.emit("A macro needs a name of a-z, 0-9, _ or - and a text")
            return False
        return self._send(payload, None)

    def delete_macro(self, name: str) -> bool:
        return bool(name) and self._send(p.MacroDelete(name=name), None)

    def search(self, query: str, *, limit: int = 20, before: float | None = None) -> bool:
        """Full-text search over every conversation on the host (answer:
        ``search_results``; a newer search makes an older answer irrelevant)."""
        query = query.strip()[:200]
        if not query:
            return False
        msg_id = self._send_id(p.SearchRequest(query=query, limit=limit, before=before), None)
        self._search_id = msg_id
        return msg_id is not None

    def request_transcript(self, audience: str, session_id: str | None = None) -> str | None:
        """Ask for the session's transcript as Markdown (``customer``: what the customer
        saw; ``internal``: with notes, drafts and actions); answer: ``transcript_ready``."""
        sid = self._target(session_id)
        if sid is None or audience not in ("customer", "internal"):
            return None
        payload = p.TranscriptGet(audience=audience)
        msg_id = self._send_id(payload, sid, intent=("transcript", sid, audience))
        if msg_id is not None:
            self._transcript_ids.add(msg_id)
        return msg_id

    def open_session(self, session_id: str, title: str = "", at: float = 0.0) -> None:
        """Select a session, fetching it first when this window never had it (a search
        hit in a conversation that closed before we connected; ``at``: a time in it,
        shown until its history arrives)."""
        if session_id not in self._sessions:
            summary = p.SessionSummary(
                session_id=session_id, title=title or session_id, customer_id=None,
                customer_name=None, state="closed", created_at=at, last_seq=0)
            self._upsert_summary(summary)
        self.select_session(session_id)

    def set_typing(self, active: bool, session_id: str | None = None) -> bool:
        sid = session_id or self._current
        return sid is not None and self._send(p.Typing(active=active), sid)

    def approve(self, approval_id: str, arguments: dict[str, Any] | None = None,
                session_id: str | None = None) -> bool:
        sid = self._target(session_id or self._session_of_approval(approval_id))
        if sid is None:
            return False
        return self._send(p.ApprovalApprove(approval_id=approval_id, arguments=arguments), sid)

    def reject(self, approval_id: str, reason: str, session_id: str | None = None) -> bool:
        reason = reason.strip()
        sid = self._target(session_id or self._session_of_approval(approval_id))
        if sid is None or not reason:
            return False
        return self._send(p.ApprovalReject(approval_id=approval_id, reason=reason), sid)

    def regenerate(self, session_id: str | None = None) -> bool:
        sid = self._target(session_id)
        return sid is not None and self._send(p.DraftRegenerate(), sid)

    # -- steering (issue 16 item 4; client/steering.py keeps the replaced drafts)

    def steer(self, instruction: str, *, editor_text: str | None = None,
              session_id: str | None = None) -> bool:
        """Ask the co-pilot for a new draft of this reply following ``instruction``.
        ``editor_text``: what the representative has in the editor now, so Undo can
        give their edits back along with the draft."""
        instruction = " ".join(instruction.split())
        sid = self._target(session_id)
        view = self._sessions.get(sid) if sid else None
        if sid is None or view is None or not instruction:
            return False
        draft = view.draft
        live = draft is not None and draft.state not in ("sent", "discarded")
        if draft is not None and live:
            self.undo.snapshot(sid, draft.turn_id, editor_text)
        return self._send(p.DraftSteer(instruction=instruction[:p.MAX_STEER_CHARS],
                                       draft_id=draft.turn_id if draft and live else None), sid,
                          intent=("steer", sid, None))

    def can_undo(self, session_id: str | None = None) -> bool:
        sid = session_id or self._current
        return sid is not None and self.undo.depth(sid) > 0

    def undo_draft(self, session_id: str | None = None) -> UndoEntry[Draft] | None:
        """Show the draft the last steer replaced again (a draft still streaming is
        discarded on the host). The entry carries the editor text to give back."""
        sid = session_id or self._current
        view = self._sessions.get(sid) if sid else None
        entry = self.undo.pop(sid) if sid and view is not None else None
        if entry is None or view is None or sid is None:
            return None
        leaving = view.draft
        if leaving is not None:
            view.old_turns.add(leaving.turn_id)
            if leaving.state == "streaming":
                self._send(p.DraftDiscard(turn_id=leaving.turn_id), sid)
        view.old_turns.discard(entry.draft.turn_id)
        view.draft = entry.draft
        self._emit_draft_now(sid)
        return entry

    def discard(self, session_id: str | None = None) -> bool:
        sid = self._target(session_id)
        view = self._sessions.get(sid) if sid else None
        if sid is None or view is None or view.draft is None:
            return False
        ok = self._send(p.DraftDiscard(turn_id=view.draft.turn_id), sid)
        view.draft.state = "discarded"
        self._emit_draft_now(sid)
        return ok

    def close_session(self, session_id: str | None = None) -> bool:
        """Ask the host to close the conversation (it says who closed it, and why)."""
        sid = self._target(session_id)
        return sid is not None and self._send(p.SessionClose(), sid)

    def reopen_session(self, session_id: str | None = None) -> bool:
        """Ask the host to reopen a closed conversation (agents only)."""
        sid = self._target(session_id)
        return sid is not None and self._send(p.SessionReopen(), sid)

    def is_closed(self, session_id: str | None = None) -> bool:
        """Whether the session (default: the current one) is closed: read-only."""
        sid = session_id or self._current
        view = self._sessions.get(sid) if sid else None
        return view is not None and view.summary.state == "closed"

    def unread_total(self) -> int:
        return sum(v.unread for v in self._sessions.values())

    def request_customer(self, session_id: str | None = None) -> bool:
        sid = session_id or self._current
        view = self._sessions.get(sid) if sid else None
        if sid is None or view is None:
            return False
        view.customer_requested = True
        return self._send(p.CustomerGet(), sid)

    def search_customers(self, query: str, limit: int = 20) -> bool:
        """Find customer…: by name, email, customer id or order id (answer:
        ``customer_results``)."""
        query = query.strip()[:200]
        return bool(query) and self._send(p.CustomerSearch(query=query, limit=limit), None)

    def link_customer(self, customer_id: str, *, verified: bool = True,
                      session_id: str | None = None) -> bool:
        """Link the session to a shop customer: ``verified`` after the representative
        checked who they are, else only note who the visitor claims to be."""
        sid = session_id or self._current
        return sid is not None and self._send(
            p.IdentityLink(customer_id=customer_id, verified=verified), sid)

    def unlink_customer(self, reason: str | None = None,
                        session_id: str | None = None) -> bool:
        sid = session_id or self._current
        return sid is not None and self._send(
            p.IdentityUnlink(reason=(reason or "").strip()[:500] or None), sid)

    def request_article(self, article_id: str) -> bool:
        return self._send(p.ArticleGet(article_id=article_id), None)

    def search_kb(self, query: str, kind: str | None = None, limit: int = 50) -> bool:
        k: Literal["kb", "faq"] | None = kind if kind in ("kb", "faq") else None  # type: ignore[assignment]
        return self._send(p.KbSearch(query=query, kind=k, limit=limit), None)

    def _session_of_approval(self, approval_id: str) -> str | None:
        for view in self._sessions.values():
            if approval_id in view.approvals:
                return view.session_id
        return None

    def _send(self, payload: p.Payload, session: str | None, *,
              intent: tuple[str, str | None, Any] | None = None) -> bool:
        return self._send_id(payload, session, intent=intent) is not None

    def _send_id(self, payload: p.Payload, session: str | None, *,
                 intent: tuple[str, str | None, Any] | None = None) -> str | None:
        """Send; the message id when the connection gives one ("" when it gives none),
        None when nothing was sent."""
        kind = p.client_type(payload)
        if self._send_fn is None:
            log.warning("not connected: dropping %s", kind)
            self.error_occurred.emit("Not connected to the host")
            return None
        try:
            result = self._send_fn(payload, session)
        except Exception as exc:
            log.exception("sending %s failed", kind)
            self.error_occurred.emit(f"Could not send: {exc}")
            return None
        if isinstance(result, str) and isinstance(payload, p.ApprovalApprove | p.ApprovalReject):
            self._refs[result] = payload.approval_id
            if len(self._refs) > 200:  # answered ones are never removed by success
                self._refs.pop(next(iter(self._refs)))
        if isinstance(result, str) and intent is not None:
            self._intents[result] = intent
            if len(self._intents) > 200:  # accepted ones are never answered by an error
                self._intents.pop(next(iter(self._intents)))
        if inspect.isawaitable(result):
            self._supervise(result, kind)
        elif result is False:
            self.error_occurred.emit("Not connected to the host — will not send")
            return None
        self.intent_sent.emit(kind, payload)
        return result if isinstance(result, str) else ""

    def _supervise(self, awaitable: Any, kind: str) -> None:
        import asyncio

        task: asyncio.Task[Any] = asyncio.ensure_future(awaitable)
        self._tasks.add(task)

        def done(t: asyncio.Task[Any]) -> None:
            self._tasks.discard(t)
            if not t.cancelled() and t.exception() is not None:
                log.error("sending %s failed", kind, exc_info=t.exception())
                self.error_occurred.emit(f"Could not send {kind}: {t.exception()}")

        task.add_done_callback(done)

