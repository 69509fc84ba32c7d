"""The desk, host side (issue 16), through real sockets: two representatives and three
customers on a real host; assignment seen live by both representatives, the warning
before writing into another's session, notes that never reach a customer (checked on
every customer frame), status with reopen-on-customer-line, waiting times, resolve with
a pending approval; and all of it after restarting the host on the same data dir."""

from __future__ import annotations

import asyncio
import json
import sqlite3
from pathlib import Path
from typing import Any

from hitl_desktop.core.ports import NullCopilot, SessionOutbox
from hitl_desktop.core.protocol import AGENT_ONLY_TYPES, ApprovalCreated
from hitl_desktop.host.tokens import TokenKind
from tests.support.host import running_host
from tests.support.protocol_client import Client


class ProposingCopilot(NullCopilot):
    """Proposes a ``cancel_order`` approval for a customer line that asks to cancel,
    through the outbox, as the real co-pilot does after its dry run."""

    def __init__(self, outbox: SessionOutbox) -> None:
        self.outbox = outbox
        self.proposed = 0

    async def on_customer_message(self, session_id: str, message_id: str, text: str) -> None:
        if "cancel" in text.lower():
            self.proposed += 1
            n = self.proposed
            await self.outbox.publish(session_id, ApprovalCreated(
                approval_id=f"a{n}", call_id=f"c{n}", tool="cancel_order",
                description="Cancel ORD1001", arguments={"order_id": "ORD1001"},
                parameters_schema={}, expires_at=None, summary="Cancel order ORD1001"))


async def rep(host: Any, name: str) -> tuple[str, Client, str]:
    """A representative with a personal desk link: (rep id, connected client, token)."""
    token = host.relay.tokens.issue(TokenKind.AGENT_DESK, label=name)
    return token.partition(".")[0], await Client.connect(host.url, token), token


_ANSWERS = frozenset({"error", "session.assigned", "note.added", "session.status_changed",
                      "macro.list", "search.results", "transcript", "chat.message"})


async def answer(client: Client, msg_id: str, within: float = 10.0) -> dict[str, Any]:
    """The frame that answers ``msg_id`` (a reply, or an error, with that ``ref``)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while True:
        for f in client.frames:
            if f.get("ref") == msg_id and f["type"] in _ANSWERS:
                return f
        if loop.time() > deadline:
            raise AssertionError(f"no answer to {msg_id}: {client.frames[-5:]}")
        await asyncio.sleep(0.01)


def summary_of(client: Client, sid: str) -> dict[str, Any]:
    """The latest summary of ``sid`` the client received (welcome or session.updated)."""
    latest = next((s for s in client.welcome.get("sessions", []) if s["session_id"] == sid),
                  None)
    for f in client.frames:
        if f["type"] == "session.updated" and f["session"] == sid:
            latest = f["data"]["summary"]
    assert latest is not None, sid
    return latest


async def summary_where(client: Client, sid: str, **want: Any) -> dict[str, Any]:
    """Wait for a session.updated of ``sid`` whose summary has these values."""
    frame = await client.wait(
        "session.updated", where=lambda f: f["session"] == sid and all(
            f["data"]["summary"].get(k) == v for k, v in want.items()))
    summary: dict[str, Any] = frame["data"]["summary"]
    return summary


def log_rows(host: Any) -> list[tuple[Any, ...]]:
    db = sqlite3.connect(host.relay_log.path)
    try:
        return db.execute("SELECT session_id, seq, type FROM messages ORDER BY 1, 2").fetchall()
    finally:
        db.close()


def assert_nothing_internal(customers: list[Client], secrets: list[str]) -> None:
    """Every frame any customer socket received: no agent-only type, no internal text."""
    total = 0
    for c in customers:
        for f in c.frames:
            total += 1
            assert f["type"] not in AGENT_ONLY_TYPES, f
            raw = json.dumps(f, ensure_ascii=False)
            for secret in secrets:
                assert secret not in raw, (secret, f)
    assert total > 0


async def test_two_reps_three_customers(tmp_path: Path) -> None:
    async with running_host(tmp_path, copilot_factory=ProposingCopilot) as host:
        ana_id, ana, _ = await rep(host, "Ana")
        ben_id, ben, _ = await rep(host, "Ben")
        assert ana.welcome["you"] == {"rep_id": ana_id, "name": "Ana"}
        assert ben.welcome["you"] == {"rep_id": ben_id, "name": "Ben"}
        reps = {r["rep_id"]: r for r in ben.welcome["reps"]}
        assert reps[ana_id] == {"rep_id": ana_id, "name": "Ana", "online": True}
        assert reps[ben_id]["online"] is True
        names = sorted(r["name"] for r in ben.welcome["reps"])
        assert names == ["Agent", "Ana", "Ben", "Host"]  # shared desk link, admin link
        assert not [r for r in reps.values() if r["name"] == "Agent" and r["online"]]

        customers = [await Client.connect(host.url, host.lobby_token) for _ in range(3)]
        c1, c2, c3 = customers
        s1, s2, s3 = (c.session for c in customers)
        assert c1.welcome["you"] is None and c1.welcome["reps"] == []
        for c in customers:
            assert c.session is not None

        # a customer line: both reps see it; waiting_since is the line's time
        await c1.send("chat.send", {"text": "Hi, my parcel is late"}, session=s1)
        line = await ana.wait("chat.message", where=lambda f: f["session"] == s1)
        await ben.wait("chat.message", where=lambda f: f["session"] == s1)
        got = await summary_where(ben, s1, waiting_since=line["ts"])
        assert got["assignee"] is None and got["status"] == "open"
        # a second customer line does not move it (the oldest unanswered one counts)
        await c1.send("chat.send", {"text": "Order ORD1001"}, session=s1)
        await summary_where(ana, s1, messages=2)
        assert summary_of(ana, s1)["waiting_since"] == line["ts"]

        # Ana takes s1: both see it live, with who did it
        mid = await ana.send("session.assign", {"action": "take", "to": None}, session=s1)
        for r in (ana, ben):
            f = await r.wait("session.assigned", where=lambda f: f["ref"] == mid)
            assert f["data"] == {"assignee": {"rep_id": ana_id, "name": "Ana"}, "by": "Ana",
                                 "previous": None}
            assert f["session"] == s1 and f["seq"] is not None
            await summary_where(r, s1, assignee={"rep_id": ana_id, "name": "Ana"})
        # taking it again: conflict, nothing logged
        before = log_rows(host)
        mid = await ana.send("session.assign", {"action": "take"}, session=s1)
        assert (await answer(ana, mid))["data"]["code"] == "conflict"
        assert log_rows(host) == before

        # Ben writes into Ana's session: warned first, nothing logged or delivered
        mid = await ben.send("chat.send", {"text": "Ben here, let me check"}, session=s1)
        err = await answer(ben, mid)
        assert err["type"] == "error" and err["data"]["code"] == "held_by_other"
        assert err["data"]["details"] == {"assignee": {"rep_id": ana_id, "name": "Ana"}}
        assert err["session"] == s1
        assert log_rows(host) == before
        # the holder writes freely; then Ben overrides, and the customer gets it
        mid = await ana.send("chat.send", {"text": "Ana here, looking now"}, session=s1)
        assert (await answer(ana, mid))["type"] == "chat.message"
        await summary_where(ben, s1, waiting_since=None)  # answered
        mid = await ben.send("chat.send", {"text": "Ben here too", "override": True},
                             session=s1)
        assert (await answer(ben, mid))["type"] == "chat.message"
        await c1.wait("chat.message", where=lambda f: f["data"]["text"] == "Ben here too")
        names_seen = [f["data"]["author"]["name"] for f in c1.of("chat.message")]
        assert names_seen[-2:] == ["Ana", "Ben"]

        # transfer Ana -> Ben, seen by both; Ben then writes without override
        mid = await ana.send("session.assign", {"action": "transfer", "to": ben_id}, session=s1)
        for r in (ana, ben):
            f = await r.wait("session.assigned", where=lambda f: f["ref"] == mid)
            assert f["data"]["assignee"] == {"rep_id": ben_id, "name": "Ben"}
            assert f["data"]["previous"] == {"rep_id": ana_id, "name": "Ana"}
            await summary_where(r, s1, assignee={"rep_id": ben_id, "name": "Ben"})
        mid = await ben.send("chat.send", {"text": "All yours now, Ben speaking"}, session=s1)
        assert (await answer(ben, mid))["type"] == "chat.message"
        # transfers to nobody known: not_found, nothing logged
        before = log_rows(host)
        for to in ("nobody", host.desk_token.partition(".")[0] + "x"):
            mid = await ana.send("session.assign", {"action": "transfer", "to": to},
                                 session=s1)
            assert (await answer(ana, mid))["data"]["code"] == "not_found"
        mid = await ana.send("session.assign", {"action": "transfer"}, session=s1)
        assert (await answer(ana, mid))["data"]["code"] == "bad_message"
        assert log_rows(host) == before
        # Ana releases Ben's session (a desk is a team): recorded with by
        mid = await ana.send("session.assign", {"action": "release"}, session=s1)
        for r in (ana, ben):
            f = await r.wait("session.assigned", where=lambda f: f["ref"] == mid)
            assert f["data"] == {"assignee": None, "by": "Ana",
                                 "previous": {"rep_id": ben_id, "name": "Ben"}}
            await summary_where(r, s1, assignee=None)

        # notes: both reps see them, in order with the chat; customers never do
        notes = ["NOTE-courier-called-3pm", "NOTE-refund-approved-by-lead"]
        mid = await ana.send("note.add", {"text": notes[0]}, session=s1)
        for r in (ana, ben):
            f = await r.wait("note.added", where=lambda f: f["ref"] == mid)
            assert f["data"]["author"] == {"role": "agent", "name": "Ana"}
            assert f["data"]["text"] == notes[0] and f["seq"] is not None
        mid = await ben.send("note.add", {"text": notes[1]}, session=s2)
        await ana.wait("note.added", where=lambda f: f["ref"] == mid)

        # status: waiting, then the customer's line sets it back to open
        mid = await ben.send("session.status", {"status": "waiting"}, session=s2)
        f = await ana.wait("session.status_changed", where=lambda f: f["ref"] == mid)
        assert f["data"] == {"status": "waiting", "by": "Ben", "previous": "open"}
        await summary_where(ana, s2, status="waiting")
        mid = await c2.send("chat.send", {"text": "Here is the photo you asked for"},
                            session=s2)
        f = await ana.wait("session.status_changed", where=lambda f: f["ref"] == mid)
        assert f["data"] == {"status": "open", "by": "customer", "previous": "waiting"}
        await summary_where(ben, s2, status="open")

        # resolved, then the customer writes again: open again
        mid = await ana.send("session.status", {"status": "resolved"}, session=s3)
        await ben.wait("session.status_changed", where=lambda f: f["ref"] == mid)
        await summary_where(ben, s3, status="resolved")
        mid = await ana.send("session.status", {"status": "resolved"}, session=s3)
        assert (await answer(ana, mid))["data"]["code"] == "conflict"
        await c3.send("chat.send", {"text": "One more question please"}, session=s3)
        await ben.wait("session.status_changed", where=lambda f: f["session"] == s3
                       and f["data"]["by"] == "customer")
        await summary_where(ana, s3, status="open")

        # resolving with a pending approval asks first (conflict + pending), then force
        await c3.send("chat.send", {"text": "Please cancel my order ORD1001"}, session=s3)
        await ana.wait("approval.created", where=lambda f: f["session"] == s3)
        await summary_where(ana, s3, pending_approvals=1)
        before = log_rows(host)
        mid = await ana.send("session.status", {"status": "resolved"}, session=s3)
        err = await answer(ana, mid)
        assert err["data"]["code"] == "conflict" and err["data"]["details"] == {"pending": 1}
        assert log_rows(host) == before
        mid = await ana.send("session.status", {"status": "resolved", "force": True},
                             session=s3)
        f = await ben.wait("session.status_changed", where=lambda f: f["ref"] == mid)
        assert f["data"]["status"] == "resolved"

        # every frame every customer socket received, and a fresh full replay of each
        replays = [await Client.connect(host.url, c.welcome["resume_token"],
                                        resume={str(c.session): 0}) for c in customers]
        for r in replays:
            await r.wait("chat.message")
            await r.drain(0.3)
        assert_nothing_internal([*customers, *replays],
                                [*notes, "session.assigned", "status_changed", "note.added",
                                 "held_by_other"])
        customers += replays
        for c in [*customers, ana, ben]:
            await c.close()


async def test_desk_state_survives_a_restart(tmp_path: Path) -> None:
    data = tmp_path / "data"
    async with running_host(data) as host:
        ana_id, ana, ana_token = await rep(host, "Ana")
        c1 = await Client.connect(host.url, host.lobby_token)
        c2 = await Client.connect(host.url, host.lobby_token)
        s1, s2 = c1.session, c2.session
        assert s1 is not None and s2 is not None
        await c1.send("chat.send", {"text": "Where is my refund for the blue kettle?"},
                      session=s1)
        line = await ana.wait("chat.message", where=lambda f: f["session"] == s1)
        await c2.send("chat.send", {"text": "Thanks, all good"}, session=s2)
        await ana.wait("chat.message", where=lambda f: f["session"] == s2)
        await ana.send("chat.send", {"text": "Glad to help"}, session=s2)
        await ana.send("session.assign", {"action": "take"}, session=s1)
        await ana.send("note.add", {"text": "Kettle refund: waiting for the warehouse"},
                       session=s1)
        await ana.send("session.status", {"status": "resolved"}, session=s2)
        mid = await ana.send("macro.save", {"name": "refund-eta",
                                            "text": "Hi {customer_first_name}, refunds take "
                                                    "3-5 days."})
        await answer(ana, mid)
        mid = await ana.send("session.close", {}, session=s2)
        await ana.wait("session.closed", where=lambda f: f["ref"] == mid)
        for c in (ana, c1, c2):
            await c.close()

    async with running_host(data) as host:  # a new process' view: everything from disk
        ana = await Client.connect(host.url, ana_token)
        assert ana.welcome["you"] == {"rep_id": ana_id, "name": "Ana"}
        sums = {s["session_id"]: s for s in ana.welcome["sessions"]}
        assert sums[s1]["assignee"] == {"rep_id": ana_id, "name": "Ana"}
        assert sums[s1]["status"] == "open"
        assert sums[s1]["waiting_since"] == line["ts"]
        assert sums[s2]["status"] == "resolved" and sums[s2]["state"] == "closed"
        assert sums[s2]["waiting_since"] is None and sums[s2]["assignee"] is None
        # no history came with the summaries (issue 18); opening s1 fetches it: the note
        # is in it, the macro on the host, the closed session searchable
        assert not [f for f in ana.frames if f["seq"] is not None]
        await ana.send("session.sync", {"after_seq": 0}, session=s1)
        note = await ana.wait("note.added", where=lambda f: f["session"] == s1)
        assert note["data"]["text"].startswith("Kettle refund")
        mid = await ana.send("macro.list", {})
        macros = (await answer(ana, mid))["data"]["macros"]
        assert [(m["name"], m["updated_by"]) for m in macros] == [("refund-eta", "Ana")]
        mid = await ana.send("search", {"query": "all good"})
        hits = (await answer(ana, mid))["data"]["hits"]
        assert [(h["session_id"], h["author_role"]) for h in hits] == [(s2, "customer")]
        mid = await ana.send("search", {"query": "warehouse"})
        hits = (await answer(ana, mid))["data"]["hits"]
        assert [(h["session_id"], h["kind"]) for h in hits] == [(s1, "note")]
        # and the rules still hold: someone else writing into Ana's session is warned
        other = await Client.connect(host.url, host.desk_token)
        assert other.welcome["you"]["name"] == "Agent"
        mid = await other.send("chat.send", {"text": "hello?"}, session=s1)
        assert (await answer(other, mid))["data"]["code"] == "held_by_other"
        await ana.close()
        await other.close()


async def test_the_desk_sees_representatives_come_and_go(tmp_path: Path) -> None:
    async with running_host(tmp_path) as host:
        ana_id, ana, _ = await rep(host, "Ana")
        ben_id, ben, _ = await rep(host, "Ben")

        def online(f: dict[str, Any]) -> dict[str, bool]:
            return {r["rep_id"]: r["online"] for r in f["data"]["reps"]}

        f = await ana.wait("reps", where=lambda f: online(f).get(ben_id) is True)
        assert f["ref"] is None and f["session"] is None and online(f)[ana_id] is True
        await ben.close()
        f = await ana.wait("reps", where=lambda f: online(f).get(ben_id) is False)
        assert online(f)[ana_id] is True
        # a customer never hears about representatives
        c = await Client.connect(host.url, host.lobby_token)
        _cleo_id, cleo, _ = await rep(host, "Cleo")  # a link made after the others
        await ana.wait("reps", where=lambda f: "Cleo" in [r["name"] for r in f["data"][
            "reps"] if r["online"]])
        await c.drain(0.3)
        assert not c.of("reps")
        for x in (ana, cleo, c):
            await x.close()


async def test_removing_a_representative_releases_their_sessions(tmp_path: Path) -> None:
    async with running_host(tmp_path) as host:
        ana_id, ana, _ = await rep(host, "Ana")
        _ben_id, ben, _ = await rep(host, "Ben")
        c = await Client.connect(host.url, host.lobby_token)
        sid = str(c.session)
        mid = await ana.send("session.assign", {"action": "take"}, session=sid)
        await ben.wait("session.assigned", where=lambda f: f["ref"] == mid)
        host.relay.revoke(ana_id)  # what `rep remove Ana` leads to on a running host
        assert await ana.closed_code() == 4010
        f = await ben.wait("session.assigned", where=lambda f: f["data"]["assignee"] is None)
        assert f["data"]["by"] == "Ana (removed)"
        assert f["data"]["previous"] == {"rep_id": ana_id, "name": "Ana"}
        await summary_where(ben, sid, assignee=None)
        mid = await ben.send("chat.send", {"text": "Ben here, taking over"}, session=sid)
        assert (await answer(ben, mid))["type"] == "chat.message"
        assert not [f for f in c.frames if f["type"] == "session.assigned"]
        for x in (ben, c):
            await x.close()
