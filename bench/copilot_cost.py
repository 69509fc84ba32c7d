"""What one offline co-pilot turn costs the host: CPU, frames and bytes per draft.

The host runs as shipped (``start_host`` + ``copilot_factory``, the offline engine
paced at ``offline_delay_ms``) in its own process; this process plays customers and
agents over real WebSockets. Each customer line of ``tests/data/offline_set_a.jsonl``
is sent into a verified session and the agent waits for the draft's
``draft.completed``. The host reports its own CPU time (every thread:
``time.process_time``) before and after, so

    host CPU per draft = (CPU with the co-pilot - CPU of the same lines relayed
                          by the chat-only host) / drafts

is the co-pilot's cost per turn (budget: <= 2 ms, issue 18). Both hosts run in the
same invocation, alternating rounds, so both see the same machine. With the offline
engine in its own process (``app.services.start_engine_process``, the default) that
process's CPU (``/proc/<pid>/stat``, Linux) is printed apart: ENGINE PROCESS. Also
printed: the frames and bytes each agent receives per draft (``draft.delta`` and all).

    python -m bench.copilot_cost            # 60 drafts per round, 3 rounds
    python -m bench.copilot_cost --quick    # CI-sized
    BENCH_PROFILE=/tmp/host.prof python -m bench.copilot_cost --only offline
                     (cProfile of the host, after the warm-up round: wall time; on
                      Python 3.12 it records every thread, not the loop's alone)
    BENCH_ENGINE_PROCESS=0 ...   the offline engine in the host's threads, not its process
    BENCH_COUNT=1 ...   events per line in the host (loop iterations, timers, writes, ...)
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import multiprocessing as mp
import os
import statistics
import sys
import tempfile
import time
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from websockets.asyncio.client import ClientConnection  # noqa: E402

from bench.relay import _frame, _open  # noqa: E402
from bench.turn import FakeInThread  # noqa: E402
from hitl_desktop.core.links import InviteLink  # noqa: E402
from tests.support.fake_openai import replay_turns  # noqa: E402

LINES_FILE = REPO / "tests" / "data" / "offline_set_a.jsonl"
BUDGET_MS = 2.0
LINES_PER_SESSION = 4  # a short conversation, then the next customer


def _host_main(pipe: Connection, data_dir: str, copilot: str | None) -> None:
    """A host as shipped; answers "cpu" with its CPU seconds until "stop"."""
    import logging

    from hitl_desktop.app.services import copilot_factory, start_host
    from hitl_desktop.config import Settings, resolve_paths
    from hitl_desktop.host.relay import RelayConfig

    logging.basicConfig(level=logging.WARNING)

    async def main() -> None:
        paths = resolve_paths(data_dir, Path(data_dir) / "config")
        settings = Settings(model="gpt-4.1-mini")
        if os.environ.get("BENCH_ENGINE_PROCESS") == "0":  # the offline engine in host threads
            settings = Settings(model="gpt-4.1-mini", extra={"offline_engine_process": False})
        factory = copilot_factory(paths, settings, provider=copilot) if copilot else None
        if factory is not None and os.environ.get("BENCH_ABLATE") == "publish":
            # what the co-pilot costs without the relay's publish path (an ablation: only
            # draft.completed, which the agent waits for, is published)
            made = factory

            def factory(outbox: Any) -> Any:  # type: ignore[misc]
                publish = outbox.publish

                async def only_completed(sid: str, payload: Any, **kw: Any) -> int:
                    if type(payload).__name__ == "DraftCompleted":
                        return int(await publish(sid, payload, **kw))
                    return 0

                outbox.publish = only_completed
                return made(outbox)
        cfg = RelayConfig(rate=1e9, burst=1e9, max_errors=10**9)
        host = await start_host(paths, settings, port=0, config=cfg, copilot_factory=factory)
        pipe.send({"url": host.url, "admin": InviteLink.parse(host.admin_link).token})
        gc_time = [0.0, 0.0]
        if os.environ.get("BENCH_GC"):
            import gc

            def on_gc(phase: str, info: dict[str, int]) -> None:
                if phase == "start":
                    gc_time[1] = time.thread_time()
                else:
                    gc_time[0] += time.thread_time() - gc_time[1]
            gc.callbacks.append(on_gc)
        loop = asyncio.get_running_loop()
        counts = _count_events(loop, host) if os.environ.get("BENCH_COUNT") else {}
        prof = None
        while (cmd := await loop.run_in_executor(None, pipe.recv)) != "stop":
            # back on the loop's thread here: thread_time is the loop's own CPU
            if cmd == "cpu":
                import resource

                ru = resource.getrusage(resource.RUSAGE_THREAD)  # the loop's: user / kernel
                engine, codec = _engine_cpu(host), _engine_codec(host)
                pipe.send((time.process_time(), time.thread_time(),
                           {**_thread_cpu(), "loop-kernel": ru.ru_stime, "gc": gc_time[0],
                            **({"ENGINE PROCESS": engine} if engine is not None else {}),
                            **({"(engine-process: pickling)": codec}
                               if codec is not None else {}),
                            **{f"#{k}": float(v) for k, v in counts.items()}}))
            elif cmd == "profile" and profile and copilot and prof is None:
                import cProfile

                prof = cProfile.Profile()
                prof.enable()  # after the warm-up round
        if prof is not None:
            prof.disable()
            prof.dump_stats(str(profile))
        await host.stop()

    profile = os.environ.get("BENCH_PROFILE")
    asyncio.run(main())


def _count_events(loop: asyncio.AbstractEventLoop, host: Any) -> dict[str, int]:
    """BENCH_COUNT=1: count, in the host process, what each draft costs in events (loop
    iterations, callbacks run, timers, tasks, wake-ups from other threads, socket
    writes, group commits, store jobs): printed per line as ``#name``. Wraps the
    loop's and transports' methods, so CPU figures of such a run are not comparable."""
    from asyncio import selector_events

    from hitl_desktop.core.threads import StoreWorker

    counts: dict[str, int] = {}

    def wrap(obj: Any, name: str, key: str) -> None:
        orig = getattr(obj, name)

        def counted(*a: Any, **kw: Any) -> Any:
            counts[key] = counts.get(key, 0) + 1
            return orig(*a, **kw)
        setattr(obj, name, counted)

    wrap(loop, "_run_once", "loop iterations")
    wrap(loop, "call_at", "timers")
    wrap(loop, "call_soon", "call_soon")
    wrap(loop, "call_soon_threadsafe", "wake-ups from threads")
    wrap(loop, "create_task", "tasks")
    wrap(vars(selector_events)["_SelectorSocketTransport"], "write", "socket writes")
    wrap(StoreWorker, "_put", "store jobs")
    relay_log = host.relay.log
    handed = relay_log.on_group_commit

    def on_group_commit(lines: list[tuple[object, str]], error: Any) -> None:
        counts["group commits"] = counts.get("group commits", 0) + 1
        counts["frames in groups"] = counts.get("frames in groups", 0) + len(lines)
        handed(lines, error)
    relay_log.on_group_commit = on_group_commit
    return counts


def _engine_codec(host: Any) -> float | None:
    """The host thread's CPU seconds pickling requests to and answers from the offline
    engine's process (``EngineProcess.codec_s``), when it has one."""
    provider = getattr(getattr(host.relay, "copilot", None), "provider", None)
    codec = getattr(getattr(provider, "process", None), "codec_s", None)
    return float(codec) if codec is not None else None


def _engine_cpu(host: Any) -> float | None:
    """CPU seconds (user + system) of the offline engine's own process, when it has one
    and it is up (``/proc/<pid>/stat``: Linux), else None."""
    provider = getattr(getattr(host.relay, "copilot", None), "provider", None)
    pid = getattr(getattr(provider, "process", None), "pid", None)
    if pid is None:
        return None
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _thread_cpu() -> dict[str, float]:
    """CPU seconds per kind of thread of this process (the loop's, each store's worker,
    the default executor's), so a run says where the off-loop CPU goes."""
    import re
    import threading

    out: dict[str, float] = {}
    for t in threading.enumerate():
        if t.ident is None:
            continue
        try:
            cpu = time.clock_gettime(time.pthread_getcpuclockid(t.ident))
        except (OSError, AttributeError):
            continue
        name = re.sub(r"[_-]?\d+(_\d+)?$", "", t.name) or t.name
        out[name] = out.get(name, 0.0) + cpu
    return out


class Pair:
    """A verified customer and an agent on one session; the agent counts what it gets."""

    def __init__(self, sid: str, cust: ClientConnection, agent: ClientConnection) -> None:
        self.sid, self.cust, self.agent = sid, cust, agent
        self.frames = 0
        self.bytes = 0
        self.deltas = 0
        self.types: dict[str, int] = {}
        self.waiting: tuple[str, asyncio.Future[float]] | None = None
        self.tasks = [asyncio.ensure_future(self._read()),
                      asyncio.ensure_future(self._drain())]

    async def _read(self) -> None:
        async for raw in self.agent:
            text = raw if isinstance(raw, str) else raw.decode()
            self.frames += 1
            self.bytes += len(text)
            kind = text[15:40]
            if "draft.delta" in kind:
                self.deltas += 1
            if os.environ.get("BENCH_TYPES"):
                t = json.loads(text)["type"]
                if t == "assistant.status" and os.environ.get("BENCH_TYPES") == "2":
                    print(round(time.perf_counter(), 2), self.sid[-6:], text[-160:])
                self.types[t] = self.types.get(t, 0) + 1
            w = self.waiting
            if w is not None and f'"type":"{w[0]}"' in text[:40] and not w[1].done():
                w[1].set_result(time.perf_counter())

    async def _drain(self) -> None:
        async for _ in self.cust:
            pass

    async def say(self, text: str, until: str) -> float:
        fut: asyncio.Future[float] = asyncio.get_running_loop().create_future()
        self.waiting = (until, fut)
        t0 = time.perf_counter()
        await self.cust.send(_frame("chat.send", {"text": text}, self.sid))
        try:
            return await asyncio.wait_for(fut, 30) - t0
        finally:
            self.waiting = None

    async def close(self) -> None:
        await asyncio.gather(self.cust.close(), self.agent.close())
        for t in self.tasks:
            t.cancel()


async def _pairs(url: str, admin_token: str, customers: list[str]) -> list[Pair]:
    """One verified session per customer id, created over one admin connection that is
    closed again before anything is measured (a desk connection replays every open
    session at hello: issue 18's desk-hello cost, measured by bench/desk_hello.py)."""
    admin, _ = await _open(url, admin_token)
    links = []
    for customer in customers:
        await admin.send(_frame("session.create", {"customer_id": customer}))
        while True:
            msg = json.loads(await admin.recv())
            if msg["type"] == "session.created":
                links.append(msg["data"])
                break
    await admin.close()
    out = []
    for d in links:
        cust, _ = await _open(url, InviteLink.parse(d["customer_link"]).token)
        agent, _ = await _open(url, InviteLink.parse(d["agent_link"]).token)
        out.append(Pair(d["session_id"], cust, agent))
    return out


def _lines(n: int) -> list[tuple[str, str]]:
    rows = [json.loads(x) for x in LINES_FILE.read_text("utf-8").splitlines() if x.strip()]
    rows = [r for r in rows if not r.get("history")]
    out = [(str(r.get("customer_id") or "CUST1001"), str(r["message"])) for r in rows]
    return (out * (n // max(1, len(out)) + 1))[:n]


async def _round(host: dict[str, Any], pipe: Connection, lines: list[tuple[str, str]],
                 until: str, parallel: int) -> dict[str, Any]:
    """Drive ``lines`` through fresh sessions, ``parallel`` conversations at a time; the
    host's CPU is read around the conversations only (sessions are made before)."""
    groups = [lines[i:i + LINES_PER_SESSION] for i in range(0, len(lines), LINES_PER_SESSION)]
    pairs = await _pairs(host["url"], host["admin"], [g[0][0] for g in groups])
    latencies: list[float] = []
    await asyncio.sleep(0.5)  # greetings and start-up frames settle before we count
    pipe.send("cpu")
    cpu0, loop0, threads0 = pipe.recv()
    f0, b0, d0 = (sum(getattr(p, k) for p in pairs) for k in ("frames", "bytes", "deltas"))

    async def talk(pair: Pair, group: list[tuple[str, str]]) -> None:
        for _, text in group:
            latencies.append(await pair.say(text, until))
            await asyncio.sleep(0.05)  # the turn's last frames (turn.ended, status)

    for start in range(0, len(groups), parallel):
        await asyncio.gather(*(talk(p, g) for p, g in zip(pairs[start:start + parallel],
                                                          groups[start:start + parallel],
                                                          strict=True)))
    await asyncio.sleep(0.2)
    pipe.send("cpu")
    cpu1, loop1, threads1 = pipe.recv()
    out: dict[str, Any] = {"cpu": cpu1 - cpu0, "loop": loop1 - loop0, "n": float(len(lines)),
           "threads": {k: v - threads0.get(k, 0.0) for k, v in threads1.items()},
           "frames": sum(p.frames for p in pairs) - f0,
           "bytes": sum(p.bytes for p in pairs) - b0,
           "deltas": sum(p.deltas for p in pairs) - d0,
           "p50": statistics.median(latencies),
           "p99": sorted(latencies)[min(len(latencies) - 1, round(0.99 * (len(latencies) - 1)))]}
    if os.environ.get("BENCH_TYPES"):
        types: dict[str, int] = {}
        for p in pairs:
            for k, v in p.types.items():
                types[k] = types.get(k, 0) + v
        print("  frames to the agent per line:", ", ".join(
            f"{k} {v / len(lines):.2f}" for k, v in sorted(types.items(), key=lambda kv: -kv[1])))
    for p in pairs:  # closed sessions are not replayed to the next round's admin
        await p.agent.send(_frame("session.close", {}, p.sid))
    await asyncio.sleep(0.2)
    await asyncio.gather(*(p.close() for p in pairs))
    return out


def _start(ctx: Any, tmp: str, copilot: str | None) -> tuple[Any, Connection, dict[str, Any]]:
    parent, child = ctx.Pipe()
    # not daemonic: the offline engine starts a process of its own (spawn)
    proc = ctx.Process(target=_host_main, args=(child, tmp, copilot), daemon=False)
    proc.start()
    return proc, parent, parent.recv()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="CI-sized run")
    parser.add_argument("--drafts", type=int, default=60, help="drafts per round")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--parallel", type=int, default=4, help="conversations at a time")
    parser.add_argument("--only", choices=("offline", "relay"), default=None,
                        help="run only the co-pilot host or only the chat-only host")
    parser.add_argument("--engine", choices=("offline", "openai"), default="offline",
                        help="openai: the OpenAI engine against the fake API replaying "
                             "tests/data/openai-recorded/file-search-{1,2}.jsonl")
    parser.add_argument("--event-delay", type=float, default=0.002,
                        help="openai: seconds between replayed events")
    args = parser.parse_args()
    if args.quick:
        args.drafts, args.rounds = 16, 1
    ctx = mp.get_context("spawn")
    lines = _lines(args.drafts)
    results: dict[str, list[dict[str, Any]]] = {"offline": [], "relay": []}
    with tempfile.TemporaryDirectory() as t1, tempfile.TemporaryDirectory() as t2:
        hosts = {}
        fake = None
        streams = []
        if args.engine == "openai":
            fake = FakeInThread()
            api = fake.__enter__()
            streams = [replay_turns(REPO / "tests" / "data" / "openai-recorded" / name,
                                    delay=args.event_delay)[0]
                       for name in ("file-search-1.jsonl", "file-search-2.jsonl")]
            served = itertools.count()
            api.responder = lambda body: streams[next(served) % len(streams)]
            # the host's OpenAI engine reaches the fake through the SDK's own variables
            os.environ["OPENAI_API_KEY"] = api.api_key
            os.environ["OPENAI_BASE_URL"] = api.base_url
        if args.only in (None, "offline"):
            hosts["offline"] = _start(ctx, t1, args.engine)
        if args.only in (None, "relay"):
            hosts["relay"] = _start(ctx, t2, None)
        try:
            for n in range(args.rounds + 1):  # round 0 warms up (imports, schemas, caches)
                for name, (_proc, pipe, info) in hosts.items():
                    until = "draft.completed" if name == "offline" else "chat.message"
                    if n == 1:
                        pipe.send("profile")
                    got = asyncio.run(_round(info, pipe, lines if n else lines[:8], until,
                                             args.parallel))
                    if n:
                        results[name].append(got)
        finally:
            for proc, pipe, _ in hosts.values():
                pipe.send("stop")
                proc.join(30)
                if proc.is_alive():
                    proc.kill()
            if fake is not None:
                fake.__exit__(None, None, None)
    per: dict[str, list[float]] = {}
    for name, rounds in results.items():
        if not rounds:
            continue
        per[name] = [r["cpu"] / r["n"] * 1000 for r in rounds]
        on_loop = statistics.median(r["loop"] / r["n"] * 1000 for r in rounds)
        last = rounds[-1]
        label = args.engine if name == "offline" else "relay"
        print(f"{label:8s} host CPU per line {statistics.median(per[name]):6.2f} ms "
              f"(rounds: {', '.join(f'{x:.2f}' for x in per[name])}; "
              f"{on_loop:.2f} ms of it on the loop's thread)   "
              f"agent gets {last['frames'] / last['n']:5.1f} frames "
              f"({last['deltas'] / last['n']:4.1f} draft.delta), "
              f"{last['bytes'] / last['n'] / 1024:5.1f} KB per line; "
              f"line -> {'draft.completed' if name == 'offline' else 'agent'} "
              f"p50 {last['p50'] * 1000:6.1f} ms  p99 {last['p99'] * 1000:6.1f} ms")
        threads = {k: statistics.median(r["threads"].get(k, 0.0) / r["n"] * 1000
                                        for r in rounds) for k in last["threads"]}
        print("         per thread, ms per line: " + ", ".join(
            f"{k} {v:.2f}" for k, v in sorted(threads.items(), key=lambda kv: -kv[1])
            if v >= 0.01 and not k.startswith("#")))
        if any(k.startswith("#") for k in threads):  # BENCH_COUNT: events, not ms
            print("         events per line: " + ", ".join(
                f"{k[1:]} {v / 1000:.1f}" for k, v in threads.items() if k.startswith("#")))
    if "offline" in per and "relay" in per:
        costs = [o - r for o, r in zip(per["offline"], per["relay"], strict=True)]
        cost = statistics.median(costs)
        ratio = statistics.median(per["offline"]) / statistics.median(per["relay"])
        if args.engine == "openai":
            events = statistics.fmean(len(s.events) for s in streams)
            print(f"co-pilot CPU per turn (openai - relay-only): {cost:.2f} ms "
                  f"[{min(costs):.2f} .. {max(costs):.2f}] = {cost / events * 1000:.0f} us "
                  f"per provider event ({events:.0f} events a turn)   "
                  f"ratio to the relayed line {ratio:.1f}x")
            return 0
        ok = cost <= BUDGET_MS
        engine = [r["threads"].get("ENGINE PROCESS", 0.0) / r["n"] * 1000
                  for r in results["offline"]]
        print(f"co-pilot CPU per offline draft (offline - relay-only, per round): "
              f"HOST PROCESS {cost:.2f} ms  [{min(costs):.2f} .. {max(costs):.2f}]   "
              f"ratio to the relayed line {ratio:.1f}x   "
              f"(budget <= {BUDGET_MS:g} ms: {'OK' if ok else 'MISSED'});   "
              f"ENGINE PROCESS {statistics.median(engine):.2f} ms "
              f"[{min(engine):.2f} .. {max(engine):.2f}] (0: the engine ran in the host); "
              f"both {cost + statistics.median(engine):.2f} ms")
        return 0 if ok else 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
