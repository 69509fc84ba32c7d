"""The OpenAI-compatible provider against the local fake (no hosted file_search there),
with the real local knowledge index answering ``search_knowledge_base``."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest

from hitl_desktop.assistant.base import TurnRequest
from hitl_desktop.assistant.compatible_provider import (
    NOTE_PREFIX,
    SEARCH_TOOL_NAME,
    CompatibleProvider,
    to_chat_messages,
)
from hitl_desktop.assistant.factory import make_provider
from hitl_desktop.assistant.stream import (
    Completed,
    Failed,
    ResponseStarted,
    SearchResults,
    StreamTranslator,
    TextDelta,
    ToolCallReady,
    translate,
)
from hitl_desktop.config import Settings, resolve_paths
from hitl_desktop.knowledge.articles import default_knowledge_dir
from hitl_desktop.knowledge.index import KnowledgeIndex
from tests.support.fake_openai import Call, FakeOpenAI, HttpError, Reply
from tests.support.stores import on_worker
from tests.support.turns import of, turn_request

ANSWER = "Orders can be cancelled while they are pending or processing. Let me check ORD1001."


@pytest.fixture
async def fake() -> AsyncIterator[FakeOpenAI]:
    async with FakeOpenAI(hosted_file_search=False) as server:
        yield server


@pytest.fixture(scope="module")
def index(tmp_path_factory: pytest.TempPathFactory) -> Iterator[KnowledgeIndex]:
    path = tmp_path_factory.mktemp("kb") / "index.sqlite3"
    idx = KnowledgeIndex.open(default_knowledge_dir(), path)
    yield idx
    idx.close()


def provider(fake: FakeOpenAI, index: KnowledgeIndex, api: str, **kw: Any) -> CompatibleProvider:
    return CompatibleProvider(base_url=fake.base_url, api_key=fake.api_key, model="llama3.1",
                              api=api, knowledge=index, max_retries=1, **kw)


def turn(*items: dict[str, Any]) -> TurnRequest:
    return turn_request("How do I cancel my order ORD1001?", *items)


def enqueue(fake: FakeOpenAI, api: str, *turns: Reply | HttpError) -> None:
    (fake.enqueue if api == "responses" else fake.enqueue_chat)(*turns)


def requests(fake: FakeOpenAI, api: str) -> list[dict[str, Any]]:
    recs = fake.responses_requests() if api == "responses" else fake.chat_requests()
    return [r.body for r in recs]


@pytest.mark.parametrize("api", ["responses", "chat"])
async def test_local_search_then_answer_with_a_tool_call(
        fake: FakeOpenAI, index: KnowledgeIndex, api: str) -> None:
    enqueue(fake, api,
            Reply(calls=[Call(SEARCH_TOOL_NAME, {"query": "cancel an order"})]),
            Reply(text=ANSWER, calls=[Call("get_order", {"order_id": "ORD1001"})]))
    p = provider(fake, index, api)
    events = [e async for e in p.stream(turn())]
    # one merged stream: contiguous sequence numbers, one lifecycle
    assert [e.sequence_number for e in events] == list(range(len(events)))
    assert [e.type for e in events].count("response.created") == 1
    translator = StreamTranslator()
    updates = [u for e in events for u in translator.feed(e)] + translator.finish()
    assert len(of(updates, ResponseStarted)) == 1
    (search,) = of(updates, SearchResults)
    ids = [h.article_id for h in search.hits]
    assert search.queries == ("cancel an order",)
    assert ids and ids[0] in {"faq/cancel-order", "kb/procedure-cancellation"}
    for i in ids:  # all local articles
        assert i is not None and await on_worker(index.get, i) is not None
    hit = search.hits[0]
    assert hit.attributes["title"] and hit.attributes["path"].endswith(".md") and hit.text
    ready = of(updates, ToolCallReady)
    assert [(r.name, r.arguments) for r in ready] == [("get_order", {"order_id": "ORD1001"})]
    (done,) = of(updates, Completed)
    assert done.text == ANSWER == "".join(u.text for u in of(updates, TextDelta))
    assert [i["type"] for i in done.output_items] == ["message", "function_call"]
    assert not of(updates, Failed)
    # the second upstream call carried the search call and its local result
    first, second = requests(fake, api)
    if api == "responses":
        names = [t["name"] for t in first["tools"]]
        assert names == ["get_order", SEARCH_TOOL_NAME]  # no hosted file_search tool
        call, output = second["input"][-2:]
        assert call["type"] == "function_call" and call["name"] == SEARCH_TOOL_NAME
        assert output["type"] == "function_call_output"
        assert output["call_id"] == call["call_id"]
        payload = json.loads(output["output"])
    else:
        assert [t["function"]["name"] for t in first["tools"]] == ["get_order",
                                                                   SEARCH_TOOL_NAME]
        assert first["messages"][0] == {"role": "system", "content": "You are the co-pilot."}
        assistant, tool = second["messages"][-2:]
        assert assistant["tool_calls"][0]["function"]["name"] == SEARCH_TOOL_NAME
        assert tool["role"] == "tool"
        assert tool["tool_call_id"] == assistant["tool_calls"][0]["id"]
        payload = json.loads(tool["content"])
    assert [r["article_id"] for r in payload["results"]] == ids
    await p.aclose()


@pytest.mark.parametrize("api", ["responses", "chat"])
async def test_follow_up_turn_with_tool_output(fake: FakeOpenAI, index: KnowledgeIndex,
                                               api: str) -> None:
    """The host's tool loop: the function call and its output go back in the next request
    (the fake rejects a call without its output, as the real APIs do)."""
    enqueue(fake, api, Reply(text="ORD1001 is pending; I have asked to cancel it."))
    p = provider(fake, index, api)
    history = [
        {"role": "user", "content": "Cancel ORD1001 please"},
        {"type": "message", "role": "assistant", "content": "Let me check."},
        {"type": "function_call", "call_id": "call_7", "name": "get_order",
         "arguments": '{"order_id":"ORD1001"}'},
        {"type": "function_call_output", "call_id": "call_7",
         "output": '{"status":"pending"}'},
    ]
    updates = [u async for u in translate(p.stream(turn(*history)))]
    await p.aclose()
    assert of(updates, Completed)[0].text.startswith("ORD1001 is pending")
    assert not of(updates, SearchResults)
    (body,) = requests(fake, api)
    if api == "chat":
        # the text written before the call and the call are one assistant turn
        assert [m["role"] for m in body["messages"]] == ["system", "user", "assistant", "tool"]
        assert body["messages"][2]["content"] == "Let me check."
        assert body["messages"][2]["tool_calls"][0]["id"] == "call_7"
    else:
        assert body["input"] == turn(*history).input  # the one renderer


async def test_search_rounds_are_bounded(fake: FakeOpenAI, index: KnowledgeIndex) -> None:
    search = Reply(calls=[Call(SEARCH_TOOL_NAME, {"query": "refund"})])
    fake.enqueue(search, search, search, search)
    p = provider(fake, index, "responses", max_search_rounds=1)
    updates = [u async for u in translate(p.stream(turn()))]
    await p.aclose()
    assert of(updates, Completed) and not of(updates, ToolCallReady)
    bodies = requests(fake, "responses")
    assert len(bodies) == 3  # search, one more offered... then cut off
    assert SEARCH_TOOL_NAME not in [t["name"] for t in bodies[1]["tools"]]
    assert "Search limit reached" in bodies[2]["input"][-1]["output"]


async def test_errors(fake: FakeOpenAI, index: KnowledgeIndex) -> None:
    p = CompatibleProvider(base_url=None, model="m", knowledge=index)
    updates = [u async for u in translate(p.stream(turn()))]
    assert isinstance(updates[0], Failed) and updates[0].code == "no_base_url"
    wrong = CompatibleProvider(base_url=fake.base_url, api_key="sk-nope-000000000",
                               model="m", api="chat", knowledge=index)
    updates = [u async for u in translate(wrong.stream(turn()))]
    await wrong.aclose()
    assert isinstance(updates[0], Failed) and updates[0].code == "auth"
    fake.enqueue_chat(HttpError(503, retry_after=0.01), Reply(text="x" * 50, chunk=5,
                                                             cut_after=4))
    p = provider(fake, index, "chat")
    updates = [u async for u in translate(p.stream(turn()))]
    await p.aclose()
    failed = updates[-1]
    assert isinstance(failed, Failed) and failed.code == "stream_cut"
    assert failed.partial_text.startswith("xxxxx")
    assert [r.status for r in fake.chat_requests()][-2:] == [503, 200]
    fake.enqueue_chat(Reply(text="Partial answer here", chunk=4, error_after=2))
    p = provider(fake, index, "chat")
    updates = [u async for u in translate(p.stream(turn()))]
    await p.aclose()
    failed = updates[-1]
    assert isinstance(failed, Failed) and failed.code == "server_error" and failed.retryable
    assert failed.partial_text == "Partial "  # two content chunks, then the error


async def test_factory_builds_it_from_settings(fake: FakeOpenAI,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HITL_COMPATIBLE_API_KEY", fake.api_key)
    paths = resolve_paths().ensure()
    settings = Settings(provider="compatible", compatible_base_url=fake.base_url,
                        compatible_api="chat", model="qwen2.5")
    p = make_provider(paths, settings)
    assert isinstance(p, CompatibleProvider) and p.api == "chat"
    fake.enqueue_chat(Reply(calls=[Call(SEARCH_TOOL_NAME, {"query": "return window"})]),
                      Reply(text="You can return items within 30 days of delivery."))
    updates = [u async for u in translate(p.stream(turn()))]
    await p.aclose()
    (search,) = of(updates, SearchResults)
    assert search.hits and (Path(paths.data_dir) / "knowledge_index.sqlite3").exists()
    assert of(updates, Completed)[0].text.endswith("30 days of delivery.")
    assert fake.chat_requests()[0].headers["Authorization"] == f"Bearer {fake.api_key}"


def test_chat_message_conversion_groups_tool_calls() -> None:
    items: list[dict[str, Any]] = [
        {"role": "user", "content": [{"type": "input_text", "text": "hi"}]},
        {"type": "reasoning", "id": "rs_1", "summary": []},
        {"type": "function_call", "call_id": "a", "name": "f", "arguments": "{}"},
        {"type": "function_call", "call_id": "b", "name": "g", "arguments": ""},
        {"type": "function_call_output", "call_id": "a", "output": "1"},
        {"type": "function_call_output", "call_id": "b", "output": "2"},
        {"role": "developer", "content": "note"},
    ]
    messages = to_chat_messages("sys", items)
    assert messages == [
        {"role": "system", "content": "sys"},
        {"role": "user", "content": "hi"},
        {"role": "assistant", "content": None, "tool_calls": [
            {"id": "a", "type": "function", "function": {"name": "f", "arguments": "{}"}},
            {"id": "b", "type": "function", "function": {"name": "g", "arguments": "{}"}}]},
        {"role": "tool", "tool_call_id": "a", "content": "1"},
        {"role": "tool", "tool_call_id": "b", "content": "2"},
        {"role": "user", "content": f"{NOTE_PREFIX} note"},
    ]
