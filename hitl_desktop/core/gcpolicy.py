"""The host's cyclic-GC policy: full passes over what is new, not over everything.

Why (issue 18, the 1,000-session tails): CPython's full pass (generation 2) scans every
tracked object that is not frozen. A host with a thousand open sessions holds ~200k of
them (connections, histories, per-session state) beyond the start-up set that
``start_host`` freezes, so each full pass held the loop 115-290 ms, once or twice a
minute, and every session's frames waited. Most of what a full pass scans has survived
the previous one and survives this one too.

The policy: when a full pass ends, its survivors are frozen (``gc.freeze()``, from the
collector's "stop" callback), so the next full pass scans only what reached generation 2
since: the last few seconds' survivors, not the host's whole heap. CPython's own trigger
stays (generation 2 runs when the survivors promoted since the last full pass exceed a
quarter of that pass's survivors), with generation 2 due after :data:`FULL_EVERY`
generation-1 passes (CPython: 10), so passes come more often and each is short.

What it costs: a frozen object is still freed by reference counting, but a reference
cycle that dies after its objects were frozen is not found until they are scanned again.
So a *major* pass (``gc.unfreeze()``, a full pass over everything, freeze again) runs on
the loop's thread when the frozen set has grown by :data:`MAJOR_GROWTH` of its size
after the last major pass (the start-up set at first) and at least :data:`MAJOR_MIN_S`
apart: garbage held that way stays a bounded share of the heap, and the long pause
comes rarely, at a rate set by the heap's growth, not by its churn.

Threads: the policy collects nothing itself except in the major pass, which runs on the
loop's thread (a windowed host's loop is the GUI thread, where ``app/qt.py``'s
``GuiThreadCollector`` keeps every collection), or, without a loop (the offline engine's
worker process), wherever its owner calls :meth:`FreezingCollector.major_if_due`; the
freeze after a pass is list surgery and does not run finalizers.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import time
from typing import Any

log = logging.getLogger(__name__)

#: a major pass when the frozen set has grown by this share since the last one
MAJOR_GROWTH = 1.0
#: ... and not more often than this (seconds)
MAJOR_MIN_S = 600.0
#: a major pass that could not run (another thread was collecting) is tried again after
RETRY_S = 0.05
#: generation-1 passes between full passes (generation 2's threshold; CPython: 10)
FULL_EVERY = 10
#: the youngest generation whose passes' survivors are frozen (2: full passes only). 0
#: (after every pass) removed every gen-1/2 pass over 20 ms of CPU at 1,000 sessions, but
#: on a loaded 2-core machine its latency was not shown better (hop p99 0.42-1.60x, p50
#: worse in 5 of 6 rounds, unexplained; notes/issue-18-tails7.md): not the default
FREEZE_AFTER = 2


class FreezingCollector:
    """Freezes each full pass's survivors; now and then a major pass (see the module).

    One per running host (``loop``: where the major pass runs) or engine worker (no
    loop: it calls :meth:`major_if_due` between requests); :meth:`stop` removes it. Two
    in one process each freeze after a pass (harmless: the second finds nothing left).
    """

    def __init__(self, loop: asyncio.AbstractEventLoop | None = None, *,
                 major_growth: float = MAJOR_GROWTH, major_min_s: float = MAJOR_MIN_S,
                 full_every: int | None = None, freeze_after: int | None = None) -> None:
        self.loop = loop
        self.freeze_after = FREEZE_AFTER if freeze_after is None else freeze_after
        self.major_growth = major_growth
        self.major_min_s = major_min_s
        self.full_every = FULL_EVERY if full_every is None else full_every
        self.full_passes = 0  # full passes whose survivors were frozen
        self.major_passes = 0
        self.major_found = 0  # unreachable objects the major passes found
        self.major_seconds = 0.0  # their wall time in all
        self._base = 0  # frozen objects after the last major pass (or at start)
        self._last_major = time.monotonic()
        self._major_due = False
        self._in_major = False
        self._major_ran = False  # (set by the callback when the major's pass starts)
        self._installed = False
        self._threshold2: int | None = None  # generation 2's threshold before start

    def start(self) -> None:
        """Freeze what exists now (the start-up set) and install the policy."""
        gc.freeze()
        self._base = gc.get_freeze_count()
        self._last_major = time.monotonic()
        if not self._installed:
            t0, t1, self._threshold2 = gc.get_threshold()
            gc.set_threshold(t0, t1, self.full_every)
            gc.callbacks.append(self._on_gc)
            self._installed = True

    def stop(self) -> None:
        """Remove the policy (what is frozen stays frozen). Safe to call twice."""
        if self._installed:
            self._installed = False
            if self._on_gc in gc.callbacks:
                gc.callbacks.remove(self._on_gc)
            t0, t1, t2 = gc.get_threshold()
            if self._threshold2 is not None and t2 == self.full_every:
                gc.set_threshold(t0, t1, self._threshold2)

    def _on_gc(self, phase: str, info: dict[str, Any]) -> None:
        """After a full pass (in whichever thread ran it): freeze its survivors."""
        generation = info.get("generation", 0)
        if self._in_major:
            if phase == "start" and generation == 2:
                self._major_ran = True  # (a full pass over the unfrozen heap started)
            return
        if phase != "stop" or generation < self.freeze_after:
            return
        gc.freeze()
        if generation != 2:
            return
        self.full_passes += 1
        if self._major_due or time.monotonic() - self._last_major < self.major_min_s:
            return
        if gc.get_freeze_count() > self._base * (1 + self.major_growth):
            self._major_due = True
            if self.loop is None:
                return  # the owner calls major_if_due()
            try:
                self.loop.call_soon_threadsafe(self.major)
            except RuntimeError:  # the loop is closed: the host is gone
                self._major_due = False

    def major_if_due(self) -> bool:
        """Run the major pass if one is due (for an owner without a loop); ran it?"""
        if not self._major_due:
            return False
        return self.major()

    def major(self) -> bool:
        """A full pass over everything, frozen or not; then freeze the survivors. False if
        it could not run: another thread's collection was under way (CPython then skips
        ``gc.collect()`` silently); it stays due and is tried again (on the loop, soon)."""
        if not self._installed:
            self._major_due = False
            return False
        began = time.perf_counter()
        self._in_major = True
        self._major_ran = False
        try:
            gc.unfreeze()
            found = gc.collect()
            gc.freeze()
        finally:
            self._in_major = False
        if not self._major_ran:
            self._major_due = True
            if self.loop is not None:
                with contextlib.suppress(RuntimeError):  # (a closed loop: the host is gone)
                    self.loop.call_later(RETRY_S, self.major)
            return False
        self._major_due = False
        took = time.perf_counter() - began
        self.major_passes += 1
        self.major_found += found
        self.major_seconds += took
        self._base = gc.get_freeze_count()
        self._last_major = time.monotonic()
        log.info("major GC pass: %d unreachable found, %d objects kept frozen, %.0f ms",
                 found, self._base, took * 1000)
        return True
