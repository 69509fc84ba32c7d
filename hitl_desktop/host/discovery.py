"""Advertise a running host on the LAN over mDNS / DNS-SD (zeroconf).

Why: a representative on another PC should find the host in the join dialog
instead of typing an address. Service type ``_hitl-desk._tcp.local.``; TXT record
``name``, ``version``, ``tls`` (and optionally ``lobby``, the customer lobby link,
when the host chooses to let LAN customers join with one click). Only advertised
when the host listens on a non-loopback address. Multicast is often unavailable
(containers, VPNs, locked-down Wi-Fi): every failure is logged and ignored, the
host never crashes because of discovery.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import socket
from collections.abc import Iterable
from typing import Any, Final

from hitl_desktop import __version__
from hitl_desktop.config import mdns_interfaces

log = logging.getLogger(__name__)

SERVICE_TYPE: Final = "_hitl-desk._tcp.local."


def is_loopback(bind: str) -> bool:
    """True for binds other PCs cannot reach (127.x, ::1, localhost)."""
    if bind == "localhost":
        return True
    try:
        return ipaddress.ip_address(bind).is_loopback
    except ValueError:
        return False


def should_advertise(bind: str) -> bool:
    return not is_loopback(bind)


def lan_addresses() -> list[str]:
    """This machine's IPv4 addresses other PCs may reach (no netifaces, no packets sent).

    Combines the address of the default route (a UDP ``connect`` sends nothing)
    with what the host name resolves to; loopback and link-local are left out.
    """
    found: list[str] = []

    def add(addr: str) -> None:
        try:
            ip = ipaddress.ip_address(addr)
        except ValueError:
            return
        if ip.is_loopback or ip.is_link_local or ip.is_unspecified or addr in found:
            return
        found.append(addr)

    for probe in ("10.255.255.255", "192.0.2.1", "8.8.8.8"):
        with contextlib.suppress(OSError), socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.connect((probe, 1))
            add(str(s.getsockname()[0]))
    with contextlib.suppress(OSError):
        for info in socket.getaddrinfo(socket.gethostname(), None, socket.AF_INET):
            add(str(info[4][0]))
    return found


def advertised_addresses(bind: str) -> list[str]:
    if bind in ("0.0.0.0", "::", ""):
        return lan_addresses()
    return [bind]


def instance_name(name: str) -> str:
    """A DNS-SD instance label: at most 63 bytes, no dots."""
    label = name.replace(".", " ").strip() or "HITL Desk"
    return label.encode("utf-8")[:63].decode("utf-8", "ignore")


class HostAdvertiser:
    """Registers the host's service; ``start`` and ``aclose`` never raise."""

    def __init__(
        self,
        *,
        port: int,
        addresses: Iterable[str],
        name: str | None = None,
        tls: bool = False,
        lobby_link: str | None = None,
        interfaces: list[str] | None = None,
    ) -> None:
        self.port = port
        self.addresses = [a for a in addresses if a]
        self.name = instance_name(name or f"HITL Desk on {socket.gethostname()}")
        self.tls = tls
        self.lobby_link = lobby_link
        self.interfaces = interfaces
        self._zc: Any = None
        self._info: Any = None
        self._announce: Any = None
        self.error: str | None = None

    @property
    def active(self) -> bool:
        return self._info is not None

    def properties(self) -> dict[str, str]:
        props = {"name": self.name, "version": __version__, "tls": "1" if self.tls else "0"}
        if self.lobby_link:
            props["lobby"] = self.lobby_link
        return props

    async def start(self) -> bool:
        """Register the service; False (and ``error`` set) when multicast is unavailable."""
        if not self.addresses:
            self.error = "no LAN address to advertise"
            log.info("mDNS: not advertising (%s)", self.error)
            return False
        try:
            from zeroconf import InterfaceChoice, IPVersion
            from zeroconf.asyncio import AsyncServiceInfo, AsyncZeroconf

            packed = [socket.inet_aton(a) for a in self.addresses if ":" not in a]
            host_label = socket.gethostname().split(".")[0] or "hitl-host"
            self._info = AsyncServiceInfo(
                SERVICE_TYPE,
                f"{self.name}.{SERVICE_TYPE}",
                port=self.port,
                properties=self.properties(),
                server=f"{host_label}.local.",
                addresses=packed,
            )
            self._zc = AsyncZeroconf(
                interfaces=self.interfaces or mdns_interfaces() or InterfaceChoice.All,
                ip_version=IPVersion.V4Only,
            )
            # returns the announcement task (three broadcasts): keep it, await it on close
            self._announce = await self._zc.async_register_service(
                self._info, allow_name_change=True
            )
        except Exception as exc:  # multicast missing, socket errors, name conflicts...
            self.error = f"{type(exc).__name__}: {exc}"
            log.warning("mDNS: cannot advertise the host (%s); continuing without it",
                        self.error)
            await self._close_zc()
            self._info = None
            return False
        log.info("mDNS: advertising %r on %s port %d", self.name, ", ".join(self.addresses),
                 self.port)
        return True

    async def _close_zc(self) -> None:
        zc, self._zc = self._zc, None
        if zc is not None:
            with contextlib.suppress(Exception):
                await zc.async_close()

    async def aclose(self) -> None:
        info, self._info = self._info, None
        announce, self._announce = self._announce, None
        if announce is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(announce, 2.0)
        if info is not None and self._zc is not None:
            try:
                goodbye = await self._zc.async_unregister_service(info)
                await asyncio.wait_for(goodbye, 2.0)
            except Exception as exc:
                log.debug("mDNS: unregister failed: %s", exc)
        await self._close_zc()


async def advertise_host(
    *,
    bind: str,
    port: int,
    tls: bool,
    name: str | None = None,
    lobby_link: str | None = None,
) -> HostAdvertiser | None:
    """Start advertising when ``bind`` serves a LAN; None when there is nothing to do."""
    if not should_advertise(bind):
        log.info("mDNS: host bound to %s (loopback): not advertising", bind)
        return None
    # resolving the host name may wait on DNS for seconds: off the event loop
    addresses = await asyncio.to_thread(advertised_addresses, bind)
    adv = HostAdvertiser(port=port, addresses=addresses, name=name, tls=tls,
                         lobby_link=lobby_link)
    await adv.start()
    return adv
