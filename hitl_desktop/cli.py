"""Command line: one sub-command per mode. Each mode lives in ``hitl_desktop.app``
and is imported only when chosen, so ``host --headless`` never loads QtWidgets."""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
from collections.abc import Sequence

from hitl_desktop import __version__

PROVIDERS = ("auto", "offline", "openai", "compatible")


def _add_paths(p: argparse.ArgumentParser) -> None:
    p.add_argument("--data-dir", help="where sessions, the shop database and indexes live")
    p.add_argument("--config-dir", help="where settings live (default: next to the data)")


def _add_engine(p: argparse.ArgumentParser) -> None:
    p.add_argument("--provider", choices=PROVIDERS, default=None,
                   help="assistant engine (default: openai when an API key is configured, "
                        "else the offline assistant)")
    p.add_argument("--model", default=None, help="model name for openai/compatible providers")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="hitl-desktop",
        description="HITL Desk: an AI co-pilot drafts, a human support representative decides.",
    )
    parser.add_argument("--version", action="version", version=f"hitl-desktop {__version__}")
    parser.add_argument("-v", "--verbose", action="count", default=0, help="more logging")
    sub = parser.add_subparsers(dest="mode", metavar="MODE", required=True)

    host = sub.add_parser("host", help="run the host: relay, assistant, shop database")
    host.add_argument("--headless", action="store_true", help="no window; print links as JSON")
    host.add_argument("--bind", default="127.0.0.1",
                      help="address to listen on (0.0.0.0 to serve a LAN; default 127.0.0.1)")
    host.add_argument("--port", type=int, default=8765, help="port (0 = any free port)")
    host.add_argument("--public-host", default=None,
                      help="host name other PCs should use in links (default: a LAN address)")
    host.add_argument("--tls-cert", default=None, help="PEM certificate: serve wss://")
    host.add_argument("--tls-key", default=None, help="PEM private key for --tls-cert")
    host.add_argument("--no-discovery", action="store_true", help="do not advertise over mDNS")
    _add_paths(host)
    _add_engine(host)

    session = sub.add_parser("session", help="manage sessions of a host's data dir")
    session_sub = session.add_subparsers(dest="session_cmd", metavar="CMD", required=True)
    new = session_sub.add_parser("new", help="create a session and print its links as JSON")
    new.add_argument("--customer", "--customer-id", dest="customer_id", default=None,
                     help="issue the customer link for this shop customer (e.g. CUST1002): "
                          "the session starts verified; without it the customer is anonymous")
    new.add_argument("--title", default=None)
    new.add_argument("--host-address", default=None,
                     help="address for the links (default: what the running host announced)")
    new.add_argument("--port", type=int, default=None)
    _add_paths(new)
    lst = session_sub.add_parser(
        "list", help="list sessions as JSON, most recently active first (100 per page)")
    lst.add_argument("--limit", type=int, default=100, help="sessions per page (0: all)")
    lst.add_argument("--offset", type=int, default=0, help="skip this many (the next page)")
    lst.add_argument("--open", dest="open_only", action="store_true",
                     help="only sessions that are still open")
    _add_paths(lst)
    revoke = session_sub.add_parser(
        "revoke", help="revoke a session's customer and agent links (live ones close at once)")
    revoke.add_argument("session_id", help="the session id (s_...)")
    _add_paths(revoke)

    links = sub.add_parser("links", help="manage the host's desk, lobby and admin links")
    links_sub = links.add_subparsers(dest="links_cmd", metavar="CMD", required=True)
    rotate = links_sub.add_parser(
        "rotate", help="replace a link (e.g. one that leaked): the old one stops working "
                       "at once, also on a running host; prints the new link as JSON")
    rotate.add_argument("which", choices=("desk", "lobby", "admin"))
    _add_paths(rotate)

    rep = sub.add_parser("rep", help="manage representatives: personal desk links with names")
    rep_sub = rep.add_subparsers(dest="rep_cmd", metavar="CMD", required=True)
    rep_add = rep_sub.add_parser(
        "add", help="make a personal desk link for NAME (shown once) and print it as JSON")
    rep_add.add_argument("name", help="the representative's name, shown to colleagues")
    rep_add.add_argument("--host-address", default=None,
                         help="address for the link (default: what the running host announced)")
    rep_add.add_argument("--port", type=int, default=None)
    _add_paths(rep_add)
    rep_list = rep_sub.add_parser("list", help="list the representatives as JSON")
    _add_paths(rep_list)
    rep_remove = rep_sub.add_parser(
        "remove", help="revoke a representative's personal link (live windows close at once)")
    rep_remove.add_argument("who", help="the representative's name or rep id")
    _add_paths(rep_remove)

    for role in ("customer", "agent"):
        p = sub.add_parser(role, help=f"open the {role} window")
        p.add_argument("link", nargs="?", default=None,
                       help="invite link (hitl://...); without it a join dialog opens")
        p.add_argument("--config-dir", default=None)

    open_ = sub.add_parser("open", help="open an invite link in the right window (URL handler)")
    open_.add_argument("link", help="hitl://HOST:PORT/customer#... or .../agent#...")
    open_.add_argument("--config-dir", default=None)

    demo = sub.add_parser("demo", help="host + customer window + agent window on this PC")
    demo.add_argument("--screenshot", metavar="DIR", default=None,
                      help="save a PNG of each window once the UI is up")
    demo.add_argument("--quit-after", type=float, metavar="SECONDS", default=None,
                      help="exit after this many seconds")
    demo.add_argument("--script", action="store_true",
                      help="play the end-to-end flow by itself (for screenshots and smoke tests)")
    _add_paths(demo)
    _add_engine(demo)

    setup = sub.add_parser("setup", help="wizard: API key, model, vector store upload")
    setup.add_argument("--offline", action="store_true",
                       help="no window, no key: build the local index for the offline "
                            "assistant, save it as the engine, and exit")
    _add_paths(setup)

    kb = sub.add_parser("kb", help="browse the knowledge base in a window")
    _add_paths(kb)

    from hitl_desktop.app.report import add_parser as add_report

    add_report(sub)
    return parser


def configure_logging(verbosity: int) -> None:
    """-v: INFO, -vv: DEBUG. The websockets library stays at WARNING (-vvv: INFO): it logs
    every connection at INFO (a flood would flood the log) and the start of every frame
    at DEBUG, and a ``hello`` frame carries the invite token's secret."""
    level = logging.WARNING if verbosity <= 0 else logging.INFO if verbosity == 1 else logging.DEBUG
    logging.basicConfig(
        level=level, stream=sys.stderr,
        format="%(asctime)s %(levelname)-7s %(name)s: %(message)s",
    )
    logging.getLogger("websockets").setLevel(logging.INFO if verbosity >= 3 else logging.WARNING)


MODES = {
    "host": "hitl_desktop.app.host",
    "session": "hitl_desktop.app.sessions_cli",
    "links": "hitl_desktop.app.sessions_cli",
    "rep": "hitl_desktop.app.sessions_cli",
    "customer": "hitl_desktop.app.customer",
    "agent": "hitl_desktop.app.agent",
    "open": "hitl_desktop.app.open_link",
    "demo": "hitl_desktop.app.demo",
    "setup": "hitl_desktop.app.setup",
    "kb": "hitl_desktop.app.kb",
    "report": "hitl_desktop.app.report",
}


def needs_window(args: argparse.Namespace) -> bool:
    """Whether this mode opens a window (the demo decides for itself: it can run without)."""
    if args.mode in ("customer", "agent", "open", "kb"):
        return True
    if args.mode == "host":
        return not args.headless
    if args.mode == "setup":
        return not getattr(args, "offline", False)
    return False


# what a window mode does without a display, when it can (said with "cannot open a window")
NO_WINDOW_WAY: dict[str, str] = {
    "host": "Without a display: `hitl-desktop host --headless` runs the host.",
    "setup": "Without a display: `hitl-desktop setup --offline` sets up the offline assistant.",
}


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    configure_logging(args.verbose)
    if needs_window(args):
        from hitl_desktop.app.display import display_problem

        problem = display_problem()
        if problem is not None:
            # one clear sentence instead of Qt's abort (rc 134) blaming libxcb-cursor0,
            # and, where one exists, the way to the same thing without a window
            hint = NO_WINDOW_WAY.get(args.mode)
            sys.stderr.write(f"hitl-desktop {args.mode}: cannot open a window: {problem}"
                             + (f" {hint}" if hint else "") + "\n")
            return 2
    from hitl_desktop.store.sqlite_files import DamagedDatabase

    module = importlib.import_module(MODES[args.mode])
    try:
        return int(module.run(args))
    except KeyboardInterrupt:
        return 130
    except DamagedDatabase as exc:  # one sentence with the path, not a traceback
        sys.stderr.write(f"hitl-desktop {args.mode}: {exc}\n")
        return 2
