"""The offline assistant: drafts from the knowledge base, no AI model, no network.

It is the default engine when no API key is configured. It reads the typed
turn history (:mod:`hitl_desktop.core.turns`) the OpenAI path gets rendered,
understands the latest customer
message with plain rules (:mod:`offline_nlu`), searches the local index, asks
for the same tools a model would (the host decides what runs and what waits
for approval), and streams the same ``openai.types.responses`` events the real
API sends (checked against the recorded streams), so the turn loop, the
translator and the UI cannot tell it from a model. Replies only quote or
paraphrase article sections and tool results: it never invents facts.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import secrets
import time
from collections.abc import AsyncIterator, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, TypeVar

from openai.types.responses import (
    ResponseCompletedEvent,
    ResponseContentPartAddedEvent,
    ResponseContentPartDoneEvent,
    ResponseCreatedEvent,
    ResponseFileSearchCallCompletedEvent,
    ResponseFileSearchCallInProgressEvent,
    ResponseFileSearchCallSearchingEvent,
    ResponseFunctionCallArgumentsDeltaEvent,
    ResponseFunctionCallArgumentsDoneEvent,
    ResponseInProgressEvent,
    ResponseOutputItemAddedEvent,
    ResponseOutputItemDoneEvent,
    ResponseOutputTextAnnotationAddedEvent,
    ResponseStreamEvent,
    ResponseTextDeltaEvent,
    ResponseTextDoneEvent,
)
from pydantic import BaseModel

from hitl_desktop.assistant import offline_nlu as nlu
from hitl_desktop.assistant.base import ProviderError, TurnRequest
from hitl_desktop.config import Paths, Settings
from hitl_desktop.core.turns import (
    ApprovalOutcome,
    CustomerLine,
    SentReply,
    ToolCallItem,
    ToolOutputItem,
)
from hitl_desktop.knowledge.articles import split_sections
from hitl_desktop.knowledge.index import SearchHit

log = logging.getLogger(__name__)

MAX_REFUND = 500.0
MAX_VOUCHER = 50.0
DEFAULT_VOUCHER = {"missing": 10.0, "damaged": 15.0}  # kb/procedure-vouchers guide values

_CANCELLABLE = {"pending", "processing"}
_SENSITIVE_WORDS = {
    "cancel_order": "cancel order {order_id}",
    "reset_password": "send a password reset link to the email address on file",
    "send_replacement": "send a free replacement for {product} from order {order_id}",
    "create_refund": "refund ${amount} for order {order_id}",
    "issue_voucher": "issue a ${amount} voucher to your account",
    "create_return": "open a return for {products} from order {order_id}",
    "create_complaint": "record your complaint",
    "update_info": "update your {field} to {value}",
}
_TOOL_INTENT = {
    "cancel_order": "cancel",
    "reset_password": "password",
    "send_replacement": "replacement",
    "create_refund": "refund",
    "issue_voucher": "voucher",
    "create_return": "return",
    "create_complaint": "complaint",
    "update_info": "profile",
    "create_ticket": "damaged",
    "get_order": "tracking",
    "get_order_history": "order_history",
}
_FREE_TEXT = ("details", "reason")
_REP_TOPICS = frozenset({"human"})
#: What happens next, per action: the words that find it in the action's article.
_NEXT_QUERY = {
    "cancel_order": "after cancelling paid amount back original payment method 5-10 business days",
    "create_refund": "refund issued money reaches account 5-10 business days",
    "create_return": "prepaid return label number email refund",
    "send_replacement": "replacement ships standard delivery 3-5 business days no cost",
    "reset_password": "reset link email on file valid 1 hour",
    "issue_voucher": "voucher code sent email valid 12 months",
    "create_complaint": "complaint reference email replies 2 business days",
}
#: After a look-up: the article words that explain the order's status.
_STATUS_QUERY = {
    "pending": "pending can still be cancelled",
    "processing": "processing packing can still be cancelled",
    "shipped": "shipped on its way carrier tracking number",
    "delivered": "delivered returns possible 30 days",
    "completed": "completed closed",
    "cancelled": "cancelled refunded money returned",
    "refunded": "refunded money returned 5-10 business days",
}
#: Why an action is not possible -> the words of the article's alternative.
_REFUSED_QUERY = {
    "window": "30 days return window after warranty",
    "shipped": "shipped order cannot be cancelled return refuse parcel",
    "delivered": "delivered cannot be cancelled return 30 days",
    "cancelled": "cancelled refunded cannot",
}  # answered from a representatives' (kb/) article
#: Words every shop conversation uses; they say nothing about the topic.
_GENERIC_RE = re.compile(
    r"\b(?:ORD[\s#-]?\d{4}|#?\d{4}|orders?|items?|products?|northwind|goods|stuff|things?)\b",
    re.I,
)


class SearchIndex(Protocol):
    """What the offline engine needs of :class:`~hitl_desktop.knowledge.index.KnowledgeIndex`."""

    def search(self, query: str, limit: int = 5, kind: str | None = None) -> list[SearchHit]: ...


# ----------------------------------------------------------------------------- context


@dataclass(slots=True)
class Call:
    """A function call in the conversation and its output (parsed), if any."""

    call_id: str
    name: str
    arguments: dict[str, Any]
    output: Any = None
    answered: bool = False


@dataclass(slots=True)
class Outcome:
    """What a representative decided about a proposed action (from the typed history)."""

    tool: str
    decision: str  # approved | failed | rejected | expired
    arguments: dict[str, Any] = field(default_factory=dict)
    result: Any = None
    reason: str = ""


@dataclass(slots=True)
class Context:
    """The conversation as the engine needs it."""

    customer_id: str | None
    latest: str
    earlier_order_ids: list[str]
    calls_since: list[Call]  # function calls after the latest customer message
    orders: dict[str, dict[str, Any]]  # get_order outputs, by order id
    history: list[dict[str, Any]] | None  # the latest get_order_history output
    outcomes: list[Outcome]  # approval decisions not yet answered by an assistant message
    tools: set[str]
    limit_reached: bool


#: An approval's final state -> the engine's decision word.
_DECISION = {"executed": "approved", "failed": "failed", "rejected": "rejected",
             "expired": "expired", "cancelled": "expired"}


def outcome_of(item: ApprovalOutcome) -> Outcome:
    """A typed approval outcome as the engine's :class:`Outcome`."""
    result: Any = item.result
    if item.state == "failed" and not result:
        result = {"ok": False, "error": item.error or "the system did not accept it"}
    return Outcome(tool=item.tool, decision=_DECISION[item.state],
                   arguments=dict(item.arguments), result=result, reason=item.reason or "")


def build_context(request: TurnRequest) -> Context:
    """Split the typed history into the latest message, earlier facts and tool traffic."""
    items = list(request.history)
    lines = [(n, i.text) for n, i in enumerate(items) if isinstance(i, CustomerLine)]
    last_user, latest = lines[-1] if lines else (-1, "")
    earlier_ids: list[str] = []
    calls: dict[str, Call] = {}
    order: list[str] = []
    orders: dict[str, dict[str, Any]] = {}
    history: list[dict[str, Any]] | None = None
    outcomes: list[Outcome] = []
    for n, item in enumerate(items):
        if isinstance(item, CustomerLine) and n != last_user:
            earlier_ids += nlu.order_ids_in(item.text)
        elif isinstance(item, ToolCallItem):
            call = Call(item.call_id, item.name, dict(item.arguments))
            oid = call.arguments.get("order_id")
            if isinstance(oid, str) and oid.upper().startswith("ORD"):
                earlier_ids.append(oid.upper())
            if n > last_user:
                calls[call.call_id] = call
                order.append(call.call_id)
        elif isinstance(item, ToolOutputItem):
            data = item.output
            if item.call_id in calls:
                calls[item.call_id].output, calls[item.call_id].answered = data, True
            o = data.get("order")
            if isinstance(o, Mapping) and isinstance(o.get("order_id"), str):
                orders[str(o["order_id"])] = dict(o)
            if isinstance(data.get("orders"), list):
                history = [dict(x) for x in data["orders"] if isinstance(x, Mapping)]
        elif isinstance(item, SentReply):
            outcomes = []  # already answered
        elif isinstance(item, ApprovalOutcome) and n > last_user:
            outcomes.append(outcome_of(item))
    tools = {
        str(t.get("name"))
        for t in request.tools
        if isinstance(t, Mapping) and t.get("type", "function") == "function" and t.get("name")
    }
    return Context(
        customer_id=request.customer_id,
        latest=latest,
        earlier_order_ids=earlier_ids,
        calls_since=[calls[c] for c in order],
        orders=orders,
        history=history,
        outcomes=outcomes,
        tools=tools,
        limit_reached=request.final_round or not tools,
    )


# ----------------------------------------------------------------------------- planning


@dataclass(slots=True)
class Step:
    """A tool the engine wants to call for one intent."""

    intent: str
    name: str
    arguments: dict[str, Any]


@dataclass(slots=True)
class Need:
    """Why an intent got no tool call (drives the reply): e.g. "order_id", "value"."""

    intent: str
    what: str
    detail: str = ""


@dataclass(slots=True)
class Plan:
    """One response: what was searched and found, then a tool call or a reply."""

    queries: list[str]
    hits: list[SearchHit]
    call: Step | None
    text: str = ""
    citations: list[tuple[int, SearchHit]] = field(default_factory=list)
    intents: list[str] = field(default_factory=list)


def _is_question(clause: str) -> bool:
    norm = nlu.normalize(clause)
    if nlu.order_ids_in(clause):
        return False
    q = bool(nlu._QUESTION_RE.search(norm)) and not nlu._REQUEST_RE.search(norm)
    if re.search(r"\b(?:can|could|would|will) you\b", norm):
        return False
    if re.search(r"\b(?:can|could|may) i (?:get|have|receive|please)\b", norm) and not re.search(
        r"\bhow\b", norm
    ):
        return False
    return q


def _details(text: str) -> str:
    text = re.sub(r"\s+", " ", text).strip()
    return text[:500]


def _money(value: Any) -> float | None:
    try:
        return round(float(value), 2)
    except (TypeError, ValueError):
        return None


class _Planner:
    """Decides the next tool call for the latest customer message."""

    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx
        self.und = nlu.understand(ctx.latest, earlier_order_ids=ctx.earlier_order_ids)
        self.needs: list[Need] = []
        self.topics: dict[str, str] = {}  # intent -> the words its article was searched with

    def order_for(self, intent: str) -> str | None:
        seg = self.und.segments.get(intent, "")
        ids = nlu.order_ids_in(seg) if seg else []
        if ids:
            return ids[0]
        own = nlu.order_ids_in(self.ctx.latest)
        if own:
            return own[0] if len(own) == 1 or intent not in self.und.segments else own[-1]
        return self.ctx.earlier_order_ids[-1] if self.ctx.earlier_order_ids else None

    def products_for(self, intent: str, oid: str) -> tuple[list[str], dict[str, str]] | None:
        order = self.ctx.orders.get(oid)
        if order is None:
            return None
        items = [i for i in order.get("items") or [] if isinstance(i, Mapping)]
        names = {str(i.get("product_id")): str(i.get("name") or "") for i in items}
        seg = self.und.segments.get(intent) or self.ctx.latest
        picked = [p for p in self.und.product_ids if p in names]
        if not picked:
            picked = nlu.match_products(seg, names) or nlu.match_products(self.ctx.latest, names)
        return picked, names

    def question(self, intent: str) -> bool:
        clause = self.und.segments.get(intent) or self.ctx.latest
        if not _is_question(clause):
            return False
        # "can I send back the socks?" about an order named earlier is a request
        return not (
            self.ctx.earlier_order_ids
            and re.match(r"^(?:so |ok |okay )?(?:can|could|may) i\b", nlu.normalize(clause))
        )

    def steps(self) -> list[Step]:
        """Every tool call the latest message calls for, in the customer's order."""
        out: list[Step] = []
        for intent in self.und.intents:
            out += self._steps_for(intent)
        return out

    def _history(self, intent: str) -> list[Step]:
        if self.ctx.history is not None and any(
            c.name == "get_order_history" for c in self.ctx.calls_since
        ):
            self.needs.append(Need(intent, "order_id"))
            return []
        if not self.ctx.customer_id:
            self.needs.append(Need(intent, "order_id"))
            return []
        self.needs.append(Need(intent, "order_id"))
        return [Step(intent, "get_order_history", {"user_id": self.ctx.customer_id})]

    def _lookup(self, intent: str, oid: str) -> list[Step]:
        return [Step(intent, "get_order", {"order_id": oid})]

    def _steps_for(self, intent: str) -> list[Step]:
        cust = self.ctx.customer_id
        u = self.und
        if intent in (
            "cancel",
            "return",
            "refund",
            "replacement",
            "damaged",
            "missing",
            "tracking",
        ):
            oid = self.order_for(intent)
            if (
                intent in ("tracking", "missing")
                and oid
                and (
                    nlu.order_ids_in(self.ctx.latest)
                    or re.search(r"\b(?:it|my order|the order)\b", u.normalized)
                )
            ):
                return self._lookup(intent, oid)
            if self.question(intent) and not nlu.order_ids_in(self.und.segments.get(intent, "")):
                if (
                    intent in ("tracking", "missing")
                    and re.search(r"\bmy\b", u.normalized)
                    and not re.search(r"\bmean\w*\b", u.normalized)
                ):
                    return self._history(intent) if not oid else self._lookup(intent, oid)
                self.needs.append(Need(intent, "info"))
                return []
            if not oid:
                return self._history(intent)
            order = self.ctx.orders.get(oid)
            if intent == "cancel":
                if order is not None and order.get("status") not in _CANCELLABLE:
                    self.needs.append(Need(intent, "not_allowed", str(order.get("status"))))
                    return []
                return [Step(intent, "cancel_order", {"order_id": oid})]
            if intent in ("tracking", "missing"):
                return self._lookup(intent, oid)  # a named order: always look it up
            if intent == "damaged":
                if not cust:
                    return self._lookup(intent, oid)
                return [
                    Step(
                        intent,
                        "create_ticket",
                        {
                            "user_id": cust,
                            "type": "damaged_product",
                            "details": _details(self.ctx.latest),
                            "order_id": oid,
                        },
                    )
                ]
            if intent == "refund" and u.amounts:
                return [
                    Step(
                        intent,
                        "create_refund",
                        {
                            "order_id": oid,
                            "amount": u.amounts[0],
                            "reason": _details(self.ctx.latest),
                        },
                    )
                ]
            found = self.products_for(intent, oid)
            if found is None:
                return self._lookup(intent, oid)
            picked, names = found
            assert order is not None
            if intent == "refund":
                refundable = _money(order.get("refundable_amount"))
                if refundable is None:
                    refundable = _money(order.get("amount_paid")) or 0.0
                amount = refundable
                if picked:
                    lines = [
                        _money(i.get("line_total"))
                        for i in order.get("items") or []
                        if isinstance(i, Mapping) and i.get("product_id") in picked
                    ]
                    amount = min(refundable, sum(x for x in lines if x is not None))
                amount = round(min(amount, MAX_REFUND), 2)
                if amount <= 0:
                    self.needs.append(Need(intent, "not_allowed", "nothing left to refund"))
                    return []
                return [
                    Step(
                        intent,
                        "create_refund",
                        {"order_id": oid, "amount": amount, "reason": _details(self.ctx.latest)},
                    )
                ]
            status = str(order.get("status", ""))
            if status != "delivered":
                self.needs.append(Need(intent, "not_allowed", status))
                return []
            if intent == "return":
                if order.get("returnable") is False or order.get("can_return") is False:
                    self.needs.append(Need(intent, "not_allowed", "window"))
                    return []
                open_items = [
                    str(i.get("product_id"))
                    for i in order.get("items") or []
                    if isinstance(i, Mapping) and not i.get("returned")
                ]
                if not picked and (u.wants_all or len(open_items) == 1):
                    picked = open_items
                if not picked:
                    self.needs.append(Need(intent, "product", ", ".join(names.values())))
                    return []
                return [Step(intent, "create_return", {"order_id": oid, "product_ids": picked})]
            # replacement
            if not picked and len(names) == 1:
                picked = list(names)
            if len(picked) != 1:
                self.needs.append(Need(intent, "product", ", ".join(names.values())))
                return []
            return [Step(intent, "send_replacement", {"product_id": picked[0], "order_id": oid})]
        if intent == "order_history":
            if not cust:
                return []
            return [Step(intent, "get_order_history", {"user_id": cust})]
        if intent == "account_recovery":
            norm = u.normalized
            if cust and re.search(
                r"\b(?:hacked|compromised|someone else|somebody else|(?:someone|somebody) "
                r"(?:logged|got|broke))\b",
                norm,
            ):
                # kb/procedure-account-security: reset the password right away
                return [Step(intent, "reset_password", {"user_id": cust})]
            self.needs.append(Need(intent, "info"))
            return []
        if intent == "password":
            seg = nlu.normalize(self.und.segments.get(intent) or self.ctx.latest)
            if re.search(
                r"\b(?:did not|didnt|not|never|have not|havent) (?:get|got|receive[d]?|gotten)\b"
                r"|\bno (?:reset )?(?:email|link)\b|\blink (?:expired|does not work|not working)\b",
                seg,
            ):
                self.needs.append(Need(intent, "info"))  # check spam, wait, then a new link
                return []
            if self.question(intent) and not re.search(
                r"\b(?:forgot|reset|cannot|locked|not able|unable)\b", seg
            ):
                self.needs.append(Need(intent, "info"))
                return []
            if re.search(r"\b(?:how (?:do|can|to)|where)\b", seg) and not re.search(
                r"\b(?:reset|forgot|cannot|locked|not able|unable)\b", seg
            ):
                self.needs.append(Need(intent, "info"))
                return []
            return [Step(intent, "reset_password", {"user_id": cust})] if cust else []
        if intent == "profile":
            change = u.profile
            if change is None or not change.value:
                if self.question(intent) and change is None:
                    self.needs.append(Need(intent, "info"))
                else:
                    self.needs.append(Need(intent, "value", change.field if change else ""))
                return []
            if not cust:
                return []
            return [
                Step(
                    intent,
                    "update_info",
                    {"user_id": cust, "info": {"field": change.field, "value": change.value}},
                )
            ]
        if intent == "voucher":
            seg = nlu.normalize(self.und.segments.get(intent) or self.ctx.latest)
            if re.search(
                r"\b(?:use|apply|enter|redeem|work|works|working|invalid|expired|valid|accepted)\b",
                seg,
            ) or (
                self.question(intent) and not re.search(r"\b(?:get|have|receive|deserve)\b", seg)
            ):
                self.needs.append(Need(intent, "info"))
                return []
            if not cust:
                return []
            given = u.amounts[0] if u.amounts else None
            if given is not None:
                amount = given
            else:
                basis = (
                    "damaged"
                    if re.search(r"\b(?:damaged|broken|defective)\b", u.normalized)
                    else "missing"
                )
                amount = DEFAULT_VOUCHER[basis]
            amount = round(min(max(amount, 0.01), MAX_VOUCHER), 2)
            return [
                Step(
                    intent,
                    "issue_voucher",
                    {"user_id": cust, "amount": amount, "reason": _details(self.ctx.latest)},
                )
            ]
        if intent == "complaint":
            if self.question(intent):
                self.needs.append(Need(intent, "info"))
                return []
            if not cust:
                return []
            oid = self.order_for(intent)
            return [
                Step(
                    intent,
                    "create_complaint",
                    {
                        "user_id": cust,
                        "type": u.complaint_type,
                        "details": _details(self.ctx.latest),
                        "order_id": oid or "N/A",
                    },
                )
            ]
        if intent == "bug":
            if not cust:
                return []
            bug_ids = nlu.order_ids_in(self.ctx.latest)
            return [
                Step(
                    intent,
                    "create_ticket",
                    {
                        "user_id": cust,
                        "type": "bug_reported",
                        "details": _details(self.ctx.latest),
                        "order_id": bug_ids[0] if bug_ids else "N/A",
                    },
                )
            ]
        return []


def _same_call(step: Step, call: Call) -> bool:
    if step.name != call.name:
        return False
    a = {k: v for k, v in step.arguments.items() if k not in _FREE_TEXT}
    b = {k: v for k, v in call.arguments.items() if k not in _FREE_TEXT}
    return (
        a == b
        or step.name in ("get_order_history", "reset_password")
        or (
            step.name in ("create_ticket", "create_complaint", "issue_voucher", "create_refund")
            and a.get("order_id") == b.get("order_id")
        )
    )


def next_step(ctx: Context, planner: _Planner) -> Step | None:
    """The first wanted tool call not yet made since the customer's message."""
    if ctx.limit_reached or ctx.outcomes:
        return None
    for step in planner.steps():
        if step.name not in ctx.tools:
            continue
        if any(_same_call(step, c) for c in ctx.calls_since):
            continue
        return step
    return None


# ----------------------------------------------------------------------------- text


_SENT_RE = re.compile(r"(?<=[.!?])\s+(?=[A-Z0-9\"(])")


def markdown_sentences(markdown: str) -> list[str]:
    """Plain-text sentences and list items of a Markdown section."""
    out: list[str] = []
    header: list[str] | None = None
    for raw in markdown.splitlines():
        line = raw.strip()
        if not line.startswith("|"):
            header = None
        if not line or re.fullmatch(r"\|?[\s:|-]+\|?", line) or line.startswith("#"):
            continue
        if line.startswith("|"):
            cells = [c.strip() for c in line.strip("|").split("|")]
            if header is None:  # a table's first row names its columns
                header = cells
                continue
            pairs = [
                f"{h} {c}" if h and h.lower() not in c.lower() else c
                for h, c in zip(header[1:], cells[1:], strict=False)
                if c
            ]
            line = f"{cells[0]}: " + "; ".join(pairs) + "."
        line = re.sub(r"^(?:[-*+]|\d+\.)\s+", "", line)
        line = re.sub(r"\*\*|__|`", "", line)
        line = re.sub(r"\[([^\]]+)\]\([^)]+\)", r"\1", line)
        for raw_sent in _SENT_RE.split(line):
            sent = raw_sent.strip().rstrip(";,").strip()
            if len(sent) > 2:
                out.append(sent if sent[-1] in ".!?:" else sent + ".")
    return out


def _units(text: str) -> list[tuple[str, int]]:
    """Sentences of a section, each with the number of the list/table block it is in
    (0 when it is running text)."""
    out: list[tuple[str, int]] = []
    block = 0
    lines: list[str] = []
    is_item = False

    def flush() -> None:
        if lines:
            out.extend(
                (sent, block if is_item else 0) for sent in markdown_sentences("\n".join(lines))
            )

    for line in text.splitlines():
        item = bool(re.match(r"^\s*(?:[-*+]|\d+\.|\|)\s*\S", line))
        if item != is_item or (not item and not line.strip()):
            flush()
            lines = []
            if item:
                block += 1
            is_item = item
        lines.append(line)
    flush()
    return out


# words too common to say what a sentence is about (built once: _terms runs per sentence)
_TERM_STOP: frozenset[str] = frozenset({
    "the", "a", "an", "and", "or", "to", "of", "for", "you", "your", "is", "it", "in", "on",
    "my", "i", "we", "can", "be", "with", "do", "how", "what", "our", "us", "me",
})


def _terms(text: str) -> set[str]:
    """Content words of ``text``, cut to 5 letters (a cheap stem: refund/refunds/refunded)."""
    low = text.lower().replace("how much", "cost price")
    words = re.findall(r"[a-z0-9$]+", low)
    return {w[:5] for w in words if w not in _TERM_STOP and len(w) > 1}


_HOW_RE = re.compile(r"\bhow (?:do|can|could|would|should) (?:i|we)\b|\bhow to\b|\bsteps?\b")


def best_sentences(
    hit: SearchHit, query: str, limit: int = 2, markdown: str | None = None
) -> list[str]:
    """The article sentences that best answer the query, in article order.

    Every sentence of the article competes: overlap with the query's words,
    its section heading's overlap, a bonus for the section the search hit,
    and a small one for concrete facts (numbers). "How do I ..." questions get
    the article's numbered steps when it has some.
    """
    q = _terms(query)
    if markdown is None:
        sections = [(hit.section, hit.text)]
    else:
        sections = [(sec.heading, sec.text) for sec in split_sections(markdown)]
    if _HOW_RE.search(query.lower()):
        for heading, text in sections:
            steps = [
                markdown_sentences(line)[0]
                for line in text.splitlines()
                if re.match(r"^\s*\d+\.\s+\S", line) and markdown_sentences(line)
            ]
            if len(steps) >= 3 and (q & _terms(heading + " " + text)):
                return [" ".join(f"{n}. {step}" for n, step in enumerate(steps, 1))]
    candidates: list[tuple[float, int, str]] = []
    groups: dict[int, int] = {}  # sentence order -> list/table block it belongs to
    order = 0
    block = 0
    for heading, text in sections:
        head_terms = _terms(heading)
        for sent, in_block in _units(text):
            order += 1
            if in_block:
                groups[order] = block + in_block
            if sent.endswith(":") or len(sent) < 4:
                continue
            overlap = len(q & _terms(sent))
            shared = len(q & head_terms)
            # a heading that is mostly the question ("Support hours") speaks for its section
            score = 2.0 * overlap + (2.5 if 2 * shared >= len(head_terms) else 1.0) * shared
            if heading == hit.section:
                score += 0.5
            if re.search(r"\d", sent):
                score += 0.5
            score -= 0.02 * order
            candidates.append((score, order, sent))
        block += 1000
    if not candidates:
        return markdown_sentences(hit.snippet)[:1]
    ranked = sorted(candidates, key=lambda c: -c[0])
    for cand in ranked[:2]:
        group = groups.get(cand[1])
        if group is None or cand[0] < 0.6 * ranked[0][0]:
            continue
        # the answer is an item of a short list: give the whole list
        siblings = [c for c in candidates if groups.get(c[1]) == group]
        if 2 <= len(siblings) <= 5:
            extra = [c for c in ranked[:2] if c is not cand and groups.get(c[1]) is None]
            chosen = siblings + [c for c in extra if c[0] >= 0.6 * ranked[0][0]]
            return [sent for _, _, sent in sorted(chosen, key=lambda c: c[1])]
    top = sorted(candidates, key=lambda c: -c[0])[:limit]
    strong = [c for c in top if c[0] >= max(1.0, 0.5 * top[0][0])] or top[:1]
    return [sent for _, _, sent in sorted(strong, key=lambda c: c[1])]


def _covers(hit: SearchHit, query: str) -> bool:
    """Does the article really talk about most of what the customer asked?"""
    words = _terms(query) - {"pleas", "thank", "hello", "hi", "want", "need", "know", "tell"}
    if not words:
        return False
    have = _terms(f"{hit.title} {hit.text} {hit.snippet}")
    return len(words & have) / len(words) >= 0.6


class _Writer:
    """Builds the reply text and remembers where citations go."""

    def __init__(self, article_text: Callable[[str], str | None] | None = None) -> None:
        self.article_text = article_text
        self.parts: list[str] = []
        self.citations: list[tuple[int, SearchHit]] = []
        self.cited: set[str] = set()

    @property
    def text(self) -> str:
        return "".join(self.parts)

    def para(self, text: str) -> None:
        text = text.strip()
        if not text:
            return
        if self.parts:
            self.parts.append("\n\n")
        self.parts.append(text)

    def cite(self, hit: SearchHit) -> None:
        """Cite ``hit`` for the paragraph just written (a paraphrase of it)."""
        self.citations.append((len(self.text), hit))
        self.cited.add(hit.article_id)

    def quote(self, hit: SearchHit, query: str, lead: str = "", limit: int = 2) -> bool:
        if hit.article_id in self.cited:
            return False
        markdown = self.article_text(hit.article_id) if self.article_text else None
        sents = best_sentences(hit, query, limit, markdown)
        if not sents:
            return False
        body = " ".join(sents)
        if lead:
            body = f"{lead} {body[0].lower() + body[1:] if body[:2] != body[:2].upper() else body}"
        self.para(body)
        self.citations.append((len(self.text), hit))
        self.cited.add(hit.article_id)
        return True


def _fmt_money(value: Any) -> str:
    amount = _money(value)
    return f"${amount:,.2f}" if amount is not None else str(value)


def _order_line(o: Mapping[str, Any]) -> str:
    products = o.get("products")
    what = ""
    if isinstance(products, list) and products:
        what = " — " + ", ".join(str(p) for p in products[:3])
        if len(products) > 3:
            what += f" and {len(products) - 3} more"
    date = f", ordered {o['ordered_on']}" if o.get("ordered_on") else ""
    total = f", {_fmt_money(o['total'])}" if o.get("total") is not None else ""
    return f"- {o.get('order_id')}: {o.get('status')}{date}{total}{what}"


def _order_status(o: Mapping[str, Any]) -> str:
    oid, status = o.get("order_id"), str(o.get("status", "unknown"))
    items = [
        str(i.get("name")) for i in o.get("items") or [] if isinstance(i, Mapping) and i.get("name")
    ]
    what = f" ({', '.join(items)})" if items else ""
    if status == "shipped":
        carrier = f" with {o['carrier']}" if o.get("carrier") else ""
        when = f" on {o['shipped_on']}" if o.get("shipped_on") else ""
        track = (
            f" Your tracking number is {o['tracking_number']}." if o.get("tracking_number") else ""
        )
        return f"Your order {oid}{what} shipped{carrier}{when}.{track}"
    if status in ("delivered", "completed"):
        when = f" on {o['delivered_on']}" if o.get("delivered_on") else ""
        return f"Your order {oid}{what} was delivered{when}."
    if status in ("pending", "processing"):
        return f"Your order {oid}{what} is {status} and has not shipped yet."
    if status == "cancelled":
        when = f" on {o['cancelled_on']}" if o.get("cancelled_on") else ""
        return f"Your order {oid}{what} was cancelled{when}."
    if status == "refunded":
        return f"Your order {oid}{what} has been refunded ({_fmt_money(o.get('amount_refunded'))})."
    return f"Your order {oid}{what} has the status {status}."


def _describe(step_name: str, args: Mapping[str, Any], ctx: Context) -> str:
    pattern = _SENSITIVE_WORDS.get(step_name, step_name.replace("_", " "))
    order = ctx.orders.get(str(args.get("order_id", "")), {})
    names = {
        str(i.get("product_id")): str(i.get("name"))
        for i in order.get("items") or []
        if isinstance(i, Mapping)
    }
    info = args.get("info") if isinstance(args.get("info"), Mapping) else {}
    assert isinstance(info, Mapping)
    pids = args.get("product_ids") or []
    amount = _money(args.get("amount"))
    values = {
        "order_id": args.get("order_id", ""),
        "product": names.get(str(args.get("product_id")), str(args.get("product_id", "the item"))),
        "products": ", ".join(names.get(str(p), str(p)) for p in pids) if pids else "the items",
        "amount": f"{amount:,.2f}" if amount is not None else "",
        "field": info.get("field", "details"),
        "value": info.get("value", ""),
    }
    try:
        text = pattern.format(**values)
    except (KeyError, IndexError):
        return pattern
    return re.sub(r"\$ | to $| for order $", " ", text).replace("  ", " ").strip()


def _result_message(result: Any) -> str:
    if isinstance(result, Mapping):
        msg = result.get("message") or result.get("error")
        if isinstance(msg, str):
            return msg
    return ""


# ----------------------------------------------------------------------------- the engine


class OfflineProvider:
    """Rule-based engine over the local knowledge base (``is_ai`` False)."""

    name = "offline"
    model: str | None = None
    is_ai = False

    def __init__(
        self,
        index: SearchIndex | None,
        tool_names: Iterable[str] | Callable[[], Iterable[str]] | None = None,
        *,
        delay_s: float = 0.0,
        max_results: int = 5,
        yield_every: int = 4,
    ) -> None:
        self.index = index
        if callable(tool_names):  # a catalog's bound ``names`` method
            tool_names = tool_names()
        self.tool_names = set(tool_names) if tool_names is not None else None
        self.delay_s = max(0.0, delay_s)
        self.max_results = max(1, max_results)
        self.yield_every = max(1, yield_every)
        self._closed = False
        self._owned_index: Any = None
        vocab = getattr(index, "vocabulary", None)
        if vocab:  # words of our articles are spelt right: never "correct" them
            nlu.learn_vocabulary(vocab)

    async def aclose(self) -> None:
        self._closed = True
        if self._owned_index is not None:
            self._owned_index.close()
            self._owned_index = None

    # -- planning (pure apart from the index look-up; runs in a worker thread)

    def _search(self, query: str) -> list[SearchHit]:
        if self.index is None or not query.strip():
            return []
        try:
            return list(self.index.search(query, limit=self.max_results))
        except Exception:  # the draft must still come: search is an aid
            log.exception("knowledge search failed for %r", query)
            return []

    @staticmethod
    def _topic_query(intent: str, clause: str, planner: _Planner) -> str:
        """The search words for an intent; a few depend on how it was asked."""
        norm = nlu.normalize(clause)
        if intent == "profile" and planner.und.profile is not None:
            return f"{nlu.INTENT_QUERY[intent]} {planner.und.profile.field}"
        if intent == "return":
            asked = re.search(r"\b(?:how (?:do|can|to|would)|steps?|label)\b", norm)
            if asked or not planner.question(intent):
                return "how to return a product steps"
            return "return policy 30 days window"
        return nlu.INTENT_QUERY[intent]

    def _fused(self, topic: str, clause: str) -> list[SearchHit]:
        """Rank by the intent's topic words and the customer's own words together.

        Each list's scores are scaled to its best hit and summed, so the topic
        decides the subject and the customer's words pick among close articles.
        """
        by_topic = self._search(topic)
        words = _GENERIC_RE.sub(" ", clause)
        by_words = self._search(words) if re.search(r"[A-Za-z]{3,}", words) else []
        best: dict[str, SearchHit] = {}
        total: dict[str, float] = {}
        for hits, weight in ((by_topic, 1.0), (by_words, 0.5)):
            top = max((h.score for h in hits), default=0.0)
            for h in hits:
                total[h.article_id] = total.get(h.article_id, 0.0) + weight * (
                    h.score / top if top > 0 else 0.0
                )
                if h.article_id not in best or (hits is by_words):
                    best[h.article_id] = h  # the customer's words choose the section
        ranked = sorted(best.values(), key=lambda h: -total[h.article_id])
        return [
            SearchHit(
                h.article_id,
                h.kind,
                h.slug,
                h.title,
                h.path,
                h.section,
                h.snippet,
                round(total[h.article_id] * 10.0, 4),
                h.text,
            )
            for h in ranked
        ]

    def _article_text(self, article_id: str) -> str | None:
        get = getattr(self.index, "get", None)
        if get is None:
            return None
        try:
            art = get(article_id)
        except Exception:
            log.exception("reading article %s failed", article_id)
            return None
        text = getattr(art, "markdown", None)
        return text if isinstance(text, str) else None

    def _pick(self, hits: Sequence[SearchHit]) -> SearchHit | None:
        """Prefer a customer-facing FAQ unless a rep article is clearly better."""
        if not hits:
            return None
        faq = next((h for h in hits if h.kind == "faq"), None)
        if faq is None or hits[0].kind == "faq":
            return hits[0]
        return hits[0] if hits[0].score > 1.6 * faq.score else faq

    def plan(self, request: TurnRequest) -> Plan:
        """Decide this response: searches, then one tool call or the reply text."""
        ctx = build_context(request)
        if self.tool_names is not None:
            ctx.tools &= self.tool_names
        planner = _Planner(ctx)
        und = planner.und
        intents = list(und.intents)
        for outcome in ctx.outcomes:
            intent = _TOOL_INTENT.get(outcome.tool)
            if intent and intent not in intents:
                intents.insert(0, intent)
        step = next_step(ctx, planner)
        queries: list[str] = []
        picks: list[tuple[str, SearchHit]] = []
        pool: list[SearchHit] = []
        searchable = [i for i in intents if i in nlu.INTENT_QUERY]
        if searchable:
            for intent in searchable[:3]:
                seg = und.segments.get(intent, ctx.latest if intent in und.intents else "")
                topic = self._topic_query(intent, seg or ctx.latest, planner)
                planner.topics[intent] = topic
                queries.append(f"{seg} {topic}".strip())
                hits = self._fused(topic, seg)
                pick = hits[0] if hits and intent in _REP_TOPICS else self._pick(hits)
                if pick is not None and all(p.article_id != pick.article_id for _, p in picks):
                    picks.append((intent, pick))
                pool += hits
        elif ctx.latest.strip() and not set(intents) & {"greeting", "thanks"}:
            queries.append(ctx.latest)
            hits = self._search(ctx.latest)
            pick = self._pick(hits)
            if pick is not None and _covers(pick, ctx.latest):
                picks.append(("", pick))
            pool += hits
        ordered: list[SearchHit] = [p for _, p in picks]
        for h in sorted(pool, key=lambda h: -h.score):
            if all(h.article_id != o.article_id for o in ordered):
                ordered.append(h)
        ordered = ordered[: self.max_results]
        plan = Plan(queries=queries, hits=ordered, call=step, intents=intents)
        if step is None:
            writer = _Writer(self._article_text)
            self._compose(writer, ctx, planner, picks)
            plan.text, plan.citations = writer.text, writer.citations
        return plan

    # -- composing the reply

    def _compose(
        self,
        w: _Writer,
        ctx: Context,
        planner: _Planner,
        picks: list[tuple[str, SearchHit]],
    ) -> None:
        und = planner.und
        by_intent = dict(picks)
        general = by_intent.get("")
        if ctx.outcomes:
            for outcome in ctx.outcomes:
                self._compose_outcome(w, ctx, outcome, by_intent)
            w.para("Is there anything else I can help you with?")
            return
        done = [c for c in ctx.calls_since if c.answered]
        if not und.intents and not done:
            if general is not None:
                w.para("Thanks for your message!")
                w.quote(general, ctx.latest, limit=3)
                w.para("Does that answer your question, or is there anything else I can help with?")
            elif "thanks" in und.intents or re.search(
                r"\b(?:thanks|thank you|thx)\b", und.normalized
            ):
                w.para("You're welcome! Is there anything else I can help you with?")
            else:
                w.para(
                    "Thanks for reaching out to Northwind Goods! Could you tell me a bit more "
                    "about what you need? If it's about an order, please include the order number "
                    "(for example ORD1001)."
                )
            return
        if und.intents == ["thanks"]:
            w.para("You're welcome! Is there anything else I can help you with?")
            return
        if und.intents == ["greeting"]:
            w.para("Hi, thanks for contacting Northwind Goods! How can I help you today?")
            return
        # results of the tools run for this message
        waiting = [c for c in done if _awaiting(c)]
        if waiting:  # one sentence for every action handed to the representative
            what = [_describe(c.name, c.arguments, ctx) for c in waiting]
            joined = what[0] if len(what) == 1 else ", ".join(what[:-1]) + " and to " + what[-1]
            w.para(
                f"Thanks for your patience. I've put in the request{'s' if len(what) > 1 else ''}"
                f" to {joined}, and I'm processing {'them' if len(what) > 1 else 'it'} now."
            )
        for call in done:
            self._compose_call(w, ctx, call, by_intent)
        # intents answered from the knowledge base, or needing more from the customer
        handled = {_TOOL_INTENT.get(c.name, "") for c in done} | {
            planner_intent(c, und.intents) for c in done
        }
        for intent in und.intents:
            if intent in ("greeting", "thanks"):
                continue
            hit = by_intent.get(intent)
            needs = [n for n in planner.needs if n.intent == intent]
            call_for = [c for c in done if planner_intent(c, und.intents) == intent]
            if call_for:
                continue
            if intent in handled and intent not in ("damaged",):
                continue
            self._compose_intent(w, ctx, planner, intent, hit, needs)
        if not w.parts:
            w.para("Let me look into that for you.")
        if not w.text.rstrip().endswith("?"):  # a draft that asks something ends there
            w.para(self._closing(und.intents, done))

    def _closing(self, intents: Sequence[str], done: Sequence[Call]) -> str:
        if any(
            isinstance(c.output, Mapping) and c.output.get("status") == "awaiting_approval"
            for c in done
        ):
            return "I'll get back to you as soon as it's done."
        return "Is there anything else I can help you with?"

    def _compose_call(
        self, w: _Writer, ctx: Context, call: Call, by_intent: Mapping[str, SearchHit]
    ) -> None:
        out = call.output
        intent = planner_intent(call, nlu.understand(ctx.latest).intents)
        hit = by_intent.get(intent)
        if isinstance(out, Mapping) and out.get("ok") is False:
            err = str(out.get("error") or "the request could not be completed")
            w.para(f"I'm sorry, I couldn't complete that: {err}")
            if hit is not None:
                w.quote(hit, ctx.latest + " " + err)
            return
        if _awaiting(call):  # announced together in _compose; say what happens next
            if hit is not None and call.name in _NEXT_QUERY:
                w.quote(hit, _NEXT_QUERY[call.name], limit=1)
            return
        if call.name == "get_order_history" and isinstance(out, Mapping):
            orders = [o for o in out.get("orders") or [] if isinstance(o, Mapping)]
            if not orders:
                w.para("I couldn't find any orders on your account.")
                return
            und = nlu.understand(ctx.latest)
            wanted = [i for i in und.intents if i != "order_history"]
            topic = nlu.INTENT_QUERY.get(wanted[0], "") if wanted else ""
            groups = {
                "cancel": (
                    _CANCELLABLE,
                    "These orders have not shipped yet and can still be cancelled:",
                    "Which one would you like me to cancel?",
                    "None of your orders can be cancelled any more: they have all shipped or "
                    "are closed.",
                ),
                "return": (
                    {"delivered"},
                    "Here are your delivered orders:",
                    "Which order (and which product) is this about?",
                    "None of your orders is delivered and open for a return.",
                ),
                "tracking": (
                    {"pending", "processing", "shipped"},
                    "Here are your orders that are on their way or being prepared:",
                    "Which one are you asking about?",
                    "",
                ),
            }
            family = {
                "replacement": "return",
                "refund": "return",
                "damaged": "return",
                "missing": "tracking",
            }
            key = family.get(wanted[0], wanted[0]) if wanted else ""
            if key in groups:
                statuses, lead, ask, none = groups[key]
                ok = [o for o in orders if o.get("status") in statuses]
                if ok or none:
                    if ok:
                        w.para(lead)
                        w.para("\n".join(_order_line(o) for o in ok))
                    else:
                        w.para(none)
                    if hit is not None:
                        w.quote(hit, topic, limit=1)
                    if ok:
                        w.para(ask)
                    return
            w.para(f"Here are your orders ({len(orders)}):")
            w.para("\n".join(_order_line(o) for o in orders))
            return
        if call.name == "get_order" and isinstance(out, Mapping):
            order = out.get("order")
            if isinstance(order, Mapping):
                w.para(_order_status(order))
                status = order.get("status")
                und = nlu.understand(ctx.latest)
                if "cancel" in und.intents and status not in _CANCELLABLE:
                    w.para(f"Because it is already {status}, it can no longer be cancelled.")
                if hit is not None:
                    query = f"{status} {_STATUS_QUERY.get(str(status), '')}"
                    if intent == "missing" and status in ("shipped", "pending", "processing"):
                        query = "late tracking not moved business days investigation carrier"
                    w.quote(hit, query, limit=1)
            return
        msg = _result_message(out)
        if msg:
            w.para(msg)
        if hit is not None:
            w.quote(hit, ctx.latest, limit=1)

    def _compose_intent(
        self,
        w: _Writer,
        ctx: Context,
        planner: _Planner,
        intent: str,
        hit: SearchHit | None,
        needs: Sequence[Need],
    ) -> None:
        seg = planner.und.segments.get(intent) or ctx.latest
        need = needs[0] if needs else None
        if intent == "human":  # kb/escalation is written for us, not for the customer
            w.para(
                "I understand. I'll pass your request on to a supervisor, who will contact you "
                "within one business day. In the meantime, I'm happy to help with anything I can."
            )
            if hit is not None:
                w.cite(hit)
            return
        if need and need.what == "not_allowed":
            oid = planner.order_for(intent)
            reason = need.detail
            if reason == "window":
                w.para(f"I checked order {oid}: it is outside the 30-day return window.")
            elif reason:
                w.para(f"I checked order {oid}: its status is {reason}, so I can't do that.")
        if hit is not None:
            query = seg + " " + planner.topics.get(intent, nlu.INTENT_QUERY.get(intent, ""))
            if need and need.what == "not_allowed":
                query = _REFUSED_QUERY.get(need.detail, query)
            w.quote(hit, query)
        ask = {
            "order_id": "Could you tell me the order number (for example ORD1001)?",
            "product": f"Which product is it about? The order contains: {need.detail}."
            if need
            else "",
            "value": f"What should the new {need.detail or 'value'} be?" if need else "",
        }
        if need and need.what in ask and ask[need.what]:
            if need.what != "order_id" or not ctx.customer_id:
                w.para(ask[need.what])
        elif intent in nlu.ACTION_INTENTS and need and need.what == "info":
            offer = {
                "cancel": "If you'd like me to cancel an order, just tell me its order number.",
                "return": "If you'd like to return something, tell me the order number and "
                "the product.",
                "refund": "If you're waiting for a refund, send me the order number and "
                "I'll check it.",
                "replacement": "If an item arrived damaged or wrong, send me the order number and "
                "the product, and I'll arrange a replacement.",
                "password": "I can also send you a password reset link if you like.",
                "profile": "Tell me which detail to change and the new value, and I'll update it.",
                "voucher": "If a code doesn't work, send it to me and I'll check it.",
                "complaint": "Tell me what went wrong (and the order number) and I'll record it.",
            }.get(intent)
            if offer:
                w.para(offer)
        if hit is None and not needs:
            w.para("Let me check this with the team and get back to you.")

    def _compose_outcome(
        self, w: _Writer, ctx: Context, outcome: Outcome, by_intent: Mapping[str, SearchHit]
    ) -> None:
        intent = _TOOL_INTENT.get(outcome.tool, "")
        hit = by_intent.get(intent)
        what = _describe(outcome.tool, outcome.arguments, ctx)
        if outcome.decision == "approved":
            msg = _result_message(outcome.result)
            w.para(f"Good news! {msg}" if msg else f"Good news: I was able to {what}.")
            if hit is not None and outcome.tool in _NEXT_QUERY:
                w.quote(hit, _NEXT_QUERY[outcome.tool] + " " + msg, limit=1)
        elif outcome.decision == "failed":
            err = _result_message(outcome.result) or "the system did not accept it"
            w.para(f"I'm sorry, I wasn't able to {what}: {err}")
            if hit is not None:
                w.quote(hit, nlu.INTENT_QUERY.get(intent, "") + " " + err, limit=2)
        elif outcome.decision == "rejected":
            reason = outcome.reason.rstrip(".")
            w.para(
                f"I'm sorry, but I can't {what} this time"
                + (f": {reason[0].lower() + reason[1:]}." if reason else ".")
            )
            if hit is not None:
                w.quote(hit, nlu.INTENT_QUERY.get(intent, "") + " " + reason, limit=1)
        else:
            w.para(  # expired: nobody decided in time, nothing was done
                f"I'm sorry, I wasn't able to {what} yet: the request was not processed in "
                "time. Would you like me to submit it again?"
            )

    # -- streaming

    async def stream(self, request: TurnRequest) -> AsyncIterator[ResponseStreamEvent]:
        """Yield one response's events, built from the SDK's own types."""
        if self._closed:
            raise ProviderError("closed", "the offline assistant was shut down")
        try:
            plan = await asyncio.to_thread(self.plan, request)
        except Exception as exc:
            log.exception("offline engine failed to plan a reply")
            raise ProviderError("offline", f"the offline assistant failed: {exc}") from exc
        async for event in _Emitter(self, request, plan).events():
            yield event


def make_offline_provider(paths: Paths, settings: Settings) -> OfflineProvider:
    """Build the engine from the app's settings (used by ``assistant.factory``).

    The index lives in the data dir; ``settings.knowledge_dir`` overrides the
    shipped knowledge base; ``settings.extra["offline_delay_ms"]`` paces the
    stream (a few ms reads naturally in the agent's editor).
    """
    from hitl_desktop.knowledge.index import open_index

    index = open_index(paths.data_dir, settings.knowledge_dir)
    extra = settings.extra if isinstance(settings.extra, Mapping) else {}
    delay_ms = float(extra.get("offline_delay_ms", 6.0))
    provider = OfflineProvider(
        index, delay_s=delay_ms / 1000.0, max_results=int(settings.max_search_results)
    )
    provider._owned_index = index
    return provider


def _awaiting(call: Call) -> bool:
    return isinstance(call.output, Mapping) and call.output.get("status") == "awaiting_approval"


_LOOKUP_INTENTS = ("missing", "tracking", "cancel", "return", "refund", "replacement", "damaged")


def planner_intent(call: Call, intents: Sequence[str] = ()) -> str:
    """The intent a tool call served (tickets: damaged product vs website bug; a
    look-up serves the first message intent that needed the order)."""
    if call.name in ("get_order", "get_order_history"):
        wanted = [i for i in intents if i in _LOOKUP_INTENTS]
        if wanted and not (call.name == "get_order_history" and "order_history" in intents):
            return wanted[0]
    if call.name == "create_ticket" and call.arguments.get("type") == "bug_reported":
        return "bug"
    return _TOOL_INTENT.get(call.name, "")


def _rid(prefix: str) -> str:
    return f"{prefix}_{secrets.token_hex(24)}"


def file_id_for(article_id: str) -> str:
    """A stable pseudo file id for a local article (file_search results / citations)."""
    return "file-local-" + article_id.replace("/", "--")


def filename_for(hit: SearchHit) -> str:
    return f"{hit.kind}__{hit.slug}.md"


def _score(raw: float) -> float:
    return round(min(0.99, max(0.01, raw / (raw + 8.0))), 4) if raw > 0 else 0.01


_Ev = TypeVar("_Ev", bound=BaseModel)


class _Emitter:
    """Turns a :class:`Plan` into a Responses event stream."""

    def __init__(self, provider: OfflineProvider, request: TurnRequest, plan: Plan) -> None:
        self.p = provider
        self.request = request
        self.plan = plan
        self.seq = 0
        self.response_id = _rid("resp")
        self.created_at = time.time()
        self.output: list[dict[str, Any]] = []
        self._since_yield = 0

    def _n(self) -> int:
        n = self.seq
        self.seq += 1
        return n

    def _response(self, status: str) -> dict[str, Any]:
        return {
            "id": self.response_id,
            "object": "response",
            "created_at": self.created_at,
            "status": status,
            "error": None,
            "incomplete_details": None,
            "instructions": None,
            "metadata": dict(self.request.metadata),
            "model": "offline",
            "output": list(self.output) if status != "in_progress" else [],
            "parallel_tool_calls": False,
            "temperature": None,
            "tool_choice": "auto",
            "tools": [],
            "top_p": None,
            "usage": None,
        }

    async def _pace(self) -> None:
        if self.p.delay_s > 0:
            await asyncio.sleep(self.p.delay_s)
            return
        self._since_yield += 1
        if self._since_yield >= self.p.yield_every:
            self._since_yield = 0
            await asyncio.sleep(0)

    def _event(self, cls: type[_Ev], kind: str, **fields: Any) -> _Ev:
        """One SDK event object, numbered in stream order (validated like a real one)."""
        return cls.model_validate({"type": kind, "sequence_number": self._n(), **fields})

    def _item_event(self, cls: type[_Ev], kind: str, idx: int, item: dict[str, Any]) -> _Ev:
        return self._event(cls, kind, output_index=idx, item=item)

    async def events(self) -> AsyncIterator[ResponseStreamEvent]:
        yield self._event(ResponseCreatedEvent, "response.created",
                          response=self._response("in_progress"))
        yield self._event(ResponseInProgressEvent, "response.in_progress",
                          response=self._response("in_progress"))
        if self.plan.queries:
            for event in self._file_search():
                yield event
            await asyncio.sleep(0)
        if self.plan.call is not None:
            async for event in self._function_call(self.plan.call):
                yield event
        else:
            async for event in self._message():
                yield event
        yield self._event(ResponseCompletedEvent, "response.completed",
                          response=self._response("completed"))

    def _file_search(self) -> list[ResponseStreamEvent]:
        idx = len(self.output)
        item_id = _rid("fs")
        added: dict[str, Any] = {
            "id": item_id,
            "type": "file_search_call",
            "status": "in_progress",
            "queries": [],
            "results": None,
        }
        results = [
            {
                "file_id": file_id_for(h.article_id),
                "filename": filename_for(h),
                "score": _score(h.score),
                "text": h.text,
                "attributes": {
                    "article_id": h.article_id,
                    "kind": h.kind,
                    "slug": h.slug,
                    "title": h.title,
                    "path": h.path,
                },
            }
            for h in self.plan.hits
        ]
        done = {
            "id": item_id,
            "type": "file_search_call",
            "status": "completed",
            "queries": list(self.plan.queries),
            "results": results,
        }
        self.output.append(done)
        base = {"output_index": idx, "item_id": item_id}
        return [
            self._item_event(ResponseOutputItemAddedEvent, "response.output_item.added", idx,
                             added),
            self._event(ResponseFileSearchCallInProgressEvent,
                        "response.file_search_call.in_progress", **base),
            self._event(ResponseFileSearchCallSearchingEvent,
                        "response.file_search_call.searching", **base),
            self._event(ResponseFileSearchCallCompletedEvent,
                        "response.file_search_call.completed", **base),
            self._item_event(ResponseOutputItemDoneEvent, "response.output_item.done", idx, done),
        ]

    async def _function_call(self, step: Step) -> AsyncIterator[ResponseStreamEvent]:
        idx = len(self.output)
        item_id = _rid("fc")
        call_id = "call_" + secrets.token_urlsafe(18).replace("-", "x").replace("_", "y")
        arguments = json.dumps(step.arguments, ensure_ascii=False, separators=(",", ":"))
        item = {
            "id": item_id,
            "type": "function_call",
            "status": "in_progress",
            "arguments": "",
            "call_id": call_id,
            "name": step.name,
        }
        yield self._item_event(ResponseOutputItemAddedEvent, "response.output_item.added", idx,
                               item)
        for chunk in re.findall(r'"[^"]{0,12}|[^"]{1,12}', arguments):
            yield self._event(ResponseFunctionCallArgumentsDeltaEvent,
                              "response.function_call_arguments.delta",
                              item_id=item_id, output_index=idx, delta=chunk)
            await self._pace()
        yield self._event(ResponseFunctionCallArgumentsDoneEvent,
                          "response.function_call_arguments.done",
                          item_id=item_id, output_index=idx, name=step.name, arguments=arguments)
        done = {**item, "status": "completed", "arguments": arguments}
        self.output.append(done)
        yield self._item_event(ResponseOutputItemDoneEvent, "response.output_item.done", idx,
                               done)

    def _annotation(
        self, base: dict[str, Any], annotations: list[dict[str, Any]], at: int, hit: SearchHit
    ) -> ResponseOutputTextAnnotationAddedEvent:
        """A file citation of ``hit`` at draft offset ``at`` (appended to ``annotations``)."""
        ann = {
            "type": "file_citation",
            "file_id": file_id_for(hit.article_id),
            "filename": filename_for(hit),
            "index": at,
        }
        event = self._event(ResponseOutputTextAnnotationAddedEvent,
                            "response.output_text.annotation.added", **base,
                            annotation_index=len(annotations), annotation=ann)
        annotations.append(ann)
        return event

    async def _message(self) -> AsyncIterator[ResponseStreamEvent]:
        idx = len(self.output)
        item_id = _rid("msg")
        text = self.plan.text
        base = {"item_id": item_id, "output_index": idx, "content_index": 0}
        yield self._item_event(ResponseOutputItemAddedEvent, "response.output_item.added", idx, {
            "id": item_id,
            "type": "message",
            "status": "in_progress",
            "content": [],
            "role": "assistant",
        })
        yield self._event(ResponseContentPartAddedEvent, "response.content_part.added", **base,
                          part={"type": "output_text", "annotations": [], "logprobs": [],
                                "text": ""})
        annotations: list[dict[str, Any]] = []
        pending = sorted(self.plan.citations, key=lambda c: c[0])
        pos = 0
        for delta in re.findall(r"\s*\S+", text) or ([text] if text else []):
            pos += len(delta)
            yield self._event(ResponseTextDeltaEvent, "response.output_text.delta", **base,
                              delta=delta, logprobs=[])
            while pending and pending[0][0] <= pos:
                at, hit = pending.pop(0)
                yield self._annotation(base, annotations, at, hit)
            await self._pace()
        tail = text[pos:]
        if tail:  # trailing whitespace the word splitter left out
            yield self._event(ResponseTextDeltaEvent, "response.output_text.delta", **base,
                              delta=tail, logprobs=[])
        for at, hit in pending:
            yield self._annotation(base, annotations, at, hit)
        part = {"type": "output_text", "annotations": annotations, "logprobs": [], "text": text}
        yield self._event(ResponseTextDoneEvent, "response.output_text.done", **base, text=text,
                          logprobs=[])
        yield self._event(ResponseContentPartDoneEvent, "response.content_part.done", **base,
                          part=part)
        done = {
            "id": item_id,
            "type": "message",
            "status": "completed",
            "content": [part],
            "role": "assistant",
        }
        self.output.append(done)
        yield self._item_event(ResponseOutputItemDoneEvent, "response.output_item.done", idx,
                               done)
