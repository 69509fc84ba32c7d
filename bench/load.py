"""The product under load, next to what a web team would build, in one run, same client.

Systems (each a server process of its own; the same client code drives them all, from
``--clients N`` processes, each driving S/N sessions; the default is one):

* ``shipped`` — the host as shipped: ``start_host`` + ``copilot_factory`` with the offline
  co-pilot paced as in every mode (a draft per customer line), durable log;
* ``relay``   — the same host with its co-pilot off (chat only);
* ``socketio``— a socket.io 4 relay in Node (``bench/peers/sio_relay.mjs``: rooms, nothing
  on disk); spoken to in Engine.IO 4 framing over a plain WebSocket;
* ``ws``      — the floor: a bare ``ws`` forwarder in Node (``bench/peers/ws_relay.mjs``).
* ``pyws``    — the Python floor: the same forwarder on ``websockets``' asyncio server
  (``bench/peers/py_ws_relay.py``): what Python itself costs here, with no disk, no JSON;
* ``picows``  — the same on ``picows`` (Cython framing; ``pip install picows``, not a
  project dependency): the cheapest Python forwarder we know of;
* ``picows-log`` — a durable floor on picows (``bench/peers/picows_peer.py``): each line
  parsed, its ``chat.message`` frame filled from the host log's template, logged in the
  tick's SQLite transaction and relayed after the commit, nothing else of the host's work;
  ``picows-nolog`` the same without the log; ``picows-journal`` one append-only write a line,
  relayed at once.

Workloads, each on S sessions (a customer socket and an agent socket each):

* ``burst`` — every customer sends L lines one after the other (the next when the agent
  got the last), all sessions at once: hop p50/p99 (customer send -> agent receipt) and
  the server's CPU per relayed line (``/proc/PID/stat``, the same for Node and Python);
* ``paced`` — realistic: each customer a line every ~10 s (random phase, think time
  0.5-1.5x; the same schedule for every system: seeded per session and round), each
  agent answering every line (the shipped host's agents send the draft when
  ``draft.completed`` arrives; the relay-only host's and the peers' agents answer at
  once): hop p99 and, for the shipped host, line -> ``draft.completed`` p99 (issue 18:
  < 50 ms and < 500 ms at 1,000 sessions). With ``shipped`` and ``relay`` in the same
  run (and ``base-shipped`` and ``base`` with ``--baseline``) each round also prints the
  co-pilot's CPU per draft: the shipped host's minus the relay-only host's, both having
  relayed the same lines to the same sessions (host process, loop thread, engine
  process; issue 18's budget: <= 2 ms host CPU per offline draft), and this tree's over
  the baseline's.

Every system is started and its sessions opened first; then come the rounds (``--rounds``):
in each, every system runs the workload once, one after the other, each only when the one
before it has gone idle, in an order that alternates from round to round (``--order``).
On a shared machine the load drifts over a run and a system measured right after another
is not measured like it, so a single pass favours one position (session 6: the same
tree as 'base' and 'relay' gave p50 ratios 0.66-2.14x in sequential passes). Every
round's figures are printed with their ratios to socket.io and to the floor of the same
round; the summary gives each pair's per-round ratios, marked with which ran first, and
their median. Two effects the rounds expose: socket.io's first few thousand lines in a
fresh Node process cost it ~2x the CPU of later ones (V8's JIT warming up; the old
one-pass bench measured it cold: use ``--warmup 1`` to compare warm with warm), and a
host's log keeps every round's lines (``--fresh`` restarts every system per round). At
S = 1,000 the relay's CPU per line rose ~30 % over four rounds until session 7, most of
it the desk search index's (session, seq) index (dropped: flat now); what still rises a
little is the log's own (session, seq) index, one WAL page per line once each session's
history fills a leaf (its first round or two).

The Node peers need ``bench/peers/node_modules`` (``npm ci`` in bench/peers); without Node
or them the peers are skipped with a message and the ratios left out.

    python -m bench.load                  # S = 1, 100, 1000 burst; 1000 paced (~6 min)
    python -m bench.load --quick          # S = 1, 20 burst; 20 paced at 2 s (~1 min)
    python -m bench.load --systems relay,socketio --burst 100 --paced 0
    python -m bench.load --systems relay,socketio --burst 1000 --paced 0 --clients 2 \
        --rounds 6 --baseline /tmp/base     # this tree vs another, interleaved
    python -m bench.load --systems relay,shipped --burst "" --paced 1000 --clients 2 \
        --rounds 2                          # the co-pilot's CPU per draft under load
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import importlib.util
import json
import math
import multiprocessing as mp
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from websockets.asyncio.client import ClientConnection, connect  # noqa: E402

from bench.relay import _frame, _open, _raise_fd_limit, _use_tree  # noqa: E402
from hitl_desktop.core.links import InviteLink  # noqa: E402

PEERS = REPO / "bench" / "peers"
TICK_S = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
SYSTEMS = ("shipped", "relay", "socketio", "ws")  # (+ base, base-shipped: --baseline)
PY_FLOORS = ("pyws", "picows", "picows-log", "picows-nolog", "picows-journal")
KNOWN = (*SYSTEMS, *PY_FLOORS)  # the Python floors: asked for by name only


def pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    s = sorted(values)
    return s[min(len(s) - 1, max(0, round(q / 100 * (len(s) - 1))))]


def children(pid: int) -> list[int]:
    """The process's child processes (e.g. the host's offline engine process)."""
    out: list[int] = []
    with contextlib.suppress(OSError):
        for task in Path(f"/proc/{pid}/task").iterdir():
            with contextlib.suppress(OSError):
                out += [int(c) for c in (task / "children").read_text().split()]
    return out


def server_cpu(pid: int) -> dict[int, float]:
    """CPU seconds of the server and each of its child processes, by pid."""
    out: dict[int, float] = {}
    for p in (pid, *children(pid)):
        with contextlib.suppress(OSError):
            out[p] = cpu_seconds(p)
    return out


def run_queue(pid: int) -> tuple[float, float]:
    """(seconds on a CPU, seconds runnable but waiting for one) of a process's main
    thread (``/proc/PID/schedstat``; Linux with schedstats). On a shared machine the
    second tells how much of a system's latency is waiting for a core, not its work."""
    with contextlib.suppress(OSError, ValueError):
        run, wait, _slices = Path(f"/proc/{pid}/task/{pid}/schedstat").read_text().split()
        return int(run) / 1e9, int(wait) / 1e9
    return float("nan"), float("nan")


def cpu_seconds(pid: int, thread: int | None = None) -> float:
    """utime + stime of a process, all threads (Linux); of one thread with ``thread``
    (the main thread — a Python host's event loop — has the process's id)."""
    path = f"/proc/{pid}/stat" if thread is None else f"/proc/{pid}/task/{thread}/stat"
    fields = Path(path).read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK_S


# ----------------------------------------------------------------------------- servers


async def start_bench_host(data_dir: str, copilot: bool) -> Any:
    """The host under test in ``data_dir`` (a RunningHost): the offline co-pilot or none,
    rate limits out of the load's way. Import after :func:`_use_tree`."""
    from hitl_desktop.app.services import copilot_factory, start_host
    from hitl_desktop.config import Settings, resolve_paths
    from hitl_desktop.host.relay import RelayConfig

    paths = resolve_paths(data_dir, Path(data_dir) / "config")
    settings = Settings()
    factory = copilot_factory(paths, settings, provider="offline") if copilot else None
    cfg = RelayConfig(rate=1e9, burst=1e9, max_errors=10**9, max_per_address=10**6)
    return await start_host(paths, settings, port=0, config=cfg, copilot_factory=factory)


def _host_main(pipe: Connection, data_dir: str, copilot: bool, src: str | None = None
               ) -> None:
    import logging

    _raise_fd_limit()
    _use_tree(src)
    logging.basicConfig(level=logging.WARNING)

    async def main() -> None:
        host = await start_bench_host(data_dir, copilot)
        gc_s = [0.0, 0.0, 0.0]  # BENCH_GC=1: time in the cyclic GC per generation
        started: list[float] = []

        def on_gc(phase: str, info: dict[str, int]) -> None:
            if phase == "start":
                started.append(time.perf_counter())
            elif started:
                gc_s[info["generation"]] += time.perf_counter() - started.pop()

        if os.environ.get("BENCH_GC"):
            import gc

            gc.callbacks.append(on_gc)
        pipe.send({"url": host.url, "admin": InviteLink.parse(host.admin_link).token})
        await asyncio.get_running_loop().run_in_executor(None, pipe.recv)
        if os.environ.get("BENCH_GC"):
            print(f"  host GC: gen0 {gc_s[0]:.3f} s, gen1 {gc_s[1]:.3f} s, gen2 {gc_s[2]:.3f} s"
                  " (from start-up to stop)", flush=True)
        if os.environ.get("BENCH_WAL"):  # BENCH_WAL=1: the WAL's held finishes
            fins = list(host.relay_log.finishes)
            print(f"  host WAL: {len(fins)} held finishes ({sum(not f.ok for f in fins)} "
                  f"spoiled), {sum(f.held_ms for f in fins):.0f} ms held in all; each (ms "
                  f"held, lines waited, WAL MB before): "
                  f"{[(round(f.held_ms), f.waited, f.wal_before >> 20) for f in fins]}",
                  flush=True)
        await host.stop()

    asyncio.run(main())


class Server:
    drafts = False  # its co-pilot drafts a reply to every customer line
    kind: str
    pid: int
    info: dict[str, Any]

    def stop(self) -> None: ...


class HostServer(Server):
    def __init__(self, copilot: bool, src: str | None = None) -> None:
        self.kind = "host"
        self.drafts = copilot
        self._tmp = tempfile.TemporaryDirectory(prefix="hitl-load-")
        ctx = mp.get_context("spawn")
        self._pipe, child = ctx.Pipe()
        self._proc = ctx.Process(target=_host_main, args=(child, self._tmp.name, copilot, src),
                                 daemon=False)  # (a daemon cannot start the engine process)
        self._proc.start()
        self.info = self._pipe.recv()
        assert self._proc.pid is not None
        self.pid = self._proc.pid

    def stop(self) -> None:
        with contextlib.suppress(Exception):
            self._pipe.send("stop")
        self._proc.join(30)
        if self._proc.is_alive():
            self._proc.kill()
        self._tmp.cleanup()


class NodeServer(Server):
    """A peer process (Node's, or the Python floor's): prints its port, answers "cpu"."""

    def __init__(self, kind: str, script: str, env: dict[str, str] | None = None) -> None:
        self.kind = kind
        argv = [sys.executable if script.endswith(".py") else "node", str(PEERS / script)]
        self._proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                      env={**os.environ, **(env or {})}, text=True)
        assert self._proc.stdout is not None
        port = json.loads(self._proc.stdout.readline())["port"]
        self.info = {"url": f"ws://127.0.0.1:{port}"}
        self.pid = self._proc.pid

    def stop(self) -> None:
        if self._proc.stdin is not None:
            self._proc.stdin.close()  # the peer exits when its stdin closes
        try:
            self._proc.wait(10)
        except subprocess.TimeoutExpired:
            self._proc.kill()


def peers_missing() -> str | None:
    """Why the Node peers cannot run here (None: they can)."""
    if shutil.which("node") is None:
        return "node is not installed"
    if not (PEERS / "node_modules" / "socket.io").is_dir():
        return "bench/peers/node_modules is missing (run `npm ci` in bench/peers)"
    return None


# ----------------------------------------------------------------------------- clients


@dataclass
class Stats:
    hops: list[float] = field(default_factory=list)
    drafts: list[float] = field(default_factory=list)
    lines: int = 0


class Pair:
    """One session: a customer and an agent socket. Subclasses speak a system's framing;
    all time a line from the customer's send to the agent's receipt (by its number)."""

    cust: ClientConnection
    agent: ClientConnection

    def __init__(self, stats: Stats) -> None:
        self.stats = stats
        self.sent: dict[int, float] = {}
        self.got: dict[int, asyncio.Future[None]] = {}
        self.answer = False  # paced: the agent answers every line
        self.drafts = False  # its host drafts a reply (the agent answers with the draft)
        self.tasks: list[asyncio.Task[None]] = []

    def _arrived(self, n: int) -> None:
        at = time.perf_counter()
        t0 = self.sent.pop(n, None)
        if t0 is not None:
            self.stats.hops.append(at - t0)
            self.stats.lines += 1
        fut = self.got.pop(n, None)
        if fut is not None and not fut.done():
            fut.set_result(None)

    async def say(self, n: int, wait: bool) -> None:
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.got[n] = fut
        self.sent[n] = time.perf_counter()
        await self._send_customer(n, f"L{n}: where is my parcel? it was due yesterday")
        if wait:
            await asyncio.wait_for(fut, 60)

    async def _send_customer(self, n: int, text: str) -> None:
        raise NotImplementedError

    async def close(self) -> None:
        for t in self.tasks:
            t.cancel()


def _number(text: str) -> int | None:
    if text.startswith("L") and ":" in text[:12]:
        with contextlib.suppress(ValueError):
            return int(text[1:text.index(":")])
    return None


ANSWER = ("Thanks for waiting. I checked your order: it left our warehouse on Monday and "
          "the carrier shows it out for delivery today. If it has not arrived by tomorrow "
          "evening, reply here and I will open a trace with the carrier for you.")


class HostPair(Pair):
    def __init__(self, stats: Stats, sid: str, cust: ClientConnection,
                 agent: ClientConnection) -> None:
        super().__init__(stats)
        self.sid, self.cust, self.agent = sid, cust, agent
        self.line_at: dict[str, float] = {}  # customer message id -> when sent
        self.last_line: float | None = None
        self.tasks = [asyncio.ensure_future(self._read_agent()),
                      asyncio.ensure_future(self._drain(cust))]

    async def _send_customer(self, n: int, text: str) -> None:
        self.last_line = time.perf_counter()
        await self.cust.send(_frame("chat.send", {"text": text}, self.sid))

    @staticmethod
    async def _drain(ws: ClientConnection) -> None:
        with contextlib.suppress(Exception):
            async for _ in ws:
                pass

    async def customer_line(self, data: dict[str, Any]) -> None:
        """A customer's ``chat.message`` at the agent: timed; on a host without a
        co-pilot (paced) the agent answers it at once, as the peers' agents do, with a
        reply as long as a typical draft: the relay-only host then relays the same lines
        as the shipped one (customer line + agent answer), and shipped - relay is what
        the co-pilot costs."""
        n = _number(data["text"])
        if n is None:
            return
        self._arrived(n)
        if self.answer and not self.drafts:
            await self.agent.send(_frame("chat.send", {"text": ANSWER}, self.sid))

    async def _read_agent(self) -> None:
        with contextlib.suppress(Exception):
            async for raw in self.agent:
                frame = json.loads(raw)
                kind = frame["type"]
                if kind == "chat.message":
                    data = frame["data"]
                    if data["author"]["role"] == "customer":
                        await self.customer_line(data)
                elif kind == "draft.completed" and self.last_line is not None:
                    self.stats.drafts.append(time.perf_counter() - self.last_line)
                    if self.answer and frame["data"]["text"]:
                        await self.agent.send(_frame("chat.send", {
                            "text": frame["data"]["text"],
                            "draft_id": frame["data"]["turn_id"]}, self.sid))

    async def close(self) -> None:
        await super().close()
        await asyncio.gather(self.cust.close(), self.agent.close(), return_exceptions=True)


class SioPair(Pair):
    """socket.io over a raw WebSocket: Engine.IO 4 open, CONNECT with auth, EVENT frames."""

    @classmethod
    async def open(cls, stats: Stats, url: str, room: str) -> SioPair:
        pair = cls(stats)
        pair.cust = await cls._connect(url, room)
        pair.agent = await cls._connect(url, room)
        pair.tasks = [asyncio.ensure_future(pair._read(pair.agent, agent=True)),
                      asyncio.ensure_future(pair._read(pair.cust, agent=False))]
        return pair

    @staticmethod
    async def _connect(url: str, room: str) -> ClientConnection:
        ws = await connect(f"{url}/socket.io/?EIO=4&transport=websocket", compression=None,
                           max_queue=None, open_timeout=60)
        opened = await ws.recv()
        assert isinstance(opened, str) and opened.startswith("0"), opened
        await ws.send("40" + json.dumps({"room": room}))
        connected = await ws.recv()
        assert isinstance(connected, str) and connected.startswith("40"), connected
        return ws

    async def _read(self, ws: ClientConnection, agent: bool) -> None:
        with contextlib.suppress(Exception):
            async for raw in ws:
                if raw == "2":  # Engine.IO ping
                    await ws.send("3")
                    continue
                if not isinstance(raw, str) or not raw.startswith("42"):
                    continue
                _event, data = json.loads(raw[2:])
                if not agent or data.get("from") != "c":
                    continue
                n = _number(data["text"])
                if n is not None:
                    self._arrived(n)
                    if self.answer:
                        await ws.send("42" + json.dumps(
                            ["chat", {"from": "a", "text": "Let me check that for you."}]))

    async def _send_customer(self, n: int, text: str) -> None:
        await self.cust.send("42" + json.dumps(["chat", {"from": "c", "text": text}]))

    async def close(self) -> None:
        await super().close()
        await asyncio.gather(self.cust.close(), self.agent.close(), return_exceptions=True)


class WsPair(Pair):
    """The floor: /fwd/a/KEY -> /fwd/b/KEY, the same JSON line as the host's chat.send."""

    @classmethod
    async def open(cls, stats: Stats, url: str, key: str) -> WsPair:
        pair = cls(stats)
        pair.agent = await connect(f"{url}/fwd/b/{key}", compression=None, max_queue=None)
        await asyncio.sleep(0)  # the floor knows the receiver before the sender talks
        pair.cust = await connect(f"{url}/fwd/a/{key}", compression=None, max_queue=None)
        pair.tasks = [asyncio.ensure_future(pair._read()),
                      asyncio.ensure_future(HostPair._drain(pair.cust))]
        return pair

    async def _read(self) -> None:
        with contextlib.suppress(Exception):
            async for raw in self.agent:
                data = json.loads(raw)["data"]
                n = _number(data["text"])
                if n is not None:
                    self._arrived(n)

    async def _send_customer(self, n: int, text: str) -> None:
        await self.cust.send(_frame("chat.send", {"text": text}, "s_floor"))

    async def close(self) -> None:
        await super().close()
        await asyncio.gather(self.cust.close(), self.agent.close(), return_exceptions=True)


async def create_specs(server: Server, n: int) -> list[Any]:
    """What each pair connects with: the host's sessions are made here, through one admin
    connection (closed again: a desk/admin connection gets every session's updates),
    before any client starts; the peers need only a room / key name."""
    if server.kind == "socketio":
        return [f"r{i}" for i in range(n)]
    if server.kind in ("ws", *PY_FLOORS):
        return [f"k{i}" for i in range(n)]
    return list(await host_sessions(server.info["url"], server.info["admin"], n,
                                    {"customer_id": "CUST1001"}))


async def host_sessions(url: str, admin_token: str, n: int, create: dict[str, Any]
                        ) -> list[tuple[str, str, str]]:
    """``n`` sessions made through one admin connection, 50 at a time (closed again: a
    desk/admin connection gets every session's updates): (session id, customer token,
    agent token) each. ``create``: the ``session.create`` payload."""
    admin, _ = await _open(url, admin_token)
    out: list[tuple[str, str, str]] = []
    for start in range(0, n, 50):
        want = min(50, n - start)
        for _ in range(want):
            await admin.send(_frame("session.create", create))
        got = 0
        while got < want:
            msg = json.loads(await admin.recv())
            if msg["type"] == "session.created":
                d = msg["data"]
                out.append((d["session_id"], InviteLink.parse(d["customer_link"]).token,
                            InviteLink.parse(d["agent_link"]).token))
                got += 1
    await admin.close()
    return out


async def open_pairs(kind: str, url: str, specs: list[Any], stats: Stats) -> list[Pair]:
    out: list[Pair] = []
    for start in range(0, len(specs), 50):
        batch = specs[start:start + 50]
        if kind == "socketio":
            out += await asyncio.gather(*(SioPair.open(stats, url, room) for room in batch))
        elif kind in ("ws", *PY_FLOORS):
            out += await asyncio.gather(*(WsPair.open(stats, url, key) for key in batch))
        else:
            opened = await asyncio.gather(*[asyncio.gather(_open(url, cust), _open(url, agent))
                                            for _sid, cust, agent in batch])
            out += [HostPair(stats, sid, c, a)
                    for (sid, _c, _a), ((c, _), (a, _)) in zip(batch, opened, strict=True)]
    return out


# ----------------------------------------------------------------------------- workloads


@dataclass
class Result:
    hop50: float
    hop99: float
    lines: int
    cpu_per_line: float  # server CPU seconds per relayed line
    draft50: float = float("nan")
    draft99: float = float("nan")
    seconds: float = 0.0
    client_cpu_per_line: float = float("nan")  # all client processes together
    client_busiest: float = float("nan")  # the busiest client process: CPU s / wall s
    main_per_line: float = float("nan")  # the server's main thread (a host's loop) only
    main_busy: float = float("nan")  # the main thread's share of the window on a CPU ...
    main_runq: float = float("nan")  # ... and waiting for one (runnable, not running)
    host_per_line: float = float("nan")  # the server process alone (not its children)
    engine_per_line: float = float("nan")  # its child processes (the offline engine's)
    drafts: int = 0  # drafts completed (timed line -> draft.completed)


@dataclass
class Work:
    """What every client process runs (the same code for every system)."""

    kind: str  # "burst" | "paced"
    lines: int = 0
    seconds: float = 0.0
    interval: float = 10.0


async def warm_up(pairs: list[Pair], stats: Stats, drafts: bool) -> None:
    """A line through a few sessions, and their drafts finished (a cold host builds the
    SDK's event schemas on its first draft: seconds), before anything is measured."""
    await asyncio.sleep(0.5)
    for p in pairs:
        await p.say(-1, wait=True)
    if drafts:
        deadline = time.monotonic() + 20
        while len(stats.drafts) < len(pairs) and time.monotonic() < deadline:  # noqa: ASYNC110
            await asyncio.sleep(0.1)  # (a bench's wait: polling is fine)
        await asyncio.sleep(0.5)
    stats.hops.clear()
    stats.drafts.clear()
    stats.lines = 0


async def run_burst(pairs: list[Pair], lines: int, first: int = 0) -> None:
    async def talk(p: Pair) -> None:
        for i in range(first, first + lines):
            await p.say(i, wait=True)

    await asyncio.gather(*(talk(p) for p in pairs))


async def run_paced(pairs: list[Pair], seconds: float, interval: float, first: int,
                    round_: int = 0) -> None:
    for p in pairs:
        p.answer = True
    loop = asyncio.get_running_loop()
    end = loop.time() + seconds

    async def customer(p: Pair, n0: int) -> None:
        rng = random.Random(n0)  # the same schedule for every system (same session, round)
        await asyncio.sleep(rng.uniform(0, interval))
        n = n0
        while loop.time() < end:
            await p.say(n, wait=False)
            n += 1
            await asyncio.sleep(interval * rng.uniform(0.5, 1.5))

    await asyncio.gather(*(customer(p, (first + i) * 10_000 + round_ * 1_000)
                           for i, p in enumerate(pairs)))
    await asyncio.sleep(2.0)  # the last drafts


def _client_main(pipe: Connection, kind: str, url: str, specs: list[Any], warm: int,
                 drafts: bool, first: int) -> None:
    """One client process: open its pairs, warm up, say "ready"; then per round wait for
    ``(work, round)``, run it, report; "close" closes. The pairs stay open across rounds
    (a system's rounds differ only in when they ran)."""
    _raise_fd_limit()

    async def main() -> None:
        loop = asyncio.get_running_loop()
        stats = Stats()
        pairs = await open_pairs(kind, url, specs, stats)
        for p in pairs:
            p.drafts = drafts
        await warm_up(pairs[:warm], stats, drafts)
        pipe.send("ready")
        while True:
            msg = await loop.run_in_executor(None, pipe.recv)
            if msg == "close":
                break
            work, round_ = msg
            for p in pairs:  # a line of an earlier round still on its way is not timed
                p.sent.clear()
            stats.hops.clear()
            stats.drafts.clear()
            stats.lines = 0
            cpu0, t0 = time.process_time(), time.perf_counter()
            if work.kind == "burst":
                await run_burst(pairs, work.lines, round_ * work.lines)
            else:
                await run_paced(pairs, work.seconds, work.interval, first, round_)
            pipe.send({"hops": stats.hops, "drafts": stats.drafts, "lines": stats.lines,
                       "cpu": time.process_time() - cpu0, "wall": time.perf_counter() - t0})
        await asyncio.gather(*(p.close() for p in pairs))

    asyncio.run(main())


class Profiler:
    """py-spy on the server for the measured window only (``--profile``): not a project
    dependency; ``PY_SPY`` or ``py-spy`` on PATH."""

    def __init__(self, path: str | None, pid: int) -> None:
        self._proc: subprocess.Popen[bytes] | None = None
        exe = os.environ.get("PY_SPY") or shutil.which("py-spy")
        if path and exe:
            extra = os.environ.get("PY_SPY_ARGS", "").split()  # e.g. "--gil --nonblocking"
            self._proc = subprocess.Popen([exe, "record", "--pid", str(pid), "-r", "200",
                                           "-f", "raw", "-o", path, "--threads", *extra],
                                          stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            time.sleep(1.0)  # attached before the window opens
        elif path:
            print("  (--profile: py-spy not found; set PY_SPY)")

    def stop(self) -> None:
        if self._proc is not None:
            self._proc.send_signal(2)  # SIGINT: py-spy writes its file and exits
            self._proc.wait(60)


def wait_quiet(pids: list[int], limit_s: float = 10.0) -> float:
    """Wait until every server (and its child processes) is idle: under 3 % of a core
    each over two 100 ms samples in a row, at most ``limit_s``. What a system does after
    its round (a host's checkpoint of the round's WAL, the desk index's batch, a
    co-pilot's last drafts, a GC pass) then does not run in the next system's round.
    Returns the wait."""
    def busy() -> list[float]:
        return [sum(server_cpu(pid).values()) for pid in pids]

    t0 = time.perf_counter()
    quiet = 0
    before = busy()
    while quiet < 2 and time.perf_counter() - t0 < limit_s:
        time.sleep(0.1)
        now = busy()
        quiet = quiet + 1 if all(b - a < 0.003 for a, b in zip(before, now, strict=True)) else 0
        before = now
    return time.perf_counter() - t0


class Fleet:
    """A system under test: its server and its client processes (S/N pairs each),
    opened once and kept up through every round, so that the systems' rounds can be
    interleaved (see ``orders``)."""

    def __init__(self, name: str, server: Server, sessions: int, clients: int) -> None:
        self.name, self.server = name, server
        specs = asyncio.run(create_specs(server, sessions))
        clients = max(1, min(clients, sessions))
        ctx = mp.get_context("spawn")
        self.procs: list[tuple[Any, Connection]] = []
        warm = max(1, 20 // clients)
        for i in range(clients):
            part = specs[i::clients]
            parent, child = ctx.Pipe()
            proc = ctx.Process(target=_client_main, daemon=True, args=(
                child, server.kind, server.info["url"], part, min(warm, len(part)),
                server.drafts, i * len(specs)))
            proc.start()
            self.procs.append((proc, parent))
        for _proc, pipe in self.procs:
            if pipe.recv() != "ready":
                raise RuntimeError("a client failed to start")

    def run(self, work: Work, round_: int, everyone: list[int], profile: str | None = None,
            profile_clients: bool = False) -> Result:
        """One round of ``work``; the server's CPU is timed from "go" until every client
        has reported, after every server (``everyone``: their pids) has gone idle."""
        waited = wait_quiet(everyone)
        if waited > 9.5:
            print(f"  (before {self.name}: a server still busy after {waited:.1f} s; "
                  "measuring anyway)")
        spies = [Profiler(profile, self.server.pid)] if self.server.kind == "host" else []
        if profile and profile_clients:
            spies += [Profiler(profile.replace(".txt", f"-client{i}.txt"), proc.pid)
                      for i, (proc, _pipe) in enumerate(self.procs)]
        pid = self.server.pid
        cpu0, t0 = server_cpu(pid), time.perf_counter()
        main0 = cpu_seconds(pid, pid)
        run0, wait0 = run_queue(pid)
        for _proc, pipe in self.procs:
            pipe.send((work, round_))
        reports = [pipe.recv() for _proc, pipe in self.procs]
        took = time.perf_counter() - t0
        cpu1 = server_cpu(pid)  # the host and its engine process (if any)
        cpu = sum(v - cpu0.get(p, 0.0) for p, v in cpu1.items())
        own = cpu1.get(pid, 0.0) - cpu0.get(pid, 0.0)
        main = cpu_seconds(pid, pid) - main0
        run1, wait1 = run_queue(pid)
        for spy in spies:
            spy.stop()
        hops = [h for r in reports for h in r["hops"]]
        drafts = [d for r in reports for d in r["drafts"]]
        lines = sum(r["lines"] for r in reports)
        return Result(statistics.median(hops) if hops else float("nan"), pct(hops, 99),
                      lines, cpu / max(1, lines),
                      statistics.median(drafts) if drafts else float("nan"),
                      pct(drafts, 99), took, sum(r["cpu"] for r in reports) / max(1, lines),
                      max(r["cpu"] / max(1e-9, r["wall"]) for r in reports),
                      main / max(1, lines), (run1 - run0) / took, (wait1 - wait0) / took,
                      own / max(1, lines), (cpu - own) / max(1, lines), len(drafts))

    def close(self) -> None:
        try:
            for _proc, pipe in self.procs:
                with contextlib.suppress(OSError):
                    pipe.send("close")
            for proc, _pipe in self.procs:
                proc.join(60)
                if proc.is_alive():
                    proc.kill()
        finally:
            self.server.stop()


def run_rounds(title: str, systems: list[str], plan: list[list[str]], sessions: int,
               work: Work, args: argparse.Namespace) -> None:
    """Every system up at once (server + clients), then the rounds: in each, the systems
    one after the other in that round's order, each waiting for the last to go idle.
    A host's log keeps what each round wrote (S x L more lines a round, as a host in
    service would); ``--fresh`` starts every system anew for each round instead."""
    fleets: dict[str, Fleet] = {}

    def open_all() -> None:
        for name in systems:
            server = start(name, args.baseline)
            try:
                fleets[name] = Fleet(name, server, sessions, args.clients)
            except OSError as exc:
                server.stop()
                print(f"  {name}: {sessions} sessions could not be opened ({exc})")

    def close_all() -> None:
        while fleets:
            fleets.popitem()[1].close()

    try:
        rounds: list[tuple[list[str], dict[str, Result]]] = []
        warm = args.warmup
        for r, planned in enumerate([plan[0]] * warm + plan):
            if not fleets or args.fresh:
                close_all()
                open_all()
            order = [n for n in planned if n in fleets]
            results: dict[str, Result] = {}
            for name in order:
                results[name] = fleets[name].run(
                    work, r, [f.server.pid for f in fleets.values()],
                    _profile_path(args.profile, name, sessions, work.kind, r,
                                  len(plan) + warm, args.profile_clients),
                    args.profile_clients)
            if r < warm:
                report(f"{title}, warm-up round {r + 1}/{warm} (order: {', '.join(order)}; "
                       "not in the summary)", results)
                continue
            report(f"{title}, round {r + 1 - warm}/{len(plan)} (order: {', '.join(order)})",
                   results)
            rounds.append((order, results))
        summarize(title, rounds)
    finally:
        close_all()


# ----------------------------------------------------------------------------- report


def _ms(x: float) -> str:
    return "     -" if math.isnan(x) else f"{x * 1000:6.2f}"


def _ratio(a: float, b: float | None) -> str:
    if b is None or math.isnan(a) or math.isnan(b) or b == 0:
        return "   -"
    return f"{a / b:5.2f}x"


def report(title: str, results: dict[str, Result]) -> None:
    """One round's table, rows in the order the systems ran, each with its ratios to the
    socket.io peer and the floor of the same round."""
    sio, floor = results.get("socketio"), results.get("ws")
    print(f"\n{title}")
    print(f"  {'system':12s} {'hop p50':>8s} {'hop p99':>8s} {'CPU/line':>9s} {'lines':>7s}   "
          f"{'p50/sio':>7s} {'p99/sio':>7s} {'cpu/sio':>7s}   {'p50/ws':>6s} {'p99/ws':>6s} "
          f"{'cpu/ws':>6s}   draft p50 / p99     client CPU/line, busiest   main thread/line"
          "   main thread on a CPU / waiting for one")
    for name, r in results.items():
        print(f"  {name:12s} {_ms(r.hop50):>8s} {_ms(r.hop99):>8s} "
              f"{r.cpu_per_line * 1e6:7.0f}us {r.lines:7d}   "
              f"{_ratio(r.hop50, sio.hop50 if sio else None):>7s} "
              f"{_ratio(r.hop99, sio.hop99 if sio else None):>7s} "
              f"{_ratio(r.cpu_per_line, sio.cpu_per_line if sio else None):>7s}   "
              f"{_ratio(r.hop50, floor.hop50 if floor else None):>6s} "
              f"{_ratio(r.hop99, floor.hop99 if floor else None):>6s} "
              f"{_ratio(r.cpu_per_line, floor.cpu_per_line if floor else None):>6s}   "
              f"{_ms(r.draft50)} / {_ms(r.draft99)} ms   "
              f"{r.client_cpu_per_line * 1e6:6.0f}us {r.client_busiest * 100:4.0f}%   "
              f"{r.main_per_line * 1e6:6.0f}us   "
              f"{r.main_busy * 100:10.0f}% / {r.main_runq * 100:3.0f}%")
    for name, base in pairs_of(list(results)):
        if base in ("socketio", "ws", *PY_FLOORS):
            continue
        r, b = results[name], results[base]
        print(f"  {name} / {base} (same round): hop p50 {_ratio(r.hop50, b.hop50)}, "
              f"p99 {_ratio(r.hop99, b.hop99)}; draft p50 {_ratio(r.draft50, b.draft50)}, "
              f"p99 {_ratio(r.draft99, b.draft99)}; CPU/line "
              f"{_ratio(r.cpu_per_line, b.cpu_per_line)}, main thread "
              f"{_ratio(r.main_per_line, b.main_per_line)}")
    report_shares(results)


COPILOT_PAIRS = (("shipped", "relay"), ("base-shipped", "base"))  # (with, without)


@dataclass
class Share:
    """What the co-pilot costs per draft in one round: the shipped host minus the
    relay-only host of the same tree, both relaying the same lines to the same sessions
    in the same round (paced: one customer line + one agent answer each), CPU seconds."""

    host: float  # the host process (all its threads)
    loop: float  # its main thread (the event loop)
    engine: float  # the offline engine's process (the relay-only host has none)


def copilot_share(shipped: Result, relay: Result) -> Share | None:
    """(shipped - relay) CPU per line, times the shipped run's lines per draft."""
    if not shipped.drafts or not shipped.lines or not relay.lines:
        return None
    per_draft = shipped.lines / shipped.drafts
    return Share((shipped.host_per_line - relay.host_per_line) * per_draft,
                 (shipped.main_per_line - relay.main_per_line) * per_draft,
                 (shipped.engine_per_line - relay.engine_per_line) * per_draft)


def report_shares(results: dict[str, Result]) -> None:
    """The co-pilot's CPU per draft in this round, per tree (issue 18: <= 2 ms host CPU
    per offline draft), and this tree's over the baseline's."""
    shares: dict[str, Share] = {}
    for with_, without in COPILOT_PAIRS:
        if with_ in results and without in results:
            share = copilot_share(results[with_], results[without])
            if share is None:
                continue
            shares[with_] = share
            r, b = results[with_], results[without]
            print(f"  co-pilot per draft ({with_} - {without}, same round): host process "
                  f"{share.host * 1e3:.2f} ms (per line {r.host_per_line * 1e3:.2f} - "
                  f"{b.host_per_line * 1e3:.2f}), loop thread {share.loop * 1e3:.2f} ms, "
                  f"engine process {share.engine * 1e3:.2f} ms; {r.drafts} drafts / "
                  f"{r.lines} lines")
    if len(shares) == 2:
        mine, base = shares["shipped"], shares["base-shipped"]
        print(f"  co-pilot per draft, shipped / base-shipped: host process "
              f"{_ratio(mine.host, base.host)}, loop thread {_ratio(mine.loop, base.loop)}, "
              f"engine process {_ratio(mine.engine, base.engine)}")


def summarize_shares(rounds: list[tuple[list[str], dict[str, Result]]]) -> None:
    """Every round's co-pilot CPU per draft and their median; with a baseline, this
    tree's over the baseline's per round ("<": this tree's shipped host ran first)."""
    for with_, without in COPILOT_PAIRS:
        got = [(order, copilot_share(res[with_], res[without])) for order, res in rounds
               if with_ in res and without in res]
        shares = [(order, s) for order, s in got if s is not None]
        if not shares:
            continue
        for label, attr in (("host process", "host"), ("loop thread", "loop"),
                            ("engine process", "engine")):
            values = [getattr(s, attr) * 1e3 for _o, s in shares]
            print(f"  co-pilot per draft ({with_} - {without}) {label:15s} median "
                  f"{statistics.median(values):5.2f} ms   rounds: "
                  + " ".join(f"{v:.2f}" for v in values))
    both = [(order, copilot_share(res["shipped"], res["relay"]),
             copilot_share(res["base-shipped"], res["base"])) for order, res in rounds
            if all(n in res for n in ("shipped", "relay", "base-shipped", "base"))]
    for label, attr in (("host process", "host"), ("loop thread", "loop")):
        values, shown = [], []
        for order, mine, base in both:
            if mine is None or base is None or getattr(base, attr) <= 0:
                continue
            x = getattr(mine, attr) / getattr(base, attr)
            values.append(x)
            first = "<" if order.index("shipped") < order.index("base-shipped") else ">"
            shown.append(f"{x:.2f}{first}")
        if values:
            print(f"  co-pilot per draft, shipped / base-shipped {label:13s} median "
                  f"{statistics.median(values):5.2f}x   rounds: {' '.join(shown)}")


def pairs_of(names: list[str]) -> list[tuple[str, str]]:
    """The ratios worth a summary line: every system to socket.io, this tree to the
    baseline tree (relay / base, shipped / base-shipped)."""
    out = [(n, "socketio") for n in names if "socketio" in names and n != "socketio"]
    out += [(n, b) for n, b in (("relay", "base"), ("shipped", "base-shipped"))
            if n in names and b in names]
    return out


METRICS: tuple[tuple[str, str], ...] = (
    ("hop p50", "hop50"), ("hop p99", "hop99"), ("CPU/line", "cpu_per_line"),
    ("main thread/line", "main_per_line"), ("draft p50", "draft50"), ("draft p99", "draft99"),
    ("main thread waits", "main_runq"))


def summarize(title: str, rounds: list[tuple[list[str], dict[str, Result]]]) -> None:
    """Every round's ratio of each pair, marked with which of the two ran first in that
    round ("<": the numerator first, ">": the denominator first), and their median. With
    alternating orders a position bias shows as the "<" and ">" ratios parting; the
    median over an even number of rounds has as many of each."""
    names = list(rounds[0][1]) if rounds else []
    print(f"\n{title}: {len(rounds)} round(s); per-round ratios (< numerator ran first, "
          "> it ran second) and their median")
    for a, b in pairs_of(names):
        for label, attr in METRICS:
            shown: list[str] = []
            values: list[float] = []
            for order, res in rounds:
                if a not in res or b not in res:
                    continue
                x, y = getattr(res[a], attr), getattr(res[b], attr)
                if math.isnan(x) or math.isnan(y) or y == 0:
                    continue
                values.append(x / y)
                shown.append(f"{x / y:.2f}{'<' if order.index(a) < order.index(b) else '>'}")
            if not values:
                continue
            print(f"  {a + ' / ' + b:24s} {label:17s} median {statistics.median(values):5.2f}x"
                  f"   rounds: {' '.join(shown)}")
    summarize_shares(rounds)


def _profile_path(prefix: str | None, name: str, sessions: int, what: str, round_: int,
                  rounds: int, clients: bool = False) -> str | None:
    """Where the server's py-spy stacks go (``--profile``; ``--profile-clients``: also
    the client processes', into ...-client<i>.txt — for every system, Node's too)."""
    if prefix is None or (name in ("socketio", "ws") and not clients):
        return None
    return f"{prefix}-{name}-{what}-{sessions}{f'-r{round_ + 1}' if rounds > 1 else ''}.txt"


def orders(systems: list[str], rounds: int, how: str, seed: int | None) -> list[list[str]]:
    """The order the systems run in, per round. On a shared machine a system that runs
    right after another is not measured like the first one, so no order is kept for
    every round: "alternate" runs the list forward, then backward (an even number of rounds
    puts every pair in both orders equally often), "random" shuffles each round (seed
    printed), "fixed" keeps the given order (the old behaviour)."""
    if how == "random":
        seed = random.randrange(1 << 30) if seed is None else seed
        print(f"run order: random, seed {seed}")
        rng = random.Random(seed)
        return [rng.sample(systems, len(systems)) for _ in range(rounds)]
    if how == "alternate":
        return [list(systems) if r % 2 == 0 else systems[::-1] for r in range(rounds)]
    return [list(systems) for _ in range(rounds)]


def start(name: str, baseline: str | None = None) -> Server:
    if name == "base":  # the relay (co-pilot off) of another tree: before/after in one run
        return HostServer(copilot=False, src=baseline)
    if name == "base-shipped":  # ... and that tree's host as shipped (co-pilot on)
        return HostServer(copilot=True, src=baseline)
    if name == "shipped":
        return HostServer(copilot=True)
    if name == "relay":
        return HostServer(copilot=False)
    if name == "socketio":
        return NodeServer("socketio", "sio_relay.mjs")
    if name == "pyws":
        return NodeServer("pyws", "py_ws_relay.py")
    if name in ("picows", "picows-log", "picows-nolog", "picows-journal"):
        mode = {"picows": "forward", "picows-log": "log", "picows-nolog": "nolog",
                "picows-journal": "journal"}[name]
        return NodeServer(name, "picows_peer.py", {"PEER_MODE": mode})
    return NodeServer("ws", "ws_relay.mjs")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="CI-sized run")
    parser.add_argument("--systems", default=",".join(SYSTEMS))
    parser.add_argument("--burst", default=None,
                        help='session counts, e.g. 1,100,1000 ("" for none)')
    parser.add_argument("--lines", type=int, default=None, help="lines per customer (burst)")
    parser.add_argument("--paced", type=int, default=None, help="sessions (0: skip)")
    parser.add_argument("--seconds", type=float, default=None, help="paced: how long")
    parser.add_argument("--interval", type=float, default=None,
                        help="paced: seconds between a customer's lines (default 10)")
    parser.add_argument("--baseline", default=None,
                        help="another tree (e.g. `git archive main | tar -x -C DIR`): its "
                             "relay runs as system 'base' next to this tree's 'relay', "
                             "its shipped host as 'base-shipped' next to 'shipped'")
    parser.add_argument("--clients", type=int, default=1,
                        help="client processes, each driving S/N sessions (the same client "
                             "code for every system; one saturates at S >= 100 bursts)")
    parser.add_argument("--profile", default=None,
                        help="py-spy the host during each measured window into "
                             "PREFIX-<system>-<S>.txt (raw stacks; PY_SPY=path to py-spy, "
                             "PY_SPY_ARGS=more of its options, e.g. '--gil --nonblocking': "
                             "the samples holding the GIL, the process not paused)")
    parser.add_argument("--profile-clients", action="store_true",
                        help="with --profile: py-spy the client processes too "
                             "(PREFIX-<system>-<S>-client<i>.txt), for every system")
    parser.add_argument("--rounds", type=int, default=1,
                        help="run every system this many times per workload (use an even "
                             "number with --order alternate); the summary gives each "
                             "pair's per-round ratios and their median")
    parser.add_argument("--order", choices=("alternate", "random", "fixed"),
                        default="alternate", help="the systems' order per round")
    parser.add_argument("--seed", type=int, default=None, help="--order random's seed")
    parser.add_argument("--warmup", type=int, default=0,
                        help="rounds run first and left out of the summary (a Node peer's "
                             "JIT is cold for its first few thousand lines: socket.io's "
                             "CPU per line in a fresh process's first 5,000 lines was ~2x "
                             "its later rounds')")
    parser.add_argument("--fresh", action="store_true",
                        help="start every system anew for each round (a host's log then "
                             "holds only that round's lines; default: kept up, the log grows)")
    args = parser.parse_args(argv)
    default = "1,20" if args.quick else "1,100,1000"
    bursts = [int(x) for x in (default if args.burst is None else args.burst).split(",")
              if x.strip() and int(x) > 0]  # --burst "" (or 0): none
    lines = args.lines or (20 if args.quick else 50)
    paced_n = args.paced if args.paced is not None else (20 if args.quick else 1000)
    interval = args.interval or (2.0 if args.quick else 10.0)
    seconds = args.seconds or (10.0 if args.quick else 40.0)
    systems = [s for s in args.systems.split(",") if s in KNOWN]
    if args.baseline:
        if "relay" in systems or "shipped" not in systems:
            systems.insert(systems.index("relay") if "relay" in systems else 0, "base")
        if "shipped" in systems:
            systems.insert(systems.index("shipped"), "base-shipped")
    missing = peers_missing()
    if missing and any(s in ("socketio", "ws") for s in systems):
        print(f"skipping the Node peers (socket.io, ws floor): {missing}; ratios left out")
        systems = [s for s in systems if s not in ("socketio", "ws")]
    if importlib.util.find_spec("picows") is None and any("picows" in s for s in systems):
        print("skipping the picows floors: picows is not installed (pip install picows)")
        systems = [s for s in systems if "picows" not in s]
    _raise_fd_limit()
    print(f"{args.clients} Python client process(es) for every system; burst: {lines} "
          f"sequential lines per customer; "
          f"paced: a line every ~{interval:g} s per customer for {seconds:g} s, agents answer")
    plan = orders(systems, args.rounds, args.order, args.seed)
    for s in bursts:
        run_rounds(f"burst, S = {s} sessions x {lines} lines", systems, plan, s,
                   Work("burst", lines), args)
    if paced_n:
        run_rounds(f"paced, S = {paced_n} sessions, a line every ~{interval:g} s (shipped: "
                   f"draft p99 budget 500 ms, hop p99 budget 50 ms)", systems, plan, paced_n,
                   Work("paced", 0, seconds, interval), args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
