"""The host's services, built one way for every mode (headless host, windowed host, demo).

Why one module: the headless host, the host window and the demo used to wire the
relay and the co-pilot each in their own way (and the windowed host borrowed its
co-pilot from the demo). Here is the only place that opens the relay log, issues
the standing links, builds the co-pilot (paced, with a chat-only fallback) and
starts listening. It imports no Qt: the headless host runs it without a display.

Links: the desk (agent), lobby (customer) and admin tokens are created on the
first start and their secrets are kept in ``host-links.json`` (mode 0600) in the
data dir, because the host must show the same links after every restart.
Per-session tokens are *not* stored anywhere in clear: they are shown once when
the session is created (``session new`` / ``session.create`` / the host window).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import socket
import ssl
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from hitl_desktop.config import Paths, Settings
from hitl_desktop.core.catalog import CatalogError
from hitl_desktop.core.gcpolicy import FreezingCollector
from hitl_desktop.core.links import InviteLink, LinkRole
from hitl_desktop.core.ports import Copilot, NullCopilot, SessionOutbox
from hitl_desktop.core.protocol import CustomerMatch
from hitl_desktop.core.stalls import StallWatch
from hitl_desktop.core.stalls import from_environment as stall_watch_from_environment
from hitl_desktop.host.log import RelayLog
from hitl_desktop.host.relay import CopilotFactory, CreatedSession, Relay, RelayConfig
from hitl_desktop.host.tokens import TokenKind, Tokens
from hitl_desktop.store.database import ShopDatabase
from hitl_desktop.store.sqlite_files import make_private_tree

log = logging.getLogger(__name__)

LINKS_FILE = "host-links.json"
HOST_FILE = "host.json"
_STANDING = (TokenKind.AGENT_DESK, TokenKind.CUSTOMER_LOBBY, TokenKind.ADMIN)
#: the offline engine's pace when settings do not say (milliseconds per word)
OFFLINE_DELAY_MS = 6.0


def open_directory(paths: Paths) -> ShopDatabase | None:
    """The shop's customers for sign-in, search and names (the relay's
    ``CustomerDirectory``): the same shop database the co-pilot uses. None if it
    cannot be opened; then nobody can be verified and the host says why in its log."""
    from hitl_desktop.store.catalog_file import load_catalog

    try:
        return ShopDatabase.open(paths.data_dir, load_catalog(paths.config_dir))
    except Exception:
        log.exception("the shop database could not be opened: customers cannot sign in")
        return None


class NamedDirectory:
    """The relay's customer directory with names answered from memory.

    The relay asks for a customer's name on the event loop (issuing a link for a
    customer); the shop may not be used there (the threading rule). Names are read
    once when the host starts (off the loop) and again on every sign-in and search,
    which the relay already runs in a thread; a name changed in between shows the
    old one on the next issued link until then.
    """

    def __init__(self, shop: ShopDatabase) -> None:
        self.shop = shop
        self._names = shop.customer_names()

    def customer_name(self, customer_id: str) -> str | None:
        return self._names.get(customer_id.strip().upper())

    def match_sign_in(self, email: str, order_id: str) -> str | None:
        self._names = self.shop.customer_names()
        return self.shop.match_sign_in(email, order_id)

    def find_customers(self, query: str, limit: int) -> list[CustomerMatch]:
        self._names = self.shop.customer_names()
        return self.shop.find_customers(query, limit)

    def close(self) -> None:
        self.shop.close()


def lan_address() -> str:
    """The address other PCs on the LAN most likely reach us at (no packet is sent)."""
    with contextlib.suppress(OSError), socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.connect(("10.255.255.255", 1))
        addr = str(s.getsockname()[0])
        if not addr.startswith("0."):
            return addr
    with contextlib.suppress(OSError):
        return socket.gethostbyname(socket.gethostname())
    return "127.0.0.1"


def public_host_for(bind: str, public_host: str | None) -> str:
    if public_host:
        return public_host
    if bind in ("0.0.0.0", "", "::"):
        return lan_address()
    return bind


def make_ssl_context(cert: str | None, key: str | None) -> ssl.SSLContext | None:
    if not cert and not key:
        return None
    if not cert or not key:
        raise ValueError("TLS needs both --tls-cert and --tls-key")
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.load_cert_chain(cert, key)
    return ctx


def write_private(path: Path, text: str) -> None:
    """Write a file only the owner can read (0600), atomically."""
    tmp = path.with_suffix(path.suffix + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        fh.write(text)
    os.chmod(tmp, 0o600)
    tmp.replace(path)


def standing_tokens(data_dir: Path, tokens: Tokens) -> dict[TokenKind, str]:
    """The desk, lobby and admin tokens: reused from ``host-links.json`` while still valid.

    A kind without a valid stored token gets a new one and every other token of that
    kind is revoked: deleting ``host-links.json`` rotates all three links, and an old
    link never keeps working next to a new one."""
    path = data_dir / LINKS_FILE
    stored: dict[str, Any] = {}
    with contextlib.suppress(FileNotFoundError, ValueError):
        stored = json.loads(path.read_text("utf-8"))
    out: dict[TokenKind, str] = {}
    changed = False
    for kind in _STANDING:
        token = stored.get(kind.value)
        record = tokens.verify(token) if isinstance(token, str) else None
        if record is None or record.kind is not kind:
            token = tokens.issue(kind, label=None)
            tokens.revoke_kind(kind, keep=token.partition(".")[0])
            changed = True
        out[kind] = str(token)
    if changed:
        write_private(path, json.dumps({k.value: v for k, v in out.items()}, indent=2))
    return out


#: ``links rotate`` names
LINK_KINDS = {"desk": TokenKind.AGENT_DESK, "lobby": TokenKind.CUSTOMER_LOBBY,
              "admin": TokenKind.ADMIN}


def rotate_link(data_dir: Path, tokens: Tokens, kind: TokenKind) -> tuple[str, set[str]]:
    """Replace one standing link: a new token, every old one of that kind revoked,
    ``host-links.json`` rewritten. Returns (new token, revoked ids). A running host
    closes the old link's connections with 4010 within its poll interval."""
    current = standing_tokens(data_dir, tokens)
    token = tokens.issue(kind, label=None)
    revoked = tokens.revoke_kind(kind, keep=token.partition(".")[0])
    current[kind] = token
    write_private(data_dir / LINKS_FILE,
                  json.dumps({k.value: v for k, v in current.items()}, indent=2))
    log.info("%s link rotated (%d old tokens revoked)", kind.value, len(revoked))
    return token, revoked


@dataclass(slots=True)
class RunningHost:
    """A listening host: its links, the relay, and how to stop it."""

    relay: Relay
    relay_log: RelayLog
    paths: Paths
    bind: str
    port: int
    public_host: str
    tls: bool
    desk_token: str
    lobby_token: str
    admin_token: str
    directory: NamedDirectory | None = None
    #: the loop's stall watch (``HITL_STALL_LOG=MS``; off by default)
    stalls: StallWatch | None = None
    #: freezes each full GC pass's survivors (core/gcpolicy.py)
    collector: FreezingCollector | None = None

    @property
    def url(self) -> str:
        return InviteLink(self.public_host, self.port, "agent", "x", self.tls).ws_url

    def link(self, role: LinkRole, token: str) -> str:
        return str(InviteLink(self.public_host, self.port, role, token, self.tls))

    @property
    def desk_link(self) -> str:
        return self.link("agent", self.desk_token)

    @property
    def lobby_link(self) -> str:
        return self.link("customer", self.lobby_token)

    @property
    def admin_link(self) -> str:
        return self.link("agent", self.admin_token)

    @property
    def local_url(self) -> str:
        """A URL that reaches the host from this PC (loopback for wildcard binds)."""
        host = "127.0.0.1" if self.bind in ("0.0.0.0", "", "::") else self.bind
        return InviteLink(host, self.port, "agent", "x", self.tls).ws_url

    def create_session(
        self, customer_id: str | None = None, title: str | None = None, *, by: str = "host"
    ) -> CreatedSession:
        """A new session; with ``customer_id`` its customer link is issued for that shop
        customer (verified from the start), else its customer starts anonymous."""
        return self.relay.create_session(customer_id=customer_id, title=title, by=by)

    def info(self) -> dict[str, Any]:
        """What ``--headless`` prints (and host windows show)."""
        return {
            "url": self.url,
            "agent_link": self.desk_link,
            "customer_link": self.lobby_link,
            "admin_link": self.admin_link,
            "data_dir": str(self.paths.data_dir),
            "bind": self.bind,
            "port": self.port,
            "public_host": self.public_host,
            "tls": self.tls,
            "pid": os.getpid(),
        }

    def rotate(self, kind: TokenKind) -> str:
        """Replace a standing link now (its live connections close with 4010); the new
        link."""
        token, revoked = rotate_link(self.paths.data_dir, self.relay.tokens, kind)
        self.reload_links()
        for token_id in revoked:
            self.relay.revoke(token_id)
        return self.link("customer" if kind is TokenKind.CUSTOMER_LOBBY else "agent", token)

    def reload_links(self, _revoked: object = None) -> None:
        """Pick up standing links another process (``links rotate``) replaced."""
        standing = standing_tokens(self.paths.data_dir, self.relay.tokens)
        self.desk_token = standing[TokenKind.AGENT_DESK]
        self.lobby_token = standing[TokenKind.CUSTOMER_LOBBY]
        self.admin_token = standing[TokenKind.ADMIN]

    async def stop(self) -> None:
        if self.stalls is not None:
            self.stalls.stop()
        if self.collector is not None:
            self.collector.stop()
        await self.relay.aclose()
        self.relay_log.close()
        if self.directory is not None:
            await asyncio.to_thread(self.directory.close)
        log.info("host stopped")


async def start_host(
    paths: Paths,
    settings: Settings,
    *,
    bind: str = "127.0.0.1",
    port: int = 0,
    public_host: str | None = None,
    tls_cert: str | None = None,
    tls_key: str | None = None,
    copilot_factory: CopilotFactory | None = None,
    config: RelayConfig | None = None,
) -> RunningHost:
    """Open the log, start listening, write ``host.json``; return the running host.

    Everything that blocks (the relay log, the links file, the shop database, the
    knowledge index scan, the co-pilot's engine) is opened in a worker thread, so
    a windowed host's Qt loop keeps painting; the co-pilot starts on the loop.
    """
    cfg = config or RelayConfig()
    if cfg.greeting is None:
        cfg.greeting = settings.greeting

    def prepare() -> tuple[RelayLog, Relay, dict[TokenKind, str], ssl.SSLContext | None,
                           NamedDirectory | None]:
        paths.ensure()
        ssl_context = make_ssl_context(tls_cert, tls_key)
        relay_log = RelayLog.open_in(paths.data_dir)
        directory: NamedDirectory | None = None
        try:
            tokens = Tokens(relay_log)
            standing = standing_tokens(paths.data_dir, tokens)
            shop = open_directory(paths)
            directory = NamedDirectory(shop) if shop is not None else None
            relay = Relay(relay_log, tokens, config=cfg, copilot_factory=copilot_factory,
                          directory=directory)
        except BaseException:
            relay_log.close()
            if directory is not None:
                directory.close()
            raise
        return relay_log, relay, standing, ssl_context, directory

    relay_log, relay, standing, ssl_context, directory = await asyncio.to_thread(prepare)
    astart = getattr(relay.copilot, "astart", None)
    start = getattr(relay.copilot, "start", None)
    if callable(astart):  # built off the loop, so not started yet
        await astart()
    elif callable(start):
        start()
    try:
        await relay.listen(bind, port, ssl_context=ssl_context)
    except BaseException:
        await relay.aclose()
        relay_log.close()
        if directory is not None:
            await asyncio.to_thread(directory.close)
        raise
    host = RunningHost(
        relay=relay, relay_log=relay_log, paths=paths, bind=bind, port=relay.port,
        public_host=public_host_for(bind, public_host), tls=ssl_context is not None,
        desk_token=standing[TokenKind.AGENT_DESK], lobby_token=standing[TokenKind.CUSTOMER_LOBBY],
        admin_token=standing[TokenKind.ADMIN], directory=directory,
    )
    relay.link_builder = lambda kind, token: host.link(
        "customer" if kind.link_role == "customer" else "agent", token)
    relay.on_revoked = host.reload_links
    await asyncio.to_thread((paths.data_dir / HOST_FILE).write_text, json.dumps({
        "url": host.url, "public_host": host.public_host, "port": host.port, "bind": bind,
        "tls": host.tls, "pid": os.getpid(), "started_at": time.time(),
    }, indent=2), "utf-8")
    log.info("host listening on %s (data in %s)", host.url, paths.data_dir)
    await asyncio.to_thread(make_private_tree, paths.data_dir)  # left readable by others
    # everything loaded so far (modules, the catalog, the index) lives as long as the
    # host, and so does most of what survives a full pass later: keep it out of the
    # cyclic collector's full passes, which otherwise scan it all and stall the relay
    # for 100+ ms while many connections are open (core/gcpolicy.py)
    host.collector = FreezingCollector(asyncio.get_running_loop())
    host.collector.start()
    host.stalls = stall_watch_from_environment(asyncio.get_running_loop())
    return host


class _Paceable(Protocol):
    name: str
    delay_s: float


def pace_offline_engine(copilot: object, settings: Settings) -> None:
    """Let the offline engine stream at a model's pace (``offline_delay_ms``, default 6).

    Unpaced, it writes a whole draft within a millisecond: the agent would never
    see what the product is about, a draft streaming into the editor. Every mode
    paces it here, the same way (an engine built with a delay is left alone; the
    co-pilot built directly, as tests do, streams unpaced).
    """
    provider: _Paceable | None = getattr(copilot, "provider", None)
    if getattr(provider, "name", None) != "offline" or getattr(provider, "delay_s", 1) != 0:
        return
    assert provider is not None
    extra = settings.extra if isinstance(settings.extra, dict) else {}
    try:
        delay_ms = float(extra.get("offline_delay_ms", OFFLINE_DELAY_MS))
    except (TypeError, ValueError):
        delay_ms = OFFLINE_DELAY_MS
    provider.delay_s = max(0.0, delay_ms) / 1000.0
    log.info("offline engine paced at %.0f ms per word", delay_ms)


#: ``Settings.extra`` key: false keeps the offline engine in the host process
ENGINE_PROCESS = "offline_engine_process"


def start_engine_process(copilot: object, paths: Paths, settings: Settings) -> None:
    """Give the offline engine a process of its own (issue 18), unless the settings say
    ``"offline_engine_process": false``.

    The engine's plan, script and translation (~4 ms of CPU a draft) then run outside
    the host process, off its GIL. The process starts in the background; until it is
    up, and while a lost one is started again (at most 3 times in 10 minutes: after
    that for good), the engine drafts in a thread of the host as before (log lines say
    so). The co-pilot's ``aclose`` stops it.
    """
    provider = getattr(copilot, "provider", None)
    if getattr(provider, "name", None) != "offline" or not hasattr(provider, "process") \
            or getattr(provider, "index", None) is None:
        return
    extra = settings.extra if isinstance(settings.extra, dict) else {}
    if extra.get(ENGINE_PROCESS, True) in (False, 0, "0", "false", "off", "no"):
        log.info("offline engine: in the host process (%s is off)", ENGINE_PROCESS)
        return
    from hitl_desktop.assistant.offline.process import EngineSpec, SupervisedEngine

    spec = EngineSpec(data_dir=str(paths.data_dir), knowledge_dir=settings.knowledge_dir,
                      config_dir=str(paths.config_dir),
                      max_results=int(settings.max_search_results))
    try:
        provider.process = SupervisedEngine(spec)  # type: ignore[union-attr]
    except Exception:
        log.exception("the offline engine's process could not start: drafting in the host "
                      "process")
        return
    log.info("offline engine: starting its own process")


def copilot_factory(
    paths: Paths, settings: Settings, *, provider: str | None = None, model: str | None = None
) -> CopilotFactory:
    """The co-pilot every mode runs: the engine from ``provider``/``model`` or settings.

    A co-pilot that fails to start is logged and replaced by a chat-only relay, so
    the host still serves and the agents' status bar says why there are no drafts —
    except for an invalid tool catalog: the host refuses to start rather than
    silently change shop policy (:class:`CatalogError` propagates).
    """
    if model:
        settings.model = model

    def make(outbox: SessionOutbox) -> Copilot:
        from hitl_desktop.host.copilot import build_copilot

        try:
            copilot = build_copilot(paths, settings, outbox, provider_override=provider)
        except CatalogError:
            raise
        except Exception:
            log.exception("the co-pilot could not start: the host relays chat only")
            return NullCopilot()
        pace_offline_engine(copilot, settings)
        start_engine_process(copilot, paths, settings)
        return copilot

    return make
