"""The relay log's WAL stays bounded under sustained writes (issue 18: a worker thread's
checkpoints alone let it grow to 5.7 GB over a 500k-line load), with no copy on the loop.
Real SQLite files; the relay's own checkpoint task (``RelayLog.run_checkpoints``) beside
a writer that appends chat lines as fast as it can through the relay's group commit
(``append_chat_grouped``, committed at the end of each tick and handed back to relay),
as the relay's hot path does. The thresholds are scaled down (same code, smaller
numbers) so the load is seconds, not minutes."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Coroutine
from pathlib import Path
from typing import Any

import pytest

from hitl_desktop.host import log as relay_log
from hitl_desktop.host.log import RelayLog

MB = 1024 * 1024
BOUND = 16 * MB


@pytest.fixture
def scaled(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(relay_log, "WAL_LIMIT_BYTES", BOUND)
    monkeypatch.setattr(relay_log, "WAL_FINISH_BYTES", 4 * MB)
    monkeypatch.setattr(relay_log, "WAL_SOON_BYTES", 2 * MB)
    monkeypatch.setattr(relay_log, "WAL_KEEP_BYTES", 1 * MB)
    monkeypatch.setattr(relay_log, "WAL_LOOK_S", 0.05)


RATE = 6_000  # lines/s offered: above a busy relay's ceiling (bench/load.py)
SESSIONS = 200  # each tick a line in each of SESSIONS // 10 of them, round robin


async def sustained_load(log: RelayLog, checkpoints: Coroutine[Any, Any, None], seconds: float
                         ) -> tuple[int, int, int, float]:
    """Append ``RATE`` lines/s for ``seconds`` (as many as the loop manages, if fewer)
    with ``checkpoints`` running; (lines appended, lines handed back as committed,
    largest WAL, the loop's longest late tick in s)."""
    log.defer_checkpoints()  # as the relay does: no checkpoint inside its commits
    rows = [log.create_session(title=f"load {i}")[0] for i in range(SESSIONS)]
    text = "my parcel is late again, " * 12  # a chat line: a ~0.6 KB frame
    largest, late, committed = 0, 0.0, 0
    stop = False

    def relayed(lines: list[tuple[object, str]], error: BaseException | None) -> None:
        nonlocal committed
        assert error is None
        committed += len(lines)

    log.on_group_commit = relayed

    async def ticker() -> None:
        nonlocal late
        while not stop:
            before = time.perf_counter()
            await asyncio.sleep(0.001)
            late = max(late, time.perf_counter() - before - 0.001)

    tasks = [asyncio.ensure_future(checkpoints), asyncio.ensure_future(ticker())]
    lines = 0
    start = time.monotonic()
    end = start + seconds
    try:
        while time.monotonic() < end:
            ahead = lines / RATE - (time.monotonic() - start)
            if ahead > 0:
                await asyncio.sleep(ahead)
            for _ in range(20):  # a tick's lines, one per session, as in a busy relay
                row = rows[lines % SESSIONS]
                log.append_chat_grouped(row, lines, message_id=f"c{lines}", role="customer",
                                        name="Ann", text=text, draft_id=None, ref=None)
                lines += 1
            log.commit_group()  # the end of the tick (a no-op while a finish holds it)
            largest = max(largest, log.wal_bytes())
            await asyncio.sleep(0)
    finally:
        stop = True
        for t in tasks:
            t.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await t
        log.release()
    return lines, committed, largest, late


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
        control, _, grew, _ = await sustained_load(before, thread_passes_only(before), 2.5)
    finally:
        before.close()
    assert grew > BOUND  # the same load, thread passes only: the WAL outgrows the bound

    log = RelayLog(tmp_path / "after" / "relay.sqlite3")
    try:
        lines, committed, largest, late = await sustained_load(
            log, log.run_checkpoints(2.0), 2.0)
        assert committed == lines  # every line was committed and handed back to relay
        # no slack: a held WAL does not grow, so a lagging checkpoint thread cannot let
        # the writer outrun it
        assert largest < BOUND, f"WAL reached {largest / MB:.1f} MB"
        per_line = grew / control  # WAL bytes a line adds (the control never restarted)
        assert lines * per_line > 1.5 * BOUND  # it really wrote well past the bound
        held = [f.held_ms for f in log.finishes if f.ok]
        assert held, f"no held finish restarted the WAL: {log.finishes}"
        assert max(f.held_ms for f in log.finishes) < relay_log.HOLD_MAX_S * 1000 + 100
        assert not [r for r in caplog.records if "on the loop" in r.getMessage()]
        assert late < 0.25  # the loop never copies (a busy CI box still delays ticks)
        print(f"{lines} lines, WAL at most {largest / MB:.1f} MB (bound {BOUND / MB:.0f}); "
              f"thread passes only: {grew / MB:.1f} MB; {len(held)} held finishes of "
              f"{len(log.finishes)}, appends held {min(held):.1f}..{max(held):.1f} ms; "
              f"loop's longest late tick {late * 1000:.1f} ms")
    finally:
        log.close()
