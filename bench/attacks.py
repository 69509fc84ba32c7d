"""A legitimate customer + agent pair under each hostile load, as ratios to the pair alone.

    python -m bench.attacks [--seconds 6]

Each scenario starts a fresh host process (``tests.support.hostproc``, the relay's
default limits; the connection flood with a 1,024 open-file limit and no per-address
cap, as if the flood came from many addresses), runs the pair (a customer line every
50 ms, timed until the agent has it) while one hostile client attacks from 127.0.0.3,
and prints the pair's p50/p99, their ratio to the pair alone, the host's RSS and how
the hostile client ended. The hostile client runs in its own process (the pair's
process only measures); the stalled-reader scenarios use a 3 s stall timeout (20 s by
default) so the cut-off happens within the run. Same machinery as
tests/integration/test_relay_attacks.py.
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import sys
import tempfile
from collections.abc import Awaitable, Callable
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

from tests.support.attacks import (
    HostView,
    chatting_pair,
    connection_flood,
    cpu_flood,
    hello_flood,
    host_process,
    never_reading,
    sync_flood,
)

Attack = Callable[[HostView, float], Awaitable[str]]


async def _alone(host: HostView, seconds: float) -> str:
    await asyncio.sleep(seconds)
    return "-"


async def _sync(host: HostView, seconds: float) -> str:
    return f"closed {await sync_flood(host, 1, seconds)}"


async def _never(host: HostView, seconds: float) -> str:
    return f"closed {await never_reading(host, 1, seconds)}"


async def _cpu(host: HostView, seconds: float) -> str:
    codes = await cpu_flood(host, 1, seconds, conns=10)
    return "closed " + ",".join(sorted({str(c) for c in codes}))


async def _hello(host: HostView, seconds: float) -> str:
    attempts, codes = await hello_flood(host, seconds)
    return f"{attempts} tries: {codes.count(4001)}x4001 {codes.count(4008)}x4008"


async def _conns(host: HostView, seconds: float) -> str:
    most, _ = await connection_flood(host, 1200, hold=max(0.5, seconds - 3.0))
    return f"host fds <= {most}"


ATTACKS: dict[str, Attack] = {"alone": _alone, "sync": _sync, "never": _never, "cpu": _cpu,
                              "hello": _hello, "conns": _conns}
HISTORY = {"session": 1, "lines": 2000, "chars": 4000}
# the stalled readers are cut off after 20 s by default; 3 s here so it happens in the run
STALL = {"stall_timeout": 3.0}
SCENARIOS: list[tuple[str, dict[str, Any], str]] = [
    ("pair alone", {"sessions": 2}, "alone"),
    ("sync flood (non-reader, 8 MB history)",
     {"sessions": 2, "history": HISTORY, "relay": STALL}, "sync"),
    ("never-reading desk agent", {"sessions": 2, "history": HISTORY, "relay": STALL}, "never"),
    ("CPU flood: 10 conns x 8000-char lines", {"sessions": 2}, "cpu"),
    ("failed-hello flood", {"sessions": 2}, "hello"),
    ("connection flood at 1024 fds",
     {"sessions": 2, "nofile": 1024, "relay": {"max_per_address": 100_000}}, "conns"),
]


def _attack(name: str, host: HostView, seconds: float) -> str:
    """In the worker process: the hostile client's work never shares the pair's loop."""
    return asyncio.run(ATTACKS[name](host, seconds))


async def main(seconds: float) -> int:
    rows = []
    ctx = multiprocessing.get_context("spawn")
    with tempfile.TemporaryDirectory() as tmp, ProcessPoolExecutor(1, mp_context=ctx) as pool:
        await asyncio.wrap_future(pool.submit(_attack, "alone", None, 0.0))  # type: ignore[arg-type]
        for i, (name, spec, attack) in enumerate(SCENARIOS):
            with host_process(Path(tmp) / f"host{i}", spec) as host:
                async with chatting_pair(host, 0) as pair:
                    outcome = await asyncio.wrap_future(
                        pool.submit(_attack, attack, host.view(), seconds))
                rows.append((name, len(pair.latencies), pair.p50, pair.p99, host.rss_mb(),
                             outcome, pair.errors))
    base50, base99 = rows[0][2], rows[0][3]
    print(f"{'scenario':42} {'lines':>5} {'p50 ms':>7} {'p99 ms':>7} {'p50 x':>6} "
          f"{'p99 x':>6} {'RSS MB':>7}  hostile client")
    for name, n, p50, p99, rss, outcome, errors in rows:
        print(f"{name:42} {n:5d} {p50 * 1000:7.2f} {p99 * 1000:7.2f} {p50 / base50:6.2f} "
              f"{p99 / base99:6.2f} {rss:7.0f}  {outcome}{'  ERRORS: ' if errors else ''}"
              f"{errors[:2] if errors else ''}")
    return 0


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=6.0, help="attack length per scenario")
    sys.exit(asyncio.run(main(parser.parse_args().seconds)))
