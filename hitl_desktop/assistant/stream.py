"""Translate Responses stream events into typed updates for the turn loop.

Every engine (OpenAI, OpenAI-compatible, offline) yields ``openai.types.responses``
stream events; :class:`StreamTranslator` is the one place that understands them.
It is pure (no I/O, no asyncio): feed it one event at a time with
:meth:`StreamTranslator.feed`, get back a list of updates, and call
:meth:`StreamTranslator.finish` when the event source ends.

Why so defensive: the SDK builds events with ``construct`` (no validation) and
casts an event type it does not know to the first member of the union, so we
dispatch on ``event.type`` only and read every field with a default. Real
streams carry fields the SDK does not model (``obfuscation``, ``logprobs``,
``encrypted_content``), interleave items by ``output_index`` and may send an
``error`` event whose payload is nested (``{"error": {"code", "message"}}``)
instead of the documented flat shape. All of that is handled here.

The updates, in the order a consumer typically sees them for one response:

* :class:`ResponseStarted` — ``response.created``: the response id and model.
* :class:`SearchProgress` — a ``file_search_call`` started / is searching.
* :class:`SearchResults` — the ``file_search_call`` finished; its hits (empty
  when the request did not ``include`` results), each mapped to a local
  ``article_id``.
* :class:`TextDelta` — a piece of the draft (``response.output_text.delta``).
* :class:`Citation` — a ``file_citation`` annotation on the draft.
* :class:`TextDone` — one output text part is complete (its full text).
* :class:`ToolCallProgress` — a function call's arguments so far, parsed
  leniently (a half-streamed string value is kept).
* :class:`ToolCallReady` — a function call is complete: parsed arguments (or a
  parse error) and the ``function_call`` input item to append to the history
  before its ``function_call_output``.
* :class:`Completed` — the response finished: the full draft text, the tool
  calls, and the output items to append to the conversation (stateless input).
* :class:`Failed` — ``error`` / ``response.failed`` / ``response.incomplete``, a
  stream that ended without a terminal event, a :class:`ProviderError`, or a
  refusal (``response.refusal.delta/done`` or a ``refusal`` content part and no
  text: code ``refusal``, the model's words in the message — never an empty draft).

Exactly one of :class:`Completed` or :class:`Failed` ends a response; after it
the translator ignores further events until :meth:`StreamTranslator.reset`
(``response.created`` also resets it, so one translator can read several
responses back to back, as a tool loop produces them).
"""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field, fields
from pathlib import PurePosixPath
from typing import Any, TypeVar, cast

import jiter
from openai.types.responses import ResponseStreamEvent
from pydantic import BaseModel

from hitl_desktop.assistant.base import ProviderError

log = logging.getLogger(__name__)

__all__ = [
    "Citation",
    "Completed",
    "Failed",
    "ResponseStarted",
    "SearchHit",
    "SearchProgress",
    "SearchResults",
    "StreamTranslator",
    "TextDelta",
    "TextDone",
    "ToolCallProgress",
    "ToolCallReady",
    "Update",
    "article_id_from",
    "event_from_dict",
    "output_to_input_items",
    "translate",
]


# --------------------------------------------------------------------------- updates

_U = TypeVar("_U")


def _pickles_by_value(cls: type[_U]) -> type[_U]:
    """Pickle an update as its constructor call: half the unpickling cost of the
    dataclass default (a ``fields()`` walk per object), which the host pays for every
    update of an offline engine running in its own process (issue 18)."""
    names = tuple(f.name for f in fields(cast(Any, cls)))

    def __reduce__(self: Any) -> tuple[Any, tuple[Any, ...]]:
        return cls, tuple([getattr(self, name) for name in names])

    cls.__reduce__ = __reduce__  # type: ignore[method-assign]
    return cls


@_pickles_by_value
@dataclass(frozen=True, slots=True)
class ResponseStarted:
    """``response.created``: a new response began (one per model call)."""

    response_id: str
    model: str | None


@_pickles_by_value
@dataclass(frozen=True, slots=True)
class TextDelta:
    """A piece of draft text, in order. ``item_id`` names the message item."""

    text: str
    item_id: str = ""


@_pickles_by_value
@dataclass(frozen=True, slots=True)
class TextDone:
    """One output text part is complete; ``text`` is that part's full text.

    A response may hold several message items; :attr:`Completed.text` joins them.
    """

    text: str
    item_id: str = ""


@_pickles_by_value
@dataclass(frozen=True, slots=True)
class SearchHit:
    """One ``file_search`` result.

    ``article_id`` is the local article (``"kind/slug"``) from the upload
    attributes (``attributes["article_id"]``), else derived from the filename
    (see :func:`article_id_from`); ``None`` when neither gives one.
    """

    file_id: str
    filename: str
    score: float
    text: str
    attributes: Mapping[str, Any]
    article_id: str | None


@_pickles_by_value
@dataclass(frozen=True, slots=True)
class SearchProgress:
    """A ``file_search_call`` item changed state: ``in_progress`` | ``searching``."""

    item_id: str
    status: str


@_pickles_by_value
@dataclass(frozen=True, slots=True)
class SearchResults:
    """A ``file_search_call`` finished. ``hits`` is empty when results were not included."""

    item_id: str
    queries: tuple[str, ...]
    hits: tuple[SearchHit, ...]


@_pickles_by_value
@dataclass(frozen=True, slots=True)
class Citation:
    """A ``file_citation`` annotation on the draft.

    ``index`` is the character position in the output text part it annotates;
    ``annotation_index`` its position among that part's annotations. Each
    (item, part, annotation_index) is reported once.
    """

    file_id: str
    filename: str
    article_id: str | None
    index: int
    annotation_index: int = 0
    item_id: str = ""


@_pickles_by_value
@dataclass(frozen=True, slots=True)
class ToolCallProgress:
    """A function call's arguments while they stream.

    ``arguments`` is the partial JSON parsed leniently (half-streamed string
    values kept); emitted only when it changed.
    """

    call_id: str
    name: str
    arguments: dict[str, Any]
    item_id: str = ""


@_pickles_by_value
@dataclass(frozen=True, slots=True)
class ToolCallReady:
    """A complete function call.

    ``arguments`` is the parsed object, or ``None`` with ``error`` set when the
    model sent invalid JSON (tell the model via the function_call_output).
    ``item`` is the ``function_call`` input item (``type, call_id, name,
    arguments`` as a JSON string, no server id); every such item needs a
    matching ``function_call_output`` in the next request. When the response
    completes, append :attr:`Completed.output_items` instead (it holds these
    same calls, plus the reasoning items and ids they must travel with).
    """

    call_id: str
    name: str
    arguments: dict[str, Any] | None
    raw_arguments: str
    item: dict[str, Any]
    error: str | None = None
    item_id: str = ""


@_pickles_by_value
@dataclass(frozen=True, slots=True)
class Completed:
    """The response finished.

    ``text`` is the whole draft (message parts joined by a blank line).
    ``output_items`` are the Responses *input* items that represent this
    response in a stateless conversation (``store=False``), in output order:
    assistant messages as ``{"type": "message", "role": "assistant",
    "content": text}``, ``function_call`` items, and reasoning items only when
    they carry ``encrypted_content`` (item ids are kept only then; a reasoning
    item without encrypted content cannot be sent back with ``store=False``).
    Hosted ``file_search_call`` items are not included (the server re-runs
    search as needed). ``tool_calls`` are the function calls, in order.
    """

    response_id: str
    text: str
    output_items: tuple[dict[str, Any], ...]
    tool_calls: tuple[ToolCallReady, ...]
    usage: Mapping[str, Any] | None = None


@_pickles_by_value
@dataclass(frozen=True, slots=True)
class Failed:
    """The response failed; show ``message`` to the representative.

    ``code`` is the upstream code (e.g. ``insufficient_quota``,
    ``rate_limit_exceeded``, ``server_error``), ``incomplete`` (with the reason
    in ``message``), ``stream_cut`` (ended without a terminal event), or a
    :class:`ProviderError` code (``no_api_key``, ``auth``, ``rate_limited``,
    ``upstream``, ...). ``partial_text`` is the draft received before the failure.
    """

    code: str
    message: str
    retryable: bool = False
    response_id: str | None = None
    partial_text: str = ""


Update = (
    ResponseStarted
    | TextDelta
    | TextDone
    | SearchProgress
    | SearchResults
    | Citation
    | ToolCallProgress
    | ToolCallReady
    | Completed
    | Failed
)

#: output item types a stateless next request needs back (output_to_input_items)
_INPUT_TYPES = frozenset({"message", "function_call", "reasoning"})

_RETRYABLE_CODES = frozenset(
    {"rate_limit_exceeded", "server_error", "rate_limited", "upstream", "stream_cut", "timeout"}
)


# --------------------------------------------------------------------------- helpers


def sdk_get(obj: Any, name: str, default: Any = None) -> Any:
    """Read a field from an SDK model (modelled or extra) or a mapping, never raising.

    Providers yield SDK objects, plain dicts (compatible servers) or objects with
    extra fields; the translator and the compatible engine read them all this way."""
    if obj is None:
        return default
    if type(obj) is dict:  # the common cases first: an ABC check per read added up
        return obj.get(name, default)
    if isinstance(obj, BaseModel):
        fields = obj.__dict__
        if name in fields:  # a modelled field (or extra one): no __getattr__ miss
            value = fields[name]
            if value is None:
                extra = obj.__pydantic_extra__
                if extra and name in extra:
                    value = extra[name]
            return default if value is None else value
        extra = obj.__pydantic_extra__
        if extra and name in extra:
            value = extra[name]
            return default if value is None else value
    if isinstance(obj, Mapping):
        return obj.get(name, default)
    try:
        value = getattr(obj, name)
    except AttributeError:
        value = None
    if value is None:
        extra = getattr(obj, "model_extra", None)
        if isinstance(extra, dict) and name in extra:
            value = extra[name]
    return default if value is None else value


def sdk_dict(obj: Any) -> dict[str, Any]:
    """An SDK model or mapping as a plain JSON-ready dict (unset fields left out)."""
    if obj is None:
        return {}
    if isinstance(obj, Mapping):
        return dict(obj)
    to_dict = getattr(obj, "to_dict", None)
    if callable(to_dict):
        result = to_dict(mode="json", exclude_unset=True, warnings=False)
        return dict(result) if isinstance(result, Mapping) else {}
    return {}


def _str(value: Any) -> str:
    return value if isinstance(value, str) else ""


def _int(value: Any, default: int = 0) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else default


def article_id_from(attributes: Mapping[str, Any] | None, filename: str | None) -> str | None:
    """Map a file_search result / citation to a local article id.

    ``attributes["article_id"]`` (set at upload) wins. Otherwise the filename
    stem: ``kind__slug.md`` or ``kind--slug.md`` become ``kind/slug``; a plain
    ``slug.md`` stays ``slug`` (the caller may resolve it against the index).
    """
    if attributes:
        value = attributes.get("article_id")
        if isinstance(value, str) and value:
            return value
        kind, slug = attributes.get("kind"), attributes.get("slug")
        if isinstance(kind, str) and isinstance(slug, str) and kind and slug:
            return f"{kind}/{slug}"
    if not filename:
        return None
    stem = PurePosixPath(filename.replace("\\", "/")).stem
    for sep in ("__", "--"):
        kind, found, slug = stem.partition(sep)
        if found and kind in {"kb", "faq"} and slug:
            return f"{kind}/{slug}"
    return stem or None


def parse_partial_arguments(buffer: str) -> dict[str, Any] | None:
    """Parse half-streamed JSON arguments, keeping a trailing partial string value."""
    if not buffer.strip():
        return {}
    try:
        value = jiter.from_json(buffer.encode("utf-8"), partial_mode="trailing-strings")
    except ValueError:
        return None
    return value if isinstance(value, dict) else None


def event_from_dict(data: Mapping[str, Any]) -> ResponseStreamEvent:
    """Build an event from its JSON exactly as the SDK does for a received SSE event.

    Used to replay recorded streams and by engines that produce JSON; unknown
    fields and types survive as the SDK leaves them.
    """
    from openai._models import construct_type

    return cast(ResponseStreamEvent, construct_type(type_=ResponseStreamEvent, value=dict(data)))


# --------------------------------------------------------------------------- translator


@dataclass(slots=True)
class _Call:
    item_id: str
    call_id: str = ""
    name: str = ""
    buffer: str = ""
    last_partial: dict[str, Any] | None = None
    ready: bool = False
    args_done: bool = False
    output_index: int | None = None


@dataclass(slots=True)
class _Part:
    text: str = ""
    done: bool = False


@dataclass(slots=True)
class _State:
    response_id: str = ""
    model: str | None = None
    finished: bool = False
    parts: dict[tuple[str, int], _Part] = field(default_factory=dict)
    part_order: list[tuple[str, int]] = field(default_factory=list)
    calls: dict[str, _Call] = field(default_factory=dict)
    ready_calls: list[ToolCallReady] = field(default_factory=list)
    items_done: dict[int, dict[str, Any]] = field(default_factory=dict)
    file_articles: dict[str, str | None] = field(default_factory=dict)
    citations_seen: set[tuple[str, int, int]] = field(default_factory=set)
    searches_done: set[str] = field(default_factory=set)
    search_status: dict[str, str] = field(default_factory=dict)
    refusals: dict[str, str] = field(default_factory=dict)  # message item -> refusal text


class StreamTranslator:
    """Turn Responses stream events into :data:`Update` values (pure, synchronous).

    One instance reads one response, or several back to back (each
    ``response.created`` starts afresh). Call :meth:`finish` when the event
    source is exhausted: it reports a :class:`Failed` ``stream_cut`` if the
    response never completed.
    """

    def __init__(self) -> None:
        self._s = _State()
        self._started = False

    # -- public API

    @property
    def finished(self) -> bool:
        """True once :class:`Completed` or :class:`Failed` was emitted for this response."""
        return self._s.finished

    @property
    def response_id(self) -> str:
        return self._s.response_id

    @property
    def text(self) -> str:
        """The draft text so far (all output text parts, joined)."""
        return self._joined_text()

    def reset(self) -> None:
        """Forget the current response (the next events start a new one)."""
        self._s = _State()
        self._started = False

    def feed(self, event: ResponseStreamEvent | Mapping[str, Any]) -> list[Update]:
        """Handle one event; returns the updates it produced (often none)."""
        etype = _str(sdk_get(event, "type"))
        if etype == "response.created":
            self.reset()
        elif self._s.finished:
            log.debug("ignoring %s after the response ended", etype)
            return []
        handler = self._HANDLERS.get(etype)
        if handler is None:
            if etype not in self._IGNORED:
                log.debug("ignoring unknown stream event type %r", etype)
            return []
        updates: list[Update] = handler(self, event)
        return updates

    def finish(self) -> list[Update]:
        """The event source ended: a response that did not complete was cut."""
        if self._s.finished or not self._started:
            if not self._started and not self._s.finished:
                self._s.finished = True
                return [Failed("stream_cut", "The assistant stream ended before it started.",
                               retryable=True)]
            return []
        return [self._fail("stream_cut", "The assistant stream was cut off before the "
                           "response was complete.", retryable=True)]

    def fail(self, error: ProviderError) -> list[Update]:
        """Report a provider failure (once) as :class:`Failed`, keeping the partial draft."""
        if self._s.finished:
            return []
        return [self._fail(error.code, error.message, retryable=error.retryable)]

    # -- handlers

    def _on_created(self, event: Any) -> list[Update]:
        response = sdk_get(event, "response")
        self._s.response_id = _str(sdk_get(response, "id"))
        self._s.model = sdk_get(response, "model")
        self._started = True
        return [ResponseStarted(self._s.response_id, self._s.model)]

    def _mark_started(self, event: Any) -> None:
        if not self._started:
            response = sdk_get(event, "response")
            self._s.response_id = self._s.response_id or _str(sdk_get(response, "id"))
            self._started = True

    def _on_in_progress(self, event: Any) -> list[Update]:
        if not self._started:
            return self._on_created(event)
        return []

    def _item_key(self, event: Any) -> str:
        item_id = _str(sdk_get(event, "item_id"))
        return item_id or f"#{_int(sdk_get(event, 'output_index'))}"

    def _part(self, key: tuple[str, int]) -> _Part:
        part = self._s.parts.get(key)
        if part is None:
            part = self._s.parts[key] = _Part()
            self._s.part_order.append(key)
        return part

    def _on_text_delta(self, event: Any) -> list[Update]:
        self._started = True
        delta = _str(sdk_get(event, "delta"))
        item_id = self._item_key(event)
        part = self._part((item_id, _int(sdk_get(event, "content_index"))))
        if not delta or part.done:
            return []
        part.text += delta
        return [TextDelta(delta, item_id)]

    def _finish_part(self, item_id: str, index: int, full: str) -> list[Update]:
        part = self._part((item_id, index))
        if part.done:
            return []
        out: list[Update] = []
        if full.startswith(part.text) and len(full) > len(part.text):
            out.append(TextDelta(full[len(part.text):], item_id))  # deltas were missing
        if full:
            part.text = full
        part.done = True
        out.append(TextDone(part.text, item_id))
        return out

    def _on_text_done(self, event: Any) -> list[Update]:
        self._started = True
        return self._finish_part(
            self._item_key(event), _int(sdk_get(event, "content_index")),
            _str(sdk_get(event, "text")),
        )

    def _citation(self, item_id: str, content_index: int, ann_index: int,
                  annotation: Any) -> list[Update]:
        if sdk_get(annotation, "type") != "file_citation":
            return []  # url_citation, file_path, ...: not knowledge-base articles
        key = (item_id, content_index, ann_index)
        if key in self._s.citations_seen:
            return []
        self._s.citations_seen.add(key)
        file_id = _str(sdk_get(annotation, "file_id"))
        filename = _str(sdk_get(annotation, "filename"))
        article = self._s.file_articles.get(file_id) or article_id_from(None, filename)
        return [Citation(file_id, filename, article, _int(sdk_get(annotation, "index")),
                         ann_index, item_id)]

    def _on_annotation(self, event: Any) -> list[Update]:
        return self._citation(
            self._item_key(event),
            _int(sdk_get(event, "content_index")),
            _int(sdk_get(event, "annotation_index")),
            sdk_get(event, "annotation"),
        )

    def _on_item_added(self, event: Any) -> list[Update]:
        self._started = True
        item = sdk_get(event, "item")
        itype = sdk_get(item, "type")
        item_id = _str(sdk_get(item, "id")) or f"#{_int(sdk_get(event, 'output_index'))}"
        if itype == "function_call":
            call = self._s.calls.setdefault(item_id, _Call(item_id))
            call.call_id = _str(sdk_get(item, "call_id")) or call.call_id
            call.name = _str(sdk_get(item, "name")) or call.name
            initial = _str(sdk_get(item, "arguments"))
            if initial and not call.buffer:
                call.buffer = initial
            call.last_partial = {}
            return [ToolCallProgress(call.call_id, call.name, {}, item_id)]
        if itype == "file_search_call":
            return self._search_progress(item_id, _str(sdk_get(item, "status")) or "in_progress")
        return []

    def _search_progress(self, item_id: str, status: str) -> list[Update]:
        if self._s.search_status.get(item_id) == status or item_id in self._s.searches_done:
            return []
        self._s.search_status[item_id] = status
        return [SearchProgress(item_id, status)]

    def _on_search_status(self, event: Any) -> list[Update]:
        status = _str(sdk_get(event, "type")).rsplit(".", 1)[-1]
        if status == "completed":
            return []  # results arrive with output_item.done
        return self._search_progress(self._item_key(event), status)

    def _on_args_delta(self, event: Any) -> list[Update]:
        item_id = self._item_key(event)
        call = self._s.calls.setdefault(item_id, _Call(item_id))
        if call.ready:
            return []
        call.buffer += _str(sdk_get(event, "delta"))
        partial = parse_partial_arguments(call.buffer)
        if partial is None or partial == call.last_partial:
            return []
        call.last_partial = partial
        return [ToolCallProgress(call.call_id, call.name, partial, item_id)]

    def _on_args_done(self, event: Any) -> list[Update]:
        item_id = self._item_key(event)
        call = self._s.calls.setdefault(item_id, _Call(item_id))
        arguments = sdk_get(event, "arguments")
        if isinstance(arguments, str):
            call.buffer = arguments
        name = _str(sdk_get(event, "name"))
        if name:
            call.name = name
        call.args_done = True
        call.output_index = _int(sdk_get(event, "output_index"), -1)
        return []

    def _ready(self, item_id: str, item: Any) -> list[Update]:
        call = self._s.calls.setdefault(item_id, _Call(item_id))
        if call.ready:
            return []
        call.ready = True
        call.call_id = _str(sdk_get(item, "call_id")) or call.call_id
        call.name = _str(sdk_get(item, "name")) or call.name
        raw = sdk_get(item, "arguments")
        if isinstance(raw, str) and raw:
            call.buffer = raw
        arguments: dict[str, Any] | None = None
        error: str | None = None
        try:
            parsed = json.loads(call.buffer) if call.buffer.strip() else {}
        except ValueError as exc:
            error = f"arguments are not valid JSON: {exc}"
        else:
            if isinstance(parsed, dict):
                arguments = parsed
            else:
                error = "arguments must be a JSON object"
        input_item: dict[str, Any] = {
            "type": "function_call",
            "call_id": call.call_id,
            "name": call.name,
            "arguments": call.buffer,
        }
        item_real_id = _str(sdk_get(item, "id"))
        if item_real_id:
            input_item["id"] = item_real_id  # stripped in Completed unless reasoning is kept
        ready = ToolCallReady(call.call_id, call.name, arguments, call.buffer,
                              _public_call_item(input_item), error, item_id)
        self._s.ready_calls.append(ready)
        return [ready]

    def _on_item_done(self, event: Any) -> list[Update]:
        self._started = True
        item = sdk_get(event, "item")
        itype = _str(sdk_get(item, "type"))  # (not a string: an item of no known type)
        index = _int(sdk_get(event, "output_index"), len(self._s.items_done))
        # only what goes back as input needs a copy (output_to_input_items): a hosted
        # search's results (sections of articles) are read below and not dumped
        self._s.items_done[index] = (sdk_dict(item) if itype in _INPUT_TYPES
                                     else {"type": itype})
        item_id = _str(sdk_get(item, "id")) or f"#{index}"
        if itype == "function_call":
            return self._ready(item_id, item)
        if itype == "file_search_call":
            return self._search_results(item_id, item)
        if itype == "message":
            return self._message_done(item_id, item)
        return []

    def _search_results(self, item_id: str, item: Any) -> list[Update]:
        if item_id in self._s.searches_done:
            return []
        self._s.searches_done.add(item_id)
        hits: list[SearchHit] = []
        for result in sdk_get(item, "results", []) or []:
            attributes = sdk_get(result, "attributes") or {}
            if not isinstance(attributes, Mapping):
                attributes = {}
            file_id = _str(sdk_get(result, "file_id"))
            filename = _str(sdk_get(result, "filename"))
            article = article_id_from(attributes, filename)
            if file_id:
                self._s.file_articles.setdefault(file_id, article)
            score = sdk_get(result, "score", 0.0)
            hits.append(SearchHit(
                file_id, filename, float(score) if isinstance(score, int | float) else 0.0,
                _str(sdk_get(result, "text")), dict(attributes), article,
            ))
        queries = tuple(q for q in (sdk_get(item, "queries", []) or []) if isinstance(q, str))
        return [SearchResults(item_id, queries, tuple(hits))]

    def _on_refusal_delta(self, event: Any) -> list[Update]:
        self._started = True
        key = self._item_key(event)
        self._s.refusals[key] = self._s.refusals.get(key, "") + _str(sdk_get(event, "delta"))
        return []

    def _on_refusal_done(self, event: Any) -> list[Update]:
        self._started = True
        refusal = _str(sdk_get(event, "refusal"))
        if refusal:
            self._s.refusals[self._item_key(event)] = refusal
        return []

    def _message_done(self, item_id: str, item: Any) -> list[Update]:
        out: list[Update] = []
        for index, content in enumerate(sdk_get(item, "content", []) or []):
            if sdk_get(content, "type") == "refusal":
                refusal = _str(sdk_get(content, "refusal"))
                if refusal or item_id not in self._s.refusals:
                    self._s.refusals[item_id] = refusal
                continue
            if sdk_get(content, "type") != "output_text":
                continue
            for ann_index, annotation in enumerate(sdk_get(content, "annotations", []) or []):
                out.extend(self._citation(item_id, index, ann_index, annotation))
            out.extend(self._finish_part(item_id, index, _str(sdk_get(content, "text"))))
        return out

    def _on_completed(self, event: Any) -> list[Update]:
        self._mark_started(event)
        response = sdk_get(event, "response")
        out: list[Update] = []
        output = sdk_get(response, "output", []) or []
        for index, item in enumerate(output):
            if index not in self._s.items_done:  # items we never saw finish
                fake_done = {"type": "response.output_item.done", "output_index": index,
                             "item": item}
                out.extend(self._on_item_done(fake_done))
            elif sdk_get(item, "type") == "reasoning":
                # the final response is what the API documents to send back: a reasoning
                # item's encrypted content there differs from the output_item.done one
                self._s.items_done[index] = sdk_dict(item)
        for call in list(self._s.calls.values()):  # arguments.done but no item.done
            if call.ready or not call.args_done:
                continue
            index = call.output_index if call.output_index is not None else -1
            if index < 0 or index in self._s.items_done:
                index = max(self._s.items_done, default=-1) + 1
            synthetic: dict[str, Any] = {"type": "function_call", "call_id": call.call_id,
                                         "name": call.name, "arguments": call.buffer}
            if not call.item_id.startswith("#"):
                synthetic["id"] = call.item_id
            out.extend(self._on_item_done({"output_index": index, "item": synthetic}))
        if self._s.refusals and not self._joined_text().strip():
            refusal = " ".join(r.strip() for r in self._s.refusals.values() if r.strip())
            out.append(self._fail("refusal", "The AI model refused to draft this reply"
                                  + (f": “{refusal}”" if refusal else ".")
                                  + " Write the reply yourself, or regenerate."))
            return out
        items = [self._s.items_done[i] for i in sorted(self._s.items_done)]
        usage = sdk_dict(sdk_get(response, "usage")) or None
        self._s.finished = True
        out.append(Completed(
            response_id=self._s.response_id or _str(sdk_get(response, "id")),
            text=self._joined_text(),
            output_items=tuple(output_to_input_items(items)),
            tool_calls=tuple(self._s.ready_calls),
            usage=usage,
        ))
        return out

    def _on_failed(self, event: Any) -> list[Update]:
        self._mark_started(event)
        response = sdk_get(event, "response")
        error = sdk_get(response, "error")
        code = _str(sdk_get(error, "code")) or "failed"
        message = _str(sdk_get(error, "message")) or "The assistant response failed."
        return [self._fail(code, _explain(code, message), retryable=code in _RETRYABLE_CODES)]

    def _on_incomplete(self, event: Any) -> list[Update]:
        self._mark_started(event)
        details = sdk_get(sdk_get(event, "response"), "incomplete_details")
        reason = _str(sdk_get(details, "reason")) or "unknown reason"
        return [self._fail("incomplete", f"The assistant stopped early ({reason}); the draft "
                           "may be unfinished.")]

    def _on_error(self, event: Any) -> list[Update]:
        nested = sdk_get(event, "error")
        code = _str(sdk_get(event, "code")) or _str(sdk_get(nested, "code")) or _str(
            sdk_get(nested, "type")) or "error"
        message = _str(sdk_get(event, "message")) or _str(sdk_get(nested, "message")) or (
            "The assistant service reported an error.")
        return [self._fail(code, _explain(code, message), retryable=code in _RETRYABLE_CODES)]

    def _fail(self, code: str, message: str, *, retryable: bool = False) -> Failed:
        self._s.finished = True
        return Failed(code, message, retryable, self._s.response_id or None, self._joined_text())

    def _joined_text(self) -> str:
        texts: list[str] = []
        for key in self._s.part_order:
            text = self._s.parts[key].text
            if text:
                texts.append(text)
        return "\n\n".join(texts)

    _HANDLERS: Any = {
        "response.created": _on_created,
        "response.in_progress": _on_in_progress,
        "response.queued": _on_in_progress,
        "response.output_text.delta": _on_text_delta,
        "response.output_text.done": _on_text_done,
        "response.output_text.annotation.added": _on_annotation,
        "response.output_item.added": _on_item_added,
        "response.output_item.done": _on_item_done,
        "response.file_search_call.in_progress": _on_search_status,
        "response.file_search_call.searching": _on_search_status,
        "response.file_search_call.completed": _on_search_status,
        "response.function_call_arguments.delta": _on_args_delta,
        "response.function_call_arguments.done": _on_args_done,
        "response.refusal.delta": _on_refusal_delta,
        "response.refusal.done": _on_refusal_done,
        "response.completed": _on_completed,
        "response.failed": _on_failed,
        "response.incomplete": _on_incomplete,
        "error": _on_error,
    }
    _IGNORED = frozenset({
        "response.content_part.added",
        "response.content_part.done",
        "response.reasoning_summary_part.added",
        "response.reasoning_summary_part.done",
        "response.reasoning_summary_text.delta",
        "response.reasoning_summary_text.done",
        "response.reasoning_text.delta",
        "response.reasoning_text.done",
    })


def _explain(code: str, message: str) -> str:
    """Prefix well-known upstream codes with a plain-language sentence."""
    known = {
        "insufficient_quota": "The OpenAI account has no quota left (check plan and billing).",
        "rate_limit_exceeded": "OpenAI rate limit reached; try again shortly.",
        "server_error": "OpenAI had a server error.",
        "invalid_api_key": "The OpenAI API key was rejected.",
    }
    prefix = known.get(code)
    return f"{prefix} {message}" if prefix and prefix not in message else message


def _public_call_item(item: dict[str, Any]) -> dict[str, Any]:
    """The function_call input item without its server id (safe with ``store=False``)."""
    return {k: v for k, v in item.items() if k != "id"}


def output_to_input_items(items: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Convert a response's output items (dicts) to input items for a stateless next request.

    The conversion behind :attr:`Completed.output_items` (see there for the rules).
    """
    reasoning = [i for i in items if i.get("type") == "reasoning"]
    keep_ids = bool(reasoning) and all(i.get("encrypted_content") for i in reasoning)
    out: list[dict[str, Any]] = []
    for item in items:
        itype = item.get("type")
        if itype == "reasoning":
            if keep_ids:
                out.append({"type": "reasoning", "id": item.get("id"),
                            "summary": item.get("summary") or [],
                            "encrypted_content": item["encrypted_content"]})
        elif itype == "message":
            text = "".join(
                _str(c.get("text")) for c in item.get("content") or []
                if isinstance(c, Mapping) and c.get("type") == "output_text"
            )
            message: dict[str, Any] = {"type": "message", "role": "assistant", "content": text}
            out.append(message)
        elif itype == "function_call":
            call: dict[str, Any] = {
                "type": "function_call",
                "call_id": item.get("call_id", ""),
                "name": item.get("name", ""),
                "arguments": item.get("arguments", ""),
            }
            if keep_ids and item.get("id"):
                call["id"] = item["id"]
            out.append(call)
        # file_search_call and other hosted tool items are not needed as input
    return out


async def translate(events: AsyncIterator[ResponseStreamEvent]) -> AsyncIterator[Update]:
    """Run a provider's event stream through a :class:`StreamTranslator`.

    Yields every update, turns a :class:`ProviderError` into :class:`Failed`,
    and ends with :class:`Failed` ``stream_cut`` if no terminal event came.
    Cancelling the consumer closes ``events`` (the provider closes its HTTP stream).
    """
    translator = StreamTranslator()
    try:
        async for event in events:
            for update in translator.feed(event):
                yield update
    except ProviderError as exc:
        for update in translator.fail(exc):
            yield update
        return
    finally:
        aclose = getattr(events, "aclose", None)
        if aclose is not None:
            await aclose()
    for update in translator.finish():
        yield update
