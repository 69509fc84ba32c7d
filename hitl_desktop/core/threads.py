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
import functools
import os
import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from types import TracebackType
from typing import ParamSpec, TypeVar

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
    """The one thread a store is called through from the event loop, in call order."""

    def __init__(self, name: str) -> None:
        self.name = name
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix=name)

    async def call(self, fn: Callable[P, T], /, *args: P.args, **kwargs: P.kwargs) -> T:
        """Run ``fn(*args, **kwargs)`` on this worker; the loop stays free meanwhile."""
        return await asyncio.wrap_future(self.submit(fn, *args, **kwargs))

    def submit(self, fn: Callable[P, T], /, *args: P.args, **kwargs: P.kwargs) -> Future[T]:
        """Queue ``fn`` now (its place in the order is taken here); await it later."""
        return self._pool.submit(functools.partial(fn, *args, **kwargs))

    def shutdown(self) -> None:
        """No new calls; the thread ends once what was queued has run (never blocks)."""
        self._pool.shutdown(wait=False)
