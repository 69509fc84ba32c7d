"""The relay log's WAL stays bounded under sustained writes (issue 18: a worker thread's
checkpoints alone let it grow to 5.7 GB over a 500k-line load). Real SQLite files; the
relay's own checkpoint task (``RelayLog.run_checkpoints``) beside a writer that appends
chat lines on the loop as fast as it can, as the relay's hot path does. The thresholds
are scaled down (same code, smaller numbers) so the load is seconds, not minutes."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Coroutine
from pathlib import Path
from typing import Any

import pytest

from hitl_desktop.core.protocol import Author, ChatMessage, Role
from hitl_desktop.host import log as relay_log
from hitl_desktop.host.log import RelayLog

MB = 1024 * 1024
BOUND = 16 * MB


@pytest.fixture
def scaled(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(relay_log, "WAL_LIMIT_BYTES", BOUND)
    monkeypatch.setattr(relay_log, "WAL_FINISH_BYTES", 6 * MB)
    monkeypatch.setattr(relay_log, "WAL_SOON_BYTES", 2 * MB)
    monkeypatch.setattr(relay_log, "WAL_KEEP_BYTES", 1 * MB)
    monkeypatch.setattr(relay_log, "WAL_LOOK_S", 0.05)


async def sustained_load(log: RelayLog, checkpoints: Coroutine[Any, Any, None], seconds: float
                         ) -> tuple[int, int, float]:
    """Append for ``seconds`` with ``checkpoints`` running; (lines, largest WAL, the
    loop's longest late tick in s)."""
    log.defer_checkpoints()  # as the relay does: no checkpoint inside its commits
    row, _ = log.create_session(title="load")
    author = Author(role=Role.CUSTOMER, name="Ann")
    text = "my parcel is late again, " * 80  # ~2 KB a line
    largest, late = 0, 0.0
    stop = False

    async def ticker() -> None:
        nonlocal late
        while not stop:
            before = time.perf_counter()
            await asyncio.sleep(0.001)
            late = max(late, time.perf_counter() - before - 0.001)

    tasks = [asyncio.ensure_future(checkpoints), asyncio.ensure_future(ticker())]
    lines = 0
    end = time.monotonic() + seconds
    try:
        while time.monotonic() < end:
            for _ in range(20):
                log.append(row, ChatMessage(message_id=f"m{lines}", author=author, text=text))
                lines += 1
            largest = max(largest, log.wal_bytes())
            await asyncio.sleep(0)  # the relay yields between frames as well
    finally:
        stop = True
        for t in tasks:
            t.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await t
    return lines, largest, late


async def thread_passes_only(log: RelayLog) -> None:
    """What the relay did before: a PASSIVE pass in a worker thread every 2 s."""
    while True:
        await asyncio.sleep(2.0)
        await asyncio.to_thread(log.checkpoint)


@pytest.mark.usefixtures("scaled")
async def test_the_wal_stays_under_its_bound_under_sustained_writes(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="hitl_desktop.host.log")
    before = RelayLog(tmp_path / "before" / "relay.sqlite3")
    try:
        control, grew, _ = await sustained_load(before, thread_passes_only(before), 2.5)
    finally:
        before.close()
    assert grew > BOUND  # the same load, thread passes only: the WAL outgrows the bound

    log = RelayLog(tmp_path / "after" / "relay.sqlite3")
    try:
        lines, largest, late = await sustained_load(log, log.run_checkpoints(2.0), 2.0)
        # The bound holds while the checkpoint thread gets its share of the CPU; on a
        # starved machine (CI: two test workers on two cores) an unthrottled writer can
        # outrun one pass: seen up to 1.24x here. The old policy reaches 7-15x.
        assert largest < 2 * BOUND, f"WAL reached {largest / MB:.1f} MB"
        per_line = grew / control  # WAL bytes a line adds (the control never restarted)
        assert lines * per_line > 2 * BOUND  # it really wrote past the bound, several times
        finishes = [float(r.getMessage().split(" in ")[1].split()[0]) for r in caplog.records
                    if "finished on the loop" in r.getMessage()]
        assert finishes, "the WAL never needed the loop's last step: the load was too light"
        assert max(finishes) < 250  # milliseconds on the loop, once per few MB
        assert late < 0.5
        print(f"{lines} lines, WAL at most {largest / MB:.1f} MB (bound {BOUND / MB:.0f}); "
              f"thread passes only: {grew / MB:.1f} MB; the loop's part: "
              f"{len(finishes)} x {min(finishes):.1f}..{max(finishes):.1f} ms; loop's "
              f"longest late tick {late * 1000:.1f} ms")
    finally:
        log.close()
