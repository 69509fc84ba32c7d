"""The customer window, offscreen, against a real relay: keys, bubbles, typing, banner."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from PySide6.QtCore import QPoint, Qt
from PySide6.QtTest import QTest

from hitl_desktop.app.services import RunningHost
from hitl_desktop.client.chat import ChatModel, Delivery
from hitl_desktop.client.connection import ConnectionState, HostConnection
from hitl_desktop.core.links import InviteLink
from hitl_desktop.core.protocol import (
    ChatMessage,
    ChatSend,
    Envelope,
    Payload,
    Typing,
    TypingState,
)
from hitl_desktop.ui.customer_window import CustomerWindow
from tests.ui.conftest import running_host, until

REPO = Path(__file__).resolve().parents[2]


@dataclass
class Desk:
    host: RunningHost
    session: str
    window: CustomerWindow
    customer: HostConnection
    agent: HostConnection
    agent_seen: list[tuple[Envelope, Payload]]


@pytest.fixture
async def desk(tmp_path: Path) -> AsyncIterator[Desk]:
    async with running_host(tmp_path) as host:
        created = host.create_session(customer_id="CUST1001")
        customer = HostConnection(InviteLink.parse(created.customer_link), backoff_base=0.6)
        agent = HostConnection(InviteLink.parse(created.agent_link))
        seen: list[tuple[Envelope, Payload]] = []
        agent.message_received.connect(lambda e, p: seen.append((e, p)))
        window = CustomerWindow(ChatModel(customer), customer)
        window.show()
        customer.open()
        agent.open()
        async with asyncio.timeout(10):
            await customer.wait_connected()
            await agent.wait_connected()
        try:
            yield Desk(host, created.session_id, window, customer, agent, seen)
        finally:
            window.close()
            await customer.aclose()
            await agent.aclose()
            window.deleteLater()


def _agent_texts(d: Desk) -> list[str]:
    return [p.text for _, p in d.agent_seen if isinstance(p, ChatMessage)]


async def test_greeting_is_the_first_bubble(desk: Desk) -> None:
    w = desk.window
    await until(lambda: w.greeting_bubble is not None, what="greeting")
    assert w.greeting_bubble is not None
    assert w.greeting_bubble.text_label.text() == "Hi! How can we help you today?"
    assert w.status_label.text().startswith("● Online")
    assert not w.banner.isVisible()


async def test_enter_sends_and_shift_enter_makes_a_new_line(desk: Desk) -> None:
    w = desk.window
    QTest.keyClicks(w.composer, "Hello")
    QTest.keyClick(w.composer, Qt.Key.Key_Return, Qt.KeyboardModifier.ShiftModifier)
    QTest.keyClicks(w.composer, "I need help")
    assert w.composer.toPlainText() == "Hello\nI need help"
    assert w.bubbles == [] and w.send_button.isEnabled()

    QTest.keyClick(w.composer, Qt.Key.Key_Return)
    assert w.composer.toPlainText() == ""
    assert not w.send_button.isEnabled()
    assert [b.text_label.text() for b in w.bubbles] == ["Hello\nI need help"]
    bubble = w.bubbles[0]
    assert bubble.mine and "Sending" in bubble.meta_label.text()
    await until(lambda: _agent_texts(desk) == ["Hello\nI need help"], what="agent got it")
    await until(lambda: "Delivered" in bubble.meta_label.text(), what="delivered tick")
    assert bubble.item.delivery is Delivery.DELIVERED

    # blank input sends nothing; the Send button sends too
    QTest.keyClicks(w.composer, "   ")
    QTest.keyClick(w.composer, Qt.Key.Key_Enter)
    assert len(w.bubbles) == 1
    QTest.keyClicks(w.composer, "second")
    QTest.mouseClick(w.send_button, Qt.MouseButton.LeftButton)
    assert [b.text_label.text() for b in w.bubbles][-1] == "second"
    await until(lambda: _agent_texts(desk)[-1:] == ["second"], what="second message")


async def test_agent_messages_and_typing_indicator(desk: Desk) -> None:
    w = desk.window
    desk.agent.send(Typing(active=True))
    await until(w.typing.isVisible, what="typing indicator")
    assert w.typing.text().startswith("Representative is typing")
    desk.agent.send(ChatSend(text="Hi Alex, happy to help."))
    await until(lambda: len(w.bubbles) == 1, what="agent bubble")
    bubble = w.bubbles[0]
    assert not bubble.mine and bubble.name_label.text() == "Agent"
    assert bubble.text_label.text() == "Hi Alex, happy to help."
    assert not w.typing.isVisible(), "a message from the agent ends its typing indicator"

    # the customer's keystrokes reach the agent as typing state
    QTest.keyClicks(w.composer, "tha")
    await until(
        lambda: any(isinstance(p, TypingState) and p.active for _, p in desk.agent_seen),
        what="customer typing",
    )


async def test_banner_on_disconnect_and_recovery_with_nothing_lost(desk: Desk) -> None:
    w = desk.window
    desk.customer.drop_socket()
    await until(lambda: w.banner.isVisible() and w.banner.kind == "warn", what="banner")
    assert "Connection lost" in w.banner.label.text()
    assert w.status_label.text() == "Reconnecting…"
    # typed while offline: shown at once as sending, sent after the reconnect
    assert desk.customer.state is ConnectionState.RECONNECTING
    QTest.keyClicks(w.composer, "still there?")
    QTest.keyClick(w.composer, Qt.Key.Key_Return)
    assert "Sending" in w.bubbles[0].meta_label.text()
    w._refresh_banner()
    assert "1 message will be sent then" in w.banner.label.text()
    await until(lambda: desk.customer.state is ConnectionState.CONNECTED, what="reconnected")
    await until(lambda: w.banner.kind == "ok", what="recovered banner")
    assert w.banner.label.text() == "Connected again."
    await until(lambda: not w.banner.isVisible(), within=5, what="banner hides")
    await until(lambda: _agent_texts(desk) == ["still there?"], what="offline message")
    await until(lambda: w.bubbles[0].item.delivery is Delivery.DELIVERED, what="delivered")


async def test_a_bad_link_shows_a_clear_error_banner(tmp_path: Path) -> None:
    async with running_host(tmp_path) as host:
        good = InviteLink.parse(host.lobby_link)
        bad = InviteLink(good.host, good.port, "customer", "nope1234.0123456789abcdefABCDEF")
        conn = HostConnection(bad)
        window = CustomerWindow(ChatModel(conn), conn)
        window.show()
        conn.open()
        try:
            await until(lambda: conn.state is ConnectionState.FAILED, what="failed")
            assert window.banner.isVisible() and window.banner.kind == "error"
            assert "did not accept this invite link" in window.banner.label.text()
            assert window.retry_visible()
        finally:
            window.close()
            await conn.aclose()
            window.deleteLater()


def _cli(*args: str, **kw: Any) -> subprocess.Popen[str]:
    env = dict(os.environ, QT_QPA_PLATFORM="offscreen", PYTHONPATH=str(REPO))
    return subprocess.Popen([sys.executable, "-m", "hitl_desktop", "-v", *args], env=env,
                            text=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE, **kw)


def test_customer_cli_rejects_a_bad_link_clearly(tmp_path: Path) -> None:
    proc = _cli("customer", "http://example.com/not-a-link")
    _out, err = proc.communicate(timeout=60)
    assert proc.returncode == 2
    assert "cannot use this link" in err and "hitl://" in err


def test_customer_cli_joins_a_host_and_keeps_its_lobby_session(tmp_path: Path) -> None:
    host = _cli("host", "--headless", "--port", "0", "--no-discovery",
                "--data-dir", str(tmp_path / "host"))
    customer: subprocess.Popen[str] | None = None
    try:
        assert host.stdout is not None and host.stderr is not None
        info = json.loads(host.stdout.readline())
        customer = _cli("customer", info["customer_link"])
        deadline = time.monotonic() + 60
        connected = False
        while time.monotonic() < deadline and not connected:
            line = host.stderr.readline()
            connected = "customer session connected" in line
        assert connected, "the customer window connected to the host"
        tokens = Path(os.environ["HITL_CONFIG_DIR"]) / "resume-tokens.json"
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and not tokens.exists():
            time.sleep(0.05)
        assert tokens.exists(), "a lobby customer keeps its personal token to come back"
        stored = json.loads(tokens.read_text("utf-8"))
        assert len(stored) == 1 and all("." in v for v in stored.values())
    finally:
        for proc in (customer, host):
            if proc is not None:
                proc.terminate()
                proc.communicate(timeout=30)


async def test_follows_new_messages_only_while_at_the_bottom(desk: Desk) -> None:
    w = desk.window
    bar = w.scroll_area.verticalScrollBar()
    for i in range(12):
        desk.agent.send(ChatSend(text=f"line {i}: " + "a fairly long answer " * 4))
    await until(lambda: len(w.bubbles) == 12, what="12 bubbles")
    await until(lambda: bar.maximum() > 0 and bar.value() == bar.maximum(), what="at bottom")
    bar.setValue(0)  # the customer scrolls up to re-read
    desk.agent.send(ChatSend(text="one more"))
    await until(lambda: len(w.bubbles) == 13, what="13th bubble")
    await asyncio.sleep(0.05)
    assert bar.value() == 0, "reading position kept"
    bar.setValue(bar.maximum())
    desk.agent.send(ChatSend(text="and another"))
    await until(lambda: len(w.bubbles) == 14, what="14th bubble")
    await until(lambda: bar.value() == bar.maximum(), what="follows again at the bottom")


async def test_a_closed_conversation_says_so_and_stops_input(desk: Desk) -> None:
    from hitl_desktop.core.protocol import SessionClose

    w = desk.window
    desk.agent.send(SessionClose())
    await until(w.closed_label.isVisible, what="closed notice")
    assert w.closed_label.text().startswith("This conversation has ended.")
    assert not w.composer.isEnabled() and not w.send_button.isEnabled()
    await asyncio.sleep(0.3)
    assert desk.customer.state is ConnectionState.CONNECTED and not w.banner.isVisible()


def test_theme_follows_the_palette_and_formats_times(qapp: Any) -> None:
    from PySide6.QtGui import QColor, QPalette

    from hitl_desktop.ui import theme

    dark = QPalette()
    dark.setColor(QPalette.ColorRole.Window, QColor("#202124"))
    light = QPalette()
    light.setColor(QPalette.ColorRole.Window, QColor("#f5f5f5"))
    assert theme.is_dark(dark) and not theme.is_dark(light)
    assert theme.colors(dark).dark and not theme.colors(light).dark
    assert theme.colors(dark).text != theme.colors(light).text
    now = time.mktime((2026, 3, 12, 15, 0, 0, 0, 0, -1))
    assert theme.format_time(now - 3600, now) == "14:00"
    assert theme.format_time(now - 2 * 86400, now).endswith("15:00")
    assert theme.format_time(now - 40 * 86400, now).endswith("15:00")
    assert " " in theme.format_time(now - 40 * 86400, now)
    assert theme.initials("Northwind Goods") == "NG"
    assert theme.initials("alex") == "AL" and theme.initials("") == "?"


def test_hitl_theme_forces_a_scheme(qapp: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    from hitl_desktop.ui import theme

    before = qapp.palette()
    try:
        monkeypatch.setenv("HITL_THEME", "dark")
        theme.apply_app_style(qapp)
        assert theme.is_dark() and theme.colors().dark
        monkeypatch.setenv("HITL_THEME", "light")
        theme.apply_app_style(qapp)
        assert not theme.is_dark()
    finally:
        qapp.setPalette(before)


async def test_an_untrusted_certificate_says_what_to_do_across_the_windows_width(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A host on a self-signed certificate: the banner names the fix (HITL_CA_FILE), and
    with both its buttons the sentence gets the window's width above them (beside them
    it had ~130 px of a 440 px window: a word a line, the end cut off)."""
    from tests.integration.test_relay import make_self_signed

    monkeypatch.delenv("HITL_CA_FILE", raising=False)
    cert, key = make_self_signed(tmp_path)
    async with running_host(tmp_path, tls_cert=str(cert), tls_key=str(key)) as host:
        conn = HostConnection(InviteLink.parse(host.lobby_link))
        window = CustomerWindow(ChatModel(conn), conn)
        window.resize(440, 700)
        window.show()
        conn.open()
        try:
            await until(lambda: conn.state is ConnectionState.FAILED, what="failed")
            await asyncio.sleep(0.05)
            banner = window.banner
            assert banner.isVisible() and banner.kind == "error"
            assert "HITL_CA_FILE" in banner.label.text()
            assert banner.label.width() >= banner.width() - 60  # was ~140 of 440
            assert banner.label.height() >= banner.label.heightForWidth(banner.label.width())
            assert banner.retry_button.y() > banner.label.y() + banner.label.height() - 1
        finally:
            window.close()
            await conn.aclose()
            window.deleteLater()


async def test_a_host_never_reached_is_not_called_a_lost_connection(qtbot: object) -> None:
    """The first start against a host that is not up said "Connection lost.
    Reconnecting…" (audit9, Xvfb): nothing was lost; it says it cannot reach the desk."""
    import socket

    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    conn = HostConnection(InviteLink("127.0.0.1", port, "customer",
                                     "abcd1234.0123456789abcdefABCDEF"), backoff_base=2.0)
    window = CustomerWindow(ChatModel(conn), conn)
    window.show()
    conn.open()
    try:
        await until(lambda: conn.state is ConnectionState.RECONNECTING and conn.retry_in(),
                    what="retrying")
        window._refresh_banner()
        text = window.banner.label.text()
        assert "Cannot reach the support desk" in text and "Trying again in" in text
        assert "lost" not in text
    finally:
        window.close()
        await conn.aclose()
        window.deleteLater()


async def test_the_demos_customer_window_shows_its_status_whole(desk: Desk) -> None:
    """./scripts/demo puts a 400-430 px customer window beside the agent's. Beside
    "Signed in as Alex Morgan" the header said "● Online · a representative wi…" (even
    at 1920x1080); the sentence wraps now."""
    w = desk.window
    w.resize(400, 740)
    await until(lambda: w.status_label.full_text().startswith("● Online")
                and w.account.label.isVisible(), what="online and signed in")
    await asyncio.sleep(0.1)  # layout and the label's wrap
    label = w.status_label
    assert label.text() == label.full_text() == "● Online · a representative will answer you here"
    assert label.height() >= label.heightForWidth(label.width())
    assert label.width() + label.mapTo(w, QPoint(0, 0)).x() <= w.account.mapTo(w, QPoint(0, 0)).x()
    badge = w.account.label
    assert badge.width() >= badge.sizeHint().width()
