"""A clock tests move by hand (the shop accepts an injected clock): approval
lifetimes are tested by advancing it, never by sleeping on the wall clock."""

from __future__ import annotations

import time


class ManualClock:
    """Starts at the wall clock's now; moves only when told."""

    def __init__(self, t: float | None = None) -> None:
        self.t = time.time() if t is None else t

    def __call__(self) -> float:
        return self.t

    def advance(self, seconds: float) -> None:
        self.t += seconds
