"""The relay log's WAL through a long load on a running host (issue 18: "the WAL stays under
its bound through a 500,000-line load").

A real host (``start_host``, co-pilot off unless ``--copilot``, its own process and data
dir) and real sockets: ``--clients`` processes drive ``--sessions`` customer/agent pairs,
each customer sending its next line when its agent got the last (the shipped append path:
``chat.send`` -> group commit -> relay), until ``--lines`` lines have been relayed. Beside
them a few *observer* pairs send a line every 20 ms and time each hop. Reported:

* the WAL file's largest size (sampled every 20 ms from this process) against the bound
  (``host/log.py`` WAL_LIMIT_BYTES), and the database size at the end;
* lines/s (``--rate``: offered at that rate, else as fast as the host relays them);
* the host loop's longest stall (a 5 ms ticker inside the host process) and the held
  finishes (``RelayLog.finishes``: how long appends waited, how many lines, spoiled);
* the observers' hop p50/p99 during a held finish and outside one.

    python -m bench.wal_load                  # 500,000 lines (several minutes)
    python -m bench.wal_load --quick          # 20,000 lines
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import multiprocessing as mp
import os
import random
import statistics
import sys
import tempfile
import threading
import time
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from bench.load import host_sessions  # noqa: E402
from bench.relay import _frame, _open, _raise_fd_limit  # noqa: E402
from hitl_desktop.core.links import InviteLink  # noqa: E402

MB = 1024 * 1024


def pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    s = sorted(values)
    return s[min(len(s) - 1, max(0, round(q / 100 * (len(s) - 1))))]


# ----------------------------------------------------------------------------- host


def _host_main(pipe: Connection, data_dir: str, copilot: bool) -> None:
    import logging

    _raise_fd_limit()
    from hitl_desktop.app.services import copilot_factory, start_host
    from hitl_desktop.config import Settings, resolve_paths
    from hitl_desktop.host.relay import RelayConfig

    logging.basicConfig(level=logging.WARNING)

    async def main() -> None:
        paths = resolve_paths(data_dir, Path(data_dir) / "config")
        settings = Settings()
        factory = copilot_factory(paths, settings, provider="offline") if copilot else None
        cfg = RelayConfig(rate=1e9, burst=1e9, max_errors=10**9, max_per_address=10**6)
        host = await start_host(paths, settings, port=0, config=cfg, copilot_factory=factory)
        stalls: list[float] = []
        stop = False

        async def ticker() -> None:  # the loop's lateness: a 5 ms sleep that wakes late
            while not stop:
                before = time.perf_counter()
                await asyncio.sleep(0.005)
                stalls.append(time.perf_counter() - before - 0.005)

        tick = asyncio.ensure_future(ticker())
        relay_log = host.relay.log
        pipe.send({"url": host.url, "admin": InviteLink.parse(host.admin_link).token,
                   "wal": f"{relay_log.path}-wal", "db": str(relay_log.path)})
        await asyncio.get_running_loop().run_in_executor(None, pipe.recv)  # "go"
        stalls.clear()  # (start-up and the connections' hellos are not the load)
        await asyncio.get_running_loop().run_in_executor(None, pipe.recv)  # "report"
        stop = True
        await tick
        pipe.send({"finishes": [tuple(f) for f in relay_log.finishes],
                   "stall_max": max(stalls, default=0.0), "stall_p99": pct(stalls, 99.9),
                   "wal_limit": _wal_limit()})
        await asyncio.get_running_loop().run_in_executor(None, pipe.recv)  # "stop"
        await host.stop()

    asyncio.run(main())


def _wal_limit() -> int:
    from hitl_desktop.host import log as relay_log

    return relay_log.WAL_LIMIT_BYTES


# ----------------------------------------------------------------------------- clients


async def _create(url: str, admin_token: str, n: int) -> list[tuple[str, str, str]]:
    return await host_sessions(url, admin_token, n, {})


async def _pair(url: str, spec: tuple[str, str, str]) -> tuple[Any, Any]:
    (cust, _), (agent, _) = await asyncio.gather(_open(url, spec[1]), _open(url, spec[2]))
    return cust, agent


async def _drain(ws: Any) -> None:
    with contextlib.suppress(Exception):
        async for _ in ws:
            pass


async def _drive(url: str, specs: list[tuple[str, str, str]], lines: int,
                 pipe: Connection, interval: float) -> None:
    """Each customer sends its next line when its agent got the last (and, paced, no
    sooner than ``interval`` after its previous one), until this client's share of lines
    is through."""
    pairs = []
    for start in range(0, len(specs), 50):
        pairs += await asyncio.gather(*(_pair(url, s) for s in specs[start:start + 50]))
    pipe.send("ready")
    await asyncio.get_running_loop().run_in_executor(None, pipe.recv)
    left = lines
    text = "where is my parcel? it was due yesterday and the tracking page says nothing " * 2

    loop = asyncio.get_running_loop()

    async def talk(sid: str, cust: Any, agent: Any) -> int:
        nonlocal left
        done = 0
        drain = asyncio.ensure_future(_drain(cust))
        due = loop.time() + random.uniform(0, interval)
        try:
            while left > 0:
                if interval:
                    await asyncio.sleep(max(0.0, due - loop.time()))
                    due += interval
                    if left <= 0:  # the others took the rest meanwhile
                        break
                left -= 1
                await cust.send(_frame("chat.send", {"text": text}, sid))
                while True:  # the agent's copy of this line
                    frame = json.loads(await agent.recv())
                    if frame["type"] == "chat.message":
                        break
                done += 1
        finally:
            drain.cancel()
        return done

    counts = await asyncio.gather(*(talk(s[0], c, a) for s, (c, a) in zip(specs, pairs,
                                                                          strict=True)))
    pipe.send({"lines": sum(counts), "cpu": time.process_time()})
    await asyncio.gather(*(ws.close() for p in pairs for ws in p), return_exceptions=True)


def _client_main(pipe: Connection, url: str, specs: list[tuple[str, str, str]],
                 lines: int, interval: float) -> None:
    _raise_fd_limit()
    asyncio.run(_drive(url, specs, lines, pipe, interval))


async def _observe(url: str, specs: list[tuple[str, str, str]], stop: threading.Event
                   ) -> list[tuple[float, float]]:
    """Observer pairs: a line every 20 ms each; (sent at, hop) by wall clock."""
    pairs = [await _pair(url, s) for s in specs]
    hops: list[tuple[float, float]] = []

    async def watch(sid: str, cust: Any, agent: Any) -> None:
        drain = asyncio.ensure_future(_drain(cust))
        try:
            while not stop.is_set():
                at = time.time()
                t0 = time.perf_counter()
                await cust.send(_frame("chat.send", {"text": "observer"}, sid))
                while json.loads(await agent.recv())["type"] != "chat.message":
                    pass
                hops.append((at, time.perf_counter() - t0))
                await asyncio.sleep(0.02)
        finally:
            drain.cancel()

    await asyncio.gather(*(watch(s[0], c, a) for s, (c, a) in zip(specs, pairs, strict=True)))
    await asyncio.gather(*(ws.close() for p in pairs for ws in p), return_exceptions=True)
    return hops


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--lines", type=int, default=500_000)
    parser.add_argument("--sessions", type=int, default=200)
    parser.add_argument("--clients", type=int, default=2)
    parser.add_argument("--observers", type=int, default=4)
    parser.add_argument("--copilot", action="store_true", help="the offline co-pilot on")
    parser.add_argument("--rate", type=float, default=0.0,
                        help="lines/s offered in all (0: as fast as the host relays them)")
    parser.add_argument("--quick", action="store_true", help="20,000 lines, 50 sessions")
    args = parser.parse_args(argv)
    if args.quick:
        args.lines, args.sessions = min(args.lines, 20_000), min(args.sessions, 50)
    _raise_fd_limit()
    ctx = mp.get_context("spawn")
    tmp = tempfile.TemporaryDirectory(prefix="hitl-wal-")
    host_pipe, child = ctx.Pipe()
    host = ctx.Process(target=_host_main, args=(child, tmp.name, args.copilot),
                       daemon=False)  # (a daemon cannot start the engine process)
    host.start()
    clients: list[tuple[Any, Connection]] = []
    try:
        info = host_pipe.recv()
        specs = asyncio.run(_create(info["url"], info["admin"],
                                    args.sessions + args.observers))
        load, watched = specs[: args.sessions], specs[args.sessions:]
        n = max(1, args.clients)
        for i in range(n):
            parent, c = ctx.Pipe()
            part = load[i::n]
            share = args.lines // n + (1 if i < args.lines % n else 0)
            interval = args.sessions / args.rate if args.rate else 0.0
            proc = ctx.Process(target=_client_main, daemon=True,
                               args=(c, info["url"], part, share, interval))
            proc.start()
            clients.append((proc, parent))
        for _p, pipe in clients:
            assert pipe.recv() == "ready"

        stop = threading.Event()
        observed: list[list[tuple[float, float]]] = []
        obs = threading.Thread(target=lambda: observed.append(
            asyncio.run(_observe(info["url"], watched, stop))), daemon=True)
        obs.start()
        time.sleep(1.0)
        host_pipe.send("go")
        wal_max, samples = 0, 0
        t0 = time.perf_counter()
        for _p, pipe in clients:
            pipe.send("go")
        pending = {id(pipe): pipe for _p, pipe in clients}
        reports = []
        last_print = t0
        while pending:
            for key, pipe in list(pending.items()):
                if pipe.poll(0):
                    reports.append(pipe.recv())
                    del pending[key]
            with contextlib.suppress(OSError):
                wal_max = max(wal_max, os.stat(info["wal"]).st_size)
            samples += 1
            if time.perf_counter() - last_print > 30:
                last_print = time.perf_counter()
                print(f"  ... {last_print - t0:5.0f} s, WAL at most {wal_max / MB:.1f} MB",
                      flush=True)
            time.sleep(0.02)
        took = time.perf_counter() - t0
        stop.set()
        obs.join(30)
        host_pipe.send("report")
        rep = host_pipe.recv()
        db_mb = os.stat(info["db"]).st_size / MB
    finally:
        for proc, _pipe in clients:
            proc.join(30)
            if proc.is_alive():
                proc.kill()
        with contextlib.suppress(Exception):
            host_pipe.send("stop")
        host.join(60)
        if host.is_alive():
            host.kill()
        tmp.cleanup()

    lines = sum(r["lines"] for r in reports)
    limit = rep["wal_limit"]
    finishes = rep["finishes"]  # (at, ms held, lines waited, ok, wal before, wal after)
    held = [f[1] for f in finishes]
    windows = [(f[0], f[0] + f[1] / 1000) for f in finishes]
    hops = observed[0] if observed else []
    during = [h for at, h in hops if any(a - 0.001 <= at + h and at <= b for a, b in windows)]
    outside = [h for at, h in hops if not any(a - 0.001 <= at + h and at <= b
                                              for a, b in windows)]
    print(f"{lines:,} lines through a running host ({args.sessions} sessions, {n} clients"
          f"{', co-pilot on' if args.copilot else ''}) in {took:.1f} s: "
          f"{lines / took:,.0f} lines/s")
    verdict = "OK" if wal_max < limit else "OVER"
    print(f"WAL at most {wal_max / MB:.1f} MB (bound {limit / MB:.0f} MB: {verdict}; "
          f"{samples} samples); database {db_mb:.0f} MB at the end")
    print(f"held finishes: {len(finishes)} ({sum(1 for f in finishes if not f[3])} spoiled); "
          f"appends held p50 {statistics.median(held) if held else float('nan'):.1f} ms, "
          f"max {max(held, default=float('nan')):.1f} ms; lines waiting max "
          f"{max((f[2] for f in finishes), default=0)}")
    print(f"host loop: longest stall {rep['stall_max'] * 1000:.1f} ms, "
          f"p99.9 {rep['stall_p99'] * 1000:.1f} ms")
    print(f"observers' hops: during a held finish p50 {pct(during, 50) * 1000:.1f} ms / "
          f"p99 {pct(during, 99) * 1000:.1f} ms ({len(during)}); otherwise p50 "
          f"{pct(outside, 50) * 1000:.1f} ms / p99 {pct(outside, 99) * 1000:.1f} ms "
          f"({len(outside)})")
    return 0 if wal_max < limit and lines >= args.lines else 1


if __name__ == "__main__":
    sys.exit(main())
