"""The draft a representative can send as-is: short, grounded, honest.

Facts come from tool results (order status, dates, amounts) and from the
cited article sections only; each is stated once, in one format. Actions
waiting for approval are "passed on to a colleague for confirmation", never
done. Nothing internal (customer ids, product ids, tool names, raw errors)
reaches a customer-facing sentence.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Mapping
from typing import Any

from hitl_desktop.assistant.offline import intents as rules
from hitl_desktop.assistant.offline import slots, texts
from hitl_desktop.assistant.offline.history import Conversation
from hitl_desktop.assistant.offline.orders import order_line, order_status
from hitl_desktop.assistant.offline.outcomes import NEXT_QUERY, write_outcomes
from hitl_desktop.assistant.offline.planner import Note, Plan
from hitl_desktop.assistant.offline.records import RECORDS
from hitl_desktop.assistant.offline.retrieval import Retrieval
from hitl_desktop.assistant.offline.understanding import Request, Understanding
from hitl_desktop.assistant.offline.writer import Writer
from hitl_desktop.core.catalog import Policy

#: a question in so many words (it ends with "?" or starts like one)
_ASKED_RE = re.compile(
    r"\?\s*$|^\s*(?:how|what|whats|what's|when|where|which|who|why|is|are|do|does|can|could)\b",
    re.I,
)

_TOOL_INTENT = {
    "cancel_order": "cancel",
    "create_refund": "refund",
    "create_return": "return",
    "send_replacement": "replacement",
    "reset_password": "password",
    "issue_voucher": "voucher",
    "create_complaint": "complaint",
    "update_info": "profile",
    "create_ticket": "damaged",
}
_SORRY = frozenset({"damaged", "damaged_refund", "wrong_item", "missing", "complaint"})
_STUCK_RE = re.compile(r"\b(?:not|has not|have not|hasn't|hasnt|no) (?:moved|updated|changed)\b"
                       r"|\bstuck\b")
_STATUS_QUERY = {
    "pending": "what the order statuses mean pending can still be cancelled",
    "processing": "what the order statuses mean processing can still be cancelled",
    "shipped": "tracking number enter carrier website",
    "delivered": "marked as delivered but not received",
    "cancelled": "cancelled refunded",
    "refunded": "how long a refund takes",
    "completed": "what the order statuses mean completed",
}
_HISTORY_FILTER = {
    "cancel": (
        {"pending", "processing"},
        "These orders haven't shipped yet and can still be cancelled:",
        "Which one would you like me to cancel?",
    ),
    "return": (
        {"delivered"},
        "Here are your delivered orders:",
        "Which order is it, and which product?",
    ),
    "tracking": (
        {"pending", "processing", "shipped"},
        "Here are your orders on their way or being prepared:",
        "Which one are you asking about?",
    ),
}
_FAMILY = {
    "replacement": "return",
    "refund": "return",
    "damaged": "return",
    "damaged_refund": "return",
    "wrong_item": "return",
    "missing": "tracking",
    "refund_status": "return",
}


#: an action's verb in "which one would you like me to ...?"
_VERB = {"cancel": "cancel", "return": "return", "refund": "refund", "replacement": "replace",
         "damaged_refund": "refund", "voucher": "send a voucher for"}


def _either(words: list[str]) -> str:
    return words[0] if len(words) == 1 else ", ".join(words[:-1]) + " or " + words[-1]


class Composer:
    def __init__(
        self,
        w: Writer,
        conv: Conversation,
        und: Understanding,
        plan: Plan,
        found: Retrieval,
        policy: Policy,
    ) -> None:
        self.w, self.conv, self.und, self.plan, self.found = w, conv, und, plan, found
        self.policy = policy
        self.tickets_told = False

    def hit(self, intent: str) -> Any:
        return self.found.picks.get(intent)

    def compose(self) -> None:
        w, und = self.w, self.und
        if self.conv.pending_decisions():
            write_outcomes(w, self.conv, self.found.picks, _TOOL_INTENT)
            if not w.asks():
                w.para(texts.ANYTHING_ELSE)
            return
        if rules.hazard(und.norm):  # a dangerous product: safety before anything else
            w.para(texts.SAFETY)
        if und.foreign:
            w.para(texts.ENGLISH_ONLY)
        if und.injection:
            w.para(texts.INJECTION)
        if und.other_customer:
            w.para(texts.OTHER_CUSTOMER)
        if not und.requests:
            self._no_request()
            return
        if any(r.intent in _SORRY and not r.question and not r.negated for r in und.requests) \
                and not und.foreign:
            w.para(texts.SORRY)
        self._pending()
        # each request its own note: "cancel ORD1011 and ORD1012" are two cancel requests, and
        # the shipped one's refusal is not the pending one's
        notes = {n.request: n for n in self.plan.notes}
        by_intent = {n.request.intent: n for n in self.plan.notes}
        counts = Counter(r.intent for r in und.requests)
        once = {i for i, n in counts.items() if n == 1}
        signed_out = False
        for req in und.requests:
            note = notes.get(req) or (by_intent.get(req.intent) if req.intent in once else None)
            if note is not None and note.kind == "sign_in":
                signed_out = True
                if req.question:
                    self._info(req, offer=False)
                continue
            self._request(req, note)
        if signed_out:
            w.para(texts.SIGN_IN)
        if not w.parts:
            w.para(texts.NOT_UNDERSTOOD)
        elif not w.asks():
            waiting = any(r.awaiting for r in self.conv.runs_since_latest())
            w.para(texts.ANYTHING_ELSE if not waiting else "")

    def _no_request(self) -> None:
        w, und = self.w, self.und
        if und.topics:  # "what about express?", "tell me more": the earlier topic
            for n, intent in enumerate(und.topics[:1]):
                rec = RECORDS[intent]
                w.quote(
                    self.hit(intent),
                    f"{und.text} {rec.question_topic}",
                    skip=1 if und.more and n == 0 else 0,
                    focus="" if und.more else und.text,
                )
        elif self.found.picks.get(""):
            w.quote(self.found.picks[""], und.text, focus=und.text)
        if not w.parts or (
            len(w.parts) == 1 and (und.injection or und.foreign or und.other_customer)
        ):
            if "thanks" in und.social:
                bye = re.search(
                    r"\b(?:that'?s all|that is all|that'?s everything|that is everything|bye"
                    r"|nothing else|all good)\b", und.norm
                )
                w.para(texts.GOODBYE if bye else texts.WELCOME)
                return
            if "greeting" in und.social:
                w.para(texts.GREETING)
                return
            if not (und.injection or und.other_customer):
                # a clear question the articles do not answer ("do you price match?") is
                # understood: say so instead of asking the customer to explain themselves
                w.para(texts.NO_ANSWER if _ASKED_RE.search(und.text) and len(und.norm.split()) >= 3
                       else texts.NOT_UNDERSTOOD)
                return
        if not w.asks() and not (und.injection and len(w.parts) == 1):
            w.para(texts.ANYTHING_ELSE)  # the refusal already offers help

    def _pending(self) -> None:
        """One statement for everything handed to a representative in this turn."""
        runs = self.conv.runs_since_latest()
        waiting = [r for r in runs if r.awaiting]
        if not waiting:
            return
        for t in runs:  # the damage was recorded before anything was proposed
            bug = t.arguments.get("type") == "bug_reported"
            if t.name == "create_ticket" and not t.failed and not bug:
                ref = t.output.get("ticket_id") if isinstance(t.output, Mapping) else None
                self.w.para(texts.DAMAGE_RECORDED.format(ref=f" in ticket {ref}" if ref else ""))
                self.tickets_told = True
        what = [
            texts.action(r.name, r.arguments, self._order(r.arguments.get("order_id")))
            for r in waiting
        ]
        if len(what) == 1:
            self.w.para(texts.PENDING_ONE.format(what=what[0]))
        else:
            self.w.para(
                texts.PENDING_MANY + "\n" + "\n".join(f"- {x[0].upper()}{x[1:]}" for x in what)
            )
        first = waiting[0]  # what happens once it's confirmed, from the article
        hit = self.hit(_TOOL_INTENT.get(first.name, ""))
        if first.name in texts.NEXT_STEP:
            self.w.para(texts.NEXT_STEP[first.name])
            if hit is not None and hit.kind == "faq":
                self.w.cite(hit)
        elif first.name in ("cancel_order", "create_refund"):
            self.w.quote(hit, NEXT_QUERY[first.name], max_sentences=2, lead="Once it's confirmed,")

    def _order(self, oid: Any) -> dict[str, Any] | None:
        return self.conv.order(oid) if isinstance(oid, str) else None

    def _request(self, req: Request, note: Note | None) -> None:
        rec = RECORDS[req.intent]
        runs = [
            r
            for r in self.conv.runs_since_latest()
            if r.name in rec.tools or r.name == "get_order_history"
        ]
        if note is not None:
            self._note(req, note)
            return
        if rec.reply == "ask":  # "a problem with my backpack": what happened?
            self.w.para(texts.WHAT_HAPPENED)
            return
        if rec.reply == "escalate":
            # "a supervisor will call you" only when a ticket or proposal of this turn backs it
            backed = any(
                r.awaiting or (r.name == "create_ticket" and not r.failed)
                for r in self.conv.runs_since_latest()
            )
            self.w.para(texts.ESCALATE if backed else texts.REVIEW)
            hit = self.hit(req.intent)
            if hit is not None:
                self.w.cite(hit)
            return
        if rec.reply == "status" and req.order_id:
            order = self.conv.order(req.order_id)
            if order is not None:
                self.w.para(order_status(order))
                status = str(order.get("status"))
                q = _STATUS_QUERY.get(status, "")
                if req.intent == "missing":
                    q = f"{req.clause} late lost parcel investigation carrier"
                elif status == "shipped" and _STUCK_RE.search(req.clause.lower()):
                    # "my tracking hasn't updated in 6 days": when we investigate, not how to track
                    q = "my tracking has not updated moved investigation carrier business days"
                self.w.quote(self.hit(req.intent), q, max_sentences=1)
                return
        if rec.reply == "list":
            self._history(req)
            return
        tickets = [r for r in runs if r.name == "create_ticket" and not r.failed and not r.awaiting]
        for t in tickets:
            ref = t.output.get("ticket_id") if isinstance(t.output, Mapping) else None
            if req.intent == "bug":
                self.w.para(
                    "Thanks for letting us know. I've reported the problem to our team"
                    f"{f' (ticket {ref})' if ref else ''}; they follow up by email within 1 "
                    "business day."
                )
                self.w.quote(self.hit(req.intent), "quick things to try first", max_sentences=3)
            elif not self.tickets_told:
                self.w.para(texts.DAMAGE_RECORDED.format(ref=f" in ticket {ref}" if ref else ""))
        if any(r.awaiting for r in runs) and req.intent == "account_takeover":
            self.w.quote(self.hit(req.intent), "someone else used my account", max_sentences=2)
        if any(r.awaiting for r in runs) or tickets:
            if req.intent in ("damaged",) and not any(r.awaiting for r in runs):
                self.w.quote(self.hit(req.intent), "your options replacement refund", drop="ticket")
                self.w.para("Would you prefer a free replacement or a refund?")
            return
        self._info(req, offer=rec.reply == "action")

    def _info(self, req: Request, *, offer: bool) -> None:
        rec = RECORDS[req.intent]
        how = re.search(r"\bhow (?:do|can|to|would|should)\b|\bsteps?\b", req.clause.lower())
        topic = rec.question_topic if req.question and not how else rec.topic
        self.w.quote(self.hit(req.intent), f"{req.clause} {topic}", focus=req.clause)
        if offer and rec.offer and req.question and self.conv.customer_id:
            self.w.para(texts.OFFERS[rec.offer])

    def _history(self, req: Request) -> None:
        rows = self.conv.order_history()
        if not rows:
            self.w.para(
                "I couldn't find any orders on your account." if rows == [] else texts.ASK_ORDER
            )
            return
        key = _FAMILY.get(req.intent, req.intent)
        statuses, lead, ask = _HISTORY_FILTER.get(
            key, (None, f"Here are your orders ({len(rows)}):", "")
        )
        shown = [o for o in rows if statuses is None or o.get("status") in statuses] or rows
        if statuses is not None and len(shown) == len(rows):
            lead = f"Here are your orders ({len(rows)}):"
        self.w.para(lead + "\n" + "\n".join(order_line(o) for o in shown))
        if ask:
            self.w.para(ask)
        elif req.intent != "order_history":
            self.w.para("Which order is it about?")

    def _ask_again(self, req: Request, asks: str, order: dict[str, Any] | None) -> None:
        """A bare "yes" to "which one would you like me to cancel?" answers nothing: the
        question again, with the options the conversation has (the orders the customer
        named as alternatives or in their last messages, the order list looked up, the
        order's products, what can be refunded); orders named as alternatives ("cancel
        ORD1001 or ORD1008?") are asked about the same way."""
        verb = _VERB.get(req.intent, "help with")
        products = list(texts.names(order).values())
        if asks == "amount":
            most = (order or {}).get("refundable_amount")
            self.w.para((f"Up to {texts.money(most)} can be refunded on order {req.order_id}. "
                         if most else "") + "How much would you like refunded?")
            return
        if asks == "product" and len(products) > 1:
            self.w.para(f"Order {req.order_id} contains {texts.join(products)}. Which product "
                        f"would you like me to {verb}?")
            return
        named = list(req.choices) or list(dict.fromkeys(
            oid for _, text in self.conv.customer_messages()[-4:] for oid in slots.order_ids(text)))
        if len(named) > 1:
            self.w.para(f"Which order would you like me to {verb}: {_either(named)}?")
        elif self.conv.order_history():
            self._history(req)
            if not self.w.asks():
                self.w.para(f"Which one would you like me to {verb}?")
        else:
            self.w.para(f"Which order would you like me to {verb}? Please send me the order "
                        "number (for example ORD1001).")

    def _note(self, req: Request, note: Note) -> None:
        w, kind = self.w, note.kind
        order = self.conv.order(req.order_id) if req.order_id else None
        oid = req.order_id
        hit = self.hit(req.intent)
        if kind in ("foreign", "other_customer"):
            self._info(req, offer=False)
        elif kind == "negated":
            w.para(texts.NEGATED)
        elif kind == "partial_cancel" and order is not None:
            names = texts.names(order)
            w.para(
                f"I can only cancel a whole order, not one product in it: cancelling {oid} would "
                f"cancel {texts.join(list(names.values()))}. Would you like to cancel the whole "
                f"order, or keep it and return the {names.get(note.detail, 'product')} once it's "
                "delivered?")
        elif kind == "reset_elsewhere":
            w.para(texts.RESET_ON_FILE)
        elif kind == "question":
            self._info(req, offer=True)
        elif kind == "answered_from_order" and order is not None:
            w.para(order_status(order))
            w.quote(hit, f"{req.clause} {RECORDS[req.intent].question_topic}", max_sentences=2)
        elif kind == "ask_again":
            self._ask_again(req, note.detail, order)
        elif kind == "ask_order":
            if self.conv.order_history() is not None:
                self._history(req)
            else:
                w.quote(hit, f"{req.clause} {RECORDS[req.intent].topic}", max_sentences=2)
                w.para(texts.ASK_ORDER)
        elif kind == "order_error":
            said = texts.customer_error(note.detail)
            if said is None or "belong" in note.detail or "no order" in note.detail:
                said = f"I couldn't find order {oid} on your account."
            w.para(f"{said} Could you check the order number?")
        elif kind == "not_cancellable" and order is not None:
            status = str(order.get("status"))
            if status in ("cancelled", "refunded"):
                w.para(order_status(order))  # nothing left to cancel
            elif status in ("delivered", "completed"):
                days = self.policy.return_window_days
                w.para(f"{order_status(order)} Since it has been delivered, it can no longer be "
                       f"cancelled, but you can return it within {days} days of delivery.")
            else:
                w.para(f"{order_status(order)} That means it can no longer be cancelled.")
                w.quote(hit, "my order already shipped stopped refuse the parcel", max_sentences=3)
        elif kind == "not_returnable" and order is not None:
            days = self.policy.return_window_days
            if note.detail in ("delivered", "completed"):
                w.para(
                    f"Your order {oid} was delivered on {order.get('delivered_on')}, which is more "
                    f"than {days} days ago, so it's outside the {days}-day return window."
                )
                w.quote(
                    self.hit(req.intent),
                    "if the return window has passed warranty",
                    max_sentences=2,
                )
            elif note.detail in ("cancelled", "refunded"):
                w.para(order_status(order))  # nothing was kept, so nothing to send back
            else:
                w.para(
                    order_status(order)
                    + f" Returns are possible once it's delivered, within {days} days."
                )
        elif kind == "not_delivered" and order is not None:
            w.para(
                order_status(order).replace(", so it can still be cancelled", "")
                + " Could you check the order number? A replacement is possible for delivered"
                " orders."
            )
        elif kind == "ask_product":
            products = list(texts.names(order).values())
            verb = "return" if note.detail == "return" else "replace"
            w.para(
                f"Which product would you like to {verb}? Order {oid} contains "
                f"{texts.join(products) if products else 'several items'}."
            )
        elif kind == "ask_amount":
            most = (order or {}).get("refundable_amount")
            w.para(
                "How much would you like refunded?"
                + (f" Up to {texts.money(most)} can be refunded on order {oid}." if most else "")
            )
        elif kind == "ask_value":
            field = {"phone": "phone number", "email": "email address"}.get(
                note.detail, note.detail or "details"
            )
            w.quote(hit, f"{field} what you can change", max_sentences=2)
            w.para(f"What should your new {field} be?")
        elif kind == "over_paid":
            w.para(
                f"I can refund at most {texts.money(note.detail)} on order {oid}: that's what "
                "was paid, minus anything already refunded."
            )
            w.quote(hit, "how much can be refunded", max_sentences=2)
        elif kind == "over_limit":
            w.quote(hit, "how much can be refunded limited supervisor", max_sentences=3)
        elif kind == "over_voucher_limit":
            w.para(f"A goodwill voucher can be worth at most {texts.money(note.detail)}.")
            w.quote(hit, "goodwill vouchers", max_sentences=2)
        elif kind == "percent":
            w.para("I'm not able to create discount codes.")
            w.quote(hit, "what vouchers cannot do goodwill vouchers", max_sentences=2)
        elif kind == "nothing_to_refund" and order is not None:
            w.para(order_status(order))
        elif kind == "cancel_instead" and order is not None:
            w.para(
                f"Your order {oid} hasn't shipped yet, so the simplest way to get your money "
                "back is to cancel it. Would you like me to do that?"
            )
        else:
            self._info(req, offer=False)
