"""Tables of the demo shop and its first-run seeding.

Money is stored in integer cents (no float drift in refund arithmetic) and
times as UNIX seconds. The seed file gives dates as "days ago" so that, e.g.,
ORD1003 is always inside the 30-day return window when a database is new.
"""

from __future__ import annotations

import json
import logging
import sqlite3
from importlib import resources
from typing import Any, Final

log = logging.getLogger(__name__)

SCHEMA_VERSION: Final = 1
DAY: Final = 86400.0

DDL: Final = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS customers (
    id TEXT PRIMARY KEY, name TEXT NOT NULL, email TEXT NOT NULL UNIQUE, phone TEXT NOT NULL,
    address TEXT NOT NULL, tier TEXT NOT NULL DEFAULT 'standard', created_at REAL NOT NULL);
CREATE TABLE IF NOT EXISTS products (
    id TEXT PRIMARY KEY, name TEXT NOT NULL, category TEXT NOT NULL, price_cents INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS orders (
    id TEXT PRIMARY KEY, customer_id TEXT NOT NULL REFERENCES customers(id),
    status TEXT NOT NULL CHECK (status IN
        ('pending','processing','shipped','delivered','completed','cancelled','refunded')),
    created_at REAL NOT NULL, updated_at REAL NOT NULL,
    shipped_at REAL, delivered_at REAL, cancelled_at REAL,
    subtotal_cents INTEGER NOT NULL, shipping_cents INTEGER NOT NULL, total_cents INTEGER NOT NULL,
    paid_cents INTEGER NOT NULL, refunded_cents INTEGER NOT NULL DEFAULT 0,
    currency TEXT NOT NULL DEFAULT 'USD', payment_method TEXT NOT NULL,
    shipping_method TEXT NOT NULL, shipping_address TEXT NOT NULL,
    carrier TEXT, tracking_number TEXT,
    CHECK (refunded_cents <= paid_cents));
CREATE INDEX IF NOT EXISTS orders_customer ON orders(customer_id);
CREATE TABLE IF NOT EXISTS order_items (
    order_id TEXT NOT NULL REFERENCES orders(id), product_id TEXT NOT NULL REFERENCES products(id),
    quantity INTEGER NOT NULL CHECK (quantity > 0), unit_price_cents INTEGER NOT NULL,
    PRIMARY KEY (order_id, product_id));
CREATE TABLE IF NOT EXISTS tickets (
    id TEXT PRIMARY KEY, customer_id TEXT NOT NULL REFERENCES customers(id), order_id TEXT,
    type TEXT NOT NULL, details TEXT NOT NULL, status TEXT NOT NULL, created_at REAL NOT NULL,
    approval_id TEXT);
CREATE TABLE IF NOT EXISTS refunds (
    id TEXT PRIMARY KEY, order_id TEXT NOT NULL REFERENCES orders(id),
    amount_cents INTEGER NOT NULL CHECK (amount_cents > 0), reason TEXT NOT NULL,
    status TEXT NOT NULL, created_at REAL NOT NULL, approval_id TEXT);
CREATE TABLE IF NOT EXISTS vouchers (
    id TEXT PRIMARY KEY, customer_id TEXT NOT NULL REFERENCES customers(id),
    code TEXT NOT NULL UNIQUE,
    amount_cents INTEGER NOT NULL CHECK (amount_cents > 0), reason TEXT NOT NULL,
    created_at REAL NOT NULL, expires_at REAL NOT NULL, approval_id TEXT);
CREATE TABLE IF NOT EXISTS returns (
    id TEXT PRIMARY KEY, order_id TEXT NOT NULL REFERENCES orders(id), status TEXT NOT NULL,
    label_url TEXT NOT NULL, created_at REAL NOT NULL, approval_id TEXT);
CREATE TABLE IF NOT EXISTS return_items (
    return_id TEXT NOT NULL REFERENCES returns(id), order_id TEXT NOT NULL,
    product_id TEXT NOT NULL, UNIQUE (order_id, product_id));
CREATE TABLE IF NOT EXISTS replacements (
    id TEXT PRIMARY KEY, order_id TEXT NOT NULL REFERENCES orders(id), product_id TEXT NOT NULL,
    status TEXT NOT NULL, created_at REAL NOT NULL, approval_id TEXT);
CREATE TABLE IF NOT EXISTS complaints (
    id TEXT PRIMARY KEY, customer_id TEXT NOT NULL REFERENCES customers(id), order_id TEXT,
    type TEXT NOT NULL, details TEXT NOT NULL, status TEXT NOT NULL, created_at REAL NOT NULL,
    approval_id TEXT);
CREATE TABLE IF NOT EXISTS password_resets (
    id TEXT PRIMARY KEY, customer_id TEXT NOT NULL REFERENCES customers(id), email TEXT NOT NULL,
    created_at REAL NOT NULL, expires_at REAL NOT NULL, approval_id TEXT);
CREATE TABLE IF NOT EXISTS profile_changes (
    id TEXT PRIMARY KEY, customer_id TEXT NOT NULL REFERENCES customers(id), field TEXT NOT NULL,
    old_value TEXT NOT NULL, new_value TEXT NOT NULL, created_at REAL NOT NULL, approval_id TEXT);
CREATE TABLE IF NOT EXISTS approvals (
    id TEXT PRIMARY KEY, session_id TEXT NOT NULL, call_id TEXT NOT NULL, tool TEXT NOT NULL,
    customer_id TEXT,
    proposed_arguments TEXT NOT NULL, approved_arguments TEXT,
    state TEXT NOT NULL CHECK (state IN
        ('pending','approved','executed','failed','rejected','expired','cancelled')),
    created_at REAL NOT NULL, expires_at REAL NOT NULL,
    decided_by TEXT, decided_at REAL, reason TEXT, result TEXT, error TEXT,
    UNIQUE (session_id, call_id));
CREATE INDEX IF NOT EXISTS approvals_session ON approvals(session_id, state);
CREATE INDEX IF NOT EXISTS approvals_due ON approvals(state, expires_at);
CREATE TABLE IF NOT EXISTS audit_log (
    id INTEGER PRIMARY KEY AUTOINCREMENT, ts REAL NOT NULL, actor TEXT NOT NULL,
    event TEXT NOT NULL, tool TEXT NOT NULL,
    session_id TEXT, call_id TEXT, approval_id TEXT, customer_id TEXT,
    proposed_arguments TEXT, arguments TEXT, ok INTEGER NOT NULL, result TEXT, error TEXT);
CREATE INDEX IF NOT EXISTS audit_approval ON audit_log(approval_id);
"""


def cents(amount: float) -> int:
    return round(amount * 100)


def load_seed() -> dict[str, Any]:
    """The demo shop shipped with the app (``hitl_desktop/data/shop_seed.json``)."""
    text = resources.files("hitl_desktop").joinpath("data/shop_seed.json").read_text("utf-8")
    seed: dict[str, Any] = json.loads(text)
    return seed


def _ago(now: float, days: float | None) -> float | None:
    return None if days is None else now - days * DAY


def seed_database(conn: sqlite3.Connection, seed: dict[str, Any], now: float) -> None:
    """Insert the demo shop; the caller holds the transaction."""
    customers = {c["id"]: c for c in seed["customers"]}
    for c in seed["customers"]:
        conn.execute(
            "INSERT INTO customers (id, name, email, phone, address, tier, created_at) "
            "VALUES (?,?,?,?,?,?,?)",
            (c["id"], c["name"], c["email"], c["phone"], c["address"], c.get("tier", "standard"),
             _ago(now, c.get("member_since_days_ago", 0))),
        )
    prices = {}
    for p in seed["products"]:
        prices[p["id"]] = cents(p["price"])
        conn.execute(
            "INSERT INTO products (id, name, category, price_cents) VALUES (?,?,?,?)",
            (p["id"], p["name"], p["category"], prices[p["id"]]),
        )
    complaint_n = 0
    refund_n = 0
    for o in seed["orders"]:
        subtotal = sum(prices[i["product_id"]] * i["quantity"] for i in o["items"])
        shipping = cents(o.get("shipping_cost", 0.0))
        total = subtotal + shipping
        refunded = cents(o.get("refunded", 0.0))
        created = now - o["created_days_ago"] * DAY
        shipped = _ago(now, o.get("shipped_days_ago"))
        delivered = _ago(now, o.get("delivered_days_ago"))
        cancelled = _ago(now, o.get("cancelled_days_ago"))
        updated = max(t for t in (created, shipped, delivered, cancelled) if t is not None)
        conn.execute(
            "INSERT INTO orders (id, customer_id, status, created_at, updated_at, shipped_at, "
            "delivered_at, cancelled_at, subtotal_cents, shipping_cents, total_cents, paid_cents, "
            "refunded_cents, currency, payment_method, shipping_method, shipping_address, carrier, "
            "tracking_number) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
            (o["id"], o["customer_id"], o["status"], created, updated, shipped, delivered,
             cancelled, subtotal, shipping, total, total, refunded,
             seed.get("shop", {}).get("currency", "USD"), o["payment_method"],
             o["shipping_method"], customers[o["customer_id"]]["address"], o.get("carrier"),
             o.get("tracking_number")),
        )
        for item in o["items"]:
            conn.execute(
                "INSERT INTO order_items (order_id, product_id, quantity, unit_price_cents) "
                "VALUES (?,?,?,?)",
                (o["id"], item["product_id"], item["quantity"], prices[item["product_id"]]),
            )
        if refunded:
            refund_n += 1
            conn.execute(
                "INSERT INTO refunds (id, order_id, amount_cents, reason, status, created_at) "
                "VALUES (?,?,?,?,?,?)",
                (f"REF{10000 + refund_n}", o["id"], refunded,
                 o.get("refund_reason", "Order cancelled before shipping"), "completed", updated),
            )
        if "complaint" in o:
            complaint_n += 1
            c = o["complaint"]
            conn.execute(
                "INSERT INTO complaints (id, customer_id, order_id, type, details, status, "
                "created_at) VALUES (?,?,?,?,?,?,?)",
                (f"CMP{10000 + complaint_n}", o["customer_id"], o["id"], c["type"], c["details"],
                 c.get("status", "open"), _ago(now, c.get("days_ago", 0))),
            )
    for n, t in enumerate(seed.get("tickets", []), start=1):
        conn.execute(
            "INSERT INTO tickets (id, customer_id, order_id, type, details, status, created_at) "
            "VALUES (?,?,?,?,?,?,?)",
            (f"TCK{10000 + n}", t["customer_id"], t.get("order_id"), t["type"], t["details"],
             t.get("status", "open"), _ago(now, t.get("days_ago", 0))),
        )
    log.info(
        "seeded the demo shop: %d customers, %d products, %d orders",
        len(seed["customers"]), len(seed["products"]), len(seed["orders"]),
    )
