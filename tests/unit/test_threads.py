"""The threading rule's debug check (core/threads.py): a store used on the event
loop's thread fails loudly; through its worker it works, in call order."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from hitl_desktop.core.threads import (
    LoopThreadError,
    StoreWorker,
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


async def test_a_worker_call_cancelled_before_it_starts_does_not_run() -> None:
    """As with the pool it replaced: a caller that gave up before the worker reached its
    call does not get it run (a queued write of a cancelled turn, a tool run)."""
    worker = StoreWorker("t-cancel")
    gate = threading.Event()
    ran: list[str] = []
    try:
        first = worker.submit(gate.wait, 5)  # holds the worker
        second = asyncio.ensure_future(worker.call(ran.append, "second"))
        await asyncio.sleep(0.05)  # (queued by now)
        third = worker.submit(ran.append, "third")
        second.cancel()
        assert third.cancel()  # not started yet: cancelled, as a pool's future
        gate.set()
        assert await asyncio.wrap_future(first) is True
        assert await worker.call(ran.append, "fourth") is None
        assert ran == ["fourth"]
        with pytest.raises(asyncio.CancelledError):
            await second
    finally:
        worker.shutdown()


async def test_a_worker_hands_back_results_and_errors_in_call_order() -> None:
    worker = StoreWorker("t-order")
    seen: list[int] = []

    def boom() -> None:
        raise ValueError("from the worker")

    try:
        futures = [worker.submit(seen.append, i) for i in range(50)]
        with pytest.raises(ValueError, match="from the worker"):
            await worker.call(boom)
        assert isinstance(worker.submit(boom).exception(timeout=5), ValueError)
        assert [f.result(timeout=5) for f in futures] == [None] * 50
        assert seen == list(range(50))
        assert await worker.call(lambda: threading.current_thread().name) == "t-order_0"
    finally:
        worker.shutdown()
    with pytest.raises(RuntimeError, match="after shutdown"):
        worker.submit(seen.append, 99)


def test_what_a_worker_queued_runs_before_the_process_exits(tmp_path: Path) -> None:
    """Shut down or not, queued calls run before the interpreter exits (the thread is
    joined at exit, as the pool's were); a worker never used starts no thread."""
    out = tmp_path / "out.txt"
    code = (
        "import time\n"
        "from hitl_desktop.core.threads import StoreWorker\n"
        "idle = StoreWorker('idle')\n"
        "w = StoreWorker('w')\n"
        "w.submit(time.sleep, 0.3)\n"
        f"w.submit(open({str(out)!r}, 'w').write, 'written')\n"
    )
    done = subprocess.run([sys.executable, "-c", code], timeout=60, capture_output=True,
                          text=True, cwd=Path(__file__).resolve().parents[2], check=False)
    assert done.returncode == 0, done.stderr
    assert out.read_text() == "written"
