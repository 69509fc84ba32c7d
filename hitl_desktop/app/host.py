"""``hitl-desktop host``: the host headless, or under a window (``app.host_window``).

With ``--headless`` it prints one JSON line with the links and serves until
SIGINT/SIGTERM, and never imports QtWidgets. The services themselves (relay,
links, co-pilot) are built by :mod:`hitl_desktop.app.services`, the same way
for every mode.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import signal
import sys

from hitl_desktop.app.services import copilot_factory, start_host
from hitl_desktop.config import Paths, Settings, resolve_paths

log = logging.getLogger(__name__)


async def serve_headless(args: argparse.Namespace, paths: Paths, settings: Settings) -> int:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):  # first: a signal during start-up stops too
        with contextlib.suppress(NotImplementedError):  # Windows: Ctrl+C still raises
            loop.add_signal_handler(sig, stop.set)
    host = await start_host(
        paths, settings, bind=args.bind, port=args.port, public_host=args.public_host,
        tls_cert=args.tls_cert, tls_key=args.tls_key,
        copilot_factory=copilot_factory(paths, settings, provider=getattr(args, "provider", None),
                                        model=getattr(args, "model", None)),
    )
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
        from hitl_desktop.app.host_window import run_window  # Qt loads only for a window

        return run_window(args)
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
