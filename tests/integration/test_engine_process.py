"""The offline engine in its own process (issue 18): a real host started as every mode
starts it (``app.services``), a real spawned engine process, real sockets. Drafts are
planned there; a process killed mid-turn loses no turn (the host drafts in its own
thread from then on, saying so once); stopping the host leaves no process behind, nor
does killing it; the setting turns it off."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any, cast

import pytest

from hitl_desktop.app.services import ENGINE_PROCESS, RunningHost, copilot_factory, start_host
from hitl_desktop.assistant.base import TurnRequest
from hitl_desktop.assistant.offline import OfflineProvider
from hitl_desktop.assistant.offline.process import (
    MAX_IN_FLIGHT,
    EngineProcess,
    EngineSpec,
    SupervisedEngine,
)
from hitl_desktop.config import Settings, resolve_paths
from hitl_desktop.core.protocol import ChatSend
from hitl_desktop.core.turns import CustomerLine, SentReply
from hitl_desktop.host.copilot import DRAFT_DELTA_INTERVAL_S, HostCopilot
from hitl_desktop.knowledge.articles import default_knowledge_dir
from hitl_desktop.knowledge.index import KnowledgeIndex
from tests.support.protocol_client import Client

REPO = Path(__file__).resolve().parents[2]
MAX_SENT = 4  # (calls at the worker at once, for the test of their order)
QUESTION = "How long does a refund take?"
# the pipe's I/O: the loop's own (POSIX) or two threads (Windows, or a loop without
# add_reader); both run here
IO_MODES = pytest.mark.parametrize("thread_io", [False, True], ids=["loop-io", "thread-io"])


def alive(pid: int) -> bool:
    """The process exists and is not a zombie waiting for a reaper."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return True  # no /proc here: it exists
    return state not in ("Z", "X")


async def gone(pid: int, within: float = 10.0) -> bool:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if not alive(pid):
            return True
        await asyncio.sleep(0.05)
    return False


class Chat:
    """A host with a verified customer and an agent on one session."""

    def __init__(self, host: RunningHost, sid: str, customer: Client, agent: Client) -> None:
        self.host, self.sid, self.customer, self.agent = host, sid, customer, agent

    @property
    def engine(self) -> OfflineProvider:
        return cast(OfflineProvider, cast(HostCopilot, self.host.relay.copilot).provider)

    @property
    def supervisor(self) -> SupervisedEngine:
        supervisor = self.engine.process
        assert isinstance(supervisor, SupervisedEngine)
        return supervisor

    @property
    def process(self) -> EngineProcess:
        """The current worker."""
        return self.supervisor.current

    async def draft(self, text: str) -> dict[str, Any]:
        n = len(self.agent.of("draft.completed")) + 1
        await self.customer.send(ChatSend(text=text), self.sid)
        data: dict[str, Any] = (await self.agent.wait("draft.completed", count=n))["data"]
        return data

    async def ready(self) -> int:
        for _ in range(600):  # spawning and loading the engine: a second or two
            if self.process.ready:
                assert self.process.pid is not None
                return self.process.pid
            assert not self.supervisor.lost
            await asyncio.sleep(0.05)
        raise AssertionError("the engine process never became ready")


async def open_chat(tmp_path: Path, **extra: Any) -> Chat:
    paths = resolve_paths(tmp_path / "data", tmp_path / "config")
    settings = Settings(provider="offline", extra={"offline_delay_ms": 0, **extra})
    host = await start_host(paths, settings, copilot_factory=copilot_factory(paths, settings))
    created = host.create_session(customer_id="CUST1001", title="engine process")
    customer = await Client.connect(host.local_url, created.customer_token)
    agent = await Client.connect(host.local_url, created.agent_token)
    return Chat(host, created.session_id, customer, agent)


@pytest.fixture
async def chat(tmp_path: Path) -> AsyncIterator[Chat]:
    opened = await open_chat(tmp_path)
    yield opened
    await opened.customer.close()
    await opened.agent.close()
    await opened.host.stop()


async def test_drafts_are_planned_in_the_engine_process(chat: Chat) -> None:
    pid = await chat.ready()
    assert pid != os.getpid() and alive(pid)
    draft = await chat.draft(QUESTION)
    assert "refund" in draft["text"].lower() and draft["citations"]
    cancel = await chat.draft("please cancel ORD1008")  # a tool round, then the draft
    assert chat.agent.of("tool.call", name="get_order")
    assert cancel["text"]
    assert chat.process.calls >= 3 and not chat.process.lost
    assert chat.process.codec_s > 0  # the host's pickling, counted for the bench


async def test_a_worker_killed_mid_turn_loses_no_turn(
    chat: Chat, caplog: pytest.LogCaptureFixture
) -> None:
    pid = await chat.ready()
    await chat.draft(QUESTION)
    first = chat.process
    os.kill(pid, signal.SIGSTOP)  # the next call waits in the pipe: killed while in flight
    n = len(chat.agent.of("draft.completed")) + 1
    with caplog.at_level(logging.WARNING):
        await chat.customer.send(ChatSend(text="What is your return policy?"), chat.sid)
        await chat.agent.wait("draft.started", count=n)
        await asyncio.sleep(0.2)  # the round trip is under way, the worker stopped
        assert len(chat.agent.of("draft.completed")) < n
        os.kill(pid, signal.SIGKILL)
        draft = (await chat.agent.wait("draft.completed", count=n))["data"]
        assert "return" in draft["text"].lower()
        again = await chat.draft(QUESTION)  # in the host's thread; a new worker starts
        assert "refund" in again["text"].lower()
        assert first.lost and not first.ready
        new_pid = await chat.ready()  # the next worker
        calls = chat.process.calls
        assert "refund" in (await chat.draft(QUESTION))["text"].lower()
    assert not chat.agent.of("draft.failed")
    assert new_pid != pid and chat.supervisor.restarts == 1
    assert chat.process.calls == calls + 1  # planned by the new worker
    lines = [r for r in caplog.records if "engine's process is not available" in r.message]
    assert len(lines) == 1, [r.message for r in caplog.records]
    assert any("starting its process again" in r.message for r in caplog.records)
    assert await gone(pid)


async def test_a_busy_worker_is_passed_by(chat: Chat) -> None:
    """With MAX_IN_FLIGHT calls waiting for the worker, a turn is planned in the host's
    thread (a worker starved of CPU must not make every draft queue behind it)."""
    await chat.ready()
    await chat.draft(QUESTION)
    calls = chat.process.calls
    chat.process.in_flight = MAX_IN_FLIGHT  # as if that many were waiting
    try:
        assert not chat.process.free
        assert "return" in (await chat.draft("What is your return policy?"))["text"].lower()
        assert chat.process.calls == calls  # drafted here, not there
    finally:
        chat.process.in_flight = 0
    await chat.draft(QUESTION)
    assert chat.process.calls == calls + 1 and not chat.process.lost


async def test_stopping_the_host_stops_the_engine_process(tmp_path: Path) -> None:
    chat = await open_chat(tmp_path)
    pid = await chat.ready()
    await chat.draft(QUESTION)
    await chat.customer.close()
    await chat.agent.close()
    await chat.host.stop()
    assert not alive(pid)  # stopped and reaped by the time stop() returns


async def test_the_setting_keeps_the_engine_in_the_host(tmp_path: Path) -> None:
    chat = await open_chat(tmp_path, **{ENGINE_PROCESS: False})
    try:
        assert chat.engine.process is None
        assert "refund" in (await chat.draft(QUESTION))["text"].lower()
    finally:
        await chat.customer.close()
        await chat.agent.close()
        await chat.host.stop()


async def test_an_engine_process_that_cannot_start_is_not_used(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    index = await asyncio.to_thread(KnowledgeIndex.open, default_knowledge_dir(),
                                    tmp_path / "ix.db")
    engine = OfflineProvider(index)
    (tmp_path / "not-a-dir").write_text("x")
    spec = EngineSpec(data_dir=str(tmp_path / "not-a-dir"), knowledge_dir=None,
                      config_dir=str(tmp_path / "config"), max_results=5)
    request = TurnRequest(instructions="", history=[CustomerLine(text=QUESTION)], tools=[],
                          session_id="s")
    try:
        with caplog.at_level(logging.WARNING):
            engine.process = process = EngineProcess(spec)
            for _ in range(600):
                if process.lost:
                    break
                await asyncio.sleep(0.05)
            assert process.lost and not process.ready
            steps = await engine.steps(request, DRAFT_DELTA_INTERVAL_S)  # in a thread
        assert any("could not start" in r.message for r in caplog.records)
        assert steps and process.calls == 0
    finally:
        await engine.aclose()
        await asyncio.to_thread(index.close)
    assert process.pid is None


def children(pid: int) -> dict[int, bytes]:
    """The child processes of ``pid`` (listed under the thread that started each) and
    their command lines."""
    found = [int(p) for f in Path(f"/proc/{pid}/task").glob("*/children")
             for p in f.read_text().split()]
    return {p: Path(f"/proc/{p}/cmdline").read_bytes() for p in found}


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
async def test_a_killed_host_leaves_no_engine_process(tmp_path: Path) -> None:
    host = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "tests.support.hostproc", str(tmp_path / "data"),
        json.dumps({"copilot": "offline"}),
        cwd=REPO, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    try:
        assert host.stdout is not None
        line = await asyncio.wait_for(host.stdout.readline(), 60)
        assert json.loads(line)["pid"] == host.pid
        engine: dict[int, bytes] = {}
        for _ in range(200):
            engine = children(host.pid)
            if any(b"spawn_main" in c for c in engine.values()):
                break
            await asyncio.sleep(0.05)
        # the engine, and multiprocessing's resource tracker that spawning starts
        assert sum(b"spawn_main" in c for c in engine.values()) == 1, engine
        await asyncio.sleep(0.5)
        host.kill()
        await host.wait()
        for pid in engine:
            assert await gone(pid)
    finally:
        if host.returncode is None:
            host.kill()
            await host.wait()


async def test_a_host_stopped_while_its_engine_loads_stops_at_once(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    chat = await open_chat(tmp_path)
    process = chat.process
    assert not process.ready  # spawning and importing take a second
    await chat.customer.close()
    await chat.agent.close()
    started = time.monotonic()
    with caplog.at_level(logging.WARNING):
        await chat.host.stop()
    assert time.monotonic() - started < 3.0
    assert not process._proc.is_alive()
    assert not any("engine" in r.message for r in caplog.records)


@IO_MODES
async def test_a_session_s_history_goes_to_the_worker_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, thread_io: bool
) -> None:
    """Each call sends only the items after those the worker holds for the session (the
    co-pilot's history lists only grow); a worker that does not hold them asks for the
    whole history. The drafts are the engine's own either way."""
    from hitl_desktop.assistant.offline import process as module

    monkeypatch.setattr(module, "THREAD_IO", thread_io)
    index = await asyncio.to_thread(KnowledgeIndex.open, default_knowledge_dir(),
                                    tmp_path / "ix.db")
    here = OfflineProvider(index)
    spec = EngineSpec(data_dir=str(tmp_path), knowledge_dir=None,
                      config_dir=str(tmp_path / "config"), max_results=5)
    (tmp_path / "config").mkdir()
    process = EngineProcess(spec)
    try:
        for _ in range(600):
            if process.ready:
                break
            await asyncio.sleep(0.05)
        history: list[Any] = [CustomerLine(text=QUESTION, message_id="m1")]

        async def both() -> None:
            request = TurnRequest(instructions="", history=list(history), tools=[],
                                  session_id="s1")
            got = await process.steps(request, 0.0, DRAFT_DELTA_INTERVAL_S)
            want = await asyncio.to_thread(here.compact_steps, request,
                                           DRAFT_DELTA_INTERVAL_S)
            assert not isinstance(got, str)
            assert [[type(u).__name__ for u in ups] for ups, _ in got] == [
                [type(u).__name__ for u in ups] for ups, _ in want]
            assert "".join(getattr(u, "text", "") for ups, _ in got for u in ups
                           if type(u).__name__ == "TextDelta") == "".join(
                getattr(u, "text", "") for ups, _ in want for u in ups
                if type(u).__name__ == "TextDelta")

        await both()
        assert process.items_sent == 1
        history += [SentReply(text="It takes 5 days.", draft_id="d1"),
                    CustomerLine(text="and how do I return a blender?", message_id="m2")]
        await both()
        assert process.items_sent == 3  # the two new items only
        history.append(CustomerLine(text="What is your return policy?", message_id="m3"))
        process._known["s1"] = (len(history), history[-1])  # as if the worker held it
        process._known.move_to_end("s1")
        history.append(CustomerLine(text="thanks", message_id="m4"))
        before = process.items_sent
        await both()  # the worker holds 3 items, not 4: it asks for all 5
        assert process.items_sent == before + 1 + len(history)
    finally:
        await asyncio.to_thread(process.close)
        await asyncio.to_thread(index.close)


@IO_MODES
async def test_calls_are_pipelined_and_a_dead_worker_fails_those_in_flight(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, thread_io: bool
) -> None:
    """Calls go to the worker without waiting for the answers before them (so the worker
    is never idle while the host pickles), each caller gets its own session's draft; a
    worker that dies with calls in flight fails every one of them (the callers draft in
    their own thread) and is not used again. The loop does the pipe's I/O itself (no
    thread per call) where it can."""
    from hitl_desktop.assistant.offline import process as module

    monkeypatch.setattr(module, "THREAD_IO", thread_io)
    monkeypatch.setattr(module, "MAX_SENT", 2)  # (most calls sent as answers are read)
    index = await asyncio.to_thread(KnowledgeIndex.open, default_knowledge_dir(),
                                    tmp_path / "ix.db")
    here = OfflineProvider(index)
    (tmp_path / "config").mkdir()
    spec = EngineSpec(data_dir=str(tmp_path), knowledge_dir=None,
                      config_dir=str(tmp_path / "config"), max_results=5)
    process = EngineProcess(spec)
    questions = [QUESTION, "and how do I return a blender?", "What is your return policy?",
                 "where is my parcel? it was due yesterday"] * 3

    def request(i: int) -> TurnRequest:
        return TurnRequest(instructions="", history=[CustomerLine(text=questions[i])],
                           tools=[], session_id=f"s{i}")

    def text(steps: Any) -> str:
        return "".join(getattr(u, "text", "") for ups, _ in steps for u in ups
                       if type(u).__name__ == "TextDelta")

    try:
        for _ in range(600):
            if process.ready:
                break
            await asyncio.sleep(0.05)
        calls = [asyncio.ensure_future(process.steps(request(i), 0.0, DRAFT_DELTA_INTERVAL_S))
                 for i in range(len(questions))]
        most = 0
        while not all(c.done() for c in calls):
            most = max(most, len(process._pending))
            await asyncio.sleep(0.001)
        assert most > 1  # sent ahead of the answers
        assert (process._reader is not None) is thread_io
        for i, call in enumerate(calls):
            want = await asyncio.to_thread(here.compact_steps, request(i),
                                           DRAFT_DELTA_INTERVAL_S)
            assert text(call.result()) == text(want)
        assert process.calls == len(questions) and process.codec_s > 0
        # a call that cannot be sent (it does not pickle) fails alone, whoever sends it
        bad = TurnRequest(instructions="", history=[CustomerLine(text=QUESTION)], tools=[],
                          session_id="bad", metadata=cast(Any, {"x": lambda: None}))
        calls = [asyncio.ensure_future(process.steps(
            bad if i == 4 else request(i), 0.0, DRAFT_DELTA_INTERVAL_S)) for i in range(8)]
        results = await asyncio.wait_for(asyncio.gather(*calls, return_exceptions=True), 20)
        assert [isinstance(r, Exception) for r in results] == [i == 4 for i in range(8)]
        assert process.calls == len(questions) + 7
        assert process.free  # (not lost)

        calls = [asyncio.ensure_future(process.steps(request(i), 0.0, DRAFT_DELTA_INTERVAL_S))
                 for i in range(6)]
        while not process._pending:  # noqa: ASYNC110 (another thread fills it)
            await asyncio.sleep(0.001)
        assert process.pid is not None
        os.kill(process.pid, signal.SIGKILL)
        results = await asyncio.wait_for(asyncio.gather(*calls, return_exceptions=True), 10)
        failed = [r for r in results if isinstance(r, ConnectionError)]
        assert failed and all(isinstance(r, (ConnectionError, list)) for r in results)
        assert process.lost and not process._pending
        with pytest.raises(ConnectionError):
            await asyncio.wait_for(process.steps(request(0), 0.0, DRAFT_DELTA_INTERVAL_S), 10)
    finally:
        await asyncio.to_thread(process.close)
        await asyncio.to_thread(index.close)


@IO_MODES
async def test_a_turn_s_second_call_does_not_queue_behind_later_turns(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, thread_io: bool
) -> None:
    """At most MAX_SENT calls are at the worker; the others wait in the host in the
    order their turns started: a turn's second call (its draft, after a tool ran) goes
    before the first calls of the turns begun after it, not behind all of them."""
    from hitl_desktop.assistant.offline import process as module

    monkeypatch.setattr(module, "MAX_SENT", MAX_SENT)
    monkeypatch.setattr(module, "THREAD_IO", thread_io)
    (tmp_path / "config").mkdir()
    spec = EngineSpec(data_dir=str(tmp_path), knowledge_dir=None,
                      config_dir=str(tmp_path / "config"), max_results=5)
    process = EngineProcess(spec)
    line = CustomerLine(text="where is my parcel? it was due yesterday", message_id="m0")

    def request(sid: str, turn: str, *history: Any) -> TurnRequest:
        return TurnRequest(instructions="", history=list(history), tools=[], session_id=sid,
                           metadata={"turn_id": turn})

    order: list[str] = []

    async def call(name: str, req: TurnRequest) -> None:
        got = await process.steps(req, 0.0, DRAFT_DELTA_INTERVAL_S)
        assert not isinstance(got, str) and got
        order.append(name)

    try:
        for _ in range(600):
            if process.ready:
                break
            await asyncio.sleep(0.05)
        assert process.pid is not None
        await call("old", request("s0", "t-old", line))  # the old turn's first call
        os.kill(process.pid, signal.SIGSTOP)  # a busy worker: the calls queue up
        try:
            later = [asyncio.ensure_future(call(f"t{i}", request(f"s{i}", f"t{i}", line)))
                     for i in range(1, 11)]
            for _ in range(500):
                if len(process._pending) == MAX_SENT:
                    break
                await asyncio.sleep(0.01)
            await asyncio.sleep(0.05)
            assert len(process._pending) == MAX_SENT  # the rest wait in the host
            assert len(process._waiting) == 10 - MAX_SENT
            second = asyncio.ensure_future(call("old again", request(
                "s0", "t-old", line, CustomerLine(text="thanks", message_id="m1"))))
            await asyncio.sleep(0.05)
            later[-1].cancel()  # a caller that gave up while its call waited here
            await asyncio.sleep(0.05)
        finally:
            os.kill(process.pid, signal.SIGCONT)
        await asyncio.wait_for(asyncio.gather(second, *later, return_exceptions=True), 20)
        # the calls already at the worker first, then the old turn's, then the rest; the
        # one whose caller gave up was never sent
        assert order[1:] == [f"t{i}" for i in range(1, MAX_SENT + 1)] + ["old again"] + [
            f"t{i}" for i in range(MAX_SENT + 1, 10)], order
        assert process.calls == 1 + 9 + 1
    finally:
        await asyncio.to_thread(process.close)


@IO_MODES
async def test_a_hung_worker_is_stopped_and_its_turn_fails_visibly(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture,
    thread_io: bool,
) -> None:
    """A worker that stops answering (alive, not dead: SIGSTOP) is killed once calls have
    waited the deadline with no answer: the turn it was on ends in draft.failed (not
    planned again in the host, where the same input could hang a thread), a turn queued
    behind it is drafted in the host, and the next turns complete there."""
    from hitl_desktop.assistant.offline import process as module

    monkeypatch.setattr(module, "CALL_DEADLINE_S", 1.0)
    monkeypatch.setattr(module, "THREAD_IO", thread_io)
    chat = await open_chat(tmp_path)
    other = chat.host.create_session(customer_id="CUST1002", title="beside")
    customer2 = await Client.connect(chat.host.local_url, other.customer_token)
    agent2 = await Client.connect(chat.host.local_url, other.agent_token)
    try:
        pid = await chat.ready()
        assert chat.process.call_deadline_s == 1.0
        await chat.draft(QUESTION)
        first = chat.process
        os.kill(pid, signal.SIGSTOP)
        t0 = time.monotonic()
        with caplog.at_level(logging.WARNING):
            await chat.customer.send(ChatSend(text="What is your return policy?"), chat.sid)
            await chat.agent.wait("draft.started", count=2)
            await customer2.send(ChatSend(text=QUESTION), other.session_id)
            failed = (await chat.agent.wait("draft.failed", within=15))["data"]
            behind = (await agent2.wait("draft.completed", within=15))["data"]
        waited = time.monotonic() - t0
        assert "no answer within 1 s" in failed["message"], failed
        assert "refund" in behind["text"].lower()
        assert 1.0 <= waited < 6.0, waited
        assert first.hung and first.lost
        assert await gone(pid)
        again = await chat.draft(QUESTION)  # the session goes on, drafted in the host
        assert "refund" in again["text"].lower()
        assert await chat.ready() != pid and chat.supervisor.restarts == 1
        assert "refund" in (await chat.draft(QUESTION))["text"].lower()
        lines = [r for r in caplog.records if "answered nothing for" in r.message]
        assert len(lines) == 1, [r.message for r in caplog.records]
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
        for client in (customer2, agent2, chat.customer, chat.agent):
            await client.close()
        await chat.host.stop()


async def test_a_worker_lost_again_and_again_is_given_up(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """Workers are started again at most RESTARTS times in the window: an engine that
    dies on every turn does not make the host spawn processes in a loop."""
    from hitl_desktop.assistant.offline import process as module

    monkeypatch.setattr(module, "RESTARTS", 1)
    (tmp_path / "config").mkdir()
    supervisor = SupervisedEngine(EngineSpec(data_dir=str(tmp_path), knowledge_dir=None,
                                             config_dir=str(tmp_path / "config"),
                                             max_results=5))
    pids: list[int] = []

    async def ready_then_kill() -> None:
        for _ in range(600):
            if supervisor.ready:
                break
            await asyncio.sleep(0.05)
        assert supervisor.pid is not None and supervisor.pid not in pids
        pids.append(supervisor.pid)
        os.kill(supervisor.pid, signal.SIGKILL)
        for _ in range(200):
            if supervisor.current.lost:
                return
            await asyncio.sleep(0.05)
        raise AssertionError("the killed worker was not noticed")

    try:
        with caplog.at_level(logging.WARNING):
            await ready_then_kill()
            assert not supervisor.free  # starts the next one
            await ready_then_kill()
            assert not supervisor.free and supervisor.lost  # the budget is spent
            await asyncio.sleep(0.3)
        assert supervisor.restarts == 1 and len(pids) == 2
        assert sum("not starting it again" in r.message for r in caplog.records) == 1
    finally:
        await asyncio.to_thread(supervisor.close)
    for pid in pids:
        assert await gone(pid)
