"""A local fake of the OpenAI Responses (and Chat Completions) API for tests and benches.

Why: no machine here reaches the real API, and a fake that accepts anything
would hide request bugs. This server speaks the real wire format (HTTP + SSE,
``event: <type>\\ndata: <json>\\n\\n``), builds its events from the SDK's own
``openai.types.responses`` models, and rejects what the real API rejects:
missing/incorrect bearer key (401), unknown tool shapes, function tools that
break strict mode, unknown ``include`` values, a ``function_call`` without its
``function_call_output`` (and the reverse), reasoning items that cannot be
resolved with ``store=False`` — all with the real error body
``{"error": {"message", "type", "param", "code"}}``. Strict like the real API
(each rule has a test in tests/integration/test_fake_openai_strict.py):
unknown top-level parameters, unknown models (400) and models the project may
not use (403 ``model_not_found``), unknown vector store ids, reasoning input
items without ``summary``, strict-schema keywords the API does not support,
``reasoning``/encrypted-reasoning includes for non-reasoning models and
function tools for the ``*-chat-latest`` snapshots, streaming a model that
cannot stream, and streaming a GPT-5-family model from an unverified
organisation (``verified_org=False``: 400 ``param: "stream"``). A script that
makes several calls although the request set ``parallel_tool_calls: false``
is refused too (the real API never does that).

Drive it with a queue of scripted turns (one turn per request)::

    async with FakeOpenAI() as fake:
        fake.enqueue(Reply(text="Hello", search=[Hit(...)], citations=[Cite(...)]))
        fake.enqueue(HttpError(429, retry_after=0.01), Reply(calls=[Call("get_order", {...})]))
        fake.enqueue(*replay_turns(Path("tests/data/openai-recorded/file-search-1.jsonl")))
        client = openai.AsyncOpenAI(api_key=fake.api_key, base_url=fake.base_url)

or with ``fake.responder = lambda body: Reply(...)`` for dynamic answers (used
when the queue is empty). Every request is kept in ``fake.requests``.
``python -m tests.support.fake_openai`` runs it standalone and prints its URL.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import logging
import math
import re
import secrets
import threading
import time
from collections import deque
from collections.abc import AsyncIterator, Callable, Container, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aiohttp import web
from aiohttp.client_exceptions import ClientConnectionResetError
from openai.types.chat import ChatCompletion, ChatCompletionChunk
from openai.types.chat.chat_completion import Choice as ChatChoice
from openai.types.chat.chat_completion_chunk import (
    Choice as ChunkChoice,
)
from openai.types.chat.chat_completion_chunk import (
    ChoiceDelta,
    ChoiceDeltaToolCall,
    ChoiceDeltaToolCallFunction,
)
from openai.types.chat.chat_completion_message import ChatCompletionMessage
from openai.types.chat.chat_completion_message_function_tool_call import (
    ChatCompletionMessageFunctionToolCall,
    Function,
)
from openai.types.completion_usage import CompletionUsage
from openai.types.responses import (
    Response,
    ResponseCompletedEvent,
    ResponseContentPartAddedEvent,
    ResponseContentPartDoneEvent,
    ResponseCreatedEvent,
    ResponseFailedEvent,
    ResponseFileSearchCallCompletedEvent,
    ResponseFileSearchCallInProgressEvent,
    ResponseFileSearchCallSearchingEvent,
    ResponseFileSearchToolCall,
    ResponseFunctionCallArgumentsDeltaEvent,
    ResponseFunctionCallArgumentsDoneEvent,
    ResponseFunctionToolCall,
    ResponseIncompleteEvent,
    ResponseInProgressEvent,
    ResponseOutputItemAddedEvent,
    ResponseOutputItemDoneEvent,
    ResponseOutputMessage,
    ResponseOutputRefusal,
    ResponseOutputText,
    ResponseOutputTextAnnotationAddedEvent,
    ResponseReasoningItem,
    ResponseRefusalDeltaEvent,
    ResponseRefusalDoneEvent,
    ResponseTextDeltaEvent,
    ResponseTextDoneEvent,
    ResponseUsage,
)
from openai.types.responses.response_file_search_tool_call import Result as SearchResult
from openai.types.responses.response_output_text import AnnotationFileCitation
from openai.types.responses.response_usage import InputTokensDetails, OutputTokensDetails

log = logging.getLogger(__name__)

KNOWN_TOOL_TYPES = frozenset({
    "function", "file_search", "web_search", "web_search_preview", "web_search_2025_08_26",
    "computer_use_preview", "code_interpreter", "image_generation", "mcp", "local_shell",
    "shell", "custom", "apply_patch",
})
KNOWN_INCLUDES = frozenset({
    "file_search_call.results", "web_search_call.results", "web_search_call.action.sources",
    "message.input_image.image_url", "computer_call_output.output.image_url",
    "code_interpreter_call.outputs", "reasoning.encrypted_content",
    "message.output_text.logprobs",
})
_NAME_RE = re.compile(r"^[a-zA-Z0-9_-]{1,64}$")
KNOWN_PARAMS = frozenset({
    "model", "input", "instructions", "tools", "tool_choice", "parallel_tool_calls",
    "include", "store", "stream", "stream_options", "metadata", "reasoning",
    "max_output_tokens", "max_tool_calls", "temperature", "top_p", "top_logprobs", "text",
    "truncation", "previous_response_id", "conversation", "user", "service_tier",
    "background", "prompt", "prompt_cache_key", "safety_identifier",
})
# the models this fake serves, as the real API sorts them
REASONING_MODELS = frozenset({"gpt-5", "gpt-5-mini", "gpt-5-nano", "gpt-5.1", "o3", "o4-mini",
                              "o1", "o1-pro", "gpt-5.1-codex-max"})
CHAT_SNAPSHOTS = frozenset({"gpt-5-chat-latest", "chatgpt-4o-latest"})
PLAIN_MODELS = frozenset({"gpt-4.1", "gpt-4.1-mini", "gpt-4o-mini"})
DEFAULT_MODELS = REASONING_MODELS | CHAT_SNAPSHOTS | PLAIN_MODELS
NO_STREAM_MODELS = frozenset({"o1-pro"})  # 400 on stream=true for everyone
VERIFY_TO_STREAM = frozenset({"gpt-5", "gpt-5-mini", "gpt-5-nano", "gpt-5.1", "o3"})
# keywords strict mode rejects ("... is not permitted")
UNSUPPORTED_STRICT_KEYWORDS = frozenset({
    "minLength", "maxLength", "patternProperties", "unevaluatedProperties",
    "propertyNames", "minProperties", "maxProperties", "unevaluatedItems", "contains",
    "minContains", "maxContains", "uniqueItems",
})
MISSING_SCOPE_MESSAGE = (
    "You have insufficient permissions for this operation. Missing scopes: api.model.read. "
    "Check that you have the correct role in your organization (Reader, Writer, Owner) and "
    "project (Member, Owner), and if you're using a restricted API key, that it has the "
    "necessary scopes.")
VERIFY_MESSAGE = ("Your organization must be verified to stream this model. Please go to: "
                  "https://platform.openai.com/settings/organization/general and click on "
                  "Verify Organization. If you just verified, it can take up to 15 minutes "
                  "for access to propagate.")


# --------------------------------------------------------------------------- scripts


@dataclass(frozen=True)
class Hit:
    """One file_search result the fake returns (attributes as uploaded)."""

    file_id: str
    filename: str
    text: str
    score: float = 0.9
    attributes: Mapping[str, str | float | bool] = field(default_factory=dict)


@dataclass(frozen=True)
class Cite:
    """A file_citation annotation placed at character ``index`` of the reply text."""

    file_id: str
    filename: str
    index: int


@dataclass(frozen=True)
class Call:
    """A function call the model makes; ``arguments`` may be a dict or a raw string."""

    name: str
    arguments: Mapping[str, Any] | str
    call_id: str | None = None


@dataclass(frozen=True)
class Reply:
    """One successful streamed response (optionally failing or cut part-way).

    ``error_after`` / ``cut_after`` count events *after* ``response.in_progress``.
    """

    text: str = ""
    search: list[Hit] | None = None
    queries: list[str] = field(default_factory=lambda: ["knowledge base"])
    citations: list[Cite] = field(default_factory=list)
    calls: list[Call] = field(default_factory=list)
    reasoning: bool = False
    refusal: str | None = None  # the model refuses: a refusal content part, no text
    chunk: int = 6  # characters per text / argument delta
    delay: float = 0.0  # seconds between events
    error_after: int | None = None  # then an `error` event + response.failed
    error_code: str = "server_error"
    error_message: str = "The server had an error while processing your request. Sorry about that!"
    cut_after: int | None = None  # then the connection is aborted mid-stream
    incomplete: str | None = None  # e.g. "max_output_tokens": ends with response.incomplete


@dataclass(frozen=True)
class HttpError:
    """An HTTP error before the stream starts, with the real API's error body."""

    status: int
    message: str | None = None
    code: str | None = None
    type: str | None = None
    retry_after: float | None = None  # seconds; sent as retry-after-ms and retry-after


@dataclass(frozen=True)
class Replay:
    """Serve recorded events (one response's ``data:`` JSON objects) as they were."""

    events: tuple[Mapping[str, Any], ...]
    delay: float = 0.0


Turn = Reply | HttpError | Replay


def replay_turns(path: Path, delay: float = 0.0) -> list[Replay]:
    """Split a recorded .jsonl stream into one :class:`Replay` per response."""
    turns: list[list[Mapping[str, Any]]] = []
    for line in path.read_text("utf-8").splitlines():
        if not line.strip():
            continue
        data = json.loads(line)
        if data.get("type") == "response.created" or not turns:
            turns.append([])
        turns[-1].append(data)
    return [Replay(tuple(t), delay) for t in turns]


@dataclass
class RecordedRequest:
    """A request the fake received (for assertions)."""

    method: str
    path: str
    headers: dict[str, str]
    body: Any
    status: int = 200
    at: float = field(default_factory=time.monotonic)


class ApiError(Exception):
    """A request rejected the way the real API rejects it."""

    def __init__(self, status: int, message: str, *, param: str | None = None,
                 code: str | None = None, type_: str = "invalid_request_error") -> None:
        super().__init__(message)
        self.status, self.message, self.param, self.code, self.type = (
            status, message, param, code, type_)

    def body(self) -> dict[str, Any]:
        return {"error": {"message": self.message, "type": self.type, "param": self.param,
                          "code": self.code}}


# --------------------------------------------------------------------------- validation


def _strict_errors(schema: Any, context: tuple[str, ...] = ()) -> Iterator[str]:
    """Why a JSON schema breaks strict mode (the messages the real API uses)."""
    if not isinstance(schema, dict):
        return
    where = f"In context=({', '.join(repr(c) for c in context)}{',' if len(context) == 1 else ''})"
    for keyword in sorted(UNSUPPORTED_STRICT_KEYWORDS & set(schema)):
        yield f"{where}, '{keyword}' is not permitted."
    stype = schema.get("type")
    is_object = stype == "object" or (isinstance(stype, list) and "object" in stype)
    if is_object:
        if schema.get("additionalProperties") is not False:
            yield f"{where}, 'additionalProperties' is required to be supplied and to be false."
        props = schema.get("properties") or {}
        required = schema.get("required")
        missing = [k for k in props if not isinstance(required, list) or k not in required]
        if missing:
            yield (f"{where}, 'required' is required to be supplied and to be an array including "
                   f"every key in properties. Missing '{missing[0]}'.")
        for key, sub in props.items():
            yield from _strict_errors(sub, (*context, "properties", key))
    if "items" in schema:
        yield from _strict_errors(schema["items"], (*context, "items"))
    for combiner in ("anyOf", "allOf", "oneOf"):
        for i, sub in enumerate(schema.get(combiner) or []):
            yield from _strict_errors(sub, (*context, combiner, str(i)))
    for defs in ("$defs", "definitions"):
        for key, sub in (schema.get(defs) or {}).items():
            yield from _strict_errors(sub, (*context, defs, key))


def validate_responses_request(body: Any, *, models: Container[str] | None = None,
                               vector_stores: Container[str] | None = None,
                               no_access: Container[str] = (),
                               verified_org: bool = True) -> None:
    """Raise :class:`ApiError` for a request the real Responses API would reject.

    ``models``/``vector_stores``: what exists (None: anything); ``no_access``: models
    the key's project may not use (403 model_not_found)."""
    if not isinstance(body, dict):
        raise ApiError(400, "We could not parse the JSON body of your request.")
    for key in body:
        if key not in KNOWN_PARAMS:
            raise ApiError(400, f"Unknown parameter: '{key}'.", param=key,
                           code="unknown_parameter")
    model = body.get("model")
    if not model:
        raise ApiError(400, "Missing required parameter: 'model'.", param="model",
                       code="missing_required_parameter")
    if models is not None and model not in models:
        raise ApiError(400, f"The requested model '{model}' does not exist.", param="model",
                       code="model_not_found")
    if model in no_access:
        raise ApiError(403, f"Project `proj_fake0001` does not have access to model `{model}`",
                       code="model_not_found")
    _validate_model_features(str(model), body, verified_org=verified_org)
    for i, tool in enumerate(body.get("tools") or []):
        _validate_tool(i, tool, vector_stores)
    for i, inc in enumerate(body.get("include") or []):
        if inc not in KNOWN_INCLUDES:
            raise ApiError(400, f"Invalid value: '{inc}'. Supported values are: "
                           + ", ".join(f"'{v}'" for v in sorted(KNOWN_INCLUDES)) + ".",
                           param=f"include[{i}]", code="invalid_value")
    raw = body.get("input")
    if raw is None or isinstance(raw, str):
        return
    if not isinstance(raw, list):
        raise ApiError(400, "Invalid type for 'input': expected one of a string or array of "
                       "input items.", param="input", code="invalid_type")
    _validate_input_items(raw, store=body.get("store", True) is not False)


def _validate_model_features(model: str, body: Mapping[str, Any], *, verified_org: bool) -> None:
    """What a model family refuses (messages as the real API words them)."""
    reasoning_model = model in REASONING_MODELS
    if body.get("reasoning") is not None and not reasoning_model:
        raise ApiError(400, "Unsupported parameter: 'reasoning.effort' is not supported with "
                       "this model.", param="reasoning.effort", code="unsupported_parameter")
    if "reasoning.encrypted_content" in (body.get("include") or []) and not reasoning_model:
        raise ApiError(400, "Encrypted content is not supported with this model.",
                       param="include", code="unsupported_parameter")
    if model in CHAT_SNAPSHOTS and any(isinstance(t, dict) and t.get("type") == "function"
                                       for t in body.get("tools") or []):
        raise ApiError(400, f"Function tools are not supported with {model}.", param="tools",
                       code="unsupported_parameter")
    if body.get("stream"):
        if model in NO_STREAM_MODELS:
            raise ApiError(400, "Unsupported value: 'stream' does not support true with this "
                           "model. Supported values are: false.", param="stream",
                           code="unsupported_value")
        if not verified_org and model in VERIFY_TO_STREAM:
            raise ApiError(400, VERIFY_MESSAGE, param="stream", code="unsupported_value")


def _validate_tool(i: int, tool: Any, vector_stores: Container[str] | None = None) -> None:
    if not isinstance(tool, dict) or "type" not in tool:
        raise ApiError(400, f"Missing required parameter: 'tools[{i}].type'.",
                       param=f"tools[{i}].type", code="missing_required_parameter")
    ttype = tool["type"]
    if ttype not in KNOWN_TOOL_TYPES:
        raise ApiError(400, f"Invalid value: '{ttype}'. Supported values are: "
                       + ", ".join(f"'{v}'" for v in sorted(KNOWN_TOOL_TYPES)) + ".",
                       param=f"tools[{i}].type", code="invalid_value")
    if ttype == "file_search":
        ids = tool.get("vector_store_ids")
        if not isinstance(ids, list) or not ids or not all(isinstance(v, str) for v in ids):
            raise ApiError(400, f"Missing required parameter: 'tools[{i}].vector_store_ids'.",
                           param=f"tools[{i}].vector_store_ids",
                           code="missing_required_parameter")
        limit = tool.get("max_num_results")
        if limit is not None and not (isinstance(limit, int) and 1 <= limit <= 50):
            raise ApiError(400, f"Invalid 'tools[{i}].max_num_results': integer between 1 and "
                           "50 expected.", param=f"tools[{i}].max_num_results",
                           code="invalid_value")
        if vector_stores is not None:
            for vid in ids:
                if vid not in vector_stores:
                    raise ApiError(404, f"Vector store with id '{vid}' not found.",
                                   param=f"tools[{i}].vector_store_ids")
        unknown = set(tool) - {"type", "vector_store_ids", "max_num_results", "filters",
                               "ranking_options"}
        if unknown:
            key = sorted(unknown)[0]
            raise ApiError(400, f"Unknown parameter: 'tools[{i}].{key}'.",
                           param=f"tools[{i}].{key}", code="unknown_parameter")
    if ttype == "function":
        if "function" in tool:  # the Chat Completions shape sent to the Responses API
            raise ApiError(400, f"Missing required parameter: 'tools[{i}].name'.",
                           param=f"tools[{i}].name", code="missing_required_parameter")
        name = tool.get("name")
        if not isinstance(name, str) or not _NAME_RE.match(name):
            raise ApiError(400, f"Invalid 'tools[{i}].name': string does not match pattern. "
                           "Expected a string that matches the pattern '^[a-zA-Z0-9_-]+$'.",
                           param=f"tools[{i}].name", code="invalid_value")
        params = tool.get("parameters")
        if tool.get("strict", True) is not False:
            for message in _strict_errors(params if params is not None else {"type": "object"}):
                raise ApiError(400, f"Invalid schema for function '{name}': {message}",
                               param=f"tools[{i}].parameters",
                               code="invalid_function_parameters")


def _validate_input_items(items: list[Any], *, store: bool) -> None:
    calls: dict[str, int] = {}
    outputs: dict[str, int] = {}
    for i, item in enumerate(items):
        if not isinstance(item, dict):
            raise ApiError(400, f"Invalid type for 'input[{i}]': expected an object.",
                           param=f"input[{i}]", code="invalid_type")
        itype = item.get("type", "message" if "role" in item else None)
        if itype == "message":
            if item.get("role") not in {"user", "assistant", "system", "developer"}:
                raise ApiError(400, f"Invalid value: '{item.get('role')}'. Supported values "
                               "are: 'assistant', 'system', 'developer', and 'user'.",
                               param=f"input[{i}].role", code="invalid_value")
            if "content" not in item:
                raise ApiError(400, f"Missing required parameter: 'input[{i}].content'.",
                               param=f"input[{i}].content", code="missing_required_parameter")
        elif itype == "function_call":
            for key in ("call_id", "name", "arguments"):
                if not isinstance(item.get(key), str):
                    raise ApiError(400, f"Missing required parameter: 'input[{i}].{key}'.",
                                   param=f"input[{i}].{key}",
                                   code="missing_required_parameter")
            calls[item["call_id"]] = i
        elif itype == "function_call_output":
            if not isinstance(item.get("call_id"), str):
                raise ApiError(400, f"Missing required parameter: 'input[{i}].call_id'.",
                               param=f"input[{i}].call_id", code="missing_required_parameter")
            if "output" not in item:
                raise ApiError(400, f"Missing required parameter: 'input[{i}].output'.",
                               param=f"input[{i}].output", code="missing_required_parameter")
            outputs[item["call_id"]] = i
        elif itype == "reasoning":
            if not isinstance(item.get("summary"), list):
                raise ApiError(400, f"Missing required parameter: 'input[{i}].summary'.",
                               param=f"input[{i}].summary", code="missing_required_parameter")
            if not store and not item.get("encrypted_content"):
                raise ApiError(404, f"Item with id '{item.get('id')}' not found. Items are not "
                               "persisted when `store` is set to false. Try again with `store` "
                               "set to true, or remove this item from your input.",
                               param="input")
        elif itype == "item_reference":
            if not store:
                raise ApiError(404, f"Item with id '{item.get('id')}' not found. Items are not "
                               "persisted when `store` is set to false.", param="input")
        elif itype in {"file_search_call", "web_search_call", "custom_tool_call",
                       "custom_tool_call_output"}:
            pass
        else:
            raise ApiError(400, f"Invalid value: '{itype}'. Supported values are: 'message', "
                           "'function_call', 'function_call_output', 'reasoning', ...",
                           param=f"input[{i}].type", code="invalid_value")
    for call_id in calls:
        if call_id not in outputs:
            raise ApiError(400, f"No tool output found for function call {call_id}.",
                           param="input")
    for call_id, index in outputs.items():
        if call_id not in calls or calls[call_id] > index:
            raise ApiError(400, f"No tool call found for function call output with call_id "
                           f"{call_id}.", param="input")


def validate_chat_request(body: Any) -> None:
    """Raise :class:`ApiError` for a request the real Chat Completions API would reject."""
    if not isinstance(body, dict):
        raise ApiError(400, "We could not parse the JSON body of your request.")
    if not body.get("model"):
        raise ApiError(400, "you must provide a model parameter", param=None)
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise ApiError(400, "[] is too short - 'messages'", param="messages")
    for i, tool in enumerate(body.get("tools") or []):
        fn = tool.get("function") if isinstance(tool, dict) else None
        if not isinstance(tool, dict) or tool.get("type") != "function" or not isinstance(fn,
                                                                                      dict):
            raise ApiError(400, f"Missing required parameter: 'tools[{i}].function'.",
                           param=f"tools[{i}].function", code="missing_required_parameter")
        if not isinstance(fn.get("name"), str) or not _NAME_RE.match(fn["name"]):
            raise ApiError(400, f"Invalid 'tools[{i}].function.name': string does not match "
                           "pattern.", param=f"tools[{i}].function.name", code="invalid_value")
    pending: list[str] = []
    for i, message in enumerate(messages):
        role = message.get("role") if isinstance(message, dict) else None
        if role not in {"system", "developer", "user", "assistant", "tool"}:
            raise ApiError(400, f"Invalid value: '{role}'. Supported values are: 'system', "
                           "'assistant', 'user', 'tool', 'developer'.",
                           param=f"messages[{i}].role", code="invalid_value")
        if role == "tool":
            call_id = message.get("tool_call_id")
            if call_id not in pending:
                raise ApiError(400, "Invalid parameter: messages with role 'tool' must be a "
                               "response to a preceeding message with 'tool_calls'.",
                               param=f"messages.[{i}].role")
            pending.remove(call_id)
            continue
        if pending:
            raise ApiError(400, "An assistant message with 'tool_calls' must be followed by "
                           "tool messages responding to each 'tool_call_id'. The following "
                           f"tool_call_ids did not have response messages: {', '.join(pending)}",
                           param=f"messages.[{i}].role")
        if role == "assistant":
            pending = [c.get("id") for c in message.get("tool_calls") or []]
    if pending:
        raise ApiError(400, "An assistant message with 'tool_calls' must be followed by tool "
                       "messages responding to each 'tool_call_id'. The following tool_call_ids "
                       f"did not have response messages: {', '.join(pending)}",
                       param="messages")


# --------------------------------------------------------------------------- events


def _chunks(text: str, size: int) -> list[str]:
    size = max(1, size)
    return [text[i:i + size] for i in range(0, len(text), size)] or []


def _obfuscation(delta: str) -> str:
    """The real API pads deltas with random noise so sizes do not leak; mimic it."""
    return secrets.token_urlsafe(12)[: max(1, 16 - len(delta))]


class _Ids:
    counter = itertools.count(1)

    @classmethod
    def make(cls, prefix: str) -> str:
        return f"{prefix}_{secrets.token_hex(12)}{next(cls.counter):04d}"


def _response(body: Mapping[str, Any], rid: str, status: str, output: list[Any],
              *, usage: ResponseUsage | None = None, error: dict[str, Any] | None = None,
              incomplete: str | None = None) -> Response:
    tools = body.get("tools") or []
    data: dict[str, Any] = {
        "id": rid, "object": "response", "created_at": int(time.time()), "status": status,
        "background": False, "error": error,
        "incomplete_details": {"reason": incomplete} if incomplete else None,
        "instructions": body.get("instructions"), "max_output_tokens": None,
        "model": body.get("model"), "output": output,
        "parallel_tool_calls": body.get("parallel_tool_calls", True),
        "previous_response_id": None, "store": body.get("store", True), "temperature": 1.0,
        "text": {"format": {"type": "text"}, "verbosity": "medium"}, "tool_choice": "auto",
        "tools": tools, "top_p": 1.0, "truncation": "disabled", "usage": usage,
        "user": None, "metadata": body.get("metadata") or {},
    }
    try:
        return Response.model_validate(data)
    except ValueError:  # a tool shape the SDK does not model: echo no tools
        data["tools"] = []
        return Response.model_validate(data)


def reply_events(reply: Reply, body: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The events of one scripted response, built from the SDK's models.

    ``error_after``/``cut_after`` are applied by the server, not here.
    """
    include = set(body.get("include") or [])
    rid = _Ids.make("resp")
    seq = itertools.count()
    events: list[Any] = []
    output: list[Any] = []

    def item_pair(index: int, added: Any, done: Any, middle: Iterable[Any] = ()) -> None:
        events.append(ResponseOutputItemAddedEvent(type="response.output_item.added",
                                                   sequence_number=next(seq),
                                                   output_index=index, item=added))
        events.extend(middle)
        events.append(ResponseOutputItemDoneEvent(type="response.output_item.done",
                                                  sequence_number=next(seq),
                                                  output_index=index, item=done))
        output.append(done)

    events.append(ResponseCreatedEvent(type="response.created", sequence_number=next(seq),
                                       response=_response(body, rid, "in_progress", [])))
    events.append(ResponseInProgressEvent(type="response.in_progress", sequence_number=next(seq),
                                          response=_response(body, rid, "in_progress", [])))
    if reply.reasoning:
        rs_id = _Ids.make("rs")
        enc = ("gAAAA" + secrets.token_urlsafe(48)) if "reasoning.encrypted_content" in include \
            else None
        item = ResponseReasoningItem(id=rs_id, type="reasoning", summary=[], encrypted_content=enc)
        item_pair(len(output), item, item)
    if reply.search is not None:
        fs_id = _Ids.make("fs")
        index = len(output)
        added = ResponseFileSearchToolCall(id=fs_id, type="file_search_call",
                                           status="in_progress", queries=[], results=None)
        results = [SearchResult(file_id=h.file_id, filename=h.filename, score=h.score,
                                text=h.text, attributes=dict(h.attributes))
                   for h in reply.search] if "file_search_call.results" in include else None
        done = ResponseFileSearchToolCall(id=fs_id, type="file_search_call", status="completed",
                                          queries=list(reply.queries), results=results)
        middle = [
            ResponseFileSearchCallInProgressEvent(type="response.file_search_call.in_progress",
                                                  sequence_number=0, output_index=index,
                                                  item_id=fs_id),
            ResponseFileSearchCallSearchingEvent(type="response.file_search_call.searching",
                                                 sequence_number=0, output_index=index,
                                                 item_id=fs_id),
            ResponseFileSearchCallCompletedEvent(type="response.file_search_call.completed",
                                                 sequence_number=0, output_index=index,
                                                 item_id=fs_id),
        ]
        events.append(ResponseOutputItemAddedEvent(type="response.output_item.added",
                                                   sequence_number=next(seq),
                                                   output_index=index, item=added))
        for ev in middle:
            events.append(ev.model_copy(update={"sequence_number": next(seq)}))
        events.append(ResponseOutputItemDoneEvent(type="response.output_item.done",
                                                  sequence_number=next(seq),
                                                  output_index=index, item=done))
        output.append(done)
    if reply.refusal is not None:
        msg_id = _Ids.make("msg")
        index = len(output)
        events.append(ResponseOutputItemAddedEvent(
            type="response.output_item.added", sequence_number=next(seq), output_index=index,
            item=ResponseOutputMessage(id=msg_id, type="message", role="assistant",
                                       status="in_progress", content=[])))
        events.append(ResponseContentPartAddedEvent(
            type="response.content_part.added", sequence_number=next(seq), item_id=msg_id,
            output_index=index, content_index=0,
            part=ResponseOutputRefusal(type="refusal", refusal="")))
        for piece in _chunks(reply.refusal, reply.chunk):
            events.append(ResponseRefusalDeltaEvent(
                type="response.refusal.delta", sequence_number=next(seq), item_id=msg_id,
                output_index=index, content_index=0, delta=piece))
        events.append(ResponseRefusalDoneEvent(
            type="response.refusal.done", sequence_number=next(seq), item_id=msg_id,
            output_index=index, content_index=0, refusal=reply.refusal))
        refusal_part = ResponseOutputRefusal(type="refusal", refusal=reply.refusal)
        events.append(ResponseContentPartDoneEvent(
            type="response.content_part.done", sequence_number=next(seq), item_id=msg_id,
            output_index=index, content_index=0, part=refusal_part))
        done_refusal = ResponseOutputMessage(id=msg_id, type="message", role="assistant",
                                             status="completed", content=[refusal_part])
        events.append(ResponseOutputItemDoneEvent(type="response.output_item.done",
                                                  sequence_number=next(seq),
                                                  output_index=index, item=done_refusal))
        output.append(done_refusal)
    if reply.text:
        msg_id = _Ids.make("msg")
        index = len(output)
        annotations = [AnnotationFileCitation(type="file_citation", file_id=c.file_id,
                                              filename=c.filename, index=c.index)
                       for c in reply.citations]
        events.append(ResponseOutputItemAddedEvent(
            type="response.output_item.added", sequence_number=next(seq), output_index=index,
            item=ResponseOutputMessage(id=msg_id, type="message", role="assistant",
                                       status="in_progress", content=[])))
        events.append(ResponseContentPartAddedEvent(
            type="response.content_part.added", sequence_number=next(seq), item_id=msg_id,
            output_index=index, content_index=0,
            part=ResponseOutputText(type="output_text", text="", annotations=[], logprobs=[])))
        sent = 0
        pending = sorted(enumerate(annotations), key=lambda p: p[1].index)
        for piece in _chunks(reply.text, reply.chunk):
            sent += len(piece)
            events.append(ResponseTextDeltaEvent(
                type="response.output_text.delta", sequence_number=next(seq), item_id=msg_id,
                output_index=index, content_index=0, delta=piece, logprobs=[]))
            while pending and pending[0][1].index <= sent:
                ann_index, ann = pending.pop(0)
                events.append(ResponseOutputTextAnnotationAddedEvent(
                    type="response.output_text.annotation.added", sequence_number=next(seq),
                    item_id=msg_id, output_index=index, content_index=0,
                    annotation_index=ann_index, annotation=ann.model_dump(mode="json")))
        for ann_index, ann in pending:
            events.append(ResponseOutputTextAnnotationAddedEvent(
                type="response.output_text.annotation.added", sequence_number=next(seq),
                item_id=msg_id, output_index=index, content_index=0,
                annotation_index=ann_index, annotation=ann.model_dump(mode="json")))
        part = ResponseOutputText(type="output_text", text=reply.text, annotations=annotations,
                                  logprobs=[])
        events.append(ResponseTextDoneEvent(
            type="response.output_text.done", sequence_number=next(seq), item_id=msg_id,
            output_index=index, content_index=0, text=reply.text, logprobs=[]))
        events.append(ResponseContentPartDoneEvent(
            type="response.content_part.done", sequence_number=next(seq), item_id=msg_id,
            output_index=index, content_index=0, part=part))
        done_msg = ResponseOutputMessage(id=msg_id, type="message", role="assistant",
                                         status="completed", content=[part])
        events.append(ResponseOutputItemDoneEvent(type="response.output_item.done",
                                                  sequence_number=next(seq),
                                                  output_index=index, item=done_msg))
        output.append(done_msg)
    for call in reply.calls:
        fc_id = _Ids.make("fc")
        call_id = call.call_id or _Ids.make("call")
        index = len(output)
        args = call.arguments if isinstance(call.arguments, str) else json.dumps(
            call.arguments, separators=(",", ":"))
        events.append(ResponseOutputItemAddedEvent(
            type="response.output_item.added", sequence_number=next(seq), output_index=index,
            item=ResponseFunctionToolCall(id=fc_id, type="function_call", status="in_progress",
                                          arguments="", call_id=call_id, name=call.name)))
        for piece in _chunks(args, reply.chunk):
            events.append(ResponseFunctionCallArgumentsDeltaEvent(
                type="response.function_call_arguments.delta", sequence_number=next(seq),
                item_id=fc_id, output_index=index, delta=piece))
        events.append(ResponseFunctionCallArgumentsDoneEvent(
            type="response.function_call_arguments.done", sequence_number=next(seq),
            item_id=fc_id, output_index=index, arguments=args))
        done_fc = ResponseFunctionToolCall(id=fc_id, type="function_call", status="completed",
                                           arguments=args, call_id=call_id, name=call.name)
        events.append(ResponseOutputItemDoneEvent(type="response.output_item.done",
                                                  sequence_number=next(seq),
                                                  output_index=index, item=done_fc))
        output.append(done_fc)
    out_tokens = max(1, len(reply.text) // 4)
    usage = ResponseUsage(
        input_tokens=100, output_tokens=out_tokens, total_tokens=100 + out_tokens,
        input_tokens_details=InputTokensDetails(cached_tokens=0, cache_write_tokens=0),
        output_tokens_details=OutputTokensDetails(reasoning_tokens=0))
    if reply.incomplete:
        events.append(ResponseIncompleteEvent(
            type="response.incomplete", sequence_number=next(seq),
            response=_response(body, rid, "incomplete", output, usage=usage,
                               incomplete=reply.incomplete)))
    else:
        events.append(ResponseCompletedEvent(
            type="response.completed", sequence_number=next(seq),
            response=_response(body, rid, "completed", output, usage=usage)))
    dumped: list[dict[str, Any]] = []
    for ev in events:
        data = ev.model_dump(mode="json")
        if data["type"] in {"response.output_text.delta", "response.function_call_arguments.delta"}:
            data["obfuscation"] = _obfuscation(data["delta"])
        dumped.append(data)
    return dumped


def error_events(rid: str, seq: int, body: Mapping[str, Any], code: str,
                 message: str) -> list[dict[str, Any]]:
    """An ``error`` event then ``response.failed``, in the shape the real API sent
    (see tests/data/openai-recorded/stream-error.jsonl: the error is nested)."""
    failed = ResponseFailedEvent.model_construct(
        type="response.failed", sequence_number=seq + 1,
        response=_response(body, rid, "in_progress", []).model_copy(
            update={"status": "failed"}))
    failed_json = failed.model_dump(mode="json")
    failed_json["response"]["error"] = {"code": code, "message": message}
    return [
        {"type": "error", "sequence_number": seq,
         "error": {"type": code, "code": code, "message": message, "param": None}},
        failed_json,
    ]


def chat_chunks(reply: Reply, body: Mapping[str, Any]) -> list[dict[str, Any]]:
    """One scripted reply as Chat Completions stream chunks (SDK models)."""
    cid = _Ids.make("chatcmpl")
    created = int(time.time())
    model = str(body.get("model"))

    def chunk(delta: ChoiceDelta, finish: str | None = None) -> dict[str, Any]:
        c = ChatCompletionChunk(id=cid, object="chat.completion.chunk", created=created,
                                model=model,
                                choices=[ChunkChoice(index=0, delta=delta,
                                                     finish_reason=finish)])
        return c.model_dump(mode="json", exclude_unset=True)

    out = [chunk(ChoiceDelta(role="assistant", content=""))]
    for piece in _chunks(reply.text, reply.chunk):
        out.append(chunk(ChoiceDelta(content=piece)))
    for n, call in enumerate(reply.calls):
        call_id = call.call_id or _Ids.make("call")
        args = call.arguments if isinstance(call.arguments, str) else json.dumps(
            call.arguments, separators=(",", ":"))
        out.append(chunk(ChoiceDelta(tool_calls=[ChoiceDeltaToolCall(
            index=n, id=call_id, type="function",
            function=ChoiceDeltaToolCallFunction(name=call.name, arguments=""))])))
        for piece in _chunks(args, reply.chunk):
            out.append(chunk(ChoiceDelta(tool_calls=[ChoiceDeltaToolCall(
                index=n, function=ChoiceDeltaToolCallFunction(arguments=piece))])))
    out.append(chunk(ChoiceDelta(), "tool_calls" if reply.calls else
                     ("length" if reply.incomplete else "stop")))
    return out


def chat_completion(reply: Reply, body: Mapping[str, Any]) -> dict[str, Any]:
    """One scripted reply as a non-streamed Chat Completion."""
    calls = [ChatCompletionMessageFunctionToolCall(
        id=c.call_id or _Ids.make("call"), type="function",
        function=Function(name=c.name, arguments=c.arguments if isinstance(c.arguments, str)
                          else json.dumps(c.arguments))) for c in reply.calls]
    message = ChatCompletionMessage(role="assistant", content=reply.text or None,
                                    tool_calls=calls or None)
    completion = ChatCompletion(
        id=_Ids.make("chatcmpl"), object="chat.completion", created=int(time.time()),
        model=str(body.get("model")),
        choices=[ChatChoice(index=0, message=message,
                            finish_reason="tool_calls" if calls else "stop")],
        usage=CompletionUsage(prompt_tokens=100, completion_tokens=10, total_tokens=110))
    return completion.model_dump(mode="json")


# --------------------------------------------------------------------------- server


class FakeOpenAI:
    """The fake server: ``async with FakeOpenAI() as fake: ... fake.base_url``."""

    def __init__(self, *, api_key: str = "sk-test-fake-key", hosted_file_search: bool = True,
                 host: str = "127.0.0.1", port: int = 0,
                 models: Container[str] | str | None = "default",
                 vector_stores: Container[str] | None = ("vs_test",),
                 verified_org: bool = True) -> None:
        self.api_key = api_key
        self.hosted_file_search = hosted_file_search  # False: reject file_search like Ollama
        # None: any model id (a compatible server's own names, the default without
        # hosted file search); "default": the OpenAI models in DEFAULT_MODELS
        self.models: Container[str] | None = (
            (DEFAULT_MODELS if hosted_file_search else None) if models == "default"
            else models if not isinstance(models, str) else {models})
        self.vector_stores = vector_stores  # None: any vector store id
        self.no_access: set[str] = set()  # 403 model_not_found for these
        self.verified_org = verified_org  # False: GPT-5-family models refuse to stream
        self.models_read = True  # False: a restricted key without Models:Read (403 on /models)
        self.quota_left = True  # False: every request is 429 insufficient_quota
        self.turns: deque[Turn] = deque()
        self.chat_turns: deque[Turn] = deque()
        self.responder: Callable[[dict[str, Any]], Turn] | None = None
        self.chat_responder: Callable[[dict[str, Any]], Turn] | None = None
        self.requests: list[RecordedRequest] = []
        self.streams_cut = 0
        self.disconnects = 0  # clients that went away mid-stream (cancellation)
        self._host, self._port = host, port
        self._runner: web.AppRunner | None = None
        self.port = 0

    # lifecycle

    async def start(self) -> FakeOpenAI:
        app = web.Application(client_max_size=8 * 1024 * 1024)
        app.router.add_post("/v1/responses", self._responses)
        app.router.add_post("/v1/chat/completions", self._chat)
        app.router.add_get("/v1/models", self._models)
        self._runner = web.AppRunner(app, access_log=None, handle_signals=False)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self._host, self._port)
        await site.start()
        self.port = int(self._runner.addresses[0][1])
        log.info("fake OpenAI listening on %s", self.base_url)
        return self

    async def close(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> FakeOpenAI:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    @property
    def base_url(self) -> str:
        return f"http://{self._host}:{self.port}/v1"

    # scripting

    def enqueue(self, *turns: Turn) -> None:
        """Queue turns for ``/v1/responses`` (one per request, in order)."""
        self.turns.extend(turns)

    def enqueue_chat(self, *turns: Turn) -> None:
        """Queue turns for ``/v1/chat/completions``."""
        self.chat_turns.extend(turns)

    def responses_requests(self) -> list[RecordedRequest]:
        return [r for r in self.requests if r.path == "/v1/responses"]

    def chat_requests(self) -> list[RecordedRequest]:
        return [r for r in self.requests if r.path == "/v1/chat/completions"]

    # handlers

    async def _read(self, request: web.Request) -> tuple[RecordedRequest, Any]:
        raw = await request.read()
        try:
            body: Any = json.loads(raw) if raw else None
        except ValueError:
            body = None
        rec = RecordedRequest(request.method, request.path, dict(request.headers), body)
        self.requests.append(rec)
        auth = request.headers.get("Authorization", "")
        if auth != f"Bearer {self.api_key}":
            shown = auth.removeprefix("Bearer ")
            shown = (shown[:3] + "*" * 4 + shown[-4:]) if len(shown) > 8 else "****"
            raise ApiError(401, f"Incorrect API key provided: {shown}. You can find your API key "
                           "at https://platform.openai.com/account/api-keys.",
                           code="invalid_api_key")
        return rec, body

    @staticmethod
    def _error_response(rec: RecordedRequest | None, err: ApiError,
                        headers: Mapping[str, str] | None = None) -> web.Response:
        if rec is not None:
            rec.status = err.status
        hdrs = {"x-request-id": _Ids.make("req"), **(headers or {})}
        return web.json_response(err.body(), status=err.status, headers=hdrs)

    def _next_turn(self, queue: deque[Turn], responder: Callable[[dict[str, Any]], Turn] | None,
                   body: dict[str, Any]) -> Turn:
        if queue:
            return queue.popleft()
        if responder is not None:
            return responder(body)
        return HttpError(500, "fake OpenAI: no scripted turn left for this request",
                         code="fake_no_script", type="server_error")

    def _http_error(self, rec: RecordedRequest, turn: HttpError) -> web.Response:
        defaults = {
            401: ("invalid_request_error", "invalid_api_key", "Incorrect API key provided."),
            429: ("requests", "rate_limit_exceeded", "Rate limit reached for requests. "
                  "Please try again shortly."),
            500: ("server_error", None, "The server had an error while processing your "
                  "request. Sorry about that!"),
            503: ("server_error", None, "The engine is currently overloaded, please try "
                  "again later"),
        }
        dtype, dcode, dmsg = defaults.get(turn.status, ("invalid_request_error", None,
                                                        "Bad request."))
        headers: dict[str, str] = {}
        if turn.retry_after is not None:
            headers["retry-after-ms"] = str(round(turn.retry_after * 1000))
            headers["retry-after"] = str(math.ceil(turn.retry_after))
        if turn.code == "fake_no_script":
            headers["x-should-retry"] = "false"
            log.error("fake OpenAI got a request with no scripted turn left")
        err = ApiError(turn.status, turn.message or dmsg, code=turn.code or dcode,
                       type_=turn.type or dtype)
        return self._error_response(rec, err, headers)

    async def handle_responses(self, request: web.Request) -> web.StreamResponse:
        """``POST /v1/responses`` (other fakes mount it to serve the same API)."""
        return await self._responses(request)

    async def _responses(self, request: web.Request) -> web.StreamResponse:
        rec: RecordedRequest | None = None
        try:
            rec, body = await self._read(request)
            validate_responses_request(body, models=self.models, vector_stores=self.vector_stores,
                                       no_access=self.no_access, verified_org=self.verified_org)
            if not self.hosted_file_search and any(
                    t.get("type") == "file_search" for t in body.get("tools") or []):
                raise ApiError(400, "Tool type 'file_search' is not supported by this server.",
                               param="tools", code="invalid_value")
        except ApiError as err:
            return self._error_response(rec, err)
        if not self.quota_left:
            return self._error_response(rec, ApiError(
                429, "You exceeded your current quota, please check your plan and billing "
                "details. For more information on this error, read the docs: "
                "https://platform.openai.com/docs/guides/error-codes/api-errors.",
                code="insufficient_quota", type_="insufficient_quota"))
        turn = self._next_turn(self.turns, self.responder, body)
        if isinstance(turn, HttpError):
            return self._http_error(rec, turn)
        if isinstance(turn, Replay):
            events = [dict(e) for e in turn.events]
            return await self._sse(request, events, turn.delay, None)
        if body.get("parallel_tool_calls") is False and len(turn.calls) > 1:
            log.error("fake OpenAI: a scripted reply with %d calls for a request that set "
                      "parallel_tool_calls=false", len(turn.calls))
            return self._error_response(rec, ApiError(
                500, f"fake OpenAI: the script makes {len(turn.calls)} function calls but the "
                "request set parallel_tool_calls=false; the real API makes at most one",
                code="fake_bad_script", type_="server_error"), {"x-should-retry": "false"})
        events = reply_events(turn, body)
        if not body.get("stream"):
            final = events[-1]["response"]
            return web.json_response(final, headers={"x-request-id": _Ids.make("req")})
        cut = None
        if turn.error_after is not None:
            head = events[: 2 + turn.error_after]
            rid = head[0]["response"]["id"]
            events = head + error_events(rid, len(head), body, turn.error_code,
                                         turn.error_message)
        if turn.cut_after is not None:
            cut = 2 + turn.cut_after
        return await self._sse(request, events, turn.delay, cut)

    async def _sse(self, request: web.Request, events: list[dict[str, Any]], delay: float,
                   cut_after: int | None, *, named: bool = True) -> web.StreamResponse:
        resp = web.StreamResponse(status=200, headers={
            "Content-Type": "text/event-stream; charset=utf-8",
            "Cache-Control": "no-cache",
            "x-request-id": _Ids.make("req"),
            "openai-processing-ms": "12",
        })
        await resp.prepare(request)
        try:
            for n, data in enumerate(events):
                if cut_after is not None and n >= cut_after:
                    self.streams_cut += 1
                    transport = request.transport
                    if transport is not None:
                        transport.abort()  # no terminating chunk: the client sees a cut
                    return resp
                payload = json.dumps(data, separators=(",", ":"))
                frame = (f"event: {data['type']}\ndata: {payload}\n\n" if named
                         else f"data: {payload}\n\n")
                await resp.write(frame.encode("utf-8"))
                if delay:
                    await asyncio.sleep(delay)
            if not named:
                await resp.write(b"data: [DONE]\n\n")
            await resp.write_eof()
        except asyncio.CancelledError:
            self.disconnects += 1
            log.debug("client went away mid-stream (handler cancelled)")
            raise
        except (ConnectionError, ClientConnectionResetError):
            self.disconnects += 1
            log.debug("client went away mid-stream")
        return resp

    async def _chat(self, request: web.Request) -> web.StreamResponse:
        rec: RecordedRequest | None = None
        try:
            rec, body = await self._read(request)
            validate_chat_request(body)
        except ApiError as err:
            return self._error_response(rec, err)
        turn = self._next_turn(self.chat_turns, self.chat_responder, body)
        if isinstance(turn, HttpError):
            return self._http_error(rec, turn)
        if isinstance(turn, Replay):
            return await self._sse(request, [dict(e) for e in turn.events], turn.delay, None,
                                   named=False)
        if not body.get("stream"):
            return web.json_response(chat_completion(turn, body))
        chunks = chat_chunks(turn, body)
        cut = None if turn.cut_after is None else turn.cut_after + 1
        if turn.error_after is not None:
            chunks = chunks[: 1 + turn.error_after]
            chunks.append({"error": {"message": turn.error_message, "type": turn.error_code,
                                     "param": None, "code": turn.error_code}})
        return await self._sse(request, chunks, turn.delay, cut, named=False)

    async def _models(self, request: web.Request) -> web.Response:
        try:
            await self._read(request)
            if not self.models_read:
                raise ApiError(403, MISSING_SCOPE_MESSAGE, type_="invalid_request_error")
        except ApiError as err:
            return self._error_response(None, err)
        ids = sorted(self.models) if isinstance(self.models, Iterable) else ["gpt-5-mini"]
        return web.json_response({"object": "list", "data": [
            {"id": m, "object": "model", "created": 0, "owned_by": "openai"} for m in ids]})


@contextlib.contextmanager
def serve_in_thread(fake: FakeOpenAI | None = None) -> Iterator[FakeOpenAI]:
    """Run the fake on its own event loop in a daemon thread (for code that is not async
    or runs the host as a subprocess): ``with serve_in_thread() as fake: fake.base_url``.
    ``enqueue`` from the caller's thread is safe (deque appends are atomic)."""
    server = fake or FakeOpenAI()
    loop = asyncio.new_event_loop()
    ready = threading.Event()
    failure: list[BaseException] = []

    def run() -> None:
        asyncio.set_event_loop(loop)
        try:
            loop.run_until_complete(server.start())
        except BaseException as exc:
            failure.append(exc)
            ready.set()
            return
        ready.set()
        loop.run_forever()

    thread = threading.Thread(target=run, name="fake-openai", daemon=True)
    thread.start()
    ready.wait(10)
    if failure:
        raise failure[0]
    try:
        yield server
    finally:
        asyncio.run_coroutine_threadsafe(server.close(), loop).result(10)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)
        loop.close()


try:  # a ready-made fixture: `from tests.support.fake_openai import fake_openai` in a conftest
    import pytest

    @pytest.fixture
    async def fake_openai() -> AsyncIterator[FakeOpenAI]:
        """A started :class:`FakeOpenAI` on 127.0.0.1 (port 0), closed after the test."""
        async with FakeOpenAI() as server:
            yield server
except ImportError:  # bench scripts outside a dev environment
    pass


async def _main(port: int) -> None:
    """Run standalone: echo a short reply to every request until interrupted."""
    logging.basicConfig(level=logging.INFO)
    fake = FakeOpenAI(port=port)
    fake.responder = lambda body: Reply(text="Hello from the fake OpenAI server.")
    fake.chat_responder = fake.responder
    async with fake:
        log.info("OPENAI_BASE_URL=%s OPENAI_API_KEY=%s", fake.base_url, fake.api_key)
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.Event().wait()


if __name__ == "__main__":
    import argparse

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=0)
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(_main(parser.parse_args().port))
