"""Canary for DESIGN §7: PySide6 6.12 on Python 3.11 corrupts reference counts under a
qasync loop doing many ``await asyncio.sleep(0)`` (aborts with none_dealloc)."""

from __future__ import annotations

import asyncio

import qasync


async def test_20000_sleep0_on_the_qasync_loop() -> None:
    loop = asyncio.get_running_loop()
    assert isinstance(loop, qasync.QEventLoop)
    for _ in range(20_000):
        await asyncio.sleep(0)
    assert loop.is_running()
