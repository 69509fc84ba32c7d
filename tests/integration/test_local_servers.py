"""Local model servers as they really behave (issue 14): Ollama, vLLM, LM Studio shapes.

The chunk streams below follow the servers' published behaviour: Ollama sends
every parallel tool call whole, at ``index: 0``, with ``content: ""``/``null``
(ollama/ollama#15457); vLLM sends the id and name first and the arguments in
pieces, ``content: null`` beside tool calls. They are served over real SSE by
the fake and read by the real ``openai`` client.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from hitl_desktop.assistant.compatible_provider import NOTE_PREFIX, CompatibleProvider
from hitl_desktop.assistant.stream import Completed, Failed, ToolCallReady, Update, translate
from hitl_desktop.config import Settings
from hitl_desktop.core.protocol import ApprovalApprove
from tests.support.copilot_desk import Desk, desks, open_desk
from tests.support.fake_openai import Call, FakeOpenAI, HttpError, Replay, Reply
from tests.support.turns import of, turn_request

__all__ = ["desks"]


@pytest.fixture
async def server() -> AsyncIterator[FakeOpenAI]:
    async with FakeOpenAI(hosted_file_search=False) as fake:
        yield fake


def chunk(delta: dict[str, Any], finish: str | None = None, model: str = "qwen3") -> dict[str, Any]:
    return {"id": "chatcmpl-1", "object": "chat.completion.chunk", "created": 1_760_000_000,
            "model": model, "system_fingerprint": "fp_local",
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}


def whole_call(call_id: str, order: str, index: int = 0) -> dict[str, Any]:
    return {"id": call_id, "index": index, "type": "function",
            "function": {"name": "get_order", "arguments": json.dumps({"order_id": order})}}


async def calls_from(server: FakeOpenAI, chunks: list[dict[str, Any]]) -> list[Update]:
    server.enqueue_chat(Replay(tuple(chunks)))
    p = CompatibleProvider(base_url=server.base_url, api_key=server.api_key,
                           model="qwen3", api="chat",
                           max_search_rounds=0)
    updates = [u async for u in translate(p.stream(turn_request("ORD1001 and ORD1002?")))]
    await p.aclose()
    return updates


async def test_ollama_parallel_calls_all_at_index_0(server: FakeOpenAI) -> None:
    updates = await calls_from(server, [
        chunk({"role": "assistant", "content": "",
               "tool_calls": [whole_call("call_a", "ORD1001")]}),
        chunk({"role": "assistant", "content": "",
               "tool_calls": [whole_call("call_b", "ORD1002")]}),
        chunk({"role": "assistant", "content": ""}, "tool_calls"),
    ])
    (done,) = of(updates, Completed)
    assert [(c.call_id, c.arguments) for c in done.tool_calls] == [
        ("call_a", {"order_id": "ORD1001"}), ("call_b", {"order_id": "ORD1002"})]
    assert all(c.error is None for c in of(updates, ToolCallReady))


async def test_ollama_two_calls_in_one_chunk_with_null_content(server: FakeOpenAI) -> None:
    updates = await calls_from(server, [
        chunk({"role": "assistant", "content": None, "tool_calls": [
            whole_call("call_a", "ORD1001", 0), whole_call("call_b", "ORD1002", 1)]}),
        chunk({}, "tool_calls"),
    ])
    (done,) = of(updates, Completed)
    assert [c.arguments for c in done.tool_calls] == [{"order_id": "ORD1001"},
                                                       {"order_id": "ORD1002"}]
    assert done.text == ""


async def test_vllm_streams_arguments_in_pieces_after_the_name(server: FakeOpenAI) -> None:
    args = json.dumps({"order_id": "ORD1001"})
    updates = await calls_from(server, [
        chunk({"role": "assistant", "content": ""}),
        chunk({"content": None, "tool_calls": [{"index": 0, "id": "chatcmpl-tool-1",
                                                "type": "function",
                                                "function": {"name": "get_order"}}]}),
        *[chunk({"content": None, "tool_calls": [{"index": 0, "function": {"arguments": p}}]})
          for p in (args[:5], args[5:14], args[14:])],
        chunk({"content": None, "tool_calls": [{"index": 1, "id": "chatcmpl-tool-2",
                                                "type": "function", "function": {
                                                    "name": "get_order",
                                                    "arguments": '{"order_id": "ORD1002"}'}}]}),
        chunk({}, "tool_calls"),
    ])
    (done,) = of(updates, Completed)
    assert [(c.call_id, c.arguments) for c in done.tool_calls] == [
        ("chatcmpl-tool-1", {"order_id": "ORD1001"}),
        ("chatcmpl-tool-2", {"order_id": "ORD1002"})]


async def test_chat_requests_ask_for_one_call_at_a_time(server: FakeOpenAI) -> None:
    await calls_from(server, [chunk({"content": "Hi"}), chunk({}, "stop")])
    body = server.chat_requests()[0].body
    assert body["parallel_tool_calls"] is False and body["tools"]
    assert [m["role"] for m in body["messages"]].count("system") == 1


async def test_vllm_without_auto_tool_choice_says_how_to_start_it(server: FakeOpenAI) -> None:
    server.enqueue_chat(HttpError(400, '"auto" tool choice requires --enable-auto-tool-choice '
                                  'and --tool-call-parser to be set', type="BadRequestError"))
    p = CompatibleProvider(base_url=server.base_url, api_key=server.api_key,
                           model="qwen3", api="chat", max_retries=0)
    (failed,) = of([u async for u in translate(p.stream(turn_request("hi")))], Failed)
    await p.aclose()
    assert failed.code == "server_setup"
    assert "--enable-auto-tool-choice --tool-call-parser" in failed.message


async def test_a_404_on_responses_says_use_chat(server: FakeOpenAI) -> None:
    server.enqueue(HttpError(404, "404 page not found"))
    p = CompatibleProvider(base_url=server.base_url, api_key=server.api_key,
                           model="qwen3", api="responses",
                           max_retries=0)
    (failed,) = of([u async for u in translate(p.stream(turn_request("hi")))], Failed)
    await p.aclose()
    assert '"compatible_api": "chat"' in failed.message and "model or vector" not in \
        failed.message


async def test_a_404_on_chat_says_check_the_address(server: FakeOpenAI) -> None:
    server.enqueue_chat(HttpError(404, "404 page not found"))
    p = CompatibleProvider(base_url=server.base_url, api_key=server.api_key,
                           model="qwen3", api="chat", max_retries=0)
    (failed,) = of([u async for u in translate(p.stream(turn_request("hi")))], Failed)
    await p.aclose()
    assert "compatible_base_url" in failed.message and "/v1" in failed.message


async def test_chat_is_the_default_api() -> None:
    assert Settings().compatible_api == "chat"


async def test_an_approval_outcome_sends_exactly_one_system_message(
        tmp_path: Path, server: FakeOpenAI, monkeypatch: pytest.MonkeyPatch,
        desks: list[Desk]) -> None:
    monkeypatch.setenv("HITL_COMPATIBLE_API_KEY", server.api_key)
    settings = Settings(provider="compatible", compatible_base_url=server.base_url,
                        model="qwen3", compatible_api="chat")
    desk = await open_desk(tmp_path, server, monkeypatch, key=None, override="compatible",
                           settings=settings)
    desks.append(desk)
    server.enqueue_chat(Reply(calls=[Call("cancel_order", {"order_id": "ORD1001"})]),
                        Reply(text="I'm looking into it."))
    await desk.say("Please cancel ORD1001")
    created = (await desk.agent.wait("approval.created"))["data"]
    assert (await desk.draft())["text"] == "I'm looking into it."
    server.enqueue_chat(Reply(text="Your order ORD1001 is cancelled."))
    await desk.agent.send(ApprovalApprove(approval_id=created["approval_id"]), desk.sid)
    assert (await desk.draft(2))["text"] == "Your order ORD1001 is cancelled."
    messages = server.chat_requests()[-1].body["messages"]
    roles = [m["role"] for m in messages]
    assert roles.count("system") == 1 and roles[0] == "system"
    notes = [m["content"] for m in messages if str(m["content"]).startswith(NOTE_PREFIX)]
    assert notes and "executed" in notes[-1] and "HAS been carried out" in notes[-1]
    assert all(r.status == 200 for r in server.chat_requests())

