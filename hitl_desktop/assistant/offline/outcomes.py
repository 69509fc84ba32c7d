"""Drafts after a representative decided: approved, failed, rejected or expired.

Built from the tool's result fields, never from its ``message`` (which names
internal ids), and honest: only an executed action is called done.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from hitl_desktop.assistant.offline import texts
from hitl_desktop.assistant.offline.history import Conversation, Decision
from hitl_desktop.assistant.offline.writer import Writer
from hitl_desktop.knowledge.index import SearchHit

#: Per tool: the article words for "what happens next" after it ran.
NEXT_QUERY = {
    "cancel_order": "what happens after cancelling",
    "create_refund": "how long a refund takes",
    "create_return": "after we receive it refund",
    "send_replacement": "how to ask for a replacement ships standard delivery",
    "reset_password": "forgot your password reset link",
    "issue_voucher": "using a voucher",
    "create_complaint": "what happens next",
}


#: Per tool: the article words for the alternative when it failed.
FAILED_QUERY = {
    "cancel_order": "my order already shipped refuse the parcel carrier comes back",
    "create_refund": "how much can be refunded",
}


def _r(result: Any, key: str) -> Any:
    return result.get(key) if isinstance(result, Mapping) else None


def done_sentence(d: Decision, order: Mapping[str, Any] | None) -> str:
    """What an executed action did, in the customer's terms."""
    res, args = d.result, d.arguments
    oid = args.get("order_id", "")
    if d.tool == "cancel_order":
        back = _r(res, "refund_amount")
        text = f"Good news: order {oid} is now cancelled."
        if back:
            text += (
                f" The payment of {texts.money(back)} goes back to your original payment "
                "method within 5\u201310 business days."
            )
        return text
    if d.tool == "create_refund":
        return (
            f"Good news: I've refunded {texts.money(_r(res, 'amount') or args.get('amount'))} "
            f"on order {oid}. It goes back to your original payment method within "
            "5\u201310 business days."
        )
    if d.tool == "create_return":
        what = texts.action(d.tool, args, order).removeprefix("open a return for ")
        by = _r(res, "ship_by")
        return (
            f"Your return for {what} is open. A prepaid return label is on its way to your "
            f"email; please send the items back{f' by {by}' if by else ''}."
        )
    if d.tool == "send_replacement":
        name = _r(res, "product_name") or texts.names(order).get(
            str(args.get("product_id")), "item"
        )
        return (
            f"Good news: a free replacement {name} is on its way. It ships within 1 business "
            "day by standard delivery (3\u20135 business days)."
        )
    if d.tool == "reset_password":
        to = _r(res, "sent_to")
        return (
            f"I've sent a password reset link to {to or 'the email address on your account'}; "
            "it is valid for 1 hour."
        )
    if d.tool == "issue_voucher":
        code, until = _r(res, "code"), _r(res, "valid_until")
        worth = texts.money(_r(res, "amount") or args.get("amount"))
        text = f"I've added a {worth} voucher to your account"
        return (
            text
            + (f": your code is {code}" if code else "")
            + (f", valid until {until}." if until else ".")
        )
    if d.tool == "update_info":
        change = texts.action(d.tool, args, order).removeprefix("change your ")
        return f"Done: I've changed your {change}."
    if d.tool == "create_complaint":
        ref = _r(res, "complaint_id")
        return (
            f"I've recorded your complaint{f' (reference {ref})' if ref else ''}; our "
            "complaints team will reply within 2 business days."
        )
    return "Good news: that's done."


def write_outcomes(
    w: Writer, conv: Conversation, picks: Mapping[str, SearchHit], by_tool: Mapping[str, str]
) -> None:
    """One paragraph per decision, then what happens next from the article."""
    for d in conv.pending_decisions():
        oid = d.arguments.get("order_id")
        order = conv.order_seen(oid) if isinstance(oid, str) else None
        what = texts.action(d.tool, d.arguments, order)
        if d.tool == "issue_voucher":
            worth = texts.money(d.arguments.get("amount"))
            what = f"issue you a {worth} voucher as a goodwill gesture"
        hit = picks.get(by_tool.get(d.tool, ""))
        if d.outcome == "approved":
            w.para(done_sentence(d, order))
            if d.tool == "create_return":  # the rest is said in full by done_sentence
                w.quote(hit, NEXT_QUERY[d.tool], max_sentences=2, lead="Once they arrive,")
        elif d.outcome == "failed":
            err = str(_r(d.result, "error") or "")
            said = texts.customer_error(err)
            w.para(
                f"I'm sorry, I wasn't able to {what}. "
                + (said or "Our system didn't accept the request.")
            )
            if d.tool in FAILED_QUERY:  # the alternative the article offers
                w.quote(hit, FAILED_QUERY[d.tool], max_sentences=1)
        elif d.outcome == "rejected":
            reason = d.reason.strip().rstrip(".")
            w.para(
                f"I'm sorry, but I can't {what} this time"
                + (f": {reason[0].lower() + reason[1:]}." if reason else ".")
            )
            # no article here: the representative's reason is the answer
        elif d.outcome == "cancelled":  # closing the session withdrew it, nobody decided
            w.para(
                f"I'm sorry, I wasn't able to {what} yet: the request was withdrawn when "
                "this conversation was closed. Would you like me to submit it again?"
            )
        else:
            w.para(
                f"I'm sorry, I wasn't able to {what} yet: the request wasn't processed in "
                "time. Would you like me to submit it again?"
            )
