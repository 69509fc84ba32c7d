"""What the provider and translator tests share: a tool, a turn request, a filter."""

from __future__ import annotations

from typing import Any, TypeVar

from hitl_desktop.assistant.base import TurnRequest
from hitl_desktop.assistant.stream import Update
from hitl_desktop.core.turns import CustomerLine, history_from_responses

U = TypeVar("U")

GET_ORDER: dict[str, Any] = {
    "type": "function", "name": "get_order", "description": "Look up an order.",
    "strict": True,
    "parameters": {"type": "object", "properties": {"order_id": {"type": "string"}},
                   "required": ["order_id"], "additionalProperties": False},
}


def turn_request(
    question: str, *items: dict[str, Any], tools: list[dict[str, Any]] | None = None
) -> TurnRequest:
    """A co-pilot turn: ``items`` (Responses items, typed on the way in) as the history,
    else the customer asking ``question``."""
    return TurnRequest(instructions="You are the co-pilot.",
                       history=history_from_responses(list(items))
                       or [CustomerLine(text=question)],
                       tools=[GET_ORDER] if tools is None else tools, session_id="S1")


def of(updates: list[Update], kind: type[U]) -> list[U]:
    """The translator updates of one kind, in order."""
    return [u for u in updates if isinstance(u, kind)]
