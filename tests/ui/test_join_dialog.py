"""The join dialog: inline link validation, discovered hosts, and the coroutine API."""

from __future__ import annotations

import asyncio
import gc
from collections.abc import Iterator

import pytest
from PySide6.QtWidgets import QApplication

from hitl_desktop.client.discovery import DiscoveredHost, HostBrowser
from hitl_desktop.core.links import InviteLink
from hitl_desktop.host.discovery import HostAdvertiser
from hitl_desktop.ui.join_dialog import JoinDialog, choose_link
from tests.ui.conftest import until

pytestmark = pytest.mark.qt_log_ignore("does not support propagateSizeHints")

SECRET = "tok1.0123456789abcdefABCDEF"
LOBBY = f"hitl://192.0.2.9:8765/customer#{SECRET}"


@pytest.fixture(autouse=True)
def keep_app_running(qapp: QApplication) -> Iterator[None]:
    """Closing a window must not quit the app (and stop the loop the test runs on)."""
    qapp.setQuitOnLastWindowClosed(False)
    yield
    gc.collect()  # Qt objects in cycles die here, on the GUI thread, not on a worker


def _host(lobby: str | None = LOBBY) -> DiscoveredHost:
    return DiscoveredHost(service="Desk._hitl-desk._tcp.local.", name="Desk",
                          address="192.0.2.9", port=8765, tls=False, version="0.1.0",
                          lobby_link=lobby)


def test_link_is_validated_inline(qtbot: object) -> None:
    d = JoinDialog("customer", discover=False)
    chosen: list[str] = []
    d.link_chosen.connect(chosen.append)
    assert not d.join_button.isEnabled()
    d.link.setText("https://example.com")
    assert "hitl://" in d.error.text() and not d.join_button.isEnabled()
    d.link.setText("hitl://192.0.2.9:8765/customer")
    assert "secret" in d.error.text() and not d.join_button.isEnabled()
    d.link.setText(f"hitl://192.0.2.9:8765/agent#{SECRET}")
    assert "agent link" in d.error.text() and not d.join_button.isEnabled()
    d.link.setText(f"  {LOBBY}  ")
    assert d.error.text() == "" and d.join_button.isEnabled()
    d.join_button.click()
    assert chosen == [LOBBY]
    assert d.chosen == InviteLink.parse(LOBBY)
    assert "LAN discovery is off" in d.discovery_status.text()
    d.deleteLater()


def test_discovered_hosts_fill_the_link(qtbot: object) -> None:
    browser = HostBrowser()  # fed by hand here; the real browse is tested below
    customer = JoinDialog("customer", browser=browser)
    agent = JoinDialog("agent", browser=browser)
    browser.host_found.emit(_host())
    assert customer.hosts.count() == 1 and agent.hosts.count() == 1
    assert "192.0.2.9:8765" in customer.hosts.item(0).text()

    customer._pick(customer.hosts.item(0))
    assert customer.link.text() == LOBBY and customer.join_button.isEnabled()

    agent._pick(agent.hosts.item(0))
    assert agent.link.text() == "hitl://192.0.2.9:8765/agent#"
    assert "secret" in agent.error.text() and not agent.join_button.isEnabled()
    agent.link.setText(agent.link.text() + SECRET)
    assert agent.join_button.isEnabled()

    browser.host_lost.emit(_host().service)
    assert customer.hosts.count() == 0
    customer.deleteLater()
    agent.deleteLater()


async def test_choose_link_awaits_the_dialog(qtbot: object) -> None:
    task = asyncio.ensure_future(choose_link("customer"))
    await until(lambda: any(isinstance(w, JoinDialog) and w.isVisible()
                            for w in QApplication.topLevelWidgets()), what="dialog shown")
    d = next(w for w in QApplication.topLevelWidgets()
             if isinstance(w, JoinDialog) and w.isVisible())
    d.link.setText(LOBBY)
    d.join_button.click()
    assert await asyncio.wait_for(task, 5) == InviteLink.parse(LOBBY)

    task = asyncio.ensure_future(choose_link("agent"))
    await until(lambda: any(isinstance(w, JoinDialog) and w.isVisible() and w.role == "agent"
                            for w in QApplication.topLevelWidgets()), what="second dialog")
    d = next(w for w in QApplication.topLevelWidgets()
             if isinstance(w, JoinDialog) and w.isVisible())
    d.reject()
    assert await asyncio.wait_for(task, 5) is None


async def test_dialog_lists_a_host_advertised_on_the_lan(qtbot: object) -> None:
    addrs = ["127.0.0.1"]  # loopback only: tests never multicast on the LAN
    adv = HostAdvertiser(port=48766, addresses=addrs[:1], name="LAN desk", lobby_link=LOBBY)
    if not await adv.start():
        pytest.skip(f"multicast is unavailable here: {adv.error}")
    d = JoinDialog("customer")
    d.show()
    try:
        def listed() -> bool:
            return any("LAN desk" in (d.hosts.item(i).text() if d.hosts.item(i) else "")
                       for i in range(d.hosts.count()))
        try:
            await until(listed, within=8, what="advertised host listed")
        except AssertionError:
            pytest.skip("multicast packets are not delivered back to this machine")
        assert "found" in d.discovery_status.text()
    finally:
        d.close()
        if d.browser is not None:
            await d.browser.aclose()
        await adv.aclose()
        d.deleteLater()


def test_wrong_role_is_said_with_the_right_article(qtbot: object) -> None:
    d = JoinDialog("customer", discover=False)
    d.link.setText(f"hitl://192.0.2.9:8765/agent#{SECRET}")
    assert d.error.text() == "This is an agent link; this window needs a customer link."
    agent = JoinDialog("agent", discover=False)
    agent.link.setText(LOBBY)
    assert agent.error.text() == "This is a customer link; this window needs an agent link."
    d.deleteLater()
    agent.deleteLater()


async def test_searching_never_lasts_forever(qtbot: object,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    import hitl_desktop.ui.join_dialog as jd

    monkeypatch.setattr(jd, "SEARCH_PATIENCE_MS", 50)
    browser = HostBrowser()  # nothing on this "network"
    d = JoinDialog("agent", browser=browser)
    assert "Searching" in d.discovery_status.text()
    await until(lambda: "No host found" in d.discovery_status.text(), within=5)
    assert "Paste" in d.discovery_status.text()
    browser.host_found.emit(_host())
    assert "1 host(s) found" in d.discovery_status.text()
    d.deleteLater()
