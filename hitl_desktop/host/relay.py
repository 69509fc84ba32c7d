"""The session relay: authenticates connections, checks every operation, logs, fans out.

Design, in the spirit of ``websockets`` itself: the protocol rules (which role
may do what, what a customer may see, how resume works) live in plain methods
on :class:`Relay`; I/O is confined to the per-connection reader (the handler
coroutine) and a per-connection writer task. Every outgoing frame goes through
the connection's own queue (or, when that queue is empty and the socket keeps
up, straight to the socket: same order, no task wake-up), which gives three
properties at once:

* order: replayed history is queued before the connection is registered for
  live fan-out, and nothing awaits in between, so a client sees seq N+1 only
  after seq N, with no duplicates and no gaps;
* isolation: a slow or stuck client only fills its own queue (and is
  disconnected with 1013 when it overflows); it never blocks the fan-out;
* cheap fan-out: a frame is encoded once and the same string is queued for
  every recipient.

Hot path (a chat line): ``chat.send`` is checked by hand (:func:`relay_core.fast_parse`, as
strict as the pydantic models, which take every other frame), appended to the
SQLite log, then written to the agents' and the customer's sockets.

The relay implements :class:`hitl_desktop.core.ports.SessionOutbox` for the
co-pilot, and calls a :class:`~hitl_desktop.core.ports.Copilot` after it has
validated, authorised and logged a client's message.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import json
import logging
import ssl
import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import Any, cast

from pydantic import TypeAdapter
from websockets.datastructures import Headers
from websockets.http11 import Request, Response

from hitl_desktop import __version__
from hitl_desktop.core import identity as ident
from hitl_desktop.core.ports import (
    CAUSE,
    Copilot,
    CustomerDirectory,
    NullCopilot,
    OperationError,
    SessionOutbox,
)
from hitl_desktop.core.protocol import (
    HOST_MESSAGES,
    PROTOCOL_VERSION,
    SESSION_PAGE,
    Ack,
    ApprovalApprove,
    ApprovalReject,
    ArticleGet,
    AssistantStatus,
    ChatDelivered,
    ChatSend,
    CloseCode,
    CustomerDetails,
    CustomerResults,
    CustomerSearch,
    DraftDelta,
    DraftDiscard,
    DraftSteer,
    Envelope,
    ErrorCode,
    Hello,
    IdentityAction,
    IdentityChanged,
    IdentityLink,
    IdentitySignIn,
    IdentityUnlink,
    InsightsChanges,
    InsightsGet,
    InsightsReportData,
    KbSearch,
    MessageSpec,
    Payload,
    ProtocolError,
    Role,
    Scope,
    SessionClosed,
    SessionCreate,
    SessionCreated,
    SessionHistory,
    SessionHistoryRequest,
    SessionIdentity,
    SessionList,
    SessionListRequest,
    SessionReopened,
    SessionSummary,
    SessionSync,
    SessionUpdated,
    Typing,
    TypingState,
    Welcome,
    decode_client,
    encode,
    error_frame,
    host_type,
)
from hitl_desktop.core.tasks import TaskSupervisor
from hitl_desktop.host.desk import DESK_HEAVY, DESK_TYPES, Desk
from hitl_desktop.host.insights import InsightsService
from hitl_desktop.host.log import GROUPED_TYPES, RelayLog, SessionRow, fast_id
from hitl_desktop.host.ratelimit import TokenBucket
from hitl_desktop.host.relay_core import (
    HEAVY_TYPES,
    Buckets,
    FrameLimits,
    InboxSnapshots,
    RateDrop,
    Refusal,
    RelayConfig,
    Replays,
    SessionKey,
    SessionView,
    SyncDecision,
    ack_to_send,
    authorize,
    decode_page_cursor,
    encode_page_cursor,
    fast_parse,
    history_before,
    history_page,
    is_chat_send,
    may_receive,
    over_cap,
    over_queue,
    page_frames,
    ref_of,
    resume_plan,
    snapshot_page,
    unclean_gap,
)
from hitl_desktop.host.tokens import TokenKind, TokenRecord, Tokens
from hitl_desktop.host.transport import Closed, Rest, WsConn, WsServer, text_frame

__all__ = ["Conn", "CopilotFactory", "CreatedSession", "LinkBuilder", "Relay", "RelayConfig",
           "SessionState"]  # RelayConfig lives in relay_core; this stays its public home

log = logging.getLogger(__name__)
SHUTDOWN_GRACE_S = 2.0  # how long a stopping host lets operations under way finish

CopilotFactory = Callable[[SessionOutbox], Copilot]
LinkBuilder = Callable[[TokenKind, str], str]

_CLOSE = object()  # queue sentinel: (the writer closes after everything before it)
UNVERIFIED_NAME = "Customer"  # how an unverified customer's chat lines are signed


@dataclass(frozen=True, slots=True)
class CreatedSession:
    session_id: str
    customer_token: str
    agent_token: str
    customer_link: str
    agent_link: str


class Conn:
    """One authenticated client connection and its outgoing queue."""

    __slots__ = (
        "addr",
        "closed",
        "drained",
        "idle",
        "limits",
        "name",
        "out",
        "out_bytes",
        "relay",
        "replay_budget",
        "replays",
        "role",
        "role_name",
        "scope",
        "sent",
        "session_id",
        "stall_since",
        "token",
        "wake",
        "writer",
        "ws",
    )

    def __init__(
        self, relay: Relay, ws: WsConn, token: TokenRecord, session_id: str | None,
        name: str, bucket: TokenBucket,
    ) -> None:
        self.relay = relay
        self.ws = ws
        self.addr = _peer_ip(ws)
        self.token = token
        self.role: Role = token.role
        self.role_name: str = token.role.value  # (an Enum's .value is a property call)
        self.scope: Scope = token.scope
        self.session_id = session_id  # bound session (customers, session agents)
        self.name = name
        cfg = relay.config
        # the rate budget (the bucket is shared by every connection of the same token)
        # and the error count: relay_core decides, the relay acts
        self.limits = FrameLimits(cfg, bucket, heavy=_HEAVY)
        self.out: collections.deque[object] = collections.deque()
        self.out_bytes = 0  # characters of the frames in ``out``
        self.wake = asyncio.Event()
        self.closed = False
        self.writer: asyncio.Task[None] | None = None
        self.idle = False  # the writer waits for work (nothing queued, no send in flight)
        # replays still to send (relay_core.Replays): pages are read from the log only
        # when the queue is empty; live frames of a session being replayed are skipped
        self.replays = Replays()
        self.replay_budget = TokenBucket(cfg.replay_rate_bytes, cfg.replay_burst_bytes)
        self.sent = 0  # characters handed to the socket (the stall watchdog's measure)
        self.drained = 0  # ``sent`` minus what the transport still buffers, at the last check
        self.stall_since: float | None = None

    @property
    def is_desk(self) -> bool:
        return self.session_id is None

    @property
    def sees_agent_only(self) -> bool:
        return self.role is not Role.CUSTOMER

    def push(self, frame: str, wire: bytes | None = None) -> None:
        """Send ``frame`` (or queue it behind what waits). ``wire``: the frame already
        built for the socket (``text_frame``), once for all of a fan-out's recipients."""
        if self.closed:
            return
        if self.idle and not self.out and self.ws.write_now(
                text_frame(frame.encode()) if wire is None else wire):
            # the writer is idle and the socket keeps up: straight out, no task wake-up
            # (a large part of the hop's cost); same order as through the queue (and an
            # empty queue is never over its limits)
            self.sent += len(frame)
            return
        if over_queue(self.relay.config, len(self.out), self.out_bytes):
            log.warning("client %s fell %d frames (%d bytes) behind: disconnecting",
                        self.token.token_id, len(self.out), self.out_bytes)
            self.drop(CloseCode.TRY_AGAIN_LATER, "too far behind")
            return
        self.out.append(frame)
        self.out_bytes += len(frame)
        self.wake.set()

    def drop(self, code: int, reason: str) -> None:
        """Give up on this client now: nothing more is queued, it leaves every fan-out,
        and the close frame goes out (the transport is aborted if it cannot)."""
        self.closed = True  # push() ignores it from now on
        self.out.clear()
        self.out_bytes = 0
        self.replays.clear()
        # out of every fan-out right away (not mid-iteration of one), then close
        asyncio.get_running_loop().call_soon(self.relay._detach, self)
        self.ws.close(code, reason)

    def close_after_queue(self, code: int, reason: str) -> None:
        """Close once everything queued so far (e.g. the error frame) is sent."""
        if self.closed:
            return
        self.closed = True
        self.replays.clear()
        self.out.append((code, reason))
        self.out.append(_CLOSE)
        self.wake.set()

    def check_stalled(self, now: float, timeout: float) -> bool:
        """True when the socket has taken no bytes for ``timeout`` s while some wait."""
        buffered = self.ws.buffered()
        drained = self.sent - buffered
        if (buffered == 0 and not self.out) or drained > self.drained:
            self.drained = drained
            self.stall_since = None
            return False
        if self.stall_since is None:
            self.stall_since = now
            return False
        return now - self.stall_since >= timeout

    async def run_writer(self) -> None:
        ws, out, wake, relay = self.ws, self.out, self.wake, self.relay
        try:
            while True:
                ws.corking = True  # what waits leaves in as few sends as the buffer allows
                try:
                    while out:
                        item = out.popleft()
                        if item is _CLOSE:
                            return
                        if isinstance(item, tuple):
                            ws.close(item[0], item[1])
                            continue
                        frame = cast(str, item)
                        self.out_bytes -= len(frame)
                        self.sent += len(frame)
                        if ws.paused:  # the socket's buffer is full: wait for the peer
                            ws.uncork()
                            await ws.drain()
                        if not ws.write(frame):
                            return
                finally:
                    ws.corking = False
                    ws.uncork()
                wait: float | None = None
                if self.replays:
                    wait = relay._pump_replay(self)
                    if wait <= 0:
                        # a send does not yield while the socket takes data: let the other
                        # connections run between pages
                        await asyncio.sleep(0)
                        continue
                wake.clear()
                self.idle = True
                if wait is None:
                    await wake.wait()
                else:  # the replay byte budget is spent: live frames still go out
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(wake.wait(), wait)
                self.idle = False
        except Closed:
            pass


@dataclass(slots=True)
class SessionState:
    row: SessionRow
    customers: set[Conn] = field(default_factory=set)
    agents: set[Conn] = field(default_factory=set)  # agents bound to this session
    delivered: dict[Role, int] = field(default_factory=dict)
    # the session's frames in the log's open group, not yet handed back (chat lines,
    # grouped host frames, ephemeral frames deferred behind them): while > 0 its
    # ephemeral frames queue behind them too, so everyone gets them in publish order
    pending: int = 0
    # a grouped host frame of this session failed to commit: its turn frames are refused
    # (the co-pilot's turn fails) and its other durable ones logged one by one (not
    # grouped) until one of those is stored again
    write_failed: BaseException | None = None


# the log's group hands these tokens back (Relay._group_committed): what to do with each
_CHAT, _HOST, _LATER = 0, 1, 2  # a chat line, a grouped host frame, a deferred ephemeral
# a turn's frames between its start and its end: refused in a session whose frames
# could not be stored (SessionState.write_failed), so a turn cannot go on past a hole
_TURN_BODY = frozenset({"draft.delta", "tool.call.delta", "draft.completed", "articles",
                        "tool.call", "tool.result"})
# the frames that end a turn for the agents: lost in a failed commit, the co-pilot is
# told (Copilot.turn_end_lost), else the draft stays "streaming" on their desks
_TURN_ENDS = frozenset({"draft.completed", "draft.stale", "draft.failed", "turn.ended"})


class Relay:
    """Host side of the protocol; also the co-pilot's :class:`SessionOutbox`."""

    def __init__(
        self,
        relay_log: RelayLog,
        tokens: Tokens | None = None,
        *,
        config: RelayConfig | None = None,
        copilot_factory: CopilotFactory | None = None,
        directory: CustomerDirectory | None = None,
        link_builder: LinkBuilder | None = None,
    ) -> None:
        self.log = relay_log
        relay_log.on_group_commit = self._group_committed
        self.tokens = tokens or Tokens(relay_log)
        self.config = config or RelayConfig()
        # the shop's customers (sign-in, search, names); None: nobody can be verified
        self.directory = directory
        self._sign_in = ident.SignInLimiter(self.config.sign_in_limits())
        self.link_builder: LinkBuilder = link_builder or (
            lambda kind, token: f"hitl://127.0.0.1:0/{kind.link_role}#{token}"
        )
        self.sessions: dict[str, SessionState] = {}
        self._inbox = InboxSnapshots()  # the inbox order frozen at each desk's first page
        self._max_rowid = 0
        self._load_sessions()
        self._close_gaps()
        self.desk: set[Conn] = set()
        self.conns: set[Conn] = set()
        self._tasks = TaskSupervisor("relay", logger=log)
        self._data_version = relay_log.data_version()
        cfg = self.config
        self._lobby_buckets = Buckets(cfg.lobby_rate, cfg.lobby_burst,
                                      max_keys=10_000)  # per client IP
        self._failed_hellos = Buckets(cfg.failed_hello_rate, cfg.failed_hello_burst,
                                      max_keys=10_000)  # per client IP
        self._throttled: collections.Counter[str] = collections.Counter()  # not yet logged
        # the rate budget per token id (kept across reconnects; idle ones forgotten)
        self._token_buckets = Buckets(cfg.rate, cfg.burst, max_keys=50_000)
        self._per_token: collections.Counter[str] = collections.Counter()  # live conns
        self._per_addr: collections.Counter[str] = collections.Counter()  # open sockets
        self._sockets = 0  # open sockets, authenticated or not
        self._refused_at_cap = 0  # sockets closed at accept since the last log line
        self._revoked_check = time.time()
        self._asyncio_filter = _AcceptErrorFilter()
        # called with the revoked token ids another process (the CLI) revoked
        self.on_revoked: Callable[[set[str]], None] | None = None
        self._closing = False
        self._dirty: set[str] = set()  # sessions whose summary the desk should get
        self._dirty_agents: set[str] = set()  # ... the desk and the session's agents
        self._flush_handle: asyncio.TimerHandle | None = None
        self.server: WsServer | None = None
        factory = copilot_factory or (lambda _outbox: NullCopilot())
        self.copilot: Copilot = factory(self)
        # no co-pilot (exactly: a subclass may listen): a chat line needs nothing awaited
        # (see _take)
        self._chat_inline = type(self.copilot) is NullCopilot
        self.insights = InsightsService(relay_log.path.parent)  # read-only reports
        self.desk_ops = Desk(self, relay_log)  # issue 16: assignment, notes, status, ...
        self.started_at = time.time()

    # ------------------------------------------------------------------ lifecycle

    async def listen(
        self, host: str, port: int, *, ssl_context: ssl.SSLContext | None = None
    ) -> WsServer:
        """Start serving ``/ws`` (and ``GET /health``) on host:port."""
        cfg = self.config
        if cfg.max_connections is None:
            cfg.max_connections = _fd_budget(cfg.fd_reserve)
        logging.getLogger("asyncio").addFilter(self._asyncio_filter)
        self.server = WsServer(
            self._handler,
            spawn=self._tasks.spawn,
            # sockets are counted at accept; one over a cap is closed before any work
            on_accept=self._accepted,
            on_release=self._released,
            process_request=self._process_request,
            max_size=cfg.max_frame,
            ping_interval=cfg.heartbeat_s,
            ping_timeout=cfg.ping_timeout,
            open_timeout=10,
            close_timeout=cfg.close_timeout,
            server_header=f"hitl-desktop/{__version__}",
        )
        # the chat lines of every handler woken in one tick are committed as soon as the
        # last of them has worked through its frames (else at the end of the next tick)
        self.server.on_settled = self.log.commit_group
        # asyncio accepts up to ``backlog`` sockets per wake-up: a small batch keeps a
        # connection storm from delaying the frames of connected clients, and bounds
        # descriptors beyond the cap. No compression: small JSON frames.
        await self.server.listen(host, port, ssl_context=ssl_context, backlog=cfg.accept_batch)
        self._tasks.spawn(self._poll_other_writers(), "poll other writers")
        self._tasks.spawn(self._watchdog(), "stall watchdog")
        self.log.defer_checkpoints()
        self._tasks.spawn(self._checkpoints(), "checkpoints")
        return self.server

    @property
    def port(self) -> int:
        assert self.server is not None, "listen() first"
        return int(self.server.sockets[0].getsockname()[1])

    async def aclose(self) -> None:
        """Close every connection with 1001 (going away), stop the co-pilot, close the log."""
        self._closing = True  # frames still arriving are not handled (nor half-logged)
        # an operation under way finishes first: a chat line is relayed once committed,
        # which may be before its handler has told the co-pilot (what was sent must not
        # be missing from the model's history after a restart)
        busy = {t for c in self.conns if (t := c.ws.handler) is not None and not t.done()}
        if self.server is not None:
            await self.server.aclose(CloseCode.GOING_AWAY, "host shutting down")
        if busy:
            _done, late = await asyncio.wait(busy, timeout=SHUTDOWN_GRACE_S)
            if late:
                log.warning("%d operations still running after %.0f s: cancelled",
                            len(late), SHUTDOWN_GRACE_S)
        if self._flush_handle is not None:
            self._flush_handle.cancel()
        await self._tasks.aclose()
        logging.getLogger("asyncio").removeFilter(self._asyncio_filter)
        try:
            await self.copilot.aclose()
        except Exception:
            log.exception("co-pilot failed to close")
        self.insights.close()
        await self.desk_ops.aclose()

    # ------------------------------------------------------------------ sessions

    def _load_sessions(self) -> None:
        for rowid, row in self.log.load_sessions(since_rowid=self._max_rowid):
            self._max_rowid = max(self._max_rowid, rowid)
            self.sessions.setdefault(row.session_id, SessionState(row))

    def _close_gaps(self) -> None:
        """After an unclean stop, continue each session after its reserved seqs and say so
        with a durable ``session.gap``: a client may hold seqs the log lost (power cut),
        and must never get the same number for another message."""
        for sid, (last, upto) in self.log.unclean_sessions().items():
            st = self.sessions.get(sid)
            if st is None:
                continue
            gap = unclean_gap(last, upto)
            if gap is None:
                continue
            st.row.last_seq = upto
            self.log.append(st.row, gap)
            log.warning("session %s: the log ends at seq %d but seqs up to %d were reserved "
                        "(unclean stop): continuing at %d", sid, last, upto, upto + 1)

    def _state(self, session_id: str) -> SessionState | None:
        st = self.sessions.get(session_id)
        if st is None:  # made by another process (``session new``) since we last looked
            row = self.log.get_session(session_id)
            if row is not None:
                st = self.sessions[session_id] = SessionState(row)
                self._notify_summary(st)
        return st

    async def _checkpoints(self) -> None:
        """Checkpoint the WAL, bounded, mostly in a worker thread (``RelayLog.run_checkpoints``)."""
        try:
            await self.log.run_checkpoints(self.config.checkpoint_interval)
        finally:
            with contextlib.suppress(Exception):
                self.log.checkpoint()

    async def _poll_other_writers(self) -> None:
        while True:
            await asyncio.sleep(self.config.poll_interval)
            version = self.log.data_version()
            if version == self._data_version:
                continue
            self._data_version = version
            known = set(self.sessions)
            self._load_sessions()
            for sid in set(self.sessions) - known:
                log.info("session %s created by another process", sid)
                self._notify_summary(self.sessions[sid])
            self._close_revoked()

    def _close_revoked(self) -> None:
        """Close (4010) connections whose token another process revoked (the CLI's
        ``links rotate`` / ``session revoke``): revocation is effective at once."""
        since, self._revoked_check = self._revoked_check - 5.0, time.time()
        revoked = self.tokens.revoked_since(since)
        if not revoked:
            return
        for conn in list(self.conns):
            if conn.token.token_id in revoked:
                self._close_as_revoked(conn)
        if self.on_revoked is not None:
            try:
                self.on_revoked(revoked)
            except Exception:
                log.exception("on_revoked failed")

    # ------------------------------------------------------------------ sockets

    def _accepted(self, transport: asyncio.BaseTransport) -> str | None:
        """Count a new socket; close it at once (before the handshake) when the host is at
        its connection cap or the address at its own: bounded work, no open-file storm."""
        try:
            addr = str(transport.get_extra_info("peername")[0])
        except Exception:
            addr = "?"
        cfg = self.config
        cap = cfg.max_connections or 0
        if self._sockets >= cap or self._per_addr[addr] >= cfg.max_per_address:
            self._refused_at_cap += 1
            if self._refused_at_cap == 1:  # one line per burst, not one per socket
                log.warning("connection cap reached (%d open, %d from %s): refusing new "
                            "connections for now", self._sockets, self._per_addr[addr], addr)
            cast(asyncio.Transport, transport).abort()
            return None
        if self._refused_at_cap and self._sockets < cap * 0.9:
            log.warning("accepting connections again (%d refused at the cap)",
                        self._refused_at_cap)
            self._refused_at_cap = 0
        self._sockets += 1
        self._per_addr[addr] += 1
        return addr

    def _released(self, addr: str) -> None:
        self._sockets -= 1
        self._per_addr[addr] -= 1
        if self._per_addr[addr] <= 0:
            del self._per_addr[addr]

    async def _watchdog(self) -> None:
        """Drop connections whose peer stopped reading (see ``RelayConfig.stall_timeout``)."""
        timeout = self.config.stall_timeout
        while True:
            await asyncio.sleep(max(0.05, min(1.0, timeout / 4)))
            now = time.monotonic()
            for conn in list(self.conns):
                if conn.check_stalled(now, timeout):
                    log.warning("client %s took no data for %.0f s: cutting it off",
                                conn.token.token_id, timeout)
                    conn.closed = True
                    self._detach(conn)
                    conn.ws.abort()  # a close frame could not get through

    def summary(self, st: SessionState) -> SessionSummary:
        return self.desk_ops.decorate(st.row.summary(clients=len(st.customers) + len(st.agents),
                                                     customer_online=bool(st.customers)))

    def session_summary(self, session_id: str) -> SessionSummary | None:
        st = self._state(session_id)
        return None if st is None else self.summary(st)

    def session_identity(self, session_id: str) -> SessionIdentity:
        """The host's record of who the session's customer is (the co-pilot's seam)."""
        st = self._state(session_id)
        return ident.ANONYMOUS if st is None else st.row.identity

    def issued_identity(self, customer_id: str | None, by: str) -> SessionIdentity:
        """The identity of a link issued for ``customer_id`` (verified from the start);
        anonymous without one. Raises ``not_found`` for a customer the shop lacks."""
        if not customer_id:
            return ident.ANONYMOUS
        cid = customer_id.strip().upper()
        name: str | None = None
        if self.directory is not None:
            name = self.directory.customer_name(cid)
            if name is None:
                raise OperationError(ErrorCode.NOT_FOUND, f"no customer {cid!r} in the shop")
        return ident.issued_link(cid, name, by=by, at=time.time())

    def create_session(
        self, *, customer_id: str | None = None, title: str | None = None, by: str = "host"
    ) -> CreatedSession:
        """Create a session (durable seq 1 = ``session.opened``) and its two invite tokens.
        With ``customer_id`` the link is issued for that customer: the session is verified
        from the start. Without, it starts anonymous."""
        identity = self.issued_identity(customer_id, by)
        row, frame = self.log.create_session(
            title=title, identity=identity, greeting=self.config.greeting,
        )
        st = self.sessions[row.session_id] = SessionState(row)
        customer = self.tokens.issue(TokenKind.CUSTOMER_SESSION, session_id=row.session_id)
        agent = self.tokens.issue(TokenKind.AGENT_SESSION, session_id=row.session_id)
        log.info("session %s created: %s", row.session_id, ident.describe(identity))
        self._fanout(st, "session.opened", frame)
        self._notify_summary(st)
        return CreatedSession(
            session_id=row.session_id,
            customer_token=customer,
            agent_token=agent,
            customer_link=self.link_builder(TokenKind.CUSTOMER_SESSION, customer),
            agent_link=self.link_builder(TokenKind.AGENT_SESSION, agent),
        )

    def revoke(self, token_or_id: str) -> int:
        """Revoke a token and close its live connections with 4010 (do not reconnect).
        A lobby link's revocation also ends the customers who joined through it only if
        their personal tokens are revoked too (they are separate tokens). Returns the
        number of connections closed."""
        token_id = token_or_id.partition(".")[0]
        self.tokens.revoke(token_id)
        closed = 0
        for conn in list(self.conns):
            if conn.token.token_id == token_id:
                self._close_as_revoked(conn)
                closed += 1
        log.info("token %s revoked (%d connections closed)", token_id, closed)
        return closed

    def revoke_session(self, session_id: str) -> int:
        """Revoke a session's customer and agent tokens (lobby customers' personal ones
        too) and close their live connections with 4010; desk agents are not affected.
        Returns the number of connections closed."""
        revoked = self.tokens.revoke_session(session_id)
        closed = 0
        for conn in list(self.conns):
            if conn.session_id == session_id and conn.token.session_id == session_id:
                self._close_as_revoked(conn)
                closed += 1
        log.info("session %s: %d tokens revoked, %d connections closed", session_id,
                 revoked, closed)
        return closed

    def _close_as_revoked(self, conn: Conn) -> None:
        if conn.closed:
            return
        conn.replays.clear()
        conn.out.clear()  # the revoked client gets nothing more but the reason
        conn.out_bytes = 0
        conn.push(error_frame(ErrorCode.AUTH_FAILED, "this link was revoked"))
        conn.close_after_queue(CloseCode.REVOKED, "revoked")
        self._detach(conn)

    def _visible_summaries(self, conn: Conn, cursor: str | None = None,
                           limit: int = SESSION_PAGE) -> tuple[list[SessionSummary], str | None]:
        """The summaries a welcome / ``session.list`` names: a bound connection's own
        session; for the desk one page, most recent activity first, and the next page's
        cursor (issue 18: a desk hello costs the same for 10 sessions or 10,000)."""
        if conn.session_id is not None:
            st = self.sessions.get(conn.session_id)
            if st is None:
                return [], None
            summary = self.summary(st)
            if conn.role is Role.CUSTOMER:  # the agents' queue is not the customer's business
                # nor is a claim: it is the desk's note of who the visitor says they are
                # (PROTOCOL.md §6a), so an unverified visitor's summary is anonymous
                summary = summary.model_copy(update={
                    "pending_approvals": 0,
                    "identity": (summary.identity if ident.verified_customer(summary.identity)
                                 else ident.ANONYMOUS)})
            return [summary], None
        page, more = self._desk_page(cursor, limit)
        return [self.summary(s) for s in page], more

    def _desk_page(self, cursor: str | None, limit: int
                   ) -> tuple[list[SessionState], str | None]:
        """Which sessions a desk's page names (most recent activity first, after the
        cursor) and the next page's cursor. A first page freezes the order (one key per
        session and a C sort: ~2-3 ms for 10,000); the pages after it are read from that
        snapshot in O(page) (issue 18: no page stalls the loop)."""
        gen: int | None = None
        after: SessionKey | None = None
        if cursor is not None:
            decoded = decode_page_cursor(cursor)
            if decoded is None:
                raise OperationError(ErrorCode.INVALID_ARGUMENTS,
                                     "this cursor was not handed out by this host")
            gen, after = decoded
        keys = self._inbox.get(gen) if gen is not None else None
        if keys is None:
            rows = [st.row for st in self.sessions.values()]  # _activity, inlined (10,000: ~1.5 ms)
            gen, keys = self._inbox.build(
                [(r.last_message_at or r.created_at, r.session_id) for r in rows])
        sessions = self.sessions

        def current(sid: str) -> SessionKey | None:
            st = sessions.get(sid)
            return None if st is None else _activity(st)

        ids, more = snapshot_page(keys, after, limit, current)
        assert gen is not None
        return [sessions[sid] for sid in ids], (
            None if more is None else encode_page_cursor(gen, more))

    async def _summaries_json(self, page: list[SessionState]) -> str:
        """The page's summaries as the JSON of a list, built and encoded _SUMMARY_BATCH at
        a time (pydantic's serializer, ~2 µs a summary) with a yield between batches, so
        a page of 500 never holds the loop for more than a millisecond or two."""
        parts: list[str] = []
        for i in range(0, len(page), _SUMMARY_BATCH):
            if i:
                await asyncio.sleep(0)
            batch = [self.summary(s) for s in page[i:i + _SUMMARY_BATCH]]
            parts.append(_SUMMARY_LIST.dump_json(batch).decode()[1:-1])
        return "[" + ",".join(parts) + "]"

    # ------------------------------------------------------------------ SessionOutbox

    async def publish(self, session_id: str, payload: Payload, *, ref: str | None = None) -> int:
        """Log (if durable) then relay a host message into a session; returns its seq or 0.
        Without ``ref``, the id of the client frame being handled (``CAUSE``) is used.

        The co-pilot's turn frames (``GROUPED_TYPES``) join the log's open group (issue
        18): the seq is theirs when this returns and their place in the session's order
        is fixed, but they are relayed only once the group has committed (the end of
        this loop tick, or any other use of the log first), like chat lines. An
        ephemeral frame of a session with frames waiting for that commit waits behind
        them. Every other durable type is committed (and relayed) before this returns;
        :meth:`commit_now` commits what waits. A grouped frame that fails to commit is
        not relayed, nor is anything of its session queued behind it; from then on the
        session's turn frames (``_TURN_BODY``: deltas, articles, tool calls and results,
        the completed draft) raise ``internal`` — the co-pilot's turn fails — until a
        frame that ends a turn or starts one is stored (synchronously) again."""
        ref = ref if ref is not None else CAUSE.get()
        st = self._state(session_id)
        if st is None:
            raise OperationError(ErrorCode.NOT_FOUND, f"no session {session_id!r}")
        t = host_type(payload)
        if st.write_failed is not None and t in _TURN_BODY:
            raise _not_stored(st)
        if HOST_MESSAGES[t].durable:
            if t in GROUPED_TYPES and st.write_failed is None and self.config.group_commit:
                seq, _frame, began = self.log.append_grouped(st.row, payload, (_HOST, st, t),
                                                             ref=ref, type_=t)
                st.pending += 1
                if began:
                    asyncio.get_running_loop().call_soon(self.log.commit_group)
                return seq
            failed = st.write_failed
            if st.pending:  # what waits goes first: a frame after a lost one is not relayed
                self.log.commit_group(force=True)
                if st.write_failed is not failed:
                    raise _not_stored(st)
            seq, frame = self.log.append(st.row, payload, ref=ref, type_=t)
            st.write_failed = None  # the log takes this session's frames again
            self._fanout(st, t, frame)
            if t in ("approval.created", "approval.updated", "session.closed",
                     "session.reopened"):
                self._notify_summary(st)
            elif t == "chat.message":
                self._notify_summary(st, agents=False)
            return seq
        # (fast_id: the default id is a uuid4, an os.urandom syscall per draft.delta)
        frame = encode(t, payload, session=session_id, ref=ref, msg_id=fast_id("m"))
        if st.pending and self.log.group_open:
            self.log.defer((_LATER, st, t), frame)
            st.pending += 1
        else:
            st.pending = 0  # (nothing of it can wait in a group that is not open)
            self._fanout(st, t, frame)
        return 0

    def commit_now(self) -> None:
        """Commit (and relay) every frame that waits for the group commit now; raises
        ``internal`` if that commit fails. For callers that need their grouped frames on
        disk before going on (``publish`` does not wait for it)."""
        if self.log.commit_group(force=True) is not None:
            raise OperationError(ErrorCode.INTERNAL, "the host could not store its messages")

    def approval_states(self) -> dict[str, tuple[str, str]]:
        """What the agents were told about each approval (for the co-pilot's start-up
        reconciliation with the shop): approval id -> (session id, state)."""
        return self.log.approval_states()

    def broadcast_status(self, status: AssistantStatus) -> None:
        """Tell every connected agent what engine drafts replies (ephemeral)."""
        frame = encode("assistant.status", status, msg_id=fast_id("m"))
        wire = text_frame(frame.encode())
        for conn in self.conns:
            if conn.sees_agent_only:
                conn.push(frame, wire)

    # ------------------------------------------------------------------ fan-out

    def _fanout(self, st: SessionState, type_: str, frame: str, *,
                skip: Conn | None = None) -> None:
        """Send to everyone in the session, except connections still replaying it (the
        frame is in the log already; their replay's next page carries it, in order)."""
        sid = st.row.session_id
        wire = text_frame(frame.encode())  # built once, whoever gets it
        for conn in st.agents:
            if conn is not skip and sid not in conn.replays:
                conn.push(frame, wire)
        for conn in self.desk:
            if conn is not skip and sid not in conn.replays:
                conn.push(frame, wire)
        if may_receive(Role.CUSTOMER, type_):
            for conn in st.customers:
                if conn is not skip and sid not in conn.replays:
                    conn.push(frame, wire)

    def _notify_summary(self, st: SessionState, *, agents: bool = True) -> None:
        """Queue an inbox update for this session. Updates are coalesced (at most one per
        session every ``summary_delay`` s), so a busy chat does not double the traffic.
        ``agents=False`` (new chat lines, which the session's agents see anyway) updates
        the desk only."""
        sid = st.row.session_id
        if agents:
            self._dirty_agents.add(sid)
        elif self.desk:
            self._dirty.add(sid)
        else:
            return
        if self._flush_handle is None:
            try:
                loop = asyncio.get_running_loop()
            except RuntimeError:  # called outside the loop (e.g. before listen)
                return
            self._flush_handle = loop.call_later(self.config.summary_delay,
                                                 self._flush_summaries)

    def _flush_summaries(self) -> None:
        self._flush_handle = None
        with self.server.batch() if self.server is not None else contextlib.nullcontext():
            self._send_summaries()  # a desk's updates in one send

    def _send_summaries(self) -> None:
        with_agents, self._dirty_agents = self._dirty_agents, set()
        desk_only, self._dirty = self._dirty - with_agents, set()
        for sids, agents_too in ((with_agents, True), (desk_only, False)):
            for sid in sids:
                st = self.sessions.get(sid)
                if st is None or (not self.desk and not (agents_too and st.agents)):
                    continue
                frame = encode("session.updated", SessionUpdated(summary=self.summary(st)),
                               session=sid, msg_id=fast_id("m"))
                wire = text_frame(frame.encode())
                for conn in self.desk:
                    conn.push(frame, wire)
                if agents_too:
                    for conn in st.agents:
                        conn.push(frame, wire)

    # ------------------------------------------------------------------ HTTP

    def _process_request(self, connection: WsConn, request: Request) -> Response | None:
        path = request.path.split("?", 1)[0]
        if path == "/health":
            body = json.dumps({
                "ok": True, "version": __version__, "protocol": PROTOCOL_VERSION,
                "sessions": len(self.sessions), "clients": len(self.conns),
                "sockets": self._sockets,
                "uptime_s": round(time.time() - self.started_at, 1),
            })
            return Response(
                HTTPStatus.OK.value, "OK",
                Headers([("Content-Type", "application/json"),
                         ("Content-Length", str(len(body))), ("Cache-Control", "no-store")]),
                body.encode(),
            )
        if path != "/ws":
            return connection.protocol.reject(HTTPStatus.NOT_FOUND, "HITL Desk: connect to /ws\n")
        return None

    # ------------------------------------------------------------------ connections

    async def _handler(self, ws: WsConn) -> None:
        conn = await self._handshake(ws)
        if conn is None:
            return
        next_item, take = ws.next_item, self._take
        # from now on a frame that arrives while this task waits is taken at once, in
        # the transport's read callback (see WsConn.inline): no wake-up of this task
        ws.inline = lambda raw: None if conn.closed or self._closing else take(conn, raw)
        try:
            while True:  # (not ``async for``: one coroutine less per frame)
                item = await next_item()
                if type(item) is str or type(item) is bytes:
                    if conn.closed or self._closing:
                        continue
                    rest = take(conn, item)
                    if rest is not None:
                        await rest
                else:  # the rest of a frame taken inline
                    await cast(Awaitable[None], item)
        except Closed:
            pass
        finally:
            ws.inline = None
            ws.discard_pending()
            self._detach(conn)
            if conn.writer is not None:
                if not conn.writer.done():
                    conn.writer.cancel()
                await asyncio.gather(conn.writer, return_exceptions=True)

    async def _refuse(self, ws: WsConn, code: ErrorCode, message: str, close: int,
                      ref: str | None = None, *, retry_after: float | None = None) -> None:
        ws.write(error_frame(code, message, ref=ref, retry_after=retry_after))
        ws.close(close, code.value)

    async def _handshake(self, ws: WsConn) -> Conn | None:
        try:
            raw = await asyncio.wait_for(ws.recv(), self.config.hello_timeout)
        except TimeoutError:
            await self._refuse(ws, ErrorCode.NOT_AUTHENTICATED, "no hello in time",
                               CloseCode.HELLO_TIMEOUT)
            return None
        except Closed:
            return None
        addr = _peer_ip(ws)
        failed = self._failed_hellos.peek(addr)
        if failed is not None and not failed.available():
            # this address keeps presenting bad tokens: refuse before any lookup, quietly
            self._throttled[addr] += 1
            await self._refuse(ws, ErrorCode.RATE_LIMITED,
                               "too many failed attempts from this address; try again later",
                               CloseCode.RATE_LIMITED, None,
                               retry_after=round(failed.retry_after(), 3))
            return None
        try:
            env, payload, spec = decode_client(raw)
        except ProtocolError as exc:
            close = (CloseCode.UNSUPPORTED_VERSION if exc.code is ErrorCode.UNSUPPORTED_VERSION
                     else CloseCode.AUTH_FAILED)
            self._hello_failed(addr, "a malformed hello")
            await self._refuse(ws, exc.code, exc.message, close, exc.ref)
            return None
        if spec.type != "hello":
            self._hello_failed(addr, "no hello")
            await self._refuse(ws, ErrorCode.NOT_AUTHENTICATED,
                               "the first frame must be a hello", CloseCode.AUTH_FAILED, env.id)
            return None
        hello = cast(Hello, payload)
        record = self.tokens.verify(hello.token)
        st: SessionState | None = None
        if record is not None and record.session_id is not None:
            st = self._state(record.session_id)
        if record is None or (record.scope is Scope.SESSION and st is None):
            self._hello_failed(addr, "a bad or revoked token")
            await self._refuse(ws, ErrorCode.AUTH_FAILED, "unknown, wrong or revoked token",
                               CloseCode.AUTH_FAILED, env.id)
            return None

        resume_token: str | None = None
        if record.scope is Scope.LOBBY:
            bucket = self._lobby_buckets.get(addr)
            if not bucket.take():
                log.warning("lobby: too many new sessions from %s", _peer(ws))
                await self._refuse(ws, ErrorCode.RATE_LIMITED,
                                   "too many new chats from this address; try again later",
                                   CloseCode.RATE_LIMITED, env.id,
                                   retry_after=round(bucket.retry_after(), 3))
                return None
            created = self.create_session()
            resume_token = created.customer_token
            st = self.sessions[created.session_id]
            personal = self.tokens.verify(resume_token)
            assert personal is not None
            record = personal
        refusal = self._over_cap(record, st)
        if refusal is not None:
            log.info("refused a connection from %s (token %s): %s", _peer(ws),
                     record.token_id, refusal)
            await self._refuse(ws, ErrorCode.RATE_LIMITED, refusal, CloseCode.RATE_LIMITED,
                               env.id)
            return None
        conn = Conn(self, ws, record, st.row.session_id if st else None,
                    self._display_name(record, st), self._bucket_for(record.token_id))
        conn.writer = self._tasks.spawn(conn.run_writer(), f"writer {conn.name}")
        try:
            self._welcome(conn, st, env, hello, resume_token)
        except BaseException:
            self._detach(conn)
            conn.writer.cancel()
            raise
        return conn

    def _over_cap(self, record: TokenRecord, st: SessionState | None) -> str | None:
        """Why a new connection of this token would exceed a cap (None: it may connect)."""
        return over_cap(self.config, record.scope, self._per_token[record.token_id],
                        None if st is None else len(st.customers) + len(st.agents))

    def _bucket_for(self, token_id: str) -> TokenBucket:
        """The token's rate budget, shared by all its connections (and kept across
        reconnects, so reconnecting does not refill it)."""
        return self._token_buckets.get(token_id,
                                        keep=lambda: {c.token.token_id for c in self.conns})

    def _hello_failed(self, addr: str, what: str) -> None:
        """Count a failed hello against its address; log a bounded number of lines."""
        bucket = self._failed_hellos.get(addr)
        bucket.take()
        throttled = self._throttled.pop(addr, 0)
        if throttled:
            log.warning("refused %d more hellos from %s without checking (throttled)",
                        throttled, addr)
        if bucket.available():
            log.info("refused a connection from %s: %s", addr, what)
        elif not throttled:
            log.warning("too many failed hellos from %s: throttling that address", addr)

    def _welcome(self, conn: Conn, st: SessionState | None, env: Envelope, hello: Hello,
                 resume_token: str | None) -> None:
        """Queue welcome and replay, then join the live fan-out (all without awaiting)."""

        sessions, cursor = self._visible_summaries(conn)
        welcome = Welcome(
            protocol=PROTOCOL_VERSION, role=conn.role, scope=conn.scope,
            session_id=conn.session_id, sessions=[], cursor=cursor,
            server={"name": "hitl-desktop", "version": __version__,
                    "max_frame": self.config.max_frame, "rate": self.config.rate,
                    "burst": self.config.burst, "cost_bytes": self.config.cost_bytes,
                    "heavy_cost": self.config.heavy_cost, "heavy": sorted(_HEAVY)},
            heartbeat_s=self.config.heartbeat_s, resume_token=resume_token,
            display_name=conn.name,
            identity=(ident.customer_status(st.row.identity)
                      if conn.role is Role.CUSTOMER and st is not None else None),
            **self.desk_ops.welcome_fields(conn),
        )
        # the summaries encoded by pydantic's serializer in one call (a desk's 200 in
        # ~0.5 ms instead of ~2.5 ms through model_dump + json), spliced into the frame
        frame = encode("welcome", welcome, ref=env.id)
        conn.push(frame.replace('"sessions":[]', '"sessions":'
                                + _SUMMARY_LIST.dump_json(sessions).decode(), 1))
        # history first, then live: the replays are registered before the connection
        # joins the fan-out (no await in between), and live frames of a session whose
        # replay is under way are skipped for this connection (its pages carry them).
        # A desk gets only the sessions its resume names (those its user opened)
        views: Iterable[SessionState] = (
            [st] if st is not None
            else [s for s in map(self.sessions.get, hello.resume) if s is not None])
        replays, settled_ids = resume_plan(
            conn.session_id,
            (SessionView(s.row.session_id, s.row.state == "open", s.row.last_seq)
             for s in views),
            hello.resume)
        for sid, after in replays:
            conn.replays[sid] = after
        if replays:
            conn.wake.set()
        settled = [self.sessions[sid] for sid in settled_ids]

        self._attach(conn, st)
        log.info("%s %s connected from %s (token %s, session %s)", conn.role.value,
                 conn.scope.value, _peer(conn.ws), conn.token.token_id, conn.session_id or "-")
        if conn.sees_agent_only:
            self._send_drafts_in_progress(conn, settled)  # the others' come after their replay
            try:
                conn.push(encode("assistant.status", self.copilot.status()))
            except Exception:
                log.exception("co-pilot status failed")
        if st is not None:
            self._notify_summary(st)

    def _display_name(self, record: TokenRecord, st: SessionState | None) -> str:
        if record.label:
            return record.label
        if record.role is Role.CUSTOMER:
            verified = st is not None and ident.verified_customer(st.row.identity) is not None
            name = st.row.identity.customer_name if st is not None and verified else None
            return name or UNVERIFIED_NAME
        return "Host" if record.role is Role.ADMIN else "Agent"

    def _pump_replay(self, conn: Conn) -> float:
        """Queue the next page of ``conn``'s first pending replay. Called by its writer when
        its queue is empty, so a replay advances only as fast as the client reads and
        holds at most one page in memory. Returns seconds to wait (the connection's
        replay byte budget is spent), else 0."""
        head = conn.replays.next()
        assert head is not None
        sid, after = head
        st = self.sessions.get(sid)
        if st is None or after >= st.row.last_seq:
            self._replay_done(conn, sid, st)
            return 0.0
        if not conn.replay_budget.available(0.0):
            return max(0.01, conn.replay_budget.retry_after(0.0))
        cfg = self.config
        frames, last, nbytes = page_frames(
            self.log.page_after(sid, after, cfg.replay_page_frames, cfg.replay_page_bytes),
            conn.role, after)
        for frame in frames:
            conn.out.append(frame)
            conn.out_bytes += len(frame)
        conn.replay_budget.spend(nbytes)
        if conn.replays.advance(sid, last, st.row.last_seq):  # the end (or no more in the log)
            self._replay_done(conn, sid, st)
        return 0.0

    def _replay_done(self, conn: Conn, sid: str, st: SessionState | None) -> None:
        conn.replays.finish(sid)
        if st is not None and conn.sees_agent_only:
            self._send_drafts_in_progress(conn, [st])

    def _send_drafts_in_progress(self, conn: Conn, targets: Iterable[SessionState]) -> None:
        for st in targets:
            try:
                draft = self.copilot.draft_in_progress(st.row.session_id)
            except Exception:
                log.exception("co-pilot draft_in_progress failed")
                continue
            if draft is not None:
                turn_id, text = draft
                conn.push(encode("draft.delta", DraftDelta(turn_id=turn_id, offset=0, text=text),
                                 session=st.row.session_id))

    def _attach(self, conn: Conn, st: SessionState | None) -> None:
        self.conns.add(conn)
        self._per_token[conn.token.token_id] += 1
        if st is None:
            self.desk.add(conn)
        elif conn.role is Role.CUSTOMER:
            st.customers.add(conn)
        else:
            st.agents.add(conn)

    def _detach(self, conn: Conn) -> None:
        if conn.closed and conn not in self.conns:
            return
        conn.closed = True
        if conn in self.conns:
            self.conns.discard(conn)
            tid = conn.token.token_id
            self._per_token[tid] -= 1
            if self._per_token[tid] <= 0:
                del self._per_token[tid]
        self.desk.discard(conn)
        if conn.session_id is not None:
            st = self.sessions.get(conn.session_id)
            if st is not None:
                st.customers.discard(conn)
                st.agents.discard(conn)
                self._notify_summary(st)
        log.info("%s disconnected (token %s)", conn.role.value, conn.token.token_id)

    # ------------------------------------------------------------------ incoming frames

    def _reject(self, conn: Conn, code: ErrorCode, message: str, *, ref: str | None = None,
                session: str | None = None, retry_after: float | None = None,
                details: dict[str, Any] | None = None) -> None:
        conn.push(error_frame(code, message, ref=ref, session=session, retry_after=retry_after,
                              details=details))
        if conn.limits.rejected():
            log.warning("closing client %s: too many rejected frames", conn.token.token_id)
            conn.close_after_queue(CloseCode.TOO_MANY_ERRORS, "too many errors")

    def _take(self, conn: Conn, raw: str | bytes) -> Rest | None:
        """One client frame, as far as it goes without awaiting anything; returns the
        rest (a coroutine the connection's handler awaits before its next frame), or
        None when it is done. An ``ack``, and a ``chat.send`` on a host without a
        co-pilot, are done here (issue 18: called from the transport's read callback,
        such a frame costs no task wake-up); everything else is the rest."""
        # the rate budget is spent by work: 1 unit plus 1 per ``cost_bytes`` of frame
        drop = conn.limits.admit(len(raw))
        if drop is not None:
            self._rate_dropped(conn, raw, drop)
            return None
        fast = fast_parse(raw)
        if fast is None:
            return self._on_frame(conn, raw)
        # chat.send / ack: no pydantic objects on the hot path
        spec, msg_id, session, data = fast
        _ok, st = self._authorize(conn, spec, msg_id, session)
        if st is None:  # refused (both types need a session)
            return None
        try:
            if not is_chat_send(spec):
                self._ack(conn, st, data["seq"])
                return None
            text, draft_id = data["text"], data.get("draft_id")
            override = data.get("override", False)
            if not self._chat_inline or self.desk_ops.would_reopen(conn.role_name,
                                                                   st.row.session_id):
                return self._fast_chat(conn, st, spec, msg_id, session, text, draft_id,
                                       override)
            self._may_chat(conn, st, override)
            self._log_chat(conn, st, msg_id, text, draft_id, None)
        except Exception as exc:
            self._op_failed(conn, spec.type, msg_id, session, exc)
        return None

    async def _fast_chat(self, conn: Conn, st: SessionState, spec: MessageSpec,
                         msg_id: str, session: str, text: str, draft_id: str | None,
                         override: bool) -> None:
        try:
            await self._chat(conn, st, msg_id, text, draft_id, override)
        except Exception as exc:
            self._op_failed(conn, spec.type, msg_id, session, exc)

    async def _on_frame(self, conn: Conn, raw: str | bytes) -> None:
        """A frame the fast parser does not take (admitted already): the full decoder."""
        try:
            env, payload, spec = decode_client(raw)
        except ProtocolError as exc:
            self._reject(conn, exc.code, exc.message, ref=exc.ref)
            return
        drop = conn.limits.admit_heavy(spec.type)
        if drop is not None:
            self._rate_dropped(conn, raw, drop)
            return
        ok, st = self._authorize(conn, spec, env.id, env.session)
        if not ok:
            return
        handler = self._ops.get(spec.type)
        if handler is None:  # "hello" again
            self._reject(conn, ErrorCode.CONFLICT, "already authenticated", ref=env.id)
            return
        cause = CAUSE.set(env.id)  # frames this operation causes carry its id as ref
        try:
            await handler(self, conn, env, payload, st)
        except Exception as exc:
            self._op_failed(conn, env.type, env.id, env.session, exc)
        finally:
            CAUSE.reset(cause)

    def _rate_dropped(self, conn: Conn, raw: str | bytes, drop: RateDrop) -> None:
        if drop.close:
            conn.push(error_frame(ErrorCode.RATE_LIMITED, "too many frames: closing",
                                  ref=ref_of(raw)))
            conn.close_after_queue(CloseCode.RATE_LIMITED, "rate limited")
        elif drop.notify:  # one error per run of drops, not one per frame
            conn.push(error_frame(ErrorCode.RATE_LIMITED, "slow down: frames dropped",
                                  ref=ref_of(raw), retry_after=drop.retry_after))

    def _authorize(self, conn: Conn, spec: MessageSpec, msg_id: str,
                   session: str | None) -> tuple[bool, SessionState | None]:
        """The role check and the session check of every operation: (allowed, the
        session if the type needs one). A refused frame has been answered already."""
        refusal: Refusal | None
        refusal, st = authorize(conn.role, conn.session_id, spec, session, self._state)
        if refusal is not None:
            self._reject(conn, refusal.code, refusal.message, ref=msg_id, session=session)
            return False, None
        return True, st

    def _op_failed(self, conn: Conn, type_: str, msg_id: str, session: str | None,
                   exc: Exception) -> None:
        if isinstance(exc, OperationError):
            self._reject(conn, exc.code, exc.message, ref=msg_id, session=session,
                         details=exc.details)
            return
        # the type only at ERROR: an exception's text may quote the frame (customer text);
        # the traceback is for -vv
        log.error("%s from %s failed (%s)", type_, conn.token.token_id, type(exc).__name__)
        log.debug("%s failed", type_, exc_info=exc)
        self._reject(conn, ErrorCode.INTERNAL, "the host failed to handle this message",
                     ref=msg_id, session=session)

    def _reply(self, conn: Conn, type_: str, payload: Payload, env: Envelope) -> None:
        conn.push(encode(type_, payload, session=env.session, ref=env.id))

    # ------------------------------------------------------------------ operations

    async def _op_chat(self, conn: Conn, env: Envelope, p: Payload,
                       st: SessionState | None) -> None:
        assert st is not None
        send = cast(ChatSend, p)
        await self._chat(conn, st, env.id, send.text, send.draft_id, send.override)

    async def _chat(self, conn: Conn, st: SessionState, ref: str, text: str,
                    draft_id: str | None, override: bool = False) -> None:
        """Log the line (durable before anyone sees it), relay it, tell the co-pilot."""
        self._may_chat(conn, st, override)
        is_customer = conn.role is Role.CUSTOMER
        edited: bool | None = None
        if not is_customer and draft_id is not None:
            drafted = await self.copilot.draft_text(st.row.session_id, draft_id)
            edited = None if drafted is None else drafted.strip() != text.strip()
        message_id, reopen = self._log_chat(conn, st, ref, text, draft_id, edited)
        if reopen:
            await self.desk_ops.reopen(st, ref)  # a customer line in a resolved session
        cause = CAUSE.set(ref)  # the co-pilot's frames about this message carry its id
        try:
            if is_customer:
                await self.copilot.on_customer_message(st.row.session_id, message_id, text)
            else:
                await self.copilot.on_agent_message(st.row.session_id, message_id, text,
                                                    draft_id, conn.name)
        finally:
            CAUSE.reset(cause)

    def _may_chat(self, conn: Conn, st: SessionState, override: bool) -> None:
        """Raise what refuses this line: a closed session, one another rep holds."""
        if st.row.state == "closed":
            raise OperationError(ErrorCode.SESSION_CLOSED, "this session is closed")
        self.desk_ops.check_send(conn, st.row.session_id, override)  # held by another rep?

    def _log_chat(self, conn: Conn, st: SessionState, ref: str, text: str,
                  draft_id: str | None, edited: bool | None) -> tuple[str, bool]:
        """Log the line (relayed once durable: see below) and tell the desk: (the
        message id, True when a customer wrote in a resolved session: reopen it)."""
        is_customer = conn.role is Role.CUSTOMER
        message_id = fast_id("c")
        # group commit: the lines of one loop tick share a transaction, committed at the end
        # of the tick (or as soon as anything else uses the log); each is relayed only
        # then, by _group_committed, in seq order
        if self.config.group_commit:
            _seq, _frame, began = self.log.append_chat_grouped(
                st.row, (_CHAT, st, (conn, ref)), message_id=message_id,
                role=conn.role_name, name=conn.name, text=text,
                draft_id=None if is_customer else draft_id, ref=ref, edited=edited,
            )
            st.pending += 1
            if began:
                asyncio.get_running_loop().call_soon(self.log.commit_group)
        else:  # one commit per line, relayed at once
            _seq, frame = self.log.append_chat(
                st.row, message_id=message_id, role=conn.role_name, name=conn.name,
                text=text, draft_id=None if is_customer else draft_id, ref=ref, edited=edited,
            )
            self._fanout(st, "chat.message", frame)
            self._notify_summary(st, agents=False)
        reopen = self.desk_ops.after_chat(conn.role_name, st.row.session_id, _seq, text,
                                          st.row.last_message_at or time.time())
        return message_id, reopen

    def _group_committed(self, lines: list[tuple[object, str]],
                         error: BaseException | None) -> None:
        """A group is durable (relay its frames, in order: chat lines, grouped host
        frames and the ephemeral frames deferred behind them), or failed to commit
        (nothing durable of it is relayed; a chat line's sender gets ``internal``, a
        host frame's session is marked (see ``SessionState.write_failed``) and what was
        deferred behind it dropped)."""
        fanout = self._fanout
        batch = self.server.batch() if self.server is not None else contextlib.nullcontext()
        with batch:  # each connection's frames of the group in one send
            self._relay_group(lines, error, fanout)

    def _relay_group(self, lines: list[tuple[object, str]], error: BaseException | None,
                     fanout: Callable[[SessionState, str, str], None]) -> None:
        ends_lost: dict[tuple[str, str], None] = {}  # (session, turn) whose end was lost
        for token, frame in lines:
            kind, st, arg = cast(tuple[int, SessionState, Any], token)
            st.pending -= 1
            try:  # (one recipient's failure must not cost the rest of the group)
                if kind == _CHAT:
                    if error is None:
                        fanout(st, "chat.message", frame)
                        self._notify_summary(st, agents=False)
                    else:
                        conn, ref = cast(tuple[Conn, str], arg)
                        self._reject(conn, ErrorCode.INTERNAL,
                                     "the host could not store this message",
                                     ref=ref, session=st.row.session_id)
                elif error is None or (kind == _LATER and st.write_failed is None):
                    fanout(st, cast(str, arg), frame)
                elif kind == _HOST:
                    if st.write_failed is not error:
                        st.write_failed = error
                        log.error("session %s: the co-pilot's %s (and what followed it) "
                                  "could not be stored: not relayed (%s)",
                                  st.row.session_id, arg, error)
                    if arg in _TURN_ENDS:
                        turn_id = json.loads(frame)["data"].get("turn_id")
                        if isinstance(turn_id, str):
                            ends_lost[(st.row.session_id, turn_id)] = None
            except Exception:
                log.exception("relaying a committed frame of session %s failed",
                              st.row.session_id)
        for sid, turn_id in ends_lost:
            self._tasks.spawn(self.copilot.turn_end_lost(sid, turn_id), f"turn end lost:{sid}")

    async def _op_ack(self, conn: Conn, env: Envelope, p: Payload,
                      st: SessionState | None) -> None:
        assert st is not None
        self._ack(conn, st, cast(Ack, p).seq)

    def _ack(self, conn: Conn, st: SessionState, acked: int) -> None:
        side = Role.CUSTOMER if conn.role is Role.CUSTOMER else Role.AGENT
        seq = ack_to_send(acked, st.row.last_seq, st.delivered.get(side, 0))
        if seq is None:
            return
        st.delivered[side] = seq
        frame = encode("chat.delivered", ChatDelivered(seq=seq, by=side),
                       session=st.row.session_id)
        targets: Iterable[Conn] = (
            [*st.agents, *self.desk] if side is Role.CUSTOMER else st.customers
        )
        wire = text_frame(frame.encode())
        for other in targets:
            other.push(frame, wire)

    async def _op_typing(self, conn: Conn, env: Envelope, p: Payload,
                         st: SessionState | None) -> None:
        assert st is not None
        frame = encode("typing", TypingState(role=conn.role, active=cast(Typing, p).active),
                       session=st.row.session_id)
        self._fanout(st, "typing", frame, skip=conn)

    async def _op_approve(self, conn: Conn, env: Envelope, p: Payload,
                          st: SessionState | None) -> None:
        assert st is not None
        if st.row.state == "closed":
            raise OperationError(ErrorCode.SESSION_CLOSED,
                                 "this session is closed; its pending actions were cancelled")
        a = cast(ApprovalApprove, p)
        await self.copilot.approve(st.row.session_id, a.approval_id, conn.name, a.arguments)

    async def _op_reject(self, conn: Conn, env: Envelope, p: Payload,
                         st: SessionState | None) -> None:
        assert st is not None
        r = cast(ApprovalReject, p)
        await self.copilot.reject(st.row.session_id, r.approval_id, conn.name, r.reason)

    async def _op_regenerate(self, conn: Conn, env: Envelope, p: Payload,
                             st: SessionState | None) -> None:
        assert st is not None
        if st.row.state == "closed":
            raise OperationError(ErrorCode.SESSION_CLOSED, "this session is closed")
        await self.copilot.regenerate(st.row.session_id)

    async def _op_steer(self, conn: Conn, env: Envelope, p: Payload,
                        st: SessionState | None) -> None:
        """draft.steer: the co-pilot re-drafts the turn with the representative's instruction."""
        assert st is not None
        if st.row.state == "closed":
            raise OperationError(ErrorCode.SESSION_CLOSED, "this session is closed")
        s = cast(DraftSteer, p)
        await self.copilot.steer(st.row.session_id, s.instruction, s.draft_id, conn.name)

    async def _op_discard(self, conn: Conn, env: Envelope, p: Payload,
                          st: SessionState | None) -> None:
        assert st is not None
        await self.copilot.discard(st.row.session_id, cast(DraftDiscard, p).turn_id)

    async def _op_session_create(self, conn: Conn, env: Envelope, p: Payload,
                                 st: SessionState | None) -> None:
        c = cast(SessionCreate, p)
        created = self.create_session(customer_id=c.customer_id, title=c.title, by=conn.name)
        self._reply(conn, "session.created", SessionCreated(
            session_id=created.session_id, customer_link=created.customer_link,
            agent_link=created.agent_link), env)

    async def _op_session_close(self, conn: Conn, env: Envelope, p: Payload,
                                st: SessionState | None) -> None:
        assert st is not None
        if st.row.state == "closed":
            raise OperationError(ErrorCode.SESSION_CLOSED, "this session is already closed")
        await self.publish(st.row.session_id, SessionClosed(by=conn.name), ref=env.id)
        await self.copilot.on_session_closed(st.row.session_id, conn.name)
        log.info("session %s closed by %s", st.row.session_id, conn.token.token_id)

    async def _op_session_reopen(self, conn: Conn, env: Envelope, p: Payload,
                                 st: SessionState | None) -> None:
        """Make a closed session writable again (logged as ``session.reopened``)."""
        assert st is not None
        if st.row.state != "closed":
            raise OperationError(ErrorCode.CONFLICT, "this session is open")
        await self.publish(st.row.session_id, SessionReopened(by=conn.name), ref=env.id)
        log.info("session %s reopened by %s", st.row.session_id, conn.token.token_id)

    async def _op_session_list(self, conn: Conn, env: Envelope, p: Payload,
                               st: SessionState | None) -> None:
        q = cast(SessionListRequest, p)
        if conn.session_id is not None:
            sessions, cursor = self._visible_summaries(conn)
            self._reply(conn, "session.list", SessionList(sessions=sessions, cursor=cursor), env)
            return
        # a desk page: picked from the snapshot in O(page), its summaries built and
        # encoded in batches with yields between them, spliced into the reply
        page, cursor = self._desk_page(q.cursor, q.limit)
        body = await self._summaries_json(page)
        head = encode("session.list", SessionList(sessions=[], cursor=cursor),
                      session=env.session, ref=env.id)
        conn.push(head.replace('"data":{"sessions":[]', '"data":{"sessions":' + body, 1))

    async def _op_session_sync(self, conn: Conn, env: Envelope, p: Payload,
                               st: SessionState | None) -> None:
        assert st is not None
        after = cast(SessionSync, p).after_seq
        decision = conn.replays.sync(st.row.session_id, after, st.row.last_seq)
        if decision is SyncDecision.CONFLICT:
            raise OperationError(ErrorCode.CONFLICT, "a replay of this session is still "
                                 "being sent; ask again once it has arrived")
        if decision is SyncDecision.REPLAY:
            conn.wake.set()
        # COALESCE: the replay under way already sends everything after it

    async def _op_session_history(self, conn: Conn, env: Envelope, p: Payload,
                                  st: SessionState | None) -> None:
        """One page of a session's history, newest first (issue 18): read from the log
        in one bounded range scan (<= 200 frames / 256 KiB) and sent as one frame whose
        ``frames`` are the stored envelopes spliced in as they are (no re-encoding)."""
        assert st is not None
        q = cast(SessionHistoryRequest, p)
        cfg = self.config
        if not conn.replay_budget.available(0.0):  # the same byte budget as replays
            self._reject(conn, ErrorCode.RATE_LIMITED, "history read too fast: slow down",
                         ref=env.id, session=env.session,
                         retry_after=round(conn.replay_budget.retry_after(0.0), 3))
            return
        sid = st.row.session_id
        before = history_before(st.row.last_seq, q.before_seq)
        rows, more = self.log.page_before(sid, before, q.limit, cfg.replay_page_bytes)
        page = history_page(rows, more, conn.role)
        conn.replay_budget.spend(page.nbytes)
        head = encode("session.history", SessionHistory(
            before_seq=q.before_seq, first_seq=page.first_seq, last_seq=page.last_seq,
            more=page.more, frames=[]), session=sid, ref=env.id)
        # the payload's last field is ``frames``: splice the stored envelopes in
        assert head.endswith('[]}}')
        conn.push(f"{head[:-3]}{','.join(page.frames)}]}}}}")
        if q.before_seq is None and conn.sees_agent_only and sid not in conn.replays:
            self._send_drafts_in_progress(conn, [st])  # a draft streaming: its text so far

    async def _op_customer_get(self, conn: Conn, env: Envelope, p: Payload,
                               st: SessionState | None) -> None:
        assert st is not None
        identity = st.row.identity
        if ident.verified_customer(identity) is None:  # nobody's records for the unverified
            details = CustomerDetails(customer=None, orders=[], identity=identity)
        else:
            details = await self.copilot.customer_details(st.row.session_id)
            if details.identity is None:
                details = details.model_copy(update={"identity": identity})
        self._reply(conn, "customer.details", details, env)

    async def _op_article_get(self, conn: Conn, env: Envelope, p: Payload,
                              st: SessionState | None) -> None:
        article_id = cast(ArticleGet, p).article_id
        self._reply(conn, "article.content", await self.copilot.article(article_id), env)
        self.insights.article_opened(article_id, conn.name, env.session)

    async def _op_kb_search(self, conn: Conn, env: Envelope, p: Payload,
                            st: SessionState | None) -> None:
        q = cast(KbSearch, p)
        self._reply(conn, "kb.results", await self.copilot.kb_search(q.query, q.kind, q.limit),
                    env)

    async def _op_insights_get(self, conn: Conn, env: Envelope, p: Payload,
                               st: SessionState | None) -> None:
        q = cast(InsightsGet, p)
        report = await self.insights.report(q.start, q.end, q.weak_score)
        self._reply(conn, "insights.report", InsightsReportData(report=report), env)

    async def _op_insights_conversation(self, conn: Conn, env: Envelope, p: Payload,
                                        st: SessionState | None) -> None:
        assert st is not None
        sid = st.row.session_id
        self._reply(conn, "insights.changes",
                    InsightsChanges(session_id=sid, changes=await self.insights.changes(sid)),
                    env)

    # ------------------------------------------------------------------ identity

    async def set_identity(self, session_id: str, identity: SessionIdentity, *,
                           action: IdentityAction, by: str, reason: str | None = None,
                           ref: str | None = None) -> int:
        """Record a new identity for the session (durable ``identity.changed``: the audit
        trail, with who did it), tell the session's customers their own state and the
        desk the new summary. Returns the seq."""
        st = self._state(session_id)
        if st is None:
            raise OperationError(ErrorCode.NOT_FOUND, f"no session {session_id!r}")
        payload = IdentityChanged(identity=identity, previous=st.row.identity,
                                  action=action, by=by, reason=reason)
        seq, frame = self.log.append(st.row, payload, ref=ref)
        self._fanout(st, "identity.changed", frame)
        status = encode("identity.state", ident.customer_status(identity), session=session_id,
                        ref=ref)
        name = identity.customer_name if ident.verified_customer(identity) else None
        for conn in st.customers:
            if not conn.token.label:
                conn.name = name or UNVERIFIED_NAME
            conn.push(status)
        self._notify_summary(st)
        log.info("session %s: %s (%s by %s)", session_id, ident.describe(identity), action, by)
        return seq

    async def _op_sign_in(self, conn: Conn, env: Envelope, p: Payload,
                          st: SessionState | None) -> None:
        """Email + order number that belong together -> verified. Every failure gets the
        same answer; failures are counted per session, email address and client IP, and a
        locked-out attempt is refused before the shop is asked."""
        assert st is not None
        s = cast(IdentitySignIn, p)
        sid = st.row.session_id
        if st.row.state == "closed":
            raise OperationError(ErrorCode.SESSION_CLOSED, "this session is closed")
        if ident.verified_customer(st.row.identity) is not None:
            raise OperationError(ErrorCode.CONFLICT, "you are already signed in")
        ip = _peer_ip(conn.ws)
        keys = self._sign_in.keys(sid, s.email, ip)
        now = time.monotonic()
        wait = self._sign_in.retry_after(keys, now)
        if wait is not None:
            minutes = max(1, round(wait / 60))
            self._reject(conn, ErrorCode.RATE_LIMITED,
                         f"Too many sign-in attempts. Please try again in about {minutes} "
                         f"minute{'s' if minutes != 1 else ''}, or ask the representative "
                         "to verify you.", ref=env.id, session=sid, retry_after=round(wait, 1))
            return
        customer = None
        if self.directory is not None:
            customer = await asyncio.to_thread(self.directory.match_sign_in, s.email, s.order_id)
        if customer is None:
            for key in self._sign_in.failed(keys, now):
                log.warning("sign-in locked out for %.0f s: %s (session %s, from %s)",
                            self.config.sign_in_lockout, key, sid, ip)
            log.info("sign-in failed in session %s (from %s)", sid, ip)
            self._reject(conn, ErrorCode.SIGN_IN_FAILED, ident.SIGN_IN_FAILED_MESSAGE,
                         ref=env.id, session=sid)
            return
        self._sign_in.succeeded(keys)
        assert self.directory is not None
        name = await asyncio.to_thread(self.directory.customer_name, customer)
        await self.set_identity(sid, ident.signed_in(customer, name, at=time.time()),
                                action="sign_in", by="customer", ref=env.id)

    async def _op_identity_link(self, conn: Conn, env: Envelope, p: Payload,
                                st: SessionState | None) -> None:
        assert st is not None
        link = cast(IdentityLink, p)
        cid = link.customer_id.strip().upper()
        name = (await asyncio.to_thread(self.directory.customer_name, cid)
                if self.directory is not None else None)
        if name is None:
            raise OperationError(ErrorCode.NOT_FOUND, f"no customer {cid!r} in the shop")
        identity = ident.linked(cid, name, by=conn.name, at=time.time(), verified=link.verified)
        await self.set_identity(st.row.session_id, identity,
                                action="link" if link.verified else "claim", by=conn.name,
                                ref=env.id)

    async def _op_identity_unlink(self, conn: Conn, env: Envelope, p: Payload,
                                  st: SessionState | None) -> None:
        assert st is not None
        if st.row.identity.state == "anonymous":
            raise OperationError(ErrorCode.CONFLICT, "this session is not linked to a customer")
        await self.set_identity(st.row.session_id, ident.ANONYMOUS, action="unlink",
                                by=conn.name, reason=cast(IdentityUnlink, p).reason, ref=env.id)

    async def _op_customer_search(self, conn: Conn, env: Envelope, p: Payload,
                                  st: SessionState | None) -> None:
        q = cast(CustomerSearch, p)
        found = (await asyncio.to_thread(self.directory.find_customers, q.query, q.limit)
                 if self.directory is not None else [])
        self._reply(conn, "customer.results", CustomerResults(query=q.query, customers=found),
                    env)

    _Op = Callable[["Relay", Conn, Envelope, Payload, "SessionState | None"], Awaitable[None]]
    _ops: dict[str, _Op] = {
        "ack": _op_ack,
        "chat.send": _op_chat,
        "typing": _op_typing,
        "approval.approve": _op_approve,
        "approval.reject": _op_reject,
        "draft.regenerate": _op_regenerate,
        "draft.discard": _op_discard,
        "draft.steer": _op_steer,
        "session.create": _op_session_create,
        "session.close": _op_session_close,
        "session.reopen": _op_session_reopen,
        "session.list": _op_session_list,
        "session.sync": _op_session_sync,
        "session.history": _op_session_history,
        "customer.get": _op_customer_get,
        "article.get": _op_article_get,
        "kb.search": _op_kb_search,
        "insights.get": _op_insights_get,
        "insights.conversation": _op_insights_conversation,
        "identity.sign_in": _op_sign_in,
        "identity.link": _op_identity_link,
        "identity.unlink": _op_identity_unlink,
        "customer.search": _op_customer_search,
    }

    async def _op_desk(self, conn: Conn, env: Envelope, p: Payload,
                       st: SessionState | None) -> None:
        """Issue 16's operations (host/desk.py)."""
        await self.desk_ops.handle(conn, env, p, st)

    _ops.update(dict.fromkeys(DESK_TYPES, _op_desk))


_SUMMARY_BATCH = 100  # session summaries built between two yields (session.list)
_SUMMARY_LIST: TypeAdapter[list[SessionSummary]] = TypeAdapter(list[SessionSummary])

# operations that cost ``heavy_cost`` more of the rate budget (PROTOCOL.md §13)
_HEAVY = HEAVY_TYPES | DESK_HEAVY


def _activity(st: SessionState) -> SessionKey:
    """The inbox's order: last activity (a chat line, else creation), then the id."""
    row = st.row
    return (row.last_message_at or row.created_at, row.session_id)


def _not_stored(st: SessionState) -> OperationError:
    return OperationError(ErrorCode.INTERNAL, f"the host could not store the messages of "
                          f"session {st.row.session_id}: not relayed")


def _fd_budget(reserve: int) -> int:
    """Connections the open-file limit allows, keeping ``reserve`` descriptors free."""
    try:
        import resource

        soft, _hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    except (ImportError, OSError, ValueError):
        return 4096
    if soft == resource.RLIM_INFINITY or soft <= 0:
        return 65536
    return max(16, int(soft) - reserve)


class _AcceptErrorFilter(logging.Filter):
    """asyncio logs a traceback for every failed ``accept()`` at the open-file limit;
    keep one short line per minute instead of a storm."""

    def __init__(self) -> None:
        super().__init__()
        self._last = 0.0
        self._hidden = 0

    def filter(self, record: logging.LogRecord) -> bool:
        if "accept" not in str(record.msg):
            return True
        now = time.monotonic()
        if now - self._last < 60.0:
            self._hidden += 1
            return False
        self._last = now
        record.msg = (f"accept() failed (open-file limit?); pausing accepts"
                      f" ({self._hidden} similar messages hidden)")
        record.args = None
        record.exc_info = None
        record.exc_text = None
        self._hidden = 0
        return True


def _peer_ip(ws: WsConn) -> str:
    try:
        return str(ws.remote_address[0])
    except Exception:
        return "?"


def _peer(ws: WsConn) -> str:
    try:
        addr = ws.remote_address
        return f"{addr[0]}:{addr[1]}"
    except Exception:
        return "?"
