"""Claims of docs/PROTOCOL.md an independent client relies on, checked through real sockets.

Found by writing a client from the document alone: the order of frames after a
``welcome``, the name an unverified customer writes under, which errors carry the
envelope ``session``, and which operations a closed session answers with
``session_closed``."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

from hitl_desktop.host.relay import RelayConfig
from tests.support.host import running_host
from tests.support.protocol_client import Client, refused


def test_frames_after_welcome_names_errors_and_closed_sessions(tmp_path: Path) -> None:
    asyncio.run(_scenario(tmp_path))


async def _scenario(data: Path) -> None:
    async with running_host(data) as host:
        visitor = await Client.connect(host.local_url, host.lobby_token)
        sid = visitor.session
        assert sid and visitor.welcome["display_name"] == "Customer"
        assert visitor.welcome["identity"] == {
            "signed_in": False, "customer_name": None, "method": None}
        await visitor.expect("session.opened", session=sid)
        said = await visitor.send("chat.send", {"text": "hello"}, session=sid)
        line = await visitor.expect("chat.message", ref=said)
        assert line["data"]["author"] == {"role": "customer", "name": "Customer"}

        # §5: an agent gets welcome, then assistant.status, then the replay (of the
        # sessions its resume names, for a desk) in seq order
        agent = await Client.connect(host.local_url, host.desk_token, resume={sid: 0})
        frames = await agent.drain(0.5)
        assert frames[0]["type"] == "assistant.status"
        seqs = [f["seq"] for f in frames if f.get("session") == sid and f["seq"]]
        assert seqs[:2] == [1, 2] and seqs == sorted(seqs)

        # §11: a frame failing validation is answered with session null, even if it named one
        await visitor.ws.send(json.dumps({
            "v": 1, "type": "chat.send", "id": "bad1", "session": sid, "seq": None,
            "ts": 0.0, "data": {"text": "hi", "extra": 1}}))
        bad = await visitor.expect("error", ref="bad1")
        assert bad["data"]["code"] == "bad_message" and bad["session"] is None
        refused = await visitor.send("session.close", {}, session=sid)
        forbidden = await visitor.expect("error", ref=refused)
        assert forbidden["data"]["code"] == "forbidden" and forbidden["session"] == sid

        # §11 session_closed: chat, sign-in and a second close in a closed session
        closing = await agent.send("session.close", {}, session=sid)
        await visitor.expect("session.closed", ref=closing)
        attempts: list[tuple[Client, str, dict[str, Any]]] = [
            (visitor, "chat.send", {"text": "still there?"}),
            (visitor, "identity.sign_in",
             {"email": "alex.morgan@example.com", "order_id": "ORD1001"}),
            (agent, "session.close", {}),
            (agent, "draft.regenerate", {}),
        ]
        for client, type_, payload in attempts:
            ref = await client.send(type_, payload, session=sid)
            err = await client.expect("error", ref=ref)
            assert err["data"]["code"] == "session_closed", type_
        reopening = await agent.send("session.reopen", {}, session=sid)
        await visitor.expect("session.reopened", ref=reopening)
        again = await agent.send("session.reopen", {}, session=sid)
        assert (await agent.expect("error", ref=again))["data"]["code"] == "conflict"
        await visitor.close()
        await agent.close()


def test_a_claim_never_reaches_the_visitor_in_its_summary(tmp_path: Path) -> None:
    """§6a: "a claim is not shown to the visitor". A representative noting who the
    visitor says they are (``identity.link`` with ``verified: false``) must not put the
    shop's customer id and name into the summary the visitor's welcome carries
    (found by the independent client: it did, as ``sessions[0].identity``)."""
    asyncio.run(_claim_scenario(tmp_path))


async def _claim_scenario(data: Path) -> None:
    async with running_host(data) as host:
        visitor = await Client.connect(host.local_url, host.lobby_token)
        sid = visitor.session
        assert sid is not None
        personal = visitor.welcome["resume_token"]
        agent = await Client.connect(host.local_url, host.desk_token)
        noted = await agent.send("identity.link", {"customer_id": "CUST1003", "verified": False},
                                 session=sid)
        changed = await agent.expect("identity.changed", ref=noted)
        assert changed["data"]["identity"]["state"] == "claimed"
        await visitor.close()

        back = await Client.connect(host.local_url, personal, resume={sid: 1})
        [summary] = back.welcome["sessions"]
        assert back.welcome["identity"]["signed_in"] is False
        assert summary["identity"] == {"state": "anonymous", "customer_id": None,
                                       "customer_name": None, "method": None, "by": None,
                                       "at": None}
        assert summary["customer_id"] is None and summary["customer_name"] is None
        assert "CUST1003" not in json.dumps(back.welcome)
        # the desk still sees the claim: it is the representatives' note
        listed = await agent.send("session.list", {"limit": 5})
        page = await agent.expect("session.list", ref=listed)
        mine = [s for s in page["data"]["sessions"] if s["session_id"] == sid]
        assert mine[0]["identity"]["state"] == "claimed"

        # once verified, the visitor's own summary names them (their own data)
        linked = await agent.send("identity.link", {"customer_id": "CUST1003"}, session=sid)
        await agent.expect("identity.changed", ref=linked)
        await back.expect("identity.state")
        again = await Client.connect(host.local_url, personal, resume={sid: 1})
        [summary] = again.welcome["sessions"]
        assert summary["identity"]["state"] == "verified"
        assert summary["customer_id"] == "CUST1003"
        for client in (back, again, agent):
            await client.close()


def test_receipts_name_the_side_and_a_throttled_hello_has_no_ref(tmp_path: Path) -> None:
    """Two answers a client matches on, as §10/§12/§13 now say: an admin's ack reaches
    the customer as ``by: "agent"`` (the receipt names the side, never ``admin``);
    a hello from an address over its failed-hello budget is refused unread, so its
    ``rate_limited`` error has ``ref`` null, with ``retry_after``, then close 4008."""
    asyncio.run(_receipts_and_throttle(tmp_path))


async def _receipts_and_throttle(data: Path) -> None:
    config = RelayConfig(failed_hello_burst=2, failed_hello_rate=0.05)
    async with running_host(data, config=config) as host:
        visitor = await Client.connect(host.local_url, host.lobby_token)
        sid = visitor.session
        admin = await Client.connect(host.local_url, host.admin_token)
        said = await admin.send("chat.send", {"text": "hello from the admin"}, session=sid)
        line = await visitor.expect("chat.message", ref=said)
        await admin.send("ack", {"seq": line["seq"]}, session=sid)
        receipt = await visitor.expect("chat.delivered")
        assert receipt["data"] == {"seq": line["seq"], "by": "agent"}

        for _ in range(2):  # the burst of failed hellos is answered normally
            frames, code = await refused(host.local_url, "nope1234.wrongwrongwrongwrong")
            assert [f["data"]["code"] for f in frames] == ["auth_failed"] and code == 4001
            assert frames[0]["ref"] is not None
        frames, code = await refused(host.local_url, host.desk_token)  # even a right token
        assert code == 4008 and len(frames) == 1
        assert frames[0]["data"]["code"] == "rate_limited" and frames[0]["ref"] is None
        assert frames[0]["data"]["retry_after"] > 0
        # the pair already in keeps talking
        again = await visitor.send("chat.send", {"text": "still here"}, session=sid)
        await admin.expect("chat.message", ref=again)
        await visitor.close()
        await admin.close()
