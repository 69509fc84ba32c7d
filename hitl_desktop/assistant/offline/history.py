"""The conversation as typed items: what the engine reads instead of prose.

The host keeps the session as typed items (:mod:`hitl_desktop.core.turns`).
This module folds them into the engine's view once: customer and assistant
messages, tool runs with their outputs and what they mean, approval
decisions. The engine reads fields, never sentences (not even its own), with one
exception: a reply a representative sent is read for the offer a bare "yes"
accepts (:mod:`.offers`); an unsent draft is not in the history at all.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from hitl_desktop.core.turns import (
    ApprovalOutcome,
    CustomerLine,
    RepInstruction,
    SentReply,
    ToolCallItem,
    ToolOutputItem,
    active_instructions,
)


@dataclass(frozen=True, slots=True)
class Said:
    """A chat message: ``role`` is "customer" or "assistant"."""

    role: str
    text: str


@dataclass(slots=True)
class ToolRun:
    """A tool call in the conversation and its output (parsed JSON), if any."""

    call_id: str
    name: str
    arguments: dict[str, Any]
    output: Any = None
    answered: bool = False
    outcome: str = ""  # ok | error | awaiting_approval | not_possible

    @property
    def awaiting(self) -> bool:
        """Handed to a representative for approval: not done yet."""
        return self.outcome == "awaiting_approval"

    @property
    def failed(self) -> bool:
        """It failed, or would have (``not_possible``: no approval was created)."""
        return self.outcome in ("error", "not_possible") or (
            isinstance(self.output, Mapping) and self.output.get("ok") is False)


@dataclass(slots=True)
class Decision:
    """What a representative decided about a proposed action."""

    tool: str
    outcome: str  # approved | failed | rejected | expired | cancelled (session closed)
    arguments: dict[str, Any] = field(default_factory=dict)
    result: Any = None
    reason: str = ""


Turn = Said | ToolRun | Decision


@dataclass(slots=True)
class Conversation:
    """Typed turns in order, and what the engine looks up in them."""

    turns: list[Turn]
    customer_id: str | None
    tools: frozenset[str]
    limit_reached: bool
    # the representative's instructions in force (draft.steer): (position in turns, text)
    instructions: list[tuple[int, str]] = field(default_factory=list)

    @property
    def latest_index(self) -> int:
        """Position of the latest customer message (-1 when there is none)."""
        for n in range(len(self.turns) - 1, -1, -1):
            t = self.turns[n]
            if isinstance(t, Said) and t.role == "customer":
                return n
        return -1

    @property
    def latest(self) -> str:
        n = self.latest_index
        turn = self.turns[n] if n >= 0 else None
        return turn.text if isinstance(turn, Said) else ""

    def customer_messages(self) -> list[tuple[int, str]]:
        return [
            (n, t.text)
            for n, t in enumerate(self.turns)
            if isinstance(t, Said) and t.role == "customer"
        ]

    def runs(self, since: int = -1) -> list[ToolRun]:
        return [t for n, t in enumerate(self.turns) if isinstance(t, ToolRun) and n > since]

    def runs_since_latest(self) -> list[ToolRun]:
        return self.runs(self.latest_index)

    def pending_decisions(self) -> list[Decision]:
        """Decisions after the last assistant message (not yet told to the customer)."""
        out: list[Decision] = []
        for t in self.turns:
            if isinstance(t, Said) and t.role == "assistant":
                out = []
            elif isinstance(t, Decision):
                out.append(t)
        return out

    def order(self, order_id: str) -> dict[str, Any] | None:
        """The latest ``get_order`` result for ``order_id``, if still current (no action
        on that order was executed after it)."""
        found: dict[str, Any] | None = None
        for t in self.turns:
            if isinstance(t, ToolRun) and t.answered and isinstance(t.output, Mapping):
                o = t.output.get("order")
                if isinstance(o, Mapping) and o.get("order_id") == order_id:
                    found = dict(o)
            elif (
                isinstance(t, Decision)
                and t.outcome == "approved"
                and (t.arguments.get("order_id") == order_id)
            ):
                found = None
        return found

    def order_seen(self, order_id: str) -> dict[str, Any] | None:
        """The latest ``get_order`` result for ``order_id``, even if an action changed it
        since (product names do not change)."""
        found: dict[str, Any] | None = None
        for t in self.runs():
            o = t.output.get("order") if isinstance(t.output, Mapping) else None
            if isinstance(o, Mapping) and o.get("order_id") == order_id:
                found = dict(o)
        return found

    def order_error(self, order_id: str, since: int = -1) -> str | None:
        """The error of a ``get_order`` for ``order_id`` after ``since``, if it failed."""
        for t in self.runs(since):
            if t.name == "get_order" and t.arguments.get("order_id") == order_id and t.failed:
                assert isinstance(t.output, Mapping)
                return str(t.output.get("error") or "not found")
        return None

    def order_history(self) -> list[dict[str, Any]] | None:
        found: list[dict[str, Any]] | None = None
        for t in self.runs():
            if t.name == "get_order_history" and isinstance(t.output, Mapping):
                rows = t.output.get("orders")
                if isinstance(rows, list):
                    found = [dict(r) for r in rows if isinstance(r, Mapping)]
        return found

    def mentioned_order_ids(self, before: int) -> list[str]:
        """Order ids of tool calls before position ``before``, oldest first."""
        out: list[str] = []
        for t in self.turns[:before]:
            if isinstance(t, ToolRun):
                oid = t.arguments.get("order_id")
                if isinstance(oid, str) and oid.upper().startswith("ORD"):
                    out.append(oid.upper())
        return out


_STATES = {"executed": "approved", "failed": "failed", "rejected": "rejected",
           "expired": "expired", "cancelled": "cancelled"}


def read(items: Sequence[Any], tools: Sequence[Any], customer_id: str | None,
         final_round: bool = False) -> Conversation:
    """The engine's view of the host's typed turn history (:mod:`hitl_desktop.core.turns`)."""
    turns: list[Turn] = []
    runs: dict[str, ToolRun] = {}
    instructions: list[tuple[int, str]] = []
    in_force = {id(i) for i in active_instructions(list(items))}
    for item in items:
        if isinstance(item, RepInstruction):
            if id(item) in in_force:
                instructions.append((len(turns), item.text))
        elif isinstance(item, CustomerLine):
            turns.append(Said("customer", item.text))
        elif isinstance(item, SentReply):
            turns.append(Said("assistant", item.text))
        elif isinstance(item, ToolCallItem):
            run = ToolRun(item.call_id, item.name, dict(item.arguments))
            runs[run.call_id] = run
            turns.append(run)
        elif isinstance(item, ToolOutputItem):
            found = runs.get(item.call_id)
            if found is not None:
                found.output, found.answered = dict(item.output), True
                found.outcome = item.outcome
        elif isinstance(item, ApprovalOutcome):
            result: Any = item.result
            if result is None and item.error:
                result = {"ok": False, "error": item.error}
            turns.append(Decision(item.tool, _STATES.get(item.state, "expired"),
                                  dict(item.arguments), result, item.reason or ""))
    names = frozenset(
        str(t.get("name")) for t in tools
        if isinstance(t, Mapping) and t.get("type", "function") == "function" and t.get("name")
    )
    return Conversation(turns, customer_id, names, final_round or not names, instructions)
