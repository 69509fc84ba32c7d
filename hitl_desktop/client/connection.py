"""One client connection to a host, with Qt signals for the UI.

The UI never touches sockets: it calls :meth:`HostConnection.send` and listens to
signals. All network work runs as supervised tasks on the asyncio loop that qasync
drives, so Qt and asyncio share one thread and one loop.

Reliability model (docs/PROTOCOL.md): durable host messages carry a per-session
``seq``. The connection remembers the last seq it processed per session and
presents it in ``hello.resume`` after a drop, so the host replays exactly what was
missed. A desk connection follows (tracks) only the sessions its user opened
(:meth:`HostConnection.fetch_history`: the newest page of a session's history, from
whose last seq the connection follows it; older pages on demand; or
:meth:`HostConnection.sync_session`, the whole of it): the host replays nothing else,
and live frames of the other sessions pass through untracked (the workspace keeps their
summaries).
Duplicates (seq already seen) are dropped; for agents, who see every
durable message, a gap (seq jumps) means a frame was lost, so the connection
resyncs by reconnecting (customers are not sent agent-only messages, so their
seqs skip by design). Client messages queue in an
outbox while offline and are written after the next ``welcome``; a message written
just before a drop whose confirmation never came is written again once the replay
has caught up (by then the replay would have carried its echo if the host got it).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import logging
import os
import random
import ssl
import time
from collections import deque
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Final

from PySide6.QtCore import QObject, Signal

from hitl_desktop import __version__
from hitl_desktop.core.links import InviteLink
from hitl_desktop.core.protocol import (
    Ack,
    ChatMessage,
    ClientInfo,
    CloseCode,
    Envelope,
    ErrorCode,
    ErrorPayload,
    Hello,
    Payload,
    ProtocolError,
    Role,
    SessionGap,
    Welcome,
    client_type,
    decode_host,
    encode,
    new_id,
)
from hitl_desktop.core.tasks import TaskSupervisor

if TYPE_CHECKING:
    from websockets.asyncio.client import ClientConnection

log = logging.getLogger(__name__)

#: Host frames can carry whole articles and long drafts; the host caps what it sends.
MAX_INBOUND_BYTES: Final = 8 * 1024 * 1024
#: Yield to the Qt/asyncio loop after this many frames so painting never starves.
YIELD_EVERY: Final = 8
#: Acks are coalesced per session and flushed this often (seconds).
ACK_DELAY_S: Final = 0.03
#: How long to wait after ``welcome`` for the replay before re-writing unconfirmed messages.
REPLAY_WAIT_S: Final = 3.0
#: customers: the replay is through once no durable message came for this long
REPLAY_QUIET_S: Final = 0.25
#: After a rate-limit error, wait this much longer than asked before writing again.
RATE_LIMIT_GRACE_S: Final = 0.5
#: Types the host answers with a frame whose ``ref`` (or echo) names our message id:
#: kept until that answer, and written again after a drop if it never came. The
#: rest (approvals, draft commands, session.sync) are done once written: their
#: outcome shows in the session's replayed state, and writing them twice could act twice.
_CONFIRMED_TYPES: Final = frozenset({
    "chat.send", "session.close", "session.create", "session.list", "customer.get",
    "article.get", "kb.search", "session.history",
})
#: At most this many sessions in ``hello.resume`` (the protocol's cap): a desk that
#: opened more forgets the least recently opened ones (fetched again when reopened).
MAX_RESUME: Final = 5000
#: Client message types that are pointless to queue while offline.
_VOLATILE_TYPES: Final = frozenset({"typing", "ack"})

FATAL_CLOSE_CODES: Final[dict[int, str]] = {
    CloseCode.AUTH_FAILED: "The host did not accept this invite link (it may be wrong or expired).",
    CloseCode.UNSUPPORTED_VERSION: "This app and the host speak different protocol versions; "
    "update HITL Desk.",
    CloseCode.REVOKED: "This link was revoked or the session was closed by the host.",
}


UNTRUSTED_CERTIFICATE: Final = (
    "The host's certificate is not trusted ({}). If the host uses its own (self-signed) "
    "certificate, copy its certificate file to this PC and start HITL Desk with "
    "HITL_CA_FILE=/path/to/cert.pem.")


class ConnectionState(StrEnum):
    """What the banner shows."""

    OFFLINE = "offline"  # not started, or closed on purpose
    CONNECTING = "connecting"  # first attempt
    CONNECTED = "connected"  # welcome received
    RECONNECTING = "reconnecting"  # lost, retrying with backoff
    FAILED = "failed"  # permanent: bad link, revoked, incompatible host


@dataclass(frozen=True, slots=True)
class HistoryPage:
    """A ``session.history`` answer with its frames decoded (docs/PROTOCOL.md §10,
    *Opening a session page by page*): ``frames`` oldest first, covering
    ``first_seq``..``last_seq`` (None: an empty page); ``newest``: the page asked with
    ``before_seq`` null (the connection follows the session from its ``last_seq``)."""

    session_id: str
    before_seq: int | None
    first_seq: int | None
    last_seq: int | None
    more: bool
    frames: list[tuple[Envelope, Payload]]

    @property
    def newest(self) -> bool:
        return self.before_seq is None


class _Resync(Exception):
    """A seq gap: drop the socket and resume from the last seq we have."""


@dataclass(slots=True)
class _Outgoing:
    msg_id: str
    type: str
    session: str | None  # None: the session this connection is bound to, at write time
    payload: Payload
    written: bool = False
    queued_at: float = field(default_factory=time.monotonic)


def backoff_delay(attempt: int, base: float, cap: float, rng: random.Random) -> float:
    """Exponential backoff with jitter: between half and all of ``base * 2**attempt``."""
    ceiling = min(cap, base * 2.0 ** min(attempt, 20))
    return ceiling / 2 + rng.random() * ceiling / 2


class _Bucket:
    """Client-side token bucket a little below the rate the host announces in
    ``welcome.server``; every frame takes from it, so nothing is written only to be
    dropped by the host's limiter (which does not say which frames it dropped)."""

    SHARE: Final = 0.8

    def __init__(self, rate: float, burst: float, cost_bytes: float = 0.0,
                 heavy_cost: float = 0.0, heavy: frozenset[str] = frozenset()) -> None:
        self.rate = max(0.5, rate * self.SHARE)
        self.capacity = max(1.0, burst * self.SHARE)
        self.tokens = self.capacity
        self.at = time.monotonic()
        self.cost_bytes = cost_bytes  # the host charges 1 + len(frame) / cost_bytes ...
        self.heavy_cost = heavy_cost  # ... plus this for the types in ``heavy``
        self.heavy = heavy

    @classmethod
    def for_host(cls, welcome: Welcome | None) -> _Bucket:
        server = welcome.server if welcome is not None else {}
        try:
            return cls(float(server.get("rate", 20.0)), float(server.get("burst", 60.0)),
                       float(server.get("cost_bytes", 0) or 0),
                       float(server.get("heavy_cost", 0) or 0),
                       frozenset(str(t) for t in server.get("heavy", []) or []))
        except (TypeError, ValueError):
            return cls(20.0, 60.0)

    def cost(self, type_: str, frame: str) -> float:
        """What the host charges for this frame (docs/PROTOCOL.md section 13)."""
        extra = len(frame) / self.cost_bytes if self.cost_bytes > 0 else 0.0
        return 1.0 + extra + (self.heavy_cost if type_ in self.heavy else 0.0)

    def try_take(self) -> bool:
        """Spend a token only if one is available now."""
        now = time.monotonic()
        self.tokens = min(self.capacity, self.tokens + (now - self.at) * self.rate)
        self.at = now
        if self.tokens < 1.0:
            return False
        self.tokens -= 1.0
        return True

    def take(self, cost: float = 1.0) -> float:
        """Spend ``cost`` tokens; seconds to wait first (0 when they are available)."""
        now = time.monotonic()
        self.tokens = min(self.capacity, self.tokens + (now - self.at) * self.rate)
        self.at = now
        self.tokens -= min(cost, self.capacity)
        return 0.0 if self.tokens >= 0 else -self.tokens / self.rate


class ResumeTokenStore:
    """Lobby customers' personal tokens, keyed by a hash of the invite link.

    A lobby link opens a fresh session per use; the token from ``welcome`` brings a
    restarted customer window back to *its* session instead.
    """

    def __init__(self, path: Path) -> None:
        self.path = path

    @staticmethod
    def key(link: InviteLink) -> str:
        return hashlib.sha256(str(link).encode()).hexdigest()[:32]

    def _load(self) -> dict[str, str]:
        try:
            raw = json.loads(self.path.read_text("utf-8"))
        except FileNotFoundError:
            return {}
        except (OSError, ValueError) as exc:
            log.warning("ignoring unreadable resume tokens %s: %s", self.path, exc)
            return {}
        return {str(k): str(v) for k, v in raw.items()} if isinstance(raw, dict) else {}

    def get(self, link: InviteLink) -> str | None:
        return self._load().get(self.key(link))

    def put(self, link: InviteLink, token: str | None) -> None:
        data = self._load()
        if token is None:
            if data.pop(self.key(link), None) is None:
                return
        else:
            data[self.key(link)] = token
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(json.dumps(data, indent=1), "utf-8")
        with contextlib.suppress(OSError):
            os.chmod(tmp, 0o600)
        tmp.replace(self.path)


class HostConnection(QObject):
    """A resilient connection to a host: connect, authenticate, resume, reconnect.

    Signals are emitted on the loop thread (Qt's main thread under qasync).
    """

    #: the new :class:`ConnectionState` value (str)
    state_changed = Signal(str)
    #: the :class:`Welcome` payload, after every (re)connect
    welcome_received = Signal(object)
    #: every host message except welcome/error, deduplicated: (Envelope, Payload)
    message_received = Signal(object, object)
    #: (ErrorCode value, message, ref or None) for host ``error`` frames
    error_received = Signal(str, str, object)
    #: (ref or None, ``details`` dict or None) of the same frame, just before
    #: error_received (e.g. held_by_other's assignee, a conflict's pending count)
    error_details = Signal(object, object)
    #: a queued message id was written to the socket
    message_written = Signal(str)
    #: (session id, first lost seq): the host lost messages we had received (its log
    #: lost its end, e.g. a power cut); seqs from there on are the host's new ones
    history_reset = Signal(str, int)
    #: list of session ids a desk connection stopped following (more than MAX_RESUME
    #: opened): their history is fetched again when they are opened
    sessions_forgotten = Signal(object)
    #: a :class:`HistoryPage` answering :meth:`fetch_history`
    history_page = Signal(object)
    #: (session id, before_seq or None, the host's reason): a history page was refused
    history_failed = Signal(str, object, str)

    def __init__(
        self,
        link: InviteLink,
        *,
        client_name: str = "hitl-desktop",
        resume_store: ResumeTokenStore | Path | None = None,
        backoff_base: float = 0.5,
        backoff_max: float = 30.0,
        open_timeout: float = 10.0,
        seed: int | None = None,
        parent: QObject | None = None,
    ) -> None:
        super().__init__(parent)
        self.link = link
        self.client_name = client_name
        if isinstance(resume_store, Path):
            resume_store = ResumeTokenStore(resume_store)
        self._resume_store = resume_store
        self._backoff_base = backoff_base
        self._backoff_max = backoff_max
        self._open_timeout = open_timeout
        self._rng = random.Random(seed)

        self._state = ConnectionState.OFFLINE
        self._state_message = ""
        self._welcome: Welcome | None = None
        self._last_seq: dict[str, int] = {}  # the sessions we follow (least recent first)
        # desk: sessions asked for with session.sync whose replay has not begun yet:
        # their live frames that skip ahead are dropped (the replay carries them)
        self._fetching: set[str] = set()
        self._sync_ids: dict[str, str] = {}  # our session.sync ids -> their session
        # our session.history ids -> (session, before_seq, limit), until answered
        self._history_ids: dict[str, tuple[str, int | None, int]] = {}
        self._outbox: deque[_Outgoing] = deque()
        self._wake = asyncio.Event()
        self._retry_now = asyncio.Event()
        self._state_event = asyncio.Event()  # set on every state change
        self._progress = asyncio.Event()  # set on every durable message
        self._ws: ClientConnection | None = None
        self._tasks = TaskSupervisor("hitl-client", logger=log)
        self._main: asyncio.Task[None] | None = None
        self._closing = False
        self._ack_pending: dict[str, int] = {}
        self._ack_handle: asyncio.TimerHandle | None = None
        self._bucket = _Bucket(20.0, 60.0)  # replaced by the host's numbers at welcome
        self._resume_token: str | None = resume_store.get(link) if resume_store else None
        self.attempts = 0  # consecutive failed attempts (for the banner and tests)
        self.connects = 0  # successful welcomes so far
        self.retry_at: float | None = None  # time.monotonic() of the next attempt
        self.last_close_code: int | None = None
        self.resyncs = 0
        self.duplicates_dropped = 0

    # ------------------------------------------------------------------ public API

    @property
    def state(self) -> ConnectionState:
        return self._state

    @property
    def state_message(self) -> str:
        """Why we are in this state (empty when connected)."""
        return self._state_message

    @property
    def welcome(self) -> Welcome | None:
        return self._welcome

    @property
    def session_id(self) -> str | None:
        """The session a customer (or session agent) is bound to."""
        return self._welcome.session_id if self._welcome else None

    @property
    def resume_token(self) -> str | None:
        return self._resume_token

    @property
    def closing(self) -> bool:
        """True once :meth:`close` was called."""
        return self._closing

    def last_seq(self, session_id: str) -> int:
        return self._last_seq.get(session_id, 0)

    def resume_points(self) -> dict[str, int]:
        return dict(self._last_seq)

    def tracks(self, session_id: str) -> bool:
        """Whether this connection follows the session (has or fetches its history)."""
        return session_id in self._last_seq

    def track(self, session_id: str, last_seq: int = 0) -> None:
        """Follow a session from ``last_seq`` (0 = its whole history) on the next hello
        (most recently tracked last; past MAX_RESUME the oldest are forgotten)."""
        if session_id in self._last_seq:
            self._last_seq[session_id] = self._last_seq.pop(session_id)
            return
        self._last_seq[session_id] = last_seq
        if len(self._last_seq) > MAX_RESUME:
            forgotten = list(self._last_seq)[:len(self._last_seq) - MAX_RESUME]
            for sid in forgotten:
                del self._last_seq[sid]
                self._fetching.discard(sid)
            self.sessions_forgotten.emit(forgotten)

    def retry_in(self) -> float | None:
        """Seconds until the next reconnect attempt, while waiting for one."""
        if self.retry_at is None:
            return None
        return max(0.0, self.retry_at - time.monotonic())

    def sync_session(self, session_id: str) -> str:
        """Open a session on a desk: fetch the history we have not got (the whole of it
        the first time) and follow it from then on (it joins ``hello.resume``)."""
        from hitl_desktop.core.protocol import SessionSync

        self.track(session_id, 0)
        self._fetching.add(session_id)
        msg_id = self.send(SessionSync(after_seq=self.last_seq(session_id)), session=session_id)
        self._sync_ids[msg_id] = session_id
        while len(self._sync_ids) > 256:  # answered ones are never removed by success
            self._sync_ids.pop(next(iter(self._sync_ids)))
        return msg_id

    def fetch_history(self, session_id: str, before_seq: int | None, limit: int) -> str:
        """Ask for one page of a session's history, newest first (``before_seq`` None:
        the newest page; else the page below the oldest seq held). The answer comes as
        :attr:`history_page`; the newest page makes this connection follow the session
        from that page's ``last_seq`` (it joins ``hello.resume``). Kept until answered
        and asked again after a reconnect (a confirmed type)."""
        from hitl_desktop.core.protocol import SessionHistoryRequest

        msg_id = self.send(SessionHistoryRequest(before_seq=before_seq, limit=limit),
                           session=session_id)
        self._history_ids[msg_id] = (session_id, before_seq, limit)
        while len(self._history_ids) > 256:  # bounded, whatever a view asks
            self._history_ids.pop(next(iter(self._history_ids)))
        return msg_id

    def _on_history(self, env: Envelope, payload: Payload) -> None:
        """A session.history answer: decode its frames; the newest page makes us follow
        the session from its ``last_seq`` (frames at or below it are dropped from now
        on, the ones after it continue the history with no gap)."""
        from hitl_desktop.core.protocol import SessionHistory, decode_history_frame

        assert isinstance(payload, SessionHistory) and env.session is not None
        if env.ref is not None:
            self._history_ids.pop(env.ref, None)
        sid = env.session
        frames: list[tuple[Envelope, Payload]] = []
        for obj in payload.frames:
            try:
                fenv, fpayload, _spec = decode_history_frame(obj)
            except ProtocolError as exc:
                log.warning("ignoring a history frame the protocol rejects: %s", exc.message)
                continue
            if fenv.session == sid:
                frames.append((fenv, fpayload))
        if payload.before_seq is None and payload.last_seq is not None:
            self.track(sid, 0)
            if payload.last_seq > self._last_seq[sid]:
                self._last_seq[sid] = payload.last_seq
                self._schedule_ack(sid, payload.last_seq)
            self._fetching.discard(sid)
            self._progress.set()
        self.history_page.emit(HistoryPage(sid, payload.before_seq, payload.first_seq,
                                           payload.last_seq, payload.more, frames))

    def pending_count(self) -> int:
        """Messages not yet written, or written but not yet confirmed by the host."""
        return len(self._outbox)

    def open(self) -> None:
        """Start connecting (idempotent). Needs the qasync/asyncio loop to be current."""
        if self._main is not None and not self._main.done():
            return
        self._closing = False
        self._main = self._tasks.spawn(self._run(), "connection")

    async def wait_connected(self) -> Welcome:
        """Until connected (wrap in ``asyncio.timeout``); raises ConnectionError once FAILED."""
        while self._state is not ConnectionState.CONNECTED:
            if self._state is ConnectionState.FAILED:
                raise ConnectionError(self._state_message)
            self._state_event.clear()
            await self._state_event.wait()
        assert self._welcome is not None
        return self._welcome

    def send(self, payload: Payload, *, session: str | None = None) -> str:
        """Queue one client message; returns its id (hosts echo it as ``ref``).

        Written right away when connected, else after the next welcome. ``session``
        defaults to the session this connection is bound to.
        """
        type_ = client_type(payload)
        msg_id = new_id("c")
        if type_ in _VOLATILE_TYPES:
            if (self._state is ConnectionState.CONNECTED and self._ws is not None
                    and self._bucket.try_take()):  # best effort: never worth a drop
                frame = encode(type_, payload, session=session or self.session_id, msg_id=msg_id)
                self._tasks.spawn(self._write_volatile(frame), f"send {type_}")
            return msg_id
        # encoded when written: a customer queueing before its first welcome has no session yet
        self._outbox.append(_Outgoing(msg_id, type_, session, payload))
        self._wake.set()
        return msg_id

    def reconnect_now(self) -> None:
        """Skip the backoff wait (the banner's "Retry now")."""
        if self._state is ConnectionState.FAILED:
            self.open()
        self._retry_now.set()

    def drop_socket(self) -> None:
        """Abort the socket as a network failure would (tests, diagnostics)."""
        if self._ws is not None:
            transport = self._ws.transport
            transport.abort()

    def close(self) -> None:
        """Stop for good without waiting (use :meth:`aclose` to await it)."""
        self._tasks.spawn(self.aclose(), "close")

    async def aclose(self) -> None:
        self._closing = True
        self._retry_now.set()
        self._wake.set()
        if self._ws is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._ws.close(), 2.0)
        main = self._main
        if main is not None and not main.done():
            main.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await main
        self._tasks.cancel_all()
        self._set_state(ConnectionState.OFFLINE, "closed")

    # ------------------------------------------------------------------ internals

    def _set_state(self, state: ConnectionState, message: str = "") -> None:
        changed = state is not self._state or message != self._state_message
        self._state = state
        self._state_message = message
        if changed:
            log.info("connection %s %s", state.value, message)
            self._state_event.set()
            self.state_changed.emit(state.value)

    def _token(self) -> str:
        return self._resume_token or self.link.token

    def _ssl_context(self) -> ssl.SSLContext | None:
        if not self.link.tls:
            return None
        ctx = ssl.create_default_context()
        ca = os.environ.get("HITL_CA_FILE")
        if ca:
            ctx.load_verify_locations(ca)
        return ctx

    async def _run(self) -> None:
        """The connection supervisor: (re)connect until closed or failed for good."""
        # imported here: windows show faster when websockets loads after the first paint
        import websockets
        from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidURI

        first = True
        while not self._closing:
            self._set_state(
                ConnectionState.CONNECTING if first and not self.connects
                else ConnectionState.RECONNECTING,
                "connecting…" if first else self._state_message,
            )
            first = False
            code: int | None = None
            reason = ""
            resync = False
            untrusted = ""
            try:
                async with websockets.connect(
                    self.link.ws_url,
                    open_timeout=self._open_timeout,
                    ping_interval=20,
                    ping_timeout=20,
                    close_timeout=2,
                    max_size=MAX_INBOUND_BYTES,
                    max_queue=64,
                    ssl=self._ssl_context(),
                    user_agent_header=f"hitl-desktop/{__version__}",
                ) as ws:
                    self._ws = ws
                    try:
                        await self._serve(ws)
                    except _Resync:
                        resync = True
                        self.resyncs += 1
                        with contextlib.suppress(Exception):
                            await asyncio.wait_for(ws.close(1000, "resync"), 1.0)
                    if ws.close_code is not None:
                        code, reason = ws.close_code, ws.close_reason or ""
            except ConnectionClosed as exc:
                code = exc.rcvd.code if exc.rcvd is not None else None
                reason = exc.rcvd.reason if exc.rcvd is not None else ""
            except ssl.SSLCertVerificationError as exc:
                untrusted = exc.verify_message or str(exc)
            except (OSError, TimeoutError, InvalidHandshake, InvalidURI, EOFError) as exc:
                reason = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
            finally:
                self._ws = None
            if self.closing:
                break
            if untrusted:  # retrying cannot help: say how to trust the host instead
                log.info("the host's certificate is not trusted: %s", untrusted)
                self._set_state(ConnectionState.FAILED, UNTRUSTED_CERTIFICATE.format(untrusted))
                return
            self.last_close_code = code
            log.info("disconnected (code %s, %s)", code, reason or "no reason")
            if code in FATAL_CLOSE_CODES:
                if self._resume_token is not None and code in (
                    CloseCode.AUTH_FAILED,
                    CloseCode.REVOKED,
                ):
                    # the personal token expired: start over from the invite link
                    log.info("stored resume token refused; retrying with the invite link")
                    self._forget_resume_token()
                    continue
                message = FATAL_CLOSE_CODES[code]
                if reason:
                    message = f"{message} ({reason})"
                self._set_state(ConnectionState.FAILED, message)
                return
            if resync:
                continue
            delay = backoff_delay(self.attempts, self._backoff_base, self._backoff_max, self._rng)
            self.attempts += 1
            self.retry_at = time.monotonic() + delay
            why = reason or (f"connection closed ({code})" if code else "connection lost")
            self._set_state(ConnectionState.RECONNECTING, f"{why}; retrying in {delay:.0f} s")
            self._retry_now.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._retry_now.wait(), delay)
            self.retry_at = None
        self._set_state(ConnectionState.OFFLINE, "closed")

    def _forget_resume_token(self) -> None:
        self._resume_token = None
        if self._resume_store is not None:
            self._resume_store.put(self.link, None)
        # a fresh lobby session starts from scratch
        self._last_seq.clear()

    async def _serve(self, ws: ClientConnection) -> None:
        hello = Hello(
            token=self._token(),
            client=ClientInfo(name=self.client_name[:64], version=__version__),
            resume=dict(self._last_seq),
        )
        # the resume replays every session we follow: a session.sync still queued for
        # one of them would only fetch it twice (or meet its replay: conflict)
        self._fetching.clear()
        for item in [i for i in self._outbox
                     if i.type == "session.sync" and i.session in self._last_seq]:
            self._outbox.remove(item)
        await ws.send(encode("hello", hello))
        # first frame: welcome, or an error followed by a close
        async with asyncio.timeout(self._open_timeout):
            while True:
                env, payload = self._decode(await ws.recv())
                if env is None:
                    continue
                if isinstance(payload, ErrorPayload):
                    self._emit_error(env, payload)
                    continue
                if isinstance(payload, Welcome):
                    break
                log.warning("expected welcome, got %s; ignoring", env.type)
        self._on_welcome(payload)
        writer = self._tasks.spawn(self._writer(ws), "writer")
        catch_up = self._tasks.spawn(self._after_replay(payload), "replay wait")
        try:
            count = 0
            async for frame in ws:
                self._on_frame(frame)
                count += 1
                if count % YIELD_EVERY == 0:
                    await asyncio.sleep(0)
        finally:
            writer.cancel()
            catch_up.cancel()
            self._flush_acks()

    def _on_welcome(self, welcome: Welcome) -> None:
        self._welcome = welcome
        self._bucket = _Bucket.for_host(welcome)
        self._bucket.tokens -= 1.0  # our hello
        self.attempts = 0
        self.connects += 1
        if welcome.session_id is not None:
            self._last_seq.setdefault(welcome.session_id, 0)
        # desk scope: the host replays exactly the sessions of our resume (those the
        # user opened); the others are summaries until opened (sync_session)
        if welcome.resume_token and welcome.resume_token != self._resume_token:
            self._resume_token = welcome.resume_token
            if self._resume_store is not None:
                try:
                    self._resume_store.put(self.link, welcome.resume_token)
                except OSError as exc:
                    log.warning("cannot store the resume token: %s", exc)
        # frames written before the drop but never confirmed wait for the replay
        for item in self._outbox:
            if item.written:
                item.written = False
                item.queued_at = -1.0  # marker: held until the replay caught up
        self._set_state(ConnectionState.CONNECTED)
        self.welcome_received.emit(welcome)
        self._wake.set()

    async def _after_replay(self, welcome: Welcome) -> None:
        """Release held messages once the replay is through.

        Agents see every durable message, so the replay is through when each session
        reaches the ``last_seq`` the welcome announced. Customers are not sent the
        agent-only ones, so for them the replay (which the host queues in one go,
        right after the welcome) is through when the line goes quiet.
        """
        if not any(item.queued_at < 0 for item in self._outbox):
            return
        targets = {
            s.session_id: s.last_seq for s in welcome.sessions if s.session_id in self._last_seq
        }
        exact = self._sees_everything()
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(REPLAY_WAIT_S):
                while any(self._last_seq.get(sid, 0) < last for sid, last in targets.items()):
                    self._progress.clear()
                    if exact:
                        await self._progress.wait()
                        continue
                    try:
                        await asyncio.wait_for(self._progress.wait(), REPLAY_QUIET_S)
                    except TimeoutError:
                        break
        for item in self._outbox:
            if item.queued_at < 0:
                item.queued_at = time.monotonic()
        self._wake.set()

    async def _writer(self, ws: ClientConnection) -> None:
        """Write queued messages in order; keep them until the host confirms."""
        from websockets.exceptions import ConnectionClosed

        bucket = self._bucket
        while True:
            await self._wake.wait()
            self._wake.clear()
            sent = 0
            for item in list(self._outbox):
                if item.written or item.queued_at < 0:
                    continue
                if item not in self._outbox:  # confirmed meanwhile
                    continue
                frame = encode(item.type, item.payload,
                               session=item.session or self.session_id, msg_id=item.msg_id)
                wait = bucket.take(bucket.cost(item.type, frame))
                if wait > 0:  # stay under the host's rate limit instead of being dropped
                    await asyncio.sleep(wait)
                try:
                    await ws.send(frame)
                except ConnectionClosed:
                    return  # the reader sees the close and reconnects
                item.written = True
                if item.type not in _CONFIRMED_TYPES:
                    self._confirm(item.msg_id)
                self.message_written.emit(item.msg_id)
                sent += 1
                if sent % YIELD_EVERY == 0:
                    await asyncio.sleep(0)

    async def _write_volatile(self, frame: str) -> None:
        from websockets.exceptions import ConnectionClosed

        ws = self._ws
        if ws is None:
            return
        with contextlib.suppress(ConnectionClosed):
            await ws.send(frame)

    def _decode(self, frame: str | bytes) -> tuple[Envelope | None, Payload | None]:
        try:
            env, payload, _spec = decode_host(frame)
        except ProtocolError as exc:
            log.warning("ignoring a frame the protocol rejects: %s (%s)", exc.message, exc.code)
            return None, None
        return env, payload

    def _emit_error(self, env: Envelope, payload: ErrorPayload) -> None:
        if env.ref is not None:
            self._confirm(env.ref)
            synced = self._sync_ids.pop(env.ref, None)
            asked = self._history_ids.pop(env.ref, None)
            if asked is not None:
                sid, before, limit = asked
                if payload.code is ErrorCode.RATE_LIMITED:
                    # the host dropped it (rate, or the replay byte budget): ask again
                    # once it will listen (the writer's bucket paces the rest)
                    delay = (payload.retry_after or 1.0) + RATE_LIMIT_GRACE_S
                    log.info("session.history for %s was rate limited: asking again", sid)
                    asyncio.get_running_loop().call_later(
                        delay, self.fetch_history, sid, before, limit)
                else:
                    self.history_failed.emit(sid, before, payload.message)
            if (synced is not None and payload.code is ErrorCode.RATE_LIMITED
                    and synced in self._fetching):
                # the host dropped our session.sync: ask again (the writer's bucket waits)
                log.info("session.sync for %s was rate limited: asking again", synced)
                self.sync_session(synced)
        elif payload.code is ErrorCode.RATE_LIMITED:
            self._rewrite_after(payload.retry_after)
        log.info("host error %s: %s (ref %s)", payload.code, payload.message, env.ref)
        self.error_details.emit(env.ref, dict(payload.details) if payload.details else None)
        self.error_received.emit(payload.code.value, payload.message, env.ref)

    def _rewrite_after(self, retry_after: float | None) -> None:
        """The host dropped frames for rate (and says not which): once it will listen
        again and the echoes of what it did take have arrived, write the rest again."""
        suspects = {item.msg_id for item in self._outbox if item.written}
        if not suspects:
            return

        def rewrite() -> None:
            again = 0
            for item in self._outbox:
                if item.msg_id in suspects and item.written:
                    item.written = False
                    again += 1
            if again:
                log.info("writing %d rate-limited message(s) again", again)
                self._wake.set()

        delay = (retry_after or 1.0) + RATE_LIMIT_GRACE_S
        asyncio.get_running_loop().call_later(delay, rewrite)

    def _confirm(self, msg_id: str) -> None:
        for item in self._outbox:
            if item.msg_id == msg_id:
                self._outbox.remove(item)
                return

    def _on_frame(self, frame: str | bytes) -> None:
        env, payload = self._decode(frame)
        if env is None or payload is None:
            return
        if isinstance(payload, ErrorPayload):
            self._emit_error(env, payload)
            return
        if isinstance(payload, Welcome):
            log.warning("unexpected second welcome; ignoring")
            return
        if env.type == "session.history" and env.session is not None:
            if env.ref is not None:
                self._confirm(env.ref)
            self._on_history(env, payload)
            return
        if env.seq is not None and env.session is not None:
            last = self._last_seq.get(env.session)
            if last is None and self._desk():
                # a session this desk has not opened: its live frames pass through
                # (unread counts, notifications), untracked; its history comes on open.
                # Acked all the same: the desk has it (the customer sees "delivered")
                self._schedule_ack(env.session, env.seq)
                self._deliver(env, payload)
                return
            if (last is not None and env.seq > last + 1 and env.session in self._fetching
                    and not isinstance(payload, SessionGap)):
                # live, sent before the host took our session.sync: the replay carries it
                self.duplicates_dropped += 1
                return
            self._fetching.discard(env.session)
            if isinstance(payload, SessionGap) and last is not None and last < env.seq:
                if last >= payload.first_seq:
                    # we hold seqs the host lost: say so (history_reset), then carry on
                    # after the gap; what we showed of them stays shown
                    log.warning("session %s: the host lost seqs %d-%d (we had up to %d)",
                                env.session, payload.first_seq, payload.last_seq, last)
                    self.history_reset.emit(env.session, payload.first_seq)
                last = env.seq - 1  # the announced gap is not a lost frame
            if last is not None:
                if env.seq <= last:
                    self.duplicates_dropped += 1
                    return
                if env.seq != last + 1 and self._sees_everything():
                    log.warning(
                        "seq gap in session %s: have %d, got %d; resyncing",
                        env.session, last, env.seq,
                    )
                    raise _Resync
            self._last_seq[env.session] = env.seq
            self._progress.set()
            self._schedule_ack(env.session, env.seq)
        self._deliver(env, payload)

    def _deliver(self, env: Envelope, payload: Payload) -> None:
        """Hand a frame on: what it confirms of ours (its ``ref``, our chat line's id) is
        confirmed, then it goes to the listeners."""
        if env.ref is not None:
            self._confirm(env.ref)
        if isinstance(payload, ChatMessage):
            self._confirm(payload.message_id)
        self.message_received.emit(env, payload)

    def _desk(self) -> bool:
        """Desk scope (desk agents, admins): not bound to one session."""
        return self._welcome is not None and self._welcome.session_id is None

    def _sees_everything(self) -> bool:
        """Agents get every durable message, so their seqs are contiguous; customers
        are not sent the agent-only ones (drafts, tools), so theirs skip by design."""
        return self._welcome is not None and self._welcome.role is not Role.CUSTOMER

    def _schedule_ack(self, session: str, seq: int) -> None:
        self._ack_pending[session] = seq
        if self._ack_handle is None:
            loop = asyncio.get_running_loop()
            self._ack_handle = loop.call_later(ACK_DELAY_S, self._flush_acks)

    def _flush_acks(self, reserved: int = 0) -> None:
        """Send the coalesced acks; acks are cumulative, so under the rate limit they
        wait for a token (more seqs may join meanwhile) rather than being dropped."""
        self._ack_handle = None
        if self._ws is None:
            self._ack_pending = {}
            return
        needed = len(self._ack_pending) - reserved
        wait = 0.0
        for _ in range(max(0, needed)):
            wait = max(wait, self._bucket.take())
        if wait > 0:
            loop = asyncio.get_running_loop()
            self._ack_handle = loop.call_later(
                wait, self._flush_acks, reserved + max(0, needed))
            return
        pending, self._ack_pending = self._ack_pending, {}
        for session, seq in pending.items():
            self._tasks.spawn(
                self._write_volatile(encode("ack", Ack(seq=seq), session=session)), "ack"
            )
