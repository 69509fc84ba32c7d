"""The typed turn history: what happened in a session, as the assistant sees it.

The host keeps these items per session (``host/conversation.py``) instead of
prose: who said what, which tool ran with which output, what a representative
decided about a proposed action and why, who the customer is. Engines read
them directly (the offline engine) or through the one renderer
(:func:`hitl_desktop.assistant.render.render_input`, for OpenAI and compatible
servers). Nothing ever parses sentences back into facts: the facts are fields.

Pure data (pydantic, JSON round-trip), no I/O.
"""

from __future__ import annotations

import json
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter

ToolOutcome = Literal["ok", "error", "awaiting_approval", "not_possible"]
"""What a tool call's output means:

* ``ok``: an automatic tool ran and succeeded;
* ``error``: it ran (or its arguments were invalid) and failed;
* ``awaiting_approval``: a sensitive action was checked, would succeed, and
  waits for a representative: it has NOT happened;
* ``not_possible``: a sensitive action was checked and would fail (the shop's
  rules, another customer's order, no such order): no approval was created.
"""

ApprovalState = Literal["executed", "failed", "rejected", "expired", "cancelled"]
"""How a proposed action ended: only ``executed`` means it happened."""


class _Item(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class CustomerLine(_Item):
    """A message the customer sent (their words, verbatim)."""

    kind: Literal["customer"] = "customer"
    text: str
    message_id: str = ""


class SentReply(_Item):
    """What a representative actually sent, next to the draft it came from (if any)."""

    kind: Literal["reply"] = "reply"
    text: str
    message_id: str = ""
    agent: str = ""
    draft_id: str | None = None
    draft_text: str | None = None


class ToolCallItem(_Item):
    """The model (or engine) called a tool with these (parsed) arguments."""

    kind: Literal["tool_call"] = "tool_call"
    call_id: str
    name: str
    arguments: dict[str, Any] = Field(default_factory=dict)
    raw_arguments: str = "{}"  # what the model sent, byte for byte (replayed to it)
    # the server's item id, kept only when the response's reasoning travels with it
    # (store=false + encrypted reasoning: the call is replayed under the same id)
    item_id: str | None = None


class ToolOutputItem(_Item):
    """The host's answer to a tool call; ``outcome`` says what it means."""

    kind: Literal["tool_output"] = "tool_output"
    call_id: str
    name: str
    outcome: ToolOutcome
    output: dict[str, Any] = Field(default_factory=dict)
    approval_id: str | None = None  # set when outcome is awaiting_approval
    summary: str | None = None  # plain words of what approving would do (awaiting_approval)


class ApprovalOutcome(_Item):
    """A representative (or the clock, or a close) decided a proposed action."""

    kind: Literal["approval"] = "approval"
    approval_id: str
    call_id: str
    tool: str
    state: ApprovalState
    by: str | None = None  # the representative; None for expiry / host-side cancel
    reason: str | None = None  # why (rejections, cancellations, expiry)
    arguments: dict[str, Any] = Field(default_factory=dict)  # what ran / would have run
    proposed_arguments: dict[str, Any] = Field(default_factory=dict)
    edited: bool = False
    result: dict[str, Any] | None = None  # the tool's output when executed or failed
    error: str | None = None


class IdentityChange(_Item):
    """Who the session's customer is changed (e.g. verified, or a different account)."""

    kind: Literal["identity"] = "identity"
    customer_id: str | None
    verified: bool = False
    by: str | None = None
    note: str | None = None


class ModelOutput(_Item):
    """A completed output item of a model response kept for the next request verbatim:
    a reasoning item (with its encrypted content) or assistant text written before a
    tool call. Only the renderer reads ``item``; engines may ignore it."""

    kind: Literal["model_output"] = "model_output"
    item: dict[str, Any]


class RepInstruction(_Item):
    """A representative's instruction about the draft being written ("shorter", "offer a
    $10 voucher"), from ``draft.steer``. It is the representative's word, never the
    customer's: engines render it apart from customer text (a developer message for
    OpenAI) and nothing a customer writes ever becomes one. It applies to the drafts of
    the current turn only, accumulating with the turn's earlier instructions, until the
    next customer line, sent reply or approval decision (:func:`active_instructions`)."""

    kind: Literal["instruction"] = "instruction"
    text: str
    agent: str = ""
    replaces: str | None = None  # the draft it asks to change
    draft_text: str | None = None  # that draft's text (what "shorter" is relative to)
    turn_id: str | None = None  # the draft it started
    # the draft whose instructions still apply with it (a steered draft's turn id): a
    # representative who went back (Undo) to an earlier draft and steers that one drops
    # the instructions given after it; None: this is the reply's first instruction
    follows: str | None = None


TurnItem = Annotated[
    CustomerLine | SentReply | ToolCallItem | ToolOutputItem | ApprovalOutcome
    | IdentityChange | ModelOutput | RepInstruction,
    Field(discriminator="kind"),
]

_ADAPTER: TypeAdapter[TurnItem] = TypeAdapter(TurnItem)


def dump_item(item: TurnItem) -> str:
    """One item as compact JSON (the conversation store's format)."""
    return item.model_dump_json()


def load_item(raw: str | bytes | dict[str, Any]) -> TurnItem:
    """Parse one stored item (raises ``pydantic.ValidationError`` when it is not one)."""
    if isinstance(raw, dict):
        return _ADAPTER.validate_python(raw)
    return _ADAPTER.validate_json(raw)


def pending_actions(history: list[TurnItem]) -> dict[str, ToolOutputItem]:
    """Actions proposed for approval and not decided yet, by approval id."""
    pending: dict[str, ToolOutputItem] = {}
    for item in history:
        if isinstance(item, ToolOutputItem) and item.outcome == "awaiting_approval" \
                and item.approval_id:
            pending[item.approval_id] = item
        elif isinstance(item, ApprovalOutcome):
            pending.pop(item.approval_id, None)
    return pending


def since_last_customer_line(history: list[TurnItem]) -> list[TurnItem]:
    """The items after the customer's latest message (what this turn reacts to)."""
    for n in range(len(history) - 1, -1, -1):
        if isinstance(history[n], CustomerLine):
            return list(history[n + 1:])
    return list(history)


def reply_instructions(history: list[TurnItem]) -> list[RepInstruction]:
    """Every instruction given for the reply being drafted (after the latest customer
    line, sent reply or approval decision), oldest first, withdrawn ones included."""
    out: list[RepInstruction] = []
    for item in history:
        if isinstance(item, CustomerLine | SentReply | ApprovalOutcome):
            out = []
        elif isinstance(item, RepInstruction):
            out.append(item)
    return out


def active_instructions(history: list[TurnItem]) -> list[RepInstruction]:
    """The representative's instructions in force for the draft being written, oldest
    first: the latest one and those it follows (see :attr:`RepInstruction.follows`)."""
    given = reply_instructions(history)
    if not given:
        return []
    by_turn = {i.turn_id: i for i in given if i.turn_id}
    chain = [given[-1]]
    while len(chain) < len(given):
        before = by_turn.get(chain[-1].follows or "")
        if before is None or before in chain:
            break
        chain.append(before)
    return chain[::-1]


def from_responses_item(item: dict[str, Any]) -> TurnItem | None:
    """A Responses input item as a typed item (history written before the typed store,
    and tests that speak Responses items). Developer/system notes have no typed
    meaning and give None; unknown item types are kept verbatim as ModelOutput."""
    kind = item.get("type", "message")
    role = item.get("role")
    if kind == "message" and role in ("user", "assistant"):
        content = item.get("content")
        if isinstance(content, list):
            content = "".join(str(part.get("text", "")) for part in content
                              if isinstance(part, dict))
        text = str(content or "")
        return CustomerLine(text=text) if role == "user" else SentReply(text=text)
    if kind == "message":
        return None
    if kind == "function_call":
        raw = str(item.get("arguments") or "{}")
        try:
            parsed = json.loads(raw)
        except ValueError:
            parsed = None
        return ToolCallItem(call_id=str(item.get("call_id", "")), name=str(item.get("name", "")),
                            arguments=parsed if isinstance(parsed, dict) else {},
                            raw_arguments=raw)
    if kind == "function_call_output":
        raw_out = item.get("output")
        try:
            data = json.loads(raw_out) if isinstance(raw_out, str) else raw_out
        except ValueError:
            data = {"text": raw_out}
        output = data if isinstance(data, dict) else {"value": data}
        outcome: ToolOutcome = "ok"
        if output.get("status") == "awaiting_approval":
            outcome = "awaiting_approval"
        elif output.get("ok") is False:
            outcome = "error"
        return ToolOutputItem(call_id=str(item.get("call_id", "")),
                              name=str(item.get("name", "")), outcome=outcome, output=output,
                              approval_id=output.get("approval_id")
                              if outcome == "awaiting_approval" else None)
    return ModelOutput(item=dict(item))


def history_from_responses(items: list[dict[str, Any]]) -> list[TurnItem]:
    """:func:`from_responses_item` over a list, dropping what has no typed meaning."""
    out: list[TurnItem] = []
    names: dict[str, str] = {}
    for raw in items:
        item = from_responses_item(raw)
        if isinstance(item, ToolCallItem):
            names[item.call_id] = item.name
        elif isinstance(item, ToolOutputItem) and not item.name:
            item = item.model_copy(update={"name": names.get(item.call_id, "")})
        if item is not None:
            out.append(item)
    return out
