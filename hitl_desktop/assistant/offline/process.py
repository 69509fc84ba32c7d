"""The offline engine in a process of its own, so its CPU is not the host's.

Why: at ~100 drafts a second the host process needs more than one CPU-second per
second of Python under one GIL (issue 18); the engine's plan, script and translation
(~4 ms a draft) are pure functions of the turn's history and the knowledge index, so
they can run anywhere. One worker process (``spawn``: nothing of the host's state or
threads is inherited, the same on Linux, macOS and Windows) opens the index and the
catalog once and answers each turn with its compact steps
(:mod:`hitl_desktop.assistant.steps`: plain tuples of small frozen dataclasses).

The host talks to it over one pipe that its loop reads and writes itself
(non-blocking, in the loop's selector): a call costs the loop its pickling and one write,
an answer one read and its unpickling (~20-50 us each), and no thread wakes per call.
Two host threads did that before (one pickled and sent, one read and unpickled): at
1,000 paced sessions they cost ~0.7 ms of host CPU per line, mostly waking and waiting
for the GIL, which the loop then waited for. Without them the loop takes ~0.2-0.4 ms more
per line, the host and engine together 0.87-1.00x the CPU per line, and the loop's
stalls waiting for the GIL fell to ~0.3x (issue 18, notes/issue-18-engine8.md). Calls are pipelined:
one call at a time left the worker idle while a busy host waited to send the next, and
at 1,000 paced sessions the worker was 16-32 % busy while drafts
queued for seconds (issue 18, notes/issue-18-tails.md). Only
:data:`MAX_SENT` calls are at the worker at once; the others wait in the host in the
order their turns started, so a turn's second call (the draft after its tool ran: every
session's first turn) does not queue again behind the turns begun meanwhile. The
worker's next calls are written when its answers are read, on the loop: MAX_SENT is
what keeps it busy through a slow loop iteration. The
host's :class:`~hitl_desktop.assistant.offline.OfflineProvider` keeps an engine of
its own in a thread for when the process is not there: still starting, failed to
start, or gone (:meth:`EngineProcess.fail`); no turn is lost.

A worker that stops answering (hung in a loop, stopped by a signal, starved) is not
waited for forever: when calls are waiting and none has been answered for
:data:`CALL_DEADLINE_S`, the host kills it. The call it was on fails visibly (the
agent sees ``draft.failed`` and can retry: planning that turn again in the host could
hang a host thread the same way); the calls queued behind it are planned in the host.

A worker that died or was killed is replaced (:class:`SupervisedEngine`): at most
:data:`RESTARTS` times in :data:`RESTART_WINDOW_S`, so an engine that crashes on
every call does not spawn processes in a loop; past that the host drafts in its own
thread and says so once.

The worker ignores SIGINT (the host decides when it stops) and leaves when its pipe
closes: when the host stops it, exits, or is killed. No engine outlives its host.
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import itertools
import logging
import multiprocessing
import os
import pickle
import queue
import signal
import struct
import sys
import threading
import time
from collections import OrderedDict, deque
from dataclasses import dataclass, replace
from multiprocessing.connection import Connection
from pathlib import Path
from typing import TYPE_CHECKING, Any

from hitl_desktop.assistant.base import TurnRequest
from hitl_desktop.core.gcpolicy import FreezingCollector

if TYPE_CHECKING:
    from hitl_desktop.assistant.offline.engine import OfflineProvider
    from hitl_desktop.assistant.steps import Step

log = logging.getLogger(__name__)

# calls waiting for the worker beyond which a turn is planned in the host's own thread
# instead: only a worker far behind (a share of a core on a very busy machine). Not
# lower: a turn planned in the host is CPU-bound Python under the loop's GIL, the loop
# then waits for the GIL after every socket write, the pipe threads too, the worker's
# answers slow, more calls overflow: at 4, 45-100 % of the drafts at 1,000 paced
# sessions ended up in the host and hop p99 was 0.2-0.5 s (notes/issue-18-tails.md)
MAX_IN_FLIGHT = 64
# calls at the worker at once (one it computes, the rest in its pipe); the others wait in
# the host, the oldest turn's first: a turn's second call (after its tool ran) goes
# before the first calls of turns that started after it. The loop refills the pipe as it
# reads the answers, so this many (~30 ms of the worker's work) keep the worker busy
# through a slow loop iteration; at 4, a loop overloaded by a busy machine fed the worker
# too slowly, calls piled up past MAX_IN_FLIGHT and were drafted in the host's threads
# (notes/issue-18-engine8.md)
MAX_SENT = 16
TURNS = 4096  # turns whose first call's time is kept (their later calls' place in line)
HISTORIES = 4096  # sessions whose history the worker keeps (least recently used out)
START_TIMEOUT_S = 60.0  # a worker that has not loaded the engine by then is given up
# calls waiting and no answer for this long: the worker is hung and killed. A call takes
# ~5 ms; even MAX_IN_FLIGHT of them on a machine 10x overloaded answer one by one well
# within it (progress resets the clock, not each call's age)
CALL_DEADLINE_S = 5.0
RESTARTS = 3  # workers started again after one died, within RESTART_WINDOW_S
RESTART_WINDOW_S = 600.0
WATCH_S = 0.5  # how often the receiver looks at the clock while it waits for an answer
STOP_TIMEOUT_S = 5.0
#: the pipe's I/O in two host threads instead of the loop's selector: where the loop
#: cannot watch the pipe (Windows: a named pipe, and a proactor loop without
#: ``add_reader``); None: only there
THREAD_IO: bool | None = None
_PICKLE = pickle.HIGHEST_PROTOCOL
# multiprocessing.Connection's framing (the worker's end reads and writes with it): a
# message's size as a signed 32-bit big-endian integer, then the message
_HEADER = struct.Struct("!i")


@dataclass(frozen=True, slots=True)
class EngineSpec:
    """What the worker needs to build the same engine as the host's (picklable)."""

    data_dir: str
    knowledge_dir: str | None
    config_dir: str
    max_results: int


def serve(conn: Connection, spec: EngineSpec) -> None:
    """(worker process) Load the engine, say so, then answer requests until the pipe
    closes or ``None`` comes. A request is ``(TurnRequest without its history, base,
    new items, delay_s, window_s)``: the history is the first ``base`` items this worker
    got for the session before, then the new ones. The answer is ``("ok", steps)``,
    ``("error", message)`` (the engine failed: the host says so in ``draft.failed``, as
    for an engine in its own thread) or ``("resend", None)`` (this worker forgot the
    session: the host sends it whole)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl+C is the host's to handle
    logging.basicConfig(level=logging.WARNING,
                        format="%(asctime)s engine-process %(levelname)s %(name)s: %(message)s")
    try:
        from hitl_desktop.assistant.offline.engine import OfflineProvider
        from hitl_desktop.knowledge.index import open_index
        from hitl_desktop.store.catalog_file import load_catalog

        engine = OfflineProvider(open_index(Path(spec.data_dir), spec.knowledge_dir),
                                 catalog=load_catalog(Path(spec.config_dir)),
                                 max_results=spec.max_results)
    except Exception as exc:
        log.exception("the offline engine could not load")
        conn.send_bytes(pickle.dumps(("error", f"{type(exc).__name__}: {exc}"), _PICKLE))
        return
    # what the worker loaded (index, catalog, modules) lives as long as it, and so do
    # most of the histories it keeps: out of the collector's full passes, which scanned
    # it all and held every draft in flight 50-430 ms at 1,000 paced sessions (issue 18;
    # core/gcpolicy.py). No loop here: a major pass, when due, runs between requests.
    collector = FreezingCollector()
    collector.start()
    try:
        conn.send_bytes(pickle.dumps(("ready", os.getpid()), _PICKLE))
        _answer(conn, engine, collector)
    finally:
        collector.stop()


def _answer(conn: Connection, engine: OfflineProvider, collector: FreezingCollector) -> None:
    """(worker process) :func:`serve`'s requests, until the pipe closes or None comes."""
    # session -> the history the host sent last (it then sends only what came after)
    histories: OrderedDict[str, list[Any]] = OrderedDict()
    while True:
        collector.major_if_due()
        try:
            raw = conn.recv_bytes()
        except (EOFError, OSError):
            return  # the host is gone
        message = pickle.loads(raw)
        if message is None:
            return
        request, base, new, delay_s, window_s = message
        held = histories.get(request.session_id, []) if base else []
        if len(held) < base:  # forgotten here: the host sends the whole history again
            answer: tuple[str, Any] = ("resend", None)
        else:
            items = held[:base] + new
            _remember(histories, request.session_id, items)
            engine.delay_s = delay_s
            try:
                answer = ("ok", engine.compact_steps(replace(request, history=items),
                                                     window_s))
            except Exception as exc:
                log.exception("offline engine failed to plan a reply")
                answer = ("error", str(exc))
        try:
            conn.send_bytes(pickle.dumps(answer, _PICKLE))
        except (EOFError, OSError):
            return


def _remember(cache: OrderedDict[str, Any], key: str, value: Any) -> None:
    cache[key] = value
    cache.move_to_end(key)
    while len(cache) > HISTORIES:
        cache.popitem(last=False)


def portable(request: TurnRequest) -> TurnRequest:
    """The request as the engine reads it: the tools by name only (the catalog's JSON
    schemas are most of a request's bytes and the engine reads only the names)."""
    tools = [{"type": t.get("type", "function"), "name": t.get("name")}
             for t in request.tools if isinstance(t, dict)]
    return replace(request, tools=tools)


class EngineProcess:
    """The host's handle on the engine's process.

    ``ready`` once the worker has loaded the engine (turns before that run in the
    host's own thread); ``lost`` once it failed to start or died (never used again).
    ``codec_s``: the CPU seconds the host's loop spent pickling requests and unpickling
    answers (what the process costs the host beyond handing calls over).

    The pipe is the loop's own (non-blocking, watched by the loop's selector): a call is
    pickled and written in the tick that makes it, an answer read and handed over in the
    tick its bytes arrive. No host thread per call: the sender and receiver threads this
    replaced cost 0.6-0.8 ms of host CPU per line at 1,000 paced sessions, mostly waking
    and waiting for the GIL, which the loop then waited for (issue 18). A thread of its
    own only waits for the worker to load (blocking, up to :data:`START_TIMEOUT_S`).
    ``loop``: the loop whose calls it serves (else the running one, else the first
    caller's); the pipe is watched from the moment the worker is up, so a worker that
    dies idle is noticed then, not at the next call.
    """

    def __init__(self, spec: EngineSpec, *, call_deadline_s: float | None = None,
                 loop: asyncio.AbstractEventLoop | None = None) -> None:
        self.spec = spec
        self.call_deadline_s = CALL_DEADLINE_S if call_deadline_s is None else call_deadline_s
        self.hung = False  # killed for not answering (the call it was on failed)
        # when the worker last showed progress: an answer, or a call sent to an idle one
        self._progress_at = time.monotonic()
        self.pid: int | None = None
        self.ready = False
        self.lost = False
        self._codec_out = 0.0  # pickling requests (CPU s)
        self._codec_in = 0.0  # unpickling answers
        self.calls = 0  # answered
        self.items_sent = 0  # history items pickled to the worker, all calls together
        self.in_flight = 0  # calls made and not answered yet (the caller's loop counts)
        # session -> (history items the worker holds, the last of them): a turn sends
        # only the items after those (a long session's whole history each call was the
        # bulk of the pickling)
        self._known: OrderedDict[str, tuple[int, Any]] = OrderedDict()
        self._closing = False
        # the turn's first call's time: its later calls' place in line (loop thread only)
        self._turns: OrderedDict[str, float] = OrderedDict()
        self._lock = threading.Lock()
        # the loop that makes the calls and does the pipe's I/O
        if loop is None:
            with contextlib.suppress(RuntimeError):
                loop = asyncio.get_running_loop()
        self._loop: asyncio.AbstractEventLoop | None = loop
        self._io = False  # the pipe is the loop's (non-blocking, in its selector)
        self._io_done = False  # ... and given back (closed, or the worker gone)
        # calls not sent yet: (place in line, sequence, call, whole history?); at most
        # MAX_SENT are at the worker, the others wait here (loop thread only)
        self._waiting: list[tuple[float, int, _Call, bool]] = []
        self._seq = itertools.count()
        # calls sent and not answered yet, in the order sent (the worker answers in
        # order), each with its place in line (a "resend" keeps it)
        self._pending: deque[tuple[_Call, float]] = deque()
        self._out = bytearray()  # bytes for the pipe the socket did not take yet
        self._in = bytearray()  # bytes read from the pipe, not a whole answer yet
        self._watching: asyncio.TimerHandle | None = None
        self._threaded = sys.platform == "win32" if THREAD_IO is None else THREAD_IO
        self._writes: queue.SimpleQueue[bytes | None] = queue.SimpleQueue()
        self._writer: threading.Thread | None = None
        self._reader: threading.Thread | None = None
        ctx = multiprocessing.get_context("spawn")
        self._conn, child = ctx.Pipe(duplex=True)
        self._fd = self._conn.fileno()
        self._proc = ctx.Process(target=serve, args=(child, spec), name="offline-engine",
                                 daemon=True)
        self._proc.start()
        child.close()  # the worker's end lives in the worker only: EOF when it dies
        self._thread = threading.Thread(target=self._handshake, name="engine-process",
                                        daemon=True)
        self._thread.start()

    # ------------------------------------------------------------ the caller's loop

    async def steps(self, request: TurnRequest, delay_s: float,
                    window_s: float) -> list[Step] | str:
        """One response's steps from the worker, or the engine's error message; any
        exception is the process's failure (the caller drafts in its own thread)."""
        loop = asyncio.get_running_loop()
        with self._lock:
            if self._loop is None:
                self._loop = loop
        if self._loop is not loop:
            raise ConnectionError("the engine process serves another loop")
        future: asyncio.Future[list[Step] | str] = loop.create_future()
        self.in_flight += 1
        heapq.heappush(self._waiting, (self._place(request), next(self._seq),
                                       (future, loop, (request, delay_s, window_s)), False))
        self._pump()
        try:
            return await future
        finally:
            self.in_flight -= 1

    def _place(self, request: TurnRequest) -> float:
        """A call's place in line: when its turn's first call was made. A turn's second
        call (after a tool ran) then goes before the calls of turns that started after
        it: a session's first turn is two calls, and behind every turn begun meanwhile it
        waited twice in a busy worker's queue (issue 18)."""
        now = time.monotonic()
        turn = request.metadata.get("turn_id") if isinstance(request.metadata, dict) else None
        if not isinstance(turn, str):
            return now
        first = self._turns.get(turn)
        if first is not None:
            return first
        self._turns[turn] = now
        while len(self._turns) > TURNS:
            self._turns.popitem(last=False)
        return now

    def _pump(self) -> None:
        """(loop) Send the calls the worker has room for, the oldest turn's first; once
        the process is lost, fail the calls still waiting (their callers draft in their
        own thread)."""
        if self.lost:
            self._end_io()
            gone = ConnectionError("the engine process is gone")
            while self._waiting:
                _key, _seq, (future, _loop, _args), _whole = heapq.heappop(self._waiting)
                _deliver(future, gone, True)
            return
        if not self.ready:
            return  # (the handshake pumps once the worker is up)
        if not self._io:
            self._start_io()
        while self._waiting and len(self._pending) < MAX_SENT:
            key, _seq, call, whole = heapq.heappop(self._waiting)
            if call[0].done():  # its caller gave up (a superseded turn): not sent at all
                continue
            try:
                self._send(call, key, whole=whole)
            except Exception as exc:  # this call only (it would not pickle): its caller's
                _deliver(call[0], exc, True)  # (not the answer of a pipe read's pump)
        try:  # the calls of this pump in one write: one wake-up of the worker, not one each
            self._flush()
        except OSError as exc:
            self._ended(f"its pipe failed ({type(exc).__name__})")

    def _start_io(self) -> None:
        """(loop) The pipe becomes the loop's: non-blocking, read when readable (or, where
        the loop cannot watch it, read and written by two threads of its own)."""
        assert self._loop is not None
        self._io = True
        if not self._threaded:
            try:
                os.set_blocking(self._fd, False)
                self._loop.add_reader(self._fd, self._readable)
                return
            except (NotImplementedError, OSError, ValueError):  # (a proactor loop)
                os.set_blocking(self._fd, True)
                self._threaded = True
        self._writer = threading.Thread(target=self._write_all, name="engine-process",
                                        daemon=True)
        self._reader = threading.Thread(target=self._read_all, name="engine-answers",
                                        daemon=True)
        self._writer.start()
        self._reader.start()

    def _write_all(self) -> None:
        """(writer thread, :data:`THREAD_IO`) Send what the loop queued, until None."""
        while (data := self._writes.get()) is not None:
            try:
                self._conn.send_bytes(data)
            except (OSError, ValueError) as exc:
                self._post(self._ended, f"its pipe failed ({type(exc).__name__})")
                return

    def _read_all(self) -> None:
        """(reader thread, :data:`THREAD_IO`) Hand each answer to the loop, until the pipe
        ends."""
        while True:
            try:
                raw = self._conn.recv_bytes()
            except (EOFError, OSError, ValueError) as exc:
                self._post(self._ended, f"its pipe ended ({type(exc).__name__})")
                return
            self._post(self._took, raw)

    def _post(self, fn: Any, *args: Any) -> None:
        """(an I/O thread) ``fn(*args)`` on the loop, unless the pipe was given back."""
        if self._io_done or self._loop is None:
            return
        with contextlib.suppress(RuntimeError):  # the loop is closed
            self._loop.call_soon_threadsafe(fn, *args)

    def _took(self, raw: bytes) -> None:
        """(loop, :data:`THREAD_IO`) One answer the reader thread read."""
        if self._io_done:
            return
        self._answered(raw)
        self._pump()

    def _end_io(self) -> None:
        """(loop) Give the pipe back: out of the selector (then it can be closed)."""
        if self._io and not self._io_done:
            self._io_done = True
            assert self._loop is not None
            if self._threaded:
                self._writes.put(None)  # (the reader ends with the pipe)
            else:
                with contextlib.suppress(Exception):  # (the loop is closing)
                    self._loop.remove_reader(self._fd)
                    self._loop.remove_writer(self._fd)
        if self._watching is not None:
            self._watching.cancel()
            self._watching = None

    def _send(self, call: _Call, key: float, *, whole: bool) -> None:
        """(loop) Pickle one call and write it; the worker gets only the history items
        after those it holds for the session (all of them with ``whole``)."""
        request, delay_s, window_s = call[2]
        request = portable(request)
        history, sid = request.history, request.session_id
        known = self._known.pop(sid, None)
        base = 0  # the history items the worker holds already (it keeps what it got)
        if not whole and known is not None and 0 < known[0] <= len(history) and \
                history[known[0] - 1] is known[1]:  # the co-pilot's lists only grow
            base = known[0]
        if history:
            _remember(self._known, sid, (len(history), history[-1]))
        t0 = time.thread_time()
        data = pickle.dumps((replace(request, history=()), base, list(history[base:]),
                             delay_s, window_s), _PICKLE)
        self._codec_out += time.thread_time() - t0
        self.items_sent += len(history) - base
        if not self._pending:  # an idle worker: the clock starts now
            self._progress_at = time.monotonic()
        self._pending.append((call, key))  # before the answer can come
        if self._threaded:
            self._writes.put(data)
        else:  # (written by the pump, with the others it sends)
            self._out += _HEADER.pack(len(data))
            self._out += data
        if self._watching is None and self._loop is not None:
            self._watching = self._loop.call_later(WATCH_S, self._watch)

    def _flush(self) -> None:
        """(loop) Write what the socket takes; the rest when it is writable again."""
        if not self._out:
            return
        try:
            sent = os.write(self._fd, self._out)
        except BlockingIOError:
            sent = 0
        del self._out[:sent]
        assert self._loop is not None
        if self._out:
            self._loop.add_writer(self._fd, self._writable)

    def _writable(self) -> None:
        assert self._loop is not None
        self._loop.remove_writer(self._fd)
        try:
            self._flush()
        except OSError as exc:
            self._ended(f"its pipe failed ({type(exc).__name__})")

    def _readable(self) -> None:
        """(loop) Read what came; hand each whole answer to its caller, in order."""
        try:
            chunk = os.read(self._fd, 1 << 18)
        except BlockingIOError:
            return
        except OSError as exc:
            self._ended(f"its pipe ended ({type(exc).__name__})")
            return
        if not chunk:
            self._ended("its pipe ended (EOFError)")
            return
        self._in += chunk
        while len(self._in) >= _HEADER.size:
            (size,) = _HEADER.unpack_from(self._in)
            if size < 0:  # (Connection's header of a message over 2 GiB: never an answer)
                self._proc.kill()
                self._ended("it sent an answer over 2 GiB")
                return
            if len(self._in) < _HEADER.size + size:
                break
            raw = bytes(self._in[_HEADER.size:_HEADER.size + size])
            del self._in[:_HEADER.size + size]
            self._answered(raw)
        self._pump()

    def _answered(self, raw: bytes) -> None:
        """(loop) One answer: the oldest call sent; a "resend" waits again with the whole
        history, in its place in line."""
        self._progress_at = time.monotonic()
        t0 = time.thread_time()
        kind, value = pickle.loads(raw)
        self._codec_in += time.thread_time() - t0
        (future, loop, args), key = self._pending.popleft()
        if kind == "resend":
            heapq.heappush(self._waiting, (key, next(self._seq), (future, loop, args), True))
            return
        self.calls += 1
        _deliver(future, value if kind == "ok" else str(value), False)

    def _watch(self) -> None:
        """(loop, every :data:`WATCH_S` while calls are at the worker) Kill a worker that
        has calls waiting and has answered none for the deadline; the pipe's end then
        fails the calls."""
        self._watching = None
        if not self._pending or self._closing or self.lost:
            return
        waited = time.monotonic() - self._progress_at
        if waited < self.call_deadline_s:
            assert self._loop is not None
            self._watching = self._loop.call_later(WATCH_S, self._watch)
            return
        self.hung = True
        self._proc.kill()
        self._ended(f"it answered nothing for {waited:.1f} s with {len(self._pending)} "
                    f"call(s) waiting")

    def _ended(self, why: str) -> None:
        """(loop) The worker is gone (died, killed, pipe closed): the call a hung worker
        was on fails visibly (not tried again: the same input could hang a host thread
        the same way); every other call fails (its caller drafts in its own thread)."""
        if not self._closing:
            self.fail(why)
        else:
            with self._lock:
                self.lost, self.ready = True, False
        self._end_io()
        gone = ConnectionError("the engine process is gone")
        if self.hung and self._pending:
            (future, _loop, _args), _key = self._pending.popleft()
            _deliver(future, f"no answer within {self.call_deadline_s:g} s (its process was "
                     "stopped)", False)
        while self._pending:
            (future, _loop, _args), _key = self._pending.popleft()
            _deliver(future, gone, True)
        self._pump()  # (lost: the calls waiting fail too)

    # ------------------------------------------------------------ any thread

    def _handshake(self) -> None:
        """(host thread) Wait for the worker to load the engine; then the loop's pump."""
        try:
            if not self._conn.poll(START_TIMEOUT_S):
                raise TimeoutError(f"no answer in {START_TIMEOUT_S:.0f} s")
            kind, value = pickle.loads(self._conn.recv_bytes())
        except Exception as exc:
            self.fail(f"it could not start ({type(exc).__name__}: {exc})")
            return
        if kind != "ready":
            self.fail(f"it could not start ({value})")
            return
        self.pid = int(value)
        with self._lock:
            if self.lost or self._closing:
                return
            self.ready = True
            loop = self._loop
        log.info("offline engine process %d ready", self.pid)
        if loop is not None:  # calls made before it was up
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(self._pump)

    def fail(self, why: str) -> None:
        """The process is unusable: say so once; the host drafts in its own thread."""
        with self._lock:
            if self.lost:
                return
            self.lost = True
            self.ready = False
            loop = self._loop
        if loop is not None:  # the calls waiting for it fail on its loop
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(self._pump)
        if self._closing:  # stopped by the host: nothing to report
            return
        log.warning("the offline engine's process is not available: %s; drafting in the "
                    "host process until one is started again", why)

    @property
    def free(self) -> bool:
        """Ready, with fewer than :data:`MAX_IN_FLIGHT` calls waiting for it."""
        return self.ready and self.in_flight < MAX_IN_FLIGHT

    @property
    def codec_s(self) -> float:
        """The loop's CPU seconds spent pickling requests and unpickling answers."""
        return self._codec_out + self._codec_in

    def close(self) -> None:
        """Stop the worker and wait for it (blocks: call in a thread). Its calls not
        answered yet fail (their callers draft in their own thread); the worker leaves
        when its pipe closes. One still loading the engine (or lost) is killed."""
        self._closing = True
        with self._lock:
            was_ready, self.ready = self.ready, False
            loop = self._loop
        if not was_ready and self._proc.is_alive():
            self._proc.kill()
        if loop is not None and self._io and not loop.is_closed():
            if _running_here(loop) or not loop.is_running():
                self._ended("closed")
            else:
                done = threading.Event()

                def end() -> None:
                    try:
                        self._ended("closed")
                    finally:
                        done.set()

                try:
                    loop.call_soon_threadsafe(end)
                except RuntimeError:  # the loop is closed: its selector with it
                    pass
                else:
                    done.wait(STOP_TIMEOUT_S)
        self._thread.join(STOP_TIMEOUT_S)
        if self._writer is not None:  # (THREAD_IO) the stop message after its last call;
            self._writer.join(STOP_TIMEOUT_S)  # the reader ends when the worker leaves
            with contextlib.suppress(Exception):
                if self._proc.is_alive():
                    self._conn.send_bytes(pickle.dumps(None, _PICKLE))
            self._proc.join(STOP_TIMEOUT_S)
        if self._proc.is_alive() and self._reader is not None:
            self._proc.kill()  # (a reader thread blocked on the pipe: not closed under it)
            self._proc.join(STOP_TIMEOUT_S)
        if self._reader is not None:
            self._reader.join(STOP_TIMEOUT_S)
        self._conn.close()  # the worker reads EOF and leaves
        self._proc.join(STOP_TIMEOUT_S)
        if self._proc.is_alive():
            log.warning("the offline engine process did not stop: killing it")
            self._proc.kill()
            self._proc.join(STOP_TIMEOUT_S)


class SupervisedEngine:
    """The engine's process, started again when it is lost (died, hung, failed to start).

    What the host's :class:`~hitl_desktop.assistant.offline.OfflineProvider` holds as
    its ``process``: the same interface as one :class:`EngineProcess` (the current
    worker's). A lost worker is replaced in a thread of its own (spawning a process and
    reaping the old one are blocking calls, not for the loop); until the new one is
    ready, turns are planned in the host, as before it first started. ``restarts``
    counts the workers started after the first.
    """

    def __init__(self, spec: EngineSpec, *, call_deadline_s: float | None = None) -> None:
        self.spec = spec
        self.call_deadline_s = call_deadline_s
        self.current = EngineProcess(spec, call_deadline_s=call_deadline_s)
        self.restarts = 0
        self._started: deque[float] = deque([time.monotonic()])
        self._loop = self.current._loop  # (the replacements serve it too)
        self._lock = threading.Lock()
        self._replacing: threading.Thread | None = None
        self._closed = False
        self._gave_up = False
        self._codec_before = 0.0  # the replaced workers' codec_s
        self._calls_before = 0

    @property
    def ready(self) -> bool:
        return self.current.ready

    @property
    def lost(self) -> bool:
        """The current worker is lost and no other will be started."""
        return self.current.lost and self._gave_up

    @property
    def free(self) -> bool:
        """Ready and not behind; a lost worker's replacement starts here (the caller
        then plans this turn itself)."""
        current = self.current
        if current.lost:
            self._replace()
            return False
        return current.free

    @property
    def pid(self) -> int | None:
        return self.current.pid

    @property
    def calls(self) -> int:
        return self._calls_before + self.current.calls

    @property
    def codec_s(self) -> float:
        return self._codec_before + self.current.codec_s

    async def steps(self, request: TurnRequest, delay_s: float,
                    window_s: float) -> list[Step] | str:
        return await self.current.steps(request, delay_s, window_s)

    def fail(self, why: str) -> None:
        self.current.fail(why)
        self._replace()

    def _replace(self) -> None:
        """Start a new worker in a thread, unless one is starting, the host is closing
        or the budget is spent (then say once that the host drafts itself from now on)."""
        with self._lock:
            if self._closed or self._gave_up or not self.current.lost or (
                    self._replacing is not None and self._replacing.is_alive()):
                return
            if self.current.pid is None:  # never loaded the engine: it would fail again
                self._gave_up = True
                return
            now = time.monotonic()
            while self._started and now - self._started[0] > RESTART_WINDOW_S:
                self._started.popleft()
            if len(self._started) > RESTARTS:
                self._gave_up = True
                log.warning("the offline engine's process was lost %d times in %.0f s: not "
                            "starting it again; drafting in the host process", len(
                                self._started), RESTART_WINDOW_S)
                return
            self._started.append(now)
            self._replacing = threading.Thread(target=self._start_again, name="engine-restart",
                                               daemon=True)
            self._replacing.start()

    def _start_again(self) -> None:
        """(restart thread) Reap the lost worker, start the next one."""
        old = self.current
        old.close()
        if self._closed:
            return
        try:
            new = EngineProcess(self.spec, call_deadline_s=self.call_deadline_s,
                                loop=self._loop or old._loop)
        except Exception:
            log.exception("the offline engine's process could not be started again")
            with self._lock:
                self._gave_up = True
            return
        with self._lock:
            self._codec_before += old.codec_s
            self._calls_before += old.calls
            self.current = new
            self.restarts += 1
        log.warning("offline engine: starting its process again (restart %d)", self.restarts)

    def close(self) -> None:
        """Stop the worker (and one being started) and wait for them (blocks)."""
        with self._lock:
            self._closed = True
            replacing = self._replacing
        if replacing is not None:
            replacing.join(STOP_TIMEOUT_S * 3)
        self.current.close()


_Call = tuple["asyncio.Future[Any]", asyncio.AbstractEventLoop, tuple[TurnRequest, float, float]]


def _running_here(loop: asyncio.AbstractEventLoop) -> bool:
    """This thread is running ``loop``."""
    try:
        return asyncio.get_running_loop() is loop
    except RuntimeError:
        return False


def _deliver(future: asyncio.Future[Any], result: Any, failed: bool) -> None:
    """(the caller's loop) A call's outcome, unless the caller gave up waiting."""
    if future.done():
        return
    if failed:
        future.set_exception(result)
    else:
        future.set_result(result)
