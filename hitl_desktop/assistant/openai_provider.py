"""The OpenAI engine: Responses API streaming with hosted file_search and function tools.

Why it looks like this:

* The key is read (``secrets.load_api_key``, in a worker thread: a keyring may
  block) when a turn starts and no client exists yet, not at host start: a host
  started without a key stays up, tells the representatives plainly
  (``ProviderError("no_api_key")``), and picks the key up once the setup wizard
  stores it. After a 401 the client is dropped so a corrected key is re-read.
* Requests are stateless (``store=False``): the host owns the conversation and
  sends it whole each time. Reasoning models therefore get
  ``include=["reasoning.encrypted_content"]`` so their reasoning items can be
  sent back with the function call outputs.
* Retries (exponential backoff with jitter, ``retry-after`` honoured) are the
  SDK's own, on 408/409/429/5xx and connection errors; they only ever happen
  before the first event. Once text has streamed to the agents, a failure is
  reported (``stream_cut`` or the upstream code), never silently replayed.
* Closing the async generator (the turn was superseded) closes the HTTP stream.
* Reasoning models (a list in :mod:`hitl_desktop.core.openai_models`, not a
  regex: ``gpt-5-chat-latest`` is not one) get ``reasoning.effort`` (``low`` by
  default: a live co-pilot must be quick) and encrypted reasoning; the chat
  snapshots get neither, and no tools (they reject them).
* Organisations that are not verified may not *stream* GPT-5-family models
  (400, ``param: "stream"``). The request is then repeated without streaming,
  the model is remembered, and :attr:`OpenAIProvider.notice` says drafts arrive
  whole; the agents still get every draft.
* The key only ever goes to OpenAI, or to ``OPENAI_BASE_URL`` (an explicit
  choice of the person who set it): never to ``Settings.compatible_base_url``.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncGenerator, Mapping
from typing import Any

import httpx2
import openai
from openai.types.responses import ResponseStreamEvent

from hitl_desktop.assistant.base import ProviderError, TurnRequest
from hitl_desktop.assistant.stream import event_from_dict, sdk_dict
from hitl_desktop.config import Paths, Settings
from hitl_desktop.core.openai_models import accepts_tools, is_reasoning_model
from hitl_desktop.secrets import load_api_key

log = logging.getLogger(__name__)

DEFAULT_TIMEOUT_S = 120.0  # longest silence between stream chunks we accept
DEFAULT_CONNECT_TIMEOUT_S = 10.0
DEFAULT_MAX_RETRIES = 3
NON_STREAM_TIMEOUT_S = 300.0  # a whole response, reasoning and all, in one answer
TERMINAL_EVENTS = frozenset({"response.completed", "response.failed", "response.incomplete"})
REASONING_EFFORTS = ("none", "minimal", "low", "medium", "high")
VERIFY_URL = "https://platform.openai.com/settings/organization/general"
CANNOT_STREAM_NOTICE = "{model} cannot stream: drafts arrive whole instead of word by word."
STREAM_NOTICE = ("OpenAI does not let this organisation stream {model} until it is "
                 f"verified ({VERIFY_URL}): drafts arrive whole instead of word by word.")

NO_KEY_MESSAGE = (
    "No OpenAI API key is configured. Set OPENAI_API_KEY, or store a key with "
    "`hitl-desktop setup`, or run the host with `--provider offline`."
)


def stream_refused(exc: openai.APIError) -> bool:
    """True for the 400 an unverified organisation gets when streaming a model that
    needs verification (``param: "stream"``, "organization must be verified")."""
    if not isinstance(exc, openai.BadRequestError):
        return False
    _, message = _body_error(exc.body)
    param = exc.body.get("error", exc.body).get("param") if isinstance(exc.body, Mapping) \
        else None
    return param == "stream" or ("verified" in message.lower() and "stream" in message.lower())


def _body_error(body: object) -> tuple[str, str]:
    """(code, message) from an API error body, flat or nested under ``error``."""
    if isinstance(body, Mapping):
        inner = body.get("error")
        if isinstance(inner, Mapping):
            body = inner
        code = body.get("code") or body.get("type")
        message = body.get("message")
        return (code if isinstance(code, str) else "", message if isinstance(message, str)
                else "")
    return "", ""


def map_api_error(exc: openai.APIError, *, started: bool, service: str = "OpenAI") -> ProviderError:
    """Translate an SDK exception into a :class:`ProviderError` with a stable code.

    ``started`` says whether events were already yielded: a connection failure
    then means the stream was cut mid-draft.
    """
    code, upstream = _body_error(exc.body)
    detail = upstream or exc.message
    if isinstance(exc, openai.APIConnectionError):  # includes APITimeoutError
        if started:
            return ProviderError("stream_cut", f"The connection to {service} broke while the "
                                 "draft was streaming; regenerate to try again.", retryable=True)
        kind = "timed out" if isinstance(exc, openai.APITimeoutError) else "failed"
        return ProviderError("timeout" if kind == "timed out" else "unreachable",
                             f"Connecting to {service} {kind} (after retries): {detail}",
                             retryable=True)
    if isinstance(exc, openai.AuthenticationError):
        fix = ("Check the key with `hitl-desktop setup`." if service == "OpenAI" else
               "Set the server's key in HITL_COMPATIBLE_API_KEY.")
        return ProviderError("auth", f"{service} rejected the API key (401): {detail} {fix}")
    if code == "model_not_found" or "does not have access to model" in detail:
        if isinstance(exc, openai.PermissionDeniedError):
            return ProviderError("model_not_found", "The API key works, but its project may "
                                 f"not use this model (403 model_not_found): {detail} Choose "
                                 "another model with `hitl-desktop setup`, or allow the model "
                                 "in the project's settings on platform.openai.com.")
        return ProviderError("model_not_found", f"{service} has no such model "
                             f"(model_not_found): {detail} Check the model name with "
                             "`hitl-desktop setup`.")
    if isinstance(exc, openai.PermissionDeniedError):
        if code == "unsupported_country_region_territory":
            return ProviderError("forbidden", f"{service} is not available from this country "
                                 f"or region (403): {detail}")
        return ProviderError("forbidden", f"{service} accepted the key but refused this "
                             f"request (403): {detail} A restricted key needs write access "
                             "to the Responses API and read access to vector stores.")
    if isinstance(exc, openai.RateLimitError):
        if code == "insufficient_quota":
            return ProviderError("insufficient_quota", f"The {service} account has no quota "
                                 f"left (check plan and billing): {detail}")
        return ProviderError("rate_limited", f"{service} rate limit reached and retries are "
                             f"exhausted: {detail}", retryable=True)
    if isinstance(exc, openai.InternalServerError):
        return ProviderError("upstream", f"{service} is failing ({exc.status_code}) and "
                             f"retries are exhausted: {detail}", retryable=True)
    if isinstance(exc, openai.NotFoundError):
        if "vector store" in detail.lower() or "vector_store" in detail.lower():
            return ProviderError("vector_store_not_found", f"The knowledge base's vector store "
                                 f"is gone from the {service} account: {detail} Run "
                                 "`hitl-desktop setup` to upload the knowledge base again.")
        return ProviderError("not_found", f"{service} could not find something the request "
                             f"names (model or vector store?): {detail}")
    if isinstance(exc, openai.APIStatusError):
        return ProviderError("bad_request", f"{service} rejected the request "
                             f"({exc.status_code}): {detail}")
    # a bare APIError is what the SDK raises for an `error` event inside the stream
    code = code or "upstream"
    if code == "insufficient_quota":
        return ProviderError(code, f"The {service} account has no quota left (check plan and "
                             f"billing): {detail}")
    retryable = code in {"server_error", "rate_limit_exceeded"}
    return ProviderError(code, f"{service} reported an error mid-stream ({code}): {detail}",
                         retryable=retryable)


class OpenAIProvider:
    """:class:`~hitl_desktop.assistant.base.Provider` backed by ``openai.AsyncOpenAI``."""

    name = "openai"
    is_ai = True

    def __init__(
        self,
        *,
        paths: Paths | None = None,
        api_key: str | None = None,
        model: str,
        base_url: str | None = None,
        vector_store_id: str | None = None,
        max_search_results: int = 5,
        reasoning_effort: str = "low",
        timeout_s: float = DEFAULT_TIMEOUT_S,
        connect_timeout_s: float = DEFAULT_CONNECT_TIMEOUT_S,
        max_retries: int = DEFAULT_MAX_RETRIES,
    ) -> None:
        self.model: str | None = model
        self._paths = paths
        self._fixed_key = api_key
        self._base_url = base_url  # None: the SDK's default (OpenAI, or OPENAI_BASE_URL)
        self.vector_store_id = vector_store_id
        self.max_search_results = max(1, min(50, max_search_results))
        effort = (reasoning_effort or "low").strip().lower()
        if effort not in REASONING_EFFORTS:
            log.warning("unknown reasoning_effort %r: using low", reasoning_effort)
            effort = "low"
        self.reasoning_effort = effort
        self._timeout = httpx2.Timeout(timeout_s, connect=connect_timeout_s)
        self._whole_timeout = httpx2.Timeout(max(timeout_s, NON_STREAM_TIMEOUT_S),
                                             connect=connect_timeout_s)
        self._max_retries = max_retries
        self._client: openai.AsyncOpenAI | None = None
        self.no_stream_models: set[str] = set()  # streaming refused for these (unverified org)
        self.notice: str | None = None  # shown in the assistant status (drafts arrive whole)

    @classmethod
    def from_settings(cls, paths: Paths, settings: Settings, **kwargs: Any) -> OpenAIProvider:
        # no base_url from the settings: that one belongs to the compatible engine, and
        # the OpenAI key must never travel to a local server (OPENAI_BASE_URL still works)
        return cls(paths=paths, model=settings.model, vector_store_id=settings.vector_store_id,
                   max_search_results=settings.max_search_results,
                   reasoning_effort=settings.reasoning_effort, **kwargs)

    # -- client

    def _api_key(self) -> str | None:
        if self._fixed_key:
            return self._fixed_key
        return load_api_key(self._paths) if self._paths is not None else None

    async def _get_client(self) -> openai.AsyncOpenAI:
        if self._client is None:
            # a keyring lookup may talk to D-Bus (or wait for an unlock prompt): off the loop
            key = await asyncio.to_thread(self._api_key)
            if not key:
                raise ProviderError("no_api_key", NO_KEY_MESSAGE)
            self._client = openai.AsyncOpenAI(
                api_key=key, base_url=self._base_url, timeout=self._timeout,
                max_retries=self._max_retries,
            )
        return self._client

    async def _forget_client(self) -> None:
        """Drop the client after an auth failure, so a key stored since is picked up."""
        if self._client is not None and not self._fixed_key:
            await self._client.close()
            self._client = None

    async def aclose(self) -> None:
        if self._client is not None:
            await self._client.close()
            self._client = None

    # -- request

    def request_params(self, request: TurnRequest) -> dict[str, Any]:
        """The ``responses.create`` keyword arguments for one turn (tested for shape)."""
        model = self.model or ""
        tools: list[dict[str, Any]] = []
        include: list[str] = []
        if not accepts_tools(model):
            log.warning("model %s rejects tools: drafting without the knowledge base and "
                        "without order tools", model)
        else:
            if self.vector_store_id:
                tools.append({"type": "file_search", "vector_store_ids": [self.vector_store_id],
                              "max_num_results": self.max_search_results})
                include.append("file_search_call.results")
            tools.extend(request.tools)
        params: dict[str, Any] = {
            "model": model,
            "instructions": request.instructions,
            "input": list(request.input),
            "store": False,
            "stream": model not in self.no_stream_models,
        }
        if is_reasoning_model(model):
            include.append("reasoning.encrypted_content")
            params["reasoning"] = {"effort": self.reasoning_effort}
        if tools:
            params["tools"] = tools
            params["parallel_tool_calls"] = False
        if include:
            params["include"] = include
        if request.metadata:
            params["metadata"] = dict(request.metadata)
        return params

    async def _create(self, client: openai.AsyncOpenAI, params: dict[str, Any]) -> Any:
        try:
            if params["stream"]:
                return await client.responses.create(**params)
            return await client.responses.create(**params, timeout=self._whole_timeout)
        except openai.APIError as exc:
            error = map_api_error(exc, started=False)
            if error.code == "auth":
                await self._forget_client()
            raise error from exc

    async def stream(self, request: TurnRequest) -> AsyncGenerator[ResponseStreamEvent, None]:
        """Yield the response's events; raise :class:`ProviderError` on any failure."""
        client = await self._get_client()
        params = self.request_params(request)
        if params["stream"]:
            try:
                events = await client.responses.create(**params)
            except openai.APIError as exc:
                if not stream_refused(exc):
                    error = map_api_error(exc, started=False)
                    if error.code == "auth":
                        await self._forget_client()
                    raise error from exc
                model = self.model or ""
                log.warning("OpenAI refuses to stream %s for this organisation (not "
                            "verified): drafts arrive whole from now on", model)
                self.no_stream_models.add(model)
                verification = "verif" in _body_error(exc.body)[1].lower()
                self.notice = (STREAM_NOTICE if verification else CANNOT_STREAM_NOTICE).format(
                    model=model)
                params["stream"] = False
            else:
                async for event in self._relay(events):
                    yield event
                return
        response = await self._create(client, params)
        for data in response_events(sdk_dict(response)):
            yield event_from_dict(data)

    async def _relay(self, events: Any) -> AsyncGenerator[ResponseStreamEvent, None]:
        started = False
        terminal = False
        try:
            async for event in events:
                started = True
                etype = getattr(event, "type", "")
                if etype in TERMINAL_EVENTS:
                    terminal = True
                yield event
        except openai.APIError as exc:
            raise map_api_error(exc, started=started) from exc
        finally:
            await events.close()  # also when the consumer stops early (turn superseded)
        if not terminal:
            raise ProviderError("stream_cut", "The OpenAI stream ended before the response "
                                "was complete; regenerate to try again.", retryable=True)


def response_events(response: Mapping[str, Any]) -> list[dict[str, Any]]:
    """A non-streamed response as the events a stream of it would end with.

    ``response.created``, then ``output_item.added``/``done`` per output item and
    the terminal event: the translator derives the whole text (one delta),
    search results, citations, refusals and function calls from the done items,
    exactly as for a stream whose deltas were lost.
    """
    output = [dict(item) for item in response.get("output") or [] if isinstance(item, Mapping)]
    status = response.get("status") or "completed"
    head = {**response, "status": "in_progress", "output": []}
    events: list[dict[str, Any]] = [{"type": "response.created", "response": head}]
    for index, item in enumerate(output):
        events.append({"type": "response.output_item.added", "output_index": index,
                       "item": {**item, "status": "in_progress"}})
        events.append({"type": "response.output_item.done", "output_index": index,
                       "item": item})
    terminal = {"failed": "response.failed", "incomplete": "response.incomplete"}.get(
        str(status), "response.completed")
    events.append({"type": terminal, "response": dict(response)})
    for seq, event in enumerate(events):
        event["sequence_number"] = seq
    return events
