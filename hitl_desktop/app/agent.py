"""``hitl-desktop agent [LINK]``: the representative's workspace window.

Wiring only, in order: QApplication, the link (command line or join dialog), the
qasync loop, the connection, the workspace model, the window. Shutdown runs in
reverse: the window saves its layout and closes, the connection says goodbye,
the loop ends.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import signal
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from PySide6.QtCore import QTimer
from PySide6.QtWidgets import QWidget

from hitl_desktop.app.customer import ask_for_link, qt_app, run_on_qt_loop
from hitl_desktop.core.links import InvalidLink, InviteLink

if TYPE_CHECKING:
    from hitl_desktop.client.workspace import Workspace
    from hitl_desktop.ui.agent.window import AgentWindow

log = logging.getLogger(__name__)


def _link_from(args: argparse.Namespace) -> InviteLink | None:
    """The invite link from the command line, else from the join dialog; None = give up."""
    text = getattr(args, "link", None)
    if text:
        return InviteLink.parse(text)
    log.info("agent: no link given, asking for one")
    return ask_for_link("agent")


def _close_on_signals(window: QWidget) -> None:
    """SIGTERM/SIGINT close the window, so the layout is saved and the socket said goodbye.

    Python runs signal handlers only between bytecodes; while Qt idles in C++ a
    light timer gives it the chance.
    """

    def handler(signum: int, _frame: object) -> None:
        log.info("agent: signal %d, closing", signum)
        QTimer.singleShot(0, window.close)

    for sig in (signal.SIGTERM, signal.SIGINT):
        with contextlib.suppress(ValueError, OSError):  # not the main thread / platform
            signal.signal(sig, handler)
    wake = QTimer(window)
    wake.setInterval(250)
    wake.timeout.connect(lambda: None)
    wake.start()


def show_window(config_dir: Path | None = None) -> tuple[Workspace, AgentWindow]:
    """The model and the window, on screen before the network stack (websockets, the
    pydantic protocol models) is imported: the representative sees the app at once."""
    from hitl_desktop.client.workspace import Workspace
    from hitl_desktop.ui.agent.window import AgentWindow

    log.info("agent: building the workspace model")
    workspace = Workspace()
    log.info("agent: building the window")
    window = AgentWindow(workspace, config_dir=config_dir)
    window.show()
    log.info("agent: window up")
    return workspace, window


def run(args: argparse.Namespace) -> int:
    from hitl_desktop.config import resolve_paths

    log.info("agent: creating the application")
    app = qt_app("Agent workspace")
    try:
        link = _link_from(args)
    except InvalidLink as exc:
        sys.stderr.write(f"hitl-desktop agent: cannot use this link: {exc}\n")
        return 2
    if link is None:
        sys.stderr.write(
            "hitl-desktop agent: no invite link. Run `hitl-desktop agent "
            "hitl://HOST:PORT/agent#TOKEN` with the agent link your host shows "
            "(`hitl-desktop host --headless` prints it as agent_link).\n")
        return 2
    if link.role != "agent":
        log.warning("agent: this is a %s link; the host decides what it may see", link.role)
    log.info("agent: link for %s:%s (tls=%s)", link.host, link.port, link.tls)
    paths = resolve_paths(config_dir=getattr(args, "config_dir", None))
    workspace, window = show_window(paths.config_dir)
    import asyncio  # ~40 ms with ssl & co.: only once the window is on screen

    closed = asyncio.Event()
    window.closed.connect(closed.set)
    _close_on_signals(window)

    async def main() -> int:
        from hitl_desktop.client.connection import HostConnection

        log.info("agent: connecting")
        connection = HostConnection(link, client_name="agent window")
        workspace.attach(connection)
        connection.open()
        await closed.wait()
        log.info("agent: shutting down")
        workspace.flush()
        await connection.aclose()
        return 0

    return run_on_qt_loop(app, main)
