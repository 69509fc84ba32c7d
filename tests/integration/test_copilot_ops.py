"""Co-pilot operations beyond the main flow: tool-loop bounds, odd model output,
regenerate/discard, status, restarts, look-ups — through real sockets and the fake API."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from hitl_desktop.app.services import start_host
from hitl_desktop.config import Settings
from hitl_desktop.core.protocol import (
    ApprovalApprove,
    ArticleGet,
    ChatSend,
    CustomerGet,
    DraftDiscard,
    DraftRegenerate,
    KbSearch,
)
from hitl_desktop.host.conversation import ConversationStore, DraftRecord
from hitl_desktop.host.copilot import CONVERSATIONS_FILE, build_copilot
from hitl_desktop.host.tokens import TokenKind
from tests.support.catalogs import write_policy
from tests.support.copilot_desk import (
    Client,
    Desk,
    desk,
    desks,
    fake,
    host_paths,
    last_input,
    open_desk,
)
from tests.support.fake_openai import Call, FakeOpenAI, Reply, replay_turns
from tests.support.stores import on_worker

__all__ = ["desk", "desks", "fake"]  # fixtures from the shared desk


async def test_tool_rounds_are_bounded(tmp_path: Path, fake: FakeOpenAI,
                                       monkeypatch: pytest.MonkeyPatch,
                                       desks: list[Desk]) -> None:
    """The limit is the catalog's policy: a shop's tools.json with max_tool_rounds 2."""
    write_policy(host_paths(tmp_path).config_dir, max_tool_rounds=2)
    desk = await open_desk(tmp_path, fake, monkeypatch)
    desks.append(desk)
    fake.enqueue(*[Reply(calls=[Call("get_order", {"order_id": f"ORD100{i}"})])
                   for i in (1, 2)],
                 Reply(text="Here is what I found."))
    await desk.say("Tell me everything about my orders")
    assert (await desk.draft())["text"] == "Here is what I found."
    bodies = [r.body for r in fake.responses_requests()]
    assert len(bodies) == 3
    assert any(t["type"] == "function" for t in bodies[0]["tools"])
    # the last round may not call tools any more, and is told so
    assert not any(t["type"] == "function" for t in bodies[2]["tools"])
    assert "limit" in bodies[2]["input"][-1]["content"]


async def test_invalid_json_and_unknown_tools_are_told_to_the_model(desk: Desk) -> None:
    desk.fake.enqueue(
        Reply(calls=[Call("get_order", '{"order_id": "ORD10')]),
        Reply(calls=[Call("drop_database", {"now": True})]),
        Reply(calls=[Call("get_order", {"order_id": "ORD1001", "extra": 1})]),
        Reply(text="Sorry, let me try again."),
    )
    await desk.say("What about ORD1001?")
    await desk.draft()
    results = desk.agent.of("tool.result")
    assert [r["data"]["ok"] for r in results] == [False, False, False]
    assert "JSON" in results[0]["data"]["output"]["error"]
    assert "unknown tool" in results[1]["data"]["output"]["error"]
    assert "extra" in results[2]["data"]["output"]["error"]
    # unknown tools are never auto-run nor queued
    assert desk.agent.of("tool.call", name="drop_database")[0]["data"]["mode"] == "approval"
    assert not desk.agent.of("approval.created")
    outputs = [i for i in last_input(desk.fake) if i.get("type") == "function_call_output"]
    assert len(outputs) == 3 and all('"ok":false' in o["output"] for o in outputs)


async def test_tool_call_deltas_stream_partial_arguments(desk: Desk) -> None:
    """A call that streams its arguments for a while shows them as they come (one
    progress frame per 50 ms at most, the first once it has streamed 50 ms)."""
    desk.fake.enqueue(Reply(calls=[Call("get_order", {"order_id": "ORD1001"})], chunk=3,
                            delay=0.02),
                      Reply(text="Found it."))
    await desk.say("ORD1001?")
    await desk.draft()
    partial = desk.agent.of("tool.call.delta", name="get_order")
    assert partial
    assert "ORD1001".startswith(partial[0]["data"]["arguments_partial"]["order_id"])
    assert desk.agent.of("tool.call", name="get_order")
    assert not desk.customer.of("tool.call.delta")


async def test_a_call_complete_at_once_has_no_progress_frames(desk: Desk) -> None:
    """Arguments that arrive within 50 ms: the agent gets tool.call alone (issue 18)."""
    desk.fake.enqueue(Reply(calls=[Call("get_order", {"order_id": "ORD1001"})], chunk=3),
                      Reply(text="Found it."))
    await desk.say("ORD1001?")
    await desk.draft()
    assert desk.agent.of("tool.call", name="get_order")
    assert not desk.agent.of("tool.call.delta")


async def test_regenerate_and_discard(desk: Desk) -> None:
    desk.fake.enqueue(Reply(text="First try."), Reply(text="Second try."))
    await desk.say("Hello")
    first = await desk.draft()
    await desk.agent.send(DraftRegenerate(), desk.sid)
    await desk.agent.wait("draft.started", reason="regenerate")
    second = await desk.draft(2)
    assert second["text"] == "Second try."
    # the model never saw the unsent first draft
    assert [i.get("role") for i in last_input(desk.fake)] == ["user"]
    await desk.agent.send(DraftDiscard(turn_id=second["turn_id"]), desk.sid)
    stale = await desk.agent.wait("draft.stale", turn_id=second["turn_id"])
    assert stale["data"]["reason"] == "discarded"
    await desk.agent.send(DraftDiscard(turn_id="t_unknown"), desk.sid)
    assert (await desk.agent.wait("error"))["data"]["code"] == "not_found"
    assert first["turn_id"] != second["turn_id"]


async def test_discarding_a_streaming_draft_stops_it(desk: Desk) -> None:
    desk.fake.enqueue(Reply(text="slow words " * 40, chunk=3, delay=0.02))
    await desk.say("Hi")
    started = await desk.agent.wait("draft.started")
    turn_id = started["data"]["turn_id"]
    await desk.agent.wait("draft.delta", turn_id=turn_id)
    assert desk.copilot.draft_in_progress(desk.sid) is not None
    await desk.agent.send(DraftDiscard(turn_id=turn_id), desk.sid)
    await desk.agent.wait("draft.stale", turn_id=turn_id)
    assert desk.copilot.draft_in_progress(desk.sid) is None
    await desk.copilot.wait_idle(desk.sid)  # the cancelled turn has ended...
    await desk.agent.barrier(desk.sid)  # ...and whatever it sent has arrived
    assert not desk.agent.of("draft.completed")


async def test_agent_joining_mid_draft_gets_the_text_so_far(desk: Desk) -> None:
    desk.fake.enqueue(Reply(text="a fairly long answer " * 6, chunk=4, delay=0.02))
    await desk.say("Hi")
    await desk.agent.wait("draft.delta", count=3)
    token = desk.host.relay.tokens.issue(TokenKind.AGENT_SESSION, session_id=desk.sid,
                                         label="Late")
    late = await Client.connect(desk.host.local_url, token)
    try:
        first = await late.wait("draft.delta")
        assert first["data"]["offset"] == 0 and first["data"]["text"]
        done = await desk.draft()
        assert done["text"].startswith(first["data"]["text"])
    finally:
        await late.close()


async def test_status_is_broadcast_to_agents(desk: Desk) -> None:
    status = await desk.agent.wait("assistant.status")  # on connect
    assert status["data"]["provider"] == "openai" and status["data"]["is_ai"] is True
    desk.fake.enqueue(Reply(text="Hi!", delay=0.01))
    await desk.say("Hello")
    await desk.agent.wait("assistant.status", where=lambda f: f["data"]["state"] == "busy")
    await desk.draft()
    await desk.agent2.wait("assistant.status", where=lambda f: f["data"]["state"] == "ready")


async def test_customer_details_articles_and_search(desk: Desk) -> None:
    await desk.agent.send(CustomerGet(), desk.sid)
    details = (await desk.agent.wait("customer.details"))["data"]
    assert details["customer"]["customer_id"] == "CUST1001"
    assert details["customer"]["name"] == "Alex Morgan"
    assert {o["order_id"] for o in details["orders"]} >= {"ORD1001", "ORD1008"}
    await desk.agent.send(KbSearch(query="cancel my order", limit=3), None)
    results = (await desk.agent.wait("kb.results"))["data"]
    assert results["articles"] and len(results["articles"]) <= 3
    first = results["articles"][0]["article_id"]
    await desk.agent.send(ArticleGet(article_id=first), None)
    content = (await desk.agent.wait("article.content"))["data"]
    assert content["article_id"] == first and content["markdown"]
    await desk.agent.send(ArticleGet(article_id="kb/nope"), None)
    assert (await desk.agent.wait("error"))["data"]["code"] == "not_found"
    await desk.agent.send(KbSearch(query="", kind="faq", limit=200), None)
    browse = (await desk.agent.wait("kb.results", count=2))["data"]
    assert browse["articles"] and all(a["kind"] == "faq" for a in browse["articles"])


async def test_approval_of_another_sessions_action_is_not_found(desk: Desk) -> None:
    desk.fake.enqueue(Reply(calls=[Call("cancel_order", {"order_id": "ORD1001"})]),
                      Reply(text="Checking."))
    await desk.say("cancel ORD1001")
    created = (await desk.agent.wait("approval.created"))["data"]
    other = desk.host.create_session(customer_id="CUST1002")
    await desk.agent2.send(ApprovalApprove(approval_id=created["approval_id"]),
                           other.session_id)
    assert (await desk.agent2.wait("error"))["data"]["code"] == "not_found"
    assert await desk.order_status("ORD1001") == "pending"


async def test_multi_turn_recorded_tool_loop(desk: Desk, recorded_streams: Path) -> None:
    """Real recorded function-call turns (a tool our catalog lacks): each call is
    answered with an error output and the loop goes on to the recorded final answer."""
    turns = replay_turns(recorded_streams / "function-calls-multi-turn.jsonl")
    desk.fake.enqueue(*turns)
    await desk.say("What is 2 + 3 * 4?")
    draft = await desk.draft()
    assert draft["text"]
    assert len(desk.agent.of("tool.call", name="calculator")) == len(turns) - 1
    assert not desk.agent.of("approval.created")


async def test_restart_mid_draft_reports_the_draft_failed(
    tmp_path: Path, fake: FakeOpenAI, monkeypatch: pytest.MonkeyPatch
) -> None:
    desk = await open_desk(tmp_path, fake, monkeypatch)
    fake.enqueue(Reply(text="never finished " * 50, chunk=3, delay=0.2))
    await desk.say("Hi")
    started = (await desk.agent.wait("draft.started"))["data"]
    await desk.agent.wait("draft.delta")
    # simulate a crash: the draft row stays "drafting" in the data dir
    paths = host_paths(tmp_path)

    def read_draft() -> DraftRecord | None:
        store = ConversationStore(paths.data_dir / CONVERSATIONS_FILE)
        try:
            return store.draft(started["turn_id"])
        finally:
            store.close()

    record = await asyncio.to_thread(read_draft)
    assert record is not None and record.state == "drafting"
    for client in (desk.customer, desk.agent, desk.agent2):
        await client.close()
    await desk.host.stop()

    settings = Settings(provider="openai", vector_store_id="vs_test")
    host = await start_host(paths, settings, port=0, copilot_factory=lambda outbox: build_copilot(
        paths, settings, outbox, provider_override="openai"))
    try:
        token = host.relay.tokens.issue(TokenKind.AGENT_SESSION, session_id=desk.sid)
        agent = await Client.connect(host.local_url, token)
        failed = (await agent.wait("draft.failed", turn_id=started["turn_id"]))["data"]
        assert "restarted" in failed["message"]
        await agent.close()
    finally:
        await host.stop()


async def test_compatible_engine_searches_the_shared_local_index(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, desks: list[Desk]
) -> None:
    async with FakeOpenAI(hosted_file_search=False) as server:
        monkeypatch.setenv("HITL_COMPATIBLE_API_KEY", server.api_key)
        settings = Settings(provider="compatible", compatible_base_url=server.base_url,
                            model="llama3", compatible_api="responses")
        desk = await open_desk(tmp_path, server, monkeypatch, key=None, override="compatible",
                               settings=settings)
        desks.append(desk)
        server.enqueue(Reply(calls=[Call("search_knowledge_base", {"query": "cancel order"})]),
                       Reply(text="You can cancel while the order is pending."))
        await desk.say("How do I cancel?")
        articles = (await desk.agent.wait("articles"))["data"]["articles"]
        assert desk.copilot.index is not None
        for a in articles:
            assert await on_worker(desk.copilot.index.get, a["article_id"])
        assert (await desk.draft())["text"] == "You can cancel while the order is pending."
        assert not desk.agent.of("tool.call", name="search_knowledge_base")  # internal
        for client in (desk.customer, desk.agent, desk.agent2):
            await client.close()
        await desk.host.stop()
        desks.remove(desk)


async def test_many_sessions_draft_independently(
    tmp_path: Path, fake: FakeOpenAI, monkeypatch: pytest.MonkeyPatch, desks: list[Desk]
) -> None:
    desk = await open_desk(tmp_path, fake, monkeypatch, key=None, override="offline",
                           settings=Settings(provider="offline"))
    desks.append(desk)
    customers: dict[str, Client] = {}
    for i in range(12):
        created = desk.host.create_session(customer_id=f"CUST100{1 + i % 5}")
        customers[created.session_id] = await Client.connect(desk.host.local_url,
                                                             created.customer_token)
    try:
        await asyncio.gather(*(c.send(ChatSend(text="Give me a list of my past orders"), sid)
                               for sid, c in customers.items()))
        for sid in customers:
            def in_session(frame: dict[str, Any], sid: str = sid) -> bool:
                return bool(frame["session"] == sid)
            await desk.agent2.wait("draft.completed", where=in_session)
        for sid in customers:
            done = [f for f in desk.agent2.of("draft.completed") if f["session"] == sid]
            started = [f for f in desk.agent2.of("draft.started") if f["session"] == sid]
            assert len(done) == 1 and done[0]["data"]["turn_id"] == started[0]["data"]["turn_id"]
            calls = [f for f in desk.agent2.of("tool.call") if f["session"] == sid]
            summary = desk.host.relay.session_summary(sid)
            assert summary is not None
            assert calls[0]["data"]["arguments"] == {"user_id": summary.customer_id}
        assert not desk.agent2.of("draft.failed")
    finally:
        for c in customers.values():
            await c.close()
