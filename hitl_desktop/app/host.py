"""Host mode: run the relay (and, once wired, the co-pilot) headless or under a window.

``start_host`` is the reusable part: the demo mode and the host window call it
on their own event loop and get a :class:`RunningHost`. ``run`` is the CLI
entry point; with ``--headless`` it prints one JSON line with the links and
serves until SIGINT/SIGTERM, and never imports QtWidgets.

Links: the desk (agent), lobby (customer) and admin tokens are created on the
first start and their secrets are kept in ``host-links.json`` (mode 0600) in the
data dir, because the host must show the same links after every restart.
Per-session tokens are *not* stored anywhere in clear: they are shown once when
the session is created (``session new`` / ``session.create`` / the host window).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import importlib
import json
import logging
import os
import signal
import socket
import ssl
import sys
import time
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from hitl_desktop.config import Paths, Settings, resolve_paths
from hitl_desktop.core.links import InviteLink, LinkRole
from hitl_desktop.host.log import RelayLog
from hitl_desktop.host.relay import CopilotFactory, CreatedSession, Relay, RelayConfig
from hitl_desktop.host.tokens import TokenKind, Tokens

log = logging.getLogger(__name__)

LINKS_FILE = "host-links.json"
HOST_FILE = "host.json"
_STANDING = (TokenKind.AGENT_DESK, TokenKind.CUSTOMER_LOBBY, TokenKind.ADMIN)


def load_customer_names() -> dict[str, str]:
    """Customer id -> name from the shipped shop seed (for inbox summaries)."""
    try:
        raw = resources.files("hitl_desktop").joinpath("data/shop_seed.json").read_text("utf-8")
        return {c["id"]: c["name"] for c in json.loads(raw).get("customers", [])}
    except (OSError, ValueError, KeyError, TypeError):
        return {}


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
    """The desk, lobby and admin tokens: reused from ``host-links.json`` while still valid."""
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
            changed = True
        out[kind] = str(token)
    if changed:
        write_private(path, json.dumps({k.value: v for k, v in out.items()}, indent=2))
    return out


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
        self, customer_id: str | None = None, title: str | None = None
    ) -> CreatedSession:
        return self.relay.create_session(customer_id=customer_id, title=title)

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

    async def stop(self) -> None:
        await self.relay.aclose()
        self.relay_log.close()
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
    """Open the log, start listening, write ``host.json``; return the running host."""
    paths.ensure()
    ssl_context = make_ssl_context(tls_cert, tls_key)
    relay_log = RelayLog.open_in(paths.data_dir)
    tokens = Tokens(relay_log)
    standing = standing_tokens(paths.data_dir, tokens)
    cfg = config or RelayConfig()
    if cfg.greeting is None:
        cfg.greeting = settings.greeting
    names = load_customer_names()
    relay = Relay(relay_log, tokens, config=cfg, copilot_factory=copilot_factory,
                  customer_names=names.get)
    try:
        await relay.listen(bind, port, ssl_context=ssl_context)
    except BaseException:
        relay_log.close()
        raise
    host = RunningHost(
        relay=relay, relay_log=relay_log, paths=paths, bind=bind, port=relay.port,
        public_host=public_host_for(bind, public_host), tls=ssl_context is not None,
        desk_token=standing[TokenKind.AGENT_DESK], lobby_token=standing[TokenKind.CUSTOMER_LOBBY],
        admin_token=standing[TokenKind.ADMIN],
    )
    relay.link_builder = lambda kind, token: host.link(
        "customer" if kind.link_role == "customer" else "agent", token)
    (paths.data_dir / HOST_FILE).write_text(json.dumps({
        "url": host.url, "public_host": host.public_host, "port": host.port, "bind": bind,
        "tls": host.tls, "pid": os.getpid(), "started_at": time.time(),
    }, indent=2), "utf-8")
    log.info("host listening on %s (data in %s)", host.url, paths.data_dir)
    return host


def build_copilot_factory(
    args: argparse.Namespace, paths: Paths, settings: Settings
) -> CopilotFactory | None:
    """The co-pilot for ``host``: the engine from ``--provider``/``--model`` or settings."""
    from hitl_desktop.host.copilot import build_copilot

    if getattr(args, "model", None):
        settings.model = args.model
    override = getattr(args, "provider", None)
    return lambda outbox: build_copilot(paths, settings, outbox, provider_override=override)


async def serve_headless(args: argparse.Namespace, paths: Paths, settings: Settings) -> int:
    host = await start_host(
        paths, settings, bind=args.bind, port=args.port, public_host=args.public_host,
        tls_cert=args.tls_cert, tls_key=args.tls_key,
        copilot_factory=build_copilot_factory(args, paths, settings),
    )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError):  # Windows: Ctrl+C still raises
            loop.add_signal_handler(sig, stop.set)
    sys.stdout.write(json.dumps(host.info()) + "\n")
    sys.stdout.flush()
    advertiser = None
    if not getattr(args, "no_discovery", False):  # mDNS only when serving a LAN; never fatal
        from hitl_desktop.host.discovery import advertise_host

        advertiser = await advertise_host(bind=host.bind, port=host.port, tls=host.tls,
                                          lobby_link=host.lobby_link)
    try:
        await stop.wait()
    finally:
        log.info("shutting down")
        if advertiser is not None:
            await advertiser.aclose()
        await host.stop()
    return 0


def run(args: argparse.Namespace) -> int:
    if not args.headless:
        # imported by name: the window (and Qt) only load when a window is wanted
        window = importlib.import_module("hitl_desktop.app.host_window")
        return int(window.run_window(args))
    if getattr(args, "verbose", 0) <= 0:
        logging.getLogger("hitl_desktop").setLevel(logging.INFO)
    paths = resolve_paths(args.data_dir, args.config_dir).ensure()
    settings = Settings.load(paths)
    try:
        return asyncio.run(serve_headless(args, paths, settings))
    except OSError as exc:
        log.error("cannot start the host: %s", exc)
        return 1
    except ValueError as exc:
        log.error("%s", exc)
        return 2
