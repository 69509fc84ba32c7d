"""``hitl-desktop customer [LINK]``: the customer's chat window.

Wiring only, in order: QApplication, the link (from the command line or the join
dialog), the qasync loop, the connection, the chat model, the window. Shutdown
runs in reverse: the window closes, the connection says goodbye, the loop ends.
"""

from __future__ import annotations

import importlib
import logging
import sys
from collections.abc import Callable, Coroutine
from typing import TYPE_CHECKING, Any

from PySide6.QtWidgets import QApplication

from hitl_desktop.core.links import InvalidLink, InviteLink

if TYPE_CHECKING:
    import argparse

    from hitl_desktop.ui.customer_window import CustomerWindow

log = logging.getLogger(__name__)

RESUME_TOKENS_FILE = "resume-tokens.json"


def qt_app(name: str) -> QApplication:
    """The process's QApplication, styled (created on first use)."""
    from hitl_desktop.ui import theme

    app = QApplication.instance()
    if not isinstance(app, QApplication):
        app = QApplication([sys.argv[0] if sys.argv else "hitl-desktop"])
        app.setApplicationName("HITL Desk")
        app.setApplicationDisplayName(name)
        app.setOrganizationName("HITL Desk")
        app.setDesktopFileName("hitl-desktop")
    theme.apply_app_style(app)
    return app


def run_on_qt_loop(app: QApplication, main: Callable[[], Coroutine[Any, Any, int]]) -> int:
    """Run ``main()`` on a qasync loop driven by Qt's event loop; its result is the exit code.

    Closing the last window must not stop Qt's loop under our feet (the coroutine
    still has to shut down cleanly), so quitting is left to ``main``.
    """
    import asyncio

    import qasync

    app.setQuitOnLastWindowClosed(False)
    loop = qasync.QEventLoop(app)
    asyncio.set_event_loop(loop)
    try:
        with loop:
            return int(loop.run_until_complete(main()))
    finally:
        asyncio.set_event_loop(None)


def ask_for_link(role: str) -> InviteLink | None:
    """The join dialog (HOST-WINDOW's ``ui.join_dialog``), run before the asyncio loop."""
    try:
        dialog = importlib.import_module("hitl_desktop.ui.join_dialog")
    except ImportError:
        log.info("no join dialog in this build")
        return None
    ask = getattr(dialog, "ask_for_link", None) or getattr(dialog, "ask_link", None)
    if ask is None:
        log.warning("ui.join_dialog has no ask_for_link(role)")
        return None
    result = ask(role)
    if result is None or isinstance(result, InviteLink):
        return result
    return InviteLink.parse(str(result))


def show_window() -> CustomerWindow:
    """The customer window, on screen before the network stack loads (start time)."""
    from hitl_desktop.ui.customer_window import CustomerWindow

    window = CustomerWindow()
    window.show()
    return window


def run(args: argparse.Namespace) -> int:
    log.info("customer: creating the application")
    app = qt_app("Support chat")
    link_text = getattr(args, "link", None)
    if link_text:
        try:
            link = InviteLink.parse(link_text)
        except InvalidLink as exc:
            sys.stderr.write(f"hitl-desktop customer: cannot use this link: {exc}\n")
            return 2
    else:
        log.info("customer: no link given, asking for one")
        try:
            asked = ask_for_link("customer")
        except InvalidLink as exc:
            sys.stderr.write(f"hitl-desktop customer: cannot use this link: {exc}\n")
            return 2
        if asked is None:
            sys.stderr.write(
                "hitl-desktop customer: no invite link. Run `hitl-desktop customer "
                "hitl://HOST:PORT/customer#TOKEN` with the link your support team sent you.\n"
            )
            return 2
        link = asked
    log.info("customer: link for %s:%s (tls=%s)", link.host, link.port, link.tls)
    log.info("customer: showing the window")
    window = show_window()
    app.processEvents()  # paint it now; the client library loads next

    log.info("customer: loading the client library")
    import asyncio

    from hitl_desktop.client.chat import ChatModel
    from hitl_desktop.client.connection import HostConnection, ResumeTokenStore
    from hitl_desktop.config import resolve_paths

    paths = resolve_paths(config_dir=getattr(args, "config_dir", None))
    store = ResumeTokenStore(paths.config_dir / RESUME_TOKENS_FILE)

    async def main() -> int:
        log.info("customer: connecting")
        connection = HostConnection(link, client_name="customer window", resume_store=store)
        chat = ChatModel(connection)
        window.bind(chat, connection)
        closed = asyncio.Event()
        window.closed.connect(closed.set)
        if not window.isVisible():  # closed while we were loading
            return 0
        connection.open()
        log.info("customer: window up")
        await closed.wait()
        log.info("customer: shutting down")
        await connection.aclose()
        return 0

    return run_on_qt_loop(app, main)
