"""Background tasks that nobody forgets: one supervisor per owner.

asyncio keeps only weak references to tasks, so a bare ``create_task`` can be
garbage-collected mid-flight and its exception is lost. Every long-lived object
that starts background work (relay, co-pilot, client connection, discovery,
windows) owns a :class:`TaskSupervisor`, which keeps the tasks, logs each
failure with its name, and cancels what is left when the owner closes.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Coroutine
from typing import Any

log = logging.getLogger(__name__)


class TaskSupervisor:
    """Keeps references to background tasks and logs their failures (no orphans)."""

    def __init__(self, name: str, *, logger: logging.Logger | None = None) -> None:
        self.name = name
        self._log = logger or log
        self._tasks: set[asyncio.Task[Any]] = set()

    def spawn(self, coro: Coroutine[Any, Any, Any], what: str) -> asyncio.Task[Any]:
        """Start ``coro`` on the running loop and supervise it."""
        task = asyncio.ensure_future(coro)
        task.set_name(f"{self.name}: {what}")
        self._tasks.add(task)
        task.add_done_callback(self._done)
        return task

    def _done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if task.cancelled():
            return
        exc = task.exception()
        if exc is not None:
            self._log.error("%s failed", task.get_name(), exc_info=exc)

    @property
    def tasks(self) -> frozenset[asyncio.Task[Any]]:
        return frozenset(self._tasks)

    def __len__(self) -> int:
        return len(self._tasks)

    def cancel_all(self) -> list[asyncio.Task[Any]]:
        """Cancel every task but the caller's own; returns the cancelled ones."""
        current = asyncio.current_task() if _loop_running() else None
        cancelled = [t for t in self._tasks if t is not current and not t.done()]
        for task in cancelled:
            task.cancel()
        return cancelled

    async def aclose(self, *, grace_s: float | None = None) -> None:
        """Cancel what is left and wait for it (at most ``grace_s`` seconds): a task
        that ignores cancellation must not hang the owner's shutdown."""
        cancelled = self.cancel_all()
        if not cancelled:
            return
        if grace_s is None:
            await asyncio.gather(*cancelled, return_exceptions=True)
        else:
            await asyncio.wait(cancelled, timeout=grace_s)


def _loop_running() -> bool:
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return False
    return True
