"""An order in the customer's words: its state in one sentence, or one line of a list."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from hitl_desktop.assistant.offline import texts


def order_status(o: Mapping[str, Any]) -> str:
    """One sentence with an order's state, from the look-up."""
    oid, status = o.get("order_id"), str(o.get("status", "unknown"))
    items = [str(i.get("name")) for i in o.get("items") or [] if isinstance(i, Mapping)]
    what = f" ({texts.join(items)})" if items else ""
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
        return (
            f"Your order {oid}{what} is {status} and hasn't shipped yet, so it can still be "
            "cancelled."
        )
    if status == "cancelled":
        when = f" on {o['cancelled_on']}" if o.get("cancelled_on") else ""
        back = o.get("amount_refunded")
        money = (
            f", and {texts.money(back)} was refunded to your original payment method"
            if back
            else ""
        )
        return f"Your order {oid}{what} was cancelled{when}{money}."
    if status == "refunded":
        return (
            f"Your order {oid}{what} was refunded: {texts.money(o.get('amount_refunded'))} went "
            "back to your original payment method."
        )
    return f"Your order {oid}{what} has the status {status}."


def order_line(o: Mapping[str, Any]) -> str:
    products = [str(p) for p in o.get("products") or []]
    what = f" \u2014 {texts.join(products[:3])}" if products else ""
    date = f", ordered {o['ordered_on']}" if o.get("ordered_on") else ""
    total = f", {texts.money(o['total'])}" if o.get("total") is not None else ""
    return f"- {o.get('order_id')}: {o.get('status')}{date}{total}{what}"
