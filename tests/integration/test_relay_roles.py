"""Role matrix: every client operation tried by every kind of token.

Forbidden operations get ``forbidden`` (with the request's id as ``ref``) and
change nothing: no log row, no session, no token, no co-pilot call.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

from hitl_desktop.core.ports import NullCopilot, SessionOutbox
from hitl_desktop.core.protocol import CLIENT_MESSAGES
from hitl_desktop.host.relay import RelayConfig
from tests.support.host import running_host
from tests.support.protocol_client import Client, token_of

# The documented matrix (docs/PROTOCOL.md, "Roles"): who may send what.
C, A, D = "customer", "agent", "admin"
ALLOWED: dict[str, set[str]] = {
    "ack": {C, A, D},
    "chat.send": {C, A, D},
    "typing": {C, A, D},
    "session.sync": {C, A, D},
    "session.history": {C, A, D},
    "approval.approve": {A, D},
    "approval.reject": {A, D},
    "draft.regenerate": {A, D},
    "draft.discard": {A, D},
    "draft.steer": {A, D},
    "session.close": {A, D},
    "session.reopen": {A, D},
    "session.list": {A, D},
    "customer.get": {A, D},
    "article.get": {A, D},
    "kb.search": {A, D},
    "insights.get": {A, D},
    "insights.conversation": {A, D},
    "session.create": {D},
    "identity.sign_in": {C},
    "identity.link": {A, D},
    "identity.unlink": {A, D},
    "customer.search": {A, D},
    "session.assign": {A, D},
    "note.add": {A, D},
    "session.status": {A, D},
    "macro.list": {A, D},
    "macro.save": {A, D},
    "macro.delete": {A, D},
    "search": {A, D},
    "transcript.get": {A, D},
}
# the desk's operations (issue 16) need a desk-scope link: session agents are refused
DESK_SCOPE_ONLY = {"session.assign", "session.status", "macro.list", "macro.save",
                   "macro.delete", "search", "transcript.get"}
PAYLOADS: dict[str, dict[str, Any]] = {
    "ack": {"seq": 1},
    "chat.send": {"text": "hello"},
    "typing": {"active": True},
    "session.sync": {"after_seq": 0},
    "session.history": {"before_seq": None, "limit": 5},
    "approval.approve": {"approval_id": "a1", "arguments": {"order_id": "ORD1001"}},
    "approval.reject": {"approval_id": "a1", "reason": "no"},
    "draft.regenerate": {},
    "draft.discard": {"turn_id": "t1"},
    "draft.steer": {"instruction": "shorter", "draft_id": None},
    "session.close": {},
    "session.reopen": {},
    "session.list": {},
    "customer.get": {},
    "article.get": {"article_id": "kb/cancel-order"},
    "kb.search": {"query": "refund"},
    "insights.get": {"start": 0.0, "end": 86400.0},
    "insights.conversation": {},
    "session.create": {"title": "made by matrix"},
    "identity.sign_in": {"email": "alex.morgan@example.com", "order_id": "ORD1009"},
    "identity.link": {"customer_id": "CUST1002"},
    "identity.unlink": {"reason": "wrong person"},
    "customer.search": {"query": "priya"},
    "session.assign": {"action": "take"},
    "note.add": {"text": "internal"},
    "session.status": {"status": "resolved"},
    "macro.list": {},
    "macro.save": {"name": "hello", "text": "Hello!"},
    "macro.delete": {"name": "hello"},
    "search": {"query": "hello"},
    "transcript.get": {"audience": "internal"},
}
TOKEN_KINDS = ("customer-session", "customer-lobby", "agent-session", "agent-desk", "admin")
ROLE_OF = {"customer-session": C, "customer-lobby": C, "agent-session": A, "agent-desk": A,
           "admin": D}


class CountingCopilot(NullCopilot):
    """Counts every call, so a refused operation provably reached no assistant."""

    def __init__(self, outbox: SessionOutbox) -> None:
        self.calls = 0

    async def on_customer_message(self, session_id: str, message_id: str, text: str) -> None:
        self.calls += 1

    async def on_agent_message(self, session_id: str, message_id: str, text: str,
                               draft_id: str | None, agent: str) -> None:
        self.calls += 1

    async def approve(self, session_id: str, approval_id: str, agent: str,
                      arguments: dict[str, Any] | None) -> None:
        self.calls += 1
        await super().approve(session_id, approval_id, agent, arguments)

    async def reject(self, session_id: str, approval_id: str, agent: str, reason: str) -> None:
        self.calls += 1
        await super().reject(session_id, approval_id, agent, reason)

    async def regenerate(self, session_id: str) -> None:
        self.calls += 1
        await super().regenerate(session_id)

    async def discard(self, session_id: str, turn_id: str) -> None:
        self.calls += 1
        await super().discard(session_id, turn_id)

    async def steer(self, session_id: str, instruction: str, draft_id: str | None,
                    agent: str) -> None:
        self.calls += 1
        await super().steer(session_id, instruction, draft_id, agent)


def snapshot(db_path: Path) -> tuple[Any, ...]:
    db = sqlite3.connect(db_path)
    try:
        return (
            db.execute("SELECT session_id, seq, type FROM messages ORDER BY 1, 2").fetchall(),
            db.execute("SELECT session_id, state, title, customer_id, id_state, id_customer"
                       " FROM sessions ORDER BY 1").fetchall(),
            db.execute("SELECT * FROM approvals ORDER BY 1, 2").fetchall(),
            db.execute("SELECT token_id, revoked_at FROM tokens ORDER BY 1").fetchall(),
        )
    finally:
        db.close()


async def responses_to(client: Client, type_: str, data: dict[str, Any],
                       session: str | None) -> list[dict[str, Any]]:
    """Send one op, then a barrier frame; everything the op produced arrives before the
    barrier's error (the host handles a connection's frames in order). ``session.updated``
    is left out: the inbox's coalesced summaries (e.g. of a client connecting a moment
    ago) arrive on a timer, whatever the operation, and a loaded machine delays them."""
    await client.send(type_, data, session=session)
    barrier = await client.send("matrix.barrier", {})
    out = []
    while True:
        msg = await client.recv()
        if msg["type"] == "error" and msg["ref"] == barrier:
            return out
        if msg["type"] != "session.updated":
            out.append(msg)


def test_the_matrix_covers_every_client_operation() -> None:
    assert set(ALLOWED) == set(CLIENT_MESSAGES) - {"hello"} == set(PAYLOADS)
    for op, roles in ALLOWED.items():
        assert {r.value for r in CLIENT_MESSAGES[op].senders} == roles, op


async def test_role_matrix(tmp_path: Path) -> None:
    copilots: list[CountingCopilot] = []

    def factory(outbox: SessionOutbox) -> CountingCopilot:
        copilots.append(CountingCopilot(outbox))
        return copilots[-1]

    # one lobby session per operation: more than the default burst of new chats per address;
    # every operation on one desk link: more heavy frames than its default burst
    config = RelayConfig(lobby_burst=100.0, burst=10_000.0)  # rates: test_relay_attacks
    async with running_host(tmp_path, copilot_factory=factory, config=config) as host:
        db_path = host.relay_log.path
        refused = allowed = 0
        for kind in TOKEN_KINDS:
            for op, data in PAYLOADS.items():
                created = host.create_session()
                sid = created.session_id
                token = {
                    "customer-session": token_of(created.customer_link),
                    "customer-lobby": token_of(host.lobby_link),
                    "agent-session": token_of(created.agent_link),
                    "agent-desk": token_of(host.desk_link),
                    "admin": token_of(host.admin_link),
                }[kind]
                # up to date with every session: a desk link is not replayed the earlier
                # iterations' open sessions (pages that would arrive among the answers)
                caught_up = {k: st.row.last_seq for k, st in host.relay.sessions.items()}
                client = await Client.connect(host.url, token, resume=caught_up)
                await client.drain(0.02)
                target = client.session or sid
                session = target if CLIENT_MESSAGES[op].session_required else None
                before, calls = snapshot(db_path), copilots[0].calls
                got = await responses_to(client, op, data, session)
                errors = [m["data"]["code"] for m in got if m["type"] == "error"]
                if ROLE_OF[kind] in ALLOWED[op] and not (
                        kind == "agent-session" and op in DESK_SCOPE_ONLY):
                    allowed += 1
                    assert "forbidden" not in errors, (kind, op, got)
                else:
                    refused += 1
                    assert errors == ["forbidden"], (kind, op, got)
                    assert got[0]["ref"] is not None, (kind, op, got)
                    assert [m["type"] for m in got] == ["error"], (kind, op, got)
                    assert snapshot(db_path) == before, (kind, op)
                    assert copilots[0].calls == calls, (kind, op)
                await client.close()
        # customers may send 6 of the operations, agents all but session.create and
        # identity.sign_in, admins all but identity.sign_in (counted from the matrix);
        # session agents also none of the desk-scope operations
        expected = sum(ROLE_OF[k] not in roles for k in TOKEN_KINDS for roles in ALLOWED.values())
        expected += len(DESK_SCOPE_ONLY)
        assert refused == 5 * len(PAYLOADS) - allowed and refused == expected
        assert expected == 2 * (len(PAYLOADS) - 6) + 2 * 2 + 1 + len(DESK_SCOPE_ONLY)


async def test_session_bound_tokens_cannot_reach_other_sessions(tmp_path: Path) -> None:
    async with running_host(tmp_path) as host:
        mine, other = host.create_session(), host.create_session()
        db_path = host.relay_log.path
        for link in (mine.customer_link, mine.agent_link):
            client = await Client.connect(host.url, token_of(link))
            await client.drain(0.02)
            for op in ("chat.send", "typing", "ack", "session.sync", "session.history",
                       "customer.get",
                       "session.close", "insights.conversation"):
                if op in ("customer.get", "session.close", "insights.conversation") and (
                        "customer" in link):
                    continue
                before = snapshot(db_path)
                got = await responses_to(client, op, PAYLOADS[op], other.session_id)
                assert [m["data"].get("code") for m in got] == ["forbidden"], (link, op, got)
                assert snapshot(db_path) == before
            # an unknown session is just as closed to them
            got = await responses_to(client, "chat.send", {"text": "x"}, "s_doesnotexist")
            assert [m["data"]["code"] for m in got] == ["forbidden"]
        desk = await Client.connect(host.url, token_of(host.desk_link))
        await desk.drain(0.05)
        got = await responses_to(desk, "chat.send", {"text": "x"}, "s_doesnotexist")
        assert [m["data"]["code"] for m in got] == ["not_found"]
