"""The relay over real sockets: handshake, chat, receipts, typing, ops, summaries, health."""

from __future__ import annotations

import asyncio
import http.client
import json
import ssl
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any, cast

import pytest

from hitl_desktop.core.links import InviteLink
from hitl_desktop.core.ports import OperationError, SessionOutbox
from hitl_desktop.core.protocol import (
    AGENT_ONLY_TYPES,
    ApprovalCreated,
    ApprovalUpdated,
    ArticleContent,
    AssistantStatus,
    CustomerDetails,
    DraftCompleted,
    DraftDelta,
    DraftStarted,
    ErrorCode,
    KbResults,
    decode_host,
)
from hitl_desktop.host.relay import RelayConfig
from tests.support.host import running_host
from tests.support.protocol_client import Client, refused, token_of


async def test_session_chat_between_customer_and_agent(tmp_path: Path) -> None:
    async with running_host(tmp_path) as host:
        created = host.create_session(customer_id="CUST1001", title="Order help")
        cust = await Client.connect(host.url, token_of(created.customer_link))
        agent = await Client.connect(host.url, token_of(created.agent_link))
        sid = created.session_id
        assert cust.welcome["role"] == "customer" and cust.welcome["session_id"] == sid
        assert agent.welcome["role"] == "agent" and agent.welcome["scope"] == "session"
        opened = await cust.expect("session.opened")
        assert opened["seq"] == 1 and opened["data"]["greeting"] == Settings_greeting()
        await agent.expect("session.opened")

        mid = await cust.send("chat.send", {"text": "How can I cancel my order?"}, session=sid)
        echo = await cust.expect("chat.message")
        assert echo["ref"] == mid and echo["seq"] == 2
        got = await agent.expect("chat.message")
        assert got["data"]["text"] == "How can I cancel my order?"
        assert got["data"]["author"] == {"role": "customer", "name": "Alex Morgan"}
        assert got["id"] == echo["id"]  # one frame, fanned out

        await agent.send("chat.send", {"text": "Sure!", "draft_id": "d1"}, session=sid)
        reply = await cust.expect("chat.message", seq=3)
        assert reply["data"]["author"]["role"] == "agent"
        # every frame the host sends decodes against the protocol
        for msg in cust.seen + agent.seen:
            decode_host(json.dumps(msg))
        stored = host.relay_log.messages(sid)
        assert [m["type"] for m in stored] == ["session.opened", "chat.message", "chat.message"]
        assert [m["seq"] for m in stored] == [1, 2, 3]
        await cust.close()
        await agent.close()


def Settings_greeting() -> str:
    from hitl_desktop.config import Settings

    return Settings().greeting


async def test_acks_become_delivery_receipts_and_typing_is_relayed(tmp_path: Path) -> None:
    async with running_host(tmp_path) as host:
        created = host.create_session()
        sid = created.session_id
        cust = await Client.connect(host.url, token_of(created.customer_link))
        agent = await Client.connect(host.url, token_of(created.agent_link))
        await agent.send("chat.send", {"text": "Hello"}, session=sid)
        msg = await cust.expect("chat.message")
        await cust.send("ack", {"seq": msg["seq"]}, session=sid)
        receipt = await agent.expect("chat.delivered")
        assert receipt["data"] == {"seq": msg["seq"], "by": "customer"}
        assert receipt["seq"] is None  # ephemeral

        await cust.send("typing", {"active": True}, session=sid)
        typing = await agent.expect("typing")
        assert typing["data"] == {"role": "customer", "active": True}
        await agent.send("typing", {"active": False}, session=sid)
        assert (await cust.expect("typing"))["data"] == {"role": "agent", "active": False}
        # the sender does not get its own typing back, nor its own receipt
        rest = await cust.drain()
        assert not [m for m in rest if m["type"] in ("typing", "chat.delivered")]
        await agent.send("ack", {"seq": msg["seq"]}, session=sid)
        assert (await cust.expect("chat.delivered"))["data"]["by"] == "agent"
        assert [m["type"] for m in host.relay_log.messages(sid)] == [
            "session.opened", "chat.message"]


async def test_lobby_opens_a_fresh_session_per_use_with_a_resume_token(tmp_path: Path) -> None:
    async with running_host(tmp_path) as host:
        lobby = token_of(host.lobby_link)
        desk = await Client.connect(host.url, token_of(host.desk_link))
        a = await Client.connect(host.url, lobby)
        b = await Client.connect(host.url, lobby)
        assert a.session and b.session and a.session != b.session
        assert a.welcome["scope"] == "session" and a.welcome["resume_token"]
        upd = await desk.expect("session.updated", session=a.session)
        # a lobby visitor is nobody in particular until they sign in
        assert upd["data"]["summary"]["customer_id"] is None
        assert upd["data"]["summary"]["identity"]["state"] == "anonymous"
        await a.send("chat.send", {"text": "hi from a"}, session=a.session)
        got = await desk.expect("chat.message")
        assert got["session"] == a.session
        await a.close()
        # the personal token resumes *that* session
        again = await Client.connect(host.url, a.welcome["resume_token"],
                                     resume={a.session: 1})
        assert again.session == a.session
        replay = await again.expect("chat.message")
        assert replay["data"]["text"] == "hi from a"
        # b never sees a's chat
        assert not [m for m in await b.drain() if m["type"] == "chat.message"]


async def test_desk_sees_every_session_and_summaries(tmp_path: Path) -> None:
    async with running_host(tmp_path) as host:
        s1 = host.create_session(customer_id="CUST1002", title="one")
        s2 = host.create_session(title="two")
        desk1 = await Client.connect(host.url, token_of(host.desk_link))
        desk2 = await Client.connect(host.url, token_of(host.desk_link))
        ids = {s["session_id"] for s in desk1.welcome["sessions"]}
        assert {s1.session_id, s2.session_id} <= ids
        names = {s["session_id"]: s["customer_name"] for s in desk1.welcome["sessions"]}
        assert names[s1.session_id] == "Priya Shah"
        c1 = await Client.connect(host.url, token_of(s1.customer_link))
        upd = await desk1.expect("session.updated", session=s1.session_id)
        assert upd["data"]["summary"]["clients"] == 1
        await c1.send("chat.send", {"text": "where is my parcel"}, session=s1.session_id)
        for desk in (desk1, desk2):
            m = await desk.expect("chat.message", session=s1.session_id)
            assert m["data"]["text"] == "where is my parcel"
            upd = await desk.expect("session.updated", session=s1.session_id)
            assert upd["data"]["summary"]["last_message"] == "where is my parcel"
            assert upd["data"]["summary"]["messages"] == 1
        await desk1.send("chat.send", {"text": "On its way"}, session=s1.session_id)
        assert (await c1.expect("chat.message", seq=3))["data"]["text"] == "On its way"
        lst_id = await desk2.send("session.list", {})
        lst = await desk2.expect("session.list")
        assert lst["ref"] == lst_id and len(lst["data"]["sessions"]) == 2
        counts = {x["session_id"]: x["messages"] for x in lst["data"]["sessions"]}
        assert counts == {s1.session_id: 2, s2.session_id: 0}


async def test_admin_creates_and_closes_sessions(tmp_path: Path) -> None:
    async with running_host(tmp_path) as host:
        admin = await Client.connect(host.url, token_of(host.admin_link))
        assert admin.welcome["role"] == "admin"
        ref = await admin.send("session.create", {"customer_id": "CUST1003", "title": "VIP"})
        frames = {m["type"]: m for m in await admin.drain()}
        created = frames["session.created"]
        assert created["ref"] == ref
        sid = created["data"]["session_id"]
        link = InviteLink.parse(created["data"]["customer_link"])
        assert link.port == host.port and link.role == "customer"
        opened = frames["session.opened"]
        assert opened["session"] == sid and opened["data"]["summary"]["title"] == "VIP"
        cust = await Client.connect(host.url, link.token)
        await admin.send("session.close", {}, session=sid)
        closed = await cust.expect("session.closed")
        assert closed["data"]["by"] == "Host"
        await cust.send("chat.send", {"text": "hello?"}, session=sid)
        err = await cust.expect("error")
        assert err["data"]["code"] == "session_closed"
        await admin.send("session.close", {}, session=sid)
        assert (await admin.expect("error"))["data"]["code"] == "session_closed"
        assert [m["type"] for m in host.relay_log.messages(sid)] == [
            "session.opened", "session.closed"]
        # an agent reopens it: writable again for the customer, and so logged
        await admin.send("session.reopen", {}, session=sid)
        reopened = await cust.expect("session.reopened")
        assert reopened["data"]["by"] == "Host"
        await cust.send("chat.send", {"text": "still there?"}, session=sid)
        assert (await cust.expect("chat.message"))["data"]["text"] == "still there?"
        await admin.send("session.reopen", {}, session=sid)
        assert (await admin.expect("error"))["data"]["code"] == "conflict"
        stored = {row.session_id: row.state for _, row in host.relay_log.load_sessions()}
        assert stored[sid] == "open"  # on disk too: a restarted host agrees
        assert [m["type"] for m in host.relay_log.messages(sid)][-3:] == [
            "session.closed", "session.reopened", "chat.message"]


async def test_null_copilot_operations_answer_or_map_errors(tmp_path: Path) -> None:
    async with running_host(tmp_path) as host:
        created = host.create_session()
        sid = created.session_id
        agent = await Client.connect(host.url, token_of(created.agent_link))
        status = await agent.expect("assistant.status")
        assert status["data"]["state"] == "unconfigured"
        ref = await agent.send("customer.get", {}, session=sid)
        details = await agent.expect("customer.details")
        assert details["ref"] == ref and details["data"] == {
            "customer": None, "orders": [], "identity": {
                "state": "anonymous", "customer_id": None, "customer_name": None,
                "method": None, "by": None, "at": None}}
        await agent.send("kb.search", {"query": "refund"})
        assert (await agent.expect("kb.results"))["data"]["query"] == "refund"
        for type_, data, code in (
            ("article.get", {"article_id": "kb/nope"}, "not_found"),
            ("approval.approve", {"approval_id": "a1"}, "not_found"),
            ("approval.reject", {"approval_id": "a1", "reason": "no"}, "not_found"),
            ("draft.regenerate", {}, "assistant_unavailable"),
            ("draft.discard", {"turn_id": "t1"}, "not_found"),
        ):
            ref = await agent.send(type_, data, session=sid)
            err = await agent.expect("error")
            assert err["ref"] == ref and err["data"]["code"] == code, type_


class RecordingCopilot:
    """A real (small) Copilot implementation driving the outbox like the assistant will."""

    def __init__(self, outbox: SessionOutbox) -> None:
        self.outbox = outbox
        self.calls: list[tuple[Any, ...]] = []
        self.drafting: dict[str, tuple[str, str]] = {}

    async def on_customer_message(self, session_id: str, message_id: str, text: str) -> None:
        self.calls.append(("customer", session_id, text))
        await self.outbox.publish(session_id, DraftStarted(
            turn_id="t1", reason="customer_message", provider="test"))
        await self.outbox.publish(session_id, DraftDelta(turn_id="t1", offset=0, text="Let me"))
        self.drafting[session_id] = ("t1", "Let me")
        await self.outbox.publish(session_id, ApprovalCreated(
            approval_id="a1", call_id="c1", tool="cancel_order", description="Cancel ORD1001",
            arguments={"order_id": "ORD1001"}, parameters_schema={}, expires_at=None))

    async def on_agent_message(self, session_id: str, message_id: str, text: str,
                               draft_id: str | None, agent: str) -> None:
        self.calls.append(("agent", session_id, text, draft_id, agent))

    async def approve(self, session_id: str, approval_id: str, agent: str,
                      arguments: dict[str, Any] | None) -> None:
        if approval_id != "a1":
            raise OperationError(ErrorCode.NOT_FOUND, "no such approval")
        await self.outbox.publish(session_id, ApprovalUpdated(
            approval_id="a1", state="executed", by=agent, result={"ok": True}))
        await self.outbox.publish(session_id, DraftCompleted(turn_id="t1", text="Done."))
        self.drafting.pop(session_id, None)

    async def reject(self, session_id: str, approval_id: str, agent: str, reason: str) -> None:
        raise OperationError(ErrorCode.CONFLICT, "already decided")

    async def regenerate(self, session_id: str) -> None:
        raise RuntimeError("boom")  # the relay must turn this into `internal`

    async def discard(self, session_id: str, turn_id: str) -> None:
        self.calls.append(("discard", session_id, turn_id))

    def draft_in_progress(self, session_id: str) -> tuple[str, str] | None:
        return self.drafting.get(session_id)

    async def draft_text(self, session_id: str, draft_id: str) -> str | None:
        return None

    async def customer_details(self, session_id: str) -> CustomerDetails:
        return CustomerDetails(customer={"id": "CUST1001"}, orders=[{"id": "ORD1001"}])

    async def article(self, article_id: str) -> ArticleContent:
        return ArticleContent(article_id=article_id, title="T", kind="kb", markdown="# T")

    async def kb_search(self, query: str, kind: str | None, limit: int) -> KbResults:
        return KbResults(query=query, articles=[])

    def status(self) -> AssistantStatus:
        return AssistantStatus(provider="test", model=None, is_ai=False, state="ready")

    async def aclose(self) -> None:
        self.calls.append(("closed",))


async def test_copilot_seam_agent_only_types_and_draft_resume(tmp_path: Path) -> None:
    copilots: list[RecordingCopilot] = []

    def factory(outbox: SessionOutbox) -> RecordingCopilot:
        copilots.append(RecordingCopilot(outbox))
        return copilots[-1]

    async with running_host(tmp_path, copilot_factory=factory) as host:
        created = host.create_session()
        sid = created.session_id
        cust = await Client.connect(host.url, token_of(created.customer_link))
        agent = await Client.connect(host.url, token_of(created.agent_link))
        desk = await Client.connect(host.url, token_of(host.desk_link))
        await cust.send("chat.send", {"text": "cancel ORD1001"}, session=sid)
        await agent.expect("draft.started")
        assert (await agent.expect("draft.delta"))["data"]["text"] == "Let me"
        created_ap = await desk.expect("approval.created")
        assert created_ap["seq"] == 4
        upd = await desk.expect("session.updated", session=sid)
        while upd["data"]["summary"]["pending_approvals"] != 1:
            upd = await desk.expect("session.updated", session=sid)
        # a second agent joining mid-draft gets the draft so far
        late = await Client.connect(host.url, token_of(created.agent_link))
        delta = await late.expect("draft.delta")
        assert delta["data"] == {"turn_id": "t1", "offset": 0, "text": "Let me"}
        await agent.send("approval.approve", {"approval_id": "a1"}, session=sid)
        done = await agent.expect("approval.updated")
        assert done["data"]["state"] == "executed" and done["data"]["by"] == "Agent"
        ref = await agent.send("approval.reject", {"approval_id": "a1", "reason": "x"},
                               session=sid)
        err = await agent.expect("error")
        assert err["ref"] == ref and err["data"]["code"] == "conflict"
        ref = await agent.send("draft.regenerate", {}, session=sid)
        err = await agent.expect("error")
        assert err["ref"] == ref and err["data"]["code"] == "internal"
        await agent.send("chat.send", {"text": "Done.", "draft_id": "t1"}, session=sid)
        await cust.expect("chat.message", seq=7)
        assert copilots[0].calls[0] == ("customer", sid, "cancel ORD1001")
        assert ("agent", sid, "Done.", "t1", "Agent") in copilots[0].calls
        # the customer saw only chat and session frames
        for m in cust.seen + await cust.drain():
            assert m["type"] not in AGENT_ONLY_TYPES, m["type"]
        # the customer's resume replays no agent-only frames either
        again = await Client.connect(host.url, token_of(created.customer_link))
        types = [m["type"] for m in await again.drain()]
        assert types == ["session.opened", "chat.message", "chat.message"]
    assert copilots[0].calls[-1] == ("closed",)


async def test_wrong_and_revoked_secrets_get_nothing(tmp_path: Path) -> None:
    async with running_host(tmp_path) as host:
        created = host.create_session()
        good = token_of(created.customer_link)
        tid, _, secret = good.partition(".")
        wrong = f"{tid}.{secret[:-4]}AAAA"
        frames, code = await refused(host.url, wrong)
        assert code == 4001
        assert [f["data"]["code"] for f in frames] == ["auth_failed"]
        cust = await Client.connect(host.url, good)
        await cust.close()
        assert host.relay.tokens.revoke(good)
        frames, code = await refused(host.url, good)  # replayed after revocation
        assert code == 4001 and [f["type"] for f in frames] == ["error"]
        frames, code = await refused(host.url, "nodot-but-long-enough")
        assert code == 4001 and frames[0]["data"]["code"] == "auth_failed"


async def test_handshake_rules(tmp_path: Path) -> None:
    cfg = RelayConfig(hello_timeout=0.3)
    async with running_host(tmp_path, config=cfg) as host:
        from websockets.asyncio.client import connect

        async with connect(host.url) as ws:  # says nothing
            c = Client(ws)
            err = await c.recv()
            assert err["data"]["code"] == "not_authenticated"
            assert await c.closed_code() == 4002
        async with connect(host.url) as ws:  # talks before hello
            c = Client(ws)
            await c.send("chat.send", {"text": "x"}, session="s_1")
            assert (await c.recv())["data"]["code"] == "not_authenticated"
            assert await c.closed_code() == 4001
        async with connect(host.url) as ws:  # a future protocol version
            await ws.send(json.dumps({"v": 99, "type": "hello", "id": "h1", "ts": 0,
                                      "data": {"token": "x" * 20}}))
            c = Client(ws)
            err = await c.recv()
            assert err["data"]["code"] == "unsupported_version" and err["ref"] == "h1"
            assert await c.closed_code() == 4004
        # hello twice
        desk = await Client.connect(host.url, token_of(host.desk_link))
        ref = await desk.send("hello", {"token": token_of(host.desk_link)})
        err = await desk.expect("error")
        assert err["ref"] == ref and err["data"]["code"] == "conflict"


def test_health_endpoint_and_404(tmp_path: Path) -> None:
    async def main() -> tuple[dict[str, Any], int]:
        async with running_host(tmp_path) as host:
            base = f"http://127.0.0.1:{host.port}"

            def fetch() -> tuple[dict[str, Any], int]:
                with urllib.request.urlopen(f"{base}/health", timeout=5) as r:
                    assert r.headers["Content-Type"] == "application/json"
                    health = json.loads(r.read())
                try:
                    urllib.request.urlopen(f"{base}/nope", timeout=5)
                except urllib.error.HTTPError as exc:
                    return health, exc.code
                return health, 200

            return await asyncio.to_thread(fetch)

    health, code = asyncio.run(main())
    assert health["ok"] is True and health["protocol"] == 1
    assert code == 404


async def test_tls(tmp_path: Path) -> None:
    cert, key = make_self_signed(tmp_path)
    async with running_host(tmp_path, tls_cert=str(cert), tls_key=str(key)) as host:
        assert host.url.startswith("wss://") and host.desk_link.startswith("hitls://")
        ctx = ssl.create_default_context(cafile=str(cert))
        desk = await Client.connect(host.url, token_of(host.desk_link), ssl=ctx)
        assert desk.welcome["role"] == "agent"
        with pytest.raises(ssl.SSLError):  # an unverified client cannot silently connect
            await Client.connect(host.url, token_of(host.desk_link),
                                 ssl=ssl.create_default_context())
        # PROTOCOL.md section 2: /health is HTTPS there; plain HTTP gets no answer
        base = f"127.0.0.1:{host.port}/health"

        def fetch(url: str, **kw: Any) -> dict[str, Any]:
            with urllib.request.urlopen(url, timeout=5, **kw) as r:
                return cast(dict[str, Any], json.loads(r.read()))

        health = await asyncio.to_thread(fetch, f"https://{base}", context=ctx)
        assert health["ok"] is True and health["clients"] == 1
        with pytest.raises((urllib.error.URLError, ConnectionError, http.client.HTTPException)):
            await asyncio.to_thread(fetch, f"http://{base}")


async def test_links_name_the_public_host(tmp_path: Path) -> None:
    from hitl_desktop.app.services import lan_address

    async with running_host(tmp_path / "a", bind="0.0.0.0", public_host="desk.example") as h:
        assert InviteLink.parse(h.lobby_link).host == "desk.example"
        assert h.url == f"ws://desk.example:{h.port}/ws"
        desk = await Client.connect(h.local_url, token_of(h.desk_link))
        assert desk.welcome["scope"] == "desk"
        created = h.create_session()
        assert InviteLink.parse(created.agent_link).host == "desk.example"
    async with running_host(tmp_path / "b", bind="0.0.0.0") as h:
        assert InviteLink.parse(h.desk_link).host == lan_address() != "0.0.0.0"
    async with running_host(tmp_path / "c") as h:
        assert InviteLink.parse(h.desk_link).host == "127.0.0.1"
        info = json.loads((tmp_path / "c" / "host.json").read_text())
        assert info["port"] == h.port and info["public_host"] == "127.0.0.1"


def make_self_signed(where: Path) -> tuple[Path, Path]:
    import datetime

    pytest.importorskip("cryptography")
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.UTC)
    import ipaddress

    cert = (
        x509.CertificateBuilder().subject_name(name).issuer_name(name)
        .public_key(key.public_key()).serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=1))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName(
            [x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = where / "cert.pem", where / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption()))
    return cert_path, key_path
