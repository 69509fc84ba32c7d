"""Planning: the next tool call for the customer's requests, or why there is none.

Each request walks its intent record's tools in order. A tool already run for
the request is skipped; the order is looked up before anything is done to it,
so proposals fit its real state and product ids come from the order. When a
request cannot go on, a :class:`Note` says why (a missing slot, a refusal by
policy, a sign-in needed), and the composer turns it into words.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from hitl_desktop.assistant.offline.history import Conversation
from hitl_desktop.assistant.offline.records import LOOKUP_INTENTS, RECORDS, VOUCHER_GUIDE
from hitl_desktop.assistant.offline.understanding import DAMAGE_WORDS, Request, Understanding
from hitl_desktop.core.catalog import Policy
from hitl_desktop.core.identity import is_not_verified
from hitl_desktop.knowledge.text import edit_distance_le

_CANCELLABLE = frozenset({"pending", "processing"})
_NOT_SENT = frozenset({"pending", "processing"})
_RECEIVED = frozenset({"delivered", "completed"})
#: the words of a complaint that says nothing about what went wrong
_COMPLAINT_FILLER_RE = re.compile(
    r"\b(?:i|i'd|i'm|id|im|we|would|want|wanna|like|to|make|file|lodge|raise|register|submit"
    r"|formal|a|an|official|complaint|complain|please|pls|can|could|you|help|me|with|hi|hello"
    r"|hey|how|do|about|this|that|it|need)\b"
)
#: "a refund for the shipping": the order's shipping cost is the amount
_SHIPPING_REFUND_RE = re.compile(
    r"\b(?:refund\w*|money back|back)\b.{0,30}\b(?:shipping|delivery|postage)\b(?! address)"
    # "refund the express fee": the express shipping is what was paid for
    r"|\b(?:refund\w*|money back|back)\b.{0,30}\bexpress (?:fee|charge|cost|shipping)\b"
    r"|\b(?:shipping|delivery|postage)(?: (?:cost|costs|fee|fees|charge|charges))?"
    r" (?:refunded|back)\b",
    re.I,
)


#: one unit of a line ("one pack of socks", "one of the pillows")
_ONE_OF_RE = re.compile(r"\bone (?:pack|pair|unit|piece|box|set|bottle|of (?:the|my))\b|\bsingle\b",
                        re.I)
#: half of the order's money ("half of what I paid back", "half the price")
_HALF_RE = re.compile(
    r"\bhalf (?:of )?(?:what i paid|the (?:price|amount|total|order|money)|my money)\b", re.I)
#: every product of the order ("both items", "all the items")
_ALL_ITEMS_RE = re.compile(
    r"\b(?:both (?:items|things|products)|all (?:the |of the )?(?:items|things|products)"
    r"|whole order|entire order)\b", re.I)
#: words that single out part of an order ("just the headphones", "keep the headphones",
#: "take it off the order")
_PART_RE = re.compile(
    r"\b(?:just|only|keep|without|except|remove|take (?:it|them|the \w+(?: \w+)?) off)\b", re.I)
_MINUS_SHIPPING_RE = re.compile(
    r"\b(?:minus|except|excluding|without|less|but not|apart from)\s+(?:the\s+)?"
    r"(?:shipping|delivery|postage)\b", re.I)
#: "send a password reset link to priya@example.com": an address the link cannot go to
_RESET_ELSEWHERE_RE = re.compile(
    r"\b(?:link|reset|password)\b(?:(?!\b(?:change|update|and|new|my email)\b)[^.!?]){0,40}?"
    r"\b(?:to|at|for)\s+[A-Za-z0-9._%+\-]+@[A-Za-z0-9.\-]+\.[A-Za-z]{2,}",
    re.I,
)


@dataclass(frozen=True, slots=True)
class Step:
    request: Request
    name: str
    arguments: dict[str, Any]


@dataclass(frozen=True, slots=True)
class Note:
    """Why a request stopped: ``kind`` is e.g. ask_order, not_cancellable, over_limit."""

    request: Request
    kind: str
    detail: str = ""


@dataclass(slots=True)
class Plan:
    step: Step | None
    notes: list[Note] = field(default_factory=list)


def _money(value: Any) -> float | None:
    try:
        return round(float(value), 2)
    except (TypeError, ValueError):
        return None


def _stem(word: str) -> str:
    for suf in ("ies", "es", "s"):
        if word.endswith(suf) and len(word) > len(suf) + 2:
            return word[: -len(suf)] + ("y" if suf == "ies" else "")
    return word


#: customers' short forms of product words ("the sox")
_ALIASES = MappingProxyType({"sox": "socks", "phones": "headphones", "cans": "headphones"})
_GENERIC = frozenset({"the", "and", "pack", "set", "one", "new", "bag", "wool", "smart", "1l"})


def match_products(text: str, items: Sequence[Mapping[str, Any]]) -> list[str]:
    """Product ids of the order whose name the customer used ("the socks")."""
    words = {
        _stem(_ALIASES.get(w, w)) for w in re.findall(r"[a-z0-9]+", text.lower()) if len(w) > 2
    }
    scored: list[tuple[int, str]] = []
    for item in items:
        name_words = {
            _stem(w)
            for w in re.findall(r"[a-z0-9]+", str(item.get("name", "")).lower())
            if len(w) > 2
        } - _GENERIC
        common = name_words & words
        fuzzy = {
            n
            for n in name_words - common
            for w in words
            if len(n) >= 5 and len(w) >= 5 and edit_distance_le(n, w, 1)
        }
        if common or fuzzy:
            scored.append((len(common) + len(fuzzy), str(item.get("product_id"))))
    if not scored:
        return []
    top = max(s for s, _ in scored)
    return [pid for s, pid in scored if s == top]


#: a product named by its price ("the cheaper one", "the more expensive item")
_CHEAPER_RE = re.compile(
    r"\b(?:cheaper|cheapest|less expensive|least expensive|lower priced)\b"
    r"|\bcheap (?:one|item|thing|product)\b")
_DEARER_RE = re.compile(
    r"\b(?:more expensive|most expensive|pricier|priciest|dearer|higher priced)\b"
    r"|(?<!less )(?<!least )\bexpensive (?:one|item|thing|product)\b")


def _unit_price(item: Mapping[str, Any]) -> float:
    price = _money(item.get("unit_price"))
    if price is not None:
        return price
    qty = item.get("quantity")
    count = qty if isinstance(qty, int) and qty > 0 else 1
    return (_money(item.get("line_total")) or 0.0) / count


def by_price(text: str, items: Sequence[Mapping[str, Any]]) -> list[str]:
    """The one product the customer names by its price ("the cheaper one"), if any."""
    low = text.lower()
    cheaper, dearer = bool(_CHEAPER_RE.search(low)), bool(_DEARER_RE.search(low))
    if cheaper == dearer or len(items) < 2:
        return []
    ranked = sorted(items, key=_unit_price)
    pick = ranked[0] if cheaper else ranked[-1]
    if sum(_unit_price(i) == _unit_price(pick) for i in items) > 1:
        return []  # two at the same price: ask which
    return [str(pick.get("product_id"))]


#: "keep the socks", "not the socks", "except the socks": products the request leaves out
_KEPT_RE = re.compile(
    r"\b(?:keep(?:ing)?|not|except(?: for)?|apart from|but not|other than)\s+(?:the\s+|my\s+)?"
    r"((?:[a-z0-9-]+\s+){0,2}[a-z0-9-]+)", re.I)


def kept_products(text: str, items: Sequence[Mapping[str, Any]]) -> set[str]:
    """Products a request leaves out: "keep the socks", "except the backpack"."""
    kept: set[str] = set()
    for m in _KEPT_RE.finditer(text):
        kept.update(match_products(m.group(1), items))
    return kept


def _without_kept(text: str, items: Sequence[Mapping[str, Any]], picked: list[str]) -> list[str]:
    """ "return the backpack and keep the socks": the socks are not part of the request;
    "money back for the socks, nice backpack btw": the request's own words say which;
    "everything except the backpack": all the others."""
    kept = kept_products(text, items)
    left = [p for p in picked if p not in kept]
    if kept and not left and _EVERY_RE.search(text):
        return [str(i.get("product_id")) for i in items if str(i.get("product_id")) not in kept]
    if kept and not left:
        return []  # only what is kept was named: ask
    if left and len(left) < len(picked):
        return left
    ask = _ASK_RE.search(text)  # the products from the ask on ("back for the socks please")
    if ask and not _ADDS_RE.search(text[: ask.start()]):  # not "the backpack as well"
        named = match_products(text[ask.start():], items)
        if named and len(named) < len(picked):
            return named
    return picked


_EVERY_RE = re.compile(r"\b(?:everything|all|the rest|both|whole|entire)\b", re.I)
_ADDS_RE = re.compile(r"\b(?:as well|too|also|plus)\b", re.I)
#: where a request starts ("...nice backpack btw... money back for the socks please")
_ASK_RE = re.compile(
    r"\b(?:money back|refund\w*|return|replace\w*|send (?:\w+ )?back)\b", re.I)


class Planner:
    """The plan for one turn (pure: reads the conversation and the catalog's policy)."""

    def __init__(self, conv: Conversation, und: Understanding, policy: Policy) -> None:
        self.conv = conv
        self.und = und
        self.policy = policy

    def plan(self) -> Plan:
        plan = Plan(None)
        blocked = self.conv.limit_reached or bool(self.conv.pending_decisions())
        for req in self.und.requests:
            out = self._walk(req)
            if isinstance(out, Note):
                plan.notes.append(out)
            elif (isinstance(out, Step) and plan.step is None and not blocked
                  and out.name in self.conv.tools):
                plan.step = out
        return plan

    # ------------------------------------------------------------------ walking

    def _called(self, req: Request, name: str, **match: Any) -> bool:
        since = -1 if name == "create_ticket" else req.since
        return any(
            r.name == name and all(r.arguments.get(k) == v for k, v in match.items())
            for r in self.conv.runs(since)
        )

    def _products(self, req: Request, items: list[Mapping[str, Any]]) -> list[str]:
        """The products the request names, else the ones named last in the conversation."""
        picked = match_products(req.product_words, items) or by_price(req.product_words, items)
        if picked:
            # "everything except the backpack" names the backpack: never what is picked
            return _without_kept(req.product_words, items, picked)
        for _, text in reversed(self.conv.customer_messages()):
            picked = match_products(text, items)
            if picked:
                return picked
        return []

    def _unverified(self, req: Request) -> bool:
        """A tool answered that the customer is not verified (sign-in first)."""
        return any(
            r.failed and isinstance(r.output, Mapping) and is_not_verified(r.output)
            for r in self.conv.runs(req.since)
        )

    def _walk(self, req: Request) -> Step | Note | None:
        rec = RECORDS[req.intent]
        if req.negated:
            return Note(req, "negated")
        if not rec.tools:
            return None
        if self.und.foreign and not (req.intent in LOOKUP_INTENTS and req.order_id):
            # read-only look-ups still run ("Wo ist meine Bestellung ORD1012?"); an action
            # understood only through the glossary is never proposed
            if not req.order_id or self.conv.order(req.order_id) is not None:
                return Note(req, "foreign")
            if self.conv.order_error(req.order_id, req.since) is None:
                return Step(req, "get_order", {"order_id": req.order_id})
            return Note(req, "foreign")
        cust = self.conv.customer_id
        if "customer" in rec.needs and (not cust or self._unverified(req)):
            return Note(req, "sign_in")
        if self.und.other_customer:
            return Note(req, "other_customer")
        if req.again:  # "yes" to "which one would you like me to cancel?": ask again
            return Note(req, "ask_again", req.again)
        tools = rec.tools
        if req.intent == "refund_status" and not req.order_id and req.question:
            return Note(req, "question")  # "when will I get my money back?"
        if req.question and req.intent not in LOOKUP_INTENTS:
            if not req.own_order:
                return Note(req, "question")
            tools = ("get_order",)  # "can ORD1008 still be cancelled?": look, then answer
        if (
            req.intent in LOOKUP_INTENTS
            and not req.order_id
            and (
                re.search(r"\bmean\w*\b|\bwhat if\b|\bwhat happens if\b", req.clause.lower())
                or (req.question and not re.search(r"\b(?:my|it|i)\b", req.clause.lower()))
            )
        ):
            return Note(req, "question")
        order: dict[str, Any] | None = None
        for tool in tools:
            if tool == "get_order":
                if req.order_id is None:
                    if "order" not in rec.needs:
                        continue
                    if (
                        not self._called(req, "get_order_history")
                        and self.conv.order_history() is None
                    ):
                        return Step(req, "get_order_history", {"user_id": cust})
                    return Note(req, "ask_order")
                error = self.conv.order_error(req.order_id, req.since)
                if error:
                    return Note(req, "order_error", error)
                order = self.conv.order(req.order_id)
                if order is None:
                    return Step(req, "get_order", {"order_id": req.order_id})
                continue
            out = self._tool(req, tool, order)
            if out is not None:
                return out
        if tools == ("get_order",) and req.question and order is not None:
            return Note(req, "answered_from_order")
        return None

    def _tool(self, req: Request, tool: str, order: dict[str, Any] | None) -> Step | Note | None:
        cust = self.conv.customer_id
        oid = req.order_id
        status = str(order.get("status", "")) if order else ""
        items = [i for i in (order or {}).get("items") or [] if isinstance(i, Mapping)]
        if tool == "get_order_history":
            return None if self._called(req, tool) else Step(req, tool, {"user_id": cust})
        if tool == "cancel_order":
            if self._called(req, tool, order_id=oid):
                return None
            if order is not None and not order.get("can_cancel", status in _CANCELLABLE):
                return Note(req, "not_cancellable", status)
            named = by_price(req.clause, items)  # "the cheaper item in ORD1001": one product
            if not named and _PART_RE.search(req.clause):
                named = match_products(req.clause, items)
            if named and len(named) < len(items):
                # "cancel the bottle from ORD1001 but keep the headphones": the tool cancels
                # whole orders only; proposing it would cancel the headphones too
                return Note(req, "partial_cancel", named[0])
            return Step(req, tool, {"order_id": oid})
        if tool == "create_return":
            if self._called(req, tool, order_id=oid):
                return None
            if order is not None and not order.get("returnable"):
                return Note(req, "not_returnable", status)
            open_items = [i for i in items if not i.get("returned")]
            picked = self._products(req, open_items)
            if not picked and (
                len(open_items) == 1
                or re.search(
                    r"\b(?:everything|all of it|all (?:the )?items|whole order|entire order"
                    r"|both)\b",
                    req.product_words.lower(),
                )
            ):
                kept = kept_products(req.product_words, open_items)
                picked = [str(i.get("product_id")) for i in open_items
                          if str(i.get("product_id")) not in kept]
            if not picked:
                return Note(req, "ask_product", "return")
            return Step(req, tool, {"order_id": oid, "product_ids": picked})
        if tool == "create_refund":
            return self._refund(req, order, status, items)
        if tool == "create_ticket":
            if req.intent == "bug":
                if self._called(req, tool, type="bug_reported"):
                    return None
                return Step(
                    req,
                    tool,
                    {
                        "user_id": cust,
                        "type": "bug_reported",
                        "details": req.clause[:500],
                        "order_id": oid or "N/A",
                    },
                )
            if self._called(req, tool, order_id=oid):
                return None
            if status in _NOT_SENT:
                return Note(req, "not_delivered", status)
            if req.intent == "replacement" and not req.reports_damage:
                return None
            details = req.clause  # "...the zipper broke on day one. I want a replacement.":
            if not DAMAGE_WORDS.search(details.lower()) and DAMAGE_WORDS.search(
                    self.und.norm):  # the damage, not the request, is what logistics needs
                details = self.und.text
            return Step(
                req,
                tool,
                {
                    "user_id": cust,
                    "type": "damaged_product",
                    "details": details.strip()[:500],
                    "order_id": oid,
                },
            )
        if tool == "send_replacement":
            if self._called(req, tool, order_id=oid):
                return None
            if status not in _RECEIVED:
                return Note(req, "not_delivered", status)
            picked = self._products(req, items)
            if not picked and len(items) == 1:
                picked = [str(items[0].get("product_id"))]
            if len(picked) != 1:
                return Note(req, "ask_product", "replacement")
            return Step(req, tool, {"product_id": picked[0], "order_id": oid})
        if tool == "reset_password":
            if self._called(req, tool):
                return None
            if _RESET_ELSEWHERE_RE.search(self.und.text):
                return Note(req, "reset_elsewhere")  # the link only goes to the address on file
            return Step(req, tool, {"user_id": cust})
        if tool == "update_info":
            change = req.profile
            if change is None or not change.value:
                return Note(req, "ask_value", change.field if change else "")
            info = {"field": change.field, "value": change.value}
            if self._called(req, tool, info=info):
                return None
            return Step(req, tool, {"user_id": cust, "info": info})
        if tool == "issue_voucher":
            if self._called(req, tool):
                return None
            low = req.clause.lower()
            why = f"{low} {self.und.norm}"  # the reason may be another sentence of the message
            if re.search(r"\b(?:code|use|apply|enter|redeem|works?|working|invalid|expired?)\b",
                         low) and not re.search(
                    r"\b(?:can i (?:get|have)|give me|i want|i deserve|compensat)", low):
                return Note(req, "question")
            if req.percent:
                return Note(req, "percent")
            amount = req.amount
            if not re.search(
                r"late|delay|damag|broke|defect|wrong|missing|lost|trouble|inconvenien|problem"
                r"|again|wait|took|weeks|hassle|forever|ages|taking|mistake|error", why):
                return Note(req, "question")  # a gesture needs a reason (vouchers procedure)
            if amount is None:
                key = "damaged" if re.search(r"damag|broke|defect", low) else "delay"
                amount = VOUCHER_GUIDE[key]
            if amount <= 0 or amount > self.policy.max_voucher:
                return Note(req, "over_voucher_limit", f"{self.policy.max_voucher:.2f}")
            return Step(req, tool, {"user_id": cust, "amount": amount, "reason": req.clause[:500]})
        if tool == "create_complaint":
            if self._called(req, tool):
                return None
            if not _COMPLAINT_FILLER_RE.sub(" ", req.clause.lower()).strip(" .!?,"):
                return Note(req, "question")  # "I want to file a complaint": about what? ask

            return Step(
                req,
                tool,
                {
                    "user_id": cust,
                    "type": req.complaint_type,
                    "details": req.clause[:500],
                    "order_id": oid or "N/A",
                },
            )
        return None

    def _refund(
        self,
        req: Request,
        order: dict[str, Any] | None,
        status: str,
        items: list[Mapping[str, Any]],
    ) -> Step | Note | None:
        oid = req.order_id
        if self._called(req, "create_refund", order_id=oid) or order is None:
            return None
        refundable = _money(order.get("refundable_amount"))
        if refundable is None:
            refundable = _money(order.get("amount_paid")) or 0.0
        if refundable <= 0:
            return Note(req, "nothing_to_refund")
        if status in _NOT_SENT:
            return Note(req, "cancel_instead", status)
        amount = req.amount
        if amount is None and req.full_amount:
            amount = refundable
        if amount is None and _MINUS_SHIPPING_RE.search(req.clause):
            # "refund ORD1015 minus the shipping": what was paid for the products
            amount = refundable - (_money(order.get("shipping_cost")) or 0.0)
        if amount is None and _SHIPPING_REFUND_RE.search(req.clause):
            amount = _money(order.get("shipping_cost")) or 0.0  # 0: free shipping, ask
        if amount is None and _HALF_RE.search(req.clause):
            amount = round(refundable / 2, 2)  # "half of what I paid back"
        if amount is None and len(items) > 1 and _ALL_ITEMS_RE.search(req.clause):
            amount = min(refundable, sum(_money(i.get("line_total")) or 0.0 for i in items))
        if amount is None:
            picked = self._products(req, items)
            if picked:
                one = bool(_ONE_OF_RE.search(req.clause))  # "one pack of socks": not both packs
                amount = sum(
                    (_unit_price(i) if one else _money(i.get("line_total")) or 0.0)
                    for i in items
                    if str(i.get("product_id")) in picked
                )
            elif len(items) > 1 or re.search(
                r"\b(?:partial|some|part|a bit)\b", req.clause.lower()
            ):
                return Note(req, "ask_amount")  # which item, or how much: the customer says
            else:
                amount = refundable
        amount = round(amount, 2)
        if amount <= 0:
            return Note(req, "ask_amount")
        if amount > refundable + 0.005:
            return Note(req, "over_paid", f"{refundable:.2f}")
        if amount > self.policy.max_refund:
            return Note(req, "over_limit", f"{self.policy.max_refund:.2f}")
        return Step(
            req, "create_refund", {"order_id": oid, "amount": amount, "reason": req.clause[:500]}
        )
