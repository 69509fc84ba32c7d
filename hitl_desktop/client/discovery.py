"""Find hosts on the LAN (mDNS / DNS-SD browse), with Qt signals for the join dialog.

Why on the asyncio loop: zeroconf's asyncio API runs on the same qasync loop as
everything else, so results arrive on the GUI thread without locks. Handler
callbacks from zeroconf only schedule a supervised resolve task. When multicast
is unavailable the browser reports it once (``failed``) and stays empty.
"""

from __future__ import annotations

import contextlib
import logging
from dataclasses import dataclass
from typing import Any

from PySide6.QtCore import QObject, Signal

from hitl_desktop.config import mdns_interfaces
from hitl_desktop.core.links import InvalidLink, InviteLink, LinkRole
from hitl_desktop.core.tasks import TaskSupervisor

log = logging.getLogger(__name__)

SERVICE_TYPE = "_hitl-desk._tcp.local."


@dataclass(frozen=True, slots=True)
class DiscoveredHost:
    """One host found on the LAN."""

    service: str  # the full DNS-SD name: unique key
    name: str
    address: str
    port: int
    tls: bool
    version: str
    lobby_link: str | None = None

    def label(self) -> str:
        return f"{self.name} — {self.address}:{self.port}{' (TLS)' if self.tls else ''}"

    def link_prefix(self, role: LinkRole) -> str:
        """The link up to the ``#``: the user pastes the secret after it."""
        scheme = "hitls" if self.tls else "hitl"
        host = f"[{self.address}]" if ":" in self.address else self.address
        return f"{scheme}://{host}:{self.port}/{role}#"

    def lobby(self) -> InviteLink | None:
        """The advertised customer lobby link, when valid and the host offered one."""
        if not self.lobby_link:
            return None
        try:
            return InviteLink.parse(self.lobby_link)
        except InvalidLink:
            return None


def _decode(props: dict[bytes, bytes | None]) -> dict[str, str]:
    out: dict[str, str] = {}
    for k, v in props.items():
        with contextlib.suppress(UnicodeDecodeError):
            out[k.decode()] = (v or b"").decode()
    return out


class HostBrowser(QObject):
    """Browses ``_hitl-desk._tcp``; call :meth:`start` on the running loop."""

    host_found = Signal(object)  # DiscoveredHost (also on updates)
    host_lost = Signal(str)  # service name
    failed = Signal(str)  # why browsing is impossible

    def __init__(self, *, interfaces: list[str] | None = None,
                 parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.interfaces = interfaces
        self.hosts: dict[str, DiscoveredHost] = {}
        self._zc: Any = None
        self._browser: Any = None
        self._tasks = TaskSupervisor("discovery", logger=log)
        self.error: str | None = None

    def start(self) -> bool:
        if self._zc is not None:
            return True
        try:
            from zeroconf import InterfaceChoice, IPVersion
            from zeroconf.asyncio import AsyncServiceBrowser, AsyncZeroconf

            self._zc = AsyncZeroconf(
                interfaces=self.interfaces or mdns_interfaces() or InterfaceChoice.All,
                ip_version=IPVersion.V4Only,
            )
            self._browser = AsyncServiceBrowser(
                self._zc.zeroconf, SERVICE_TYPE, handlers=[self._on_change]
            )
        except Exception as exc:
            self.error = f"{type(exc).__name__}: {exc}"
            log.warning("mDNS: cannot browse for hosts (%s)", self.error)
            self._tasks.spawn(self._close_zc(), "close")
            self.failed.emit(self.error)
            return False
        return True

    def _on_change(self, zeroconf: Any, service_type: str, name: str,
                   state_change: Any) -> None:
        from zeroconf import ServiceStateChange

        if state_change is ServiceStateChange.Removed:
            if self.hosts.pop(name, None) is not None:
                self.host_lost.emit(name)
            return
        self._tasks.spawn(self._resolve(service_type, name), f"resolve {name}")

    async def _resolve(self, service_type: str, name: str) -> None:
        from zeroconf.asyncio import AsyncServiceInfo

        if self._zc is None:
            return
        info = AsyncServiceInfo(service_type, name)
        if not await info.async_request(self._zc.zeroconf, 3000):
            log.debug("mDNS: %s did not resolve", name)
            return
        addrs = info.parsed_addresses()
        if not addrs or info.port is None:
            return
        props = _decode(info.properties or {})
        host = DiscoveredHost(
            service=name,
            name=props.get("name") or name.removesuffix("." + service_type),
            address=addrs[0],
            port=int(info.port),
            tls=props.get("tls") == "1",
            version=props.get("version", ""),
            lobby_link=props.get("lobby") or None,
        )
        if self.hosts.get(name) != host:
            self.hosts[name] = host
            self.host_found.emit(host)

    async def _close_zc(self) -> None:
        browser, self._browser = self._browser, None
        zc, self._zc = self._zc, None
        with contextlib.suppress(Exception):
            if browser is not None:
                await browser.async_cancel()
        with contextlib.suppress(Exception):
            if zc is not None:
                await zc.async_close()

    async def aclose(self) -> None:
        self._tasks.cancel_all()
        await self._close_zc()

    def stop(self) -> None:
        """Stop without waiting (from a close event)."""
        self._tasks.spawn(self.aclose(), "stop")
