"""Where the paced load's p99 comes from: bench.load's paced run, with timelines.

``bench.load`` prints percentiles; this runs the same paced workload (the same client
code, the same host) and also records *when* each hop and draft happened, the host
loop's stalls (``hitl_desktop.core.stalls``: how long, loop-thread and process CPU
meanwhile, GC, the loop's stack) and the client processes' own loop stalls, then says
how much of the tail falls inside a host stall, a client stall, or neither:

    python -m bench.tails --systems shipped --paced 1000 --clients 2
    python -m bench.tails --systems relay --paced 1000        # the client's own floor
    python -m bench.tails --paced 1000 --baseline /tmp/base   # + the base tree's host

Writes the raw records to ``--out DIR`` (JSON per system) for a closer look.
"""

from __future__ import annotations

import argparse
import asyncio
import bisect
import contextlib
import json
import os
import statistics
import sys
import tempfile
import time
from collections import Counter
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from bench import load  # noqa: E402
from bench.relay import _frame, _raise_fd_limit, _use_tree  # noqa: E402

OUT_ENV = "TAILS_OUT"  # where host and clients put their records (set by main)
STALL_MS = 10.0  # what counts as a stall, host and clients


class _Stamped(list[float]):
    """A Stats list that also keeps when each value was appended (perf_counter)."""

    def __init__(self) -> None:
        super().__init__()
        self.at: list[float] = []

    def append(self, value: float) -> None:
        self.at.append(time.perf_counter())
        super().append(value)

    def clear(self) -> None:
        self.at.clear()
        super().clear()


def _watch(loop: asyncio.AbstractEventLoop) -> Any:
    """A started stall watch, from this tree's file (a --baseline host imports the other
    tree's package, which may not have it)."""
    import importlib.util

    spec = importlib.util.spec_from_file_location(
        "bench_tails_stalls", REPO / "hitl_desktop" / "core" / "stalls.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # (dataclasses look their module up)
    spec.loader.exec_module(module)
    watch = module.StallWatch(loop, STALL_MS / 1000)
    watch.start()
    return watch


def _dump(path: Path, watch: Any, extra: dict[str, Any], since: float = 0.0) -> None:
    """The watch's records from ``since`` (time.monotonic) on, as JSON."""
    data = dict(extra)
    data["stalls"] = [s.as_dict() for s in watch.stalls if s.start >= since]
    lags = sorted(lag for lag, at in zip(watch.lags, watch.beats, strict=True) if at >= since)
    data["lag"] = {q: lags[min(len(lags) - 1, int(float(q) * len(lags)))] if lags else 0.0
                   for q in ("0.5", "0.9", "0.99", "0.999", "1.0")}
    data["gc_total"] = watch.gc_total
    path.write_text(json.dumps(data))


def _thread_cpu() -> dict[str, float]:
    """CPU seconds of each of this process's threads, by name (since it started)."""
    import threading

    out: dict[str, float] = {}
    for t in threading.enumerate():
        with contextlib.suppress(OSError, TypeError):
            stat = Path(f"/proc/self/task/{t.native_id}/stat").read_text()
            fields = stat.rsplit(")", 1)[1].split()
            name = "loop" if t is threading.main_thread() else t.name
            out[name] = out.get(name, 0.0) + (int(fields[11]) + int(fields[12])) / load.TICK_S
    return out


def _count_overflow() -> list[int]:
    """[drafts planned in the host's threads]: counts the offline engine's in-process
    plans (the overflow past the engine process's in-flight cap, or no process)."""
    count = [0]
    with contextlib.suppress(ImportError, AttributeError):
        from hitl_desktop.assistant.offline.engine import OfflineProvider

        plain = OfflineProvider.compact_steps

        def counted(self: Any, *args: Any) -> Any:
            count[0] += 1
            return plain(self, *args)

        OfflineProvider.compact_steps = counted  # type: ignore[method-assign,assignment]
    return count


def _host_main(pipe: Connection, data_dir: str, copilot: bool, src: str | None = None
               ) -> None:
    """bench.load's host, with a stall watch whose records are written on "stop"."""
    import logging

    _raise_fd_limit()
    _use_tree(src)
    from hitl_desktop.app.services import copilot_factory, start_host
    from hitl_desktop.config import Settings, resolve_paths
    from hitl_desktop.core.links import InviteLink
    from hitl_desktop.host.relay import RelayConfig

    logging.basicConfig(level=logging.ERROR)

    async def main() -> None:
        paths = resolve_paths(data_dir, Path(data_dir) / "config")
        settings = Settings()
        factory = copilot_factory(paths, settings, provider="offline") if copilot else None
        cfg = RelayConfig(rate=1e9, burst=1e9, max_errors=10**9, max_per_address=10**6)
        host = await start_host(paths, settings, port=0, config=cfg, copilot_factory=factory)
        overflow = _count_overflow()
        watch = _watch(asyncio.get_running_loop())
        pipe.send({"url": host.url, "admin": InviteLink.parse(host.admin_link).token})
        cmd = await asyncio.get_running_loop().run_in_executor(None, pipe.recv)
        watch.stop()
        out = os.environ.get(OUT_ENV)
        if out and isinstance(cmd, str) and cmd.startswith("stop"):
            since = float(cmd.split()[1]) if len(cmd.split()) > 1 else 0.0
            _dump(Path(out) / f"host-{os.getpid()}.json", watch,
                  {"threads": _thread_cpu(), "overflow": overflow}, since)
        await host.stop()

    asyncio.run(main())


async def _read_agent(self: load.HostPair) -> None:
    """bench.load's agent reader, also stamping draft.started and the first delta."""
    marks: list[tuple[float, float, float]] = self.marks  # type: ignore[attr-defined]
    started = first = 0.0
    with contextlib.suppress(Exception):
        async for raw in self.agent:
            frame = json.loads(raw)
            kind = frame["type"]
            if kind == "chat.message":
                data = frame["data"]
                if data["author"]["role"] == "customer":
                    n = load._number(data["text"])
                    if n is not None:
                        self._arrived(n)
            elif kind == "draft.started":
                started, first = time.perf_counter(), 0.0
            elif kind == "draft.delta" and not first:
                first = time.perf_counter()
            elif kind == "draft.completed" and self.last_line is not None:
                self.stats.drafts.append(time.perf_counter() - self.last_line)
                marks.append((self.last_line, started, first))
                if self.answer and frame["data"]["text"]:
                    await self.agent.send(_frame("chat.send", {
                        "text": frame["data"]["text"],
                        "draft_id": frame["data"]["turn_id"]}, self.sid))


def _client_main(pipe: Connection, kind: str, url: str, specs: list[Any], work: load.Work,
                 first: int) -> None:
    """bench.load's client process, with stamped stats and its own stall watch."""
    _raise_fd_limit()
    marks: list[tuple[float, float, float]] = []
    original_init = load.HostPair.__init__

    def init(self: load.HostPair, *args: Any) -> None:
        self.marks = marks  # type: ignore[attr-defined]
        original_init(self, *args)

    load.HostPair.__init__ = init  # type: ignore[method-assign,assignment]
    load.HostPair._read_agent = _read_agent  # type: ignore[method-assign]

    async def main() -> None:
        loop = asyncio.get_running_loop()
        stats = load.Stats()
        stats.hops, stats.drafts = _Stamped(), _Stamped()
        pairs = await load.open_pairs(kind, url, specs, stats)
        await load.warm_up(pairs[: work.warm], stats, work.drafts)
        marks.clear()
        pipe.send("ready")
        await loop.run_in_executor(None, pipe.recv)
        watch = _watch(loop)
        cpu0, t0 = time.process_time(), time.perf_counter()
        if work.kind == "burst":
            await load.run_burst(pairs, work.lines)
        else:
            await load.run_paced(pairs, work.seconds, work.interval, first)
        watch.stop()
        out = os.environ.get(OUT_ENV)
        if out:
            assert isinstance(stats.hops, _Stamped) and isinstance(stats.drafts, _Stamped)
            _dump(Path(out) / f"client-{os.getpid()}.json", watch, {
                "hops": list(zip(stats.hops.at, stats.hops, strict=True)),
                "drafts": list(zip(stats.drafts.at, stats.drafts, strict=True)),
                "marks": marks})
        pipe.send({"hops": stats.hops, "drafts": stats.drafts, "lines": stats.lines,
                   "cpu": time.process_time() - cpu0, "wall": time.perf_counter() - t0})
        await loop.run_in_executor(None, pipe.recv)
        await asyncio.gather(*(p.close() for p in pairs))

    asyncio.run(main())


# ----------------------------------------------------------------------------- analysis


def _pct(values: list[float], q: float) -> float:
    return load.pct(values, q)


class Spans:
    """Sorted, merged (start, end) intervals: is a moment or a span inside one?"""

    def __init__(self, spans: list[tuple[float, float]]) -> None:
        merged: list[list[float]] = []
        for a, b in sorted(spans):
            if merged and a <= merged[-1][1]:
                merged[-1][1] = max(merged[-1][1], b)
            else:
                merged.append([a, b])
        self.starts = [m[0] for m in merged]
        self.ends = [m[1] for m in merged]

    def overlap(self, a: float, b: float) -> float:
        """Seconds of [a, b] inside the spans."""
        i = max(0, bisect.bisect_right(self.starts, a) - 1)
        total = 0.0
        while i < len(self.starts) and self.starts[i] < b:
            total += max(0.0, min(b, self.ends[i]) - max(a, self.starts[i]))
            i += 1
        return total


def _stall_spans(stalls: list[dict[str, Any]]) -> Spans:
    return Spans([(s["start"], s["start"] + 0.005 + s["ms"] / 1000) for s in stalls])


def analyse(name: str, out: Path, budget_hop: float = 0.05, budget_draft: float = 0.5
            ) -> dict[str, Any]:
    host_files = list(out.glob("host-*.json"))
    host = json.loads(host_files[0].read_text()) if host_files else None
    clients = [json.loads(p.read_text()) for p in sorted(out.glob("client-*.json"))]
    hops = [(at - v, at, v) for c in clients for at, v in c["hops"]]
    drafts = [(at - v, at, v) for c in clients for at, v in c["drafts"]]
    marks = [m for c in clients for m in c["marks"]]
    host_spans = _stall_spans(host["stalls"]) if host else Spans([])
    client_spans = [_stall_spans(c["stalls"]) for c in clients]
    print(f"\n== {name}: {len(hops)} hops, {len(drafts)} drafts")
    hv = [h[2] for h in hops]
    print(f"  hop p50 {statistics.median(hv) * 1000:.1f} p90 {_pct(hv, 90) * 1000:.1f} "
          f"p99 {_pct(hv, 99) * 1000:.1f} max {max(hv) * 1000:.0f} ms; "
          f"> {budget_hop * 1000:.0f} ms: {sum(v > budget_hop for v in hv) / len(hv):.1%}")
    if drafts:
        dv = [d[2] for d in drafts]
        print(f"  draft p50 {statistics.median(dv) * 1000:.0f} p90 {_pct(dv, 90) * 1000:.0f} "
              f"p99 {_pct(dv, 99) * 1000:.0f} max {max(dv) * 1000:.0f} ms; > "
              f"{budget_draft * 1000:.0f} ms: {sum(v > budget_draft for v in dv) / len(dv):.1%}")
    if marks:  # line -> draft.started -> first delta -> completed
        to_start = [s - line for line, s, _f in marks if s >= line]
        to_first = [f - s for _line, s, f in marks if f and s]
        print(f"  line -> draft.started p50 {statistics.median(to_start) * 1000:.0f} p99 "
              f"{_pct(to_start, 99) * 1000:.0f} ms; draft.started -> first delta p50 "
              f"{statistics.median(to_first) * 1000:.0f} p99 {_pct(to_first, 99) * 1000:.0f}"
              f" ms")
    if host and "threads" in host:
        busy = sorted(host["threads"].items(), key=lambda kv: -kv[1])
        print("  host threads' CPU s (whole life): "
              + ", ".join(f"{k} {v:.2f}" for k, v in busy if v >= 0.05)
              + f"; drafts planned in the host's threads: {host['overflow'][0]}")
    for label, loopinfo in ([("host", host)] if host else []) + [
            (f"client{i}", c) for i, c in enumerate(clients)]:
        stalls = loopinfo["stalls"]
        lag = loopinfo["lag"]
        causes: Counter[str] = Counter()
        for s in stalls:
            causes[s["cause"]] += s["ms"]
        print(f"  {label} loop: beat lateness p50 {lag['0.5'] * 1000:.1f} p99 "
              f"{lag['0.99'] * 1000:.1f} p99.9 {lag['0.999'] * 1000:.1f} max "
              f"{lag['1.0'] * 1000:.0f} ms; {len(stalls)} stalls > {STALL_MS:.0f} ms, "
              f"{sum(s['ms'] for s in stalls) / 1000:.2f} s in all, by cause (ms) "
              f"{ {k: round(v) for k, v in causes.most_common()} }; gc s "
              f"{[round(g, 2) for g in loopinfo['gc_total']]}")
    # the tail: what was going on while each slow hop was in flight
    if hops:
        cut = max(budget_hop, _pct(hv, 99) * 0.5)
        slow = [h for h in hops if h[2] > cut]
        in_host = sum(host_spans.overlap(a, b) for a, b, _v in slow)
        in_client = sum(max(cs.overlap(a, b) for cs in client_spans) if client_spans else 0
                        for a, b, _v in slow)
        total = sum(v for _a, _b, v in slow)
        print(f"  {len(slow)} hops > {cut * 1000:.0f} ms: of their time {in_host / total:.0%}"
              f" inside host stalls, {in_client / total:.0%} inside a client stall")
        t0 = min(h[0] for h in hops)
        per_s: Counter[int] = Counter(int(a - t0) for a, _b, _v in slow)
        print("  slow hops by second of the run: "
              + " ".join(f"{s}:{per_s[s]}" for s in sorted(per_s)))
    if host and host["stalls"]:
        stacks: Counter[str] = Counter()
        for s in host["stalls"]:
            for stack, n in s["stacks"]:
                stacks[stack] += n
        print("  host stall samples, top stacks:")
        for stack, n in stacks.most_common(12):
            print(f"    {n:5d}  {stack[:260]}")
        worst = sorted(host["stalls"], key=lambda s: -s["ms"])[:8]
        print("  longest host stalls: " + "; ".join(
            f"{s['ms']:.0f} ms {s['cause']} (loop {s['loop_cpu_ms']:.0f}, proc "
            f"{s['proc_cpu_ms']:.0f}, gc {sum(s['gc_ms']):.0f})" for s in worst))
    return {"hops": hops, "drafts": drafts}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--systems", default="shipped")
    parser.add_argument("--paced", type=int, default=1000)
    parser.add_argument("--seconds", type=float, default=40.0)
    parser.add_argument("--interval", type=float, default=10.0)
    parser.add_argument("--clients", type=int, default=2)
    parser.add_argument("--baseline", default=None, help="another tree: 'base-shipped'")
    parser.add_argument("--out", default=None, help="keep the raw records here")
    args = parser.parse_args(argv)
    load._host_main = _host_main
    load._client_main = _client_main
    _raise_fd_limit()
    names = [s for s in args.systems.split(",") if s]
    root = Path(args.out) if args.out else Path(tempfile.mkdtemp(prefix="tails-"))
    results: dict[str, load.Result] = {}
    for name in names:
        out = root / name
        out.mkdir(parents=True, exist_ok=True)
        for old in out.glob("*.json"):
            old.unlink()
        os.environ[OUT_ENV] = str(out)
        server = load.start(name, args.baseline)
        try:
            work = load.Work("paced", server.drafts, 0, 0, args.seconds, args.interval)
            t0 = time.monotonic()
            results[name] = load.measure(server, args.paced, work, args.clients)
            if isinstance(server, load.HostServer):  # the host's records of the window
                took = results[name].seconds
                with contextlib.suppress(Exception):
                    server._pipe.send(f"stop {max(t0, time.monotonic() - took - 1):.3f}")
        finally:
            server.stop()
        analyse(name, out)
    load.report(f"paced, S = {args.paced}", results)
    print(f"raw records: {root}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
