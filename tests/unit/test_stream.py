"""The stream translator against real recorded streams and hand-made edge cases."""

from __future__ import annotations

import itertools
import json
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from hitl_desktop.assistant.base import ProviderError
from hitl_desktop.assistant.stream import (
    Citation,
    Completed,
    Failed,
    ResponseStarted,
    SearchProgress,
    SearchResults,
    StreamTranslator,
    TextDelta,
    TextDone,
    ToolCallProgress,
    ToolCallReady,
    Update,
    article_id_from,
    event_from_dict,
    parse_partial_arguments,
)
from tests.support.turns import of

RECORDED = ["file-search-1", "file-search-2", "function-calls-multi-turn", "stream-error",
            "documented-reasoning-function-call", "documented-refusal"]


def load(recorded_streams: Path, name: str) -> list[dict[str, Any]]:
    lines = (recorded_streams / f"{name}.jsonl").read_text("utf-8").splitlines()
    return [json.loads(line) for line in lines if line.strip()]


def run(events: Iterable[Mapping[str, Any]], *, as_sdk: bool = True) -> list[Update]:
    translator = StreamTranslator()
    out: list[Update] = []
    for data in events:
        out.extend(translator.feed(event_from_dict(data) if as_sdk else data))
    out.extend(translator.finish())
    return out


# ----------------------------------------------------------------- recorded streams


def test_every_recorded_stream_is_covered(recorded_streams: Path) -> None:
    assert sorted(p.stem for p in recorded_streams.glob("*.jsonl")) == sorted(RECORDED)


def test_the_repo_copies_of_the_shared_recordings_are_exact(recorded_streams: Path) -> None:
    """The tests replay the repo's copies; when shared/ sits beside the clone
    (as in CI), every real recording there must be in the repo unchanged."""
    shared = Path(__file__).resolve().parents[2].parent / "shared" / "fixtures" / "openai-recorded"
    if not shared.is_dir():
        pytest.skip("no shared/ beside this clone")
    originals = sorted(shared.glob("*.jsonl"))
    assert originals
    for original in originals:
        assert (recorded_streams / original.name).read_bytes() == original.read_bytes()


@pytest.mark.parametrize("as_sdk", [True, False], ids=["sdk-events", "plain-dicts"])
def test_documented_refusal_is_a_refusal_not_an_empty_draft(recorded_streams: Path,
                                                            as_sdk: bool) -> None:
    updates = run(load(recorded_streams, "documented-refusal"), as_sdk=as_sdk)
    assert not of(updates, Completed) and not of(updates, TextDelta)
    (failed,) = of(updates, Failed)
    assert failed.code == "refusal"
    assert "\u201cI'm sorry, but I can't help with that request.\u201d" in failed.message


@pytest.mark.parametrize("as_sdk", [True, False], ids=["sdk-events", "plain-dicts"])
def test_documented_reasoning_keeps_the_final_encrypted_content(recorded_streams: Path,
                                                                as_sdk: bool) -> None:
    events = load(recorded_streams, "documented-reasoning-function-call")
    first_turn = events[: next(i for i, e in enumerate(events)
                               if e["type"] == "response.completed") + 1]
    final = first_turn[-1]["response"]["output"][0]["encrypted_content"]
    streamed = next(e for e in first_turn if e["type"] == "response.output_item.done")
    assert streamed["item"]["encrypted_content"] != final  # the real API sends a new blob
    (done,) = of(run(first_turn, as_sdk=as_sdk), Completed)
    assert done.output_items[0]["encrypted_content"] == final
    assert [i["type"] for i in done.output_items] == ["reasoning", "function_call"]
    assert done.output_items[1]["id"].startswith("fc_")


@pytest.mark.parametrize("as_sdk", [True, False], ids=["sdk-events", "plain-dicts"])
def test_file_search_1_draft_and_citations(recorded_streams: Path, as_sdk: bool) -> None:
    updates = run(load(recorded_streams, "file-search-1"), as_sdk=as_sdk)
    done = of(updates, Completed)
    assert len(done) == 1 and not of(updates, Failed)
    text = "".join(u.text for u in of(updates, TextDelta))
    assert text == done[0].text == of(updates, TextDone)[0].text
    assert text.startswith("According to the document, an embedding model converts complex data")
    assert text.endswith(".")
    cites = of(updates, Citation)
    assert [(c.file_id, c.filename, c.index, c.annotation_index) for c in cites] == [
        ("file-Ebzhf8H4DPGPr9pUhr7n7v", "ai.pdf", 154, 0),
        ("file-Ebzhf8H4DPGPr9pUhr7n7v", "ai.pdf", 382, 1),
    ]
    assert all(c.article_id == "ai" for c in cites)  # filename stem fallback
    (search,) = of(updates, SearchResults)
    assert search.hits == ()  # that request did not include results
    assert search.queries[2] == "definition of embedding model"
    assert [u.status for u in of(updates, SearchProgress)] == ["in_progress", "searching"]
    # reasoning items without encrypted content cannot be sent back with store=False
    assert done[0].output_items == ({"type": "message", "role": "assistant", "content": text},)
    assert done[0].response_id == "resp_0459517ad68504ad0068cabfba22b88192836339640e9a765a"
    assert isinstance(updates[0], ResponseStarted)
    assert updates[0].model == "gpt-5-mini-2025-08-07"


def test_file_search_2_hits_map_to_articles(recorded_streams: Path) -> None:
    updates = run(load(recorded_streams, "file-search-2"))
    (search,) = of(updates, SearchResults)
    (hit,) = search.hits
    assert hit.file_id == "file-Ebzhf8H4DPGPr9pUhr7n7v" and hit.filename == "ai.pdf"
    assert hit.score == pytest.approx(0.9312)
    assert "An\u00a0embedding model\u00a0is used to convert complex data" in hit.text
    assert hit.article_id == "ai" and dict(hit.attributes) == {}
    (cite,) = of(updates, Citation)
    assert cite.index == 379 and cite.article_id == "ai"
    (done,) = of(updates, Completed)
    assert done.text.startswith("The document defines an embedding model as a tool that converts")
    assert done.usage is not None and done.usage["output_tokens"] == 543
    # updates arrive in stream order: search results before the first draft delta
    kinds = [type(u) for u in updates]
    assert kinds.index(SearchResults) < kinds.index(TextDelta) < kinds.index(Citation)


def test_function_calls_multi_turn_each_response(recorded_streams: Path) -> None:
    updates = run(load(recorded_streams, "function-calls-multi-turn"))
    done = of(updates, Completed)
    assert len(done) == 4 and len(of(updates, ResponseStarted)) == 4
    calls = [(c.name, c.arguments) for d in done for c in d.tool_calls]
    assert calls == [
        ("calculator", {"a": 12, "b": 7, "op": "add"}),
        ("calculator", {"a": 19, "b": 3, "op": "multiply"}),
        ("calculator", {"a": 57, "b": 10, "op": "multiply"}),
    ]
    assert [len(d.tool_calls) for d in done] == [1, 1, 1, 0]
    assert [d.text for d in done] == ["", "", "", "The final result is **570**."]
    first = done[0]
    ready = first.tool_calls[0]
    assert ready.call_id == "call_AB6AaRZ1FYZB2RwS6A5vbdqn" and ready.error is None
    assert ready.item == {"type": "function_call", "call_id": ready.call_id,
                          "name": "calculator", "arguments": '{"a":12,"b":7,"op":"add"}'}
    # the reasoning item carries encrypted content: it is kept, with ids, before the call
    rs, fc = first.output_items
    assert rs["type"] == "reasoning" and rs["encrypted_content"].startswith("gAAAA")
    assert fc["type"] == "function_call" and fc["id"].startswith("fc_")
    assert fc["call_id"] == ready.call_id
    # later responses have no reasoning: plain items without server ids
    assert done[1].output_items == (done[1].tool_calls[0].item,)
    assert done[3].output_items == (
        {"type": "message", "role": "assistant", "content": "The final result is **570**."},)
    # arguments streamed: progress grows monotonically to the final object
    progress = [u.arguments for u in of(updates, ToolCallProgress)
                if u.call_id == ready.call_id]
    assert progress[0] == {} and progress[-1] == {"a": 12, "b": 7, "op": "add"}
    assert len(progress) == len({json.dumps(p, sort_keys=True) for p in progress})


def test_stream_error_is_a_clear_failure(recorded_streams: Path) -> None:
    updates = run(load(recorded_streams, "stream-error"))
    (failed,) = of(updates, Failed)  # error event then response.failed: reported once
    assert failed.code == "insufficient_quota"
    assert "no quota left" in failed.message and "billing" in failed.message
    assert failed.retryable is False
    assert failed.response_id == "resp_05500b38c2cd9bfc00691c7c9d222481a3b595421266dab424"
    assert not of(updates, Completed)


# ----------------------------------------------------------------- edge cases


def ev(type_: str, **fields: Any) -> dict[str, Any]:
    return {"type": type_, "sequence_number": 0, **fields}


CREATED = ev("response.created", response={"id": "resp_1", "model": "m", "output": []})


def completed(output: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    return ev("response.completed", response={"id": "resp_1", "output": output or []})


def test_unknown_events_and_fields_are_ignored() -> None:
    updates = run([
        CREATED,
        ev("response.brand_new_event", whatever={"x": 1}),
        ev("response.output_text.delta", item_id="m1", output_index=0, content_index=0,
           delta="Hi", obfuscation="zz", logprobs=[], new_field=True),
        completed(),
    ])
    assert [u.text for u in of(updates, TextDelta)] == ["Hi"]
    assert of(updates, Completed)[0].text == "Hi"


def test_interleaved_items_keep_their_own_state() -> None:
    updates = run([
        CREATED,
        ev("response.output_item.added", output_index=0,
           item={"type": "function_call", "id": "fc_a", "call_id": "A", "name": "get_order",
                 "arguments": ""}),
        ev("response.output_item.added", output_index=1,
           item={"type": "function_call", "id": "fc_b", "call_id": "B", "name": "get_customer",
                 "arguments": ""}),
        ev("response.function_call_arguments.delta", item_id="fc_b", output_index=1,
           delta='{"customer_id": "CUST'),
        ev("response.function_call_arguments.delta", item_id="fc_a", output_index=0,
           delta='{"order_id": "ORD1'),
        ev("response.function_call_arguments.delta", item_id="fc_b", output_index=1,
           delta='1001"}'),
        ev("response.function_call_arguments.delta", item_id="fc_a", output_index=0,
           delta='001"}'),
        ev("response.output_item.done", output_index=1,
           item={"type": "function_call", "id": "fc_b", "call_id": "B", "name": "get_customer",
                 "arguments": '{"customer_id": "CUST1001"}'}),
        ev("response.output_item.done", output_index=0,
           item={"type": "function_call", "id": "fc_a", "call_id": "A", "name": "get_order",
                 "arguments": '{"order_id": "ORD1001"}'}),
        completed(),
    ])
    progress = [(u.call_id, u.arguments) for u in of(updates, ToolCallProgress)]
    assert ("B", {"customer_id": "CUST"}) in progress  # trailing string kept
    assert ("A", {"order_id": "ORD1"}) in progress
    (done,) = of(updates, Completed)
    assert [(c.call_id, c.arguments) for c in done.tool_calls] == [
        ("B", {"customer_id": "CUST1001"}), ("A", {"order_id": "ORD1001"})]
    # output items follow output_index order, not completion order
    assert [i["call_id"] for i in done.output_items] == ["A", "B"]


def test_citations_are_reported_once_and_missing_deltas_filled() -> None:
    annotation = {"type": "file_citation", "file_id": "file-9", "filename": "kb__returns.md",
                  "index": 5}
    updates = run([
        CREATED,
        ev("response.output_item.added", output_index=0,
           item={"type": "file_search_call", "id": "fs_1", "status": "in_progress",
                 "queries": []}),
        ev("response.output_item.done", output_index=0,
           item={"type": "file_search_call", "id": "fs_1", "status": "completed",
                 "queries": ["returns"],
                 "results": [{"file_id": "file-9", "filename": "x.md", "score": 0.5,
                              "text": "Returns within 30 days.",
                              "attributes": {"article_id": "kb/returns", "kind": "kb"}}]}),
        ev("response.output_text.delta", item_id="m", output_index=1, content_index=0,
           delta="Hello"),
        ev("response.output_text.annotation.added", item_id="m", output_index=1,
           content_index=0, annotation_index=0, annotation=annotation),
        ev("response.output_text.annotation.added", item_id="m", output_index=1,
           content_index=0, annotation_index=1,
           annotation={"type": "url_citation", "url": "https://x", "start_index": 0,
                       "end_index": 1, "title": "x"}),
        # no output_text.done: the item done carries the rest of the text
        ev("response.output_item.done", output_index=1,
           item={"type": "message", "id": "m", "role": "assistant", "status": "completed",
                 "content": [{"type": "output_text", "text": "Hello world",
                              "annotations": [annotation]}]}),
        completed(),
    ])
    cites = of(updates, Citation)
    assert len(cites) == 1 and cites[0].article_id == "kb/returns"  # via the search hit
    assert "".join(u.text for u in of(updates, TextDelta)) == "Hello world"
    assert of(updates, TextDone)[0].text == "Hello world"
    assert of(updates, SearchResults)[0].hits[0].article_id == "kb/returns"


def test_invalid_arguments_are_reported_not_raised() -> None:
    updates = run([
        CREATED,
        ev("response.output_item.done", output_index=0,
           item={"type": "function_call", "id": "fc", "call_id": "C", "name": "cancel_order",
                 "arguments": '{"order_id": '}),
        completed(),
    ])
    (ready,) = of(updates, ToolCallReady)
    assert ready.arguments is None and ready.error and "JSON" in ready.error
    assert ready.raw_arguments == '{"order_id": '


def test_incomplete_and_failed_and_cut() -> None:
    incomplete = run([CREATED, ev("response.output_text.delta", item_id="m", delta="Part"),
                      ev("response.incomplete", response={
                          "id": "resp_1", "incomplete_details": {"reason": "max_output_tokens"}})])
    (f1,) = of(incomplete, Failed)
    assert f1.code == "incomplete" and "max_output_tokens" in f1.message
    assert f1.partial_text == "Part"
    failed = run([CREATED, ev("response.failed", response={
        "id": "resp_1", "error": {"code": "server_error", "message": "boom"}})])
    (f2,) = of(failed, Failed)
    assert f2.code == "server_error" and f2.retryable and "boom" in f2.message
    flat_error = run([CREATED, ev("error", code="rate_limit_exceeded", message="slow down",
                                  param=None)])
    assert of(flat_error, Failed)[0].code == "rate_limit_exceeded"
    cut = run([CREATED, ev("response.output_text.delta", item_id="m", delta="Half a")])
    (f3,) = of(cut, Failed)
    assert f3.code == "stream_cut" and f3.partial_text == "Half a" and f3.retryable
    nothing = run([])
    assert of(nothing, Failed)[0].code == "stream_cut"


def test_events_after_the_end_are_ignored_and_provider_errors_reported_once() -> None:
    translator = StreamTranslator()
    translator.feed(CREATED)
    assert of(translator.feed(completed()), Completed)
    assert translator.feed(ev("response.output_text.delta", item_id="m", delta="late")) == []
    assert translator.fail(ProviderError("upstream", "x")) == []
    assert translator.finish() == []
    other = StreamTranslator()
    (failed,) = other.fail(ProviderError("no_api_key", "No key."))
    assert failed == Failed("no_api_key", "No key.", False, None, "")


def test_article_id_from() -> None:
    assert article_id_from({"article_id": "faq/shipping"}, "whatever.md") == "faq/shipping"
    assert article_id_from({"kind": "kb", "slug": "refunds"}, None) == "kb/refunds"
    assert article_id_from({}, "kb__cancel-order.md") == "kb/cancel-order"
    assert article_id_from(None, "faq--payment-methods.md") == "faq/payment-methods"
    assert article_id_from(None, "dir/returns.md") == "returns"
    assert article_id_from(None, "") is None


def test_partial_arguments() -> None:
    assert parse_partial_arguments("") == {}
    assert parse_partial_arguments('{"reason": "too la') == {"reason": "too la"}
    assert parse_partial_arguments('{"amount": 12.') in ({"amount": 12.0}, {})
    assert parse_partial_arguments("[1, 2") is None


@settings(max_examples=60, deadline=None)
@given(
    args=st.dictionaries(st.sampled_from(["order_id", "reason", "amount", "note"]),
                         st.one_of(st.text(max_size=20), st.integers(), st.booleans()),
                         max_size=4),
    cuts=st.lists(st.integers(min_value=0, max_value=200), max_size=12),
)
def test_any_delta_split_yields_the_same_arguments(args: dict[str, Any], cuts: list[int]) -> None:
    raw = json.dumps(args)
    points = sorted({min(c, len(raw)) for c in cuts} | {0, len(raw)})
    events = [CREATED, ev("response.output_item.added", output_index=0, item={
        "type": "function_call", "id": "fc", "call_id": "C", "name": "f", "arguments": ""})]
    events += [ev("response.function_call_arguments.delta", item_id="fc", output_index=0,
                  delta=raw[a:b]) for a, b in itertools.pairwise(points)]
    events += [ev("response.function_call_arguments.done", item_id="fc", output_index=0,
                  arguments=raw), completed()]
    updates = run(events)
    (ready,) = of(updates, ToolCallReady)
    assert ready.arguments == args
    for progress in of(updates, ToolCallProgress):
        assert set(progress.arguments) <= set(args)


@settings(max_examples=80, deadline=None)
@given(st.lists(st.fixed_dictionaries({
    "type": st.sampled_from([*sorted(StreamTranslator._HANDLERS), "x.y"]),
}, optional={
    "item_id": st.text(max_size=3),
    "delta": st.one_of(st.none(), st.text(max_size=5), st.integers()),
    "output_index": st.one_of(st.integers(-2, 3), st.text(max_size=2)),
    "item": st.one_of(st.none(), st.dictionaries(st.sampled_from(["type", "id", "results",
                                                                   "content", "arguments"]),
                                                  st.one_of(st.none(), st.text(max_size=3),
                                                            st.lists(st.integers(), max_size=2)))),
    "response": st.one_of(st.none(), st.dictionaries(st.sampled_from(["id", "output", "error"]),
                                                      st.one_of(st.none(), st.text(max_size=3)))),
}), max_size=12))
@example(events=[{"type": "response.output_item.done", "item": {"type": []}}])  # (found)
def test_garbage_never_raises(events: list[dict[str, Any]]) -> None:
    updates = run(events, as_sdk=False)
    assert sum(isinstance(u, Completed | Failed) for u in updates) >= 1
