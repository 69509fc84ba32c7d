"""What keeps a co-pilot turn cheap (issue 18): coalesced draft frames, a paced offline
stream that yields in frame-sized steps, and knowledge answers kept until the index
changes. Real co-pilot, stores and index in a temp dir; the outbox records, with times."""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from hitl_desktop.assistant.base import TurnRequest
from hitl_desktop.assistant.offline.events import FRAME_S, Emitter, Pace, Reply
from hitl_desktop.assistant.stream import event_from_dict
from hitl_desktop.core.protocol import (
    AssistantStatus,
    DraftCompleted,
    DraftDelta,
    Payload,
    host_type,
)
from hitl_desktop.host.copilot import DRAFT_DELTA_INTERVAL_S, READY_DELAY_S
from hitl_desktop.knowledge.index import KnowledgeIndex
from tests.support.fake_openai import Reply as ScriptReply
from tests.support.fake_openai import reply_events
from tests.unit.test_copilot import SID, RecordingOutbox, make
from tests.unit.test_knowledge_index import small_kb, write  # noqa: F401 (fixture)


class TimedOutbox(RecordingOutbox):
    def __init__(self) -> None:
        super().__init__()
        self.at: list[float] = []

    async def publish(self, session_id: str, payload: Payload, *, ref: str | None = None) -> int:
        self.at.append(time.monotonic())
        return await super().publish(session_id, payload, ref=ref)

    def deltas(self) -> list[tuple[float, DraftDelta]]:
        return [(t, p) for t, (_s, _kind, p) in zip(self.at, self.sent, strict=True)
                if isinstance(p, DraftDelta)]


class PausingProvider:
    """Streams a scripted reply, one event every ``delay`` s, with one long pause."""

    name = "script"
    model = "scripted"
    is_ai = True

    def __init__(self, reply: ScriptReply, delay: float, pause_after: int | None = None,
                 pause: float = 0.0) -> None:
        self.reply, self.delay, self.pause_after, self.pause = reply, delay, pause_after, pause
        self.paused_at: float | None = None

    async def stream(self, request: TurnRequest) -> AsyncIterator[Any]:
        body = {"model": self.model, "tools": request.tools, "include": []}
        deltas = 0
        for data in reply_events(self.reply, body):
            await asyncio.sleep(self.delay)
            yield event_from_dict(data)
            if data["type"] == "response.output_text.delta":
                deltas += 1
                if deltas == self.pause_after:
                    self.paused_at = time.monotonic()
                    await asyncio.sleep(self.pause)

    async def aclose(self) -> None:
        return None


def assemble(deltas: list[DraftDelta]) -> str:
    text = ""
    for d in deltas:
        assert d.offset == len(text), "each delta continues where the previous one ended"
        text += d.text
    return text


async def test_a_streaming_draft_goes_out_in_coalesced_frames(tmp_path: Path) -> None:
    outbox = TimedOutbox()
    text = "Orders can be cancelled while they are pending. " * 12
    provider = PausingProvider(ScriptReply(text=text, chunk=4), delay=0.002)
    copilot = await make(tmp_path, outbox, provider)
    try:
        started = time.monotonic()
        await copilot.on_customer_message(SID, "m1", "Can I cancel?")
        (done,) = await outbox.until("draft.completed")
        took = time.monotonic() - started
        deltas = outbox.deltas()
        events = len(text) // 4
        # one frame per window (plus the first, sent at once, and the final flush)
        assert 3 <= len(deltas) <= took / DRAFT_DELTA_INTERVAL_S + 3 < events / 3
        gaps = [b - a for (a, _), (b, _) in itertools.pairwise(deltas[:-1])]  # last: the end
        assert min(gaps) >= DRAFT_DELTA_INTERVAL_S * 0.8
        assert isinstance(done, DraftCompleted)
        assert assemble([d for _, d in deltas]) == done.text
        assert done.text.strip() == text.strip()
        kinds = [host_type(p) for _s, _k, p in outbox.sent]
        assert kinds.index("draft.completed") > max(
            i for i, k in enumerate(kinds) if k == "draft.delta")
    finally:
        await copilot.aclose()


async def test_text_pending_when_the_stream_pauses_goes_out_within_a_window(
        tmp_path: Path) -> None:
    outbox = TimedOutbox()
    provider = PausingProvider(ScriptReply(text="One two three four five six seven eight.",
                                           chunk=4), delay=0.001, pause_after=4, pause=0.5)
    copilot = await make(tmp_path, outbox, provider)
    try:
        await copilot.on_customer_message(SID, "m1", "Hello?")
        await outbox.until("draft.completed")
        assert provider.paused_at is not None
        during = [(t, d) for t, d in outbox.deltas() if provider.paused_at <= t
                  < provider.paused_at + 0.5]
        # the four deltas before the pause are all out before the stream resumes
        assert during, "pending text waited for the stream instead of the window"
        assert during[0][0] - provider.paused_at <= DRAFT_DELTA_INTERVAL_S + 0.1
        sent = assemble([d for t, d in outbox.deltas() if t < provider.paused_at + 0.5])
        assert sent == "One two three four five"[:16]  # four 4-character deltas
    finally:
        await copilot.aclose()


async def test_a_paced_offline_stream_yields_frame_sized_deltas() -> None:
    text = " ".join(f"word{i}" for i in range(60)) + "."
    reply = Reply(["q"], [], None, text)
    request = TurnRequest(instructions="", history=[], tools=[], session_id=SID,
                          metadata={"turn_id": "t"})
    pace = Pace(delay_s=0.006)
    assert pace.per_event == round(FRAME_S / 0.006)
    started = time.monotonic()
    deltas = [e.delta async for e in Emitter(pace, request, reply).events()
              if e.type == "response.output_text.delta"]
    took = time.monotonic() - started
    assert "".join(deltas) == text
    assert len(deltas) == -(-60 // pace.per_event)  # 60 words, per_event at a time
    assert took >= 60 * 0.006 * 0.9  # the same words per second as before
    unpaced = [e async for e in Emitter(Pace(), request, reply).events()
               if e.type == "response.output_text.delta"]
    assert len(unpaced) == 60  # tests and the eval still see one word per delta


def test_search_answers_are_kept_until_the_index_changes(small_kb: Path,  # noqa: F811
                                                         tmp_path: Path) -> None:
    index = KnowledgeIndex.open(small_kb, tmp_path / "ix.sqlite3")
    try:
        first = index.search("cancel shipped order")
        assert first and first[0].article_id == "faq/cancel-order"
        again = index.search("cancel shipped order")
        assert again == first and again is not first  # a copy: callers may change it
        assert index.cached_article("faq/returns") == (False, None)
        art = index.get("faq/returns")
        assert art is not None and index.cached_article("faq/returns") == (True, art)
        assert index.get("nope") is None and index.cached_article("nope") == (True, None)
        write(small_kb, "faq", "cancel-order", "How to cancel an order",
              "## Shipped orders\n\nA shipped order is stopped by the courier instead.\n",
              "cancel, cancellation")
        assert index.refresh()
        assert index.cached_article("faq/returns") == (False, None)
        fresh = index.search("cancel shipped order")
        assert "courier" in fresh[0].text and fresh != first
    finally:
        index.close()


class BroadcastOutbox(TimedOutbox):
    """Like the relay: a host-wide status broadcast to every agent."""

    def __init__(self) -> None:
        super().__init__()
        self.statuses: list[tuple[float, str]] = []

    def broadcast_status(self, status: AssistantStatus) -> None:
        self.statuses.append((time.monotonic(), status.state))


async def test_ready_waits_until_the_co_pilot_has_been_idle(tmp_path: Path) -> None:
    """Back-to-back drafts keep the host "busy": no busy/ready flip per draft (each one a
    frame to every agent connection of the host)."""
    outbox = BroadcastOutbox()
    provider = PausingProvider(ScriptReply(text="Happy to help with that.", chunk=6),
                               delay=0.001)
    copilot = await make(tmp_path, outbox, provider)
    try:
        for n in range(3):
            await copilot.on_customer_message(SID, f"m{n}", "Hello?")
            await outbox.until("draft.completed", n + 1)
            await asyncio.sleep(0.1)  # the next customer line comes soon after
        last_done = time.monotonic()
        assert [s for _, s in outbox.statuses] == ["busy"]
        while len(outbox.statuses) < 2:  # noqa: ASYNC110 (the ready is a timer away)
            await asyncio.sleep(0.05)
        at, state = outbox.statuses[-1]
        assert state == "ready" and at - last_done >= READY_DELAY_S - 0.3
        assert copilot.status().state == "ready"
    finally:
        await copilot.aclose()
