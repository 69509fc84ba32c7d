"""The wire protocol: typed, versioned JSON messages (docs/PROTOCOL.md is the contract).

Pure data and validation, no I/O, so the relay, the client library and the
tests share one definition. Every frame is an :class:`Envelope`; its ``data``
is validated against the payload model registered for its ``type``.
Host-produced messages that belong to a session's history are *durable*: they
carry a per-session ``seq`` and are replayed on resume. Everything else is
*ephemeral* (``seq`` is null) and is never replayed.
"""

from __future__ import annotations

import json
import time
import uuid
from enum import StrEnum
from typing import Any, Final, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from hitl_desktop.core.insights import MAX_PERIOD_DAYS, ChangeRow, InsightsReport

PROTOCOL_VERSION: Final = 1
MAX_FRAME_BYTES: Final = 256 * 1024
MAX_TEXT_CHARS: Final = 8000
MAX_ID_CHARS: Final = 64


class Role(StrEnum):
    CUSTOMER = "customer"
    AGENT = "agent"
    ADMIN = "admin"


class Scope(StrEnum):
    """What a token may see: one session, or every session (desk agents, admins)."""

    SESSION = "session"
    DESK = "desk"
    LOBBY = "lobby"  # a customer link that opens a fresh session per use


class ErrorCode(StrEnum):
    """Stable error codes; clients may switch on these."""

    BAD_FRAME = "bad_frame"
    BAD_MESSAGE = "bad_message"
    UNKNOWN_TYPE = "unknown_type"
    UNSUPPORTED_VERSION = "unsupported_version"
    NOT_AUTHENTICATED = "not_authenticated"
    AUTH_FAILED = "auth_failed"
    FORBIDDEN = "forbidden"
    NOT_FOUND = "not_found"
    RATE_LIMITED = "rate_limited"
    CONFLICT = "conflict"
    EXPIRED = "expired"
    INVALID_ARGUMENTS = "invalid_arguments"
    SESSION_CLOSED = "session_closed"
    ASSISTANT_UNAVAILABLE = "assistant_unavailable"
    SIGN_IN_FAILED = "sign_in_failed"
    NOT_VERIFIED = "not_verified"
    UNSUPPORTED = "unsupported"  # e.g. a steering instruction the engine cannot follow
    HELD_BY_OTHER = "held_by_other"
    INTERNAL = "internal"


class CloseCode:
    """WebSocket close codes the host uses (4000-4999 are ours)."""

    NORMAL: Final = 1000
    GOING_AWAY: Final = 1001  # host shutting down: reconnect later
    MESSAGE_TOO_BIG: Final = 1009
    AUTH_FAILED: Final = 4001
    HELLO_TIMEOUT: Final = 4002
    TOO_MANY_ERRORS: Final = 4003
    UNSUPPORTED_VERSION: Final = 4004
    RATE_LIMITED: Final = 4008
    TRY_AGAIN_LATER: Final = 1013  # this client fell too far behind (slow reader): resume
    REVOKED: Final = 4010  # token revoked or session closed: do not reconnect


class _Payload(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, str_max_length=MAX_TEXT_CHARS)


Id = str  # validated by length in the envelope / payload fields


# --------------------------------------------------------------------- client -> host


class ClientInfo(_Payload):
    name: str = Field(default="unknown", max_length=64)
    version: str = Field(default="", max_length=32)


class Hello(_Payload):
    """First frame of every connection: presents the secret (never in the URL)."""

    token: str = Field(min_length=8, max_length=200)
    client: ClientInfo = ClientInfo()
    # session id -> last durable seq the client has seen (0 = nothing yet)
    resume: dict[str, int] = Field(default_factory=dict, max_length=5000)


class Ack(_Payload):
    seq: int = Field(ge=0)


class ChatSend(_Payload):
    text: str = Field(min_length=1, max_length=MAX_TEXT_CHARS)
    # the draft this text came from (agents); lets the host store draft vs sent
    draft_id: str | None = Field(default=None, max_length=MAX_ID_CHARS)
    # agents: send even though another representative holds the session (issue 16)
    override: bool = False


class Typing(_Payload):
    active: bool


class ApprovalApprove(_Payload):
    approval_id: str = Field(min_length=1, max_length=MAX_ID_CHARS)
    # edited arguments; validated against the tool's schema on the host
    arguments: dict[str, Any] | None = None


class ApprovalReject(_Payload):
    approval_id: str = Field(min_length=1, max_length=MAX_ID_CHARS)
    reason: str = Field(min_length=1, max_length=2000)


class DraftRegenerate(_Payload):
    pass


class DraftDiscard(_Payload):
    turn_id: str = Field(min_length=1, max_length=MAX_ID_CHARS)


# draft.steer (issue 16, steering the co-pilot) -------------------------------------

MAX_STEER_CHARS: Final = 500


class DraftSteer(_Payload):
    """A representative tells the co-pilot what to change about the draft ("shorter")."""

    instruction: str = Field(min_length=1, max_length=MAX_STEER_CHARS)
    # the draft being steered (the one in the agent's editor); null: the session's latest
    draft_id: str | None = Field(default=None, min_length=1, max_length=MAX_ID_CHARS)

    @model_validator(mode="after")
    def _not_blank(self) -> DraftSteer:
        if not self.instruction.strip():
            raise ValueError("instruction is blank")
        return self


class SessionCreate(_Payload):
    customer_id: str | None = Field(default=None, max_length=MAX_ID_CHARS)
    title: str | None = Field(default=None, max_length=200)


class SessionClose(_Payload):
    pass


class SessionReopen(_Payload):
    """An agent reopens a closed session (it becomes writable again for everyone)."""


MAX_SESSION_PAGE: Final = 500  # summaries in one session.list page
SESSION_PAGE: Final = 200  # summaries in a desk welcome / a session.list without limit


class SessionListRequest(_Payload):
    """One page of the desk's session summaries, most recent activity first (issue 18):
    ``cursor`` is the previous page's (None: the first page)."""

    cursor: str | None = Field(default=None, max_length=200)
    limit: int = Field(default=SESSION_PAGE, ge=1, le=MAX_SESSION_PAGE)


class SessionSync(_Payload):
    """Replay a session's durable messages with seq > ``after_seq`` (e.g. a desk agent
    opening a closed session it did not get on connect)."""

    after_seq: int = Field(default=0, ge=0)


# --- session.history (issue 18 item 2): a session's history, newest first, in pages
MAX_HISTORY_PAGE: Final = 200  # durable messages in one session.history page
HISTORY_PAGE: Final = 50  # ... when the request does not say


class SessionHistoryRequest(_Payload):
    """One page of a session's history, newest first: the latest ``limit`` durable
    messages with seq < ``before_seq`` (None: the newest). A desk opens a session with
    the newest page and asks for older ones as its user scrolls up."""

    before_seq: int | None = Field(default=None, ge=1)
    limit: int = Field(default=HISTORY_PAGE, ge=1, le=MAX_HISTORY_PAGE)


class CustomerGet(_Payload):
    pass


class ArticleGet(_Payload):
    article_id: str = Field(min_length=1, max_length=200)


class KbSearch(_Payload):
    query: str = Field(default="", max_length=500)
    kind: Literal["kb", "faq"] | None = None
    limit: int = Field(default=50, ge=1, le=200)


class InsightsGet(_Payload):
    """Ask for the insights of conversations opened in [start, end) (UNIX seconds)."""

    start: float = Field(ge=0)
    end: float = Field(ge=0)
    weak_score: float | None = Field(default=None, ge=0, le=1000)

    @model_validator(mode="after")
    def _period(self) -> InsightsGet:
        if not self.end > self.start:
            raise ValueError("end must be after start")
        if self.end - self.start > MAX_PERIOD_DAYS * 86400:
            raise ValueError(f"a report covers at most {MAX_PERIOD_DAYS} days")
        return self


class InsightsConversation(_Payload):
    """Ask what the representatives changed in the drafts of the envelope's session."""
class IdentitySignIn(_Payload):
    """A customer proves who they are: an email and an order number that belong together."""

    email: str = Field(min_length=3, max_length=254)
    order_id: str = Field(min_length=1, max_length=MAX_ID_CHARS)


class IdentityLink(_Payload):
    """A representative says who the session's customer is (``verified`` false: a claim)."""

    customer_id: str = Field(min_length=1, max_length=MAX_ID_CHARS)
    verified: bool = True


class IdentityUnlink(_Payload):
    reason: str | None = Field(default=None, max_length=500)


class CustomerSearch(_Payload):
    query: str = Field(min_length=1, max_length=200)
    limit: int = Field(default=20, ge=1, le=50)


# ----------------------------------------------------------------- desk (issue 16), client -> host

MAX_NOTE_CHARS: Final = 4000
MAX_MACRO_CHARS: Final = 4000
MACRO_NAME_PATTERN: Final = r"^[a-z0-9_-]+$"
AssignAction = Literal["take", "release", "transfer"]
DeskStatus = Literal["open", "waiting", "resolved"]


class SessionAssign(_Payload):
    """Take, release or transfer a session (desk representatives only)."""

    action: AssignAction
    to: str | None = Field(default=None, min_length=1, max_length=MAX_ID_CHARS)

    @model_validator(mode="after")
    def _target(self) -> SessionAssign:
        if (self.action == "transfer") != (self.to is not None):
            raise ValueError("to is required for transfer and must be null otherwise")
        return self


class NoteAdd(_Payload):
    """An internal note in the conversation: agents only, never sent to a customer."""

    text: str = Field(min_length=1, max_length=MAX_NOTE_CHARS)


class SessionStatusSet(_Payload):
    status: DeskStatus
    force: bool = False  # resolve even with pending approvals


class MacroListRequest(_Payload):
    pass


class MacroSave(_Payload):
    name: str = Field(min_length=1, max_length=40, pattern=MACRO_NAME_PATTERN)
    text: str = Field(min_length=1, max_length=MAX_MACRO_CHARS)


class MacroDelete(_Payload):
    name: str = Field(min_length=1, max_length=40, pattern=MACRO_NAME_PATTERN)


class SearchRequest(_Payload):
    """Full-text search over the chat lines and notes of every session (desk only)."""

    query: str = Field(min_length=1, max_length=200)
    limit: int = Field(default=20, ge=1, le=50)
    before: float | None = Field(default=None, ge=0)


class TranscriptGet(_Payload):
    audience: Literal["customer", "internal"]
    format: Literal["markdown"] = "markdown"


# --------------------------------------------------------------------- host -> client

IdentityStateName = Literal["anonymous", "claimed", "verified"]
VerifyMethod = Literal["link", "sign_in", "representative"]
IdentityAction = Literal["sign_in", "link", "claim", "unlink"]


class SessionIdentity(_Payload):
    """Who the session's customer is, as far as the host knows (owned by the host).

    ``anonymous``: nothing known. ``claimed``: a representative noted who the
    visitor says they are (``customer_id``); nothing is read or changed on that
    basis. ``verified``: ``customer_id`` is the customer, proven by ``method``
    (an issued link, the customer's sign-in, or the representative ``by``)."""

    state: IdentityStateName = "anonymous"
    customer_id: str | None = None
    customer_name: str | None = None
    method: VerifyMethod | None = None
    by: str | None = None
    at: float | None = None


class IdentityStatus(_Payload):
    """Ephemeral, customers only: what the customer window shows ("Signed in as ...")."""

    signed_in: bool
    customer_name: str | None = None
    method: VerifyMethod | None = None


class RepRef(_Payload):
    """A representative: a desk link's token id and the name on it."""

    rep_id: str
    name: str


class RepInfo(_Payload):
    rep_id: str
    name: str
    online: bool = False


class SessionSummary(_Payload):
    session_id: str
    title: str
    customer_id: str | None
    customer_name: str | None
    state: Literal["open", "closed"]
    created_at: float
    last_seq: int
    last_message: str | None = None
    last_message_at: float | None = None
    pending_approvals: int = 0
    clients: int = 0
    messages: int = 0  # chat lines so far (customer and agent)
    identity: SessionIdentity = SessionIdentity()
    number: int = 0  # the host's running number of the session ("Visitor #N")
    customer_online: bool = False  # a customer window is connected right now
    # issue 16: who holds the session, its desk status, the oldest unanswered customer line
    assignee: RepRef | None = None
    status: DeskStatus = "open"
    waiting_since: float | None = None


class Welcome(_Payload):
    protocol: int
    role: Role
    scope: Scope
    # the session a customer or session agent is bound to (None for desk/admin)
    session_id: str | None
    sessions: list[SessionSummary]
    server: dict[str, Any]
    heartbeat_s: float
    # a lobby customer gets a personal token for reconnecting to *its* session
    resume_token: str | None = None
    display_name: str | None = None
    # customers: whether they are signed in, and as whom (later changes: identity.state)
    identity: IdentityStatus | None = None
    # desk agents and admins: who you are as a representative, and the desk's representatives
    you: RepRef | None = None
    reps: list[RepInfo] = Field(default_factory=list)
    # desk agents and admins: ``sessions`` is the first page; session.list {cursor} pages on
    cursor: str | None = None


class ErrorPayload(_Payload):
    code: ErrorCode
    message: str
    retry_after: float | None = None
    details: dict[str, Any] | None = None


class Author(_Payload):
    role: Role | Literal["assistant", "system"]
    name: str


class SessionOpened(_Payload):
    """Durable seq 1 of every session."""

    summary: SessionSummary
    greeting: str | None = None


class SessionUpdated(_Payload):
    """Ephemeral inbox update for desk agents and admins."""

    summary: SessionSummary


class SessionClosed(_Payload):
    by: str
    reason: str | None = None


class SessionReopened(_Payload):
    by: str


class SessionGap(_Payload):
    """Seqs ``first_seq``..``last_seq`` of this session do not exist on the host: its log
    lost its end (power cut) or the numbers were reserved and never used. A client
    holding any of them holds messages the host no longer has."""

    first_seq: int
    last_seq: int
    reason: str


class ChatMessage(_Payload):
    message_id: str
    author: Author
    text: str
    draft_id: str | None = None
    # for agent sends: was the sent text different from the draft?
    edited: bool | None = None


class ChatDelivered(_Payload):
    """Ephemeral: the other side has received messages up to ``seq``."""

    seq: int
    by: Role


class TypingState(_Payload):
    role: Role | Literal["assistant"]
    active: bool


class DraftStarted(_Payload):
    turn_id: str
    reason: Literal["customer_message", "approval", "rejection", "regenerate", "tool_result",
                    "steer"]
    provider: str
    # draft.steer: the representative's instruction and the draft this one replaces
    instruction: str | None = None
    replaces: str | None = None


class DraftDelta(_Payload):
    """Ephemeral; ``offset`` is the draft length before this delta, so gaps show."""

    turn_id: str
    offset: int = Field(ge=0)
    text: str = Field(max_length=1_000_000)


class Citation(_Payload):
    article_id: str
    title: str
    quote: str | None = None


class DraftClaim(_Payload):
    """A draft sentence stating an outcome that has not happened (host-side check)."""

    tool: str
    sentence: str
    reason: str


class DraftCompleted(_Payload):
    turn_id: str
    text: str = Field(max_length=1_000_000)
    citations: list[Citation] = Field(default_factory=list)
    claims: list[DraftClaim] = Field(default_factory=list)


class TurnEnded(_Payload):
    """The assistant is done with the message (or decision) that started this turn."""

    turn_id: str
    outcome: Literal["completed", "failed", "stale"]
    reason: str


class DraftStale(_Payload):
    turn_id: str
    reason: str


class DraftFailed(_Payload):
    turn_id: str
    code: ErrorCode
    message: str


class Article(_Payload):
    article_id: str
    title: str
    kind: str
    snippet: str = Field(max_length=4000)
    score: float
    path: str | None = None


class ArticlesFound(_Payload):
    turn_id: str
    articles: list[Article]


class ToolCallDelta(_Payload):
    """Ephemeral: a tool call's arguments while they stream."""

    turn_id: str
    call_id: str
    name: str
    arguments_partial: dict[str, Any]


class ToolCall(_Payload):
    turn_id: str
    call_id: str
    name: str
    arguments: dict[str, Any]
    mode: Literal["auto", "approval"]


class ToolResult(_Payload):
    call_id: str
    name: str
    ok: bool
    output: dict[str, Any]


class Provenance(_Payload):
    """Which customer message led to a proposed action, quoted as the customer's words."""

    message_id: str | None = None
    quote: str
    flagged: bool = False
    signs: list[str] = Field(default_factory=list)  # why it looks like instructions
    copied_into: list[str] = Field(default_factory=list)  # arguments quoting the customer
    # draft.steer: the representative's instructions in force when it was proposed
    instruction: str | None = None
    instructed_by: str | None = None


class ApprovalCreated(_Payload):
    approval_id: str
    call_id: str
    tool: str
    description: str
    arguments: dict[str, Any]
    parameters_schema: dict[str, Any]
    expires_at: float | None
    summary: str | None = None  # what approving will do, from the host's dry run
    provenance: Provenance | None = None


class ApprovalUpdated(_Payload):
    approval_id: str
    state: Literal["executed", "failed", "rejected", "expired", "cancelled"]
    by: str | None = None
    arguments: dict[str, Any] | None = None
    result: dict[str, Any] | None = None
    error: str | None = None
    reason: str | None = None


class AssistantStatus(_Payload):
    """Ephemeral: what engine drafts replies, and whether it is healthy."""

    provider: str
    model: str | None
    is_ai: bool
    state: Literal["ready", "busy", "error", "unconfigured"]
    message: str | None = None


class SessionList(_Payload):
    sessions: list[SessionSummary]
    # where the next page starts (session.list {cursor}); None: this was the last page
    cursor: str | None = None


class SessionHistory(_Payload):
    """Answer to ``session.history``: the page covers every seq from ``first_seq`` to
    ``last_seq`` (both null when empty); ``frames`` are its durable envelopes the
    connection may receive, oldest first; ``more``: older messages exist."""

    before_seq: int | None
    first_seq: int | None
    last_seq: int | None
    more: bool
    frames: list[dict[str, Any]]


class SessionCreated(_Payload):
    session_id: str
    customer_link: str
    agent_link: str


class CustomerDetails(_Payload):
    customer: dict[str, Any] | None
    orders: list[dict[str, Any]]
    identity: SessionIdentity | None = None


class CustomerMatch(_Payload):
    customer_id: str
    name: str
    email: str
    order_count: int = 0


class CustomerResults(_Payload):
    query: str
    customers: list[CustomerMatch]


class IdentityChanged(_Payload):
    """Durable, agents only: the session's identity changed, and who changed it (audit)."""

    identity: SessionIdentity
    previous: SessionIdentity
    action: IdentityAction
    by: str
    reason: str | None = None


class ArticleContent(_Payload):
    article_id: str
    title: str
    kind: str
    markdown: str = Field(max_length=1_000_000)


class KbResults(_Payload):
    query: str
    articles: list[Article]


class InsightsReportData(_Payload):
    report: InsightsReport


class InsightsChanges(_Payload):
    session_id: str
    changes: list[ChangeRow]


# ----------------------------------------------------------------- desk (issue 16), host -> client


class SessionAssigned(_Payload):
    """Durable, agents only: the session's holder changed (``None``: unassigned)."""

    assignee: RepRef | None
    by: str
    previous: RepRef | None = None


class NoteAdded(_Payload):
    """Durable, agents only: an internal note."""

    note_id: str
    author: Author
    text: str


class SessionStatusChanged(_Payload):
    """Durable, agents only: open / waiting (on the customer) / resolved."""

    status: DeskStatus
    by: str
    previous: DeskStatus


class Macro(_Payload):
    name: str
    text: str
    updated_by: str
    updated_at: float


class MacroList(_Payload):
    macros: list[Macro]


class SearchHit(_Payload):
    session_id: str
    seq: int
    title: str
    snippet: str
    at: float
    author_role: str
    kind: Literal["chat", "note"] = "chat"


class SearchResults(_Payload):
    query: str
    hits: list[SearchHit]


class RepsUpdated(_Payload):
    """Ephemeral, desk agents and admins: the representatives changed (one came online or
    went offline, or a link was added or removed)."""

    reps: list[RepInfo]


class Transcript(_Payload):
    session_id: str
    audience: Literal["customer", "internal"]
    markdown: str = Field(max_length=2_000_000)


# --------------------------------------------------------------------- registry


class MessageSpec:
    """What the protocol says about one message type."""

    __slots__ = ("durable", "payload", "senders", "session_required", "type")

    def __init__(
        self,
        type_: str,
        payload: type[_Payload],
        *,
        senders: frozenset[Role] = frozenset(),
        durable: bool = False,
        session_required: bool = False,
    ) -> None:
        self.type = type_
        self.payload = payload
        self.senders = senders  # empty = host only
        self.durable = durable
        self.session_required = session_required


_ALL = frozenset(Role)
_AGENTS = frozenset({Role.AGENT, Role.ADMIN})

CLIENT_MESSAGES: Final[dict[str, MessageSpec]] = {
    s.type: s
    for s in (
        MessageSpec("hello", Hello, senders=_ALL),
        MessageSpec("ack", Ack, senders=_ALL, session_required=True),
        MessageSpec("chat.send", ChatSend, senders=_ALL, session_required=True),
        MessageSpec("typing", Typing, senders=_ALL, session_required=True),
        MessageSpec("approval.approve", ApprovalApprove, senders=_AGENTS, session_required=True),
        MessageSpec("approval.reject", ApprovalReject, senders=_AGENTS, session_required=True),
        MessageSpec("draft.regenerate", DraftRegenerate, senders=_AGENTS, session_required=True),
        MessageSpec("draft.discard", DraftDiscard, senders=_AGENTS, session_required=True),
        MessageSpec("draft.steer", DraftSteer, senders=_AGENTS, session_required=True),
        MessageSpec("session.create", SessionCreate, senders=frozenset({Role.ADMIN})),
        MessageSpec("session.close", SessionClose, senders=_AGENTS, session_required=True),
        MessageSpec("session.reopen", SessionReopen, senders=_AGENTS, session_required=True),
        MessageSpec("session.list", SessionListRequest, senders=_AGENTS),
        MessageSpec("session.sync", SessionSync, senders=_ALL, session_required=True),
        MessageSpec("session.history", SessionHistoryRequest, senders=_ALL,
                    session_required=True),
        MessageSpec("customer.get", CustomerGet, senders=_AGENTS, session_required=True),
        MessageSpec("article.get", ArticleGet, senders=_AGENTS),
        MessageSpec("kb.search", KbSearch, senders=_AGENTS),
        MessageSpec("insights.get", InsightsGet, senders=_AGENTS),
        MessageSpec("insights.conversation", InsightsConversation, senders=_AGENTS,
                    session_required=True),
        MessageSpec("identity.sign_in", IdentitySignIn, senders=frozenset({Role.CUSTOMER}),
                    session_required=True),
        MessageSpec("identity.link", IdentityLink, senders=_AGENTS, session_required=True),
        MessageSpec("identity.unlink", IdentityUnlink, senders=_AGENTS, session_required=True),
        MessageSpec("customer.search", CustomerSearch, senders=_AGENTS),
        # the desk (issue 16); desk scope only, except note.add (session agents too)
        MessageSpec("session.assign", SessionAssign, senders=_AGENTS, session_required=True),
        MessageSpec("note.add", NoteAdd, senders=_AGENTS, session_required=True),
        MessageSpec("session.status", SessionStatusSet, senders=_AGENTS, session_required=True),
        MessageSpec("macro.list", MacroListRequest, senders=_AGENTS),
        MessageSpec("macro.save", MacroSave, senders=_AGENTS),
        MessageSpec("macro.delete", MacroDelete, senders=_AGENTS),
        MessageSpec("search", SearchRequest, senders=_AGENTS),
        MessageSpec("transcript.get", TranscriptGet, senders=_AGENTS, session_required=True),
    )
}

HOST_MESSAGES: Final[dict[str, MessageSpec]] = {
    s.type: s
    for s in (
        MessageSpec("welcome", Welcome),
        MessageSpec("error", ErrorPayload),
        MessageSpec("session.opened", SessionOpened, durable=True, session_required=True),
        MessageSpec("session.updated", SessionUpdated, session_required=True),
        MessageSpec("session.closed", SessionClosed, durable=True, session_required=True),
        MessageSpec("session.reopened", SessionReopened, durable=True, session_required=True),
        MessageSpec("session.gap", SessionGap, durable=True, session_required=True),
        MessageSpec("chat.message", ChatMessage, durable=True, session_required=True),
        MessageSpec("chat.delivered", ChatDelivered, session_required=True),
        MessageSpec("typing", TypingState, session_required=True),
        MessageSpec("draft.started", DraftStarted, durable=True, session_required=True),
        MessageSpec("draft.delta", DraftDelta, session_required=True),
        MessageSpec("draft.completed", DraftCompleted, durable=True, session_required=True),
        MessageSpec("draft.stale", DraftStale, durable=True, session_required=True),
        MessageSpec("draft.failed", DraftFailed, durable=True, session_required=True),
        MessageSpec("turn.ended", TurnEnded, durable=True, session_required=True),
        MessageSpec("articles", ArticlesFound, durable=True, session_required=True),
        MessageSpec("tool.call.delta", ToolCallDelta, session_required=True),
        MessageSpec("tool.call", ToolCall, durable=True, session_required=True),
        MessageSpec("tool.result", ToolResult, durable=True, session_required=True),
        MessageSpec("approval.created", ApprovalCreated, durable=True, session_required=True),
        MessageSpec("approval.updated", ApprovalUpdated, durable=True, session_required=True),
        MessageSpec("assistant.status", AssistantStatus),
        MessageSpec("session.list", SessionList),
        MessageSpec("session.history", SessionHistory, session_required=True),
        MessageSpec("session.created", SessionCreated),
        MessageSpec("customer.details", CustomerDetails, session_required=True),
        MessageSpec("article.content", ArticleContent),
        MessageSpec("kb.results", KbResults),
        MessageSpec("insights.report", InsightsReportData),
        MessageSpec("insights.changes", InsightsChanges, session_required=True),
        MessageSpec("identity.changed", IdentityChanged, durable=True, session_required=True),
        MessageSpec("identity.state", IdentityStatus, session_required=True),
        MessageSpec("customer.results", CustomerResults),
        # the desk (issue 16)
        MessageSpec("session.assigned", SessionAssigned, durable=True, session_required=True),
        MessageSpec("note.added", NoteAdded, durable=True, session_required=True),
        MessageSpec("session.status_changed", SessionStatusChanged, durable=True,
                    session_required=True),
        MessageSpec("macro.list", MacroList),
        MessageSpec("search.results", SearchResults),
        MessageSpec("transcript", Transcript, session_required=True),
        MessageSpec("reps", RepsUpdated),
    )
}

# Durable host messages that only agents see (customers see chat, typing, receipts,
# and the session's open/close). The relay filters on this.
AGENT_ONLY_TYPES: Final = frozenset(
    {
        "draft.started",
        "draft.delta",
        "draft.completed",
        "draft.stale",
        "draft.failed",
        "turn.ended",
        "articles",
        "tool.call.delta",
        "tool.call",
        "tool.result",
        "approval.created",
        "approval.updated",
        "assistant.status",
        "session.updated",
        "identity.changed",
        # the desk (issue 16)
        "session.assigned",
        "note.added",
        "session.status_changed",
    }
)


class Envelope(BaseModel):
    """The frame around every message, in both directions."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    v: int
    type: str = Field(min_length=1, max_length=64)
    id: str = Field(min_length=1, max_length=MAX_ID_CHARS)
    session: str | None = Field(default=None, max_length=MAX_ID_CHARS)
    seq: int | None = Field(default=None, ge=1)
    ts: float
    ref: str | None = Field(default=None, max_length=MAX_ID_CHARS)
    data: dict[str, Any]


class ProtocolError(Exception):
    """A frame the protocol rejects; carries the code and the offending id."""

    def __init__(self, code: ErrorCode, message: str, *, ref: str | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.ref = ref


def new_id(prefix: str = "m") -> str:
    return f"{prefix}_{uuid.uuid4().hex[:20]}"


def _parse_json(frame: str | bytes) -> dict[str, Any]:
    if isinstance(frame, bytes):
        raise ProtocolError(ErrorCode.BAD_FRAME, "binary frames are not part of the protocol")
    try:
        obj = json.loads(frame)
    except (ValueError, RecursionError) as exc:
        raise ProtocolError(ErrorCode.BAD_FRAME, f"frame is not JSON: {exc}") from None
    if not isinstance(obj, dict):
        raise ProtocolError(ErrorCode.BAD_FRAME, "frame must be a JSON object")
    return obj


def safe_ref(value: object) -> str | None:
    """A client's ``id`` fit to quote back as ``ref``: a str of at most MAX_ID_CHARS that
    is valid Unicode (a lone surrogate such as ``"\\ud800"`` cannot be sent as UTF-8)."""
    if type(value) is not str or len(value) > MAX_ID_CHARS:
        return None
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return None
    return value


def _envelope(obj: dict[str, Any]) -> Envelope:
    ref = safe_ref(obj.get("id"))
    if obj.get("v") != PROTOCOL_VERSION and "v" in obj and isinstance(obj["v"], int):
        raise ProtocolError(
            ErrorCode.UNSUPPORTED_VERSION,
            f"protocol version {obj['v']} is not supported (this host speaks {PROTOCOL_VERSION})",
            ref=ref,
        )
    try:
        return Envelope.model_validate(obj, strict=True)
    except ValidationError as exc:
        raise ProtocolError(ErrorCode.BAD_MESSAGE, _first_error(exc), ref=ref) from None


def _first_error(exc: ValidationError) -> str:
    err = exc.errors()[0]
    where = ".".join(str(p) for p in err["loc"]) or "message"
    return f"{where}: {err['msg']}"


def decode(
    frame: str | bytes, registry: dict[str, MessageSpec], *, strict: bool = False
) -> tuple[Envelope, _Payload, MessageSpec]:
    """Parse and validate one frame against ``registry``; raise ProtocolError.

    ``strict`` (used for client frames on the host) also refuses coercions in the
    payload, e.g. ``"3"`` for an integer."""
    env = _envelope(_parse_json(frame))
    spec = registry.get(env.type)
    if spec is None:
        raise ProtocolError(
            ErrorCode.UNKNOWN_TYPE, f"unknown message type {env.type!r}", ref=env.id
        )
    if spec.session_required and env.session is None:
        raise ProtocolError(ErrorCode.BAD_MESSAGE, f"{env.type} needs a session", ref=env.id)
    try:
        payload = spec.payload.model_validate(env.data, strict=strict)
    except ValidationError as exc:
        raise ProtocolError(ErrorCode.BAD_MESSAGE, _first_error(exc), ref=env.id) from None
    return env, payload, spec


def decode_history_frame(obj: dict[str, Any]) -> tuple[Envelope, _Payload, MessageSpec]:
    """One envelope of a ``session.history`` page (already parsed JSON), validated like
    a host frame (``decode_host``); ProtocolError if it is not a durable host message."""
    env = _envelope(obj)
    spec = HOST_MESSAGES.get(env.type)
    if spec is None or not spec.durable or env.seq is None or env.session is None:
        raise ProtocolError(ErrorCode.BAD_MESSAGE, f"not a durable message: {env.type!r}",
                            ref=env.id)
    try:
        payload = spec.payload.model_validate(env.data)
    except ValidationError as exc:
        raise ProtocolError(ErrorCode.BAD_MESSAGE, _first_error(exc), ref=env.id) from None
    return env, payload, spec


def decode_client(frame: str | bytes) -> tuple[Envelope, _Payload, MessageSpec]:
    return decode(frame, CLIENT_MESSAGES, strict=True)


def decode_host(frame: str | bytes) -> tuple[Envelope, _Payload, MessageSpec]:
    return decode(frame, HOST_MESSAGES)


def type_of(payload: _Payload, registry: dict[str, MessageSpec]) -> str:
    for spec in registry.values():
        if type(payload) is spec.payload:
            return spec.type
    raise KeyError(type(payload).__name__)


_HOST_TYPE_BY_PAYLOAD: Final = {spec.payload: t for t, spec in HOST_MESSAGES.items()}
_CLIENT_TYPE_BY_PAYLOAD: Final = {spec.payload: t for t, spec in CLIENT_MESSAGES.items()}
# "typing" and "session.list" share names across directions with different payloads.


def host_type(payload: _Payload) -> str:
    return _HOST_TYPE_BY_PAYLOAD[type(payload)]


def client_type(payload: _Payload) -> str:
    return _CLIENT_TYPE_BY_PAYLOAD[type(payload)]


def encode_data(
    type_: str,
    data: dict[str, Any],
    *,
    session: str | None = None,
    seq: int | None = None,
    msg_id: str | None = None,
    ref: str | None = None,
    ts: float | None = None,
) -> str:
    """Like :func:`encode` for a ``data`` dict the caller built to match the payload
    model exactly (the relay's hot path skips pydantic; tests check both agree)."""
    return json.dumps(
        {
            "v": PROTOCOL_VERSION,
            "type": type_,
            "id": msg_id or new_id(),
            "session": session,
            "seq": seq,
            "ts": time.time() if ts is None else ts,
            "ref": ref,
            "data": data,
        },
        separators=(",", ":"),
        ensure_ascii=False,
    )


def encode(
    type_: str,
    payload: _Payload,
    *,
    session: str | None = None,
    seq: int | None = None,
    msg_id: str | None = None,
    ref: str | None = None,
    ts: float | None = None,
) -> str:
    """Serialise one message; the inverse of :func:`decode`."""
    return encode_data(
        type_, payload.model_dump(mode="json"),
        session=session, seq=seq, msg_id=msg_id, ref=ref, ts=ts,
    )


def error_frame(
    code: ErrorCode,
    message: str,
    *,
    ref: str | None = None,
    session: str | None = None,
    retry_after: float | None = None,
    details: dict[str, Any] | None = None,
) -> str:
    return encode(
        "error",
        ErrorPayload(code=code, message=message, retry_after=retry_after, details=details),
        session=session,
        ref=ref,
    )


Payload = _Payload
