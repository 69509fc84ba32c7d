"""The provider interface: every engine yields OpenAI Responses stream events.

OpenAI, OpenAI-compatible servers and the offline engine all produce the same
``openai.types.responses`` event objects, so the turn loop cannot tell them
apart. Consumers must dispatch on ``event.type``, never on ``isinstance``
(the SDK casts unknown event types to the first union member).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from openai.types.responses import ResponseStreamEvent

from hitl_desktop.assistant.render import render_input
from hitl_desktop.core.turns import TurnItem


@dataclass(frozen=True, slots=True)
class TurnRequest:
    """One model call: instructions, the typed conversation, tools.

    ``history`` is the session's typed turn history (:mod:`hitl_desktop.core.turns`);
    engines that speak the Responses API read :attr:`input` (the one renderer),
    the offline engine reads the typed items. ``final_round``: the tool-call limit
    of this reply is reached, answer without tools (``tools`` is then empty too).
    """

    instructions: str
    history: Sequence[TurnItem]
    tools: list[dict[str, Any]]  # function tools, strict; providers add their search tool
    session_id: str
    customer_id: str | None = None
    metadata: dict[str, str] = field(default_factory=dict)
    final_round: bool = False

    @property
    def input(self) -> list[dict[str, Any]]:
        """The history as Responses input items (a fresh list each time)."""
        return render_input(self.history, final_round=self.final_round)


class ProviderError(Exception):
    """A provider failure the representative should see, with a stable code."""

    def __init__(self, code: str, message: str, *, retryable: bool = False) -> None:
        super().__init__(message)
        self.code = code  # e.g. "no_api_key", "auth", "rate_limited", "upstream", "stream_cut"
        self.message = message
        self.retryable = retryable


class Provider(Protocol):
    name: str  # "openai" | "compatible" | "offline"
    model: str | None
    is_ai: bool  # False for the offline engine: the UI says so plainly
    # an engine may declare ``reads_instructions = False`` (the offline one): the host
    # then leaves ``TurnRequest.instructions`` empty instead of building them each turn.
    # An engine that knows its whole response before it streams (the offline one) may
    # offer ``async def steps(request, window_s) -> list[assistant.steps.Step]``: the
    # response translated and cut into a few steps off the loop; the co-pilot then plays
    # those instead of ``stream`` (same updates, text merged within ``window_s``)

    def stream(self, request: TurnRequest) -> AsyncIterator[ResponseStreamEvent]:
        """Yield the events of one response; raise ProviderError on failure."""
        ...

    async def aclose(self) -> None: ...
