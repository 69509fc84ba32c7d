"""Proposals are checked before a human sees them (issue 12), through real sockets.

Every sensitive tool x the order/account states that matter (pending,
processing, shipped, delivered inside / outside the return window, cancelled,
refunded, another customer's, nonexistent): either the shop refuses it on the
host's dry run — no approval card, the model gets ``not_possible`` with the
shop's reason — or a card whose ``summary`` says what will happen; approving
it runs exactly that. A real host on port 0, the real ``openai`` client
against the fake server, a real SQLite shop.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import pytest

from hitl_desktop.core.protocol import ApprovalApprove, ChatSend, SessionClose
from tests.support.copilot_desk import Desk, desks, fake, last_input, open_desk
from tests.support.fake_openai import Call, FakeOpenAI, Reply
from tests.support.stores import on_worker

__all__ = ["desks", "fake"]

ME = "CUST1001"
NOT_MINE = "not one of this customer's orders"  # identity: someone else's or missing
# (tool, arguments, the words the card's summary must contain or None when the shop
# refuses, the words of the refusal)
CASES: list[tuple[str, dict[str, Any], list[str] | None, str]] = [
    # cancel_order x state
    ("cancel_order", {"order_id": "ORD1001"},
     ["Cancel ORD1001 (pending, $158.95)", "refund $158.95 to Visa ending in 4242"], ""),
    ("cancel_order", {"order_id": "ORD1008"}, ["Cancel ORD1008 (processing"], ""),
    ("cancel_order", {"order_id": "ORD1002"}, None, "shipped"),
    ("cancel_order", {"order_id": "ORD1003"}, None, "delivered"),
    ("cancel_order", {"order_id": "ORD1007"}, None, "delivered"),
    ("cancel_order", {"order_id": "ORD1004"}, None, "already cancelled"),
    ("cancel_order", {"order_id": "ORD1005"}, None, "refunded"),
    ("cancel_order", {"order_id": "ORD1009"}, None, NOT_MINE),
    ("cancel_order", {"order_id": "ORD9999"}, None, NOT_MINE),
    # create_refund x state and amount
    ("create_refund", {"order_id": "ORD1003", "amount": 20.0, "reason": "scuffed strap"},
     ["Refund $20.00 of ORD1003 (delivered", "to PayPal"], ""),
    ("create_refund", {"order_id": "ORD1001", "amount": 500.0, "reason": "goodwill"},
     None, "exceeds what can still be refunded"),
    ("create_refund", {"order_id": "ORD1004", "amount": 10.0, "reason": "x"},
     None, "refunded in full"),
    ("create_refund", {"order_id": "ORD1005", "amount": 10.0, "reason": "x"},
     None, "refunded in full"),
    ("create_refund", {"order_id": "ORD1009", "amount": 10.0, "reason": "x"},
     None, NOT_MINE),
    ("create_refund", {"order_id": "ORD9999", "amount": 10.0, "reason": "x"}, None, NOT_MINE),
    # create_return x state
    ("create_return", {"order_id": "ORD1003", "product_ids": ["P1002"]},
     ["Open a return of", "(P1002) from ORD1003"], ""),
    ("create_return", {"order_id": "ORD1007", "product_ids": ["P1001"]}, None, "within 30 days"),
    ("create_return", {"order_id": "ORD1002", "product_ids": ["P1001"]}, None, "shipped"),
    ("create_return", {"order_id": "ORD1001", "product_ids": ["P1001"]}, None, "pending"),
    ("create_return", {"order_id": "ORD1009", "product_ids": ["P1001"]}, None, NOT_MINE),
    ("create_return", {"order_id": "ORD9999", "product_ids": ["P1001"]}, None, NOT_MINE),
    # send_replacement x state
    ("send_replacement", {"order_id": "ORD1003", "product_id": "P1002"},
     ["Ship a free replacement", "(P1002) from ORD1003 to 12 Harbor Lane"], ""),
    ("send_replacement", {"order_id": "ORD1002", "product_id": "P1001"}, None, "shipped"),
    ("send_replacement", {"order_id": "ORD1001", "product_id": "P1001"}, None, "pending"),
    ("send_replacement", {"order_id": "ORD1009", "product_id": "P1001"}, None,
     NOT_MINE),
    ("send_replacement", {"order_id": "ORD9999", "product_id": "P1001"}, None, NOT_MINE),
    # account actions x customer
    ("issue_voucher", {"user_id": ME, "amount": 15.0, "reason": "late delivery"},
     ["Add a $15.00 voucher to the account of Alex Morgan (CUST1001)"], ""),
    ("issue_voucher", {"user_id": ME, "amount": 500.0, "reason": "x"}, None, "maximum"),
    ("issue_voucher", {"user_id": "CUST1002", "amount": 10.0, "reason": "x"}, None,
     "not this conversation's customer"),
    ("reset_password", {"user_id": ME},
     ["Email a password reset link to a***@example.com", "Alex Morgan (CUST1001)"], ""),
    ("reset_password", {"user_id": "CUST1002"}, None, "not this conversation's customer"),
    ("update_info", {"user_id": ME, "info": {"field": "phone", "value": "+1 555 0100 999"}},
     ["Change the phone of Alex Morgan (CUST1001)", "'+1 555 0100 999'"], ""),
    ("update_info", {"user_id": ME, "info": {"field": "email", "value": "not-an-email"}},
     None, "not a valid email"),
    ("update_info", {"user_id": "CUST1002", "info": {"field": "phone", "value": "+1 555 1"}},
     None, "not this conversation's customer"),
    ("create_complaint", {"user_id": ME, "type": "order_delay", "details": "late parcel",
                          "order_id": "ORD1002"},
     ["Record a complaint (order delay) about ORD1002 for Alex Morgan (CUST1001)"], ""),
    ("create_complaint", {"user_id": ME, "type": "order_delay", "details": "late",
                          "order_id": "ORD1009"}, None, NOT_MINE),
    ("create_complaint", {"user_id": ME, "type": "order_delay", "details": "late",
                          "order_id": "ORD9999"}, None, NOT_MINE),
]


def shop_rows(desk: Desk) -> dict[str, int]:
    """Row counts of every table an action writes (a refused one writes nothing)."""
    with sqlite3.connect(desk.copilot.store.path) as db:
        return {t: db.execute(f"SELECT COUNT(*) FROM {t}").fetchone()[0]
                for t in ("refunds", "returns", "replacements", "vouchers", "password_resets",
                          "profile_changes", "complaints")}


async def ask(desk: Desk, text: str) -> tuple[str, dict[str, Any]]:
    """The customer writes; wait for the assistant to be done with *that* message."""
    ref = await desk.customer.send(ChatSend(text=text), desk.sid)
    ended = await desk.agent.wait("turn.ended", where=lambda f: bool(f["ref"] == ref))
    return ref, ended


@pytest.mark.parametrize("tool", sorted({c[0] for c in CASES}))
async def test_each_sensitive_tool_in_each_state(
    tool: str, tmp_path: Path, fake: FakeOpenAI, monkeypatch: pytest.MonkeyPatch,
    desks: list[Desk],
) -> None:
    desk = await open_desk(tmp_path, fake, monkeypatch)
    desks.append(desk)
    for n, (name, args, expect, refusal) in enumerate(c for c in CASES if c[0] == tool):
        call_id = f"call_{tool}_{n}"
        fake.enqueue(Reply(calls=[Call(name, args, call_id=call_id)]),
                     Reply(text="Here is what I found."))
        before_rows, before_cards = shop_rows(desk), len(desk.agent.of("approval.created"))
        ref, ended = await ask(desk, f"case {n}: please {name} {args}")
        assert ended["data"]["outcome"] == "completed"
        cards = desk.agent.of("approval.created")[before_cards:]
        assert shop_rows(desk) == before_rows  # nothing ran without a human
        if expect is None:
            assert cards == [], (name, args)
            result = (await desk.agent.wait("tool.result", call_id=call_id))
            assert result["ref"] == ref
            out = result["data"]["output"]
            assert out["status"] == "not_possible" and refusal in out["error"], (args, out)
            # the model got the shop's reason as the tool's output, and no approval exists
            outputs = [i for i in last_input(fake) if i.get("type") == "function_call_output"]
            assert refusal in outputs[-1]["output"] and "not_possible" in outputs[-1]["output"]
            assert not (await on_worker(desk.copilot.store.pending_approvals, desk.sid))
            continue
        (card,) = cards
        assert card["ref"] == ref
        summary = card["data"]["summary"]
        for words in expect:
            assert words in summary, (summary, words)
        provenance = card["data"]["provenance"]
        assert provenance["quote"].startswith(f"case {n}: please {name}")
        assert provenance["flagged"] is False
        # approving runs exactly what the card said
        fake.enqueue(Reply(text="Done."))
        approve = await desk.agent.send(ApprovalApprove(
            approval_id=card["data"]["approval_id"]), desk.sid)
        updated = await desk.agent.wait("approval.updated",
                                        approval_id=card["data"]["approval_id"])
        assert updated["ref"] == approve and updated["data"]["state"] == "executed", updated
        result = await desk.agent.wait("tool.result", call_id=card["data"]["call_id"])
        assert result["ref"] == approve and result["data"]["ok"] is True
        output = result["data"]["output"]
        for key in ("amount", "refund_amount"):
            if output.get(key):
                assert f"${output[key]:,.2f}" in summary, (summary, output)
        for key in ("order_id", "product_id", "product_name"):
            if output.get(key):
                assert str(output[key]) in summary, (summary, output)
        await desk.agent.wait("turn.ended", where=lambda f, ref=approve: f["ref"] == ref)


async def test_execution_rechecks_and_close_cancels_pending(
    tmp_path: Path, fake: FakeOpenAI, monkeypatch: pytest.MonkeyPatch, desks: list[Desk],
) -> None:
    desk = await open_desk(tmp_path, fake, monkeypatch)
    desks.append(desk)
    fake.enqueue(Reply(calls=[Call("cancel_order", {"order_id": "ORD1001"})]),
                 Reply(text="I've passed this on."),
                 Reply(calls=[Call("reset_password", {"user_id": ME})]),
                 Reply(text="I've passed this on too."))
    await ask(desk, "cancel ORD1001 please")
    await ask(desk, "and reset my password")
    cards = desk.agent.of("approval.created")
    assert len(cards) == 2
    # the order changed after the card was made: approving re-checks and fails honestly
    with sqlite3.connect(desk.copilot.store.path) as db:
        db.execute("UPDATE orders SET status = 'shipped' WHERE id = 'ORD1001'")
    fake.enqueue(Reply(text="Sorry."))
    await desk.agent.send(ApprovalApprove(approval_id=cards[0]["data"]["approval_id"]),
                          desk.sid)
    failed = await desk.agent.wait("approval.updated", state="failed")
    assert "shipped" in failed["data"]["error"]
    await desk.agent.wait("turn.ended", count=3)
    # closing with one approval pending cancels it on the host
    close = await desk.agent.send(SessionClose(), desk.sid)
    cancelled = await desk.agent.wait("approval.updated", state="cancelled")
    assert cancelled["ref"] == close
    assert cancelled["data"]["approval_id"] == cards[1]["data"]["approval_id"]
    record = (await on_worker(desk.copilot.store.get_approval, cards[1]["data"]["approval_id"]))
    assert record is not None and record.state == "cancelled"
    assert record.decided_by == cancelled["data"]["by"]  # the closing agent, as announced
    # approving in a closed session is refused; nothing runs
    before = shop_rows(desk)
    refused = await desk.agent.send(ApprovalApprove(
        approval_id=cards[1]["data"]["approval_id"]), desk.sid)
    error = await desk.agent.wait("error", where=lambda f: f["ref"] == refused)
    assert error["data"]["code"] == "session_closed"
    assert shop_rows(desk) == before


OFFLINE_CASES = [  # the offline engine, reading the customer itself: (message, words, card?)
    ("please cancel ORD1002", "can no longer be cancelled", False),  # shipped
    ("cancel ORD1008", "ORD1008", True),  # processing: a checked card
    ("cancel ORD9999", "ORD9999 is not one of this customer's orders", False),  # nonexistent
    ("cancel ORD1009", "ORD1009 is not one of this customer's orders", False),  # someone else's
    ("I want to return ORD1007", "outside the 30-day return window", False),
    ("cancel ORD1004", "was cancelled on", False),  # cancelled already: says so
    ("refund me $500 for ORD1003", "at most $127.50", False),  # inflated amount
]


async def test_offline_engine_explains_honestly_or_proposes_a_checked_card(
    tmp_path: Path, fake: FakeOpenAI, monkeypatch: pytest.MonkeyPatch, desks: list[Desk],
) -> None:
    desk = await open_desk(tmp_path, fake, monkeypatch, override="offline")
    desks.append(desk)
    before = shop_rows(desk)
    for text, words, card in OFFLINE_CASES:
        ref, ended = await ask(desk, text)
        assert ended["data"]["outcome"] == "completed"
        mine = [f for f in desk.agent.frames if f["ref"] == ref]
        (draft,) = [f["data"] for f in mine if f["type"] == "draft.completed"]
        cards = [f["data"] for f in mine if f["type"] == "approval.created"]
        assert words in draft["text"], (text, draft["text"])
        assert draft["claims"] == [], (text, draft)
        assert bool(cards) == card, (text, cards)
        for c in cards:
            assert c["summary"].startswith("Cancel ORD1008 (processing, $111.99)"), c
            assert c["provenance"]["quote"] == text
            assert "for confirmation" in draft["text"]
    assert shop_rows(desk) == before
