"""Calling the SQLite stores from async tests the way the host does (the threading
rule, docs/ARCHITECTURE.md): on the store's own worker thread, never on the loop."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

T = TypeVar("T")


async def on_worker(method: Callable[..., T], /, *args: Any, **kwargs: Any) -> T:
    """``await on_worker(store.method, ...)``: run a bound store method on its worker."""
    store = method.__self__  # type: ignore[attr-defined]
    result: T = await store.worker.call(method, *args, **kwargs)
    return result
