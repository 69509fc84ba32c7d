"""``hitl-desktop host`` with a window: start the host on the qasync loop and show it.

Wiring only, in order: settings (offering the setup wizard on a first start), the
host (relay + co-pilot, as the headless host and the demo wire it), LAN discovery,
an admin connection for the window, the window, a log handler. Shutdown runs in
reverse when the window closes.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from hitl_desktop.app.qt import run_qt
from hitl_desktop.app.services import copilot_factory, start_host
from hitl_desktop.app.setup import ask, needs_setup, offer_setup, run_wizard
from hitl_desktop.config import Paths, Settings, resolve_paths
from hitl_desktop.core.links import InviteLink
from hitl_desktop.core.tasks import TaskSupervisor

if TYPE_CHECKING:
    from hitl_desktop.app.services import RunningHost
    from hitl_desktop.client.connection import HostConnection
    from hitl_desktop.host.discovery import HostAdvertiser
    from hitl_desktop.ui.host_window import HostWindow, QtLogHandler

log = logging.getLogger(__name__)


def vector_store_text(paths: Paths, settings: Settings, provider: str) -> str:
    """The vector store's state, in a sentence, from the settings and the sync manifest."""
    from hitl_desktop.knowledge.vector_store import MANIFEST_NAME, Manifest

    if provider == "offline":
        return "not used (the offline assistant searches the local index)"
    if not settings.vector_store_id:
        return "not created yet: press \"Run setup…\" to upload the knowledge base"
    manifest = Manifest.load(paths.data_dir / MANIFEST_NAME)
    if manifest.vector_store_id != settings.vector_store_id:
        return f"{settings.vector_store_id} (configured; not synced from this PC)"
    done = sum(1 for e in manifest.files.values() if e.state == "completed")
    failed = sum(1 for e in manifest.files.values() if e.state != "completed")
    when = time.strftime("%Y-%m-%d %H:%M", time.localtime(manifest.updated_at))
    text = f"{settings.vector_store_id}: {done} articles, synced {when}"
    return text + (f" ({failed} not processed: run setup again)" if failed else "")


def engine(paths: Paths, settings: Settings, override: str | None) -> tuple[str, bool]:
    """(provider name, is it an AI model) as the host will choose it."""
    from hitl_desktop.assistant.factory import resolve_provider_name

    try:
        name = resolve_provider_name(paths, settings, override)
    except ValueError:
        name = "offline"
    return name, name != "offline"


@dataclass
class HostWindowApp:
    """The windowed host, started in order and stopped in reverse."""

    paths: Paths
    settings: Settings
    args: argparse.Namespace
    host: RunningHost | None = None
    advertiser: HostAdvertiser | None = None
    admin: HostConnection | None = None
    window: HostWindow | None = None
    handler: QtLogHandler | None = None
    closed: asyncio.Event = field(default_factory=asyncio.Event)
    _old_level: int = logging.NOTSET
    _tasks: TaskSupervisor = field(
        default_factory=lambda: TaskSupervisor("host window", logger=log))

    async def start(self) -> HostWindow:
        from hitl_desktop.client.connection import HostConnection
        from hitl_desktop.host.discovery import advertise_host, lan_addresses, should_advertise
        from hitl_desktop.ui.host_window import HostInfo, HostWindow, QtLogHandler

        a = self.args
        self.handler = QtLogHandler()
        pkg = logging.getLogger("hitl_desktop")
        pkg.addHandler(self.handler)
        self._old_level = pkg.level
        if pkg.getEffectiveLevel() > logging.INFO:
            pkg.setLevel(logging.INFO)  # the log view shows INFO and up

        self.host = await start_host(
            self.paths, self.settings, bind=a.bind, port=a.port, public_host=a.public_host,
            tls_cert=a.tls_cert, tls_key=a.tls_key,
            copilot_factory=copilot_factory(self.paths, self.settings,
                                            provider=getattr(a, "provider", None),
                                            model=getattr(a, "model", None)),
        )
        host = self.host
        provider, is_ai = await asyncio.to_thread(  # may ask the keyring: off the loop
            engine, self.paths, self.settings, getattr(a, "provider", None))
        info = HostInfo(
            ws_url=host.url, bind=host.bind, port=host.port, public_host=host.public_host,
            tls=host.tls, desk_link=host.desk_link, lobby_link=host.lobby_link,
            data_dir=str(self.paths.data_dir), lan_addresses=lan_addresses(),
            provider=provider, model=self.settings.model if is_ai else None, is_ai=is_ai,
            vector_store=vector_store_text(self.paths, self.settings, provider),
        )
        if getattr(a, "no_discovery", False):
            info.discovery = "off (--no-discovery)"
        elif not should_advertise(host.bind):
            info.discovery = "off: the host only serves this PC"
        else:
            self.advertiser = await advertise_host(
                bind=host.bind, port=host.port, tls=host.tls, lobby_link=host.lobby_link)
            adv = self.advertiser
            info.discovery = (
                f"advertised as \"{adv.name}\" (mDNS)" if adv is not None and adv.active
                else f"unavailable ({adv.error if adv else 'no address'}); share links instead"
            )

        local = "127.0.0.1" if host.bind in ("0.0.0.0", "", "::") else host.bind
        admin_link = InviteLink(local, host.port, "agent", host.admin_token, host.tls)
        self.admin = HostConnection(admin_link, client_name="host window")
        self.window = HostWindow(info, self.admin, self.handler)
        self.window.closed.connect(self.closed.set)
        self.window.setup_requested.connect(self._setup)
        self.window.rotate_requested.connect(self._rotate)
        self.window.revoke_requested.connect(self._revoke)
        self.admin.open()
        self.window.show()
        log.info("host window up: %s", host.url)
        return self.window

    def _rotate(self, which: str) -> None:
        """Replace the desk or lobby link (live connections on the old one get 4010)."""
        from hitl_desktop.app.services import LINK_KINDS

        assert self.host is not None and self.window is not None
        link = self.host.rotate(LINK_KINDS[which])
        self.window.set_link(which, link)
        if which == "lobby" and self.advertiser is not None:  # mDNS carries the lobby link
            self._tasks.spawn(self._readvertise(link), "re-advertise")

    async def _readvertise(self, lobby_link: str) -> None:
        from hitl_desktop.host.discovery import advertise_host

        assert self.host is not None
        if self.advertiser is not None:
            await self.advertiser.aclose()
        self.advertiser = await advertise_host(
            bind=self.host.bind, port=self.host.port, tls=self.host.tls, lobby_link=lobby_link)

    def _revoke(self, session_id: str) -> None:
        assert self.host is not None and self.window is not None
        closed = self.host.relay.revoke_session(session_id)
        self.window.statusBar().showMessage(
            f"Session {session_id}: links revoked ({closed} connections closed)", 8000)

    def _setup(self) -> None:
        self._tasks.spawn(self._run_setup(), "setup wizard")

    async def _run_setup(self) -> None:
        settings = await run_wizard(self.paths)
        if settings is None or self.window is None:
            return
        self.settings = Settings.load(self.paths)
        provider, _ = await asyncio.to_thread(
            engine, self.paths, self.settings, getattr(self.args, "provider", None))
        self.window.set_vector_store(
            vector_store_text(self.paths, self.settings, provider)
            + "  — restart the host to use new settings")

    async def aclose(self) -> None:
        self._tasks.cancel_all()
        if self.admin is not None:
            await self.admin.aclose()
        if self.advertiser is not None:
            await self.advertiser.aclose()
        if self.host is not None:
            await self.host.stop()
        if self.window is not None:
            self.window.close()
            self.window.deleteLater()
        if self.handler is not None:
            pkg = logging.getLogger("hitl_desktop")
            pkg.removeHandler(self.handler)
            pkg.setLevel(self._old_level)
            self.handler = None


def run_window(args: argparse.Namespace) -> int:
    paths = resolve_paths(args.data_dir, args.config_dir).ensure()

    async def main() -> int:
        if await asyncio.to_thread(needs_setup, paths):
            await offer_setup(paths)
        app = HostWindowApp(paths, Settings.load(paths), args)
        try:
            await app.start()
        except (OSError, ValueError) as exc:  # port in use, bad TLS files...
            log.error("cannot start the host: %s", exc)
            await app.aclose()
            await ask(f"The host could not start:\n\n{exc}", question=False)
            return 1
        try:
            await app.closed.wait()
        finally:
            await app.aclose()
        return 0

    return run_qt(main, app_name="HITL Desk host")
