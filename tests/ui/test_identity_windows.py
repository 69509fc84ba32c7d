"""Identity in the windows, offscreen against a real host: the customer window's
"Sign in to your order" / "Signed in as …", and the agent's Customer panel and inbox."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path
from typing import Any

import pytest
from PySide6.QtCore import Qt
from PySide6.QtTest import QTest
from PySide6.QtWidgets import QWidget

from hitl_desktop.client.chat import ChatModel
from hitl_desktop.client.connection import HostConnection
from hitl_desktop.client.workspace import Workspace
from hitl_desktop.core.links import InviteLink
from hitl_desktop.ui.agent.window import AgentWindow
from hitl_desktop.ui.customer_window import CustomerWindow
from tests.ui.conftest import running_host, until

pytestmark = pytest.mark.qt_log_ignore("This plugin does not support")
#: set to a directory (e.g. docs/screenshots) to keep the windows' pictures
SHOTS = os.environ.get("HITL_SHOTS")


def shot(widget: QWidget, name: str) -> None:
    """Keep a picture of the window when asked (docs/screenshots is made this way)."""
    if SHOTS:
        widget.grab().save(str(Path(SHOTS) / name))


async def test_customer_window_signs_in_through_the_host(tmp_path: Path) -> None:
    async with running_host(tmp_path) as host:
        visitor = HostConnection(InviteLink.parse(host.lobby_link))
        window = CustomerWindow(ChatModel(visitor), visitor)
        window.show()
        visitor.open()
        try:
            async with asyncio.timeout(10):
                await visitor.wait_connected()
            account, panel = window.account, window.sign_in_panel
            await until(account.button.isVisible, what="sign-in offer")
            assert account.button.text() == "Sign in to your order"
            assert not account.label.isVisible() and not panel.isVisible()
            QTest.mouseClick(account.button, Qt.MouseButton.LeftButton)
            assert panel.isVisible()
            # a wrong pair: one neutral line, the form stays
            QTest.keyClicks(panel.email, "priya.shah@example.com")
            QTest.keyClicks(panel.order, "ORD1001")  # Alex's order, not Priya's
            QTest.mouseClick(panel.submit_button, Qt.MouseButton.LeftButton)
            await until(panel.error.isVisible, what="sign-in refusal")
            assert "couldn't verify" in panel.error.text()
            shot(window, "customer-sign-in-refused.png")
            assert "Priya" not in panel.error.text()
            assert panel.isVisible() and panel.submit_button.isEnabled()
            # the right pair signs in; the header says as whom
            panel.order.clear()
            QTest.keyClicks(panel.order, "ord1009")
            QTest.keyClick(panel.order, Qt.Key.Key_Return)
            shot(window, "customer-sign-in-form.png")
            await until(account.label.isVisible, what="signed in")
            assert account.label.text() == "Signed in as Priya Shah"
            shot(window, "customer-signed-in.png")
            assert not account.button.isVisible() and not panel.isVisible()
            sid = window.chat._session
            assert sid is not None
            assert host.relay.session_identity(sid).method == "sign_in"
        finally:
            window.close()
            await visitor.aclose()
            window.deleteLater()


async def test_customer_window_of_an_issued_link_is_signed_in(tmp_path: Path) -> None:
    async with running_host(tmp_path) as host:
        created = host.create_session(customer_id="CUST1001")
        customer = HostConnection(InviteLink.parse(created.customer_link))
        window = CustomerWindow(ChatModel(customer), customer)
        window.show()
        customer.open()
        try:
            await until(window.account.label.isVisible, what="signed in")
            assert window.account.label.text() == "Signed in as Alex Morgan"
            assert not window.account.button.isVisible()
        finally:
            window.close()
            await customer.aclose()
            window.deleteLater()


async def test_agent_customer_panel_finds_links_and_unlinks(tmp_path: Path, qtbot: Any) -> None:
    """Unverified visitor -> Find customer… -> Link (identity checked) -> Unlink, as the
    representative sees it, each step decided by the host and shown from its answers."""
    async with running_host(tmp_path / "host", copilot=True) as host:
        conn = HostConnection(InviteLink.parse(host.desk_link), client_name="test agent")
        ws = Workspace()
        ws.attach(conn)
        window = AgentWindow(ws, config_dir=tmp_path / "config")
        qtbot.addWidget(window)
        window.resize(1280, 800)
        window.show()
        visitor = HostConnection(InviteLink.parse(host.lobby_link))
        conn.open()
        visitor.open()
        try:
            async with asyncio.timeout(10):
                await conn.wait_connected()
                await visitor.wait_connected()
            sid = visitor.session_id
            assert sid is not None
            await until(lambda: ws.session(sid) is not None, what="visitor's session")
            ws.select_session(sid)
            view = ws.session(sid)
            assert view is not None
            await until(lambda: view.summary.customer_online, what="presence")
            bar = window.customer.identity_bar
            assert view.display_name == f"Visitor #{view.summary.number}"
            assert view.summary.number > 0
            assert "Unverified visitor" in bar.badge.text()
            assert bar.find_button.isVisible() and not bar.unlink_button.isVisible()
            assert not window.customer.orders.isVisible()
            shot(window, "customer-panel-unverified.png")

            QTest.mouseClick(bar.find_button, Qt.MouseButton.LeftButton)
            QTest.keyClicks(bar.query, "ORD1009")  # an order number the visitor gave
            QTest.keyClick(bar.query, Qt.Key.Key_Return)
            await until(lambda: bar.chosen_customer() == "CUST1002", what="search result")
            assert "Priya Shah" in bar.results.item(0).text()
            shot(window, "customer-panel-find.png")
            QTest.mouseClick(bar.link_button, Qt.MouseButton.LeftButton)
            await until(lambda: view.verified, what="linked")
            assert view.identity.method == "representative"
            assert view.identity.by == "Agent"  # the desk link's name (audited)
            assert "Verified by Agent" in bar.badge.text()
            assert bar.unlink_button.isVisible() and not bar.find_button.isVisible()
            await until(lambda: "priya.shah@example.com" in window.customer.profile.text(),
                        what="profile of the verified customer")
            await until(lambda: window.customer.orders.rowCount() == 2, what="her orders")
            assert view.display_name == "Priya Shah"
            assert any("verified the customer as Priya Shah" in getattr(i, "text", "")
                       for i in view.transcript)
            shot(window, "customer-panel-verified.png")

            QTest.mouseClick(bar.unlink_button, Qt.MouseButton.LeftButton)
            QTest.keyClicks(bar.unlink_reason, "wrong person")
            QTest.mouseClick(bar.confirm_unlink, Qt.MouseButton.LeftButton)
            await until(lambda: view.identity.state == "anonymous", what="unlinked")
            assert "Unverified visitor" in bar.badge.text()
            assert not window.customer.orders.isVisible()
            assert any("unlinked the customer: wrong person" in getattr(i, "text", "")
                       for i in view.transcript)
            # presence is real: the customer window closing turns the dot off
            await visitor.aclose()
            await until(lambda: not view.summary.customer_online, what="customer gone")
        finally:
            await visitor.aclose()
            await conn.aclose()
