"""Hostile clients and a legitimate customer + agent pair, for tests and bench/attacks.py.

Every attack talks to a host in its own process (``tests.support.hostproc``)
through real sockets. The pair measures what a real user feels: the time from
the customer's ``chat.send`` to the agent receiving that line. Hostile clients
connect from another loopback address (127.0.0.3) so per-address limits treat
them as the separate machine they would be.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from hitl_desktop.core.protocol import PROTOCOL_VERSION, new_id

REPO = Path(__file__).resolve().parents[2]
HOSTILE_ADDR = "127.0.0.3"


@dataclass
class HostView:
    """What an attack needs of a host process (picklable: bench runs attacks in another
    process)."""

    info: dict[str, Any]
    pid: int
    stderr_path: Path

    @property
    def url(self) -> str:
        return str(self.info["url"])

    def session(self, i: int) -> dict[str, str]:
        return dict(self.info["sessions"][i])

    def rss_mb(self) -> float:
        """The host's resident memory (Linux /proc)."""
        status = Path(f"/proc/{self.pid}/status").read_text()
        for line in status.splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
        return 0.0

    def open_files(self) -> int:
        """File descriptors the host process has open (Linux /proc)."""
        try:
            return len(os.listdir(f"/proc/{self.pid}/fd"))
        except OSError:
            return 0

    def log_lines(self) -> list[str]:
        return self.stderr_path.read_text(errors="replace").splitlines()


@dataclass
class HostProc(HostView):
    """A running host process and what it printed when it started."""

    proc: subprocess.Popen[str] = field(default=None)  # type: ignore[assignment]

    def view(self) -> HostView:
        return HostView(self.info, self.pid, self.stderr_path)

    def command(self, line: str) -> dict[str, Any]:
        """Send a control line to the host process (see tests.support.hostproc)."""
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.write(line + "\n")
        self.proc.stdin.flush()
        answer: dict[str, Any] = json.loads(self.proc.stdout.readline())
        return answer



@contextmanager
def host_process(data_dir: Path, spec: dict[str, Any], *, timeout: float = 30.0
                 ) -> Iterator[HostProc]:
    data_dir.mkdir(parents=True, exist_ok=True)
    stderr_path = data_dir / "host-stderr.log"
    env = dict(os.environ, PYTHONPATH=str(REPO))
    with stderr_path.open("w") as err:
        proc = subprocess.Popen(
            [sys.executable, "-m", "tests.support.hostproc", str(data_dir), json.dumps(spec)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=err, text=True, cwd=REPO,
            env=env,
        )
    try:
        assert proc.stdout is not None
        deadline = time.monotonic() + timeout
        line = ""
        while not line and time.monotonic() < deadline and proc.poll() is None:
            line = proc.stdout.readline()
        if not line:
            raise AssertionError(f"host did not start: {stderr_path.read_text()[-2000:]}")
        yield HostProc(json.loads(line), proc.pid, stderr_path, proc)
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(5)


def frame(type_: str, data: dict[str, Any], session: str | None = None,
          msg_id: str | None = None) -> str:
    return json.dumps({"v": PROTOCOL_VERSION, "type": type_, "id": msg_id or new_id("t"),
                       "session": session, "seq": None, "ts": 0.0, "data": data})


async def open_ws(url: str, token: str, *, addr: str | None = None,
                  resume: dict[str, int] | None = None, **kw: Any) -> ClientConnection:
    """Connect and say hello (the welcome is left unread)."""
    if addr is not None:
        kw["local_addr"] = (addr, 0)
    kw.setdefault("max_queue", None)  # a client that stops reading says so (max_queue=1)
    ws = await connect(url, compression=None, open_timeout=10, **kw)
    hello: dict[str, Any] = {"token": token}
    if resume is not None:
        hello["resume"] = resume
    await ws.send(frame("hello", hello))
    return ws


async def close_code(ws: ClientConnection, wait: float) -> int | None:
    """Read until the host closes; the close code it sent (1006: cut off, no close frame)."""
    try:
        async with asyncio.timeout(wait):
            while True:
                await ws.recv()
    except ConnectionClosed as exc:
        return exc.rcvd.code if exc.rcvd else 1006
    except TimeoutError:
        return None


@dataclass
class Pair:
    """A customer and a session agent chatting; ``latencies`` in seconds."""

    latencies: list[float] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    def p(self, q: float) -> float:
        if not self.latencies:
            return float("inf")
        data = sorted(self.latencies)
        return data[min(len(data) - 1, int(q * len(data)))]

    @property
    def p50(self) -> float:
        return statistics.median(self.latencies) if self.latencies else float("inf")

    @property
    def p99(self) -> float:
        return self.p(0.99)


@asynccontextmanager
async def chatting_pair(host: HostView, session: int = 0, *, rate: float = 20.0,
                        warmup: float = 0.5) -> AsyncIterator[Pair]:
    """A customer and an agent take turns, each writing ``rate`` lines a second (inside
    the default budget); each line is timed from ``chat.send`` until the other side has
    it. Lines of the first ``warmup`` seconds are not counted. Runs for the body."""
    s = host.session(session)
    sid = s["session_id"]
    customer = await open_ws(host.url, s["customer_token"])
    agent = await open_ws(host.url, s["agent_token"])
    pair = Pair()
    stop = asyncio.Event()
    for ws in (customer, agent):  # the welcome and the replay
        await _read_until(ws, lambda m: m["type"] == "welcome", 10.0)

    async def run() -> None:
        n = 0
        while not stop.is_set():
            n += 1
            mid = f"pair-{n}"
            sender, receiver = (customer, agent) if n % 2 else (agent, customer)
            t0 = time.perf_counter()
            await sender.send(frame("chat.send", {"text": f"line {n}: where is my order?"},
                                    session=sid, msg_id=mid))
            try:
                await _read_until(receiver, lambda m, mid=mid: m["type"] == "chat.message"
                                  and m.get("ref") == mid, 5.0)
            except (TimeoutError, ConnectionClosed) as exc:
                pair.errors.append(f"line {n}: {exc!r}")
                return
            pair.latencies.append(time.perf_counter() - t0)
            await asyncio.sleep(0.5 / rate)

    task = asyncio.ensure_future(run())
    await asyncio.sleep(warmup)
    del pair.latencies[:]
    try:
        yield pair
    finally:
        stop.set()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(task, 6.0)
        for ws in (customer, agent):
            with contextlib.suppress(Exception):
                await asyncio.wait_for(ws.close(), 2.0)


async def _read_until(ws: ClientConnection, pred: Any, wait: float) -> dict[str, Any]:
    async with asyncio.timeout(wait):
        while True:
            msg: dict[str, Any] = json.loads(await ws.recv())
            if pred(msg):
                return msg


# ----------------------------------------------------------------------------- attacks


async def sync_flood(host: HostView, session: int, duration: float, per_s: float = 3.0
                     ) -> int | None:
    """Never read; ask for the whole (long) history again and again. The close code."""
    s = host.session(session)
    ws = await open_ws(host.url, s["customer_token"], addr=HOSTILE_ADDR, max_queue=1)
    try:
        end = time.monotonic() + duration
        with contextlib.suppress(ConnectionClosed):
            while time.monotonic() < end:
                await ws.send(frame("session.sync", {"after_seq": 0}, session=s["session_id"]))
                await asyncio.sleep(1.0 / per_s)
        return await close_code(ws, 10.0)
    finally:
        await _abort(ws)


async def never_reading(host: HostView, session: int, duration: float) -> int | None:
    """A desk agent that connects (resume from 0 for every session: it asks for every
    history at once) and never reads while the sessions carry on. The close code."""
    ws = await open_ws(host.url, host.info["desk_token"], addr=HOSTILE_ADDR, max_queue=1,
                       resume={s["session_id"]: 0 for s in host.info["sessions"]})
    try:
        await asyncio.sleep(duration)
        return await close_code(ws, 1.0)
    finally:
        await _abort(ws)


async def inbox_flood(host: HostView, duration: float) -> tuple[int, int, int | None]:
    """A desk agent asks for the biggest inbox page (500 summaries) again and again,
    never waiting, reading what comes. (pages answered, rate_limited errors, the close
    code or None when it was still open at the end)."""
    ws = await open_ws(host.url, host.info["desk_token"], addr=HOSTILE_ADDR)
    pages = limited = 0
    code: int | None = None

    async def read() -> None:
        nonlocal pages, limited
        async for raw in ws:
            msg = json.loads(raw)
            if msg["type"] == "session.list":
                pages += 1
            elif msg["type"] == "error" and msg["data"]["code"] == "rate_limited":
                limited += 1

    reader = asyncio.ensure_future(read())
    try:
        end = time.monotonic() + duration
        with contextlib.suppress(ConnectionClosed):
            while time.monotonic() < end:
                await ws.send(frame("session.list", {"limit": 500}))
                await asyncio.sleep(0.005)
        await asyncio.sleep(0.2)
        if ws.close_code is not None:
            code = ws.close_code
    finally:
        reader.cancel()
        await _abort(ws)
    return pages, limited, code


async def cpu_flood(host: HostView, session: int, duration: float, conns: int = 10
                    ) -> list[int | None]:
    """One customer, many connections, 8,000-character lines as fast as it can send.
    The close code of each connection (refused ones included)."""
    s = host.session(session)
    line = frame("chat.send", {"text": "y" * 8000}, session=s["session_id"])
    sockets: list[ClientConnection] = []
    codes: list[int | None] = []
    for _ in range(conns):
        ws = await open_ws(host.url, s["customer_token"], addr=HOSTILE_ADDR, max_queue=None)
        sockets.append(ws)

    async def flood(ws: ClientConnection) -> int | None:
        end = time.monotonic() + duration
        with contextlib.suppress(ConnectionClosed):
            while time.monotonic() < end:
                await ws.send(line)
                await asyncio.sleep(0.01)
        return await close_code(ws, 5.0)

    try:
        codes = list(await asyncio.gather(*(flood(ws) for ws in sockets)))
    finally:
        for ws in sockets:
            await _abort(ws)
    return codes


async def hello_flood(host: HostView, duration: float) -> tuple[int, list[int | None]]:
    """Bad tokens as fast as connections open. (attempts, close codes seen)."""
    end = time.monotonic() + duration
    codes: list[int | None] = []
    attempts = 0
    while time.monotonic() < end:
        attempts += 1
        try:
            ws = await open_ws(host.url, f"deadbeef{attempts:04x}.{'A' * 32}", addr=HOSTILE_ADDR)
        except OSError:
            codes.append(None)
            continue
        codes.append(await close_code(ws, 5.0))
        await _abort(ws)
    return attempts, codes


async def connection_flood(host: HostView, count: int, hold: float) -> tuple[int, int]:
    """Open ``count`` raw TCP connections (no WebSocket handshake) and hold them for
    ``hold`` s. Returns the most file descriptors the host process had open meanwhile
    and how many it had at the end of the hold (the least over its last 0.3 s: a SYN the
    kernel retries may be accepted, and closed at once, at any moment)."""
    url = host.url.removeprefix("ws://").split("/", 1)[0]
    host_name, port = url.rsplit(":", 1)
    socks: list[socket.socket] = []
    most = host.open_files()
    try:
        for _ in range(count):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.setblocking(False)
            s.bind((HOSTILE_ADDR, 0))
            with contextlib.suppress(BlockingIOError):
                s.connect((host_name, int(port)))
            socks.append(s)
            if len(socks) % 20 == 0:  # ~400 a second: faster only fills the SYN queue
                await asyncio.sleep(0.05)
                most = max(most, host.open_files())
        end = time.monotonic() + hold
        settled = most
        while time.monotonic() < end:
            await asyncio.sleep(0.05)
            now = host.open_files()
            most = max(most, now)
            settled = now if end - time.monotonic() > 0.3 else min(settled, now)
        return most, settled
    finally:
        for s in socks:
            s.close()


async def _abort(ws: ClientConnection) -> None:
    with contextlib.suppress(Exception):
        ws.transport.abort()
