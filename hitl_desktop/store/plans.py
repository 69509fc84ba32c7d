"""What an action *will* do, in plain words, from its dry run.

A sensitive action is checked before a representative sees it: the very code
that executes it runs inside a transaction that is rolled back
(:meth:`ShopDatabase.check_action`). When that dry run succeeds, this module
words its result as what approving will do ("Cancel ORD1001 (pending, $158.95)
and refund $158.95 to Visa ending in 4242"), reading the order as it was
before the dry run. The wording comes from the result and the rows, never from
the model's text, so an inflated amount or a foreign order cannot appear here.
"""

from __future__ import annotations

import sqlite3
from typing import Any

from hitl_desktop.store.tools import PROFILE_FIELDS, iso_date


def _usd(amount: float | int | None, currency: str = "USD") -> str:
    value = float(amount or 0)
    return f"${value:,.2f}" if currency == "USD" else f"{value:,.2f} {currency}"


def _order(conn: sqlite3.Connection, order_id: Any) -> sqlite3.Row | None:
    if not isinstance(order_id, str):
        return None
    row: sqlite3.Row | None = conn.execute(
        "SELECT * FROM orders WHERE id = ?", (order_id.strip().upper(),)).fetchone()
    return row


def _customer(conn: sqlite3.Connection, user_id: Any) -> sqlite3.Row | None:
    if not isinstance(user_id, str):
        return None
    row: sqlite3.Row | None = conn.execute(
        "SELECT * FROM customers WHERE id = ?", (user_id.strip().upper(),)).fetchone()
    return row


def _products(conn: sqlite3.Connection, ids: list[str]) -> str:
    names = []
    for pid in ids:
        row = conn.execute("SELECT name FROM products WHERE id = ?", (pid,)).fetchone()
        names.append(f"{row[0]} ({pid})" if row else pid)
    return ", ".join(names)


def describe(conn: sqlite3.Connection, name: str, args: dict[str, Any],
             result: dict[str, Any]) -> str:
    """One sentence: what approving ``name`` with ``args`` will do. ``conn`` shows the
    shop *before* the action (the dry run was rolled back); ``result`` is its output."""
    order = _order(conn, args.get("order_id"))
    cur = str(order["currency"]) if order is not None else "USD"
    if name == "cancel_order" and order is not None:
        text = (f"Cancel {order['id']} ({order['status']}, "
                f"{_usd(order['total_cents'] / 100, cur)})")
        refund = float(result.get("refund_amount") or 0)
        if refund > 0:
            text += f" and refund {_usd(refund, cur)} to {order['payment_method']}"
        return text
    if name == "create_refund" and order is not None:
        paid = order["paid_cents"] / 100
        before = order["refunded_cents"] / 100
        text = (f"Refund {_usd(result.get('amount'), cur)} of {order['id']} ({order['status']}, "
                f"paid {_usd(paid, cur)}")
        text += f", {_usd(before, cur)} refunded before)" if before else ")"
        return text + f" to {order['payment_method']}"
    if name == "send_replacement" and order is not None:
        return (f"Ship a free replacement {result.get('product_name')} "
                f"({result.get('product_id')}) from {order['id']} to "
                f"{order['shipping_address']}")
    if name == "create_return" and order is not None:
        ids = [str(p) for p in result.get("product_ids") or []]
        return (f"Open a return of {_products(conn, ids)} from {order['id']} (delivered "
                f"{iso_date(order['delivered_at'])}) and email a prepaid return label; the "
                f"refund goes to {order['payment_method']} once the items arrive")
    customer = _customer(conn, args.get("user_id"))
    who = f"{customer['name']} ({customer['id']})" if customer is not None else "the customer"
    if name == "reset_password":
        return (f"Email a password reset link to {result.get('sent_to')}, the address on file "
                f"for {who} (valid {result.get('valid_minutes')} minutes)")
    if name == "issue_voucher":
        return (f"Add a {_usd(result.get('amount'))} voucher to the account of {who}, valid "
                f"until {result.get('valid_until')}")
    if name == "create_complaint":
        about = f" about {result['order_id']}" if result.get("order_id") else ""
        kind = str(result.get("type") or "other").replace("_", " ")
        return f"Record a complaint ({kind}){about} for {who}"
    if name == "update_info" and customer is not None:
        fld = str(result.get("field"))
        old = customer[fld] if fld in PROFILE_FIELDS else None
        text = f"Change the {fld} of {who} from {old!r} to {result.get('value')!r}"
        moved = result.get("orders_updated") or []
        if moved:
            text += f"; orders not shipped yet ({', '.join(moved)}) follow the new address"
        return text
    message = result.get("message")
    return f"Run {name}: {message}" if isinstance(message, str) else f"Run {name}"
