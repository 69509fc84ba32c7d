"""Host-side overhead from a provider event to the agent socket (DESIGN §8: p99 < 2 ms).

One run, two measurements on the same machine and the same event loop:

1. Host path: a real host (``start_host`` + the co-pilot) drives the real
   OpenAI provider through the real ``openai`` client against the local fake
   Responses API (served from its own thread, so its work does not sit inside
   the measured path). A thin wrapper timestamps every ``output_text.delta``
   the moment the provider yields it; an agent WebSocket client timestamps each
   ``draft.delta`` frame when it arrives. The host coalesces text into one frame
   per 40 ms (docs/PROTOCOL.md), so the overhead is timed from the *last* event a
   frame carries (the earlier ones waited for the frame by design; that wait is
   printed apart, "coalescing").
   Between the two: the stream translator, the turn loop, the relay's publish
   (encode, fan-out, per-connection queue and writer), the socket.
2. Baseline: a bare ``websockets`` server sends frames of the same size at the
   same pace to a client on the same loop; send -> receive.

The host overhead is the difference of the two distributions (p50 and p99); the
budget (p99 < 2 ms) is checked on the conservative bound host p99 - bare p50, since
a difference of two p99s is noisy on a shared machine. A bare run follows each
turn, so both see the same machine conditions. ``--quick`` runs fewer, shorter turns.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from websockets.asyncio.client import connect  # noqa: E402
from websockets.asyncio.server import ServerConnection, serve  # noqa: E402

from hitl_desktop.app.services import start_host  # noqa: E402
from hitl_desktop.assistant.base import TurnRequest  # noqa: E402
from hitl_desktop.assistant.openai_provider import OpenAIProvider  # noqa: E402
from hitl_desktop.config import Settings, resolve_paths  # noqa: E402
from hitl_desktop.core.protocol import ChatSend, DraftDelta, Hello, encode  # noqa: E402
from hitl_desktop.host.copilot import build_copilot  # noqa: E402
from hitl_desktop.host.tokens import TokenKind  # noqa: E402
from tests.support.fake_openai import FakeOpenAI, Reply  # noqa: E402

BUDGET_P99_MS = 2.0
CHUNK = 4  # characters per text delta (a token or so)
WORDS = ("You can cancel an order while it is still pending or processing; the refund "
         "reaches the original payment method within 5-10 business days. ")


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    k = min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))
    return ordered[k]


def summary(name: str, ms: list[float]) -> str:
    return (f"{name:<34} p50 {pct(ms, 50):7.3f} ms   p99 {pct(ms, 99):7.3f} ms   "
            f"mean {statistics.fmean(ms):7.3f} ms   n={len(ms)}")


# ----------------------------------------------------------------- the fake, in its own thread


class FakeInThread:
    """The fake Responses API on a loop of its own (its SSE work stays off our loop)."""

    def __init__(self) -> None:
        self.fake = FakeOpenAI()
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="fake-openai",
                                       daemon=True)

    def __enter__(self) -> FakeOpenAI:
        self.thread.start()
        asyncio.run_coroutine_threadsafe(self.fake.start(), self.loop).result(10)
        return self.fake

    def __exit__(self, *exc: object) -> None:
        asyncio.run_coroutine_threadsafe(self.fake.close(), self.loop).result(10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
        self.loop.close()


class StampingProvider:
    """Wraps a provider; records when each text delta leaves it, keyed by draft offset."""

    def __init__(self, inner: OpenAIProvider) -> None:
        self.inner = inner
        self.name = inner.name
        self.model = inner.model
        self.is_ai = inner.is_ai
        self.stamps: dict[int, float] = {}

    async def stream(self, request: TurnRequest) -> AsyncIterator[Any]:
        offset = 0
        async for event in self.inner.stream(request):
            if event.type == "response.output_text.delta":
                self.stamps[offset] = time.perf_counter()
                offset += len(event.delta)
            yield event

    async def aclose(self) -> None:
        await self.inner.aclose()


# ----------------------------------------------------------------- measurements


async def host_path(turns: int, deltas: int, delay: float, data_dir: Path,
                    baseline: list[float] | None = None, holds: list[float] | None = None,
                    frames: list[int] | None = None) -> list[float]:
    """Provider yield -> agent socket receipt, per text delta, in ms. With ``baseline``,
    a bare-websocket run of the same size follows each turn (same machine conditions)."""
    text = (WORDS * (deltas * CHUNK // len(WORDS) + 1))[: deltas * CHUNK]
    latencies: list[float] = []
    frames = frames if frames is not None else [0, 0]  # frames, provider events in them
    with FakeInThread() as fake:
        fake.responder = lambda body: Reply(text=text, chunk=CHUNK, delay=delay)
        paths = resolve_paths(data_dir, data_dir / "config").ensure()
        settings = Settings(provider="openai", model="gpt-4.1-mini")
        provider = StampingProvider(OpenAIProvider.from_settings(
            paths, settings, api_key=fake.api_key, base_url=fake.base_url))
        host = await start_host(paths, settings, port=0, copilot_factory=lambda outbox:
                                build_copilot(paths, settings, outbox, provider=provider))
        try:
            created = host.create_session(customer_id="CUST1001")
            sid = created.session_id
            agent_token = host.relay.tokens.issue(TokenKind.AGENT_SESSION, session_id=sid)
            async with connect(host.local_url) as agent, \
                    connect(host.local_url) as customer:
                await agent.send(encode("hello", Hello(token=agent_token)))
                await customer.send(encode("hello", Hello(token=created.customer_token)))
                for _ in range(turns):
                    provider.stamps.clear()
                    received: dict[int, tuple[float, int]] = {}
                    await customer.send(encode("chat.send", ChatSend(text="How do I cancel?"),
                                               session=sid))
                    while True:
                        raw = await agent.recv()
                        at = time.perf_counter()
                        frame = json.loads(raw)
                        kind = frame["type"]
                        if kind == "draft.delta":
                            data = frame["data"]
                            received[data["offset"]] = (at, len(data["text"]))
                        elif kind in ("draft.completed", "draft.failed"):
                            if kind == "draft.failed":
                                raise RuntimeError(f"draft failed: {frame['data']}")
                            break
                    # the host sends one draft.delta per 40 ms with every event since
                    # (docs/PROTOCOL.md): a frame's *last* event measures the host's path;
                    # its first one also waited for the frame, by design (``holds``)
                    for offset, (at, length) in received.items():
                        inside = [t for o, t in provider.stamps.items()
                                  if offset <= o < offset + length]
                        if inside:
                            latencies.append((at - max(inside)) * 1000)
                            if holds is not None:
                                holds.append((at - min(inside)) * 1000)
                            frames[0] += 1
                            frames[1] += len(inside)
                    if baseline is not None:
                        baseline.extend(await bare_baseline(1, deltas, delay))
        finally:
            await host.stop()
    return latencies


async def bare_baseline(turns: int, deltas: int, delay: float) -> list[float]:
    """A bare websockets send -> receive of same-sized frames at the same pace, in ms."""
    frame = encode("draft.delta", DraftDelta(turn_id="t_" + "0" * 20, offset=1000,
                                             text="x" * CHUNK), session="s_000000000000")
    sent: dict[int, float] = {}
    latencies: list[float] = []
    total = turns * deltas

    async def handler(ws: ServerConnection) -> None:
        for i in range(total):
            sent[i] = time.perf_counter()
            await ws.send(frame)
            await asyncio.sleep(delay)

    async with serve(handler, "127.0.0.1", 0) as server:
        port = next(iter(server.sockets)).getsockname()[1]
        async with connect(f"ws://127.0.0.1:{port}") as ws:
            for i in range(total):
                await ws.recv()
                at = time.perf_counter()
                latencies.append((at - sent[i]) * 1000)
    return latencies


async def main_async(args: argparse.Namespace) -> int:
    turns = args.turns or (2 if args.quick else 6)
    deltas = args.deltas or (120 if args.quick else 300)
    delay = args.delay
    with tempfile.TemporaryDirectory(prefix="hitl-bench-turn-") as tmp:
        await host_path(1, 20, delay, Path(tmp) / "warmup", [])  # warm imports and caches
        bare: list[float] = []
        holds: list[float] = []
        frames = [0, 0]
        host = await host_path(turns, deltas, delay, Path(tmp) / "run", bare, holds, frames)
    print(f"{turns} turns x {deltas} text deltas of {CHUNK} chars, one every "
          f"{delay * 1000:.1f} ms (the fake API in its own thread; a bare run after each turn)")
    print(summary("bare websocket send -> recv", bare))
    print(summary("frame's last event -> agent socket", host))
    print(summary("frame's first event (coalescing)", holds)
          + f"   {frames[1] / max(1, frames[0]):.1f} events a frame")
    p50 = pct(host, 50) - pct(bare, 50)
    p99 = pct(host, 99) - pct(bare, 99)
    # the difference of two p99s is noisy on a shared machine; the budget is checked on
    # the conservative bound: the host path's p99 minus only the bare median hop
    bound = pct(host, 99) - pct(bare, 50)
    verdict = "PASS" if bound < BUDGET_P99_MS else "FAIL"
    print(f"{'host-side overhead (difference)':<34} p50 {p50:7.3f} ms   p99 {p99:7.3f} ms")
    print(f"{'overhead bound (host p99 - bare p50)':<34} {bound:7.3f} ms   "
          f"budget p99 < {BUDGET_P99_MS:.0f} ms: {verdict}")
    print(f"ratio host/bare: p50 {pct(host, 50) / pct(bare, 50):.2f}x   "
          f"p99 {pct(host, 99) / pct(bare, 99):.2f}x")
    return 0 if verdict == "PASS" else 1


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="short run (CI)")
    parser.add_argument("--turns", type=int, default=None)
    parser.add_argument("--deltas", type=int, default=None, help="text deltas per turn")
    parser.add_argument("--delay", type=float, default=0.002,
                        help="seconds between streamed events (default 0.002 = 500/s)")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    return asyncio.run(main_async(args))


if __name__ == "__main__":
    sys.exit(main())
