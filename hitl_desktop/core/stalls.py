"""Where the event loop stops: an opt-in stall watch (issue 18, the 1,000-session tails).

Why: a host whose p50s are fine can still miss its p99 because, now and then, its loop
does not run for tens of milliseconds, and every frame due then waits. The profile of
a whole run cannot say when; this watch does. A heartbeat callback on the loop stamps
the time every ``interval``; a daemon thread looks at the stamp and, while it is older
than the threshold, samples the loop thread's stack (``sys._current_frames``). When the
loop beats again the stall is recorded with what explains it:

* ``loop_cpu``: CPU the loop's thread used during the stall (``pthread_getcpuclockid``):
  close to the stall's length = the loop was computing (the stacks say what); far below
  = it was waiting (for the GIL another thread held, or for a CPU the OS gave elsewhere);
* ``proc_cpu``: CPU of the whole process meanwhile: above ``loop_cpu`` = the process's
  other threads ran (GIL); both low = the process was not scheduled (a busy machine);
* ``gc``: time in the cyclic collector during the stall, by generation.

Off by default. ``HITL_STALL_LOG=MS`` turns it on for a host (``app/services.py``): one
WARNING line per stall longer than MS ms and a summary (heartbeat lateness p50/p99/max,
stalls, their causes) when the host stops. The watch costs one timer callback per
``interval`` (5 ms) on the loop and a thread that wakes as often.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import os
import sys
import threading
import time
from collections import Counter, deque
from dataclasses import dataclass, field
from types import FrameType
from typing import Any

log = logging.getLogger(__name__)

ENV_VAR = "HITL_STALL_LOG"
#: heartbeat lateness samples kept for the summary (about 20 minutes at 5 ms)
_LAG_SAMPLES = 250_000


@dataclass(slots=True)
class Stall:
    """One stretch in which the loop did not run its heartbeat for longer than allowed."""

    start: float  # time.monotonic() of the last beat before it
    seconds: float  # how long the loop did not beat (beyond the interval)
    loop_cpu: float  # CPU seconds of the loop's thread meanwhile
    proc_cpu: float  # CPU seconds of the whole process meanwhile
    gc: list[float] = field(default_factory=lambda: [0.0, 0.0, 0.0])  # by generation
    stacks: Counter[str] = field(default_factory=Counter)  # "f (file:line) < ..." -> samples

    def cause(self) -> str:
        """A one-word reading of the figures (see the module's docstring)."""
        if sum(self.gc) >= 0.5 * self.seconds:
            return "gc"
        if self.loop_cpu >= 0.6 * self.seconds:
            return "loop-busy"
        if self.proc_cpu - self.loop_cpu >= 0.4 * self.seconds:
            return "gil"
        return "descheduled"

    def as_dict(self) -> dict[str, Any]:
        return {"start": self.start, "ms": round(self.seconds * 1000, 2),
                "loop_cpu_ms": round(self.loop_cpu * 1000, 2),
                "proc_cpu_ms": round(self.proc_cpu * 1000, 2),
                "gc_ms": [round(g * 1000, 2) for g in self.gc], "cause": self.cause(),
                "stacks": self.stacks.most_common(5)}


def _stack(frame: FrameType | None, depth: int = 6) -> str:
    """The innermost ``depth`` frames, innermost first."""
    parts: list[str] = []
    while frame is not None and len(parts) < depth:
        code = frame.f_code
        parts.append(f"{code.co_name} ({os.path.basename(code.co_filename)}:{frame.f_lineno})")
        frame = frame.f_back
    return " < ".join(parts)


def _thread_cpu(clock: int | None) -> float:
    if clock is None:
        return 0.0
    try:
        return time.clock_gettime(clock)
    except OSError:
        return 0.0


class StallWatch:
    """Watches one running loop from a thread; :meth:`stop` ends it (see the module)."""

    def __init__(self, loop: asyncio.AbstractEventLoop, threshold_s: float, *,
                 interval_s: float = 0.005, keep: int = 10_000) -> None:
        self.loop = loop
        self.threshold_s = threshold_s
        self.interval_s = interval_s
        self.stalls: deque[Stall] = deque(maxlen=keep)
        self.lags: deque[float] = deque(maxlen=_LAG_SAMPLES)  # each beat's lateness
        self.beats: deque[float] = deque(maxlen=_LAG_SAMPLES)  # ... and when it ran
        self.gc_total = [0.0, 0.0, 0.0]
        self.gc_spans: deque[tuple[float, float, int]] = deque(maxlen=65536)
        self._gc_started: float | None = None
        self._last = time.monotonic()
        #: the last beat: (when, its number, the loop thread's and the process's CPU then),
        #: one tuple so the watching thread reads it whole
        self._state = (self._last, 0, 0.0, 0.0)
        self._handle: asyncio.TimerHandle | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._loop_thread = threading.get_ident()
        self._clock: int | None = None

    # -- the loop side ------------------------------------------------------------

    def start(self) -> None:
        """Start beating on the running loop (call on its thread) and watching."""
        self._loop_thread = threading.get_ident()
        try:
            self._clock = time.pthread_getcpuclockid(self._loop_thread)
        except (AttributeError, OSError):  # not on every platform
            self._clock = None
        self._last = time.monotonic()
        self._state = (self._last, 0, _thread_cpu(self._clock), time.process_time())
        self._handle = self.loop.call_later(self.interval_s, self._beat)
        gc.callbacks.append(self._on_gc)
        self._thread = threading.Thread(target=self._watch, name="stall-watch", daemon=True)
        self._thread.start()

    def _beat(self) -> None:
        now = time.monotonic()
        self.lags.append(max(0.0, now - self._last - self.interval_s))
        self.beats.append(now)
        self._last = now
        # the CPU clocks as of this beat: a stall's figures are from its last beat on
        self._state = (now, self._state[1] + 1, _thread_cpu(self._clock), time.process_time())
        self._handle = self.loop.call_later(self.interval_s, self._beat)

    def _on_gc(self, phase: str, info: dict[str, int]) -> None:
        now = time.monotonic()
        if phase == "start":
            self._gc_started = now
        elif self._gc_started is not None:
            gen = info.get("generation", 2)
            self.gc_total[gen] += now - self._gc_started
            self.gc_spans.append((self._gc_started, now, gen))
            self._gc_started = None

    def stop(self) -> None:
        """Stop watching; log the summary. Safe to call twice."""
        self._stop.set()
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None
        if self._on_gc in gc.callbacks:
            gc.callbacks.remove(self._on_gc)
        if self._thread is not None:
            self._thread.join(1.0)
            self._thread = None
            log.warning("%s", self.summary())  # asked for (HITL_STALL_LOG): shown

    # -- the watching thread ------------------------------------------------------

    def _watch(self) -> None:
        limit = self.interval_s + self.threshold_s
        while not self._stop.wait(self.interval_s):
            last, beats, loop_cpu, proc_cpu = self._state
            if time.monotonic() - last <= limit:
                continue
            stall = Stall(start=last, seconds=0.0, loop_cpu=0.0, proc_cpu=0.0)
            # sample until the loop beats again
            while self._state[1] == beats and not self._stop.is_set():
                frame = sys._current_frames().get(self._loop_thread)
                stall.stacks[_stack(frame)] += 1
                time.sleep(self.interval_s / 2)
            if self._stop.is_set():
                return
            now, _n, loop_cpu1, proc_cpu1 = self._state
            stall.seconds = max(0.0, now - last - self.interval_s)
            stall.loop_cpu = loop_cpu1 - loop_cpu
            stall.proc_cpu = proc_cpu1 - proc_cpu
            end = last + self.interval_s + stall.seconds
            for g0, g1, gen in list(self.gc_spans):
                overlap = min(g1, end) - max(g0, last)
                if overlap > 0:
                    stall.gc[gen] += overlap
            self.stalls.append(stall)
            top = stall.stacks.most_common(1)
            log.warning("loop stalled %.0f ms (%s): loop thread CPU %.0f ms, process %.0f ms, "
                        "gc %.0f ms; at %s", stall.seconds * 1000, stall.cause(),
                        stall.loop_cpu * 1000, stall.proc_cpu * 1000, sum(stall.gc) * 1000,
                        top[0][0] if top else "?")

    # -- reading ------------------------------------------------------------------

    def summary(self) -> str:
        lags = sorted(self.lags)

        def q(p: float) -> float:
            return lags[min(len(lags) - 1, int(p * len(lags)))] * 1000 if lags else 0.0

        causes = Counter(s.cause() for s in self.stalls)
        return (f"loop heartbeat lateness p50 {q(0.5):.1f} / p99 {q(0.99):.1f} / max "
                f"{q(1.0):.1f} ms over {len(lags)} beats; {len(self.stalls)} stalls > "
                f"{self.threshold_s * 1000:.0f} ms ({sum(s.seconds for s in self.stalls):.2f} s"
                f"; {dict(causes)}); gc {self.gc_total[0]:.2f}/{self.gc_total[1]:.2f}/"
                f"{self.gc_total[2]:.2f} s by generation")


def from_environment(loop: asyncio.AbstractEventLoop) -> StallWatch | None:
    """A started watch if ``HITL_STALL_LOG`` names a threshold in ms (else None)."""
    raw = os.environ.get(ENV_VAR, "").strip()
    if not raw:
        return None
    try:
        threshold_ms = float(raw)
    except ValueError:
        log.warning("%s=%r is not a number of milliseconds: no stall watch", ENV_VAR, raw)
        return None
    if threshold_ms <= 0:
        return None
    watch = StallWatch(loop, threshold_ms / 1000)
    watch.start()
    log.warning("stall watch on: loop stalls over %.0f ms are logged (%s)", threshold_ms,
                ENV_VAR)
    return watch
