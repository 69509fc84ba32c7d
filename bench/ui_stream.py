"""UI responsiveness under a streaming draft, and window start time (DESIGN §8).

1. Stall: a real host runs in a subprocess; the agent window (the customer window
   if this build has no agent window) connects over loopback WebSocket with the
   real client library and absorbs a draft streamed at 500 tokens/s (one
   ``draft.delta`` frame per token). A 1 ms Qt heartbeat timer records the largest
   gap between ticks: the worst time the Qt loop could not run. The same heartbeat
   over an idle second gives the baseline. Goal: worst stall under 16 ms.
2. Start: the time from spawning ``python`` to the window being shown and the
   first event-loop turn, for our windows and for a bare PySide6 QMainWindow
   started the same way (same interpreter, same flags). Goal: within 1.5x.

One run, ratios printed. ``--quick`` streams for 2 s and starts each window 3 times.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

_TEXT = ("You can cancel an order while it is still pending or processing. Open "
         "Orders, choose the order and press Cancel; the refund reaches the original "
         "payment method within 5-10 business days.")
WORDS = _TEXT.split()


# ----------------------------------------------------------------------------- host child


async def _host_child(rate: float, seconds: float, data_dir: Path) -> None:
    """Serve a host; on 'go' stream one draft at ``rate`` tokens/s into the session."""
    from hitl_desktop.app.services import start_host
    from hitl_desktop.config import Settings, resolve_paths

    paths = resolve_paths(data_dir, data_dir / "config")
    host = await start_host(paths, Settings(), port=0)
    created = host.create_session(customer_id="CUST1001")
    sid = created.session_id
    out = sys.stdout
    out.write(json.dumps({"agent_link": host.desk_link, "customer_link": created.customer_link,
                          "session": sid}) + "\n")
    out.flush()
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    await reader.readline()  # "go"
    sent = await _stream_draft(host, sid, rate, seconds)
    out.write(json.dumps(sent) + "\n")
    out.flush()
    await reader.readline()  # "quit"
    await host.stop()


async def _stream_draft(host: Any, sid: str, rate: float, seconds: float) -> dict[str, Any]:
    """Publish one draft through the relay at ``rate`` tokens/s, one frame per token,
    exactly as the co-pilot publishes a provider's stream."""
    from hitl_desktop.core.protocol import DraftCompleted, DraftDelta, DraftStarted

    loop = asyncio.get_running_loop()
    turn = "t_bench"
    await host.relay.publish(sid, DraftStarted(turn_id=turn, reason="customer_message",
                                               provider="bench"))
    count = int(rate * seconds)
    offset = 0
    parts: list[str] = []
    t0 = loop.time()
    for i in range(count):
        delay = t0 + i / rate - loop.time()
        if delay > 0:
            await asyncio.sleep(delay)
        token = WORDS[i % len(WORDS)] + " "
        await host.relay.publish(sid, DraftDelta(turn_id=turn, offset=offset, text=token))
        offset += len(token)
        parts.append(token)
    elapsed = loop.time() - t0
    text = "".join(parts)
    await host.relay.publish(sid, DraftCompleted(turn_id=turn, text=text))
    return {"tokens": count, "chars": len(text), "elapsed": elapsed}


class SubprocessHost:
    """The host in its own process (separate PCs): the UI process only receives."""

    def __init__(self, proc: subprocess.Popen[str]) -> None:
        self.proc = proc
        self.info: dict[str, Any] = {}

    async def start(self) -> None:
        assert self.proc.stdout is not None
        line = await asyncio.get_running_loop().run_in_executor(None, self.proc.stdout.readline)
        self.info = json.loads(line)

    async def stream(self) -> dict[str, Any]:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.write("go\n")
        self.proc.stdin.flush()
        line = await asyncio.get_running_loop().run_in_executor(None, self.proc.stdout.readline)
        result: dict[str, Any] = json.loads(line)
        return result

    async def stop(self) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write("quit\n")
        self.proc.stdin.flush()
        await asyncio.get_running_loop().run_in_executor(None, self.proc.wait)


class InProcessHost:
    """The host on the UI's own loop, as ``hitl-desktop demo`` runs it."""

    def __init__(self, tmp: Path, rate: float, seconds: float) -> None:
        self.tmp, self.rate, self.seconds = tmp, rate, seconds
        self.info: dict[str, Any] = {}
        self.host: Any = None

    async def start(self) -> None:
        from hitl_desktop.app.services import start_host
        from hitl_desktop.config import Settings, resolve_paths

        paths = resolve_paths(self.tmp / "inproc", self.tmp / "inproc" / "config")
        self.host = await start_host(paths, Settings(), port=0)
        created = self.host.create_session(customer_id="CUST1001")
        self.info = {"agent_link": self.host.desk_link, "customer_link": created.customer_link,
                     "session": created.session_id}

    async def stream(self) -> dict[str, Any]:
        return await _stream_draft(self.host, self.info["session"], self.rate, self.seconds)

    async def stop(self) -> None:
        await self.host.stop()


# ----------------------------------------------------------------------------- stall


class Heartbeat:
    """A 1 ms precise Qt timer; records the gaps between its ticks."""

    def __init__(self) -> None:
        from PySide6.QtCore import Qt, QTimer

        self.timer = QTimer()
        self.timer.setTimerType(Qt.TimerType.PreciseTimer)
        self.timer.setInterval(1)
        self.timer.timeout.connect(self._tick)
        self.gaps: list[float] = []
        self._last = 0.0

    def start(self) -> None:
        self.gaps.clear()
        self._last = time.perf_counter()
        self.timer.start()

    def stop(self) -> None:
        self.timer.stop()

    def _tick(self) -> None:
        now = time.perf_counter()
        self.gaps.append(now - self._last)
        self._last = now

    def summary(self) -> dict[str, float]:
        gaps = sorted(self.gaps) or [0.0]
        return {"max_ms": gaps[-1] * 1000, "p99_ms": gaps[int(len(gaps) * 0.99) - 1] * 1000
                if len(gaps) > 1 else gaps[0] * 1000, "ticks": float(len(gaps))}


def _spawn_host(rate: float, seconds: float, tmp: Path) -> subprocess.Popen[str]:
    env = dict(os.environ, HITL_DATA_DIR=str(tmp / "data"), HITL_CONFIG_DIR=str(tmp / "config"))
    return subprocess.Popen(
        [sys.executable, __file__, "--host-child", "--rate", str(rate), "--seconds", str(seconds),
         "--data-dir", str(tmp / "data")],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env,
    )


async def _poll(predicate: Any, within: float = 15.0) -> None:
    deadline = time.monotonic() + within
    while not predicate():
        if time.monotonic() > deadline:
            raise TimeoutError(f"bench: gave up after {within}s")
        await asyncio.sleep(0.01)


async def _measure_stall(host: SubprocessHost | InProcessHost, tmp: Path) -> dict[str, Any]:
    from hitl_desktop.client.chat import ChatModel
    from hitl_desktop.client.connection import HostConnection
    from hitl_desktop.core.links import InviteLink

    await host.start()
    info = host.info
    workspace: Any = None
    try:
        from hitl_desktop.client.workspace import Workspace
        from hitl_desktop.ui.agent.window import AgentWindow

        conn = HostConnection(InviteLink.parse(info["agent_link"]), client_name="bench")
        workspace = Workspace()
        workspace.attach(conn)
        window: Any = AgentWindow(workspace, config_dir=tmp / "config", restore=False)
        which = "agent window"
    except ImportError:
        from hitl_desktop.ui.customer_window import CustomerWindow

        conn = HostConnection(InviteLink.parse(info["customer_link"]), client_name="bench")
        window = CustomerWindow(ChatModel(conn), conn)
        which = "customer window (no agent window in this build; drafts are agent-only)"
    window.show()
    conn.open()
    async with asyncio.timeout(15):
        await conn.wait_connected()
        if workspace is not None:
            await _poll(lambda: workspace.session(info["session"]) is not None)
            workspace.select_session(info["session"])
    await asyncio.sleep(0.5)

    beat = Heartbeat()
    beat.start()
    await asyncio.sleep(1.0)
    beat.stop()
    idle = beat.summary()

    beat.start()
    sent = await host.stream()
    if workspace is not None:

        def completed() -> bool:
            view = workspace.session(info["session"])
            return bool(view is not None and view.draft is not None
                        and view.draft.state == "completed")

        await _poll(completed, within=10)
    await asyncio.sleep(0.1)
    beat.stop()
    busy = beat.summary()
    shown = None
    if workspace is not None:
        view = workspace.session(info["session"])
        shown = len(view.draft.text) if view is not None and view.draft is not None else 0
    await conn.aclose()
    window.hide()
    window.deleteLater()
    await host.stop()
    return {"window": which, "idle": idle, "stream": busy, "sent": sent, "draft_chars": shown}


# ----------------------------------------------------------------------------- start time


def _child_window(kind: str) -> None:
    """Build and show one window, turn the loop once, print 'shown', exit."""
    from PySide6.QtCore import QTimer
    from PySide6.QtWidgets import QApplication, QMainWindow

    app = QApplication([sys.argv[0]])
    window: Any
    if kind == "bare":
        window = QMainWindow()
        window.resize(1300, 820)
        window.show()
    elif kind == "customer":  # exactly what `hitl-desktop customer LINK` does first
        from hitl_desktop.app.customer import show_window
        from hitl_desktop.app.qt import qt_app

        qt_app("Support chat")
        window = show_window()
    else:
        from hitl_desktop.client.workspace import Workspace
        from hitl_desktop.ui import theme
        from hitl_desktop.ui.agent.window import AgentWindow

        theme.apply_app_style(app)
        window = AgentWindow(Workspace(), config_dir=Path(tempfile.mkdtemp()), restore=False)
        window.show()

    def shown() -> None:
        sys.stdout.write("shown\n")
        sys.stdout.flush()
        app.quit()

    QTimer.singleShot(0, shown)
    app.exec()


def _start_time(kind: str) -> float:
    t0 = time.perf_counter()
    proc = subprocess.Popen([sys.executable, __file__, "--child-window", kind],
                            stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    line = proc.stdout.readline()
    elapsed = time.perf_counter() - t0
    proc.wait(timeout=30)
    if line.strip() != "shown":
        raise RuntimeError(f"{kind} window did not start")
    return elapsed


def _has_agent_window() -> bool:
    try:
        import hitl_desktop.ui.agent.window  # noqa: F401
    except ImportError:
        return False
    return True


# ----------------------------------------------------------------------------- main


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="short run (CI)")
    parser.add_argument("--rate", type=float, default=500.0, help="tokens per second")
    parser.add_argument("--seconds", type=float, default=None)
    parser.add_argument("--host-child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--child-window", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--data-dir", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen" if not os.environ.get("DISPLAY")
                          else "xcb")
    if args.host_child:
        asyncio.run(_host_child(args.rate, args.seconds or 2.0, Path(args.data_dir)))
        return 0
    if args.child_window:
        _child_window(args.child_window)
        return 0

    import logging

    import qasync
    from PySide6.QtWidgets import QApplication

    logging.basicConfig(level=logging.WARNING)
    seconds = args.seconds or (2.0 if args.quick else 5.0)
    repeats = 3 if args.quick else 7

    app = QApplication([sys.argv[0]])
    app.setQuitOnLastWindowClosed(False)
    loop = qasync.QEventLoop(app)
    asyncio.set_event_loop(loop)
    tmp = Path(tempfile.mkdtemp(prefix="hitl-bench-"))
    runs: list[tuple[str, dict[str, Any]]] = []
    with loop:
        remote = SubprocessHost(_spawn_host(args.rate, seconds, tmp))
        runs.append(("host in another process (separate PCs)",
                     loop.run_until_complete(_measure_stall(remote, tmp))))
        local = InProcessHost(tmp, args.rate, seconds)
        runs.append(("host on the same loop (hitl-desktop demo)",
                     loop.run_until_complete(_measure_stall(local, tmp))))

    kinds = ["bare", "customer"] + (["agent"] if _has_agent_window() else [])
    starts: dict[str, list[float]] = {k: [] for k in kinds}
    _start_time("bare")  # warm the OS file cache once, unmeasured
    for _ in range(repeats):
        for kind in kinds:  # interleaved, so drift hits every kind alike
            starts[kind].append(_start_time(kind))
    medians = {k: statistics.median(v) for k, v in starts.items()}

    print(f"platform: {os.environ['QT_QPA_PLATFORM']}, python {sys.version.split()[0]}")
    for label, stall in runs:
        sent = stall["sent"]
        print(f"stream, {label}: {sent['tokens']} tokens in {sent['elapsed']:.2f} s "
              f"({sent['tokens'] / sent['elapsed']:.0f} tokens/s) into the {stall['window']}")
        if stall["draft_chars"] is not None:
            ok = "all arrived" if stall["draft_chars"] == sent["chars"] else "MISMATCH"
            print(f"  draft shown: {stall['draft_chars']} of {sent['chars']} chars ({ok})")
        worst = stall["stream"]["max_ms"]
        print(f"  Qt loop worst stall while streaming: {worst:.1f} ms "
              f"(p99 gap {stall['stream']['p99_ms']:.2f} ms, {stall['stream']['ticks']:.0f} "
              f"ticks)  goal < 16 ms: {'PASS' if worst < 16 else 'FAIL'}")
        print(f"  idle baseline worst gap: {stall['idle']['max_ms']:.1f} ms "
              f"(p99 {stall['idle']['p99_ms']:.2f} ms); stall ratio streaming/idle: "
              f"{worst / max(stall['idle']['max_ms'], 0.001):.2f}x")
    print(f"window start (spawn to shown, median of {repeats}):")
    for kind in kinds:
        ratio = medians[kind] / medians["bare"]
        verdict = "" if kind == "bare" else \
            f"  ratio {ratio:.2f}x  goal <= 1.5x: {'PASS' if ratio <= 1.5 else 'FAIL'}"
        print(f"  {kind:8s} {medians[kind] * 1000:7.0f} ms{verdict}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
