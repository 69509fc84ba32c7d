"""The threading rule for the stores, in code (docs/ARCHITECTURE.md, "Threads and loops").

Each SQLite store (the shop, the conversation store, the knowledge index) is a
synchronous object guarding its connection with a :class:`StoreLock`, and owns
one :class:`StoreWorker` thread. Code on an event loop never calls a store
directly: it awaits ``store.worker.call(store.method, ...)``. One thread per store
keeps the calls in the order they were made and means the loop never waits on a
lock a worker holds (the shop's lock can be held across a 15 s database wait).

The debug check: with the loop check on (``HITL_LOOP_CHECK=1``, or
:func:`enable_loop_check`; the test suite turns it on for every test), taking a
store's lock on a thread that is running an event loop raises
:class:`LoopThreadError` instead of blocking the loop.
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import os
import queue
import threading
import weakref
from collections.abc import Callable
from concurrent.futures import Future
from types import TracebackType
from typing import Any, ParamSpec, TypeVar

P = ParamSpec("P")
T = TypeVar("T")

_check_enabled = os.environ.get("HITL_LOOP_CHECK", "") not in ("", "0")


class LoopThreadError(RuntimeError):
    """A store was used on an event loop's thread (only raised with the loop check on)."""


def enable_loop_check(on: bool = True) -> None:
    """Turn the debug check on (tests) or off (the default in production)."""
    global _check_enabled
    _check_enabled = on


def loop_check_enabled() -> bool:
    return _check_enabled


def on_loop_thread() -> bool:
    """True when the calling thread is running an asyncio loop (plain or qasync)."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return False
    return True


def ensure_off_loop(what: str) -> None:
    """Raise :class:`LoopThreadError` if the check is on and we are on a loop's thread."""
    if _check_enabled and on_loop_thread():
        raise LoopThreadError(
            f"{what} used on the event loop's thread: call it through its worker "
            "(await store.worker.call(...)); see docs/ARCHITECTURE.md, Threads and loops")


class StoreLock:
    """The lock a store holds around its connection; checked against the loop thread."""

    __slots__ = ("_lock", "name")

    def __init__(self, name: str, *, reentrant: bool = False) -> None:
        self.name = name
        self._lock: threading.Lock | threading.RLock = (
            threading.RLock() if reentrant else threading.Lock())

    def __enter__(self) -> StoreLock:
        ensure_off_loop(self.name)
        self._lock.acquire()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._lock.release()


class StoreWorker:
    """The one thread a store is called through from the event loop, in call order.

    A thread of its own fed by a queue, not a ``ThreadPoolExecutor``: every call was a
    pool submit (a lock, a ``Future`` with its ``Condition``, a work item, the idle
    semaphore) plus ``wrap_future``'s chaining back to the loop, a few of them per
    co-pilot turn on the loop's thread (issue 18). :meth:`call` answers the loop's own
    future with one ``call_soon_threadsafe``; :meth:`submit` still hands out a
    ``concurrent.futures.Future``. As with the pool: a call whose future was cancelled
    before the worker reached it does not run, and what was queued when the interpreter
    exits still runs (the thread is joined at exit)."""

    def __init__(self, name: str) -> None:
        self.name = name
        self._queue: queue.SimpleQueue[Callable[[], None] | None] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self._closed = False

    async def call(self, fn: Callable[P, T], /, *args: P.args, **kwargs: P.kwargs) -> T:
        """Run ``fn(*args, **kwargs)`` on this worker; the loop stays free meanwhile."""
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[T] = loop.create_future()

        def job() -> None:
            if fut.cancelled():  # (the caller gave up before it started: not run)
                return
            try:
                result = fn(*args, **kwargs)
            except BaseException as exc:  # handed to the caller
                _answer(loop, _fail, fut, exc)
            else:
                _answer(loop, _succeed, fut, result)

        self._put(job)
        return await fut

    def submit(self, fn: Callable[P, T], /, *args: P.args, **kwargs: P.kwargs) -> Future[T]:
        """Queue ``fn`` now (its place in the order is taken here); await it later."""
        future: Future[T] = Future()

        def job() -> None:
            if not future.set_running_or_notify_cancel():
                return
            try:
                result = fn(*args, **kwargs)
            except BaseException as exc:  # handed to the caller
                future.set_exception(exc)
            else:
                future.set_result(result)

        self._put(job)
        return future

    def _put(self, job: Callable[[], None]) -> None:
        if self._thread is None:
            self._start()
        if self._closed:
            raise RuntimeError(f"{self.name}: cannot schedule new calls after shutdown")
        self._queue.put(job)

    def _start(self) -> None:
        with self._lock:
            if self._thread is not None or self._closed:
                return
            # named as the pool named it (``<name>_0``): benches group threads by name
            thread = threading.Thread(target=_run, args=(self._queue,), name=f"{self.name}_0")
            thread.start()
            self._thread = thread
            _live.add(self)

    def shutdown(self) -> None:
        """No new calls; the thread ends once what was queued has run (never blocks)."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            started = self._thread is not None
        if started:
            self._queue.put(None)


def _run(jobs: queue.SimpleQueue[Callable[[], None] | None]) -> None:
    """A worker thread: run jobs in order until the end marker."""
    while (job := jobs.get()) is not None:
        job()
        del job  # (nothing of a finished call is kept alive while waiting)


def _answer(loop: asyncio.AbstractEventLoop, settle: Callable[[asyncio.Future[T], Any], None],
            fut: asyncio.Future[T], value: Any) -> None:
    """(worker thread) Settle ``fut`` on its loop; a loop already closed has no one
    waiting."""
    with contextlib.suppress(RuntimeError):
        loop.call_soon_threadsafe(settle, fut, value)


def _succeed(fut: asyncio.Future[T], result: Any) -> None:
    if not fut.done():
        fut.set_result(result)


def _fail(fut: asyncio.Future[T], exc: Any) -> None:
    if not fut.done():
        fut.set_exception(exc)


_live: weakref.WeakSet[StoreWorker] = weakref.WeakSet()


def _at_exit() -> None:
    """The interpreter is exiting: every worker ends after what it has queued (its
    thread is not a daemon, so it is joined), as the pool's threads did."""
    for worker in list(_live):
        worker.shutdown()


# before the interpreter joins non-daemon threads (concurrent.futures does the same)
getattr(threading, "_register_atexit", atexit.register)(_at_exit)
