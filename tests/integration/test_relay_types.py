"""Every host message type of PROTOCOL.md over a real socket, who gets it, and liveness:
revocation of a connected token, heartbeats dropping a dead peer."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

from hitl_desktop.core.ports import NullCopilot, SessionOutbox
from hitl_desktop.core.protocol import (
    AGENT_ONLY_TYPES,
    HOST_MESSAGES,
    ApprovalCreated,
    ApprovalUpdated,
    Article,
    ArticleContent,
    ArticlesFound,
    AssistantStatus,
    Author,
    ChatMessage,
    Citation,
    DraftCompleted,
    DraftDelta,
    DraftFailed,
    DraftStale,
    DraftStarted,
    ErrorCode,
    Payload,
    SessionGap,
    ToolCall,
    ToolCallDelta,
    ToolResult,
    TurnEnded,
    decode_host,
)
from hitl_desktop.host.relay import Relay, RelayConfig
from tests.support.host import running_host
from tests.support.protocol_client import Client, token_of

ASSISTANT_EVENTS: list[Payload] = [
    DraftStarted(turn_id="t1", reason="customer_message", provider="offline"),
    ArticlesFound(turn_id="t1", articles=[Article(article_id="kb/cancel-order",
                                                  title="Cancel", kind="kb", snippet="s",
                                                  score=0.9)]),
    ToolCallDelta(turn_id="t1", call_id="c1", name="cancel_order",
                  arguments_partial={"order_id": "ORD"}),
    ToolCall(turn_id="t1", call_id="c1", name="cancel_order",
             arguments={"order_id": "ORD1001"}, mode="approval"),
    ApprovalCreated(approval_id="a1", call_id="c1", tool="cancel_order",
                    description="Cancel ORD1001", arguments={"order_id": "ORD1001"},
                    parameters_schema={"type": "object"}, expires_at=None),
    DraftDelta(turn_id="t1", offset=0, text="I'm looking"),
    DraftCompleted(turn_id="t1", text="I'm looking into it.",
                   citations=[Citation(article_id="kb/cancel-order", title="Cancel")]),
    ApprovalUpdated(approval_id="a1", state="executed", by="Agent", result={"ok": True}),
    ToolResult(call_id="c1", name="cancel_order", ok=True, output={"status": "cancelled"}),
    DraftStale(turn_id="t1", reason="superseded"),
    DraftFailed(turn_id="t2", code=ErrorCode.ASSISTANT_UNAVAILABLE, message="down"),
    TurnEnded(turn_id="t2", outcome="failed", reason="down"),
    ChatMessage(message_id="c9", author=Author(role="assistant", name="Co-pilot"),
                text="auto reply"),
]


class ArticleCopilot(NullCopilot):
    """Chat-only, but knows one article (so `article.content` can be exercised)."""

    async def article(self, article_id: str) -> ArticleContent:
        return ArticleContent(article_id=article_id, title="Cancel", kind="kb", markdown="#")


async def test_every_host_type_reaches_exactly_its_audience(tmp_path: Path) -> None:
    relays: list[Relay] = []

    def factory(outbox: SessionOutbox) -> ArticleCopilot:
        assert isinstance(outbox, Relay)
        relays.append(outbox)
        return ArticleCopilot()

    async with running_host(tmp_path, copilot_factory=factory) as host:
        relay = relays[0]
        s = host.create_session()
        sid = s.session_id
        cust = await Client.connect(host.url, token_of(s.customer_link))
        agent = await Client.connect(host.url, token_of(s.agent_link))
        desk = await Client.connect(host.url, token_of(host.desk_link))
        admin = await Client.connect(host.url, token_of(host.admin_link))
        other = host.create_session()
        bystander = await Client.connect(host.url, token_of(other.customer_link))

        seqs = [await relay.publish(sid, p, ref="r1") for p in ASSISTANT_EVENTS]
        durable = [HOST_MESSAGES[t].durable for t in (
            decode_host_type(p) for p in ASSISTANT_EVENTS)]
        assert all((q > 0) == d for q, d in zip(seqs, durable, strict=True))
        relay.broadcast_status(AssistantStatus(provider="offline", model=None, is_ai=False,
                                               state="busy"))
        # what a restart after a lost log tail sends (everyone in the session gets it)
        row = relay.sessions[sid].row
        row.last_seq += 5
        await relay.publish(sid, SessionGap(first_seq=row.last_seq - 4, last_seq=row.last_seq,
                                            reason="test"))
        # client-driven types: chat, typing, receipts, close, list, create, details...
        await cust.send("chat.send", {"text": "hi"}, session=sid)
        await agent.send("typing", {"active": True}, session=sid)
        await cust.send("typing", {"active": False}, session=sid)
        await cust.send("ack", {"seq": seqs[-1]}, session=sid)
        await admin.send("session.list", {})
        await admin.send("session.create", {"title": "x"})
        await agent.send("customer.get", {}, session=sid)
        await agent.send("article.get", {"article_id": "kb/cancel-order"}, session=sid)
        await agent.send("draft.regenerate", {}, session=sid)  # -> error
        await agent.send("kb.search", {"query": "cancel"})
        await agent.send("insights.conversation", {}, session=sid)
        await admin.send("insights.get", {"start": 0.0, "end": 86400.0})
        await desk.send("customer.search", {"query": "priya"})
        await agent.send("identity.link", {"customer_id": "CUST1002"}, session=sid)
        # the desk (issue 16): assignment, a note, status, macros, search, transcript
        await desk.send("session.assign", {"action": "take"}, session=sid)
        await agent.send("note.add", {"text": "internal only"}, session=sid)
        await desk.send("session.status", {"status": "waiting"}, session=sid)
        await desk.send("macro.save", {"name": "hi", "text": "Hello {customer_name}"})
        await desk.send("search", {"query": "hi"})
        await desk.send("transcript.get", {"audience": "internal"}, session=sid)
        await desk.send("session.history", {"limit": 10}, session=sid)  # issue 18
        await desk.send("session.close", {}, session=sid)
        await desk.send("session.reopen", {}, session=sid)  # same socket: after the close
        await desk.wait("reps")  # the admin came online (checked once a second)
        await asyncio.sleep(0.3)  # let coalesced session.updated go out
        got = {name: {m["type"] for m in await c.drain(0.3) + c.seen}
               for name, c in (("cust", cust), ("agent", agent), ("desk", desk),
                               ("admin", admin), ("bystander", bystander))}
        everything = set().union(*got.values())
        assert everything == set(HOST_MESSAGES), set(HOST_MESSAGES) - everything
        assert not got["cust"] & AGENT_ONLY_TYPES
        assert got["cust"] == {"welcome", "session.opened", "chat.message", "typing",
                               "identity.state", "session.closed", "session.reopened",
                               "session.gap"}
        for name in ("agent", "desk", "admin"):
            assert got[name] >= AGENT_ONLY_TYPES | {"chat.message", "chat.delivered"}, name
        assert got["agent"] >= {"typing", "customer.details", "kb.results",
                                "article.content", "error"}
        assert got["admin"] >= {"session.list", "session.created", "insights.report",
                                "identity.changed"}
        assert "insights.changes" in got["agent"]
        assert "customer.results" in got["desk"]
        assert got["desk"] >= {"macro.list", "search.results", "transcript", "reps"}
        assert got["bystander"] <= {"welcome", "session.opened"}
        for c in (cust, agent, desk, admin):
            for m in c.seen:
                decode_host(json.dumps(m))  # every frame is valid protocol


def decode_host_type(payload: Payload) -> str:
    from hitl_desktop.core.protocol import host_type

    return host_type(payload)


async def test_revoking_a_connected_token_closes_it_with_4010(tmp_path: Path) -> None:
    async with running_host(tmp_path) as host:
        s = host.create_session()
        cust = await Client.connect(host.url, token_of(s.customer_link))
        agent = await Client.connect(host.url, token_of(s.agent_link))
        assert host.relay.revoke(token_of(s.customer_link)) == 1
        err = await cust.expect("error")
        assert err["data"]["code"] == "auth_failed"
        assert await cust.closed_code() == 4010
        await agent.send("chat.send", {"text": "still fine"}, session=s.session_id)
        assert (await agent.expect("chat.message"))["data"]["text"] == "still fine"


async def test_heartbeat_drops_a_dead_peer(tmp_path: Path) -> None:
    cfg = RelayConfig(heartbeat_s=0.2, ping_timeout=0.3, close_timeout=0.5)
    async with running_host(tmp_path, config=cfg) as host:
        s = host.create_session()
        dead = await Client.connect(host.url, token_of(s.customer_link), ping_interval=None)
        assert dead.welcome["heartbeat_s"] == 0.2
        dead.ws.transport.pause_reading()  # alive socket, silent peer: pongs never come
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 5
        st = host.relay.sessions[s.session_id]
        while st.customers and loop.time() < deadline:  # noqa: ASYNC110 - polls host state
            await asyncio.sleep(0.05)
        assert not st.customers  # the host noticed within ~ping interval + timeout
        dead.ws.transport.abort()
