"""The offline engine's replies as OpenAI Responses stream events.

The events are the SDK's own types, in the order the real API sends them (checked
against the recorded streams), so the turn loop, the translator and the UI cannot
tell the engine from a model. They are constructed without validation, as the SDK
constructs the events it receives (``construct``): each output item is built once
and the events that carry it (``output_item.done``, ``response.completed``) share
it. Validating ~30 events per draft cost more host CPU than the rest of the
engine's streaming (issue 18); tests/unit/test_offline_events.py validates every
event the engine emits for a sample of lines with the SDK's real validation.
"""

from __future__ import annotations

import asyncio
import json
import random
import re
import secrets
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from typing import Any, TypeVar

from openai.types.responses import (
    Response,
    ResponseCompletedEvent,
    ResponseContentPartAddedEvent,
    ResponseContentPartDoneEvent,
    ResponseCreatedEvent,
    ResponseFileSearchCallCompletedEvent,
    ResponseFileSearchCallInProgressEvent,
    ResponseFileSearchCallSearchingEvent,
    ResponseFileSearchToolCall,
    ResponseFunctionCallArgumentsDeltaEvent,
    ResponseFunctionCallArgumentsDoneEvent,
    ResponseFunctionToolCall,
    ResponseInProgressEvent,
    ResponseOutputItemAddedEvent,
    ResponseOutputItemDoneEvent,
    ResponseOutputMessage,
    ResponseOutputText,
    ResponseOutputTextAnnotationAddedEvent,
    ResponseStreamEvent,
    ResponseTextDeltaEvent,
    ResponseTextDoneEvent,
)
from openai.types.responses.response_file_search_tool_call import Result as FileSearchResult
from openai.types.responses.response_output_text import AnnotationFileCitation
from openai.types.responses.response_output_text_annotation_added_event import (
    AnnotationFileCitation as AddedFileCitation,
)
from pydantic import BaseModel

from hitl_desktop.assistant.base import TurnRequest
from hitl_desktop.knowledge.index import SearchHit


@dataclass(frozen=True, slots=True)
class Call:
    """A tool call to stream."""

    name: str
    arguments: dict[str, Any]


@dataclass(slots=True)
class Reply:
    """One response: what was searched and found, then a tool call or a draft."""

    queries: list[str]
    hits: list[SearchHit]
    call: Call | None
    text: str = ""
    citations: list[tuple[int, SearchHit]] = field(default_factory=list)


#: A paced stream sends what it wrote in this long as one delta, as a model's server
#: batches tokens: the same words per second, a fraction of the events, wake-ups and
#: frames (the host coalesces draft.delta frames at the same rate).
FRAME_S = 0.04


@dataclass(frozen=True, slots=True)
class Pace:
    delay_s: float = 0.0  # per word (per argument chunk of a tool call)
    yield_every: int = 4

    @property
    def per_event(self) -> int:
        """Words per text delta: one unpaced, else what is written in ~``FRAME_S``."""
        return max(1, round(FRAME_S / self.delay_s)) if self.delay_s > 0 else 1


def file_id_for(article_id: str) -> str:
    """A stable pseudo file id for a local article (file_search results / citations)."""
    return "file-local-" + article_id.replace("/", "--")


def filename_for(hit: SearchHit) -> str:
    return f"{hit.kind}__{hit.slug}.md"


def _score(raw: float) -> float:
    return round(min(0.99, max(0.01, raw / (raw + 8.0))), 4) if raw > 0 else 0.01


_M = TypeVar("_M", bound=BaseModel)

#: the SDK classes the engine builds, with their optional fields' defaults (all None in
#: the SDK; a default factory would be called per object, as pydantic does)
_CLASSES: tuple[type[BaseModel], ...] = (
    Response, ResponseCreatedEvent, ResponseInProgressEvent, ResponseCompletedEvent,
    ResponseOutputItemAddedEvent, ResponseOutputItemDoneEvent,
    ResponseFileSearchCallInProgressEvent, ResponseFileSearchCallSearchingEvent,
    ResponseFileSearchCallCompletedEvent, ResponseFileSearchToolCall, FileSearchResult,
    ResponseFunctionToolCall, ResponseFunctionCallArgumentsDeltaEvent,
    ResponseFunctionCallArgumentsDoneEvent, ResponseOutputMessage, ResponseOutputText,
    AnnotationFileCitation, AddedFileCitation, ResponseContentPartAddedEvent,
    ResponseContentPartDoneEvent, ResponseTextDeltaEvent, ResponseTextDoneEvent,
    ResponseOutputTextAnnotationAddedEvent,
)
_DEFAULTS: dict[type[BaseModel], dict[str, Any]] = {
    cls: {name: f.default for name, f in cls.model_fields.items()
          if not f.is_required() and f.default_factory is None}
    for cls in _CLASSES
}
_FIELDS: dict[type[BaseModel], frozenset[str]] = {
    cls: frozenset(cls.model_fields) for cls in _CLASSES}
_FACTORIES: dict[type[BaseModel], tuple[tuple[str, Any], ...]] = {
    cls: tuple((name, f.default_factory) for name, f in cls.model_fields.items()
               if f.default_factory is not None)
    for cls in _CLASSES
}
# pydantic's own slots (what ``model_construct`` sets), written past BaseModel.__setattr__
_set_attr = object.__setattr__
_set_fields_set = BaseModel.__dict__["__pydantic_fields_set__"].__set__
_set_extra = BaseModel.__dict__["__pydantic_extra__"].__set__
_set_private = BaseModel.__dict__["__pydantic_private__"].__set__


def build(cls: type[_M], **fields: Any) -> _M:
    """An SDK object from fields of the right types, without validation.

    What pydantic's ``model_construct`` (and the SDK's ``construct``) leave behind: the
    fields given (and so "set", as ``exclude_unset`` sees them), the other fields at
    their defaults, a name the SDK does not model kept as an extra field (the real API
    sends some: ``name`` on ``function_call_arguments.done``). Nested values must
    already be SDK objects."""
    given = set(fields)  # validation counts an extra field as set too
    known = _FIELDS[cls]
    extra = ({} if given <= known  # the usual case, checked in C
             else {k: fields.pop(k) for k in [k for k in fields if k not in known]})
    values = {**_DEFAULTS[cls], **fields}
    for name, factory in _FACTORIES[cls]:
        if name not in fields:
            values[name] = factory()
    obj = object.__new__(cls)
    _set_attr(obj, "__dict__", values)
    _set_fields_set(obj, given)
    _set_extra(obj, extra)
    _set_private(obj, None)
    return obj


class Emitter:
    """Turns a :class:`Reply` into a Responses event stream."""

    def __init__(self, pace: Pace, request: TurnRequest, plan: Reply, *,
                 rng: random.Random | None = None) -> None:
        self.p = pace
        self.request = request
        self.plan = plan
        self.seq = 0
        # one draw of randomness per response, ids told apart by a counter; from the
        # engine's generator (seeded from the system's randomness) when given, as the
        # system call per draw lets other threads take the GIL the host's loop needs.
        # Ids only have to be unique in a conversation, not secret.
        self._token = (f"{rng.getrandbits(192):048x}" if rng is not None
                       else secrets.token_hex(24))
        self._ids = 0
        self.response_id = f"resp_{self._token}"
        self.created_at = time.time()
        self.output: list[BaseModel] = []
        self._since_yield = 0

    def _rid(self, prefix: str) -> str:
        self._ids += 1
        return f"{prefix}_{self._token[:-4]}{self._ids:04x}"

    def _n(self) -> int:
        n = self.seq
        self.seq += 1
        return n

    def _response(self, status: str) -> Response:
        return build(
            Response,
            id=self.response_id,
            object="response",
            created_at=self.created_at,
            status=status,
            error=None,
            incomplete_details=None,
            instructions=None,
            metadata=dict(self.request.metadata),
            model="offline",
            output=list(self.output) if status != "in_progress" else [],
            parallel_tool_calls=False,
            temperature=None,
            tool_choice="auto",
            tools=[],
            top_p=None,
            usage=None,
        )

    async def _pace(self, units: int = 1) -> None:
        if self.p.delay_s > 0:
            await asyncio.sleep(self.p.delay_s * units)
            return
        self._since_yield += 1
        if self._since_yield >= self.p.yield_every:
            self._since_yield = 0
            await asyncio.sleep(0)

    def _event(self, cls: type[_M], kind: str, **fields: Any) -> _M:
        """One SDK event object, numbered in stream order."""
        return build(cls, type=kind, sequence_number=self._n(), **fields)

    def _item_event(self, cls: type[_M], kind: str, idx: int, item: BaseModel) -> _M:
        return self._event(cls, kind, output_index=idx, item=item)

    def script(self) -> list[tuple[ResponseStreamEvent, int | None]]:
        """Every event of the response, each with the pause that follows it (in words or
        argument chunks of the pace; 0: a bare yield to the loop; None: none). Built in
        one go, so the engine builds it in its worker thread with the plan and the
        host's loop only plays it (:meth:`play`)."""
        return list(self._script())

    def _script(self) -> Iterator[tuple[ResponseStreamEvent, int | None]]:
        yield self._event(
            ResponseCreatedEvent, "response.created", response=self._response("in_progress")
        ), None
        yield self._event(
            ResponseInProgressEvent, "response.in_progress", response=self._response("in_progress")
        ), None
        if self.plan.queries:
            searched = self._file_search()
            for event in searched[:-1]:
                yield event, None
            yield searched[-1], 0
        if self.plan.call is not None:
            yield from self._function_call(self.plan.call)
        else:
            yield from self._message()
        yield self._event(
            ResponseCompletedEvent, "response.completed", response=self._response("completed")
        ), None

    async def events(self) -> AsyncIterator[ResponseStreamEvent]:
        """The response's events at the pace (built here; see :meth:`script`)."""
        async for event in self.play(self.script()):
            yield event

    async def play(
        self, script: list[tuple[ResponseStreamEvent, int | None]]
    ) -> AsyncIterator[ResponseStreamEvent]:
        """Yield a :meth:`script`'s events with its pauses."""
        for event, pause in script:
            yield event
            if pause == 0:
                await asyncio.sleep(0)
            elif pause is not None:
                await self._pace(pause)

    def timed(
        self, script: list[tuple[ResponseStreamEvent, int | None]]
    ) -> list[tuple[ResponseStreamEvent, float | None]]:
        """A :meth:`script` with its pauses in seconds, as :meth:`play` would take them
        (``0.0``: a bare yield to the loop; None: none)."""
        out: list[tuple[ResponseStreamEvent, float | None]] = []
        delay, every, since = self.p.delay_s, self.p.yield_every, self._since_yield
        for event, pause in script:
            seconds: float | None = None
            if pause == 0:
                seconds = 0.0
            elif pause is not None:
                if delay > 0:
                    seconds = delay * pause
                else:
                    since += 1
                    if since >= every:
                        since = 0
                        seconds = 0.0
            out.append((event, seconds))
        self._since_yield = since
        return out

    def _file_search(self) -> list[ResponseStreamEvent]:
        idx = len(self.output)
        item_id = self._rid("fs")
        added = build(ResponseFileSearchToolCall, id=item_id, type="file_search_call",
                      status="in_progress", queries=[], results=None)
        results = [
            build(
                FileSearchResult,
                file_id=file_id_for(h.article_id),
                filename=filename_for(h),
                score=_score(h.score),
                text=h.text,
                attributes={
                    "article_id": h.article_id,
                    "kind": h.kind,
                    "slug": h.slug,
                    "title": h.title,
                    "path": h.path,
                },
            )
            for h in self.plan.hits
        ]
        done = build(ResponseFileSearchToolCall, id=item_id, type="file_search_call",
                     status="completed", queries=list(self.plan.queries), results=results)
        self.output.append(done)
        base = {"output_index": idx, "item_id": item_id}
        return [
            self._item_event(
                ResponseOutputItemAddedEvent, "response.output_item.added", idx, added
            ),
            self._event(
                ResponseFileSearchCallInProgressEvent,
                "response.file_search_call.in_progress",
                **base,
            ),
            self._event(
                ResponseFileSearchCallSearchingEvent, "response.file_search_call.searching", **base
            ),
            self._event(
                ResponseFileSearchCallCompletedEvent, "response.file_search_call.completed", **base
            ),
            self._item_event(ResponseOutputItemDoneEvent, "response.output_item.done", idx, done),
        ]

    def _function_call(self, step: Call) -> Iterator[tuple[ResponseStreamEvent, int | None]]:
        idx = len(self.output)
        item_id = self._rid("fc")
        self._ids += 1
        call_id = f"call_{self._token[:20]}{self._ids:04x}"
        arguments = json.dumps(step.arguments, ensure_ascii=False, separators=(",", ":"))
        item = {
            "id": item_id,
            "type": "function_call",
            "status": "in_progress",
            "arguments": "",
            "call_id": call_id,
            "name": step.name,
        }
        yield self._item_event(
            ResponseOutputItemAddedEvent, "response.output_item.added", idx,
            build(ResponseFunctionToolCall, **item),
        ), None
        chunks = re.findall(r'"[^"]{0,12}|[^"]{1,12}', arguments)
        per = self.p.per_event
        for i in range(0, len(chunks), per):
            yield self._event(
                ResponseFunctionCallArgumentsDeltaEvent,
                "response.function_call_arguments.delta",
                item_id=item_id,
                output_index=idx,
                delta="".join(chunks[i : i + per]),
            ), len(chunks[i : i + per])
        yield self._event(
            ResponseFunctionCallArgumentsDoneEvent,
            "response.function_call_arguments.done",
            item_id=item_id,
            output_index=idx,
            name=step.name,
            arguments=arguments,
        ), None
        done = build(ResponseFunctionToolCall, **{**item, "status": "completed",
                                                  "arguments": arguments})
        self.output.append(done)
        yield self._item_event(
            ResponseOutputItemDoneEvent, "response.output_item.done", idx, done), None

    def _annotation(
        self, base: dict[str, Any], annotations: list[AnnotationFileCitation], at: int,
        hit: SearchHit,
    ) -> ResponseOutputTextAnnotationAddedEvent:
        """A file citation of ``hit`` at draft offset ``at`` (appended to ``annotations``)."""
        ann = {
            "type": "file_citation",
            "file_id": file_id_for(hit.article_id),
            "filename": filename_for(hit),
            "index": at,
        }
        event = self._event(
            ResponseOutputTextAnnotationAddedEvent,
            "response.output_text.annotation.added",
            **base,
            annotation_index=len(annotations),
            annotation=build(AddedFileCitation, **ann),
        )
        annotations.append(build(AnnotationFileCitation, **ann))
        return event

    def _message(self) -> Iterator[tuple[ResponseStreamEvent, int | None]]:
        idx = len(self.output)
        item_id = self._rid("msg")
        text = self.plan.text
        base = {"item_id": item_id, "output_index": idx, "content_index": 0}
        yield self._item_event(
            ResponseOutputItemAddedEvent,
            "response.output_item.added",
            idx,
            build(ResponseOutputMessage, id=item_id, type="message", status="in_progress",
                  content=[], role="assistant"),
        ), None
        yield self._event(
            ResponseContentPartAddedEvent,
            "response.content_part.added",
            **base,
            part=build(ResponseOutputText, type="output_text", annotations=[], logprobs=[],
                       text=""),
        ), None
        annotations: list[AnnotationFileCitation] = []
        pending = sorted(self.plan.citations, key=lambda c: c[0])
        pos = 0
        words = re.findall(r"\s*\S+", text) or ([text] if text else [])
        per = self.p.per_event
        for i in range(0, len(words), per):
            delta = "".join(words[i : i + per])
            pos += len(delta)
            event = self._event(
                ResponseTextDeltaEvent,
                "response.output_text.delta",
                **base,
                delta=delta,
                logprobs=[],
            )
            cited = []
            while pending and pending[0][0] <= pos:
                at, hit = pending.pop(0)
                cited.append(self._annotation(base, annotations, at, hit))
            units = len(words[i : i + per])  # the pause follows the delta's annotations
            yield event, None if cited else units
            for n, ann in enumerate(cited, 1):
                yield ann, units if n == len(cited) else None
        tail = text[pos:]
        if tail:  # trailing whitespace the word splitter left out
            yield self._event(
                ResponseTextDeltaEvent,
                "response.output_text.delta",
                **base,
                delta=tail,
                logprobs=[],
            ), None
        for at, hit in pending:
            yield self._annotation(base, annotations, at, hit), None
        part = build(ResponseOutputText, type="output_text", annotations=annotations,
                     logprobs=[], text=text)
        yield self._event(
            ResponseTextDoneEvent, "response.output_text.done", **base, text=text, logprobs=[]
        ), None
        yield self._event(
            ResponseContentPartDoneEvent, "response.content_part.done", **base, part=part
        ), None
        done = build(ResponseOutputMessage, id=item_id, type="message", status="completed",
                     content=[part], role="assistant")
        self.output.append(done)
        yield self._item_event(
            ResponseOutputItemDoneEvent, "response.output_item.done", idx, done), None
