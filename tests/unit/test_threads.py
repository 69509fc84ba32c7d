"""The threading rule's debug check (core/threads.py): a store used on the event
loop's thread fails loudly; through its worker it works, in call order."""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path

import pytest

from hitl_desktop.core.threads import (
    LoopThreadError,
    enable_loop_check,
    loop_check_enabled,
)
from hitl_desktop.core.turns import CustomerLine
from hitl_desktop.host.conversation import ConversationStore


def test_the_check_is_on_for_the_whole_suite() -> None:
    assert loop_check_enabled()


async def test_a_store_used_on_the_loop_fails_and_through_its_worker_works(
    tmp_path: Path,
) -> None:
    store = await asyncio.to_thread(ConversationStore, tmp_path / "c.sqlite3")
    try:
        with pytest.raises(LoopThreadError, match="conversation store"):
            store.append("s1", CustomerLine(text="on the loop"))
        # queued without awaiting in between: the worker keeps the order
        await asyncio.gather(*(
            store.worker.call(store.append, "s1", CustomerLine(text=f"line {i}"))
            for i in range(20)))
        items = await store.worker.call(store.items, "s1")
        assert [i.text for i in items] == [f"line {i}" for i in range(20)]
        threads = await asyncio.gather(*(store.worker.call(threading.get_ident)
                                         for _ in range(5)))
        assert len(set(threads)) == 1 and threads[0] != threading.get_ident()
    finally:
        await asyncio.to_thread(store.close)


async def test_without_the_check_the_loop_is_not_policed(tmp_path: Path) -> None:
    store = await asyncio.to_thread(ConversationStore, tmp_path / "c.sqlite3")
    enable_loop_check(False)
    try:
        store.append("s1", CustomerLine(text="production does not pay for the check"))
    finally:
        enable_loop_check(True)
        await asyncio.to_thread(store.close)


def test_off_the_loop_a_store_is_called_directly(tmp_path: Path) -> None:
    store = ConversationStore(tmp_path / "c.sqlite3")
    store.append("s1", CustomerLine(text="a plain thread"))
    assert len(store.items("s1")) == 1
    store.close()
