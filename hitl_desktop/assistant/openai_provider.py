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
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import AsyncGenerator, Mapping
from typing import Any

import httpx2
import openai
from openai.types.responses import ResponseStreamEvent

from hitl_desktop.assistant.base import ProviderError, TurnRequest
from hitl_desktop.config import Paths, Settings
from hitl_desktop.secrets import load_api_key

log = logging.getLogger(__name__)

DEFAULT_TIMEOUT_S = 120.0  # longest silence between stream chunks we accept
DEFAULT_CONNECT_TIMEOUT_S = 10.0
DEFAULT_MAX_RETRIES = 3
TERMINAL_EVENTS = frozenset({"response.completed", "response.failed", "response.incomplete"})
_REASONING_MODEL = re.compile(r"^(o\d|gpt-5|codex)", re.IGNORECASE)

NO_KEY_MESSAGE = (
    "No OpenAI API key is configured. Set OPENAI_API_KEY, or store a key with "
    "`hitl-desktop setup`, or run the host with `--provider offline`."
)


def is_reasoning_model(model: str) -> bool:
    """Models whose reasoning items must round-trip as encrypted content when store=False."""
    return bool(_REASONING_MODEL.match(model))


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
    if isinstance(exc, openai.AuthenticationError | openai.PermissionDeniedError):
        return ProviderError("auth", f"{service} rejected the API key ({exc.status_code}): "
                             f"{detail} Check the key in the settings.")
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
        timeout_s: float = DEFAULT_TIMEOUT_S,
        connect_timeout_s: float = DEFAULT_CONNECT_TIMEOUT_S,
        max_retries: int = DEFAULT_MAX_RETRIES,
    ) -> None:
        self.model: str | None = model
        self._paths = paths
        self._fixed_key = api_key
        self._base_url = base_url
        self.vector_store_id = vector_store_id
        self.max_search_results = max(1, min(50, max_search_results))
        self._timeout = httpx2.Timeout(timeout_s, connect=connect_timeout_s)
        self._max_retries = max_retries
        self._client: openai.AsyncOpenAI | None = None

    @classmethod
    def from_settings(cls, paths: Paths, settings: Settings, **kwargs: Any) -> OpenAIProvider:
        return cls(paths=paths, model=settings.model, base_url=settings.base_url,
                   vector_store_id=settings.vector_store_id,
                   max_search_results=settings.max_search_results, **kwargs)

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
        if self.vector_store_id:
            tools.append({"type": "file_search", "vector_store_ids": [self.vector_store_id],
                          "max_num_results": self.max_search_results})
            include.append("file_search_call.results")
        tools.extend(request.tools)
        if is_reasoning_model(model):
            include.append("reasoning.encrypted_content")
        params: dict[str, Any] = {
            "model": model,
            "instructions": request.instructions,
            "input": list(request.input),
            "store": False,
            "stream": True,
        }
        if tools:
            params["tools"] = tools
            params["parallel_tool_calls"] = False
        if include:
            params["include"] = include
        if request.metadata:
            params["metadata"] = dict(request.metadata)
        return params

    async def stream(self, request: TurnRequest) -> AsyncGenerator[ResponseStreamEvent, None]:
        """Yield the response's events; raise :class:`ProviderError` on any failure."""
        client = await self._get_client()
        params = self.request_params(request)
        started = False
        terminal = False
        try:
            events = await client.responses.create(**params)
        except openai.APIError as exc:
            error = map_api_error(exc, started=False)
            if error.code == "auth":
                await self._forget_client()
            raise error from exc
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
