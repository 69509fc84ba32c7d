"""The shop database on real SQLite files: seed, every tool's rules, approvals exactly once."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hitl_desktop.core.catalog import InvalidArguments, ToolCatalog
from hitl_desktop.core.protocol import ErrorCode
from hitl_desktop.store import (
    ApprovalRecord,
    Conflict,
    Expired,
    Forbidden,
    NotFound,
    ShopDatabase,
    default_catalog,
)
from hitl_desktop.store.schema import DAY
from tests.support.catalogs import catalog_data

T0 = 1_790_000_000.0  # a fixed "now" for seeding


class Clock:
    """An injectable clock the test moves by hand."""

    def __init__(self, t: float = T0) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t

    def advance(self, seconds: float) -> None:
        self.t += seconds


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def catalog() -> ToolCatalog:
    return default_catalog()


@pytest.fixture
def db(tmp_path: Path, catalog: ToolCatalog, clock: Clock) -> Iterator[ShopDatabase]:
    shop = ShopDatabase.open(tmp_path / "data", catalog, clock=clock)
    yield shop
    shop.close()


def raw(db: ShopDatabase, sql: str, *params: Any) -> list[tuple[Any, ...]]:
    """Read the file through a separate connection: what is really committed."""
    conn = sqlite3.connect(db.path)
    try:
        return [tuple(r) for r in conn.execute(sql, params)]
    finally:
        conn.close()


def status(db: ShopDatabase, order_id: str) -> str:
    return str(raw(db, "SELECT status FROM orders WHERE id = ?", order_id)[0][0])


def approve(db: ShopDatabase, tool: str, args: dict[str, Any], *, customer: str = "CUST1001",
            agent: str = "Sam") -> ApprovalRecord:
    rec = db.create_approval("s1", f"call_{tool}_{len(db.approvals_of('s1'))}", tool, args,
                             customer_id=customer)
    return db.approve_and_execute(rec.approval_id, agent=agent)


def run(db: ShopDatabase, tool: str, args: dict[str, Any], customer: str | None = "CUST1001") -> (
    dict[str, Any]
):
    return db.run_tool(tool, args, actor="assistant", customer_id=customer, session_id="s1",
                       call_id="c1")


# ------------------------------------------------------------------ seed


def test_seed_holds_the_shared_facts(db: ShopDatabase) -> None:
    customers = dict(raw(db, "SELECT id, name FROM customers ORDER BY id"))
    assert customers == {
        "CUST1001": "Alex Morgan", "CUST1002": "Priya Shah", "CUST1003": "Jonas Weber",
        "CUST1004": "Maria Garcia", "CUST1005": "Kenji Tanaka"}
    assert db.customer("CUST1001")["email"] == "alex.morgan@example.com"  # type: ignore[index]
    orders = dict(raw(db, "SELECT id, status FROM orders WHERE customer_id = 'CUST1001'"))
    assert orders == {
        "ORD1001": "pending", "ORD1002": "shipped", "ORD1003": "delivered",
        "ORD1004": "cancelled", "ORD1005": "refunded", "ORD1006": "completed",
        "ORD1007": "delivered", "ORD1008": "processing"}
    others = [r[0] for r in raw(db, "SELECT id FROM orders WHERE customer_id != 'CUST1001' "
                                    "ORDER BY id")]
    assert others == [f"ORD{n}" for n in range(1009, 1017)]
    products = [r[0] for r in raw(db, "SELECT id FROM products ORDER BY id")]
    assert products[0] == "P1001" and all(p.startswith("P1") for p in products)
    o2 = db.order("ORD1002")
    assert o2 is not None and o2["tracking_number"] and o2["carrier"]
    o3 = db.order("ORD1003")
    assert o3 is not None
    assert raw(db, "SELECT delivered_at FROM orders WHERE id='ORD1003'")[0][0] == T0 - 10 * DAY
    assert raw(db, "SELECT delivered_at FROM orders WHERE id='ORD1007'")[0][0] == T0 - 60 * DAY
    assert o3["returnable"] is True and o3["can_cancel"] is False
    assert raw(db, "SELECT type FROM complaints WHERE order_id='ORD1006'") == [("product_quality",)]
    for oid in ("ORD1001", "ORD1008"):
        assert db.order(oid)["can_cancel"] is True  # type: ignore[index]
    for row in raw(db, "SELECT total_cents, subtotal_cents + shipping_cents, paid_cents "
                       "FROM orders"):
        assert row[0] == row[1] == row[2]


def test_database_is_wal_and_not_reseeded(tmp_path: Path, catalog: ToolCatalog,
                                          clock: Clock) -> None:
    first = ShopDatabase.open(tmp_path, catalog, clock=clock)
    assert first.path == tmp_path / "shop.sqlite3"
    approve(first, "cancel_order", {"order_id": "ORD1001"})
    first.close()
    clock.advance(40 * DAY)
    again = ShopDatabase.open(tmp_path / "shop.sqlite3", catalog, clock=clock)
    try:
        assert status(again, "ORD1001") == "cancelled"
        assert again.count("customers") == 5
        assert again.count("orders") == 16
        assert raw(again, "PRAGMA journal_mode") == [("wal",)]
        with pytest.raises(NotFound):
            again.count("sqlite_master; DROP TABLE orders")
    finally:
        again.close()


def test_customer_panel_data(db: ShopDatabase) -> None:
    cust = db.customer("cust1001")
    assert cust is not None
    assert cust["name"] == "Alex Morgan" and cust["order_count"] == 8
    assert db.customer("CUST9999") is None
    orders = db.orders_of("CUST1001")
    assert [o["order_id"] for o in orders][:2] == ["ORD1008", "ORD1001"]
    assert all(o["customer_id"] == "CUST1001" for o in orders)
    assert db.orders_of("CUST9999") == []
    json.dumps(orders)  # JSON-able for the protocol


# ------------------------------------------------------------------ auto tools


def test_get_order(db: ShopDatabase) -> None:
    out = run(db, "get_order", {"order_id": "ord1003"})
    assert out["ok"] is True
    order = out["order"]
    assert order["order_id"] == "ORD1003" and order["status"] == "delivered"
    assert [i["product_id"] for i in order["items"]] == ["P1002", "P1004"]
    assert order["total"] == 127.5 and order["refundable_amount"] == 127.5
    assert order["payment_method"] == "PayPal"
    assert order["return_window_ends"] is not None
    assert run(db, "get_order", {"order_id": "ORD9999"}) == {
        "ok": False, "error": "no order with id 'ORD9999'"}
    assert run(db, "get_order", {"order_id": "ORD1009"}) == {
        "ok": False, "error": "order ORD1009 does not belong to customer CUST1001"}
    assert run(db, "get_order", {"order_id": "ORD1009"}, customer=None)["ok"] is True
    assert db.audit_rows() == []  # reads are not audited


def test_get_order_history(db: ShopDatabase) -> None:
    out = run(db, "get_order_history", {"user_id": "CUST1001"})
    assert out["ok"] is True
    assert [o["order_id"] for o in out["orders"]] == [
        "ORD1008", "ORD1001", "ORD1002", "ORD1003", "ORD1004", "ORD1005", "ORD1006", "ORD1007"]
    assert out["orders"][1]["products"] == ["Aurora Wireless Headphones",
                                            "Summit Insulated Water Bottle 1L"]
    assert run(db, "get_order_history", {"user_id": "CUST4242"})["error"] == (
        "no customer with id 'CUST4242'")
    refused = run(db, "get_order_history", {"user_id": "CUST1002"})
    assert refused["ok"] is False and "not the customer of this conversation" in refused["error"]


def test_create_ticket_runs_and_is_audited(db: ShopDatabase) -> None:
    out = run(db, "create_ticket", {"user_id": "CUST1001", "type": "damaged_product",
                                    "details": "Socks arrived torn", "order_id": "ORD1003"})
    assert out["ok"] is True and out["ticket_id"] == "TCK10002"
    none = run(db, "create_ticket", {"user_id": "CUST1001", "type": "bug_reported",
                                     "details": "Checkout button does nothing", "order_id": "N/A"})
    assert none["ok"] is True and none["order_id"] is None
    assert raw(db, "SELECT id, order_id, type FROM tickets WHERE customer_id='CUST1001' "
                   "ORDER BY id") == [("TCK10002", "ORD1003", "damaged_product"),
                                      ("TCK10003", None, "bug_reported")]
    audit = db.audit_rows(tool="create_ticket")
    assert [(a["event"], a["actor"], a["ok"]) for a in audit] == [
        ("auto", "assistant", True), ("auto", "assistant", True)]
    assert audit[0]["arguments"]["details"] == "Socks arrived torn"
    assert audit[0]["session_id"] == "s1" and audit[0]["call_id"] == "c1"


@pytest.mark.parametrize(
    ("args", "error"),
    [
        ({"user_id": "CUST1001", "type": "other", "details": "x", "order_id": "ORD1009"},
         "order ORD1009 does not belong to customer CUST1001"),
        ({"user_id": "CUST1001", "type": "other", "details": "x", "order_id": "ORD0000"},
         "no order with id 'ORD0000'"),
        ({"user_id": "CUST0000", "type": "other", "details": "x", "order_id": "N/A"},
         "no customer with id 'CUST0000'"),
        ({"user_id": "CUST1001", "type": "other", "details": "   ", "order_id": "N/A"},
         "details must not be empty"),
        ({"user_id": "CUST1001", "type": "complaint", "details": "x", "order_id": "N/A"},
         "create_ticket: type: 'complaint' is not one of: bug_reported, damaged_product, other"),
    ],
)
def test_create_ticket_rules(db: ShopDatabase, args: dict[str, Any], error: str) -> None:
    before = db.count("tickets")
    assert run(db, "create_ticket", args) == {"ok": False, "error": error}
    assert db.count("tickets") == before


def test_run_tool_refuses_tools_that_need_approval(db: ShopDatabase) -> None:
    with pytest.raises(Forbidden) as info:
        run(db, "cancel_order", {"order_id": "ORD1001"})
    assert info.value.code is ErrorCode.FORBIDDEN
    assert status(db, "ORD1001") == "pending"
    assert run(db, "format_disk", {}) == {"ok": False, "error": "unknown tool 'format_disk'"}


def test_catalog_decides_what_runs_automatically(tmp_path: Path, clock: Clock) -> None:
    """A shop that edits tools.json to make cancel_order automatic gets exactly that."""
    data = default_catalog().to_dict()
    for tool in data["tools"]:
        if tool["name"] == "cancel_order":
            tool["approval"] = False
    shop = ShopDatabase.open(tmp_path, ToolCatalog.from_dict(data), clock=clock)
    try:
        assert run(shop, "cancel_order", {"order_id": "ORD1001"})["ok"] is True
        assert shop.audit_rows()[0]["event"] == "auto"
    finally:
        shop.close()


# ------------------------------------------------------------------ approval tools: rules


def test_cancel_order_pending_and_processing(db: ShopDatabase) -> None:
    rec = approve(db, "cancel_order", {"order_id": "ORD1001"})
    assert rec.state == "executed" and rec.result is not None
    assert rec.result["ok"] is True and rec.result["status"] == "cancelled"
    assert rec.result["refund_amount"] == 158.95
    assert status(db, "ORD1001") == "cancelled"
    assert raw(db, "SELECT refunded_cents, paid_cents FROM orders WHERE id='ORD1001'") == [
        (15895, 15895)]
    assert raw(db, "SELECT amount_cents, approval_id FROM refunds WHERE order_id='ORD1001'") == [
        (15895, rec.approval_id)]
    assert approve(db, "cancel_order", {"order_id": "ORD1008"}).state == "executed"
    assert status(db, "ORD1008") == "cancelled"


@pytest.mark.parametrize(
    ("order_id", "fragment"),
    [
        ("ORD1002", "has already shipped and can no longer be cancelled"),
        ("ORD1003", "was delivered on"),
        ("ORD1004", "is already cancelled"),
        ("ORD1005", "is refunded and cannot be cancelled"),
        ("ORD1006", "cannot be cancelled"),
        ("ORD4040", "no order with id 'ORD4040'"),
        ("ORD1011", "does not belong to customer CUST1001"),
    ],
)
def test_cancel_order_rules(db: ShopDatabase, order_id: str, fragment: str) -> None:
    before = raw(db, "SELECT status, refunded_cents FROM orders ORDER BY id")
    rec = approve(db, "cancel_order", {"order_id": order_id})
    assert rec.state == "failed"
    assert rec.error is not None and fragment in rec.error
    assert rec.result == {"ok": False, "error": rec.error}
    assert raw(db, "SELECT status, refunded_cents FROM orders ORDER BY id") == before
    audit = db.audit_rows(approval_id=rec.approval_id)
    assert [(a["event"], a["ok"], a["error"]) for a in audit] == [("failed", False, rec.error)]


def test_reset_password(db: ShopDatabase, clock: Clock) -> None:
    rec = approve(db, "reset_password", {"user_id": "CUST1001"})
    assert rec.state == "executed" and rec.result is not None
    assert rec.result["sent_to"] == "a***@example.com"
    assert "1 hour" in rec.result["message"]
    assert raw(db, "SELECT customer_id, email, expires_at - created_at FROM password_resets") == [
        ("CUST1001", "alex.morgan@example.com", 3600.0)]
    assert approve(db, "reset_password", {"user_id": "CUST0000"}).error == (
        "no customer with id 'CUST0000'")
    other = approve(db, "reset_password", {"user_id": "CUST1002"})
    assert other.state == "failed" and "not the customer of this conversation" in str(other.error)


def test_send_replacement(db: ShopDatabase) -> None:
    rec = approve(db, "send_replacement", {"product_id": "P1004", "order_id": "ORD1003"})
    assert rec.state == "executed" and rec.result is not None
    assert rec.result["product_name"] == "Merino Wool Crew Socks (3-pack)"
    assert raw(db, "SELECT order_id, product_id FROM replacements") == [("ORD1003", "P1004")]
    again = approve(db, "send_replacement", {"product_id": "P1004", "order_id": "ORD1003"})
    assert again.state == "failed" and "already sent" in str(again.error)
    not_delivered = approve(db, "send_replacement", {"product_id": "P1001", "order_id": "ORD1001"})
    assert "only possible for delivered orders" in str(not_delivered.error)
    closed = approve(db, "send_replacement", {"product_id": "P1008", "order_id": "ORD1006"})
    assert "ORD1006 is completed; replacements are only possible" in str(closed.error)
    not_in = approve(db, "send_replacement", {"product_id": "P1001", "order_id": "ORD1003"})
    assert not_in.error == "product P1001 is not part of order ORD1003 (it contains P1002, P1004)"
    returned = approve(db, "create_return", {"order_id": "ORD1003", "product_ids": ["P1002"]})
    assert returned.state == "executed"
    after_return = approve(db, "send_replacement", {"product_id": "P1002", "order_id": "ORD1003"})
    assert "is being returned" in str(after_return.error)
    assert db.count("replacements") == 1


def test_create_refund(db: ShopDatabase) -> None:
    rec = approve(db, "create_refund", {"order_id": "ORD1003", "amount": 20.5,
                                        "reason": "Late delivery"})
    assert rec.state == "executed" and rec.result is not None
    assert rec.result["amount"] == 20.5 and rec.result["remaining_refundable"] == 107.0
    assert rec.result["refunded_to"] == "PayPal"
    assert status(db, "ORD1003") == "delivered"
    too_much = approve(db, "create_refund", {"order_id": "ORD1003", "amount": 107.01,
                                             "reason": "x"})
    assert too_much.error == (
        "amount 107.01 USD exceeds what can still be refunded for order ORD1003: 107.00 USD "
        "(paid 127.50 USD, already refunded 20.50 USD)")
    rest = approve(db, "create_refund", {"order_id": "ORD1003", "amount": 107,
                                         "reason": "Item faulty"})
    assert rest.state == "executed"
    assert status(db, "ORD1003") == "refunded"
    assert raw(db, "SELECT refunded_cents FROM orders WHERE id='ORD1003'") == [(12750,)]
    done = approve(db, "create_refund", {"order_id": "ORD1003", "amount": 1, "reason": "x"})
    assert done.error == "order ORD1003 has already been refunded in full"


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        ({"order_id": "ORD1005", "amount": 10, "reason": "x"}, "already been refunded in full"),
        ({"order_id": "ORD1003", "amount": 0, "reason": "x"}, "must be greater than 0"),
        ({"order_id": "ORD1003", "amount": -5, "reason": "x"}, "must be greater than 0"),
        ({"order_id": "ORD1003", "amount": 1.005, "reason": "x"}, "at most 2 decimals"),
        ({"order_id": "ORD1003", "amount": 1e308, "reason": "x"}, "far too large"),
        ({"order_id": "ORD1003", "amount": 5, "reason": " "}, "reason must not be empty"),
        ({"order_id": "ORD1012", "amount": 5, "reason": "x"}, "does not belong"),
        ({"order_id": "ORDX", "amount": 5, "reason": "x"}, "no order with id 'ORDX'"),
    ],
)
def test_create_refund_rules(db: ShopDatabase, args: dict[str, Any], fragment: str) -> None:
    before = db.count("refunds")
    rec = approve(db, "create_refund", args)
    assert rec.state == "failed" and fragment in str(rec.error)
    assert db.count("refunds") == before


def test_refund_is_capped_by_max_refund_policy(tmp_path: Path, clock: Clock) -> None:
    shop = ShopDatabase.open(tmp_path, ToolCatalog.from_dict(catalog_data(max_refund=100.0)),
                             clock=clock)
    try:
        rec = approve(shop, "create_refund", {"order_id": "ORD1003", "amount": 120,
                                              "reason": "x"})
        assert rec.error == "amount 120.00 USD is above the maximum of 100.00 USD per refund"
        assert approve(shop, "create_refund", {"order_id": "ORD1003", "amount": 100,
                                               "reason": "x"}).state == "executed"
    finally:
        shop.close()


def test_issue_voucher(db: ShopDatabase, clock: Clock) -> None:
    rec = approve(db, "issue_voucher", {"user_id": "CUST1001", "amount": 50,
                                        "reason": "Late delivery"})
    assert rec.state == "executed" and rec.result is not None
    assert rec.result["amount"] == 50.0 and rec.result["code"].startswith("NW-")
    assert raw(db, "SELECT customer_id, amount_cents, code FROM vouchers") == [
        ("CUST1001", 5000, rec.result["code"])]
    for amount, fragment in ((50.01, "above the maximum voucher value of 50.00 USD"),
                             (0, "must be greater than 0"), (-1, "must be greater than 0")):
        bad = approve(db, "issue_voucher", {"user_id": "CUST1001", "amount": amount,
                                            "reason": "x"})
        assert bad.state == "failed" and fragment in str(bad.error), amount
    assert approve(db, "issue_voucher", {"user_id": "CUST9", "amount": 5,
                                         "reason": "x"}).error == "no customer with id 'CUST9'"
    assert db.count("vouchers") == 1


def test_create_return(db: ShopDatabase) -> None:
    rec = approve(db, "create_return", {"order_id": "ORD1003",
                                        "product_ids": ["P1002", "p1002"]})
    assert rec.state == "executed" and rec.result is not None
    assert rec.result["product_ids"] == ["P1002"]
    assert rec.result["label_url"].endswith("/label.pdf")
    order = db.order("ORD1003")
    assert order is not None
    assert [i["returned"] for i in order["items"]] == [True, False]
    again = approve(db, "create_return", {"order_id": "ORD1003", "product_ids": ["P1002",
                                                                                 "P1004"]})
    assert again.error == "product(s) P1002 of order ORD1003 are already being returned"
    assert approve(db, "create_return", {"order_id": "ORD1003",
                                         "product_ids": ["P1004"]}).state == "executed"
    assert db.order("ORD1003")["returnable"] is False  # type: ignore[index]


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        ({"order_id": "ORD1007", "product_ids": ["P1010"]},
         "delivered 60 days ago"),
        ({"order_id": "ORD1006", "product_ids": ["P1008"]},
         "order ORD1006 is completed; only delivered orders can be returned"),
        ({"order_id": "ORD1002", "product_ids": ["P1007"]},
         "order ORD1002 is shipped; only delivered orders can be returned"),
        ({"order_id": "ORD1001", "product_ids": ["P1001"]}, "only delivered orders"),
        ({"order_id": "ORD1003", "product_ids": ["P1001", "P1002"]},
         "product(s) P1001 not part of order ORD1003"),
        ({"order_id": "ORD1003", "product_ids": []}, "at least one product"),
        ({"order_id": "ORD1009", "product_ids": ["P1003"]}, "does not belong"),
    ],
)
def test_create_return_rules(db: ShopDatabase, args: dict[str, Any], fragment: str) -> None:
    rec = approve(db, "create_return", args)
    assert rec.state == "failed" and fragment in str(rec.error)
    assert db.count("returns") == 0 and db.count("return_items") == 0


def test_return_window_follows_the_clock(db: ShopDatabase, clock: Clock) -> None:
    clock.advance(21 * DAY)  # ORD1003 now delivered 31 days ago
    rec = approve(db, "create_return", {"order_id": "ORD1003", "product_ids": ["P1002"]})
    assert rec.state == "failed" and "delivered 31 days ago" in str(rec.error)
    assert db.order("ORD1003")["returnable"] is False  # type: ignore[index]


def test_create_complaint(db: ShopDatabase) -> None:
    rec = approve(db, "create_complaint", {"user_id": "CUST1001", "type": "order_delay",
                                           "details": "Jacket is a week late",
                                           "order_id": "ORD1002"})
    assert rec.state == "executed" and rec.result is not None
    assert rec.result["complaint_id"] == "CMP10002"
    no_order = approve(db, "create_complaint", {"user_id": "CUST1001", "type": "other",
                                                "details": "Rude courier", "order_id": "N/A"})
    assert no_order.state == "executed"
    assert raw(db, "SELECT order_id, type FROM complaints WHERE customer_id='CUST1001' "
                   "ORDER BY id") == [("ORD1006", "product_quality"), ("ORD1002", "order_delay"),
                                      (None, "other")]
    wrong = approve(db, "create_complaint", {"user_id": "CUST1001", "type": "other",
                                             "details": "x", "order_id": "ORD1016"})
    assert "does not belong" in str(wrong.error)


def test_update_info(db: ShopDatabase) -> None:
    def change(field: str, value: str) -> ApprovalRecord:
        return approve(db, "update_info", {"user_id": "CUST1001",
                                           "info": {"field": field, "value": value}})

    assert change("email", "Alex.M@Example.org").state == "executed"
    assert change("phone", "+1 (503) 555-0199").state == "executed"
    moved = change("address", "99 River Road, Portland, OR 97202, USA")
    assert moved.state == "executed" and moved.result is not None
    assert moved.result["orders_updated"] == ["ORD1001", "ORD1008"]
    assert raw(db, "SELECT id FROM orders WHERE shipping_address LIKE '99 River%' ORDER BY id") == [
        ("ORD1001",), ("ORD1008",)]
    assert change("name", "Alexandra Morgan").state == "executed"
    cust = db.customer("CUST1001")
    assert cust is not None
    assert (cust["email"], cust["phone"], cust["name"]) == (
        "alex.m@example.org", "+1 (503) 555-0199", "Alexandra Morgan")
    assert raw(db, "SELECT field, old_value FROM profile_changes ORDER BY id") == [
        ("email", "alex.morgan@example.com"), ("phone", "+1 555 0100 101"),
        ("address", "12 Harbor Lane, Portland, OR 97201, USA"), ("name", "Alex Morgan")]
    for field, value, fragment in (
        ("email", "not-an-email", "is not a valid email address"),
        ("email", "priya.shah@example.com", "used by another account"),
        ("email", "alex.m@example.org", "already alex.m@example.org"),
        ("phone", "call me", "is not a valid phone number"),
        ("phone", "12345", "is not a valid phone number"),
        ("address", "x", "10-300 characters"),
        ("name", "   ", "must not be empty"),
    ):
        bad = change(field, value)
        assert bad.state == "failed" and fragment in str(bad.error), (field, value)
    assert db.count("profile_changes") == 4


# ------------------------------------------------------------------ approval life cycle


def test_approval_is_recorded_pending_and_idempotent_per_call(db: ShopDatabase,
                                                              clock: Clock) -> None:
    rec = db.create_approval("s1", "call_1", "cancel_order", '{"order_id": "ORD1001"}',
                             customer_id="CUST1001")
    assert rec.state == "pending" and rec.proposed_arguments == {"order_id": "ORD1001"}
    assert rec.expires_at == clock() + 24 * 3600
    assert db.create_approval("s1", "call_1", "cancel_order", {"order_id": "ORD1001"}) == rec
    with pytest.raises(Conflict):
        db.create_approval("s1", "call_1", "reset_password", {"user_id": "CUST1001"})
    assert db.pending_approvals("s1") == [rec]
    assert db.pending_approvals("s2") == []
    assert db.get_approval(rec.approval_id) == rec
    assert db.approval_arguments(rec.approval_id) == {"order_id": "ORD1001"}
    assert rec.model_output()["status"] == "awaiting_approval"
    assert status(db, "ORD1001") == "pending"
    assert db.audit_rows() == []
    custom = db.create_approval("s1", "call_2", "cancel_order", {"order_id": "ORD1008"},
                                expires_at=clock() + 60)
    assert custom.expires_at == clock() + 60
    assert db.create_approval("s1", "call_3", "cancel_order", {"order_id": "ORD1008"},
                              ttl_s=5).expires_at == clock() + 5


def test_create_approval_refuses_invalid_proposals(db: ShopDatabase) -> None:
    with pytest.raises(InvalidArguments) as info:
        db.create_approval("s1", "c", "create_refund", {"order_id": "ORD1003", "amount": "all",
                                                        "reason": "x"})
    assert info.value.path == "amount"
    with pytest.raises(InvalidArguments, match="unknown tool"):
        db.create_approval("s1", "c", "wire_money", {})
    assert db.approvals_of("s1") == []


def test_approve_executes_once_and_audits_both_argument_sets(db: ShopDatabase) -> None:
    rec = db.create_approval("s1", "call_1", "cancel_order", {"order_id": "ORD1001"},
                             customer_id="CUST1001")
    done = db.approve_and_execute(rec.approval_id, agent="Sam Rivera")
    assert done.state == "executed" and done.decided_by == "Sam Rivera"
    assert done.approved_arguments == {"order_id": "ORD1001"} and not done.edited
    [row] = db.audit_rows(approval_id=rec.approval_id)
    assert row["actor"] == "Sam Rivera" and row["event"] == "executed" and row["ok"] is True
    assert row["proposed_arguments"] == {"order_id": "ORD1001"}
    assert row["arguments"] == {"order_id": "ORD1001"}
    assert row["tool"] == "cancel_order" and row["session_id"] == "s1"
    assert row["call_id"] == "call_1" and row["customer_id"] == "CUST1001"
    with pytest.raises(Conflict, match="already executed by Sam Rivera") as info:
        db.approve_and_execute(rec.approval_id, agent="Sam Rivera")  # a retry
    assert info.value.code is ErrorCode.CONFLICT
    with pytest.raises(Conflict):
        db.reject(rec.approval_id, agent="Kim", reason="too late")
    assert len(db.audit_rows()) == 1 and db.count("refunds") == 4
    out = done.model_output()
    assert out["ok"] is True and out["approved_by"] == "Sam Rivera"


def test_edited_arguments_run_and_both_are_recorded(db: ShopDatabase) -> None:
    rec = db.create_approval("s1", "call_1", "create_refund",
                             {"order_id": "ORD1003", "amount": 127.5, "reason": "Broken"},
                             customer_id="CUST1001")
    edited = {"order_id": "ORD1003", "amount": 30, "reason": "Partial refund for the socks"}
    done = db.approve_and_execute(rec.approval_id, agent="Kim", arguments=edited)
    assert done.state == "executed" and done.edited
    assert done.approved_arguments == edited and done.arguments == edited
    assert raw(db, "SELECT refunded_cents FROM orders WHERE id='ORD1003'") == [(3000,)]
    [row] = db.audit_rows(approval_id=rec.approval_id)
    assert row["proposed_arguments"]["amount"] == 127.5
    assert row["arguments"]["amount"] == 30
    out = done.model_output()
    assert out["arguments"] == edited and "changed the arguments" in out["note"]


def test_invalid_edited_arguments_are_refused_and_stay_pending(db: ShopDatabase) -> None:
    rec = db.create_approval("s1", "call_1", "update_info",
                             {"user_id": "CUST1001", "info": {"field": "email",
                                                              "value": "alex@new.example"}},
                             customer_id="CUST1001")
    with pytest.raises(InvalidArguments) as info:
        db.approve_and_execute(rec.approval_id, agent="Sam",
                               arguments={"user_id": "CUST1001",
                                          "info": {"field": "password", "value": "hunter2"}})
    assert info.value.path == "info.field"
    assert "info.field" in info.value.message and info.value.code is ErrorCode.INVALID_ARGUMENTS
    with pytest.raises(InvalidArguments, match=r"info\.value: is required"):
        db.approve_and_execute(rec.approval_id, agent="Sam",
                               arguments={"user_id": "CUST1001", "info": {"field": "email"}})
    still = db.get_approval(rec.approval_id)
    assert still is not None and still.state == "pending"
    assert db.audit_rows() == [] and db.count("profile_changes") == 0
    assert db.approve_and_execute(rec.approval_id, agent="Sam").state == "executed"


def test_failed_action_is_final_and_audited(db: ShopDatabase) -> None:
    rec = db.create_approval("s1", "call_1", "cancel_order", {"order_id": "ORD1002"},
                             customer_id="CUST1001")
    failed = db.approve_and_execute(rec.approval_id, agent="Sam")
    assert failed.state == "failed" and "already shipped" in str(failed.error)
    assert failed.model_output()["ok"] is False
    with pytest.raises(Conflict, match="already failed"):
        db.approve_and_execute(rec.approval_id, agent="Sam")
    assert status(db, "ORD1002") == "shipped"
    [row] = db.audit_rows()
    assert (row["event"], row["actor"], row["ok"]) == ("failed", "Sam", False)
    assert row["proposed_arguments"] == row["arguments"] == {"order_id": "ORD1002"}


def test_reject(db: ShopDatabase) -> None:
    rec = db.create_approval("s1", "call_1", "issue_voucher",
                             {"user_id": "CUST1001", "amount": 50, "reason": "asked nicely"})
    with pytest.raises(InvalidArguments, match="reason is required"):
        db.reject(rec.approval_id, agent="Kim", reason="  ")
    done = db.reject(rec.approval_id, agent="Kim", reason="No goodwill for this case")
    assert done.state == "rejected" and done.reason == "No goodwill for this case"
    out = done.model_output()
    assert out["status"] == "rejected" and out["reason"] == "No goodwill for this case"
    with pytest.raises(Conflict, match="already rejected by Kim"):
        db.approve_and_execute(rec.approval_id, agent="Sam")
    assert db.count("vouchers") == 0
    [row] = db.audit_rows()
    assert (row["event"], row["actor"]) == ("rejected", "Kim")
    assert row["proposed_arguments"]["amount"] == 50


def test_unknown_approval(db: ShopDatabase) -> None:
    for call in (lambda: db.approve_and_execute("apr_nope", agent="Sam"),
                 lambda: db.reject("apr_nope", agent="Sam", reason="x"),
                 lambda: db.approval_arguments("apr_nope")):
        with pytest.raises(NotFound) as info:
            call()
        assert info.value.code is ErrorCode.NOT_FOUND
    assert db.get_approval("apr_nope") is None


def test_expired_approval_cannot_run(db: ShopDatabase, clock: Clock) -> None:
    rec = db.create_approval("s1", "call_1", "cancel_order", {"order_id": "ORD1001"},
                             ttl_s=600)
    clock.advance(601)
    assert db.pending_approvals("s1") == []
    with pytest.raises(Expired) as info:
        db.approve_and_execute(rec.approval_id, agent="Sam")
    assert info.value.code is ErrorCode.EXPIRED
    assert status(db, "ORD1001") == "pending"
    gone = db.get_approval(rec.approval_id)
    assert gone is not None and gone.state == "expired"
    assert gone.model_output()["status"] == "expired"
    with pytest.raises(Conflict, match="already expired"):
        db.approve_and_execute(rec.approval_id, agent="Sam")
    [row] = db.audit_rows()
    assert (row["event"], row["actor"], row["ok"]) == ("expired", "system", False)

    other = db.create_approval("s1", "call_2", "cancel_order", {"order_id": "ORD1001"},
                               ttl_s=10)
    clock.advance(10)
    with pytest.raises(Expired):
        db.reject(other.approval_id, agent="Kim", reason="no")


def test_expire_due(db: ShopDatabase, clock: Clock) -> None:
    a = db.create_approval("s1", "c1", "cancel_order", {"order_id": "ORD1001"}, ttl_s=60)
    b = db.create_approval("s2", "c2", "cancel_order", {"order_id": "ORD1008"}, ttl_s=3600)
    assert db.expire_due() == []
    clock.advance(61)
    expired = db.expire_due()
    assert [(e.approval_id, e.state) for e in expired] == [(a.approval_id, "expired")]
    assert db.expire_due() == []
    assert [p.approval_id for p in db.pending_approvals()] == [b.approval_id]
    assert [e.approval_id for e in db.expire_due(clock() + 3600)] == [b.approval_id]
    assert [r["event"] for r in db.audit_rows()] == ["expired", "expired"]


# ------------------------------------------------------------------ exactly once, for real


def _race(n: int, approve_once: Any) -> list[Any]:
    barrier = threading.Barrier(n)
    results: list[Any] = [None] * n

    def worker(i: int) -> None:
        barrier.wait()
        try:
            results[i] = approve_once(i)
        except Exception as exc:
            results[i] = exc

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    return results


def _assert_cancelled_once(db: ShopDatabase, results: list[Any], approval_id: str) -> None:
    done = [r for r in results if isinstance(r, ApprovalRecord)]
    refused = [r for r in results if isinstance(r, Conflict)]
    assert len(done) == 1 and done[0].state == "executed", results
    assert len(refused) == len(results) - 1, results
    assert status(db, "ORD1001") == "cancelled"
    assert raw(db, "SELECT COUNT(*) FROM refunds WHERE order_id='ORD1001'") == [(1,)]
    assert raw(db, "SELECT refunded_cents FROM orders WHERE id='ORD1001'") == [(15895,)]
    rows = db.audit_rows(approval_id=approval_id)
    assert len(rows) == 1
    assert rows[0]["actor"] == done[0].decided_by
    assert rows[0]["proposed_arguments"] == {"order_id": "ORD1001"}
    assert rows[0]["arguments"] == {"order_id": "ORD1001"}


def test_concurrent_approvals_on_one_database_execute_once(db: ShopDatabase) -> None:
    rec = db.create_approval("s1", "call_1", "cancel_order", {"order_id": "ORD1001"},
                             customer_id="CUST1001")
    results = _race(8, lambda i: db.approve_and_execute(rec.approval_id, agent=f"agent{i}"))
    _assert_cancelled_once(db, results, rec.approval_id)


def test_concurrent_approvals_through_separate_connections_execute_once(
    tmp_path: Path, catalog: ToolCatalog, clock: Clock
) -> None:
    """Each thread has its own connection: only SQLite's write lock keeps it exactly once."""
    first = ShopDatabase.open(tmp_path, catalog, clock=clock)
    rec = first.create_approval("s1", "call_1", "cancel_order", {"order_id": "ORD1001"})
    shops = [first] + [ShopDatabase.open(tmp_path, catalog, clock=clock) for _ in range(5)]
    try:
        results = _race(len(shops), lambda i: shops[i].approve_and_execute(
            rec.approval_id, agent=f"agent{i}"))
        _assert_cancelled_once(first, results, rec.approval_id)
    finally:
        for s in shops:
            s.close()


APPROVER = """
import sys, time
from hitl_desktop.store import ShopDatabase, Conflict, default_catalog
db = ShopDatabase.open(sys.argv[1], default_catalog())
while time.time() < float(sys.argv[3]):
    pass
try:
    rec = db.approve_and_execute(sys.argv[2], agent=sys.argv[4])
    print("OK", rec.state)
except Conflict as exc:
    print("CONFLICT", exc.message)
"""


def test_concurrent_approvals_from_separate_processes_execute_once(
    tmp_path: Path, catalog: ToolCatalog
) -> None:
    import time

    shop = ShopDatabase.open(tmp_path, catalog)
    rec = shop.create_approval("s1", "call_1", "cancel_order", {"order_id": "ORD1001"})
    start_at = str(time.time() + 2.0)  # every process spins until the same instant
    procs = [
        subprocess.Popen([sys.executable, "-c", APPROVER, str(tmp_path), rec.approval_id,
                          start_at, f"proc{i}"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                         text=True)
        for i in range(3)
    ]
    outs = [p.communicate(timeout=60) for p in procs]
    try:
        lines = [o.strip() for o, _ in outs]
        assert sorted(line.split()[0] for line in lines) == ["CONFLICT", "CONFLICT", "OK"], outs
        assert status(shop, "ORD1001") == "cancelled"
        assert len(shop.audit_rows(approval_id=rec.approval_id)) == 1
        assert raw(shop, "SELECT COUNT(*) FROM refunds WHERE order_id='ORD1001'") == [(1,)]
    finally:
        shop.close()


def test_concurrent_auto_tools_get_distinct_ids(db: ShopDatabase) -> None:
    results = _race(6, lambda i: run(db, "create_ticket", {
        "user_id": "CUST1001", "type": "other", "details": f"issue {i}", "order_id": "N/A"}))
    ids = [r["ticket_id"] for r in results]
    assert len(set(ids)) == 6
    assert len(db.audit_rows(tool="create_ticket")) == 6


# ------------------------------------------------------------------ money invariants

ORDER_IDS = [f"ORD{n}" for n in range(1001, 1009)]


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.tuples(st.sampled_from(["refund", "cancel"]), st.sampled_from(ORDER_IDS),
                          st.integers(min_value=-1000, max_value=70000)), max_size=12))
def test_refunds_never_exceed_what_was_paid(steps: list[tuple[str, str, int]]) -> None:
    """Whatever sequence of refunds and cancellations is approved, the money adds up."""
    with tempfile.TemporaryDirectory() as tmp:
        shop = ShopDatabase.open(tmp, default_catalog(), clock=Clock())
        try:
            paid = dict(raw(shop, "SELECT id, paid_cents FROM orders"))
            for i, (kind, oid, cents_) in enumerate(steps):
                tool, args = (("create_refund", {"order_id": oid, "amount": cents_ / 100,
                                                 "reason": "test"}) if kind == "refund"
                              else ("cancel_order", {"order_id": oid}))
                rec = shop.create_approval("s", f"c{i}", tool, args, customer_id="CUST1001")
                done = shop.approve_and_execute(rec.approval_id, agent="prop")
                assert done.state in ("executed", "failed")
                if kind == "refund" and done.state == "executed":
                    assert 0 < cents_ <= 50000
            rows = raw(shop, "SELECT id, refunded_cents, status FROM orders")
            for oid, refunded, status_ in rows:
                assert 0 <= refunded <= paid[oid]
                (total,) = raw(shop, "SELECT COALESCE(SUM(amount_cents), 0) FROM refunds "
                                     "WHERE order_id = ?", oid)[0]
                assert total == refunded
                if refunded == paid[oid] and refunded:
                    assert status_ in ("refunded", "cancelled")
            executed = raw(shop, "SELECT COUNT(*) FROM approvals WHERE state = 'executed'")[0][0]
            audited = raw(shop, "SELECT COUNT(*) FROM audit_log WHERE event = 'executed'")[0][0]
            assert executed == audited
        finally:
            shop.close()


def test_catalog_tool_without_implementation_fails_clearly(
    tmp_path: Path, clock: Clock, caplog: pytest.LogCaptureFixture
) -> None:
    data = default_catalog().to_dict()
    data["tools"].append({
        "name": "gift_wrap", "approval": False, "description": "Wrap an order as a gift.",
        "parameters": {"type": "object", "properties": {"order_id": {"type": "string"}},
                       "required": ["order_id"], "additionalProperties": False}})
    with caplog.at_level("WARNING"):
        shop = ShopDatabase.open(tmp_path / "new" / "dir", ToolCatalog.from_dict(data),
                                 clock=clock)
    try:
        assert shop.path == tmp_path / "new" / "dir" / "shop.sqlite3"
        assert "gift_wrap" in caplog.text
        assert run(shop, "gift_wrap", {"order_id": "ORD1001"}) == {
            "ok": False, "error": "the tool gift_wrap is not implemented on this host"}
    finally:
        shop.close()


def test_edits_cannot_reach_another_customers_order(db: ShopDatabase) -> None:
    """The conversation's customer binds the approval, whatever the edited arguments say."""
    rec = db.create_approval("s1", "call_1", "cancel_order", {"order_id": "ORD1001"},
                             customer_id="CUST1001")
    done = db.approve_and_execute(rec.approval_id, agent="Sam", arguments={"order_id": "ORD1011"})
    assert done.state == "failed"
    assert done.error == "order ORD1011 does not belong to customer CUST1001"
    assert status(db, "ORD1011") == "pending" and status(db, "ORD1001") == "pending"
    [row] = db.audit_rows()
    assert row["proposed_arguments"] == {"order_id": "ORD1001"}
    assert row["arguments"] == {"order_id": "ORD1011"}
    assert json.loads(json.dumps(done.to_dict()))["approved_arguments"] == {"order_id": "ORD1011"}
