"""The assistant's own sentences, in one place, and how facts are written.

Money is always ``$1,234.56`` and dates stay ``YYYY-MM-DD`` as the shop gives
them. Nothing here names an internal id (customer ids, approval ids, tool
names, product ids): customers know their order numbers, and that is all.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from types import MappingProxyType
from typing import Any, Final

GREETING: Final = "Hi, thanks for contacting Northwind Goods! How can I help you today?"
WELCOME: Final = "You're welcome! Is there anything else I can help you with?"
ANYTHING_ELSE: Final = "Is there anything else I can help you with?"
NOT_UNDERSTOOD: Final = (
    "I'm sorry, I'm not sure I understood what you need. Could you tell me a bit more? "
    "If it's about an order, please include the order number (for example ORD1001)."
)
NO_ANSWER: Final = (
    "I'm sorry, I don't have information about that. Is there anything about your orders "
    "or your account I can help you with?"
)
ENGLISH_ONLY: Final = (
    "I'm sorry, I can only write in English at the moment. Here is what I found for you:"
)
INJECTION: Final = (
    "I can't change how I work or skip our usual checks, but I'm happy to help with your "
    "orders or your account."
)
SIGN_IN: Final = (
    "To help with your orders or your account, I first need to confirm it's you: please "
    "use \"Sign in to your order\" at the top of this chat (the email address of your "
    "account and one of your order numbers), and I'll take it from there."
)
OTHER_CUSTOMER: Final = (
    "I can only help with your own account, so I can't look at or change another "
    "customer's details."
)
ASK_ORDER: Final = "Which order is it about? Please send me the order number (for example ORD1001)."
SORRY: Final = "I'm sorry to hear that."
PENDING_ONE: Final = (
    "I've passed your request to {what} on to a colleague for confirmation, and I'll let you "
    "know as soon as it's done."
)
PENDING_MANY: Final = (
    "I've passed your requests on to a colleague for confirmation, and I'll let you know as "
    "soon as they're done:"
)
NEGATED: Final = "No problem, I won't go ahead with that."
RESET_ON_FILE: Final = (
    "For your security, a password reset link can only go to the email address on file for "
    "your account, so I can't send it to another address. Would you like me to send it to the "
    "address on file?"
)
FOLLOW_UP: Final = "I'll let you know as soon as I hear back."
ESCALATE: Final = (
    "I understand. I'm passing your request on to a supervisor, who will contact you within "
    "one business day. In the meantime, I'm happy to help with anything I can."
)
#: an escalation nothing of this turn backs (no ticket, no proposal): no promise of a call
REVIEW: Final = (
    "I understand. A representative will review your request and let you know what we can do. "
    "In the meantime, I'm happy to help with anything I can."
)
SAFETY: Final = (
    "For your safety, please stop using it straight away: unplug it or switch it off, and keep "
    "it away from anything flammable until this is sorted out."
)

DAMAGE_RECORDED: Final = (
    "I've recorded the damage{ref} so our logistics team can follow up with the carrier."
)
WHAT_HAPPENED: Final = (
    "I'm sorry to hear that. Could you tell me what happened, and the order number if you "
    "have it?"
)
GOODBYE: Final = "You're welcome! Have a great day."

#: What happens once a representative confirms an action (from the cited article).
NEXT_STEP: Final = MappingProxyType({
    "create_return": "Once it's confirmed, you'll receive a prepaid return label by email. Pack "
    "the product with all its accessories and drop the parcel at any carrier location within "
    "14 days.",
    "send_replacement": "Once it's confirmed, the new item ships with standard delivery "
    "(3\u20135 business days) at no cost.",
    "issue_voucher": "Once it's confirmed, the voucher code is sent to the email address on "
    "your account.",
})

#: What the draft offers when the customer only asked about a topic we can act on.
OFFERS: Final = MappingProxyType(
    {
        "cancel": "If you'd like me to cancel an order, just send me its order number.",
        "return": "If you'd like to return something, send me the order number and the product.",
        "refund": "If you're waiting for a refund, send me the order number and I'll check it.",
        "replacement": "If an item arrived damaged or wrong, send me the order number and the "
        "product, and I'll arrange a replacement.",
        "damaged": "If that's happened to you, send me the order number and the product, and "
        "I'll sort it out.",
        "password": "I can also send you a password reset link if you like.",
        }
)

_ACTIONS: Final = MappingProxyType(
    {
        "cancel_order": "cancel order {order_id}",
        "create_return": "open a return for the {products} from order {order_id}",
        "create_refund": "refund {amount} on order {order_id}",
        "send_replacement": "send you a free replacement {product} from order {order_id}",
        "reset_password": "send a password reset link to the email address on your account",
        "update_info": "change your {field} to {value}",
        "issue_voucher": "issue you a {amount} goodwill voucher",
        "create_complaint": "record your complaint",
    }
)


def money(value: Any) -> str:
    try:
        return f"${float(value):,.2f}"
    except (TypeError, ValueError):
        return str(value)


def names(order: Mapping[str, Any] | None) -> dict[str, str]:
    items = (order or {}).get("items") or []
    return {
        str(i.get("product_id")): str(i.get("name") or "item")
        for i in items
        if isinstance(i, Mapping)
    }


def join(words: list[str]) -> str:
    return words[0] if len(words) == 1 else ", ".join(words[:-1]) + " and " + words[-1]


def action(tool: str, args: Mapping[str, Any], order: Mapping[str, Any] | None) -> str:
    """An action in the customer's terms ("cancel order ORD1001")."""
    known = names(order)
    info = args.get("info") if isinstance(args.get("info"), Mapping) else {}
    assert isinstance(info, Mapping)
    pids = [str(p) for p in args.get("product_ids") or []]
    field = str(info.get("field", "details"))
    values = {
        "order_id": args.get("order_id", ""),
        "product": known.get(str(args.get("product_id")), "item"),
        "products": join([known.get(p, "items") for p in pids]) if pids else "items",
        "amount": money(args.get("amount")),
        "field": "phone number"
        if field == "phone"
        else "email address"
        if field == "email"
        else field,
        "value": info.get("value", ""),
    }
    pattern = _ACTIONS.get(tool, "take care of that")
    return pattern.format(**values)


_INTERNAL_RE = re.compile(r"\b(?:CUST\d+|P\d{4}|APR-?\w+|[a-z]+_[a-z_]+)\b")


def customer_error(error: str) -> str | None:
    """A tool's error as a customer may read it, or None when it names internals."""
    text = error.strip().rstrip(".")
    if not text or _INTERNAL_RE.search(text) or len(text) > 240:
        return None
    return text[0].upper() + text[1:] + "."
