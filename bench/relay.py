"""Relay benchmark: the customer->agent hop through the host, against a bare echo.

Prints, from one run:

1. p50/p99 of the customer->agent hop through the host, next to a bare
   ``websockets`` echo round trip measured the same way (both are two trips over
   loopback: client->server->client), and the ratio (budget: p50 within 1.5x);
2. no-wait throughput (1 session, 100 sessions) and the host's CPU per relayed line;
   the hop's p99 with 100 live sessions all chatting (budget: < 5 ms);
3. the largest number of concurrent sessions (a customer and an agent socket
   each, ramping 100 -> 1000+) for which the hop's p99 stays under 50 ms.

The host and the echo server each run in their own process, the clients in
this one, so server and clients each get a core. The host runs with the real
relay (validation, SQLite log before relaying, fan-out) and the chat-only
co-pilot; the per-connection rate limit is lifted because the bench sends far
faster than any person types. Both servers use the same websockets settings
(no compression).

    python bench/relay.py            # full run (~1 min)
    python bench/relay.py --quick    # CI-sized
    git archive REV hitl_desktop | tar -x -C /tmp/base
    python bench/relay.py --baseline /tmp/base   # + that tree's host, interleaved: ratios
    python bench/relay.py --baseline . --baseline-set group_commit=false
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing as mp
import os
import random
import resource
import statistics
import sys
import tempfile
import time
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

from websockets.asyncio.client import ClientConnection, connect
from websockets.asyncio.server import ServerConnection, serve

from hitl_desktop.core.links import InviteLink
from hitl_desktop.core.protocol import MAX_FRAME_BYTES

CHAT_PREFIX = '{"v":1,"type":"chat.message"'


def _raise_fd_limit() -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def _use_tree(src: str | None) -> None:
    """Import ``hitl_desktop`` from another tree (``--baseline``) in this host process:
    forget what was imported from this one, put the other first on the path."""
    if not src or src == ".":
        return
    for name in [m for m in sys.modules if m == "hitl_desktop" or
                 m.startswith("hitl_desktop.")]:
        del sys.modules[name]
    sys.path.insert(0, src)


# ----------------------------------------------------------------------------- servers


def _host_main(pipe: Connection, data_dir: str, src: str | None = None,
               settings: dict[str, Any] | None = None) -> None:
    _raise_fd_limit()
    _use_tree(src)
    from hitl_desktop.app.services import start_host
    from hitl_desktop.config import Settings, resolve_paths
    from hitl_desktop.host.relay import RelayConfig

    async def main() -> None:
        paths = resolve_paths(data_dir, Path(data_dir) / "config")
        # every bench socket comes from 127.0.0.1: lift the per-address cap too
        cfg = RelayConfig(rate=1e9, burst=1e9, max_errors=10**9, max_per_address=10**6,
                          **(settings or {}))
        host = await start_host(paths, Settings(), port=0, config=cfg)
        pipe.send({"url": host.url, "admin": InviteLink.parse(host.admin_link).token,
                   "pid": os.getpid()})
        await asyncio.get_running_loop().run_in_executor(None, pipe.recv)  # wait for "stop"
        await host.stop()

    profile = os.environ.get("BENCH_PROFILE")  # write a cProfile of the host here
    if profile:
        import cProfile

        cProfile.runctx("asyncio.run(main())", globals(), locals(), profile)
    else:
        asyncio.run(main())


def _echo_main(pipe: Connection) -> None:
    _raise_fd_limit()

    receivers: dict[str, ServerConnection] = {}

    async def echo(ws: ServerConnection) -> None:
        path = ws.request.path if ws.request else "/ws"
        if path.startswith("/fwd/"):  # bare forwarder: /fwd/a/KEY sends to /fwd/b/KEY
            _, _, side, key = path.split("/", 3)
            if side == "b":
                receivers[key] = ws
                await ws.wait_closed()
                return
            async for msg in ws:
                await ws.send(msg)  # the sender gets its copy, like the relay's echo
                await receivers[key].send(msg)
            return
        async for msg in ws:
            await ws.send(msg)

    async def main() -> None:
        async with serve(echo, "127.0.0.1", 0, compression=None, max_size=MAX_FRAME_BYTES,
                         max_queue=64) as server:
            port = server.sockets[0].getsockname()[1]
            pipe.send({"url": f"ws://127.0.0.1:{port}/ws"})
            await asyncio.get_running_loop().run_in_executor(None, pipe.recv)

    asyncio.run(main())


# ----------------------------------------------------------------------------- clients


def _frame(type_: str, data: dict[str, Any], session: str | None = None) -> str:
    return json.dumps({"v": 1, "type": type_, "id": f"b{random.getrandbits(40):x}",
                       "session": session, "seq": None, "ts": time.time(), "data": data},
                      separators=(",", ":"))


async def _open(url: str, token: str) -> tuple[ClientConnection, dict[str, Any]]:
    ws = await connect(url, compression=None, max_queue=None, open_timeout=60)
    await ws.send(_frame("hello", {"token": token}))
    welcome = json.loads(await ws.recv())
    if welcome["type"] != "welcome":
        raise RuntimeError(f"refused: {welcome}")
    return ws, welcome["data"]


class Session:
    """A customer and an agent socket on one session, measuring customer->agent hops."""

    def __init__(self, sid: str, cust: ClientConnection, agent: ClientConnection,
                 prefix: str = CHAT_PREFIX) -> None:
        self.sid, self.cust, self.agent, self.prefix = sid, cust, agent, prefix
        self.arrived: asyncio.Queue[float] = asyncio.Queue()
        self.tasks = [asyncio.ensure_future(self._read_agent()),
                      asyncio.ensure_future(self._drain(cust))]

    async def _read_agent(self) -> None:
        async for raw in self.agent:
            if isinstance(raw, str) and raw.startswith(self.prefix):
                self.arrived.put_nowait(time.perf_counter())

    @staticmethod
    async def _drain(ws: ClientConnection) -> None:
        async for _ in ws:
            pass

    async def hop(self, i: int) -> float:
        """Customer sends, agent receives. The customer's own copy of the line (which the
        host sends right after the agent's) is read once the agent's arrival is stamped:
        here both sockets share one client process and event loop, so reading the copy
        first would add this process's work to the hop; the echo's client has one socket,
        and a real customer and agent sit on different PCs."""
        msg = _frame("chat.send", {"text": f"hello {i}"}, self.sid)  # built before t0, as
        transport = self.cust.transport  # in the echo: both time sockets + server only
        transport.pause_reading()
        t0 = time.perf_counter()
        try:
            await self.cust.send(msg)
            return await self.arrived.get() - t0
        finally:
            transport.resume_reading()

    async def close(self) -> None:
        await asyncio.gather(self.cust.close(), self.agent.close())
        for t in self.tasks:
            t.cancel()


async def _create_sessions(url: str, admin_token: str, n: int) -> list[Session]:
    """Create ``n`` sessions over an admin connection that is closed again afterwards
    (a desk connection would receive every session's traffic: not what is measured)."""
    admin, _ = await _open(url, admin_token)
    out = []
    batch = 50
    for start in range(0, n, batch):
        want = min(batch, n - start)
        for _ in range(want):
            await admin.send(_frame("session.create", {}))
        links: list[dict[str, Any]] = []
        while len(links) < want:
            msg = json.loads(await admin.recv())
            if msg["type"] == "session.created":
                links.append(msg["data"])
        opened = await asyncio.gather(*[
            asyncio.gather(_open(url, InviteLink.parse(d["customer_link"]).token),
                           _open(url, InviteLink.parse(d["agent_link"]).token))
            for d in links
        ])
        for d, ((cust, _), (agent, _)) in zip(links, opened, strict=True):
            out.append(Session(d["session_id"], cust, agent))
    await admin.close()
    return out


def _pct(values: list[float], p: float) -> float:
    s = sorted(values)
    return s[min(len(s) - 1, round(p / 100 * (len(s) - 1)))]


async def _echo_rtts(url: str, n: int, warmup: int) -> list[float]:
    async with connect(url, compression=None, max_queue=None) as ws:
        out = []
        for i in range(n + warmup):
            msg = _frame("chat.send", {"text": f"hello {i}"}, "s_bench")
            t0 = time.perf_counter()
            await ws.send(msg)
            await ws.recv()
            if i >= warmup:
                out.append(time.perf_counter() - t0)
        return out


async def _forward_hops(url: str, n: int, warmup: int) -> list[float]:
    """A -> bare forwarding server -> B: the relay's topology without its work."""
    base = url.rsplit("/ws", 1)[0]
    key = f"k{random.getrandbits(32):x}"
    b = await connect(f"{base}/fwd/b/{key}", compression=None, max_queue=None)
    await asyncio.sleep(0.05)
    a = await connect(f"{base}/fwd/a/{key}", compression=None, max_queue=None)
    session = Session("fwd", a, b, prefix='{"v":1,"type":"chat.send"')
    try:
        return await _hops(session, n, warmup)
    finally:
        await session.close()


async def _hops(session: Session, n: int, warmup: int) -> list[float]:
    out = []
    for i in range(n + warmup):
        dt = await session.hop(i)
        if i >= warmup:
            out.append(dt)
    return out


async def _under_load(sessions: list[Session], seconds: float, interval: float) -> list[float]:
    """Every session sends one message per ``interval`` (random phase) for ``seconds``."""
    loop = asyncio.get_running_loop()
    end = loop.time() + seconds
    lat: list[float] = []

    async def talk(s: Session) -> None:
        await asyncio.sleep(random.uniform(0, interval))
        i = 0
        while loop.time() < end:
            lat.append(await s.hop(i))
            i += 1
            await asyncio.sleep(interval * random.uniform(0.5, 1.5))

    await asyncio.gather(*(talk(s) for s in sessions))
    return lat


def _cpu_s(pid: int) -> float:
    """User + system CPU seconds a process has used so far (Linux /proc; 0 elsewhere)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def _throughput(sessions: list[Session], lines: int, window: int,
                      pid: int) -> tuple[float, float]:
    """Each session's customer sends ``lines`` lines with up to ``window`` in flight (no
    waiting for a person): (lines relayed per second, host CPU microseconds per line)."""

    async def pump(s: Session) -> None:
        sent = 0
        received = 0
        while received < lines:
            while sent < lines and sent - received < window:
                await s.cust.send(_frame("chat.send", {"text": f"line {sent}"}, s.sid))
                sent += 1
            await s.arrived.get()
            received += 1

    for s in sessions:  # arrivals of earlier phases are not this phase's
        while not s.arrived.empty():
            s.arrived.get_nowait()
    cpu0, t0 = _cpu_s(pid), time.perf_counter()
    await asyncio.gather(*(pump(s) for s in sessions))
    elapsed, cpu = time.perf_counter() - t0, _cpu_s(pid) - cpu0
    total = lines * len(sessions)
    return total / elapsed, cpu / total * 1e6


def _ms(x: float) -> str:
    return f"{x * 1000:7.3f} ms"


async def _compare(host: dict[str, Any], base: dict[str, Any], echo: dict[str, Any],
                   args: argparse.Namespace) -> None:
    """This tree's host against the baseline tree's, interleaved in short rounds so both
    see the same machine: hop p50/p99, no-wait throughput and CPU per line, 100 live
    sessions. Ratios are this tree / baseline (below 1: faster)."""
    n, warmup = (300, 50) if args.quick else (2000, 200)
    rounds = 10
    (one,) = await _create_sessions(host["url"], host["admin"], 1)
    (bone,) = await _create_sessions(base["url"], base["admin"], 1)
    echo_rtt: list[float] = []
    hop: list[float] = []
    bhop: list[float] = []
    for _ in range(rounds):
        echo_rtt += await _echo_rtts(echo["url"], n // rounds, warmup // rounds)
        hop += await _hops(one, n // rounds, warmup // rounds)
        bhop += await _hops(bone, n // rounds, warmup // rounds)
    lines = 500 if args.quick else 2000
    tput: list[tuple[float, float]] = []
    btput: list[tuple[float, float]] = []
    for _ in range(3):
        tput.append(await _throughput([one], lines, 32, host["pid"]))
        btput.append(await _throughput([bone], lines, 32, base["pid"]))
    await one.close()
    await bone.close()
    many = await _create_sessions(host["url"], host["admin"], 100)
    bmany = await _create_sessions(base["url"], base["admin"], 100)
    load: list[float] = []
    bload: list[float] = []
    for _ in range(2 if args.quick else 4):
        load += await _under_load(many, 1.0, args.interval)
        bload += await _under_load(bmany, 1.0, args.interval)
    t100 = await _throughput(many, 20 if args.quick else 50, 4, host["pid"])
    b100 = await _throughput(bmany, 20 if args.quick else 50, 4, base["pid"])
    await asyncio.gather(*(s.close() for s in many + bmany))

    def row(name: str, new: float, old: float, fmt: Any) -> None:
        print(f"  {name:34s} {fmt(new):>14s} {fmt(old):>14s}   {new / old:5.2f}x")

    best = max(tput, key=lambda x: x[0])
    bbest = max(btput, key=lambda x: x[0])
    print(f"this tree vs baseline ({args.baseline} {' '.join(args.baseline_set)}), "
          "interleaved; ratio = this / baseline")
    print(f"  {'':34s} {'this tree':>14s} {'baseline':>14s}   ratio")
    print(f"  {'(bare echo p50, for scale)':34s} {_ms(statistics.median(echo_rtt)):>14s}")
    row("hop p50", statistics.median(hop), statistics.median(bhop), _ms)
    row("hop p99", _pct(hop, 99), _pct(bhop, 99), _ms)
    row("throughput 1 session (lines/s)", best[0], bbest[0], lambda x: f"{x:8.0f}")
    row("host CPU per line, 1 session (us)", best[1], bbest[1], lambda x: f"{x:8.1f}")
    row("100 sessions load: hop p50", statistics.median(load), statistics.median(bload), _ms)
    row("100 sessions load: hop p99", _pct(load, 99), _pct(bload, 99), _ms)
    row("throughput 100 sessions (lines/s)", t100[0], b100[0], lambda x: f"{x:8.0f}")
    row("host CPU per line, 100 sessions (us)", t100[1], b100[1], lambda x: f"{x:8.1f}")


async def _client(host: dict[str, Any], echo: dict[str, Any], args: argparse.Namespace) -> int:
    n, warmup = (300, 50) if args.quick else (3000, 300)
    # interleave echo and relay in short rounds so both see the same machine state (the
    # machine may be shared: a burst of load then hits both, not one of them)
    echo_rtt: list[float] = []
    hop: list[float] = []
    fwd: list[float] = []
    (one,) = await _create_sessions(host["url"], host["admin"], 1)
    rounds = 10
    for _ in range(rounds):
        echo_rtt += await _echo_rtts(echo["url"], n // rounds, warmup // rounds)
        hop += await _hops(one, n // rounds, warmup // rounds)
        fwd += await _forward_hops(echo["url"], n // rounds, warmup // rounds)
    rate1, cpu1 = await _throughput([one], 500 if args.quick else 3000, 32, host["pid"])
    await one.close()
    if args.hop_only:
        e, h, f = statistics.median(echo_rtt), statistics.median(hop), statistics.median(fwd)
        print(f"echo p50 {_ms(e)}  relay p50 {_ms(h)}  ratio {h / e:.2f}x   "
              f"(forwarder p50 {_ms(f)}, {f / e:.2f}x echo); relay p99 {_ms(_pct(hop, 99))}; "
              f"{rate1:.0f} lines/s at 32 in flight, host CPU {cpu1:.1f} us/line")
        return 0
    e50, e99 = statistics.median(echo_rtt), _pct(echo_rtt, 99)
    h50, h99 = statistics.median(hop), _pct(hop, 99)
    ok_ratio = h50 / e50 <= 1.5
    print("relay hop (customer -> host -> agent) vs bare websockets echo, loopback, "
          f"{len(hop)} messages each")
    print(f"  echo  p50 {_ms(e50)}   p99 {_ms(e99)}")
    print(f"  relay p50 {_ms(h50)}   p99 {_ms(h99)}")
    f50, f99 = statistics.median(fwd), _pct(fwd, 99)
    print(f"  (for scale: a bare websockets forwarder A->B, no validation or log: "
          f"p50 {_ms(f50)}  p99 {_ms(f99)}, {f50 / e50:.2f}x echo; relay = {h50 / f50:.2f}x it)")
    print(f"  ratio p50 {h50 / e50:5.2f}x  p99 {h99 / e99:5.2f}x   "
          f"(budget p50 <= 1.50x: {'OK' if ok_ratio else 'MISSED'})")

    print(f"throughput, 1 session, 32 lines in flight: {rate1:8.0f} lines/s, host CPU "
          f"{cpu1:6.1f} us/line")

    interval = args.interval
    window = 2.0 if args.quick else 4.0
    sessions = await _create_sessions(host["url"], host["admin"], 100)
    rate100, cpu100 = await _throughput(sessions, 20 if args.quick else 100, 4, host["pid"])
    print(f"throughput, 100 sessions, 4 lines in flight each: {rate100:8.0f} lines/s, host "
          f"CPU {cpu100:6.1f} us/line")
    lat = await _under_load(sessions, window, interval)
    p99_100 = _pct(lat, 99)
    print(f"100 live sessions, each sending every ~{interval:g} s: {len(lat)} hops, "
          f"p50 {_ms(statistics.median(lat))}  p99 {_ms(p99_100)}   "
          f"(budget p99 < 5 ms: {'OK' if p99_100 < 0.005 else 'MISSED'})")

    steps = [100, 250, 500] if args.quick else [100, 250, 500, 750, 1000, 1250, 1500, 2000]
    best = 0
    print(f"ramp: sessions (2 sockets each) chatting, each sending every ~{interval:g} s")
    for target in steps:
        if target > len(sessions):
            try:
                sessions += await _create_sessions(host["url"], host["admin"],
                                                   target - len(sessions))
            except OSError as exc:
                print(f"  {target:5d} sessions: cannot open more sockets ({exc})")
                break
        lat = await _under_load(sessions, window, interval)
        p99 = _pct(lat, 99)
        good = p99 < 0.050
        print(f"  {target:5d} sessions: {len(lat):6d} hops  p50 {_ms(statistics.median(lat))}"
              f"  p99 {_ms(p99)}  {'ok' if good else 'over 50 ms'}")
        if not good:
            break
        best = target
    goal = 500 if args.quick else 1000
    print(f"largest session count with hop p99 < 50 ms: {best}"
          f"{'+' if best == steps[-1] else ''}   (budget >= {goal}: "
          f"{'OK' if best >= goal else 'MISSED'})")
    await asyncio.gather(*(s.close() for s in sessions))
    return 0 if ok_ratio and best >= goal else 1


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="CI-sized run")
    parser.add_argument("--hop-only", action="store_true", help="only the single-session hop")
    parser.add_argument("--interval", type=float, default=1.0,
                        help="seconds between messages of one session under load")
    parser.add_argument("--baseline", metavar="DIR",
                        help="a tree holding another hitl_desktop (e.g. git archive REV "
                             "hitl_desktop | tar -x -C DIR), or '.' for this one: compare "
                             "its host with this one's")
    parser.add_argument("--baseline-set", metavar="KEY=VALUE", action="append", default=[],
                        help="a RelayConfig field for the baseline host only (e.g. "
                             "group_commit=false)")
    args = parser.parse_args()
    _raise_fd_limit()
    ctx = mp.get_context("spawn")
    with tempfile.TemporaryDirectory() as tmp:
        host_pipe, host_child = ctx.Pipe()
        echo_pipe, echo_child = ctx.Pipe()
        host_proc = ctx.Process(target=_host_main, args=(host_child, tmp), daemon=True)
        echo_proc = ctx.Process(target=_echo_main, args=(echo_child,), daemon=True)
        host_proc.start()
        echo_proc.start()
        procs, pipes = [host_proc, echo_proc], [host_pipe, echo_pipe]
        base_pipe = None
        if args.baseline:
            base_dir = tempfile.mkdtemp(dir=tmp)
            base_pipe, base_child = ctx.Pipe()
            overrides = {k: json.loads(v) for k, v in
                         (kv.split("=", 1) for kv in args.baseline_set)}
            base_proc = ctx.Process(target=_host_main,
                                    args=(base_child, base_dir, args.baseline, overrides),
                                    daemon=True)
            base_proc.start()
            procs.append(base_proc)
            pipes.append(base_pipe)
        try:
            host, echo = host_pipe.recv(), echo_pipe.recv()
            if base_pipe is not None:
                asyncio.run(_compare(host, base_pipe.recv(), echo, args))
                return 0
            return asyncio.run(_client(host, echo, args))
        finally:
            for pipe in pipes:
                pipe.send("stop")
            for proc in procs:
                proc.join(30)
                if proc.is_alive():
                    proc.kill()


if __name__ == "__main__":
    sys.exit(main())
