"""The OpenAI provider through the real ``openai.AsyncOpenAI`` client against the local fake."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from hitl_desktop.assistant.base import ProviderError, TurnRequest
from hitl_desktop.assistant.factory import make_provider, resolve_provider_name
from hitl_desktop.assistant.openai_provider import OpenAIProvider
from hitl_desktop.assistant.stream import (
    Citation,
    Completed,
    Failed,
    SearchResults,
    StreamTranslator,
    TextDelta,
    ToolCallReady,
    Update,
    event_from_dict,
    translate,
)
from hitl_desktop.config import Settings, resolve_paths
from hitl_desktop.secrets import store_api_key
from tests.support.fake_openai import (
    Call,
    Cite,
    FakeOpenAI,
    Hit,
    HttpError,
    Replay,
    Reply,
    replay_turns,
    serve_in_thread,
)
from tests.support.turns import GET_ORDER, of, turn_request

CALCULATOR = {
    "type": "function", "name": "calculator", "strict": True,
    "parameters": {"type": "object", "additionalProperties": False,
                   "required": ["a", "b", "op"],
                   "properties": {"a": {"type": "number"}, "b": {"type": "number"},
                                  "op": {"type": "string",
                                         "enum": ["add", "multiply"]}}},
}


@pytest.fixture
async def fake() -> AsyncIterator[FakeOpenAI]:
    async with FakeOpenAI() as server:
        yield server


def provider(fake: FakeOpenAI, **kwargs: Any) -> OpenAIProvider:
    options: dict[str, Any] = {"api_key": fake.api_key, "base_url": fake.base_url,
                               "model": "gpt-5-mini", "vector_store_id": "vs_test",
                               "max_retries": 2}
    options.update(kwargs)
    return OpenAIProvider(**options)


def turn(*items: dict[str, Any], tools: list[dict[str, Any]] | None = None) -> TurnRequest:
    return turn_request("Where is ORD1001?", *items, tools=tools)


async def collect(p: OpenAIProvider, request: TurnRequest) -> list[Update]:
    return [u async for u in translate(p.stream(request))]


def direct(recorded: Path) -> list[Update]:
    translator = StreamTranslator()
    out: list[Update] = []
    for line in recorded.read_text("utf-8").splitlines():
        out.extend(translator.feed(event_from_dict(json.loads(line))))
    return out + translator.finish()


# ----------------------------------------------------------------- recorded streams over SSE


@pytest.mark.parametrize("name", ["file-search-1", "file-search-2"])
async def test_recorded_file_search_over_sse_matches_direct_feed(
        fake: FakeOpenAI, recorded_streams: Path, name: str) -> None:
    path = recorded_streams / f"{name}.jsonl"
    fake.enqueue(*replay_turns(path))
    p = provider(fake)
    updates = await collect(p, turn())
    await p.aclose()
    assert updates == direct(path)  # the SDK path changes nothing
    (done,) = of(updates, Completed)
    assert "embedding model" in done.text
    assert "".join(u.text for u in of(updates, TextDelta)) == done.text
    assert {c.index for c in of(updates, Citation)} == (
        {154, 382} if name == "file-search-1" else {379})
    hits = of(updates, SearchResults)[0].hits
    assert [h.article_id for h in hits] == ([] if name == "file-search-1" else ["ai"])


async def test_recorded_function_calls_multi_turn_as_a_tool_loop(
        fake: FakeOpenAI, recorded_streams: Path) -> None:
    """Four requests, each answered by one recorded response; the host's loop feeds back
    each call with its output, and the fake checks every call has its output."""
    fake.enqueue(*replay_turns(recorded_streams / "function-calls-multi-turn.jsonl"))
    p = provider(fake, model="gpt-5.1-codex-max", vector_store_id=None)
    history: list[dict[str, Any]] = [
        {"role": "user", "content": "Compute (12 + 7) * 3 * 10 with the calculator."}]
    results: list[tuple[str, dict[str, Any]]] = []
    final = ""
    for _ in range(4):
        updates = await collect(p, turn(*history, tools=[CALCULATOR]))
        assert not of(updates, Failed), of(updates, Failed)
        (done,) = of(updates, Completed)
        history.extend(done.output_items)
        for call in done.tool_calls:
            assert call.arguments is not None
            results.append((call.name, call.arguments))
            a, b = call.arguments["a"], call.arguments["b"]
            value = a + b if call.arguments["op"] == "add" else a * b
            history.append({"type": "function_call_output", "call_id": call.call_id,
                            "output": json.dumps({"result": value})})
        final = done.text
    await p.aclose()
    assert results == [("calculator", {"a": 12, "b": 7, "op": "add"}),
                       ("calculator", {"a": 19, "b": 3, "op": "multiply"}),
                       ("calculator", {"a": 57, "b": 10, "op": "multiply"})]
    assert final == "The final result is **570**."
    bodies = [r.body for r in fake.responses_requests()]
    assert [r.status for r in fake.responses_requests()] == [200, 200, 200, 200]
    last_input = bodies[3]["input"]
    outputs = [i for i in last_input if i.get("type") == "function_call_output"]
    calls = [i for i in last_input if i.get("type") == "function_call"]
    assert [o["call_id"] for o in outputs] == [c["call_id"] for c in calls] == [
        "call_AB6AaRZ1FYZB2RwS6A5vbdqn", "call_Q6pW65MUgW9vF59BmItYGos3",
        "call_Zl5vIMnD7dVAjgU6FkhmiCZh"]
    # a reasoning model gets encrypted reasoning back, so stateless input stays valid
    assert "reasoning.encrypted_content" in bodies[0]["include"]
    assert any(i.get("type") == "reasoning" and i.get("encrypted_content")
               for i in bodies[1]["input"])


async def test_recorded_stream_error_is_a_clear_failure(
        fake: FakeOpenAI, recorded_streams: Path) -> None:
    fake.enqueue(*replay_turns(recorded_streams / "stream-error.jsonl"))
    p = provider(fake)
    updates = await collect(p, turn())
    await p.aclose()
    (failed,) = of(updates, Failed)
    assert failed.code == "insufficient_quota"
    assert "no quota left" in failed.message and not failed.retryable
    assert len(fake.requests) == 1  # a quota error is not retried


# ----------------------------------------------------------------- scripted turns


async def test_request_shape(fake: FakeOpenAI) -> None:
    fake.enqueue(Reply(text="ok"))
    p = provider(fake, max_search_results=7)
    history = [
        {"role": "user", "content": "Cancel ORD1001"},
        {"type": "function_call", "call_id": "call_1", "name": "get_order",
         "arguments": '{"order_id":"ORD1001"}'},
        {"type": "function_call_output", "call_id": "call_1", "output": '{"status":"pending"}'},
    ]
    await collect(p, turn(*history))
    await p.aclose()
    (req,) = fake.requests
    assert req.headers["Authorization"] == f"Bearer {fake.api_key}"
    body = req.body
    assert body["model"] == "gpt-5-mini" and body["stream"] is True
    assert body["instructions"] == "You are the co-pilot."
    assert body["tools"] == [
        {"type": "file_search", "vector_store_ids": ["vs_test"], "max_num_results": 7},
        GET_ORDER,
    ]
    assert body["include"][0] == "file_search_call.results"
    assert body["parallel_tool_calls"] is False and body["store"] is False
    assert body["input"] == history


async def test_scripted_search_citations_and_tool_call(fake: FakeOpenAI) -> None:
    text = "Orders can be cancelled while pending. I'll check ORD1001."
    fake.enqueue(Reply(
        text=text,
        search=[Hit("file-abc", "cancel-order.md", "Cancel while pending or processing.",
                    0.87, {"article_id": "kb/cancel-order", "kind": "kb",
                           "slug": "cancel-order", "title": "Cancelling an order",
                           "path": "kb/cancel-order.md"})],
        citations=[Cite("file-abc", "cancel-order.md", 38)],
        calls=[Call("get_order", {"order_id": "ORD1001"})]))
    p = provider(fake)
    updates = await collect(p, turn())
    await p.aclose()
    (hits,) = of(updates, SearchResults)
    assert [(h.article_id, h.score) for h in hits.hits] == [("kb/cancel-order", 0.87)]
    (cite,) = of(updates, Citation)
    assert (cite.article_id, cite.index) == ("kb/cancel-order", 38)
    (ready,) = of(updates, ToolCallReady)
    assert (ready.name, ready.arguments) == ("get_order", {"order_id": "ORD1001"})
    (done,) = of(updates, Completed)
    assert done.text == text
    assert [i["type"] for i in done.output_items] == ["message", "function_call"]


async def test_no_key_is_a_clear_error_and_a_stored_key_is_picked_up(fake: FakeOpenAI) -> None:
    paths = resolve_paths().ensure()
    p = OpenAIProvider(paths=paths, model="gpt-5-mini", base_url=fake.base_url)
    with pytest.raises(ProviderError) as info:
        await anext(aiter(p.stream(turn())))
    assert info.value.code == "no_api_key" and "OPENAI_API_KEY" in info.value.message
    assert fake.requests == []
    where = store_api_key(paths, fake.api_key)  # no keyring in tests: the 0600 file
    assert "api_key" in where
    fake.enqueue(Reply(text="now it works"))
    updates = await collect(p, turn())
    await p.aclose()
    assert of(updates, Completed)[0].text == "now it works"


async def test_openai_base_url_env_is_honoured(fake: FakeOpenAI,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_BASE_URL", fake.base_url)
    monkeypatch.setenv("OPENAI_API_KEY", fake.api_key)
    paths = resolve_paths().ensure()
    settings = Settings(provider="auto")
    assert resolve_provider_name(paths, settings) == "openai"
    p = make_provider(paths, settings)
    assert isinstance(p, OpenAIProvider)
    fake.enqueue(Reply(text="via env"))
    updates = [u async for u in translate(p.stream(turn()))]
    await p.aclose()
    assert of(updates, Completed)[0].text == "via env"


async def test_auto_without_key_is_offline() -> None:
    paths = resolve_paths().ensure()
    assert resolve_provider_name(paths, Settings()) == "offline"
    offline = await asyncio.to_thread(make_provider, paths, Settings())  # opens the index
    assert offline.name == "offline" and offline.is_ai is False
    await offline.aclose()
    assert resolve_provider_name(paths, Settings(), "compatible") == "compatible"
    with pytest.raises(ValueError, match="unknown provider"):
        resolve_provider_name(paths, Settings(provider="gpt"))


async def test_wrong_key_is_auth(fake: FakeOpenAI) -> None:
    p = provider(fake, api_key="sk-wrong-key-123456")
    updates = await collect(p, turn())
    await p.aclose()
    (failed,) = updates
    assert isinstance(failed, Failed) and failed.code == "auth"
    assert "rejected the API key" in failed.message and "sk-wrong" not in failed.message[:30]
    assert len(fake.requests) == 1  # 401 is not retried


async def test_429_then_success_is_retried(fake: FakeOpenAI) -> None:
    fake.enqueue(HttpError(429, retry_after=0.05), Reply(text="after the retry"))
    p = provider(fake)
    updates = await collect(p, turn())
    await p.aclose()
    assert of(updates, Completed)[0].text == "after the retry"
    first, second = fake.requests
    assert first.status == 429 and second.status == 200
    assert second.at - first.at >= 0.04  # retry-after honoured
    assert second.body == first.body


async def test_rate_limit_exhausted(fake: FakeOpenAI) -> None:
    fake.enqueue(*[HttpError(429, retry_after=0.01)] * 3)
    p = provider(fake)
    updates = await collect(p, turn())
    await p.aclose()
    (failed,) = updates
    assert isinstance(failed, Failed) and failed.code == "rate_limited" and failed.retryable
    assert len(fake.requests) == 3


async def test_http_insufficient_quota_is_clear(fake: FakeOpenAI) -> None:
    fake.enqueue(HttpError(429, code="insufficient_quota", type="insufficient_quota",
                           message="You exceeded your current quota."))
    fake.enqueue(HttpError(429, code="insufficient_quota", type="insufficient_quota"))
    p = provider(fake, max_retries=1)
    updates = await collect(p, turn())
    await p.aclose()
    (failed,) = updates
    assert isinstance(failed, Failed) and failed.code == "insufficient_quota"
    assert "no quota left" in failed.message and not failed.retryable


def test_serve_in_thread_for_sync_callers() -> None:
    import httpx2

    with serve_in_thread() as server:
        server.enqueue(Reply(text="from a thread"))
        response = httpx2.post(f"{server.base_url}/responses", json={
            "model": "gpt-4.1-mini", "input": "hi", "stream": True},
            headers={"Authorization": f"Bearer {server.api_key}"})
        assert response.status_code == 200
        assert "event: response.completed" in response.text
        assert '"delta":"from a"' in response.text


async def test_500s_exhaust_retries_with_backoff(fake: FakeOpenAI) -> None:
    fake.enqueue(HttpError(500), HttpError(502), HttpError(503))
    p = provider(fake)
    started = time.monotonic()
    updates = await collect(p, turn())
    elapsed = time.monotonic() - started
    await p.aclose()
    (failed,) = updates
    assert isinstance(failed, Failed) and failed.code == "upstream" and failed.retryable
    assert "retries are exhausted" in failed.message
    assert len(fake.requests) == 3
    assert elapsed >= 0.5  # exponential backoff (0.5 s then 1 s, minus jitter)


async def test_connection_refused_is_unreachable() -> None:
    async with FakeOpenAI() as server:
        url, key = server.base_url, server.api_key
    p = OpenAIProvider(api_key=key, base_url=url, model="gpt-5-mini", max_retries=0)
    updates = await collect(p, turn())
    await p.aclose()
    assert isinstance(updates[0], Failed) and updates[0].code == "unreachable"


async def test_stream_cut_mid_draft(fake: FakeOpenAI) -> None:
    fake.enqueue(Reply(text="Your order ORD1001 is pending and can be cancelled.", chunk=5,
                       cut_after=5))
    p = provider(fake)
    updates = await collect(p, turn())
    await p.aclose()
    failed = updates[-1]
    assert isinstance(failed, Failed) and failed.code == "stream_cut" and failed.retryable
    assert failed.partial_text and "Your order ORD1001".startswith(failed.partial_text[:10])
    assert not of(updates, Completed)
    assert len(fake.requests) == 1  # never replayed after text reached the agents


async def test_stream_ending_without_a_terminal_event(
        fake: FakeOpenAI, recorded_streams: Path) -> None:
    """A clean end of the HTTP body before ``response.completed`` is a cut too."""
    (full,) = replay_turns(recorded_streams / "file-search-2.jsonl")
    fake.enqueue(Replay(full.events[:30]))
    p = provider(fake)
    updates = await collect(p, turn())
    await p.aclose()
    failed = updates[-1]
    assert isinstance(failed, Failed) and failed.code == "stream_cut"
    assert failed.partial_text.startswith("The document defines")
    assert of(updates, SearchResults) and not of(updates, Completed)


async def test_error_event_mid_stream(fake: FakeOpenAI) -> None:
    fake.enqueue(Reply(text="Let me look into that for you.", error_after=4))
    p = provider(fake)
    updates = await collect(p, turn())
    await p.aclose()
    failed = updates[-1]
    assert isinstance(failed, Failed) and failed.code == "server_error" and failed.retryable
    assert of(updates, TextDelta) and not of(updates, Completed)


async def test_incomplete_response(fake: FakeOpenAI) -> None:
    fake.enqueue(Reply(text="A long answer", incomplete="max_output_tokens"))
    p = provider(fake)
    updates = await collect(p, turn())
    await p.aclose()
    failed = updates[-1]
    assert isinstance(failed, Failed) and failed.code == "incomplete"
    assert failed.partial_text == "A long answer" and "max_output_tokens" in failed.message


async def test_cancelling_closes_the_http_stream(fake: FakeOpenAI) -> None:
    fake.enqueue(Reply(text="x" * 400, chunk=2, delay=0.02), Reply(text="next"))
    p = provider(fake)
    stream = p.stream(turn())
    started = time.monotonic()
    async for event in stream:
        if event.type == "response.output_text.delta":
            break
    await stream.aclose()
    assert time.monotonic() - started < 2.0  # 200 deltas x 20 ms were not waited for
    updates = await collect(p, turn())
    await p.aclose()
    assert of(updates, Completed)[0].text == "next"
    for _ in range(100):  # the server notices at its next write
        if fake.disconnects:
            break
        await asyncio.sleep(0.01)
    assert fake.disconnects == 1


async def test_rejected_requests_surface_the_real_error(fake: FakeOpenAI) -> None:
    p = provider(fake)
    loose = dict(GET_ORDER, parameters={"type": "object",
                                        "properties": {"order_id": {"type": "string"}}})
    updates = await collect(p, turn(tools=[loose]))
    assert isinstance(updates[0], Failed) and updates[0].code == "bad_request"
    assert "additionalProperties" in updates[0].message
    orphan = {"type": "function_call", "call_id": "call_9", "name": "get_order",
              "arguments": "{}"}
    updates = await collect(p, turn({"role": "user", "content": "hi"}, orphan))
    await p.aclose()
    assert isinstance(updates[0], Failed)
    assert "No tool output found for function call call_9" in updates[0].message
    assert [r.status for r in fake.requests] == [400, 400]
