"""The opt-in stall watch (``core/stalls.py``): a loop held by work, by a sleep or by the
collector is recorded with the right reading, and a free loop records nothing."""

from __future__ import annotations

import asyncio
import gc
import logging
import time
from pathlib import Path

import pytest

from hitl_desktop.app.services import start_host
from hitl_desktop.config import Settings, resolve_paths
from hitl_desktop.core.stalls import ENV_VAR, StallWatch, from_environment


def _spin(seconds: float) -> None:
    """Compute for ``seconds`` of this thread's CPU (more wall time on a busy machine)."""
    end = time.thread_time() + seconds
    while time.thread_time() < end:
        pass


async def _settle() -> None:
    for _ in range(6):  # a few beats after the stall, so the watch has recorded it
        await asyncio.sleep(0.01)


async def test_a_busy_loop_is_recorded_with_its_stack() -> None:
    watch = StallWatch(asyncio.get_running_loop(), 0.02)
    watch.start()
    try:
        await asyncio.sleep(0.05)
        _spin(0.12)  # the loop computes, holding the GIL
        await _settle()
    finally:
        watch.stop()
    assert len(watch.stalls) == 1
    stall = watch.stalls[0]
    assert stall.seconds >= 0.11
    assert 0.11 <= stall.loop_cpu <= stall.seconds + 0.01
    # loop-busy, unless the machine gave the loop's thread less than 60 % of a core
    assert stall.cause() == "loop-busy" or stall.loop_cpu < 0.6 * stall.seconds
    assert any("_spin (test_stalls.py" in stack for stack in stall.stacks)


async def test_a_blocked_loop_that_uses_no_cpu_reads_as_waiting() -> None:
    watch = StallWatch(asyncio.get_running_loop(), 0.02)
    watch.start()
    try:
        await asyncio.sleep(0.05)
        time.sleep(0.1)  # noqa: ASYNC251 (on purpose: a wait that holds the loop, no CPU)
        await _settle()
    finally:
        watch.stop()
    assert [s.cause() for s in watch.stalls] == ["descheduled"]
    assert watch.stalls[0].loop_cpu < 0.05
    assert any("test_a_blocked_loop" in stack for stack in watch.stalls[0].stacks)


async def test_a_collection_during_a_stall_is_counted() -> None:
    junk = [[i] for i in range(300_000)]  # many tracked objects: a slow full pass
    watch = StallWatch(asyncio.get_running_loop(), 0.005)
    watch.start()
    try:
        await asyncio.sleep(0.03)
        began = time.perf_counter()
        gc.collect()
        took = time.perf_counter() - began
        await _settle()
    finally:
        watch.stop()
        del junk
    assert watch.gc_total[2] >= took * 0.8
    if took > 0.015:  # long enough to be a stall on this machine
        assert sum(sum(s.gc) for s in watch.stalls) >= took * 0.5


async def test_a_free_loop_records_no_stall() -> None:
    watch = StallWatch(asyncio.get_running_loop(), 0.25)
    watch.start()
    try:
        for _ in range(10):
            await asyncio.sleep(0.01)
    finally:
        watch.stop()
    assert not watch.stalls
    assert len(watch.lags) >= 5
    assert "stalls > 250 ms" in watch.summary()


async def test_the_environment_switch(monkeypatch: pytest.MonkeyPatch,
                                      caplog: pytest.LogCaptureFixture) -> None:
    loop = asyncio.get_running_loop()
    monkeypatch.delenv(ENV_VAR, raising=False)
    assert from_environment(loop) is None
    monkeypatch.setenv(ENV_VAR, "soon")
    with caplog.at_level(logging.WARNING):
        assert from_environment(loop) is None
    assert "not a number" in caplog.text
    monkeypatch.setenv(ENV_VAR, "0")
    assert from_environment(loop) is None
    monkeypatch.setenv(ENV_VAR, "15")
    watch = from_environment(loop)
    assert watch is not None
    watch.stop()
    assert watch.threshold_s == pytest.approx(0.015)


async def test_a_host_started_with_the_switch_logs_its_stalls(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        caplog: pytest.LogCaptureFixture) -> None:
    paths = resolve_paths(tmp_path / "data", tmp_path / "config")
    monkeypatch.setenv(ENV_VAR, "30")
    host = await start_host(paths, Settings(provider="offline"))
    try:
        assert host.stalls is not None
        with caplog.at_level(logging.WARNING, logger="hitl_desktop.core.stalls"):
            await asyncio.sleep(0.02)
            _spin(0.1)
            await _settle()
    finally:
        await host.stop()
    assert "loop stalled" in caplog.text and "_spin (test_stalls.py" in caplog.text
    assert any(s.loop_cpu >= 0.09 for s in host.stalls.stalls)
    assert "heartbeat lateness" in caplog.text  # the summary when the host stops


async def test_a_host_is_not_watched_by_default(tmp_path: Path,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(ENV_VAR, raising=False)
    paths = resolve_paths(tmp_path / "data", tmp_path / "config")
    host = await start_host(paths, Settings(provider="offline"))
    try:
        assert host.stalls is None
    finally:
        await host.stop()
