"""The offline engine's events are built without validation (issue 18: validating ~30
events per draft cost more host CPU than the rest of its streaming); here every event it
emits for a sample of the labelled lines (tool calls, drafts with citations, a steered
draft) goes through the SDK's real validation and must come back the same object."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from openai.types.responses import (
    ResponseFunctionToolCall,
    ResponseStreamEvent,
    ResponseTextDeltaEvent,
)
from pydantic import BaseModel, TypeAdapter

from hitl_desktop.assistant.base import TurnRequest
from hitl_desktop.assistant.offline import OfflineProvider
from hitl_desktop.assistant.offline.events import build
from hitl_desktop.assistant.stream import event_from_dict
from hitl_desktop.core.turns import CustomerLine, RepInstruction
from hitl_desktop.knowledge.articles import default_knowledge_dir
from hitl_desktop.knowledge.index import KnowledgeIndex
from hitl_desktop.store.catalog_file import default_catalog
from hitl_desktop.store.database import ShopDatabase
from tests.support.offline_eval import load_rows, run_row

DATA = Path(__file__).resolve().parents[1] / "data"
EVENTS: TypeAdapter[ResponseStreamEvent] = TypeAdapter(ResponseStreamEvent)


class Recording:
    """The engine, keeping every event it streams."""

    def __init__(self, engine: OfflineProvider) -> None:
        self.engine = engine
        self.events: list[ResponseStreamEvent] = []

    async def stream(self, request: TurnRequest) -> Any:
        async for event in self.engine.stream(request):
            self.events.append(event)
            yield event


def same(a: Any, b: Any, path: str = "") -> None:
    """Same classes, same fields set, same values, all the way down."""
    assert type(a) is type(b), f"{path}: {type(a).__name__} != {type(b).__name__}"
    if isinstance(a, BaseModel):
        assert a.model_fields_set == b.model_fields_set, path
        assert a.model_extra == b.model_extra, path
        for name in type(a).model_fields:
            same(getattr(a, name), getattr(b, name), f"{path}.{name}")
    elif isinstance(a, list | tuple):
        assert len(a) == len(b), path
        for n, (x, y) in enumerate(zip(a, b, strict=True)):
            same(x, y, f"{path}[{n}]")
    elif isinstance(a, dict):
        assert a.keys() == b.keys(), path
        for k in a:
            same(a[k], b[k], f"{path}[{k!r}]")
    else:
        assert a == b, path


@pytest.fixture(scope="module")
def engine(tmp_path_factory: pytest.TempPathFactory) -> Iterator[OfflineProvider]:
    index = KnowledgeIndex.open(default_knowledge_dir(), tmp_path_factory.mktemp("kb") / "ix.db")
    yield OfflineProvider(index, catalog=default_catalog())
    index.close()


def check(events: list[ResponseStreamEvent]) -> None:
    for event in events:
        data = event.model_dump(mode="json", exclude_unset=True, warnings="error")
        validated = type(event).model_validate(data)  # the SDK's strict path
        same(event, validated, event.type)
        same(event, EVENTS.validate_python(data), event.type)  # the union picks this class
        same(event, event_from_dict(json.loads(json.dumps(data))), event.type)  # as received


@pytest.fixture(scope="module")
def shop(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ShopDatabase]:
    db = ShopDatabase.open(tmp_path_factory.mktemp("shop"), default_catalog())
    yield db
    db.close()


async def test_every_event_validates_as_the_sdk_builds_it(
    engine: OfflineProvider, shop: ShopDatabase
) -> None:
    catalog = default_catalog()
    rows = load_rows(DATA / "offline_set_a.jsonl")[::9] + load_rows(
        DATA / "offline_set_b.jsonl")[::9]
    recording = Recording(engine)
    for row in rows:
        await run_row(recording, row, shop, catalog)  # type: ignore[arg-type]
    events = recording.events
    kinds = {e.type for e in events}
    assert {"response.output_text.annotation.added", "response.function_call_arguments.done",
            "response.file_search_call.completed", "response.completed"} <= kinds
    check(events)
    assert len(events) > 300


async def test_steered_and_paced_streams_validate(engine: OfflineProvider) -> None:
    """A steered draft (voucher call or rewritten text) and a paced stream (grouped
    deltas) are built by the same code."""
    history = [CustomerLine(text="my blender arrived broken, what can I do?", message_id="m1"),
               RepInstruction(text="shorter and add the relevant article link", agent="rep",
                              turn_id="t2")]
    steered = TurnRequest(instructions="", history=history, tools=[], session_id="s",
                          customer_id="CUST1001")
    events = [e async for e in engine.stream(steered)]
    paced = OfflineProvider(engine.index, delay_s=0.0005)
    request = TurnRequest(instructions="", history=history[:1], tools=[], session_id="s")
    events += [e async for e in paced.stream(request)]
    assert sum(isinstance(e, ResponseTextDeltaEvent) for e in events) > 2
    check(events)


def test_build_leaves_what_validation_leaves() -> None:
    """Unset fields at their defaults and out of ``exclude_unset``; an unmodelled name kept
    as an extra field, as validation does."""
    fields = {"type": "function_call", "call_id": "call_1", "name": "get_order",
              "arguments": "{}", "unmodelled": 1}
    got = build(ResponseFunctionToolCall, **fields)
    same(got, ResponseFunctionToolCall.model_validate(fields))
    assert got.id is None and got.model_extra == {"unmodelled": 1}
    assert got.model_dump(exclude_unset=True) == fields
