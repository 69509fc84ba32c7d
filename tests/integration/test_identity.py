"""Who the customer is, end to end: a real host (relay + co-pilot + shop) on port 0, the
real ``openai`` client against the fake Responses server, real WebSockets.

The identity matrix: each way into a session (lobby anonymous, claimed, signed in,
issued link, representative-linked, unlinked) x each catalog tool: what the
co-pilot may read, what may be proposed, what an approval does.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import sqlite3
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from websockets.exceptions import ConnectionClosed

from hitl_desktop.core.links import InviteLink
from hitl_desktop.core.protocol import (
    ApprovalApprove,
    ChatSend,
    CustomerGet,
    CustomerSearch,
    IdentityLink,
    IdentitySignIn,
    IdentityUnlink,
)
from hitl_desktop.host.log import RelayLog
from tests.support.copilot_desk import Client, Desk, desk, desks, fake, open_desk
from tests.support.fake_openai import Call, FakeOpenAI, Reply
from tests.support.host import running_host
from tests.support.stores import on_worker

__all__ = ["desk", "desks", "fake"]  # fixtures from the shared desk

OWN, OWN_EMAIL = "CUST1002", "priya.shah@example.com"
OWN_ORDER, OWN_SHIPPED, OWN_PRODUCT = "ORD1009", "ORD1010", "P1003"
OTHER, OTHER_ORDER, OTHER_PRODUCT = "CUST1001", "ORD1001", "P1001"
AUTO_TOOLS = ("get_order", "get_order_history", "create_ticket")
APPROVAL_TOOLS = ("cancel_order", "reset_password", "send_replacement", "create_refund",
                  "issue_voucher", "create_return", "create_complaint", "update_info")
WAYS = ("lobby", "claimed", "signed_in", "issued_link", "representative", "unlinked")
VERIFIED = {"signed_in": "sign_in", "issued_link": "link", "representative": "representative"}


def calls_for(tag: str, customer: str, order: str, product: str) -> list[Call]:
    """One call of every catalog tool, all aimed at ``customer``'s records."""
    args: dict[str, dict[str, Any]] = {
        "get_order": {"order_id": order},
        "get_order_history": {"user_id": customer},
        "create_ticket": {"user_id": customer, "type": "other", "details": "matrix",
                          "order_id": order},
        "cancel_order": {"order_id": order},
        "reset_password": {"user_id": customer},
        "send_replacement": {"product_id": product, "order_id": order},
        "create_refund": {"order_id": order, "amount": 1.0, "reason": "matrix"},
        "issue_voucher": {"user_id": customer, "amount": 5.0, "reason": "matrix"},
        "create_return": {"order_id": order, "product_ids": [product]},
        "create_complaint": {"user_id": customer, "type": "other", "details": "matrix",
                             "order_id": order},
        "update_info": {"user_id": customer,
                        "info": {"field": "phone", "value": "+1 555 0100 999"}},
    }
    return [Call(name, a, call_id=f"{tag}_{name}") for name, a in args.items()]


def shop_rows(desk: Desk) -> dict[str, Any]:
    """Everything a tool could have written, to prove a refused call wrote nothing."""
    db = sqlite3.connect(desk.copilot.store.path)
    try:
        out: dict[str, Any] = {}
        for table in ("tickets", "refunds", "vouchers", "returns", "replacements",
                      "complaints", "password_resets", "profile_changes", "approvals"):
            out[table] = db.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0]
        out["orders"] = db.execute("SELECT id, status, refunded_cents FROM orders "
                                   "ORDER BY id").fetchall()
        out["customers"] = db.execute("SELECT * FROM customers ORDER BY id").fetchall()
        return out
    finally:
        db.close()


async def enter(desk: Desk, way: str) -> tuple[str, Client]:
    """Open a session by one way in; returns its id and the customer's connection."""
    host, sam = desk.host, desk.agent2
    if way in ("issued_link", "unlinked"):
        created = host.create_session(customer_id=OWN, title=way)
        customer = await Client.connect(host.local_url, created.customer_token)
        sid = created.session_id
    else:
        customer = await Client.connect(host.local_url, host.lobby_token)
        sid = customer.of("welcome")[0]["data"]["session_id"]
    if way == "claimed":
        await sam.send(IdentityLink(customer_id=OWN, verified=False), sid)
    elif way == "representative":
        await sam.send(IdentityLink(customer_id=OWN), sid)
    elif way == "signed_in":
        ref = await customer.send(IdentitySignIn(email=OWN_EMAIL.upper(), order_id="ord1010"),
                                  sid)
        state = await customer.wait("identity.state", where=lambda f: f["ref"] == ref)
        assert state["data"] == {"signed_in": True, "customer_name": "Priya Shah",
                                 "method": "sign_in"}
    if way in ("claimed", "representative"):
        await sam.wait("identity.changed", where=lambda f: f["session"] == sid)
    return sid, customer


async def turn(desk: Desk, sid: str, customer: Client, calls: list[Call],
               text: str) -> tuple[dict[str, dict[str, Any]], list[dict[str, Any]]]:
    """The customer writes; the model calls ``calls`` (one per response, as the API does
    with parallel_tool_calls off; at most 6 rounds per reply) then writes ``text``.
    Returns the tool results by call id and the approvals created meanwhile."""
    sam = desk.agent2
    in_session = lambda f: f["session"] == sid  # noqa: E731
    approvals = len([f for f in sam.of("approval.created") if in_session(f)])
    for start in range(0, len(calls), 6):
        chunk = calls[start:start + 6]
        drafts = len([f for f in sam.of("draft.completed") if in_session(f)])
        desk.fake.enqueue(*[Reply(calls=[c]) for c in chunk], Reply(text=text))
        await customer.send(ChatSend(text="please do all of it"), sid)
        draft = await sam.wait("draft.completed", count=drafts + 1, where=in_session)
        assert draft["data"]["text"] == text
    ids = {c.call_id for c in calls}
    results = {f["data"]["call_id"]: f["data"] for f in sam.of("tool.result")
               if in_session(f) and f["data"]["call_id"] in ids}
    created = [f["data"] for f in sam.of("approval.created") if in_session(f)][approvals:]
    return results, created


async def approve(desk: Desk, sid: str, approval_id: str) -> dict[str, Any]:
    """Approve as Sam; returns the final approval.updated (or the error frame)."""
    sam = desk.agent2
    done = lambda f: (f["session"] == sid and f["data"]["approval_id"] == approval_id  # noqa: E731
                      and f["data"]["state"] in ("executed", "failed"))
    drafts = len([f for f in sam.of("draft.completed") if f["session"] == sid])
    desk.fake.enqueue(Reply(text="Done."))
    ref = await sam.send(ApprovalApprove(approval_id=approval_id), sid)
    got = await asyncio.wait_for(_first(sam, ref, done), 10)
    if got["type"] == "approval.updated":
        await sam.wait("draft.completed", count=drafts + 1,
                       where=lambda f: f["session"] == sid)
    return got


async def _first(client: Client, ref: str, done: Any) -> dict[str, Any]:
    while True:
        for f in client.frames:
            if (f["type"] == "error" and f["ref"] == ref) or (
                    f["type"] == "approval.updated" and done(f)):
                return f
        client._new.clear()
        await client._new.wait()


def last_instructions(fake: FakeOpenAI) -> str:
    return str(fake.responses_requests()[-1].body["instructions"])


async def test_identity_matrix(desk: Desk) -> None:
    """Every way in x every tool, through real sockets against a real host."""
    for way in WAYS:
        await matrix_row(desk, way)


async def matrix_row(desk: Desk, way: str) -> None:
    """One way in: what the co-pilot may read and propose, what approving does."""
    sam = desk.agent2
    sid, customer = await enter(desk, way)
    before = shop_rows(desk)
    if way == "unlinked":
        # verified by its link first: actions are proposed for Priya ...
        voucher = [c for c in calls_for("pre", OWN, OWN_ORDER, OWN_PRODUCT)
                   if c.name == "issue_voucher"]
        _results, pending = await turn(desk, sid, customer, voucher, "Looking into it.")
        assert [a["tool"] for a in pending] == ["issue_voucher"]
        before = shop_rows(desk)
        # ... then a representative unlinks the session (audited, with a reason)
        await sam.send(IdentityUnlink(reason="wrong person on the line"), sid)
        changed = await sam.wait("identity.changed", where=lambda f: f["session"] == sid)
        assert changed["data"]["action"] == "unlink" and changed["data"]["by"] == "Sam"
        assert changed["data"]["reason"] == "wrong person on the line"
        assert (await customer.wait("identity.state"))["data"]["signed_in"] is False

    results, created = await turn(desk, sid, customer,
                                  calls_for(way, OWN, OWN_ORDER, OWN_PRODUCT),
                                  f"reply for {way}")
    summary = desk.host.relay.session_summary(sid)
    assert summary is not None
    ref = await sam.send(CustomerGet(), sid)
    details = (await sam.wait("customer.details", where=lambda f: f["ref"] == ref))["data"]

    if way not in VERIFIED:
        # the co-pilot reads nothing, proposes nothing; the model is told why
        assert set(results) == {f"{way}_{t}" for t in AUTO_TOOLS + APPROVAL_TOOLS}, way
        for call_id, result in results.items():
            assert result["ok"] is False, (way, call_id)
            assert result["output"]["error"] == "customer not verified", (way, call_id)
            assert "sign in" in result["output"]["message"].lower()
        assert created == [], way
        assert shop_rows(desk) == before, way
        assert "not verified" in last_instructions(desk.fake).lower()
        assert "Priya" not in str(desk.fake.responses_requests()[-1].body["input"]) \
            or way == "claimed"
        assert summary.customer_id is None
        assert details["customer"] is None and details["orders"] == []
        assert details["identity"]["state"] == ("claimed" if way == "claimed"
                                                else "anonymous")
        if way == "unlinked":  # an approval proposed while verified cannot run now
            got = await approve(desk, sid, pending[0]["approval_id"])
            assert got["type"] == "error" and got["data"]["code"] == "not_verified"
            assert "Sign in to your order" in got["data"]["message"]
            assert "link the session" in got["data"]["message"]
            assert shop_rows(desk) == before
            rec = (await on_worker(desk.copilot.store.get_approval, pending[0]["approval_id"]))
            assert rec is not None and rec.state == "pending"
            # linked to someone else now: the old proposal is not theirs either
            await sam.send(IdentityLink(customer_id="CUST1003"), sid)
            await sam.wait("identity.changed", count=2,
                           where=lambda f: f["session"] == sid)
            got = await approve(desk, sid, pending[0]["approval_id"])
            assert got["type"] == "error" and got["data"]["code"] == "conflict"
            assert shop_rows(desk) == before
        return

    # verified: reads and proposals, confined to Priya's records
    assert summary.customer_id == OWN and summary.identity.method == VERIFIED[way]
    assert details["customer"]["customer_id"] == OWN
    assert {o["order_id"] for o in details["orders"]} == {OWN_ORDER, OWN_SHIPPED}
    assert "verified by" in last_instructions(desk.fake)
    assert f"customer id {OWN}" in last_instructions(desk.fake)
    # proposals are dry-run first (issue 12): an action the shop's rules refuse (cancelling
    # Priya's delivered ORD1009; a return or replacement an earlier way already made) gets
    # no card, and the refusal is a business rule, never an ownership problem
    assert set(results) >= {f"{way}_{t}" for t in AUTO_TOOLS}, way
    refused = {k.removeprefix(f"{way}_") for k in results} - set(AUTO_TOOLS)
    proposed = {a["tool"] for a in created}
    assert "cancel_order" in refused and not refused & proposed, way
    assert refused | proposed == set(APPROVAL_TOOLS), way
    for tool in refused:
        out = results[f"{way}_{tool}"]["output"]
        assert out["status"] == "not_possible", (way, tool, out)
        assert "not one of" not in out["error"] and "verified" not in out["error"]
    assert results[f"{way}_get_order"]["output"]["order"]["customer_id"] == OWN
    history = results[f"{way}_get_order_history"]["output"]
    assert {o["order_id"] for o in history["orders"]} == {OWN_ORDER, OWN_SHIPPED}
    assert results[f"{way}_create_ticket"]["ok"] is True
    # approving runs each action once, on Priya's account only
    others_before = [r for r in shop_rows(desk)["orders"] if r[0] not in
                     (OWN_ORDER, OWN_SHIPPED)]
    for approval in created:
        got = await approve(desk, sid, approval["approval_id"])
        assert got["type"] == "approval.updated", (way, approval["tool"], got)
        rec = (await on_worker(desk.copilot.store.get_approval, approval["approval_id"]))
        assert rec is not None and rec.customer_id == OWN
        assert rec.state == got["data"]["state"]
        if rec.state == "failed":  # a business rule, never an ownership problem
            assert "not one of" not in str(rec.error) and "verified" not in str(rec.error)
    after = shop_rows(desk)
    assert [r for r in after["orders"] if r[0] not in (OWN_ORDER, OWN_SHIPPED)] \
        == others_before
    other_profile = [c for c in after["customers"] if c[0] != OWN]
    assert other_profile == [c for c in before["customers"] if c[0] != OWN]

    # whatever ids the model passes, nothing of another customer is read or proposed (every
    # verified way reaches the same co-pilot code: one row checks it, to keep this fast)
    if way != "issued_link":
        await customer.close()
        return
    before = shop_rows(desk)
    results, created = await turn(desk, sid, customer,
                                  calls_for(f"{way}_x", OTHER, OTHER_ORDER, OTHER_PRODUCT),
                                  f"foreign reply for {way}")
    assert created == [] and shop_rows(desk) == before
    assert len(results) == len(AUTO_TOOLS + APPROVAL_TOOLS)
    for call_id, result in results.items():
        assert result["ok"] is False, call_id
        assert result["output"]["error_code"] == "not_this_customer", call_id
        assert "Alex" not in str(result["output"]), call_id
    await customer.close()


async def test_sign_in_reveals_nothing_and_is_audited(desk: Desk) -> None:
    sam, host = desk.agent2, desk.host
    visitor = await Client.connect(host.local_url, host.lobby_token)
    sid = visitor.of("welcome")[0]["data"]["session_id"]
    assert visitor.of("welcome")[0]["data"]["identity"] == {
        "signed_in": False, "customer_name": None, "method": None}
    answers = []
    for email, order in ((OWN_EMAIL, OTHER_ORDER),          # real email, someone else's order
                         ("nobody@example.com", OWN_ORDER),  # unknown email, real order
                         (OWN_EMAIL, "ORD9999")):            # real email, no such order
        ref = await visitor.send(IdentitySignIn(email=email, order_id=order), sid)
        err = await visitor.wait("error", where=lambda f, r=ref: f["ref"] == r)
        answers.append((err["data"]["code"], err["data"]["message"]))
    assert len(set(answers)) == 1 and answers[0][0] == "sign_in_failed"
    assert desk.host.relay.session_identity(sid).state == "anonymous"
    # the right pair signs in; the agents' audit trail says how
    ref = await visitor.send(IdentitySignIn(email=OWN_EMAIL, order_id=OWN_SHIPPED), sid)
    await visitor.wait("identity.state", where=lambda f: f["ref"] == ref)
    changed = await sam.wait("identity.changed", where=lambda f: f["session"] == sid)
    assert changed["data"]["action"] == "sign_in" and changed["data"]["by"] == "customer"
    assert changed["data"]["previous"]["state"] == "anonymous"
    assert changed["data"]["identity"]["customer_id"] == OWN
    # chat lines are now signed with the customer's name
    await visitor.send(ChatSend(text="it's me"), sid)
    line = await sam.wait("chat.message", where=lambda f: f["data"]["text"] == "it's me")
    assert line["data"]["author"]["name"] == "Priya Shah"
    # a second sign-in is refused; the customer can never change its verified identity
    ref = await visitor.send(IdentitySignIn(email="alex.morgan@example.com",
                                            order_id=OTHER_ORDER), sid)
    err = await visitor.wait("error", where=lambda f: f["ref"] == ref)
    assert err["data"]["code"] == "conflict"
    for forbidden in (IdentityLink(customer_id=OTHER), IdentityUnlink()):
        ref = await visitor.send(forbidden, sid)
        err = await visitor.wait("error", where=lambda f, r=ref: f["ref"] == r)
        assert err["data"]["code"] == "forbidden"
    assert desk.host.relay.session_identity(sid).customer_id == OWN
    # the identity is the host's and durable: the log has it after a reload
    again = RelayLog(desk.host.relay_log.path)
    row = again.get_session(sid)
    again.close()
    assert row is not None and row.identity.state == "verified"
    assert row.identity.method == "sign_in" and row.customer_id == OWN
    # the inbox can tell sessions apart
    assert row.number > 0


async def test_customer_search_finds_by_name_email_and_order(desk: Desk) -> None:
    sam = desk.agent2
    for query, expected in (("priya", [OWN]), ("SHAH@", [OWN]), (OTHER_ORDER, [OTHER]),
                            ("cust100", ["CUST1001", "CUST1002", "CUST1003", "CUST1004",
                                         "CUST1005"]), ("%", []), ("zzz", [])):
        ref = await sam.send(CustomerSearch(query=query), None)
        got = await sam.wait("customer.results", where=lambda f, r=ref: f["ref"] == r)
        assert sorted(c["customer_id"] for c in got["data"]["customers"]) == expected, query


async def test_lobby_visitor_asking_for_past_orders_offline_engine(
        tmp_path: Path, fake: FakeOpenAI, monkeypatch: pytest.MonkeyPatch,
        desks: list[Desk]) -> None:
    """The offline engine: no one's orders before sign-in, exactly theirs after."""
    desk = await open_desk(tmp_path, fake, monkeypatch, override="offline", key=None)
    desks.append(desk)
    sam, host = desk.agent2, desk.host
    visitor = await Client.connect(host.local_url, host.lobby_token)
    sid = visitor.of("welcome")[0]["data"]["session_id"]
    in_session = lambda f: f["session"] == sid  # noqa: E731
    every_order = {f"ORD{n}" for n in range(1001, 1017)}  # the shop's orders

    async def ask(text: str, n: int) -> str:
        await visitor.send(ChatSend(text=text), sid)
        draft = await sam.wait("draft.completed", count=n, where=in_session)
        return str(draft["data"]["text"])

    before = await ask("give me a list of my past orders", 1)
    assert not [o for o in every_order if o in before], before
    assert "sign in" in before.lower(), before
    results = [f["data"] for f in sam.of("tool.result") if in_session(f)]
    assert all(r["ok"] is False for r in results), results  # nothing was read
    # an order id of someone else does not help either
    cancel = await ask(f"cancel order {OTHER_ORDER}", 2)
    assert "sign in" in cancel.lower(), cancel
    assert not [f for f in sam.of("approval.created") if in_session(f)]
    assert all(r["ok"] is False for r in
               (f["data"] for f in sam.of("tool.result") if in_session(f))), "read something"

    ref = await visitor.send(IdentitySignIn(email=OWN_EMAIL, order_id=OWN_ORDER), sid)
    await visitor.wait("identity.state", where=lambda f: f["ref"] == ref)
    after = await ask("give me a list of my past orders", 3)
    listed = {o for o in every_order if o in after}
    assert listed == {OWN_ORDER, OWN_SHIPPED}, after
    print(f"before sign-in: {before!r}\nafter sign-in: {after!r}")  # for the note


async def test_sign_in_brute_force_is_throttled_reveals_nothing_spares_others(
        desk: Desk, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    """1,000 guesses from one client: the shop is asked 5 times, the right guess among
    them gets the same answer as the wrong ones, and other sessions sign in and chat."""
    host = desk.host
    caplog.set_level(logging.INFO, logger="hitl_desktop.host.relay")
    directory = host.relay.directory
    assert directory is not None
    asked: list[tuple[str, str]] = []
    real_match = directory.match_sign_in

    def counting(email: str, order_id: str) -> str | None:
        asked.append((email, order_id))
        return real_match(email, order_id)

    monkeypatch.setattr(directory, "match_sign_in", counting)
    attacker = await Client.connect(host.local_url, host.lobby_token)
    welcome = attacker.of("welcome")[0]["data"]
    sid, resume = welcome["session_id"], welcome["resume_token"]
    bystander = await Client.connect(host.local_url, host.lobby_token)
    other_sid = bystander.of("welcome")[0]["data"]["session_id"]

    guesses = [f"ORD{n:04d}" for n in range(1000)]
    guesses[500] = OWN_ORDER  # the right order number, guessed after the lockout
    started = asyncio.get_running_loop().time()
    clients, refs, closes = [attacker], set(), 0
    for order in guesses:
        frame_ref = None
        while frame_ref is None:
            try:
                frame_ref = await clients[-1].send(IdentitySignIn(email=OWN_EMAIL,
                                                                   order_id=order), sid)
            except ConnectionClosed:  # closed for too many errors / frames: come back
                closes += 1
                clients.append(await Client.connect(host.local_url, resume))
        refs.add(frame_ref)
        await asyncio.sleep(0)  # a client that also reads what it is told (not a flood of RSTs)
    # meanwhile another visitor signs in and chats as if nothing happened
    ref = await bystander.send(IdentitySignIn(email="jonas.weber@example.com",
                                              order_id="ORD1011"), other_sid)
    await bystander.wait("identity.state", where=lambda f: f["ref"] == ref)
    await bystander.send(ChatSend(text="hello from Jonas"), other_sid)
    await bystander.wait("chat.message", where=lambda f: f["data"]["text"] == "hello from Jonas")
    await asyncio.sleep(0.3)  # let the last answers arrive
    elapsed = asyncio.get_running_loop().time() - started

    frames = [f for c in clients for f in c.frames]
    answers = [f for f in frames if f["type"] == "error" and f["ref"] in refs]
    failed = [f for f in answers if f["data"]["code"] == "sign_in_failed"]
    locked = [f for f in answers if f["data"]["code"] == "rate_limited"
              and f["data"]["message"].startswith("Too many sign-in attempts")]
    dropped = len(refs) - len(failed) - len(locked)  # by the frame limiter (or unanswered)
    guessed = [o for e, o in asked if e == OWN_EMAIL]
    assert len(guessed) == 5 and len(failed) == 5  # the shop saw 5 guesses, no more
    assert OWN_ORDER not in guessed
    assert locked and all(f["data"]["retry_after"] > 800 for f in locked)
    assert len({f["data"]["message"] for f in failed}) == 1
    assert len({f["data"]["message"].split(" in about")[0] for f in locked}) == 1
    assert not [f for f in frames if f["type"] == "identity.state"]
    text = str(frames)
    assert "Priya" not in text and "CUST1002" not in text
    assert host.relay.session_identity(sid).state == "anonymous"
    # the right pair is refused during the lockout too, and says nothing more
    late = await Client.connect(host.local_url, resume)
    ref = await late.send(IdentitySignIn(email=OWN_EMAIL, order_id=OWN_SHIPPED), sid)
    err = await late.wait("error", where=lambda f: f["ref"] == ref)
    assert err["data"]["code"] == "rate_limited"
    assert len([o for e, o in asked if e == OWN_EMAIL]) == 5
    # the account's owner, in her own session, is not locked out by the attacker's 5
    priya = await Client.connect(host.local_url, host.lobby_token)
    psid = priya.of("welcome")[0]["data"]["session_id"]
    ref = await priya.send(IdentitySignIn(email=OWN_EMAIL, order_id=OWN_ORDER), psid)
    state = await priya.wait("identity.state", where=lambda f: f["ref"] == ref)
    assert state["data"]["customer_name"] == "Priya Shah"
    # the lockout reached the host's log (numbers for the note on stdout)
    lockouts = [r.getMessage() for r in caplog.records if "locked out" in r.getMessage()]
    assert any(f"session:{sid}" in m for m in lockouts), lockouts
    print(f"brute force: {len(guesses)} attempts in {elapsed:.2f}s; shop asked {len(guessed)}; "
          f"sign_in_failed {len(failed)}; locked-out answers {len(locked)}; dropped by the "
          f"frame limiter {dropped}; reconnects {closes}")
    for c in (*clients, late, priya, bystander):
        await c.close()


async def test_session_new_issues_a_link_for_one_customer(tmp_path: Path) -> None:
    """``hitl-desktop session new --customer CUST1002`` (a real subprocess): whoever opens
    that customer link is Priya, signed in; an unknown customer is refused."""
    data = tmp_path / "hostdata"

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        env = {k: v for k, v in os.environ.items() if k != "OPENAI_API_KEY"}
        return subprocess.run([sys.executable, "-m", "hitl_desktop", "session", "new",
                               "--data-dir", str(data), *args], capture_output=True,
                              text=True, env=env, timeout=60, check=False)

    made = await asyncio.to_thread(cli, "--customer", "CUST1002", "--title", "Order help")
    assert made.returncode == 0, made.stderr
    out = json.loads(made.stdout)
    assert out["customer_id"] == OWN and out["identity"] == "verified"
    unknown = await asyncio.to_thread(cli, "--customer", "CUST9999")
    assert unknown.returncode == 2 and "no customer 'CUST9999'" in unknown.stderr
    anonymous = json.loads((await asyncio.to_thread(cli)).stdout)
    assert anonymous["customer_id"] is None and anonymous["identity"] == "anonymous"

    async with running_host(data) as host:
        client = await Client.connect(host.local_url,
                                      InviteLink.parse(out["customer_link"]).token)
        welcome = client.of("welcome")[0]["data"]
        assert welcome["identity"] == {"signed_in": True, "customer_name": "Priya Shah",
                                       "method": "link"}
        identity = host.relay.session_identity(out["session_id"])
        assert identity.by == "session new" and identity.customer_id == OWN
        await client.close()
