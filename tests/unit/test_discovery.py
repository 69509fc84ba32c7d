"""LAN discovery: the host advertises over mDNS and the client browser finds it."""

from __future__ import annotations

import asyncio

import pytest

from hitl_desktop.client.discovery import DiscoveredHost, HostBrowser
from hitl_desktop.core.links import InviteLink
from hitl_desktop.host.discovery import (
    SERVICE_TYPE,
    HostAdvertiser,
    advertise_host,
    instance_name,
    lan_addresses,
    should_advertise,
)

LOBBY = "hitl://192.0.2.50:8765/customer#lobby1.0123456789abcdefABCDEF"


def test_only_lan_binds_are_advertised() -> None:
    assert not should_advertise("127.0.0.1")
    assert not should_advertise("::1")
    assert not should_advertise("localhost")
    assert should_advertise("0.0.0.0")
    assert should_advertise("192.168.1.20")
    assert "." not in instance_name("host.example.com")
    assert len(instance_name("x" * 200).encode()) <= 63
    assert all(not a.startswith("127.") for a in lan_addresses())


async def test_loopback_host_is_not_advertised() -> None:
    assert await advertise_host(bind="127.0.0.1", port=9, tls=False) is None


async def test_advertising_on_a_missing_interface_fails_softly() -> None:
    adv = HostAdvertiser(port=9, addresses=["203.0.113.77"], interfaces=["203.0.113.77"])
    ok = await adv.start()
    await adv.aclose()  # never raises, whatever happened
    if ok:
        pytest.skip("zeroconf accepted an interface this machine does not have")
    assert adv.error and not adv.active


async def test_advertise_then_browse_finds_the_host_and_sees_it_leave() -> None:
    addrs = ["127.0.0.1"]  # loopback only: tests never multicast on the LAN
    adv = HostAdvertiser(port=48765, addresses=addrs[:1], name="Test desk", tls=True,
                         lobby_link=LOBBY)
    if not await adv.start():
        pytest.skip(f"multicast is unavailable here: {adv.error}")
    browser = HostBrowser()
    found: list[DiscoveredHost] = []
    lost: list[str] = []
    browser.host_found.connect(found.append)
    browser.host_lost.connect(lost.append)
    try:
        assert browser.start(), browser.error
        for _ in range(100):
            if any(h.name == "Test desk" for h in found):
                break
            await asyncio.sleep(0.05)
        else:
            pytest.skip("multicast packets are not delivered back to this machine")
        host = next(h for h in found if h.name == "Test desk")
        assert host.service == f"Test desk.{SERVICE_TYPE}"
        assert (host.address, host.port, host.tls) == (addrs[0], 48765, True)
        assert host.version
        lobby = host.lobby()
        assert lobby is not None and lobby == InviteLink.parse(LOBBY)
        assert host.link_prefix("agent") == f"hitls://{addrs[0]}:48765/agent#"
        await adv.aclose()  # goodbye packets: the browser drops the host
        for _ in range(100):
            if host.service in lost:
                break
            await asyncio.sleep(0.05)
        assert host.service in lost
        assert host.service not in browser.hosts
    finally:
        await adv.aclose()
        await browser.aclose()
