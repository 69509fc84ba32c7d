"""The host window: a real host on port 0, the real window offscreen, real clients."""

from __future__ import annotations

import argparse
import asyncio
import gc
import logging
import os
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager

import pytest
from PySide6.QtWidgets import QApplication, QDialogButtonBox

from hitl_desktop.app.host_window import HostWindowApp
from hitl_desktop.client.connection import ConnectionState, HostConnection
from hitl_desktop.config import Settings, resolve_paths
from hitl_desktop.core.links import InviteLink
from hitl_desktop.core.protocol import Role, Scope, SessionCreated, SessionSummary
from hitl_desktop.ui.host_window import HostInfo, SessionLinksDialog, SessionTableModel
from tests.ui.conftest import until

# the offscreen platform cannot resize native windows; dialogs ask when they open
pytestmark = pytest.mark.qt_log_ignore("does not support propagateSizeHints")


@pytest.fixture(autouse=True)
def keep_app_running(qapp: QApplication) -> Iterator[None]:
    qapp.setQuitOnLastWindowClosed(False)
    yield
    # collect Qt objects caught in reference cycles here, on the GUI thread: left to a
    # later collection they may be destroyed on a worker thread (Qt warns, or crashes)
    gc.collect()


def _args(**kw: object) -> argparse.Namespace:
    base: dict[str, object] = dict(bind="127.0.0.1", port=0, public_host=None, tls_cert=None,
                                   tls_key=None, no_discovery=False, provider="offline",
                                   model=None)
    base.update(kw)
    return argparse.Namespace(**base)


@asynccontextmanager
async def host_window_app() -> AsyncIterator[HostWindowApp]:
    """Started inside the test (async fixtures would run on another loop)."""
    paths = resolve_paths().ensure()
    app = HostWindowApp(paths, Settings(provider="offline"), _args())
    await app.start()
    try:
        yield app
    finally:
        await app.aclose()


async def _welcome(link: str) -> tuple[HostConnection, object]:
    conn = HostConnection(InviteLink.parse(link), client_name="test")
    conn.open()
    welcome = await asyncio.wait_for(conn.wait_connected(), 10)
    return conn, welcome


async def test_new_session_from_the_window_and_its_links_open_clients(qtbot: object) -> None:
    async with host_window_app() as host_app:
        await _session_flow(host_app)


async def _session_flow(host_app: HostWindowApp) -> None:
    window = host_app.window
    assert window is not None and host_app.admin is not None
    await until(lambda: host_app.admin is not None
                and host_app.admin.state is ConnectionState.CONNECTED, what="admin connected")
    assert "Only this PC" in window.reach_label.text()
    assert "off" in window.discovery_label.text()
    assert "Offline assistant" in window.engine_label.text()
    assert window.desk_row.qr.pixmap() is not None and not window.desk_row.qr.pixmap().isNull()

    shown: list[SessionCreated] = []
    window.session_links_shown.connect(shown.append)
    dialog = window.open_new_session_dialog()
    # the picker lists the shop's customers (the host's answer), then "No customer"
    await until(lambda: dialog.customer.count() == 6, what="the shop's customers")
    assert dialog.customer.itemText(5).startswith("No customer")
    dialog.customer.setCurrentIndex(dialog.customer.findData("CUST1001"))
    assert dialog.customer_id() == "CUST1001"
    if os.environ.get("HITL_SHOTS"):  # docs/screenshots/host-new-session.png
        dialog.grab().save(os.path.join(os.environ["HITL_SHOTS"], "host-new-session.png"))
    dialog.title.setText("Order question")
    box = dialog.findChild(QDialogButtonBox)
    assert box is not None
    ok = box.button(QDialogButtonBox.StandardButton.Ok)
    ok.click()
    await until(lambda: shown, what="session.created")
    created = shown[0]
    links = [w for w in QApplication.topLevelWidgets()
             if isinstance(w, SessionLinksDialog) and w.isVisible()]
    assert links and links[0].customer.field.text() == created.customer_link
    assert not links[0].agent.qr.pixmap().isNull()

    await until(lambda: window.sessions.find(created.session_id) is not None, what="row")
    row = window.sessions.rows.index(window.sessions.find(created.session_id))  # type: ignore[arg-type]
    assert window.sessions.cell(window.sessions.rows[row], 0) == "Alex Morgan (CUST1001)"
    assert window.sessions.cell(window.sessions.rows[row], 1) == "Order question"
    assert window.sessions.cell(window.sessions.rows[row], 2) == "open"

    # the customer link and the agent link open working clients of that session
    customer, cw = await _welcome(created.customer_link)
    agent, aw = await _welcome(created.agent_link)
    try:
        assert cw.role is Role.CUSTOMER and cw.session_id == created.session_id  # type: ignore[attr-defined]
        assert aw.role is Role.AGENT and aw.scope is Scope.SESSION  # type: ignore[attr-defined]
        assert aw.session_id == created.session_id  # type: ignore[attr-defined]
        await until(lambda: (s := window.sessions.find(created.session_id)) is not None
                    and s.clients == 2, what="clients column")
    finally:
        await customer.aclose()
        await agent.aclose()

    # the standing desk and lobby links work as well
    desk, dw = await _welcome(window.info.desk_link)
    lobby, lw = await _welcome(window.info.lobby_link)
    try:
        assert dw.scope is Scope.DESK  # type: ignore[attr-defined]
        assert lw.role is Role.CUSTOMER and lw.session_id  # type: ignore[attr-defined]
        await until(lambda: window.sessions.find(lw.session_id) is not None,  # type: ignore[attr-defined]
                    what="lobby session listed")
        visitor = window.sessions.find(lw.session_id)  # type: ignore[attr-defined]
        assert visitor is not None and visitor.customer_id is None  # nobody until verified
        assert window.sessions.cell(visitor, 0) == f"Visitor #{visitor.number} (not verified)"
    finally:
        await desk.aclose()
        await lobby.aclose()

    # closing a session from the window
    table = window.table
    idx = window.sessions.rows.index(window.sessions.find(created.session_id))  # type: ignore[arg-type]
    table.selectRow(idx)
    assert window.close_button.isEnabled()
    window.close_button.click()
    await until(lambda: (s := window.sessions.find(created.session_id)) is not None
                and s.state == "closed", what="session closed")

    logging.getLogger("hitl_desktop.test").info("a line for the log view")
    await until(lambda: any("a line for the log view" in ln for ln in window.log_view.lines()),
                what="log line")
    assert any(created.session_id in ln for ln in window.log_view.lines())
    for d in links:
        d.close()


async def test_window_close_stops_the_host(qtbot: object) -> None:
    paths = resolve_paths().ensure()
    app = HostWindowApp(paths, Settings(provider="offline"), _args())
    window = await app.start()
    assert app.host is not None
    port = app.host.port
    window.close()
    await asyncio.wait_for(app.closed.wait(), 5)
    await app.aclose()
    with pytest.raises(OSError):
        _r, w = await asyncio.open_connection("127.0.0.1", port)
        w.close()


def _summary(sid: str, **kw: object) -> SessionSummary:
    base: dict[str, object] = dict(session_id=sid, title="t", customer_id="CUST1001",
                                   customer_name="Alex Morgan", state="open", created_at=1.0,
                                   last_seq=1)
    base.update(kw)
    return SessionSummary.model_validate(base)


def test_reach_text_and_in_place_updates(qtbot: object) -> None:
    info = HostInfo(ws_url="ws://127.0.0.1:1/ws", bind="127.0.0.1", port=1,
                    public_host="127.0.0.1", tls=False, desk_link="", lobby_link="",
                    data_dir="/x")
    assert "Only this PC" in info.reach_text() and "--bind 0.0.0.0" in info.reach_text()
    info = HostInfo(ws_url="wss://192.0.2.5:9/ws", bind="0.0.0.0", port=9,
                    public_host="192.0.2.5", tls=True, desk_link="", lobby_link="",
                    data_dir="/x", lan_addresses=["192.0.2.5", "10.0.0.7"])
    assert "hitls://192.0.2.5:9" in info.reach_text() and "hitls://10.0.0.7:9" in info.reach_text()

    model = SessionTableModel()
    model.reset_all([_summary("a", last_message_at=5.0), _summary("b", last_message_at=9.0)])
    assert [r.session_id for r in model.rows] == ["b", "a"]
    resets: list[int] = []
    model.modelReset.connect(lambda: resets.append(1))
    model.upsert(_summary("a", last_seq=7, messages=4, pending_approvals=2, clients=3,
                          last_message="Help me cancel\norder ORD1001", last_message_at=10.0))
    assert not resets  # updated in place: a selection survives
    row = model.rows[1]
    assert model.cell(row, 4) == "4" and model.cell(row, 5) == "2" and model.cell(row, 6) == "3"
    assert "Help me cancel order ORD1001" in model.cell(row, 3)
    model.upsert(_summary("c", customer_id=None, customer_name=None))
    assert model.rows[0].session_id == "c" and model.cell(model.rows[0], 0) == "—"
    model.mark_closed("b")
    assert model.find("b") is not None and model.find("b").state == "closed"  # type: ignore[union-attr]
    # a session.list page (issue 18) joins the rows; an older summary of a known session
    # (its last_seq behind what the table has) does not win
    model.merge([_summary("d", last_message_at=11.0), _summary("a", last_seq=2)])
    assert [r.session_id for r in model.rows][:2] == ["d", "a"]
    assert model.find("a").last_seq == 7  # type: ignore[union-attr]
    assert len(model.rows) == 4


async def test_port_in_use_is_an_error_and_cleans_up(qtbot: object) -> None:
    blocker = await asyncio.start_server(lambda r, w: None, "127.0.0.1", 0)
    port = blocker.sockets[0].getsockname()[1]
    paths = resolve_paths().ensure()
    app = HostWindowApp(paths, Settings(provider="offline"), _args(port=port))
    try:
        with pytest.raises(OSError):
            await app.start()
        await app.aclose()
        assert app.handler is None and app.window is None
        pkg = logging.getLogger("hitl_desktop")
        assert not any(type(h).__name__ == "QtLogHandler" for h in pkg.handlers)
    finally:
        blocker.close()
        await blocker.wait_closed()


async def test_replace_a_link_and_revoke_a_session_from_the_window(qtbot: object) -> None:
    async with host_window_app() as app:
        window = app.window
        assert window is not None and app.host is not None
        old_desk = window.desk_row.link
        desk, _ = await _welcome(old_desk)
        box = window.ask_rotate("desk")
        box.yes_button.click()
        await until(lambda: window.desk_row.link != old_desk)
        assert window.desk_row.field.text() == window.desk_row.link == app.host.desk_link
        await until(lambda: desk.state is ConnectionState.FAILED)  # 4010: no reconnecting
        desk.close()
        new_desk, _ = await _welcome(window.desk_row.link)
        new_desk.close()
        # a session's links, from the sessions table
        created = app.host.create_session(title="leaked")
        await until(lambda: window.sessions.find(created.session_id) is not None)
        row = window.sessions.rows.index(window.sessions.find(created.session_id))
        window.table.selectRow(row)
        assert window.revoke_button.isEnabled()
        cust, _ = await _welcome(created.customer_link)
        box2 = window.ask_revoke_selected()
        assert box2 is not None
        box2.yes_button.click()
        await until(lambda: cust.state is ConnectionState.FAILED)
        cust.close()
        assert app.host.relay.tokens.verify(InviteLink.parse(created.agent_link).token) is None
