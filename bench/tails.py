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
import gc
import json
import math
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


def _dump(path: Path, watch: Any, extra: dict[str, Any]) -> None:
    """The watch's records as JSON: its stalls, each beat's time and lateness, GC."""
    data = dict(extra)
    data["stalls"] = [s.as_dict() for s in watch.stalls]
    data["beats"] = [[round(at, 4), round(lag, 5)]
                     for at, lag in zip(watch.beats, watch.lags, strict=True)]
    data["gc_spans"] = list(watch.gc_spans)
    path.write_text(json.dumps(data))


def _thread_names() -> dict[str, str]:
    """This process's threads: native id -> name (the loop's thread is "loop")."""
    import threading

    return {str(t.native_id): "loop" if t is threading.main_thread() else t.name
            for t in threading.enumerate()}


def tasks_cpu(pid: int) -> dict[str, float]:
    """CPU seconds of each thread of a process, by native thread id."""
    out: dict[str, float] = {}
    with contextlib.suppress(OSError):
        for task in Path(f"/proc/{pid}/task").iterdir():
            with contextlib.suppress(OSError):
                fields = (task / "stat").read_text().rsplit(")", 1)[1].split()
                out[task.name] = (int(fields[11]) + int(fields[12])) / load.TICK_S
    return out


def _census() -> dict[str, Any]:
    """What the cyclic collector scans: tracked objects per generation (the frozen ones
    apart), and the commonest types and the modules of the classes among them."""
    counts = [len(gc.get_objects(generation=g)) for g in range(3)]
    types: Counter[str] = Counter()
    for obj in gc.get_objects():
        t = type(obj)
        types[f"{t.__module__}.{t.__qualname__}"] += 1
    at = time.monotonic()
    frozen = gc.get_freeze_count()
    # the garbage a full pass finds among what is not frozen (not collected yet), then,
    # everything unfrozen, the garbage the freezing hid from the collector: the start-up
    # freeze's and core/gcpolicy's cost in memory
    began = time.perf_counter()
    found = gc.collect()
    took = time.perf_counter() - began
    gc.unfreeze()
    everything: Counter[str] = Counter()
    for obj in gc.get_objects():
        t = type(obj)
        everything[f"{t.__module__}.{t.__qualname__}"] += 1
    hidden_types: Counter[str] = Counter()
    gc.set_debug(gc.DEBUG_SAVEALL)  # (the garbage kept in gc.garbage, to be counted)
    try:
        hidden = gc.collect()
        for obj in gc.garbage:
            t = type(obj)
            hidden_types[f"{t.__module__}.{t.__qualname__}"] += 1
    finally:
        gc.set_debug(0)
        gc.garbage.clear()
    return {"at": at, "generations": counts, "frozen": frozen,
            "types": types.most_common(25),
            "all": sum(everything.values()), "all_types": everything.most_common(25),
            "found": found, "full_ms": took * 1000, "hidden": hidden,
            "hidden_types": hidden_types.most_common(12), "thresholds": gc.get_threshold()}


def _census_passes() -> list[dict[str, Any]]:
    """(an experiment, TAILS_GC_CENSUS=1) What each generation-1/2 pass is about to scan:
    objects and the references each type's objects hold (a pass visits every one), by
    type. Costs a scan of its own before each pass: the timings are off meanwhile."""
    out: list[dict[str, Any]] = []

    def on_gc(phase: str, info: dict[str, Any]) -> None:
        gen = info.get("generation", 0)
        if phase != "start" or gen == 0:
            return
        objs: Counter[str] = Counter()
        refs: Counter[str] = Counter()
        for g in range(gen + 1):
            for obj in gc.get_objects(generation=g):
                t = type(obj)
                name = f"{t.__module__}.{t.__qualname__}"
                objs[name] += 1
                refs[name] += len(gc.get_referents(obj))
        out.append({"at": time.monotonic(), "gen": gen, "objects": sum(objs.values()),
                    "refs": sum(refs.values()), "top_objects": objs.most_common(12),
                    "top_refs": refs.most_common(12)})

    gc.callbacks.insert(0, on_gc)
    return out


def _collector(host: Any) -> dict[str, Any]:
    """The host's GC policy's counters (core/gcpolicy.py), if its tree has one."""
    c = getattr(host, "collector", None)
    if c is None:
        return {}
    return {"full_passes": c.full_passes, "major_passes": c.major_passes,
            "major_found": c.major_found, "major_ms": c.major_seconds * 1000}


def rss_mb(pid: int) -> float:
    """A process's resident memory (MB), 0 if unknown."""
    with contextlib.suppress(OSError, ValueError, IndexError):
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


def _count_overflow() -> list[float]:
    """When each draft planned in the host's threads was (time.monotonic): the offline
    engine's in-process plans (the overflow past the engine process's in-flight cap, or
    no process)."""
    count: list[float] = []
    with contextlib.suppress(ImportError, AttributeError):
        from hitl_desktop.assistant.offline.engine import OfflineProvider

        plain = OfflineProvider.compact_steps

        def counted(self: Any, *args: Any) -> Any:
            count.append(time.monotonic())
            return plain(self, *args)

        OfflineProvider.compact_steps = counted  # type: ignore[method-assign,assignment]
    return count


def _host_main(pipe: Connection, data_dir: str, copilot: bool, src: str | None = None
               ) -> None:
    """bench.load's host, with a stall watch whose records are written on "stop"."""
    import logging

    _raise_fd_limit()
    _use_tree(src)
    from hitl_desktop.core.links import InviteLink

    logging.basicConfig(level=logging.ERROR)

    async def main() -> None:
        switch = os.environ.get("TAILS_SWITCH")  # an experiment: the GIL's switch interval
        if switch:
            sys.setswitchinterval(float(switch))
        cap = os.environ.get("TAILS_ENGINE_CAP")  # an experiment: the engine process's cap
        if cap:
            from hitl_desktop.assistant.offline import process

            process.MAX_IN_FLIGHT = int(cap)
        sent = os.environ.get("TAILS_ENGINE_SENT")  # an experiment: calls at the worker
        if sent:
            from hitl_desktop.assistant.offline import process

            process.MAX_SENT = int(sent)  # (a tree without it ignores it)
        full_every = os.environ.get("TAILS_GC_FULL_EVERY")  # an experiment: core/gcpolicy
        if full_every:
            from hitl_desktop.core import gcpolicy

            gcpolicy.FULL_EVERY = int(full_every)
        freeze_after = os.environ.get("TAILS_GC_FREEZE_AFTER")  # the same
        if freeze_after:
            from hitl_desktop.core import gcpolicy

            gcpolicy.FREEZE_AFTER = int(freeze_after)
        host = await load.start_bench_host(data_dir, copilot)
        passes = _census_passes() if os.environ.get("TAILS_GC_CENSUS") else []
        overflow = _count_overflow()
        watch = _watch(asyncio.get_running_loop())
        pipe.send({"url": host.url, "admin": InviteLink.parse(host.admin_link).token})
        live: dict[str, Any] = {}
        policy_before: dict[str, Any] = {}
        while await asyncio.get_running_loop().run_in_executor(None, pipe.recv) == "census":
            # the clients still connected: what the freezing hides in a running host
            if getattr(host, "collector", None) is not None:
                policy_before = _collector(host)
                host.collector.stop()
            live = _census()
            pipe.send("done")
        names = _thread_names()
        census_at = min(time.monotonic(), live.get("at", math.inf))  # (not the run's)
        watch.stop()
        policy = policy_before or _collector(host)
        if getattr(host, "collector", None) is not None:
            host.collector.stop()  # (the census unfreezes)
        census = _census()
        out = os.environ.get(OUT_ENV)
        if out:
            _dump(Path(out) / f"host-{os.getpid()}.json", watch,
                  {"threads": names, "overflow": overflow, "census": census,
                   "live_census": live, "collector": policy, "census_at": census_at,
                   "passes": passes})
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
                    await self.customer_line(data)
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


def _client_main(pipe: Connection, kind: str, url: str, specs: list[Any], warm: int,
                 drafts: bool, first: int) -> None:
    """bench.load's client process (rounds), with stamped stats and its own stall watch:
    each round's records go to ``$TAILS_OUT/client-PID-rN.json``."""
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
        hops, done = _Stamped(), _Stamped()
        stats.hops, stats.drafts = hops, done
        pairs = await load.open_pairs(kind, url, specs, stats)
        for p in pairs:
            p.drafts = drafts
        await load.warm_up(pairs[:warm], stats, drafts)
        # the load's own full GC passes (100-265 ms over its 1,000 connections) are the
        # client's pauses, not the host's: keep its connections out of them
        gc.freeze()
        pipe.send("ready")
        while True:
            msg = await loop.run_in_executor(None, pipe.recv)
            if msg == "close":
                break
            work, round_ = msg
            for p in pairs:
                p.sent.clear()
            hops.clear()
            done.clear()
            marks.clear()
            stats.lines = 0
            watch = _watch(loop)
            cpu0, t0 = time.process_time(), time.perf_counter()
            if work.kind == "burst":
                await load.run_burst(pairs, work.lines, round_ * work.lines)
            else:
                await load.run_paced(pairs, work.seconds, work.interval, first, round_)
            cpu, wall = time.process_time() - cpu0, time.perf_counter() - t0
            watch.stop()
            out = os.environ.get(OUT_ENV)
            if out:
                _dump(Path(out) / f"client-{os.getpid()}-r{round_}.json", watch, {
                    "hops": list(zip(hops.at, hops, strict=True)),
                    "drafts": list(zip(done.at, done, strict=True)), "marks": marks,
                    "cpu": cpu, "wall": wall})
            pipe.send({"hops": list(hops), "drafts": list(done), "lines": stats.lines,
                       "cpu": cpu, "wall": wall})
        await asyncio.gather(*(p.close() for p in pairs))

    asyncio.run(main())


class Fleet(load.Fleet):
    """bench.load's system with the host's threads' CPU taken around each round."""

    def __init__(self, name: str, server: load.Server, sessions: int, clients: int) -> None:
        super().__init__(name, server, sessions, clients)
        self.rounds: list[dict[str, Any]] = []

    def run(self, work: load.Work, round_: int, everyone: list[int],
            profile: str | None = None, profile_clients: bool = False) -> load.Result:
        pid = self.server.pid
        threads0, procs0, rss0 = tasks_cpu(pid), load.server_cpu(pid), rss_mb(pid)
        result = super().run(work, round_, everyone, profile, profile_clients)
        threads1, procs1 = tasks_cpu(pid), load.server_cpu(pid)
        self.rounds.append({"rss": (rss0, rss_mb(pid)),
            "threads": {t: v - threads0.get(t, 0.0) for t, v in threads1.items()},
            "children": sum(v - procs0.get(p, 0.0) for p, v in procs1.items() if p != pid),
            "result": result})
        return result


    def close(self) -> None:
        """The host's census while the clients are still connected, then bench.load's
        close."""
        pipe = getattr(self.server, "_pipe", None)
        if pipe is not None:
            with contextlib.suppress(Exception):
                pipe.send("census")
                if pipe.poll(120):
                    pipe.recv()
        super().close()


# ----------------------------------------------------------------------------- analysis


def _pct(values: list[float], q: float) -> float:
    return load.pct(values, q)


class Spans:
    """Sorted, merged (start, end) intervals: how much of a span lies inside them?"""

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


def _in(stalls: list[dict[str, Any]], t0: float, t1: float) -> list[dict[str, Any]]:
    return [s for s in stalls if t0 <= s["start"] <= t1]


def _spans(stalls: list[dict[str, Any]]) -> Spans:
    return Spans([(s["start"], s["start"] + 0.005 + s["ms"] / 1000) for s in stalls])


def _loop_line(label: str, beats: list[list[float]], stalls: list[dict[str, Any]]) -> str:
    lags = sorted(lag for _at, lag in beats) or [0.0]

    def q(p: float) -> float:
        return lags[min(len(lags) - 1, int(p * len(lags)))] * 1000

    causes: Counter[str] = Counter()
    for st in stalls:
        causes[st["cause"]] += st["ms"]
    return (f"  {label} loop: beat lateness p50 {q(0.5):.1f} p99 {q(0.99):.1f} p99.9 "
            f"{q(0.999):.1f} max {q(1.0):.0f} ms; {len(stalls)} stalls > {STALL_MS:.0f} ms, "
            f"{sum(st['ms'] for st in stalls) / 1000:.2f} s in all, by cause (ms) "
            f"{ {k: round(v) for k, v in causes.most_common()} }")


def analyse(name: str, out: Path, round_: int, fleet: Fleet | None,
            budget_hop: float = 0.05, budget_draft: float = 0.5, first_s: float = 10.0
            ) -> None:
    """What one round of one system says about its tail (printed)."""
    host_files = list(out.glob("host-*.json"))
    host = json.loads(host_files[0].read_text()) if host_files else None
    clients = [json.loads(p.read_text()) for p in sorted(out.glob(f"client-*-r{round_}.json"))]
    hops = [(at - v, at, v) for c in clients for at, v in c["hops"]]
    if not hops:
        print(f"\n== {name} round {round_ + 1}: no hops")
        return
    drafts = [(at - v, at, v) for c in clients for at, v in c["drafts"]]
    marks = [m for c in clients for m in c["marks"]]
    t0, t1 = min(h[0] for h in hops), max(h[1] for h in hops) + 2.0
    host_stalls = _in(host["stalls"], t0, t1) if host else []
    print(f"\n== {name} round {round_ + 1}: {len(hops)} hops, {len(drafts)} drafts over "
          f"{t1 - t0:.0f} s")
    hv = [h[2] for h in hops]
    print(f"  hop p50 {statistics.median(hv) * 1000:.1f} p90 {_pct(hv, 90) * 1000:.1f} "
          f"p99 {_pct(hv, 99) * 1000:.1f} max {max(hv) * 1000:.0f} ms; "
          f"> {budget_hop * 1000:.0f} ms: {sum(v > budget_hop for v in hv) / len(hv):.1%}")
    if drafts:
        dv = [d[2] for d in drafts]
        print(f"  draft p50 {statistics.median(dv) * 1000:.0f} p90 {_pct(dv, 90) * 1000:.0f} "
              f"p99 {_pct(dv, 99) * 1000:.0f} max {max(dv) * 1000:.0f} ms; > "
              f"{budget_draft * 1000:.0f} ms: {sum(v > budget_draft for v in dv) / len(dv):.1%}")
    if drafts:  # the round's first interval (each session's first line of the round; in
        # a system's first round, each session's first turn: two engine calls and a tool)
        cut = t0 + first_s
        split = [([h[2] for h in hops if (h[0] < cut) == early], [d[2] for d in drafts
                  if (d[0] < cut) == early]) for early in (True, False)]
        print(f"  lines in the first {first_s:.0f} s / after: " + " / ".join(
            f"hop p99 {_pct(hs, 99) * 1000:.0f} draft p99 {_pct(ds, 99) * 1000:.0f} ms"
            if hs and ds else "-" for hs, ds in split))
    if marks:  # line -> draft.started -> first delta -> completed
        to_start = [st - line for line, st, _f in marks if st >= line] or [0.0]
        to_first = [f - st for _line, st, f in marks if f and st] or [0.0]
        print(f"  line -> draft.started p50 {statistics.median(to_start) * 1000:.0f} p99 "
              f"{_pct(to_start, 99) * 1000:.0f} ms; draft.started -> first delta p50 "
              f"{statistics.median(to_first) * 1000:.0f} p99 {_pct(to_first, 99) * 1000:.0f}"
              f" ms")
    if fleet is not None and round_ < len(fleet.rounds) and host is not None:
        info = fleet.rounds[round_]
        lines = max(1, info["result"].lines)
        by_name: Counter[str] = Counter()
        for tid, cpu in info["threads"].items():
            by_name[host["threads"].get(tid, "?")] += cpu
        wall = info["result"].seconds
        print("  host CPU ms/line: " + ", ".join(
            f"{k} {v / lines * 1000:.2f}" for k, v in by_name.most_common() if v > 0.005)
            + f", engine process {info['children'] / lines * 1000:.2f}; "
            f"host process {sum(by_name.values()) / wall:.0%} of a core, engine "
            f"{info['children'] / wall:.0%}; drafts planned in the host's threads: "
            f"{sum(t0 <= t <= t1 for t in host['overflow'])}")
    if fleet is not None and round_ < len(fleet.rounds):
        rss = fleet.rounds[round_]["rss"]
        print(f"  host RSS {rss[0]:.0f} -> {rss[1]:.0f} MB over the round")
    if host and "census" in host and round_ == 0:
        c = host["census"]
        print(f"  host GC census at the end: tracked by generation {c['generations']}, "
              f"frozen {c['frozen']}; top types: "
              + ", ".join(f"{k} {v}" for k, v in c["types"][:12]))
        if "hidden" in c:
            print(f"  all tracked (frozen too) {c['all']}: top types "
                  + ", ".join(f"{k} {v}" for k, v in c["all_types"][:10]))
            print(f"  a full pass over the unfrozen found {c['found']} unreachable in "
                  f"{c['full_ms']:.0f} ms; then, all unfrozen, {c['hidden']} more (garbage the"
                  f" freezing hid): " + ", ".join(f"{k} {v}" for k, v in c["hidden_types"]))
        lc = host.get("live_census") or {}
        if "hidden" in lc:
            print(f"  with the clients connected: frozen {lc['frozen']}, all tracked "
                  f"{lc['all']}; a full pass over the unfrozen found {lc['found']}; then, "
                  f"all unfrozen, {lc['hidden']} more (garbage the freezing hid): "
                  + ", ".join(f"{k} {v}" for k, v in lc["hidden_types"][:8]))
        if host.get("collector"):
            print(f"  GC policy: {host['collector']}")
    if host and host.get("gc_spans"):
        spans = [sp for sp in host["gc_spans"]
                 if t0 <= sp[0] <= min(t1, host.get("census_at", t1))]
        print("  host GC passes in the round (count, total ms, max ms): " + ", ".join(
            f"gen{g} {sum(1 for sp in spans if sp[2] == g)}, "
            f"{sum((sp[1] - sp[0]) for sp in spans if sp[2] == g) * 1000:.0f}, "
            f"{max([(sp[1] - sp[0]) for sp in spans if sp[2] == g] or [0]) * 1000:.0f}"
            for g in range(3)))
    if host:
        print(_loop_line("host", [b for b in host["beats"] if t0 <= b[0] <= t1], host_stalls))
    for i, c in enumerate(clients):
        print(_loop_line(f"client{i}", c["beats"], c["stalls"])
              + f"; CPU {c['cpu'] / max(1e-9, c['wall']):.0%} of a core")
    # the tail: what was going on while each slow hop was in flight
    cut = max(budget_hop, _pct(hv, 99) * 0.5)
    slow = [h for h in hops if h[2] > cut]
    if slow:
        host_spans = _spans(host_stalls)
        client_spans = [_spans(c["stalls"]) for c in clients]
        in_host = sum(host_spans.overlap(a, b) for a, b, _v in slow)
        in_client = sum(max(cs.overlap(a, b) for cs in client_spans) if client_spans else 0
                        for a, b, _v in slow)
        total = sum(v for _a, _b, v in slow)
        print(f"  {len(slow)} hops > {cut * 1000:.0f} ms: of their time {in_host / total:.0%}"
              f" inside host stalls, {in_client / total:.0%} inside a client stall")
        per_s: Counter[int] = Counter(int(a - t0) for a, _b, _v in slow)
        print("  slow hops by second of the round: "
              + " ".join(f"{sec}:{per_s[sec]}" for sec in sorted(per_s)))
    if host_stalls:
        stacks: Counter[str] = Counter()
        for st in host_stalls:
            for stack, n in st["stacks"]:
                stacks[stack] += n
        print("  host stall samples, top stacks:")
        for stack, n in stacks.most_common(10):
            print(f"    {n:5d}  {stack[:240]}")
        worst = sorted(host_stalls, key=lambda st: -st["ms"])[:8]
        print("  longest host stalls: " + "; ".join(
            f"{st['ms']:.0f} ms {st['cause']} (loop {st['loop_cpu_ms']:.0f}, proc "
            f"{st['proc_cpu_ms']:.0f}, gc {sum(st['gc_ms']):.0f})" for st in worst))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--systems", default="shipped",
                        help="bench.load's systems; NAME+VAR=VALUE+... sets environment "
                             "variables for that system's host (e.g. an experiment's switch)")
    parser.add_argument("--paced", type=int, default=1000)
    parser.add_argument("--seconds", type=float, default=40.0)
    parser.add_argument("--interval", type=float, default=10.0)
    parser.add_argument("--clients", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--baseline", default=None,
                        help="another tree, for the systems 'base-shipped' and 'base'")
    parser.add_argument("--out", default=None, help="keep the raw records here")
    args = parser.parse_args(argv)
    load._host_main = _host_main
    load._client_main = _client_main
    _raise_fd_limit()
    names = [s for s in args.systems.split(",") if s]
    root = Path(args.out) if args.out else Path(tempfile.mkdtemp(prefix="tails-"))
    fleets: dict[str, Fleet] = {}
    work = load.Work("paced", 0, args.seconds, args.interval)
    rounds: list[tuple[list[str], dict[str, load.Result]]] = []
    try:
        for name in names:
            out = root / name
            out.mkdir(parents=True, exist_ok=True)
            for old in out.glob("*.json"):
                old.unlink()
            os.environ[OUT_ENV] = str(out)  # the host's and the clients' (spawned now)
            system, *env = name.split("+")  # e.g. shipped+TAILS_ENGINE_CAP=1000
            saved = dict(os.environ)
            os.environ.update(kv.split("=", 1) for kv in env)
            try:
                fleets[name] = Fleet(name, load.start(system, args.baseline), args.paced,
                                     args.clients)
            finally:
                os.environ.clear()
                os.environ.update(saved)
        for r, order in enumerate(load.orders(names, args.rounds, "alternate", None)):
            results: dict[str, load.Result] = {}
            for name in order:
                print(f"  {time.strftime('%H:%M:%S')} round {r + 1}: {name}, load "
                      f"{os.getloadavg()[0]:.1f}", flush=True)
                results[name] = fleets[name].run(work, r, [f.server.pid for f in
                                                           fleets.values()])
            load.report(f"paced, S = {args.paced}, round {r + 1} (order {order})", results)
            rounds.append((order, results))
    finally:
        for fleet in fleets.values():
            fleet.close()  # the host writes its records as it stops
    for r, (order, _results) in enumerate(rounds):
        for name in order:
            analyse(name, root / name, r, fleets.get(name), first_s=args.interval)
    load.summarize(f"paced, S = {args.paced}", rounds)
    print(f"raw records: {root}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
