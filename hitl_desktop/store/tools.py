"""What each catalog tool really does to the shop database, with its business rules.

Every function takes a :class:`ToolContext` (an open transaction, the clock,
the policy, and the conversation's customer) and the schema-validated
arguments, and returns a JSON-able dict starting with ``"ok": True``. A rule
violation raises :class:`BusinessRuleError` with a message the model can relay
to the customer as-is; the caller turns it into ``{"ok": False, "error": ...}``
and rolls back anything the tool wrote.
"""

from __future__ import annotations

import math
import re
import secrets
import sqlite3
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final

from hitl_desktop.core.catalog import Policy
from hitl_desktop.store.errors import BusinessRuleError
from hitl_desktop.store.schema import DAY

NONE_ORDER: Final = frozenset({"", "N/A", "NA", "NONE", "-"})
CANCELLABLE: Final = frozenset({"pending", "processing"})
# "completed" means closed (see the KB's order statuses): no returns or replacements.
DELIVERED: Final = frozenset({"delivered"})
TICKET_TYPES: Final = ("bug_reported", "damaged_product", "other")
COMPLAINT_TYPES: Final = ("product_quality", "order_delay", "delivery_issues", "other")
PROFILE_FIELDS: Final = ("email", "phone", "address", "name")
RESET_LINK_TTL_S: Final = 3600.0
VOUCHER_TTL_DAYS: Final = 365
EMAIL_RE: Final = re.compile(r"^[A-Za-z0-9._%+'-]+@[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}$")
PHONE_RE: Final = re.compile(r"^\+?[0-9][0-9 ()./-]*[0-9]$")
READ_ONLY_TOOLS: Final = frozenset({"get_order", "get_order_history"})


@dataclass(slots=True)
class ToolContext:
    """One tool execution: the open transaction and who/what it runs for."""

    conn: sqlite3.Connection
    now: float
    policy: Policy
    customer_id: str | None = None  # the conversation's customer; enforced when set
    approval_id: str | None = None


ToolImpl = Callable[[ToolContext, dict[str, Any]], dict[str, Any]]


# ------------------------------------------------------------------ helpers


def money(amount_cents: int) -> float:
    return round(amount_cents / 100, 2)


def fmt_money(amount_cents: int) -> str:
    return f"{amount_cents / 100:.2f} USD"


def iso_date(ts: float | None) -> str | None:
    if ts is None:
        return None
    return datetime.fromtimestamp(ts, UTC).date().isoformat()


def _norm_id(value: str) -> str:
    return value.strip().upper()


def _next_id(conn: sqlite3.Connection, table: str, prefix: str) -> str:
    (count,) = conn.execute(f"SELECT COUNT(*) FROM {table}").fetchone()
    return f"{prefix}{10001 + int(count)}"


def _text(value: str, what: str, *, max_len: int = 2000) -> str:
    text = value.strip()
    if not text:
        raise BusinessRuleError(f"{what} must not be empty")
    if len(text) > max_len:
        raise BusinessRuleError(f"{what} is too long (at most {max_len} characters)")
    return text


def _amount_cents(value: Any, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise BusinessRuleError(f"{what} must be a number")
    if abs(value) > 1e9:
        raise BusinessRuleError(f"{what} is far too large: {value}")
    amount = round(value * 100)
    if abs(value * 100 - amount) > 1e-6:
        raise BusinessRuleError(f"{what} can have at most 2 decimals, got {value}")
    if amount <= 0:
        raise BusinessRuleError(f"{what} must be greater than 0, got {value}")
    return amount


def _customer(ctx: ToolContext, user_id: str) -> sqlite3.Row:
    cid = _norm_id(user_id)
    row: sqlite3.Row | None = ctx.conn.execute(
        "SELECT * FROM customers WHERE id = ?", (cid,)
    ).fetchone()
    if row is None:
        raise BusinessRuleError(f"no customer with id {user_id!r}")
    if ctx.customer_id is not None and cid != ctx.customer_id:
        raise BusinessRuleError(
            f"customer {cid} is not the customer of this conversation ({ctx.customer_id}); "
            "only the customer's own account can be used"
        )
    return row


def _order(ctx: ToolContext, order_id: str, *, owner: str | None = None) -> sqlite3.Row:
    oid = _norm_id(order_id)
    row: sqlite3.Row | None = ctx.conn.execute(
        "SELECT * FROM orders WHERE id = ?", (oid,)
    ).fetchone()
    if row is None:
        raise BusinessRuleError(f"no order with id {order_id!r}")
    expected = owner or ctx.customer_id
    if expected is not None and row["customer_id"] != expected:
        raise BusinessRuleError(f"order {oid} does not belong to customer {expected}")
    return row


def _optional_order(ctx: ToolContext, order_id: str, owner: str) -> sqlite3.Row | None:
    if _norm_id(order_id) in NONE_ORDER:
        return None
    return _order(ctx, order_id, owner=owner)


def _items(conn: sqlite3.Connection, order_id: str) -> list[sqlite3.Row]:
    return list(
        conn.execute(
            "SELECT i.product_id, i.quantity, i.unit_price_cents, p.name FROM order_items i "
            "JOIN products p ON p.id = i.product_id WHERE i.order_id = ? ORDER BY i.rowid",
            (order_id,),
        )
    )


def _refundable_cents(row: sqlite3.Row) -> int:
    """What can still go back to the customer: paid minus already refunded."""
    return int(row["paid_cents"]) - int(row["refunded_cents"])


def _return_deadline(row: sqlite3.Row, policy: Policy) -> float | None:
    if row["delivered_at"] is None:
        return None
    return float(row["delivered_at"]) + policy.return_window_days * DAY


def order_details(conn: sqlite3.Connection, row: sqlite3.Row, now: float, policy: Policy) -> (
    dict[str, Any]
):
    """Everything about one order the model or the customer panel may show."""
    returned = {
        r["product_id"]
        for r in conn.execute(
            "SELECT product_id FROM return_items WHERE order_id = ?", (row["id"],)
        )
    }
    items = [
        {
            "product_id": i["product_id"],
            "name": i["name"],
            "quantity": i["quantity"],
            "unit_price": money(i["unit_price_cents"]),
            "line_total": money(i["unit_price_cents"] * i["quantity"]),
            "returned": i["product_id"] in returned,
        }
        for i in _items(conn, row["id"])
    ]
    deadline = _return_deadline(row, policy)
    returnable = (
        row["status"] in DELIVERED and deadline is not None and now <= deadline
        and any(not i["returned"] for i in items)
    )
    return {
        "order_id": row["id"],
        "customer_id": row["customer_id"],
        "status": row["status"],
        "ordered_on": iso_date(row["created_at"]),
        "shipped_on": iso_date(row["shipped_at"]),
        "delivered_on": iso_date(row["delivered_at"]),
        "cancelled_on": iso_date(row["cancelled_at"]),
        "items": items,
        "subtotal": money(row["subtotal_cents"]),
        "shipping_cost": money(row["shipping_cents"]),
        "total": money(row["total_cents"]),
        "amount_paid": money(row["paid_cents"]),
        "amount_refunded": money(row["refunded_cents"]),
        "refundable_amount": money(_refundable_cents(row)),
        "currency": row["currency"],
        "payment_method": row["payment_method"],
        "shipping_method": row["shipping_method"],
        "shipping_address": row["shipping_address"],
        "carrier": row["carrier"],
        "tracking_number": row["tracking_number"],
        "can_cancel": row["status"] in CANCELLABLE,
        "return_window_ends": iso_date(deadline) if row["status"] in DELIVERED else None,
        "returnable": returnable,
    }


def order_summary(conn: sqlite3.Connection, row: sqlite3.Row) -> dict[str, Any]:
    (count,) = conn.execute(
        "SELECT COALESCE(SUM(quantity), 0) FROM order_items WHERE order_id = ?", (row["id"],)
    ).fetchone()
    names = [i["name"] for i in _items(conn, row["id"])]
    return {
        "order_id": row["id"],
        "status": row["status"],
        "ordered_on": iso_date(row["created_at"]),
        "total": money(row["total_cents"]),
        "currency": row["currency"],
        "item_count": int(count),
        "products": names,
    }


def _mask_email(email: str) -> str:
    local, _, domain = email.partition("@")
    return f"{local[:1]}***@{domain}"


# ------------------------------------------------------------------ read-only


def get_order(ctx: ToolContext, args: dict[str, Any]) -> dict[str, Any]:
    row = _order(ctx, args["order_id"])
    return {"ok": True, "order": order_details(ctx.conn, row, ctx.now, ctx.policy)}


def get_order_history(ctx: ToolContext, args: dict[str, Any]) -> dict[str, Any]:
    cust = _customer(ctx, args["user_id"])
    rows = ctx.conn.execute(
        "SELECT * FROM orders WHERE customer_id = ? ORDER BY created_at DESC, id DESC",
        (cust["id"],),
    ).fetchall()
    return {
        "ok": True,
        "customer_id": cust["id"],
        "orders": [order_summary(ctx.conn, r) for r in rows],
    }


# ------------------------------------------------------------------ writes


def _open_case(
    ctx: ToolContext, args: dict[str, Any], *, table: str, prefix: str, types: tuple[str, ...],
    what: str,
) -> tuple[str, str, str | None]:
    """Tickets and complaints are the same record (a customer, an optional order of
    theirs, a type and details) kept in two tables. Returns (id, type, order id)."""
    cust = _customer(ctx, args["user_id"])
    kind = args["type"]
    if kind not in types:
        raise BusinessRuleError(f"{what} type must be one of {', '.join(types)}")
    details = _text(args["details"], "details")
    order = _optional_order(ctx, args["order_id"], cust["id"])
    order_id = order["id"] if order else None
    case_id = _next_id(ctx.conn, table, prefix)
    ctx.conn.execute(
        f"INSERT INTO {table} (id, customer_id, order_id, type, details, status, created_at, "
        "approval_id) VALUES (?,?,?,?,?,'open',?,?)",
        (case_id, cust["id"], order_id, kind, details, ctx.now, ctx.approval_id),
    )
    return case_id, kind, order_id


def create_ticket(ctx: ToolContext, args: dict[str, Any]) -> dict[str, Any]:
    ticket_id, kind, order_id = _open_case(
        ctx, args, table="tickets", prefix="TCK", types=TICKET_TYPES, what="ticket"
    )
    return {
        "ok": True,
        "ticket_id": ticket_id,
        "status": "open",
        "type": kind,
        "order_id": order_id,
        "message": f"Ticket {ticket_id} was opened; the support team follows up by email "
        "within 1 business day.",
    }


def cancel_order(ctx: ToolContext, args: dict[str, Any]) -> dict[str, Any]:
    row = _order(ctx, args["order_id"])
    oid, status = row["id"], row["status"]
    if status == "cancelled":
        raise BusinessRuleError(f"order {oid} is already cancelled")
    if status == "shipped":
        raise BusinessRuleError(
            f"order {oid} has already shipped and can no longer be cancelled; once it is "
            f"delivered it can be returned within {ctx.policy.return_window_days} days"
        )
    if status == "delivered":
        raise BusinessRuleError(
            f"order {oid} was delivered on {iso_date(row['delivered_at'])} and cannot be "
            f"cancelled; a return is possible within {ctx.policy.return_window_days} days "
            "of delivery"
        )
    if status not in CANCELLABLE:
        raise BusinessRuleError(f"order {oid} is {status} and cannot be cancelled")
    ctx.conn.execute(
        "UPDATE orders SET status = 'cancelled', cancelled_at = ?, updated_at = ? WHERE id = ?",
        (ctx.now, ctx.now, oid),
    )
    # Cancelling refunds whatever was paid, in full, to the original payment method.
    owed = _refundable_cents(row)
    refund_id = None
    if owed > 0:
        refund_id = _next_id(ctx.conn, "refunds", "REF")
        ctx.conn.execute(
            "INSERT INTO refunds (id, order_id, amount_cents, reason, status, created_at, "
            "approval_id) VALUES (?,?,?,?,?,?,?)",
            (refund_id, oid, owed, "Order cancelled before shipping", "processing", ctx.now,
             ctx.approval_id),
        )
        ctx.conn.execute(
            "UPDATE orders SET refunded_cents = refunded_cents + ? WHERE id = ?", (owed, oid)
        )
    msg = f"Order {oid} is cancelled."
    if refund_id:
        msg += (
            f" The payment of {fmt_money(owed)} is refunded to {row['payment_method']} "
            "within 5-10 business days."
        )
    return {
        "ok": True,
        "order_id": oid,
        "status": "cancelled",
        "previous_status": status,
        "refund_id": refund_id,
        "refund_amount": money(owed) if refund_id else 0.0,
        "message": msg,
    }


def reset_password(ctx: ToolContext, args: dict[str, Any]) -> dict[str, Any]:
    cust = _customer(ctx, args["user_id"])
    reset_id = _next_id(ctx.conn, "password_resets", "PWR")
    expires = ctx.now + RESET_LINK_TTL_S
    ctx.conn.execute(
        "INSERT INTO password_resets (id, customer_id, email, created_at, expires_at, "
        "approval_id) VALUES (?,?,?,?,?,?)",
        (reset_id, cust["id"], cust["email"], ctx.now, expires, ctx.approval_id),
    )
    masked = _mask_email(cust["email"])
    return {
        "ok": True,
        "reset_id": reset_id,
        "sent_to": masked,
        "valid_minutes": int(RESET_LINK_TTL_S // 60),
        "message": f"A password reset link was sent to {masked} (the email on file); "
        "it is valid for 1 hour.",
    }


def send_replacement(ctx: ToolContext, args: dict[str, Any]) -> dict[str, Any]:
    row = _order(ctx, args["order_id"])
    oid = row["id"]
    pid = _norm_id(args["product_id"])
    if row["status"] not in DELIVERED:
        raise BusinessRuleError(
            f"order {oid} is {row['status']}; replacements are only possible for delivered orders"
        )
    in_order = {i["product_id"] for i in _items(ctx.conn, oid)}
    if pid not in in_order:
        raise BusinessRuleError(
            f"product {pid} is not part of order {oid} (it contains {', '.join(sorted(in_order))})"
        )
    returned = ctx.conn.execute(
        "SELECT return_id FROM return_items WHERE order_id = ? AND product_id = ?", (oid, pid)
    ).fetchone()
    if returned is not None:
        raise BusinessRuleError(f"product {pid} of order {oid} is being returned ({returned[0]})")
    earlier = ctx.conn.execute(
        "SELECT id FROM replacements WHERE order_id = ? AND product_id = ?", (oid, pid)
    ).fetchone()
    if earlier is not None:
        raise BusinessRuleError(
            f"a replacement for product {pid} of order {oid} was already sent ({earlier[0]})"
        )
    rid = _next_id(ctx.conn, "replacements", "RPL")
    ctx.conn.execute(
        "INSERT INTO replacements (id, order_id, product_id, status, created_at, approval_id) "
        "VALUES (?,?,?,?,?,?)",
        (rid, oid, pid, "processing", ctx.now, ctx.approval_id),
    )
    (name,) = ctx.conn.execute("SELECT name FROM products WHERE id = ?", (pid,)).fetchone()
    return {
        "ok": True,
        "replacement_id": rid,
        "order_id": oid,
        "product_id": pid,
        "product_name": name,
        "message": f"A free replacement {name} ({pid}) ships within 1 business day by standard "
        f"shipping (3-5 business days) to {row['shipping_address']}.",
    }


def create_refund(ctx: ToolContext, args: dict[str, Any]) -> dict[str, Any]:
    row = _order(ctx, args["order_id"])
    oid = row["id"]
    amount = _amount_cents(args["amount"], "amount")
    reason = _text(args["reason"], "reason", max_len=500)
    max_cents = round(ctx.policy.max_refund * 100)
    refundable = _refundable_cents(row)
    if refundable <= 0:
        raise BusinessRuleError(f"order {oid} has already been refunded in full")
    if amount > refundable:
        raise BusinessRuleError(
            f"amount {fmt_money(amount)} exceeds what can still be refunded for order {oid}: "
            f"{fmt_money(refundable)} (paid {fmt_money(row['paid_cents'])}, already refunded "
            f"{fmt_money(row['refunded_cents'])})"
        )
    if amount > max_cents:
        raise BusinessRuleError(
            f"amount {fmt_money(amount)} is above the maximum of {fmt_money(max_cents)} per refund"
        )
    refund_id = _next_id(ctx.conn, "refunds", "REF")
    ctx.conn.execute(
        "INSERT INTO refunds (id, order_id, amount_cents, reason, status, created_at, approval_id)"
        " VALUES (?,?,?,?,?,?,?)",
        (refund_id, oid, amount, reason, "processing", ctx.now, ctx.approval_id),
    )
    full = amount == refundable
    new_status = "refunded" if full and row["status"] != "cancelled" else row["status"]
    ctx.conn.execute(
        "UPDATE orders SET refunded_cents = refunded_cents + ?, status = ?, updated_at = ? "
        "WHERE id = ?",
        (amount, new_status, ctx.now, oid),
    )
    return {
        "ok": True,
        "refund_id": refund_id,
        "order_id": oid,
        "amount": money(amount),
        "currency": row["currency"],
        "refunded_to": row["payment_method"],
        "order_status": new_status,
        "remaining_refundable": money(refundable - amount),
        "message": f"A refund of {fmt_money(amount)} for order {oid} goes back to "
        f"{row['payment_method']} within 5-10 business days.",
    }


def issue_voucher(ctx: ToolContext, args: dict[str, Any]) -> dict[str, Any]:
    cust = _customer(ctx, args["user_id"])
    amount = _amount_cents(args["amount"], "amount")
    reason = _text(args["reason"], "reason", max_len=500)
    max_cents = round(ctx.policy.max_voucher * 100)
    if amount > max_cents:
        raise BusinessRuleError(
            f"amount {fmt_money(amount)} is above the maximum voucher value of "
            f"{fmt_money(max_cents)}"
        )
    voucher_id = _next_id(ctx.conn, "vouchers", "VCH")
    code = "NW-" + "-".join(secrets.token_hex(2).upper() for _ in range(2))
    expires = ctx.now + VOUCHER_TTL_DAYS * DAY
    ctx.conn.execute(
        "INSERT INTO vouchers (id, customer_id, code, amount_cents, reason, created_at, "
        "expires_at, approval_id) VALUES (?,?,?,?,?,?,?,?)",
        (voucher_id, cust["id"], code, amount, reason, ctx.now, expires, ctx.approval_id),
    )
    return {
        "ok": True,
        "voucher_id": voucher_id,
        "code": code,
        "amount": money(amount),
        "currency": "USD",
        "valid_until": iso_date(expires),
        "message": f"Voucher {code} worth {fmt_money(amount)} was added to the account of "
        f"{cust['name']}; it is valid until {iso_date(expires)}.",
    }


def create_return(ctx: ToolContext, args: dict[str, Any]) -> dict[str, Any]:
    row = _order(ctx, args["order_id"])
    oid = row["id"]
    wanted = list(dict.fromkeys(_norm_id(p) for p in args["product_ids"]))
    if not wanted:
        raise BusinessRuleError("product_ids must name at least one product of the order")
    if row["status"] not in DELIVERED:
        raise BusinessRuleError(
            f"order {oid} is {row['status']}; only delivered orders can be returned"
        )
    deadline = _return_deadline(row, ctx.policy)
    if deadline is None or ctx.now > deadline:
        days = int((ctx.now - float(row["delivered_at"] or ctx.now)) // DAY)
        raise BusinessRuleError(
            f"order {oid} was delivered {days} days ago (on {iso_date(row['delivered_at'])}); "
            f"returns are only possible within {ctx.policy.return_window_days} days of delivery"
        )
    in_order = {i["product_id"] for i in _items(ctx.conn, oid)}
    missing = [p for p in wanted if p not in in_order]
    if missing:
        raise BusinessRuleError(
            f"product(s) {', '.join(missing)} not part of order {oid} "
            f"(it contains {', '.join(sorted(in_order))})"
        )
    already = [
        r["product_id"]
        for r in ctx.conn.execute(
            f"SELECT product_id FROM return_items WHERE order_id = ? AND product_id IN "
            f"({','.join('?' * len(wanted))})",
            (oid, *wanted),
        )
    ]
    if already:
        raise BusinessRuleError(
            f"product(s) {', '.join(sorted(already))} of order {oid} are already being returned"
        )
    return_id = _next_id(ctx.conn, "returns", "RET")
    label = f"https://northwind.example/returns/{return_id}/label.pdf"
    ctx.conn.execute(
        "INSERT INTO returns (id, order_id, status, label_url, created_at, approval_id) "
        "VALUES (?,?,?,?,?,?)",
        (return_id, oid, "awaiting_items", label, ctx.now, ctx.approval_id),
    )
    ctx.conn.executemany(
        "INSERT INTO return_items (return_id, order_id, product_id) VALUES (?,?,?)",
        [(return_id, oid, p) for p in wanted],
    )
    return {
        "ok": True,
        "return_id": return_id,
        "order_id": oid,
        "product_ids": wanted,
        "label_url": label,
        "ship_by": iso_date(ctx.now + 14 * DAY),
        "message": f"Return {return_id} is open. A prepaid return label was emailed; please "
        "ship the items within 14 days. The refund goes to "
        f"{row['payment_method']} within 5-10 business days after they arrive.",
    }


def create_complaint(ctx: ToolContext, args: dict[str, Any]) -> dict[str, Any]:
    complaint_id, kind, order_id = _open_case(
        ctx, args, table="complaints", prefix="CMP", types=COMPLAINT_TYPES, what="complaint"
    )
    return {
        "ok": True,
        "complaint_id": complaint_id,
        "type": kind,
        "order_id": order_id,
        "status": "open",
        "message": f"Complaint {complaint_id} was recorded; the complaints team replies within "
        "2 business days.",
    }


def _check_profile_value(ctx: ToolContext, cust_id: str, field: str, raw: str) -> str:
    value = raw.strip()
    if not value:
        raise BusinessRuleError(f"the new {field} must not be empty")
    if field == "email":
        value = value.lower()
        if len(value) > 254 or not EMAIL_RE.match(value):
            raise BusinessRuleError(f"{raw!r} is not a valid email address")
        taken = ctx.conn.execute(
            "SELECT id FROM customers WHERE email = ? AND id != ?", (value, cust_id)
        ).fetchone()
        if taken is not None:
            raise BusinessRuleError(f"the email address {value} is used by another account")
    elif field == "phone":
        digits = sum(ch.isdigit() for ch in value)
        if not PHONE_RE.match(value) or not 7 <= digits <= 15:
            raise BusinessRuleError(
                f"{raw!r} is not a valid phone number (7-15 digits, optionally starting with +)"
            )
    elif field == "address":
        if len(value) < 10 or len(value) > 300:
            raise BusinessRuleError("the address must be 10-300 characters long")
    elif field == "name":
        if len(value) > 100:
            raise BusinessRuleError("the name must be at most 100 characters long")
    else:
        raise BusinessRuleError(f"field must be one of {', '.join(PROFILE_FIELDS)}")
    return value


def update_info(ctx: ToolContext, args: dict[str, Any]) -> dict[str, Any]:
    cust = _customer(ctx, args["user_id"])
    info = args["info"]
    field = info["field"]
    value = _check_profile_value(ctx, cust["id"], field, info["value"])
    old = cust[field]
    if old == value:
        raise BusinessRuleError(f"the {field} on file is already {value}")
    change_id = _next_id(ctx.conn, "profile_changes", "PRC")
    ctx.conn.execute(
        f"UPDATE customers SET {field} = ? WHERE id = ?",
        (value, cust["id"]),
    )
    moved: list[str] = []
    if field == "address":  # orders not yet shipped follow the new address
        moved = [
            r["id"]
            for r in ctx.conn.execute(
                "SELECT id FROM orders WHERE customer_id = ? AND status IN ('pending', "
                "'processing') ORDER BY id",
                (cust["id"],),
            )
        ]
        ctx.conn.executemany(
            "UPDATE orders SET shipping_address = ?, updated_at = ? WHERE id = ?",
            [(value, ctx.now, oid) for oid in moved],
        )
    ctx.conn.execute(
        "INSERT INTO profile_changes (id, customer_id, field, old_value, new_value, created_at, "
        "approval_id) VALUES (?,?,?,?,?,?,?)",
        (change_id, cust["id"], field, old, value, ctx.now, ctx.approval_id),
    )
    return {
        "ok": True,
        "change_id": change_id,
        "user_id": cust["id"],
        "field": field,
        "value": value,
        "orders_updated": moved,
        "message": f"The {field} of account {cust['id']} was changed to {value}."
        + (f" Orders not yet shipped ({', '.join(moved)}) go to the new address." if moved
           else ""),
    }


IMPLEMENTATIONS: Final[dict[str, ToolImpl]] = {
    "get_order": get_order,
    "get_order_history": get_order_history,
    "create_ticket": create_ticket,
    "cancel_order": cancel_order,
    "reset_password": reset_password,
    "send_replacement": send_replacement,
    "create_refund": create_refund,
    "issue_voucher": issue_voucher,
    "create_return": create_return,
    "create_complaint": create_complaint,
    "update_info": update_info,
}
