"""HostConnection against a real relay on port 0: connect, resume, backoff, auth failure."""

from __future__ import annotations

import asyncio
import functools
import random
import socket
from pathlib import Path
from typing import Any

import pytest

from hitl_desktop.client.chat import ChatModel, Delivery
from hitl_desktop.client.connection import (
    ConnectionState,
    HostConnection,
    ResumeTokenStore,
    backoff_delay,
)
from hitl_desktop.core.links import InviteLink
from hitl_desktop.core.protocol import ChatMessage, ChatSend, Envelope, Payload, Role
from tests.ui.conftest import running_host, until


def _texts(received: list[tuple[Envelope, Payload]], session: str) -> list[str]:
    return [
        p.text for e, p in received if isinstance(p, ChatMessage) and e.session == session
    ]


def _connects_at_least(conn: HostConnection, n: int) -> bool:
    return conn.connects >= n


async def _connected(conn: HostConnection) -> None:
    conn.open()
    async with asyncio.timeout(10):
        await conn.wait_connected()


async def test_customer_and_agent_talk_and_receipts_flow(tmp_path: Path) -> None:
    async with running_host(tmp_path) as host:
        created = host.create_session(customer_id="CUST1001")
        customer = HostConnection(InviteLink.parse(created.customer_link))
        agent = HostConnection(InviteLink.parse(host.desk_link))
        got: list[tuple[Envelope, Payload]] = []
        agent.message_received.connect(lambda e, p: got.append((e, p)))
        states: list[str] = []
        customer.state_changed.connect(states.append)
        chat = ChatModel(customer)
        greetings: list[str] = []
        chat.greeting_changed.connect(greetings.append)
        try:
            await _connected(customer)
            await _connected(agent)
            assert customer.session_id == created.session_id
            assert customer.welcome is not None and customer.welcome.role is Role.CUSTOMER
            assert states[:2] == ["connecting", "connected"]
            await until(lambda: chat.greeting is not None, what="greeting")
            assert greetings == [chat.greeting]

            item = chat.send_text("  How can I cancel my order?  ")
            assert item is not None and item.text == "How can I cancel my order?"
            assert item.delivery is Delivery.SENDING
            await until(lambda: item.delivery is not Delivery.SENDING, what="echo")
            # the agent connection acks, and the relay tells the customer
            await until(lambda: item.delivery is Delivery.DELIVERED, what="delivered")
            assert _texts(got, created.session_id) == ["How can I cancel my order?"]

            agent.send(ChatSend(text="Happy to help!"), session=created.session_id)
            await until(lambda: len(chat.items) == 2, what="agent reply")
            reply = chat.items[1]
            assert (reply.text, reply.mine, reply.role) == ("Happy to help!", False, "agent")
            assert chat.items[0].mine and chat.items[0].seq is not None
            assert reply.seq == chat.items[0].seq + 1
        finally:
            await customer.aclose()
            await agent.aclose()
        assert customer.state is ConnectionState.OFFLINE


async def test_resume_after_the_socket_dies_loses_and_doubles_nothing(tmp_path: Path) -> None:
    async with running_host(tmp_path) as host:
        created = host.create_session()
        sid = created.session_id
        customer = HostConnection(InviteLink.parse(created.customer_link), backoff_base=0.05)
        agent = HostConnection(InviteLink.parse(created.agent_link), backoff_base=0.05)
        seen: list[tuple[Envelope, Payload]] = []
        customer.message_received.connect(lambda e, p: seen.append((e, p)))
        chat = ChatModel(customer)
        try:
            await _connected(customer)
            await _connected(agent)
            expected = [f"agent message {i}" for i in range(24)]
            for i, text in enumerate(expected):
                agent.send(ChatSend(text=text))
                if i in (5, 15):  # the customer's socket dies twice mid-stream
                    await until(lambda: _texts(seen, sid), what="first messages")
                    customer.drop_socket()
                    chat.send_text(f"typed while offline {i}")
                await asyncio.sleep(0.01)
            await until(lambda: len(_texts(seen, sid)) >= len(expected) + 2, what="all")
            # one more line, sent after everything: on the one ordered socket it arrives
            # after anything a replay could still double (an event, not a sleep)
            agent.send(ChatSend(text="the last line"))
            await until(lambda: "the last line" in _texts(seen, sid), what="the last line")
            texts = [t for t in _texts(seen, sid) if t != "the last line"]
            agent_texts = [t for t in texts if t.startswith("agent message")]
            assert agent_texts == expected
            assert sorted(t for t in texts if t.startswith("typed")) == [
                "typed while offline 15", "typed while offline 5",
            ]
            seqs = [e.seq for e, _ in seen if e.seq is not None]
            assert seqs == list(range(1, len(seqs) + 1)), "durable seqs in order, once each"
            assert customer.connects >= 3
            assert customer.pending_count() == 0
            assert all(i.delivery in (Delivery.SENT, Delivery.DELIVERED) for i in chat.items
                       if i.mine)
            # the host stored each offline message exactly once
            logged = [m["data"]["text"] for m in host.relay_log.messages(sid)
                      if m["type"] == "chat.message"]
            assert len(logged) == len(set(logged)) == len(expected) + 3  # + the last line
        finally:
            await customer.aclose()
            await agent.aclose()


async def test_reconnects_with_backoff_across_a_host_restart(tmp_path: Path) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    async with running_host(tmp_path, port=port) as host:
        created = host.create_session()
        link = InviteLink.parse(created.customer_link)
    # the host is gone: the client keeps trying, further apart each time
    conn = HostConnection(link, backoff_base=0.05, backoff_max=0.4)
    chat = ChatModel(conn)
    try:
        conn.open()
        await until(lambda: conn.attempts >= 4, what="retries")
        assert conn.state is ConnectionState.RECONNECTING
        waits = conn.retry_in()
        assert waits is not None and waits <= 0.4
        queued = chat.send_text("are you there?")
        assert queued is not None and conn.pending_count() == 1
        async with running_host(tmp_path, port=port) as host:
            await until(lambda: conn.state is ConnectionState.CONNECTED, what="reconnect")
            assert conn.attempts == 0
            await until(lambda: queued.delivery is Delivery.SENT, what="queued message sent")
            logged = [m["data"]["text"] for m in host.relay_log.messages(created.session_id)
                      if m["type"] == "chat.message"]
            assert logged == ["are you there?"]
    finally:
        await conn.aclose()


def test_backoff_grows_exponentially_with_jitter_and_a_cap() -> None:
    rng = random.Random(7)
    delays = [backoff_delay(n, 0.5, 30.0, rng) for n in range(12)]
    for n, d in enumerate(delays):
        ceiling = min(30.0, 0.5 * 2**n)
        assert ceiling / 2 <= d <= ceiling
    assert max(delays) <= 30.0 and delays[6] > delays[1]
    assert len({round(d, 6) for d in delays[8:]}) > 1, "jitter spreads clients apart"


async def test_a_wrong_token_fails_with_a_clear_message_and_no_retries(tmp_path: Path) -> None:
    async with running_host(tmp_path) as host:
        good = InviteLink.parse(host.lobby_link)
        bad = InviteLink(good.host, good.port, "customer", "nope1234.0123456789abcdefABCDEF")
        conn = HostConnection(bad, backoff_base=0.01)
        errors: list[tuple[str, str, object]] = []
        conn.error_received.connect(lambda c, m, r: errors.append((c, m, r)))
        conn.open()
        try:
            await until(lambda: conn.state is ConnectionState.FAILED, what="failed")
            assert "did not accept this invite link" in conn.state_message
            assert conn.last_close_code == 4001
            assert errors and errors[0][0] == "auth_failed"
            # no retry: the connection's one task has ended (nothing left to try again)
            main = conn._main
            assert main is not None
            await asyncio.wait_for(asyncio.shield(main), 5)
            assert conn.state is ConnectionState.FAILED and conn.connects == 0
        finally:
            await conn.aclose()


async def test_lobby_customer_returns_to_its_session_after_a_restart(tmp_path: Path) -> None:
    store = ResumeTokenStore(tmp_path / "config" / "resume-tokens.json")
    async with running_host(tmp_path) as host:
        lobby = InviteLink.parse(host.lobby_link)
        first = HostConnection(lobby, resume_store=store)
        chat = ChatModel(first)
        await _connected(first)
        session = first.session_id
        assert session and first.resume_token and store.get(lobby) == first.resume_token
        chat.send_text("my first message")
        await until(lambda: chat.items[0].delivery is not Delivery.SENDING, what="sent")
        await first.aclose()

        again = HostConnection(lobby, resume_store=store)  # a restarted customer window
        chat2 = ChatModel(again)
        await _connected(again)
        try:
            assert again.session_id == session
            await until(lambda: len(chat2.items) == 1, what="history replayed")
            assert chat2.items[0].mine and chat2.items[0].text == "my first message"
        finally:
            await again.aclose()
        # without the stored token the same link opens a fresh session
        other = HostConnection(lobby)
        await _connected(other)
        try:
            assert other.session_id != session
        finally:
            await other.aclose()


async def test_customers_skip_agent_only_seqs_and_agents_resync_on_a_real_gap(
    tmp_path: Path,
) -> None:
    from hitl_desktop.core.protocol import DraftStarted

    async with running_host(tmp_path) as host:
        created = host.create_session()
        sid = created.session_id
        customer = HostConnection(InviteLink.parse(created.customer_link))
        agent = HostConnection(InviteLink.parse(host.desk_link), backoff_base=0.05)
        c_seen: list[tuple[Envelope, Payload]] = []
        a_seen: list[tuple[Envelope, Payload]] = []
        customer.message_received.connect(lambda e, p: c_seen.append((e, p)))
        agent.message_received.connect(lambda e, p: a_seen.append((e, p)))
        try:
            await _connected(customer)
            await _connected(agent)
            agent.sync_session(sid)  # a desk follows the sessions it opened
            await until(lambda: any(e.session == sid and e.seq == 1 for e, _ in a_seen),
                        what="the session's history")
            await host.relay.publish(sid, DraftStarted(turn_id="t1", reason="customer_message",
                                                       provider="test"))
            agent.send(ChatSend(text="one"), session=sid)
            await until(lambda: _texts(c_seen, sid) == ["one"], what="customer got it")
            assert customer.resyncs == 0, "agent-only seqs are not a gap for customers"

            # a durable message logged but never delivered: the agent must notice
            row = host.relay.sessions[sid].row
            host.relay_log.append(row, ChatMessage(message_id="lost", author={"role": "agent",
                                  "name": "A"}, text="lost in transit"))
            agent.send(ChatSend(text="two"), session=sid)
            await until(lambda: _texts(a_seen, sid)[-1:] == ["two"], what="after resync")
            assert agent.resyncs >= 1
            assert _texts(a_seen, sid) == ["one", "lost in transit", "two"]
            seqs = [e.seq for e, _ in a_seen if e.seq is not None and e.session == sid]
            assert seqs == list(range(1, len(seqs) + 1))
        finally:
            await customer.aclose()
            await agent.aclose()


async def test_messages_in_flight_when_the_socket_dies_are_stored_exactly_once(
    tmp_path: Path,
) -> None:
    async with running_host(tmp_path) as host:
        created = host.create_session()
        customer = HostConnection(InviteLink.parse(created.customer_link), backoff_base=0.02)
        chat = ChatModel(customer)
        # kill the socket right after a message was written: the host may or may not
        # have stored it; either way it must end up stored once, and shown as sent
        first_writes: set[str] = set()

        def drop_after_first_write(msg_id: str) -> None:
            if msg_id not in first_writes:
                first_writes.add(msg_id)
                customer.drop_socket()

        customer.message_written.connect(drop_after_first_write)
        try:
            await _connected(customer)
            for i in range(4):
                chat.send_text(f"in flight {i}")
                await until(functools.partial(_connects_at_least, customer, i + 2),
                            what="reconnect")
            await until(lambda: all(it.delivery is Delivery.SENT for it in chat.items),
                        within=20, what="all confirmed")
            logged = [m["data"]["text"] for m in host.relay_log.messages(created.session_id)
                      if m["type"] == "chat.message"]
            assert sorted(logged) == [f"in flight {i}" for i in range(4)]
            assert [it.text for it in chat.items] == [f"in flight {i}" for i in range(4)]
            assert len(first_writes) == 4
        finally:
            await customer.aclose()


async def test_a_burst_is_paced_under_the_hosts_rate_limit_nothing_dropped(
    tmp_path: Path,
) -> None:
    from hitl_desktop.host.relay import RelayConfig

    async with running_host(tmp_path, config=RelayConfig(rate=10.0, burst=10.0)) as host:
        created = host.create_session()
        customer = HostConnection(InviteLink.parse(created.customer_link))
        chat = ChatModel(customer)
        errors: list[str] = []
        customer.error_received.connect(lambda code, _m, _r: errors.append(code))
        try:
            await _connected(customer)
            texts = [f"pasted line {i}" for i in range(20)]
            for text in texts:  # faster than the host accepts frames
                chat.send_text(text)
            await until(lambda: all(i.delivery is not Delivery.SENDING for i in chat.items),
                        within=20, what="all stored")
            assert errors == [], "paced below the limit: the host dropped nothing"
            logged = [m["data"]["text"] for m in host.relay_log.messages(created.session_id)
                      if m["type"] == "chat.message"]
            assert logged == texts
        finally:
            await customer.aclose()


async def test_requests_leave_the_outbox_once_answered_or_written(tmp_path: Path) -> None:
    from hitl_desktop.core.protocol import SessionList, SessionListRequest, SessionSync

    async with running_host(tmp_path) as host:
        created = host.create_session()
        agent = HostConnection(InviteLink.parse(host.desk_link))
        replies: list[tuple[Envelope, Payload]] = []
        agent.message_received.connect(lambda e, p: replies.append((e, p)))
        try:
            await _connected(agent)
            asked = agent.send(SessionListRequest())
            await until(lambda: any(e.ref == asked and isinstance(p, SessionList)
                                    for e, p in replies), what="session list")
            await until(lambda: agent.pending_count() == 0, what="answered, confirmed")
            # no answer names a session.sync: it is done once written, never resent
            agent.send(SessionSync(after_seq=0), session=created.session_id)
            await until(lambda: agent.pending_count() == 0, what="written, done")
        finally:
            await agent.aclose()


async def test_an_announced_session_gap_is_accepted_and_reported(tmp_path: Path) -> None:
    """After a lost log tail the host skips seqs and says so (session.gap): an agent's
    connection must not take it for a lost frame (no resync loop), and must report that
    it held seqs the host no longer has."""
    from hitl_desktop.core.protocol import SessionGap

    async with running_host(tmp_path) as host:
        created = host.create_session(customer_id="CUST1001")
        sid = created.session_id
        agent = HostConnection(InviteLink.parse(created.agent_link))
        got: list[tuple[Envelope, Payload]] = []
        agent.message_received.connect(lambda e, p: got.append((e, p)))
        resets: list[tuple[str, int]] = []
        agent.history_reset.connect(lambda s, first: resets.append((s, first)))
        try:
            await _connected(agent)
            for text in ("one", "two"):
                await host.relay.publish(sid, ChatMessage(
                    message_id=f"m-{text}", author={"role": "customer", "name": "C"},
                    text=text))
            await until(lambda: agent.last_seq(sid) == 3, what="seq 3")
            # the host lost seq 3 and reserved up to 20: it continues at 21
            st = host.relay.sessions[sid]
            st.row.last_seq = 20
            await host.relay.publish(sid, SessionGap(first_seq=3, last_seq=20, reason="test"))
            await host.relay.publish(sid, ChatMessage(
                message_id="m-three", author={"role": "customer", "name": "C"}, text="three"))
            await until(lambda: agent.last_seq(sid) == 22, what="seq 22")
            assert resets == [(sid, 3)]
            assert agent.connects == 1  # no resync (reconnect) for an announced gap
            assert _texts(got, sid) == ["one", "two", "three"]
        finally:
            await agent.aclose()


async def test_an_untrusted_host_certificate_fails_once_and_says_how_to_trust_it(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A host on its own (self-signed) certificate: the window once said only
    "Connection lost. Reconnecting…" forever (seen by audit9 under Xvfb); retrying never
    helps, so it fails with what to do; with HITL_CA_FILE naming the certificate it
    connects."""
    from tests.integration.test_relay import make_self_signed

    cert, key = make_self_signed(tmp_path)
    async with running_host(tmp_path, tls_cert=str(cert), tls_key=str(key)) as host:
        link = InviteLink.parse(host.lobby_link)
        assert link.tls
        monkeypatch.delenv("HITL_CA_FILE", raising=False)
        conn = HostConnection(link, backoff_base=0.01)
        conn.open()
        try:
            await until(lambda: conn.state is ConnectionState.FAILED, what="failed")
            assert "certificate" in conn.state_message
            assert "HITL_CA_FILE" in conn.state_message
            main = conn._main
            assert main is not None
            await asyncio.wait_for(asyncio.shield(main), 5)  # no retry loop left
            assert conn.attempts == 0
        finally:
            await conn.aclose()
        monkeypatch.setenv("HITL_CA_FILE", str(cert))
        trusted = HostConnection(link)
        try:
            await _connected(trusted)
            assert trusted.state is ConnectionState.CONNECTED
        finally:
            await trusted.aclose()


@pytest.mark.qt_log_ignore("This plugin does not support")  # offscreen dock size hints
async def test_the_agent_window_shows_why_it_cannot_connect(
        tmp_path: Path, qtbot: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """It said only "✕ Cannot connect" (an untrusted certificate sends no error frame,
    so nothing else ever appeared): the reason and the fix stay in the status bar."""
    from hitl_desktop.client.workspace import Workspace
    from hitl_desktop.ui.agent.window import AgentWindow
    from tests.integration.test_relay import make_self_signed

    monkeypatch.delenv("HITL_CA_FILE", raising=False)
    cert, key = make_self_signed(tmp_path)
    async with running_host(tmp_path, tls_cert=str(cert), tls_key=str(key)) as host:
        conn = HostConnection(InviteLink.parse(host.desk_link))
        ws = Workspace()
        ws.attach(conn)
        window = AgentWindow(ws, config_dir=tmp_path / "cfg")
        qtbot.addWidget(window)
        window.show()
        conn.open()
        try:
            await until(lambda: conn.state is ConnectionState.FAILED, what="failed")
            assert window.connection_label.text() == "✕ Cannot connect"
            assert "HITL_CA_FILE" in window.statusBar().currentMessage()
            assert "certificate" in window.connection_label.toolTip()
            assert window.other_link_button.isVisible()
        finally:
            window.close()
            await conn.aclose()
