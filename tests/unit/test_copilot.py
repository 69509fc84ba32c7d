"""The co-pilot without sockets: its history store, its concurrency rules, engine failures.

The outbox here records what the co-pilot publishes (the relay is tested through
sockets in tests/integration/test_copilot_*.py); the provider replays scripted
turns as real ``openai.types.responses`` event objects; the shop database,
catalog and conversation store are the real ones in a temp dir.
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
import threading
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from hitl_desktop.assistant.base import TurnRequest
from hitl_desktop.assistant.stream import event_from_dict
from hitl_desktop.config import Settings, resolve_paths
from hitl_desktop.core import identity as ident
from hitl_desktop.core.ports import OperationError
from hitl_desktop.core.protocol import Payload, SessionIdentity, SessionSummary, host_type
from hitl_desktop.core.turns import (
    ApprovalOutcome,
    CustomerLine,
    SentReply,
    ToolCallItem,
    ToolOutputItem,
)
from hitl_desktop.host.conversation import ConversationStore
from hitl_desktop.host.copilot import HostCopilot, build_copilot
from hitl_desktop.secrets import store_api_key
from tests.support.catalogs import write_policy
from tests.support.clock import ManualClock
from tests.support.fake_openai import Call, Cite, Hit, Reply, reply_events
from tests.support.stores import on_worker

SID = "s_unit"


class RecordingOutbox:
    """Keeps every published payload, in order (the relay's role, minus sockets)."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, str, Payload]] = []
        self.changed = asyncio.Event()

    async def publish(self, session_id: str, payload: Payload, *, ref: str | None = None) -> int:
        self.sent.append((session_id, host_type(payload), payload))
        self.changed.set()
        return len(self.sent)

    identity = ident.issued_link("CUST1002", "Priya Shah", by="test", at=0.0)

    def session_summary(self, session_id: str) -> SessionSummary | None:
        return SessionSummary(session_id=session_id, title="t", customer_id="CUST1002",
                              customer_name=None, state="open", created_at=0.0, last_seq=1,
                              identity=self.identity)

    def session_identity(self, session_id: str) -> SessionIdentity:
        return self.identity

    def of(self, type_: str) -> list[Any]:
        return [p for _s, t, p in self.sent if t == type_]

    async def until(self, type_: str, count: int = 1) -> list[Any]:
        async def wait() -> list[Any]:
            while len(self.of(type_)) < count:
                self.changed.clear()
                await self.changed.wait()
            return self.of(type_)
        return await asyncio.wait_for(wait(), 5)


class ScriptProvider:
    """Plays scripted replies as the SDK's own event objects, one reply per request."""

    name = "script"
    model = "scripted"
    is_ai = True

    def __init__(self, *replies: Reply, delay: float = 0.0) -> None:
        self.replies = list(replies)
        self.delay = delay
        self.requests: list[TurnRequest] = []

    async def stream(self, request: TurnRequest) -> AsyncIterator[Any]:
        self.requests.append(request)
        reply = self.replies.pop(0)
        body = {"model": self.model, "tools": request.tools,
                "include": ["file_search_call.results"]}
        for data in reply_events(reply, body):
            if self.delay:
                await asyncio.sleep(self.delay)
            yield event_from_dict(data)

    async def aclose(self) -> None:
        return None


@pytest.fixture
def outbox() -> RecordingOutbox:
    return RecordingOutbox()


async def make(tmp_path: Path, outbox: RecordingOutbox, provider: Any = None,
               clock: Any = None, **settings: Any) -> HostCopilot:
    paths = resolve_paths(tmp_path / "data", tmp_path / "config").ensure()
    return await started(build_copilot, paths, Settings(**settings), outbox, provider=provider,
                         clock=clock)


async def started(build: Any, *args: Any, **kwargs: Any) -> HostCopilot:
    """Build the co-pilot off the loop (it opens the stores), start it on the loop."""
    copilot: HostCopilot = await asyncio.to_thread(build, *args, **kwargs)
    copilot.start()
    return copilot


# --------------------------------------------------------------------- conversation store


def test_history_is_durable_and_ordered(tmp_path: Path) -> None:
    path = tmp_path / "conv.sqlite3"
    store = ConversationStore(path)
    store.append("s1", CustomerLine(text="hi", message_id="m1"))
    store.append("s1", ToolCallItem(call_id="c1", name="get_order"),
                 ToolOutputItem(call_id="c1", name="get_order", outcome="ok", output={}))
    store.append("s2", CustomerLine(text="other"))
    store.close()
    again = ConversationStore(path)
    assert [i.kind for i in again.items("s1")] == ["customer", "tool_call", "tool_output"]
    assert again.items("s2") == [CustomerLine(text="other")]
    assert again.items("nobody") == []
    again.append("s1", ApprovalOutcome(approval_id="A1", call_id="c2", tool="cancel_order",
                                       state="rejected", by="Dana", reason="no"))
    again.close()
    third = ConversationStore(path)
    assert third.items("s1")[-1] == ApprovalOutcome(
        approval_id="A1", call_id="c2", tool="cancel_order", state="rejected", by="Dana",
        reason="no")
    third.close()


def test_history_written_before_the_typed_store_is_read_typed(tmp_path: Path) -> None:
    """Rows of plain Responses items (an older host) come back typed; developer prose
    has no typed meaning and is dropped; new items go after the old rows."""
    path = tmp_path / "conv.sqlite3"
    ConversationStore(path).close()
    db = sqlite3.connect(path)
    rows = [{"role": "user", "content": "hi"}, {"role": "developer", "content": "a note"},
            {"type": "function_call", "call_id": "c1", "name": "get_order",
             "arguments": '{"order_id":"ORD1001"}'},
            {"type": "function_call_output", "call_id": "c1", "output": '{"ok":true}'},
            {"role": "assistant", "content": "Hello"}]
    with db:
        db.executemany("INSERT INTO items VALUES ('s1', ?, ?, 0)",
                       [(n, json.dumps(r)) for n, r in enumerate(rows)])
    db.close()
    store = ConversationStore(path)
    assert store.items("s1") == [
        CustomerLine(text="hi"),
        ToolCallItem(call_id="c1", name="get_order", arguments={"order_id": "ORD1001"},
                     raw_arguments='{"order_id":"ORD1001"}'),
        ToolOutputItem(call_id="c1", name="get_order", outcome="ok", output={"ok": True}),
        SentReply(text="Hello")]
    store.append("s1", CustomerLine(text="more"))
    store.close()
    assert ConversationStore(path).items("s1")[-1] == CustomerLine(text="more")


def test_draft_versus_sent(tmp_path: Path) -> None:
    store = ConversationStore(tmp_path / "conv.sqlite3")
    store.draft_started("t1", "s1", "customer_message")
    store.draft_finished("t1", "completed", text="Hello there.")
    same = store.record_sent("s1", "m1", "Hello there.", "t1", "Dana")
    assert same.edited is False and same.draft_text == "Hello there."
    edited = store.record_sent("s1", "m2", "Hello there, Alex!", "t1", "Dana")
    assert edited.edited is True
    free = store.record_sent("s1", "m3", "Free text", None, "Dana")
    assert free.edited is None and free.draft_text is None
    foreign = store.record_sent("s2", "m4", "Hello there.", "t1", "Sam")  # not its session
    assert foreign.draft_text is None
    draft = store.draft("t1")
    assert draft is not None and draft.state == "sent"
    assert store.sent("m2") == edited
    store.close()


def test_a_sent_reply_lands_with_its_history_item_in_one_transaction(tmp_path: Path) -> None:
    """An agent's reply is one commit (issue 18: it was three, on every line a desk
    answers): the sent record, its draft marked sent and the reply in the model's
    history land together, or none of them does."""
    path = tmp_path / "conv.sqlite3"
    store = ConversationStore(path)
    store.start_turn("s1", "t1", "customer_message", CustomerLine(text="hi", message_id="m1"))
    store.draft_finished("t1", "completed", text="Hello there.")
    statements: list[str] = []
    store._db.set_trace_callback(statements.append)
    sent, reply = store.record_reply("s1", "m2", "Hello there!", "t1", "Dana")
    store._db.set_trace_callback(None)
    assert statements.count("COMMIT") == 1
    assert sent.edited is True and sent.draft_text == "Hello there."
    assert reply == SentReply(text="Hello there!", message_id="m2", agent="Dana",
                              draft_id="t1", draft_text="Hello there.")
    # the next item's place taken behind the store's back: the reply cannot be written,
    # and nothing of it lands (no sent record, the draft not marked sent)
    other = sqlite3.connect(path)
    other.execute("INSERT INTO items VALUES ('s1', 2, '{}', 0)")
    other.commit()
    other.close()
    store.start_turn("s1", "t2", "customer_message")
    store.draft_finished("t2", "completed", text="Later.")
    with pytest.raises(sqlite3.IntegrityError):
        store.record_reply("s1", "m3", "Later.", "t2", "Dana")
    assert store.sent("m3") is None
    draft = store.draft("t2")
    assert draft is not None and draft.state == "completed"
    store.close()
    again = ConversationStore(path)
    assert again.items("s1")[:2] == [CustomerLine(text="hi", message_id="m1"), reply]
    assert again.sent("m2") == sent
    again.close()


def test_a_turn_starts_with_its_items_in_one_transaction(tmp_path: Path) -> None:
    """The co-pilot starts a turn with one write (issue 18): the customer's line and the
    draft record land together, or neither does."""
    path = tmp_path / "conv.sqlite3"
    store = ConversationStore(path)
    store.start_turn("s1", "t1", "customer_message", CustomerLine(text="hi", message_id="m1"))
    with pytest.raises(sqlite3.IntegrityError):  # the same turn id again: nothing lands
        store.start_turn("s1", "t1", "customer_message", CustomerLine(text="again"))
    assert store.items("s1") == [CustomerLine(text="hi", message_id="m1")]
    store.start_turn("s1", "t2", "regenerate")
    store.close()
    again = ConversationStore(path)
    assert again.items("s1") == [CustomerLine(text="hi", message_id="m1")]
    assert [d.turn_id for d in again.interrupted_drafts()] == ["t1", "t2"]
    again.close()


def test_interrupted_drafts_are_reported_once(tmp_path: Path) -> None:
    store = ConversationStore(tmp_path / "conv.sqlite3")
    store.draft_started("t1", "s1", "customer_message")
    store.draft_started("t2", "s1", "regenerate")
    store.draft_finished("t2", "completed", text="done")
    assert [d.turn_id for d in store.interrupted_drafts()] == ["t1"]
    assert store.interrupted_drafts() == []
    store.close()


# --------------------------------------------------------------------- the co-pilot


async def test_racing_customer_messages_keep_one_live_turn(tmp_path: Path,
                                                           outbox: RecordingOutbox) -> None:
    provider = ScriptProvider(*[Reply(text=f"draft {i} " * 10, chunk=5) for i in range(3)],
                              delay=0.001)
    copilot = await make(tmp_path, outbox, provider)
    try:
        await asyncio.gather(*(copilot.on_customer_message(SID, f"m{i}", f"message {i}")
                               for i in range(3)))
        await copilot.wait_idle(SID)
        started = [p.turn_id for p in outbox.of("draft.started")]
        stale = {p.turn_id for p in outbox.of("draft.stale")}
        completed = [p.turn_id for p in outbox.of("draft.completed")]
        # a turn superseded before it began is never announced (nor declared stale)
        assert 1 <= len(started) <= 3 and len(completed) == 1
        assert stale | set(completed) == set(started)
        assert completed[0] == started[-1] and completed[0] not in stale
        users = [i.text for i in (await on_worker(copilot.conversations.items, SID))
                 if isinstance(i, CustomerLine)]
        assert users == ["message 0", "message 1", "message 2"]
        assert [i["content"] for i in provider.requests[-1].input] == users
    finally:
        await copilot.aclose()


async def test_agent_reply_leaves_a_streaming_draft_alone(tmp_path: Path,
                                                          outbox: RecordingOutbox) -> None:
    provider = ScriptProvider(Reply(text="A careful answer. " * 10, chunk=4), delay=0.002)
    copilot = await make(tmp_path, outbox, provider)
    try:
        await copilot.on_customer_message(SID, "m1", "Question?")
        await outbox.until("draft.delta")
        await copilot.on_agent_message(SID, "m2", "One moment please.", None, "Dana")
        await copilot.wait_idle(SID)
        assert len(outbox.of("draft.completed")) == 1 and not outbox.of("draft.stale")
        items = (await on_worker(copilot.conversations.items, SID))
        assert items == [CustomerLine(text="Question?", message_id="m1"),
                         SentReply(text="One moment please.", message_id="m2", agent="Dana")]
    finally:
        await copilot.aclose()


async def test_sending_the_streaming_draft_stops_it(tmp_path: Path,
                                                    outbox: RecordingOutbox) -> None:
    provider = ScriptProvider(Reply(text="A careful answer. " * 20, chunk=4), delay=0.002)
    copilot = await make(tmp_path, outbox, provider)
    try:
        await copilot.on_customer_message(SID, "m1", "Question?")
        await outbox.until("draft.delta", 3)
        progress = copilot.draft_in_progress(SID)
        assert progress is not None
        turn_id, text = progress
        await copilot.on_agent_message(SID, "m2", text, turn_id, "Dana")
        assert copilot.draft_in_progress(SID) is None
        assert [p.turn_id for p in outbox.of("draft.stale")] == [turn_id]
        sent = (await on_worker(copilot.conversations.items, SID))[-1]
        assert isinstance(sent, SentReply) and sent.text == text and sent.draft_id == turn_id
    finally:
        await copilot.aclose()


async def test_an_agents_reply_is_one_trip_and_one_commit(tmp_path: Path,
                                                          outbox: RecordingOutbox) -> None:
    """Sending a finished draft: the sent record and the reply in the history in one
    transaction (issue 18: three commits and two trips to the store's thread before)."""
    provider = ScriptProvider(Reply(text="A careful answer."), delay=0.0)
    copilot = await make(tmp_path, outbox, provider)
    try:
        await copilot.on_customer_message(SID, "m1", "Question?")
        await copilot.wait_idle(SID)
        [done] = outbox.of("draft.completed")
        statements: list[str] = []
        db = copilot.conversations._db
        await on_worker(copilot.conversations.items, SID)  # (the store's thread is idle)
        db.set_trace_callback(statements.append)
        await copilot.on_agent_message(SID, "m2", done.text + " Thanks!", done.turn_id, "Dana")
        db.set_trace_callback(None)
        assert statements.count("COMMIT") == 1
        want = SentReply(text=done.text + " Thanks!", message_id="m2", agent="Dana",
                         draft_id=done.turn_id, draft_text=done.text)
        assert (await copilot._items(SID))[-1] == want  # the copy in memory has it
        assert (await on_worker(copilot.conversations.items, SID))[-1] == want
        record = await on_worker(copilot.conversations.draft, done.turn_id)
        assert record is not None and record.state == "sent"
        sent = await on_worker(copilot.conversations.sent, "m2")
        assert sent is not None and sent.edited is True
    finally:
        await copilot.aclose()


async def test_a_completed_drafts_text_is_known_without_the_stores_thread(
        tmp_path: Path, outbox: RecordingOutbox) -> None:
    """The relay asks for a sent draft's text on every reply an agent sends (issue 18):
    a draft completed lately is answered from memory, also while the store's thread is
    busy; another session's draft is not its text; an unknown one is read from the
    store."""
    provider = ScriptProvider(Reply(text="A careful answer."), delay=0.0)
    copilot = await make(tmp_path, outbox, provider)
    try:
        await copilot.on_customer_message(SID, "m1", "Question?")
        await copilot.wait_idle(SID)
        [done] = outbox.of("draft.completed")
        busy = threading.Event()
        blocked = copilot.conversations.worker.submit(busy.wait, 10)
        try:
            got = await asyncio.wait_for(copilot.draft_text(SID, done.turn_id), 1.0)
            other = await asyncio.wait_for(copilot.draft_text("s_other", done.turn_id), 1.0)
        finally:
            busy.set()
        await asyncio.wrap_future(blocked)
        assert got == "A careful answer." and other is None
        await on_worker(copilot.conversations.draft_started, "t_old", SID, "customer_message")
        await on_worker(copilot.conversations.draft_finished, "t_old", "completed",
                        text="Older.")
        assert await copilot.draft_text(SID, "t_old") == "Older."
    finally:
        await copilot.aclose()


async def test_tools_run_for_the_sessions_customer(tmp_path: Path,
                                                   outbox: RecordingOutbox) -> None:
    provider = ScriptProvider(Reply(calls=[Call("get_order", {"order_id": "ORD1001"})]),
                              Reply(text="ok"))
    copilot = await make(tmp_path, outbox, provider)
    try:
        await copilot.on_customer_message(SID, "m1", "What about ORD1001?")
        await copilot.wait_idle(SID)
        # the session belongs to CUST1002: another customer's order stays private
        result = outbox.of("tool.result")[0]
        assert result.ok is False
        assert "CUST1002" in provider.requests[0].instructions
    finally:
        await copilot.aclose()


async def test_regenerate_needs_a_conversation(tmp_path: Path, outbox: RecordingOutbox) -> None:
    copilot = await make(tmp_path, outbox, ScriptProvider())
    try:
        with pytest.raises(OperationError) as err:
            await copilot.regenerate(SID)
        assert err.value.code == "conflict"
        with pytest.raises(OperationError) as err:
            await copilot.approve(SID, "apr_nope", "Dana", None)
        assert err.value.code == "not_found"
    finally:
        await copilot.aclose()


async def test_a_key_stored_later_is_read_off_the_loop(
    tmp_path: Path, outbox: RecordingOutbox, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The status is asked on the event loop: the key file (or keyring) is re-read in a
    worker thread, and the answer changes once that read is done."""
    paths = resolve_paths(tmp_path / "data", tmp_path / "config").ensure()
    copilot = await started(build_copilot, paths, Settings(provider="openai"), outbox)
    try:
        assert copilot.status().state == "unconfigured"
        store_api_key(paths, "sk-stored-later")  # no keyring in tests: the 0600 file
        monkeypatch.setattr("hitl_desktop.host.copilot.READINESS_TTL_S", 0.0)
        assert copilot.status().state == "unconfigured"  # the last read still stands
        refresh = copilot._readiness_refresh
        assert refresh is not None
        await refresh
        assert copilot.status().state == "ready"
    finally:
        await copilot.aclose()


async def test_an_engine_that_cannot_start_keeps_the_host_up(tmp_path: Path,
                                                             outbox: RecordingOutbox) -> None:
    paths = resolve_paths(tmp_path / "data", tmp_path / "config").ensure()
    copilot = await started(build_copilot, paths, Settings(), outbox,
                            provider_override="no-such-engine")
    try:
        status = copilot.status()
        assert status.state == "unconfigured" and status.message
        await copilot.on_customer_message(SID, "m1", "Hello")
        failed = (await outbox.until("draft.failed"))[0]
        assert failed.code == "assistant_unavailable" and "no-such-engine" in failed.message
    finally:
        await copilot.aclose()


async def test_expiry_sweep_tells_agents_and_model(tmp_path: Path,
                                                   outbox: RecordingOutbox) -> None:
    provider = ScriptProvider(Reply(calls=[Call("issue_voucher", {
        "user_id": "CUST1002", "amount": 10, "reason": "late delivery"})]),
        Reply(text="Checking."))
    write_policy(tmp_path / "config", approval_ttl_hours=2)  # as tools.json says
    clock = ManualClock()
    copilot = await make(tmp_path, outbox, provider, clock=clock)
    try:
        await copilot.on_customer_message(SID, "m1", "my parcel was late, can I get a voucher?")
        await copilot.wait_idle(SID)
        created = outbox.of("approval.created")[0]
        assert created.expires_at == clock() + 2 * 3600  # the catalog's lifetime
        clock.advance(2 * 3600 - 1)
        assert await copilot.expire_now() == []
        clock.advance(2)
        expired = await copilot.expire_now()
        assert [r.approval_id for r in expired] == [created.approval_id]
        update = outbox.of("approval.updated")[-1]
        assert update.state == "expired" and update.approval_id == created.approval_id
        note = (await on_worker(copilot.conversations.items, SID))[-1]
        assert isinstance(note, ApprovalOutcome) and note.state == "expired"
        assert note.approval_id == created.approval_id and note.by is None
    finally:
        await copilot.aclose()


async def test_search_hits_map_to_local_articles(tmp_path: Path,
                                                 outbox: RecordingOutbox) -> None:
    text = "Orders can be cancelled until they ship."
    provider = ScriptProvider(Reply(
        text=text,
        search=[Hit("f1", "cancel-order.md", "a bare slug, no attributes", 0.8),
                Hit("f2", "kb__procedure-cancellation.md", "kind__slug file name", 0.7),
                Hit("f3", "report.pdf", "not one of our articles", 0.6),
                Hit("f4", "x.md", "attributes win", 0.5,
                    {"article_id": "faq/cancel-order", "title": "Cancel"})],
        citations=[Cite("f1", "cancel-order.md", 10), Cite("f3", "report.pdf", 20),
                   Cite("f4", "x.md", len(text))],
    ))
    copilot = await make(tmp_path, outbox, provider)
    try:
        await copilot.on_customer_message(SID, "m1", "cancel?")
        await copilot.wait_idle(SID)
        found = [a for p in outbox.of("articles") for a in p.articles]
        ids = [a.article_id for a in found]
        assert ids[0] == "faq/cancel-order" and len(ids) == len(set(ids))
        assert copilot.index is not None
        for i in ids:
            assert await on_worker(copilot.index.get, i)
        assert found[0].snippet == "a bare slug, no attributes" and found[0].score == 0.8
        assert found[0].path == "faq/cancel-order.md"
        draft = outbox.of("draft.completed")[0]
        assert [c.article_id for c in draft.citations] == ["faq/cancel-order"]
        assert draft.citations[0].title == found[0].title
        assert draft.citations[0].quote == "Orders can"  # the text up to its index (10)
    finally:
        await copilot.aclose()
