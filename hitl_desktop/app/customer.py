"""``hitl-desktop customer [LINK]``: the customer's chat window.

Wiring only, in order: QApplication, the qasync loop (``app.qt``), the link (from
the command line or the join dialog), the window, the connection, the chat model.
Shutdown runs in reverse: the window closes, the connection says goodbye, the loop
ends.
"""

from __future__ import annotations

import logging
import sys
from typing import TYPE_CHECKING

from hitl_desktop.app.qt import qt_app, run_qt
from hitl_desktop.core.links import InvalidLink, InviteLink

if TYPE_CHECKING:
    import argparse

    from hitl_desktop.ui.customer_window import CustomerWindow

log = logging.getLogger(__name__)

RESUME_TOKENS_FILE = "resume-tokens.json"


def show_window() -> CustomerWindow:
    """The customer window, on screen before the network stack loads (start time)."""
    from hitl_desktop.ui.customer_window import CustomerWindow

    window = CustomerWindow()
    window.show()
    return window


NO_LINK = (
    "hitl-desktop customer: no invite link. Run `hitl-desktop customer "
    "hitl://HOST:PORT/customer#TOKEN` with the link your support team sent you.\n"
)


def run(args: argparse.Namespace) -> int:
    log.info("customer: creating the application")
    app = qt_app("Support chat")
    link: InviteLink | None = None
    link_text = getattr(args, "link", None)
    if link_text:
        try:
            link = InviteLink.parse(link_text)
        except InvalidLink as exc:
            sys.stderr.write(f"hitl-desktop customer: cannot use this link: {exc}\n")
            return 2
        log.info("customer: showing the window")
        window: CustomerWindow | None = show_window()
        app.processEvents()  # paint it now; the client library loads next
    else:
        window = None  # the join dialog comes first

    async def main() -> int:
        nonlocal link, window
        if link is None:
            from hitl_desktop.ui.join_dialog import choose_link

            log.info("customer: no link given, asking for one")
            link = await choose_link("customer")
            if link is None:
                sys.stderr.write(NO_LINK)
                return 2
            window = show_window()
        assert window is not None
        log.info("customer: link for %s:%s (tls=%s)", link.host, link.port, link.tls)
        log.info("customer: loading the client library")
        import asyncio

        from hitl_desktop.client.chat import ChatModel
        from hitl_desktop.client.connection import HostConnection, ResumeTokenStore
        from hitl_desktop.config import resolve_paths

        paths = resolve_paths(config_dir=getattr(args, "config_dir", None))
        store = ResumeTokenStore(paths.config_dir / RESUME_TOKENS_FILE)
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
        from hitl_desktop.core.tasks import TaskSupervisor
        from hitl_desktop.ui.join_dialog import choose_link

        tasks = TaskSupervisor("customer window")

        async def switch_link() -> None:
            """"Open another link…" after a wrong or revoked link: the join dialog,
            then a new chat on the new link in the same window."""
            nonlocal connection
            assert window is not None
            chosen = await choose_link("customer", window)
            if chosen is None:
                return
            log.info("customer: switching to %s:%s", chosen.host, chosen.port)
            await connection.aclose()
            window.unbind()
            connection = HostConnection(chosen, client_name="customer window",
                                        resume_store=store)
            window.bind(ChatModel(connection), connection)
            connection.open()

        def on_open_link() -> None:
            if not len(tasks):  # one join dialog at a time
                tasks.spawn(switch_link(), "open another link")

        window.open_link_requested.connect(on_open_link)
        await closed.wait()
        log.info("customer: shutting down")
        await tasks.aclose()
        await connection.aclose()
        return 0

    return run_qt(main, app_name="Support chat")
