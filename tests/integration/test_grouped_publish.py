"""The co-pilot's frames through the group commit (issue 18), on a real host with real
sockets: each recipient gets a session's frames in the order they were published
(``draft.started`` before its first delta, the deltas without a hole or an overlap,
``draft.completed`` after the last, ``turn.ended`` last); nothing is relayed that is not
in the log; and a commit that fails relays nothing of it, and the co-pilot's turn fails
visibly instead of going on past the hole."""

from __future__ import annotations

import asyncio
import collections
import logging
import sqlite3
from pathlib import Path
from typing import Any, cast

import pytest

from hitl_desktop.config import Settings
from hitl_desktop.core.ports import OperationError
from hitl_desktop.core.protocol import (
    AGENT_ONLY_TYPES,
    HOST_MESSAGES,
    ChatSend,
    DraftStarted,
    TurnEnded,
)
from hitl_desktop.host.copilot import HostCopilot
from hitl_desktop.host.log import RelayLog
from hitl_desktop.host.relay import _HOST, _LATER
from tests.support.copilot_desk import Desk, desks, fake, open_desk
from tests.support.fake_openai import Call, FakeOpenAI, Reply
from tests.support.host import running_host
from tests.support.protocol_client import Client, token_of

__all__ = ["desks", "fake"]


def _check_session(frames: list[dict[str, Any]], stored: dict[int, str]) -> int:
    """One recipient's frames of one session, in arrival order: durable seqs one after the
    other, each exactly as logged; every turn in publish order. The turns seen."""
    seqs = [f["seq"] for f in frames if f["seq"] is not None]
    assert seqs == list(range(seqs[0], seqs[0] + len(seqs))), seqs
    turns: dict[str, list[dict[str, Any]]] = collections.defaultdict(list)
    for f in frames:
        turn = f["data"].get("turn_id") if f["type"] in AGENT_ONLY_TYPES else None
        if turn is not None:
            turns[turn].append(f)
    done = 0
    for turn_id, tf in turns.items():
        kinds = [f["type"] for f in tf]
        assert kinds[0] == "draft.started", (turn_id, kinds)
        assert kinds[-1] == "turn.ended", (turn_id, kinds)
        assert kinds[-2] == "draft.completed", (turn_id, kinds)
        text = ""
        for f in tf:
            if f["type"] == "draft.delta":
                assert f["data"]["offset"] == len(text), (turn_id, f["data"], len(text))
                text += f["data"]["text"]
        assert tf[-2]["data"]["text"] == text
        done += 1
    return done


async def test_each_recipient_gets_a_sessions_frames_in_publish_order(tmp_path: Path) -> None:
    settings = Settings(extra={"offline_delay_ms": 0})  # frames in bursts
    async with running_host(tmp_path / "host", copilot=True, settings=settings) as host:
        relay = host.relay
        handed: collections.Counter[int] = collections.Counter()
        relay_commit = relay.log.on_group_commit
        assert relay_commit is not None

        def counting(lines: list[tuple[object, str]], error: BaseException | None) -> None:
            for token, _frame in lines:
                handed[token[0]] += 1  # type: ignore[index]
            relay_commit(lines, error)

        relay.log.on_group_commit = counting
        created = [host.create_session(customer_id="CUST1001") for _ in range(6)]
        desk = await Client.connect(host.local_url, token_of(host.desk_link))
        agents = [await Client.connect(host.local_url, c.agent_token) for c in created]
        customers = [await Client.connect(host.local_url, c.customer_token) for c in created]
        try:
            copilot = cast(HostCopilot, relay.copilot)
            for n in range(2):  # every session's turn at once, twice
                if n == 1:  # the second time through a held WAL finish: everything waits
                    relay.log.hold()
                for c, s in zip(customers, created, strict=True):
                    await c.send(ChatSend(text=f"How do I return an item? ({n})"), s.session_id)
                if n == 1:
                    await asyncio.sleep(0.2)
                    for s in created:
                        await copilot.wait_idle(s.session_id)
                    assert relay.log.held  # the turns' frames did not spoil it
                    relay.log.release()
                for a in agents:
                    await a.wait("turn.ended", count=n + 1, within=30)
                await desk.wait("turn.ended", count=(n + 1) * len(created), within=30)
            for a, s in zip(agents, created, strict=True):
                stored = {m["seq"]: m for m in relay.log.messages(s.session_id)}
                mine = [f for f in a.frames if f.get("session") == s.session_id]
                for f in mine:
                    if f["seq"] is not None:
                        assert stored[f["seq"]] == f  # relayed exactly as logged
                assert _check_session(mine, {}) == 2
                theirs = [f for f in desk.frames if f.get("session") == s.session_id]
                assert _check_session(theirs, {}) == 2
            for c, s in zip(customers, created, strict=True):
                got = [f["type"] for f in c.frames if f.get("session") == s.session_id]
                assert not set(got) & AGENT_ONLY_TYPES  # (the fan-out's filter holds)
            # the path under test ran: turn frames were grouped and deltas queued behind them
            assert handed[_HOST] >= 2 * len(created) * 3 and handed[_LATER] > 0
        finally:
            for cl in (desk, *agents, *customers):
                await cl.close()


def _deny_commits(log: RelayLog, count: int) -> list[int]:
    """The disk refuses the next ``count`` explicit COMMITs on the log's connection (a
    real SQLite refusal, as a full disk gives). Returns a counter of refusals."""
    refused: list[int] = []

    def authorizer(action: int, arg1: str | None, *_: object) -> int:
        if action == sqlite3.SQLITE_TRANSACTION and arg1 == "COMMIT" and len(refused) < count:
            refused.append(1)
            return sqlite3.SQLITE_DENY
        return sqlite3.SQLITE_OK

    log._db.set_authorizer(authorizer)
    return refused


async def test_a_lost_turn_frame_fails_the_turn_visibly_and_relays_nothing_unstored(
        tmp_path: Path, fake: FakeOpenAI, monkeypatch: pytest.MonkeyPatch, desks: list[Desk],
        caplog: pytest.LogCaptureFixture) -> None:
    desk = await open_desk(tmp_path, fake, monkeypatch)
    desks.append(desk)
    relay = desk.host.relay
    fake.enqueue(Reply(calls=[Call("get_order", {"order_id": "ORD1001"})], delay=0.15),
                 Reply(text="Your order is on its way and should arrive tomorrow.", delay=0.02))
    await desk.say("Where is my order ORD1001?")
    started = await desk.agent.wait("draft.started")
    turn_id = started["data"]["turn_id"]
    refused = _deny_commits(relay.log, 1)  # the disk fails once, mid-turn (the tool call)
    with caplog.at_level(logging.ERROR):
        ended = await desk.agent.wait("turn.ended", turn_id=turn_id, within=15)
    assert refused == [1]
    assert ended["data"]["outcome"] == "failed"
    failed = desk.agent.of("draft.failed", turn_id=turn_id)
    assert len(failed) == 1 and failed[0]["data"]["code"] == "internal"
    assert "could not store" in failed[0]["data"]["message"]
    # nothing of the turn past the hole reached an agent: no call, result, text or draft
    # (only the call's progress hints, streamed before the call was lost)
    for agent in (desk.agent, desk.agent2):
        got = [f["type"] for f in agent.frames if f["data"].get("turn_id") == turn_id
               or f["type"] in ("tool.call", "tool.result")]
        got = [t for t in got if t != "tool.call.delta"]
        assert got == ["draft.started", "draft.failed", "turn.ended"], got
    # every durable frame relayed is the logged one with that seq, with no seq skipped
    stored = _relayed_as_logged(desk)
    assert not [m for m in stored.values() if m["type"] == "tool.call"]
    assert any("could not be stored" in r.getMessage() for r in caplog.records)
    await _assert_draft_record_failed(desk, turn_id)
    # the session carries on once the disk takes writes again
    await _assert_next_turn_completes(desk, fake)


async def test_a_turn_whose_end_could_not_be_stored_ends_visibly_as_failed(
        tmp_path: Path, fake: FakeOpenAI, monkeypatch: pytest.MonkeyPatch, desks: list[Desk],
        caplog: pytest.LogCaptureFixture) -> None:
    """The disk refuses the commit of a turn's last tick (draft.completed + turn.ended):
    the agents saw the text stream, so the draft must not stay "streaming" on their
    desks: it ends as failed (draft.failed, then turn.ended), stored and relayed, and its
    draft record says failed. The next turn works."""
    desk = await open_desk(tmp_path, fake, monkeypatch)
    desks.append(desk)
    relay = desk.host.relay
    fake.enqueue(Reply(text="Your order is on its way and should arrive tomorrow.", delay=0.03))
    await desk.say("Where is my order ORD1001?")
    started = await desk.agent.wait("draft.started")
    turn_id = started["data"]["turn_id"]
    # nothing else of the session is grouped before its end: the next commit is it
    refused = _deny_commits(relay.log, 1)
    with caplog.at_level(logging.ERROR):
        ended = await desk.agent.wait("turn.ended", turn_id=turn_id, within=15)
    assert refused == [1]
    assert ended["data"]["outcome"] == "failed"
    for agent in (desk.agent, desk.agent2):
        got = [f["type"] for f in agent.frames if f["data"].get("turn_id") == turn_id]
        assert got[0] == "draft.started" and "draft.delta" in got, got
        assert got[-2:] == ["draft.failed", "turn.ended"], got
        assert "draft.completed" not in got
        failed = agent.of("draft.failed", turn_id=turn_id)
        assert len(failed) == 1 and failed[0]["data"]["code"] == "internal"
    # what the agents got is what the log holds, no seq skipped
    stored = _relayed_as_logged(desk)
    assert [m["type"] for m in stored.values() if m["data"].get("turn_id") == turn_id] == [
        "draft.started", "draft.failed", "turn.ended"]
    assert any("could not be stored" in r.getMessage() for r in caplog.records)
    await _assert_draft_record_failed(desk, turn_id)
    # the session carries on
    await _assert_next_turn_completes(desk, fake)


async def test_a_held_finish_is_no_longer_spoiled_by_turn_frames(
        tmp_path: Path, fake: FakeOpenAI, monkeypatch: pytest.MonkeyPatch,
        desks: list[Desk]) -> None:
    """While the WAL's last copy holds the group commit, the co-pilot's turn frames wait
    with the chat lines (before issue 18's change each was an INSERT that committed the
    held lines and spoiled the finish); they are relayed, in order, at the release."""
    desk = await open_desk(tmp_path, fake, monkeypatch)
    desks.append(desk)
    log = desk.host.relay.log
    fake.enqueue(Reply(text="On its way."))
    log.hold()
    try:
        await desk.say("Where is my order?")
        await asyncio.sleep(0.5)  # the whole turn runs meanwhile
        assert log.held and not log.finish_raced
        assert not desk.agent.of("draft.started")  # nothing relayed: nothing durable
    finally:
        log.release()
    ended = await desk.agent.wait("turn.ended")
    assert ended["data"]["outcome"] == "completed"
    kinds = [f["type"] for f in desk.agent.frames if f["type"] != "assistant.status"]
    assert kinds.index("chat.message") < kinds.index("draft.started") < \
        kinds.index("draft.delta") < kinds.index("draft.completed") < kinds.index("turn.ended")
    assert not log.finish_raced


def test_grouped_types_are_durable_and_the_rest_are_not_grouped() -> None:
    from hitl_desktop.host.log import GROUPED_TYPES

    assert all(HOST_MESSAGES[t].durable for t in GROUPED_TYPES)
    # their record is the frame alone: the types with table side effects stay out
    assert not GROUPED_TYPES & {"chat.message", "session.closed", "session.reopened",
                                "approval.created", "approval.updated", "identity.changed",
                                "session.assigned", "note.added", "session.status_changed"}


async def test_commit_now_makes_grouped_frames_durable_or_says_it_could_not(
        tmp_path: Path) -> None:
    async with running_host(tmp_path / "host") as host:
        relay = host.relay
        sid = host.create_session().session_id
        seq = await relay.publish(sid, DraftStarted(turn_id="t_1", reason="customer_message",
                                                    provider="offline"))
        path = relay.log.path

        def on_disk() -> list[int]:
            db = sqlite3.connect(path)
            try:
                return [r[0] for r in db.execute(
                    "SELECT seq FROM messages WHERE session_id = ?", (sid,))]
            finally:
                db.close()

        assert seq == 2 and on_disk() == [1]  # in the group: not yet on disk
        relay.commit_now()
        assert on_disk() == [1, 2]
        await relay.publish(sid, TurnEnded(turn_id="t_1", outcome="completed",
                                           reason="customer_message"))
        refused = _deny_commits(relay.log, 1)
        with pytest.raises(OperationError) as err:
            relay.commit_now()
        assert refused == [1] and err.value.code == "internal"
        assert on_disk() == [1, 2]
        relay.log._db.set_authorizer(None)


def _relayed_as_logged(desk: Desk) -> dict[int, dict[str, Any]]:
    """Every durable frame the agent got is the logged one with that seq, no seq
    skipped; returns the log's frames by seq."""
    stored = {m["seq"]: m for m in desk.host.relay.log.messages(desk.sid)}
    relayed = [f for f in desk.agent.frames if f["seq"] is not None]
    assert [f["seq"] for f in relayed] == sorted(stored)
    assert all(stored[f["seq"]] == f for f in relayed)
    return stored


async def _assert_draft_record_failed(desk: Desk, turn_id: str) -> None:
    record = await desk.copilot.conversations.worker.call(desk.copilot.conversations.draft,
                                                          turn_id)
    assert record is not None and record.state == "failed"


async def _assert_next_turn_completes(desk: Desk, fake: FakeOpenAI) -> None:
    """The session carries on once the disk takes writes again."""
    fake.enqueue(Reply(text="Happy to help again."))
    await desk.say("Thanks, and now?")
    assert (await desk.draft(1))["text"] == "Happy to help again."
    assert desk.agent.of("turn.ended")[-1]["data"]["outcome"] == "completed"
