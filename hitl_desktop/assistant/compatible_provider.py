"""OpenAI-compatible servers (Ollama, vLLM, LM Studio, ...) without hosted file_search.

Why it is built this way: such servers run the model and the function tools,
but have no vector stores. So the model gets one more function,
``search_knowledge_base(query)``, which this provider answers itself from the
local index (``knowledge.index.KnowledgeIndex``) and then calls the model again
with the result — the host's turn loop never sees that function. Instead it
sees what OpenAI's hosted search produces: a ``file_search_call`` item whose
results carry the upload attributes (``article_id``, ``kind``, ``slug``,
``title``, ``path``), so the stream translator shows the same articles.

Several upstream responses (search rounds) are merged into ONE Responses
stream: one ``response.created``, contiguous ``output_index`` and
``sequence_number`` values, one ``response.completed`` whose output holds
everything shown. ``Settings.compatible_api`` picks the upstream API:
``chat`` (``/v1/chat/completions``, the default: every local server has it;
its stream is converted into Responses events by :class:`ChatToResponses`) or
``responses`` (``/v1/responses``: Ollama 0.13.3+, vLLM, LM Studio 0.3.29+).

What local servers need that OpenAI does not (each seen in public bug reports):

* Ollama streams every parallel tool call with ``index: 0``: a new ``id`` at the
  same index starts a new call (ollama/ollama#15457). Whole calls may arrive in
  one chunk, with ``content: null``.
* Qwen-style chat templates accept exactly one ``system`` message, at the start:
  developer notes that come later (approval outcomes) go in as clearly marked
  user-side context instead.
* ``parallel_tool_calls: false`` on the chat path too, so small models make one
  call at a time.
* vLLM refuses every request with tools unless started with
  ``--enable-auto-tool-choice --tool-call-parser ...``; a 404 on ``/responses``
  means the server is too old for that API. Both get a message that says what to do.

The OpenAI key is never sent to a third-party server: the address comes from
``Settings.compatible_base_url`` and the key from ``HITL_COMPATIBLE_API_KEY``
(most local servers need none).
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import secrets
import time
from collections.abc import AsyncGenerator, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import httpx2
import openai
from openai.types.responses import ResponseStreamEvent

from hitl_desktop.assistant.base import ProviderError, TurnRequest
from hitl_desktop.assistant.openai_provider import (
    DEFAULT_CONNECT_TIMEOUT_S,
    DEFAULT_MAX_RETRIES,
    DEFAULT_TIMEOUT_S,
    map_api_error,
)
from hitl_desktop.assistant.stream import (
    event_from_dict,
    output_to_input_items,
    sdk_dict,
    sdk_get,
)
from hitl_desktop.config import Paths, Settings

log = logging.getLogger(__name__)

SEARCH_TOOL_NAME = "search_knowledge_base"
API_KEY_ENV = "HITL_COMPATIBLE_API_KEY"
BASE_URL_ENV = "HITL_COMPATIBLE_BASE_URL"
SERVICE = "the compatible model server"
_MAX_RESULT_TEXT = 1500

SEARCH_TOOL: dict[str, Any] = {
    "type": "function",
    "name": SEARCH_TOOL_NAME,
    "description": (
        "Search the shop's knowledge base (policies, procedures, FAQs). Call it before "
        "answering any question about policy, shipping, returns, refunds, payments, accounts "
        "or support, and cite the article titles you used."
    ),
    "strict": True,
    "parameters": {
        "type": "object",
        "properties": {"query": {"type": "string",
                                 "description": "What to look for, in a few words."}},
        "required": ["query"],
        "additionalProperties": False,
    },
}


class KnowledgeSearch(Protocol):
    """What the provider needs from the local index (``KnowledgeIndex`` satisfies it)."""

    def search(self, query: str, limit: int = 5, kind: str | None = None) -> Sequence[Any]: ...


# --------------------------------------------------------------------------- helpers


def _new_id(prefix: str) -> str:
    return f"{prefix}_local_{secrets.token_hex(12)}"


def hit_to_result(hit: Any) -> dict[str, Any]:
    """A local search hit as a hosted ``file_search`` result (same attributes as uploads)."""
    article_id = str(sdk_get(hit, "article_id", ""))
    kind = str(sdk_get(hit, "kind", article_id.partition("/")[0]))
    slug = str(sdk_get(hit, "slug", article_id.partition("/")[2]))
    path = str(sdk_get(hit, "path", f"{kind}/{slug}.md"))
    text = str(sdk_get(hit, "text", "") or sdk_get(hit, "snippet", ""))
    return {
        "file_id": f"local:{article_id}",
        "filename": Path(path).name,
        "score": float(sdk_get(hit, "score", 0.0) or 0.0),
        "text": text,
        "attributes": {"article_id": article_id, "kind": kind, "slug": slug,
                       "title": str(sdk_get(hit, "title", slug)), "path": path},
    }


def search_output(query: str, results: list[dict[str, Any]]) -> str:
    """The ``function_call_output`` the model reads after a search (compact JSON)."""
    return json.dumps({
        "query": query,
        "results": [{"article_id": r["attributes"]["article_id"],
                     "title": r["attributes"]["title"],
                     "text": r["text"][:_MAX_RESULT_TEXT]} for r in results],
        "note": ("No matching article." if not results else
                 "Answer from these articles; mention the titles you used."),
    }, ensure_ascii=False)


NOTE_PREFIX = "[Note from the support desk, not written by the customer]"
# what a customer's copy of the prefix becomes: only the host writes the real one (a
# representative's steering instruction travels as such a note on Chat Completions)
FORGED_NOTE = "[the customer typed a fake support-desk note marker here]"


def to_chat_messages(instructions: str, items: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Responses input items as Chat Completions messages (tool calls grouped).

    Exactly one ``system`` message, first: the instructions plus any developer or
    system notes that precede the conversation. Later notes become ``user``
    messages marked with :data:`NOTE_PREFIX` (many chat templates reject a
    system message anywhere but at the start)."""
    system: list[str] = [instructions] if instructions else []
    messages: list[dict[str, Any]] = []
    for item in items:
        itype = item.get("type", "message" if "role" in item else None)
        if itype == "message":
            content = item.get("content", "")
            if isinstance(content, list):
                content = "".join(str(p.get("text", "")) for p in content
                                  if isinstance(p, Mapping))
            role = item.get("role", "user")
            if role in {"developer", "system"}:
                if not messages:
                    system.append(str(content))
                else:
                    messages.append({"role": "user", "content": f"{NOTE_PREFIX} {content}"})
                continue
            text = str(content)
            if role == "user" and NOTE_PREFIX in text:  # a customer posing as the desk
                text = text.replace(NOTE_PREFIX, FORGED_NOTE)
            messages.append({"role": role, "content": text})
        elif itype == "function_call":
            call = {"id": item.get("call_id", ""), "type": "function",
                    "function": {"name": item.get("name", ""),
                                 "arguments": item.get("arguments", "") or "{}"}}
            last = messages[-1] if messages else None
            if last is not None and last["role"] == "assistant":
                # calls join the text the model wrote before them (one assistant turn)
                last.setdefault("tool_calls", []).append(call)
            else:
                messages.append({"role": "assistant", "content": None, "tool_calls": [call]})
        elif itype == "function_call_output":
            output = item.get("output", "")
            messages.append({"role": "tool", "tool_call_id": item.get("call_id", ""),
                             "content": output if isinstance(output, str) else json.dumps(output)})
        # reasoning / hosted tool items have no Chat Completions equivalent
    if system:
        messages.insert(0, {"role": "system", "content": "\n\n".join(system)})
    return messages


def to_chat_tools(tools: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Responses function tools as Chat Completions tools."""
    out: list[dict[str, Any]] = []
    for tool in tools:
        if tool.get("type") != "function":
            continue
        fn: dict[str, Any] = {"name": tool["name"],
                              "parameters": tool.get("parameters") or {"type": "object"}}
        if tool.get("description"):
            fn["description"] = tool["description"]
        out.append({"type": "function", "function": fn})
    return out


# --------------------------------------------------------------------------- chat -> responses


@dataclass(slots=True)
class _ChatCall:
    item_id: str
    call_id: str
    given_id: str = ""  # the id the server sent (empty: it sent none)
    name: str = ""
    arguments: str = ""
    output_index: int = -1
    opened: bool = False


class ChatToResponses:
    """Convert a Chat Completions chunk stream into Responses stream events (as JSON dicts).

    Pure and incremental: :meth:`feed` each chunk, then :meth:`finish`. A tool
    call's ``output_item.added`` waits until its name is known, so consumers can
    route it by name from the start.
    """

    def __init__(self, model: str) -> None:
        self.response_id = _new_id("resp")
        self.model = model
        self._seq = 0
        self._next_index = 0
        self._started = False
        self._msg_id: str | None = None
        self._msg_index = -1
        self._text = ""
        self._calls: list[_ChatCall] = []
        self._at_index: dict[int, _ChatCall] = {}  # the call a chunk index continues
        self._finish_reason: str | None = None
        self._usage: dict[str, Any] | None = None
        self._output: list[dict[str, Any]] = []

    def _ev(self, type_: str, **fields: Any) -> dict[str, Any]:
        event = {"type": type_, "sequence_number": self._seq, **fields}
        self._seq += 1
        return event

    def _response(self, status: str, output: list[dict[str, Any]],
                  **extra: Any) -> dict[str, Any]:
        return {"id": self.response_id, "object": "response", "created_at": int(time.time()),
                "status": status, "model": self.model, "output": output,
                "parallel_tool_calls": False, "tool_choice": "auto", "tools": [], **extra}

    def _start(self) -> list[dict[str, Any]]:
        if self._started:
            return []
        self._started = True
        return [self._ev("response.created", response=self._response("in_progress", [])),
                self._ev("response.in_progress", response=self._response("in_progress", []))]

    def feed(self, chunk: Any) -> list[dict[str, Any]]:
        out = self._start()
        usage = sdk_get(chunk, "usage")
        if usage is not None:
            self._usage = sdk_dict(usage)
        for choice in sdk_get(chunk, "choices", []) or []:
            if sdk_get(choice, "index", 0) != 0:
                continue
            delta = sdk_get(choice, "delta")
            content = sdk_get(delta, "content")
            if isinstance(content, str) and content:
                out.extend(self._text_delta(content))
            for tc in sdk_get(delta, "tool_calls", []) or []:
                out.extend(self._tool_delta(tc))
            reason = sdk_get(choice, "finish_reason")
            if isinstance(reason, str):
                self._finish_reason = reason
        return out

    def _text_delta(self, text: str) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        if self._msg_id is None:
            self._msg_id = _new_id("msg")
            self._msg_index = self._next_index
            self._next_index += 1
            out.append(self._ev("response.output_item.added", output_index=self._msg_index,
                                item={"id": self._msg_id, "type": "message", "role": "assistant",
                                      "status": "in_progress", "content": []}))
            out.append(self._ev("response.content_part.added", item_id=self._msg_id,
                                output_index=self._msg_index, content_index=0,
                                part={"type": "output_text", "text": "", "annotations": []}))
        self._text += text
        out.append(self._ev("response.output_text.delta", item_id=self._msg_id,
                            output_index=self._msg_index, content_index=0, delta=text,
                            logprobs=[]))
        return out

    def _tool_delta(self, tc: Any) -> list[dict[str, Any]]:
        index = sdk_get(tc, "index", 0)
        given = str(sdk_get(tc, "id", "") or "")
        call = self._at_index.get(index)
        # a new id at an index already in use is a new call (Ollama sends every
        # parallel call at index 0); a repeated or missing id continues the call
        if call is None or (given and call.given_id and given != call.given_id):
            call = _ChatCall(_new_id("fc"), given or _new_id("call"), given)
            self._calls.append(call)
            self._at_index[index] = call
        elif given and not call.given_id:
            call.given_id = given
        fn = sdk_get(tc, "function")
        name = sdk_get(fn, "name")
        if isinstance(name, str) and name:
            call.name = name
        piece = sdk_get(fn, "arguments")
        piece = piece if isinstance(piece, str) else ""
        out: list[dict[str, Any]] = []
        if not call.opened and call.name:
            out.extend(self._open_call(call))
            if call.arguments:  # arguments that arrived before the name
                out.append(self._ev("response.function_call_arguments.delta",
                                    item_id=call.item_id, output_index=call.output_index,
                                    delta=call.arguments))
        call.arguments += piece
        if call.opened and piece:
            out.append(self._ev("response.function_call_arguments.delta", item_id=call.item_id,
                                output_index=call.output_index, delta=piece))
        return out

    def _open_call(self, call: _ChatCall) -> list[dict[str, Any]]:
        call.opened = True
        call.output_index = self._next_index
        self._next_index += 1
        return [self._ev("response.output_item.added", output_index=call.output_index,
                         item={"id": call.item_id, "type": "function_call",
                               "status": "in_progress", "call_id": call.call_id,
                               "name": call.name, "arguments": ""})]

    def finish(self) -> list[dict[str, Any]]:
        out = self._start()
        done: list[tuple[int, dict[str, Any]]] = []
        if self._msg_id is not None:
            part = {"type": "output_text", "text": self._text, "annotations": []}
            item = {"id": self._msg_id, "type": "message", "role": "assistant",
                    "status": "completed", "content": [part]}
            out.append(self._ev("response.output_text.done", item_id=self._msg_id,
                                output_index=self._msg_index, content_index=0,
                                text=self._text, logprobs=[]))
            out.append(self._ev("response.content_part.done", item_id=self._msg_id,
                                output_index=self._msg_index, content_index=0, part=part))
            out.append(self._ev("response.output_item.done", output_index=self._msg_index,
                                item=item))
            done.append((self._msg_index, item))
        for call in self._calls:
            if not call.opened:
                call.name = call.name or "unknown_function"
                out.extend(self._open_call(call))
            arguments = call.arguments or "{}"
            item = {"id": call.item_id, "type": "function_call", "status": "completed",
                    "call_id": call.call_id, "name": call.name, "arguments": arguments}
            out.append(self._ev("response.function_call_arguments.done", item_id=call.item_id,
                                output_index=call.output_index, arguments=arguments))
            out.append(self._ev("response.output_item.done", output_index=call.output_index,
                                item=item))
            done.append((call.output_index, item))
        output = [item for _, item in sorted(done, key=lambda p: p[0])]
        usage = None
        if self._usage:
            prompt = int(self._usage.get("prompt_tokens", 0) or 0)
            completion = int(self._usage.get("completion_tokens", 0) or 0)
            usage = {"input_tokens": prompt, "output_tokens": completion,
                     "total_tokens": prompt + completion,
                     "input_tokens_details": {"cached_tokens": 0},
                     "output_tokens_details": {"reasoning_tokens": 0}}
        if self._finish_reason in {"length", "content_filter"}:
            reason = "max_output_tokens" if self._finish_reason == "length" else "content_filter"
            out.append(self._ev("response.incomplete", response=self._response(
                "incomplete", output, usage=usage, incomplete_details={"reason": reason})))
        else:
            out.append(self._ev("response.completed",
                                response=self._response("completed", output, usage=usage)))
        return out


# --------------------------------------------------------------------------- merging rounds


@dataclass(slots=True)
class _Round:
    """What one upstream response produced, as the merger saw it."""

    search_calls: list[dict[str, Any]] = field(default_factory=list)
    items: list[dict[str, Any]] = field(default_factory=list)  # shown output items
    other_calls: int = 0
    completed: bool = False
    failed: bool = False
    usage: dict[str, Any] | None = None
    hidden: set[str] = field(default_factory=set)
    index_map: dict[int, int] = field(default_factory=dict)


class _Merger:
    """Merge several upstream responses into one Responses stream for the turn loop."""

    def __init__(self, model: str) -> None:
        self.response_id = _new_id("resp")
        self.model = model
        self._seq = 0
        self._next_index = 0
        self.started = False
        self.output: list[dict[str, Any]] = []
        self.usage: dict[str, int] = {}

    def _stamp(self, data: dict[str, Any]) -> ResponseStreamEvent:
        data["sequence_number"] = self._seq
        self._seq += 1
        return event_from_dict(data)

    def _response(self, status: str, **extra: Any) -> dict[str, Any]:
        return {"id": self.response_id, "object": "response", "created_at": int(time.time()),
                "status": status, "model": self.model, "output": list(self.output),
                "parallel_tool_calls": False, "tool_choice": "auto", "tools": [], **extra}

    def start(self) -> list[ResponseStreamEvent]:
        if self.started:
            return []
        self.started = True
        return [self._stamp({"type": "response.created",
                             "response": self._response("in_progress")}),
                self._stamp({"type": "response.in_progress",
                             "response": self._response("in_progress")})]

    def relay(self, event: Any, rnd: _Round) -> list[ResponseStreamEvent]:
        out = self.start()
        data = sdk_dict(event)
        etype = data.get("type", "")
        if etype in {"response.created", "response.in_progress", "response.queued"}:
            return out
        if etype == "response.completed":
            rnd.completed = True
            usage = sdk_dict(sdk_get(sdk_get(event, "response"), "usage"))
            for key in ("input_tokens", "output_tokens", "total_tokens"):
                value = usage.get(key)
                if isinstance(value, int):
                    self.usage[key] = self.usage.get(key, 0) + value
            return out
        if etype in {"response.failed", "response.incomplete"}:
            rnd.failed = True
            upstream = sdk_dict(sdk_get(event, "response"))
            extra = {k: upstream[k] for k in ("error", "incomplete_details") if k in upstream}
            status = "failed" if etype == "response.failed" else "incomplete"
            return [*out, self._stamp({"type": etype,
                                       "response": self._response(status, **extra)})]
        if etype == "error":
            rnd.failed = True
            return [*out, self._stamp(data)]
        item = data.get("item") if isinstance(data.get("item"), Mapping) else None
        item_id = data.get("item_id") or (item or {}).get("id")
        if (etype == "response.output_item.added" and item is not None
                and item.get("type") == "function_call" and item.get("name") == SEARCH_TOOL_NAME):
            rnd.hidden.add(str(item.get("id")))
            return out
        if item_id is not None and str(item_id) in rnd.hidden:
            if etype == "response.output_item.done" and item is not None:
                rnd.search_calls.append(dict(item))
            return out
        if etype == "response.output_item.done" and item is not None:
            if item.get("type") == "function_call":
                if item.get("name") == SEARCH_TOOL_NAME:  # never announced by .added
                    rnd.search_calls.append(dict(item))
                    return out
                rnd.other_calls += 1
            rnd.items.append(dict(item))
            self.output.append(dict(item))
        if "output_index" in data:
            upstream_index = data["output_index"]
            if upstream_index not in rnd.index_map:
                rnd.index_map[upstream_index] = self._next_index
                self._next_index += 1
            data["output_index"] = rnd.index_map[upstream_index]
        return [*out, self._stamp(data)]

    def search_events(self, query: str, results: list[dict[str, Any]]
                      ) -> list[ResponseStreamEvent]:
        """A hosted-looking ``file_search_call`` for a search this provider ran itself."""
        index = self._next_index
        self._next_index += 1
        fs_id = _new_id("fs")
        done = {"id": fs_id, "type": "file_search_call", "status": "completed",
                "queries": [query], "results": results}
        self.output.append(done)
        base = {"output_index": index, "item_id": fs_id}
        return [
            self._stamp({"type": "response.output_item.added", "output_index": index,
                         "item": {"id": fs_id, "type": "file_search_call",
                                  "status": "in_progress", "queries": [], "results": None}}),
            self._stamp({"type": "response.file_search_call.in_progress", **base}),
            self._stamp({"type": "response.file_search_call.searching", **base}),
            self._stamp({"type": "response.file_search_call.completed", **base}),
            self._stamp({"type": "response.output_item.done", "output_index": index,
                         "item": done}),
        ]

    def completed(self) -> ResponseStreamEvent:
        usage = None
        if self.usage:
            usage = {"input_tokens": self.usage.get("input_tokens", 0),
                     "output_tokens": self.usage.get("output_tokens", 0),
                     "total_tokens": self.usage.get("total_tokens", 0),
                     "input_tokens_details": {"cached_tokens": 0},
                     "output_tokens_details": {"reasoning_tokens": 0}}
        return self._stamp({"type": "response.completed",
                            "response": self._response("completed", usage=usage)})


# --------------------------------------------------------------------------- provider


class CompatibleProvider:
    """:class:`~hitl_desktop.assistant.base.Provider` for OpenAI-compatible servers."""

    name = "compatible"
    is_ai = True

    def __init__(
        self,
        *,
        base_url: str | None,
        model: str,
        api: str = "chat",
        api_key: str | None = None,
        knowledge: KnowledgeSearch | None = None,
        knowledge_opener: Callable[[], KnowledgeSearch] | None = None,
        max_search_results: int = 5,
        max_search_rounds: int = 3,
        timeout_s: float = DEFAULT_TIMEOUT_S,
        connect_timeout_s: float = DEFAULT_CONNECT_TIMEOUT_S,
        max_retries: int = DEFAULT_MAX_RETRIES,
    ) -> None:
        if api not in {"responses", "chat"}:
            raise ValueError(f"compatible_api must be 'responses' or 'chat', not {api!r}")
        self.model: str | None = model
        self.api = api
        self.base_url = base_url
        self._api_key = api_key or os.environ.get(API_KEY_ENV) or "not-needed"
        self._knowledge = knowledge
        self._knowledge_opener = knowledge_opener
        self._knowledge_lock = asyncio.Lock()
        self.max_search_results = max(1, max_search_results)
        self.max_search_rounds = max(0, max_search_rounds)
        self._timeout = httpx2.Timeout(timeout_s, connect=connect_timeout_s)
        self._max_retries = max_retries
        self._client: openai.AsyncOpenAI | None = None

    @classmethod
    def from_settings(cls, paths: Paths, settings: Settings, **kwargs: Any) -> CompatibleProvider:
        def open_shared_index() -> KnowledgeSearch:
            from hitl_desktop.knowledge.index import open_index

            return open_index(paths.data_dir, settings.knowledge_dir)

        kwargs.setdefault("knowledge_opener", open_shared_index)
        return cls(base_url=settings.compatible_base_url or os.environ.get(BASE_URL_ENV),
                   model=settings.model, api=settings.compatible_api,
                   max_search_results=settings.max_search_results, **kwargs)

    def _get_client(self) -> openai.AsyncOpenAI:
        if not self.base_url:
            raise ProviderError("no_base_url", "No server address is configured for the "
                                "OpenAI-compatible provider: set compatible_base_url in the "
                                "settings (e.g. http://localhost:11434/v1 for Ollama) or "
                                f"{BASE_URL_ENV}.")
        if self._client is None:
            self._client = openai.AsyncOpenAI(api_key=self._api_key, base_url=self.base_url,
                                              timeout=self._timeout,
                                              max_retries=self._max_retries)
        return self._client

    def _explain(self, exc: openai.APIError, *, started: bool) -> ProviderError:
        """Local servers' typical set-up mistakes, said with the fix; else the usual mapping."""
        detail = str(getattr(exc, "message", "") or exc)
        body = getattr(exc, "body", None)
        if isinstance(body, Mapping):
            inner = body.get("error", body)
            if isinstance(inner, Mapping) and isinstance(inner.get("message"), str):
                detail = inner["message"]
            elif isinstance(inner, str):
                detail = inner
        low = detail.lower()
        if "enable-auto-tool-choice" in low or "tool-call-parser" in low:
            return ProviderError("server_setup", "The vLLM server refuses tools: start it with "
                                 "--enable-auto-tool-choice --tool-call-parser <parser> "
                                 "(hermes for Qwen, llama3_json for Llama 3.x, mistral for "
                                 f"Mistral). Server said: {detail}")
        if isinstance(exc, openai.NotFoundError):
            if "model" in low and ("not found" in low or "does not exist" in low):
                return ProviderError("not_found", f"{SERVICE} has no model {self.model!r} "
                                     f"(for Ollama: ollama pull {self.model}). Server said: "
                                     f"{detail}")
            if self.api == "responses":
                return ProviderError("not_found", f"{SERVICE} at {self.base_url} has no "
                                     "/responses endpoint (Ollama before 0.13.3, older LM "
                                     "Studio): set \"compatible_api\": \"chat\" in the "
                                     f"settings. Server said: {detail}")
            return ProviderError("not_found", f"{SERVICE} at {self.base_url} has no "
                                 "/chat/completions endpoint: check compatible_base_url (it "
                                 "usually ends in /v1, e.g. http://localhost:11434/v1 for "
                                 f"Ollama). Server said: {detail}")
        return map_api_error(exc, started=started, service=SERVICE)

    async def aclose(self) -> None:
        if self._client is not None:
            await self._client.close()
            self._client = None
        close = getattr(self._knowledge, "close", None)
        if self._knowledge_opener is not None and callable(close):
            await asyncio.to_thread(close)  # we opened it, we close it
            self._knowledge = None

    # -- knowledge

    async def _index(self) -> KnowledgeSearch | None:
        async with self._knowledge_lock:
            if self._knowledge is None and self._knowledge_opener is not None:
                try:
                    self._knowledge = await asyncio.to_thread(self._knowledge_opener)
                except Exception:
                    log.exception("the local knowledge index could not be opened")
                    self._knowledge_opener = None
            return self._knowledge

    async def search(self, query: str) -> list[dict[str, Any]]:
        """Run ``search_knowledge_base`` locally; results in hosted file_search shape."""
        index = await self._index()
        if index is None or not query.strip():
            return []
        hits = await asyncio.to_thread(index.search, query, self.max_search_results)
        return [hit_to_result(h) for h in hits]

    # -- upstream rounds

    async def _round(self, client: openai.AsyncOpenAI, request: TurnRequest,
                     history: list[dict[str, Any]], tools: list[dict[str, Any]]
                     ) -> AsyncGenerator[Any, None]:
        """One upstream model call, as Responses events (SDK objects or dicts)."""
        model = self.model or ""
        if self.api == "responses":
            params: dict[str, Any] = {"model": model, "instructions": request.instructions,
                                      "input": history, "stream": True, "store": False}
            if tools:
                params["tools"] = tools
                params["parallel_tool_calls"] = False
            stream = await client.responses.create(**params)
            try:
                async for event in stream:
                    yield event
            finally:
                await stream.close()
            return
        chat_params: dict[str, Any] = {
            "model": model, "stream": True,
            "messages": to_chat_messages(request.instructions, history)}
        if tools:
            chat_params["tools"] = to_chat_tools(tools)
            chat_params["parallel_tool_calls"] = False
        chunks = await client.chat.completions.create(**chat_params)
        converter = ChatToResponses(model)
        try:
            async for chunk in chunks:
                for data in converter.feed(chunk):
                    yield data
        finally:
            await chunks.close()
        for data in converter.finish():
            yield data

    async def stream(self, request: TurnRequest) -> AsyncGenerator[ResponseStreamEvent, None]:
        """Yield one merged Responses stream; searches run locally between rounds."""
        client = self._get_client()
        merger = _Merger(self.model or "")
        history = list(request.input)
        searches = 0
        while True:
            offer = searches < self.max_search_rounds
            tools = [*request.tools, SEARCH_TOOL] if offer else list(request.tools)
            rnd = _Round()
            received = False
            try:
                async for event in self._round(client, request, history, tools):
                    received = True
                    for out in merger.relay(event, rnd):
                        yield out
            except openai.APIError as exc:
                raise self._explain(exc, started=received or searches > 0) from exc
            if rnd.failed:
                return
            if not rnd.completed:
                raise ProviderError("stream_cut", f"The stream from {SERVICE} ended before "
                                    "the response was complete.", retryable=True)
            if not rnd.search_calls or rnd.other_calls or searches > self.max_search_rounds:
                yield merger.completed()  # a model that keeps searching is cut off here
                return
            history.extend(output_to_input_items(rnd.items))
            for call in rnd.search_calls:
                try:
                    query = str(json.loads(call.get("arguments") or "{}").get("query", ""))
                except (ValueError, AttributeError):
                    query = ""
                results = await self.search(query) if offer else []
                for out in merger.search_events(query, results):
                    yield out
                history.append({"type": "function_call", "call_id": call.get("call_id", ""),
                                "name": SEARCH_TOOL_NAME,
                                "arguments": call.get("arguments") or "{}"})
                history.append({"type": "function_call_output",
                                "call_id": call.get("call_id", ""),
                                "output": search_output(query, results) if offer else
                                "Search limit reached: answer with what you already have."})
            searches += 1
