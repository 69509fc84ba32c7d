"""The task supervisor keeps tasks alive, logs failures by name and cancels on close."""

from __future__ import annotations

import asyncio
import gc
import logging

import pytest

from hitl_desktop.core.tasks import TaskSupervisor


async def test_a_failure_is_logged_with_the_task_name(caplog: pytest.LogCaptureFixture) -> None:
    sup = TaskSupervisor("unit")

    async def boom() -> None:
        raise ValueError("broken on purpose")

    task = sup.spawn(boom(), "boom")
    with caplog.at_level(logging.ERROR):
        await asyncio.wait([task])
        await asyncio.sleep(0)
    assert "unit: boom failed" in caplog.text
    assert "broken on purpose" in caplog.text
    assert len(sup) == 0


async def test_tasks_survive_garbage_collection_and_close_cancels_them() -> None:
    sup = TaskSupervisor("unit")
    started = asyncio.Event()
    finished: list[str] = []

    async def forever() -> None:
        started.set()
        try:
            await asyncio.sleep(3600)
        finally:
            finished.append("cleaned up")

    sup.spawn(forever(), "forever")  # no reference kept by the caller
    gc.collect()
    await asyncio.wait_for(started.wait(), 2)
    assert len(sup) == 1
    await sup.aclose(grace_s=2)
    assert finished == ["cleaned up"]
    assert len(sup) == 0


async def test_close_from_inside_a_supervised_task_does_not_cancel_itself() -> None:
    sup = TaskSupervisor("unit")
    other = sup.spawn(asyncio.sleep(3600), "other")

    async def closer() -> str:
        await sup.aclose()
        return "closed"

    assert await sup.spawn(closer(), "closer") == "closed"
    assert other.cancelled()
