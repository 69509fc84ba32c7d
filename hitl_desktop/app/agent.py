"""``hitl-desktop agent [LINK]``: the representative's workspace window.

Wiring only, in order: QApplication, the window (when the link came on the command
line), the qasync loop (``app.qt``), the link from the join dialog otherwise, the
connection, the workspace model. Shutdown runs in
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

from hitl_desktop.app.qt import qt_app, run_qt
from hitl_desktop.core.links import InvalidLink, InviteLink

if TYPE_CHECKING:
    from hitl_desktop.client.connection import HostConnection
    from hitl_desktop.client.workspace import Workspace
    from hitl_desktop.ui.agent.window import AgentWindow

log = logging.getLogger(__name__)


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


async def switch_connection(workspace: Workspace, old: HostConnection,
                            link: InviteLink) -> HostConnection:
    """Leave the old link (its socket says goodbye), forget what it showed, and
    connect with ``link``: what File → Open another link… does once one is chosen."""
    from hitl_desktop.client.connection import HostConnection

    log.info("agent: switching to %s:%s", link.host, link.port)
    await old.aclose()
    connection = HostConnection(link, client_name="agent window")
    workspace.attach(connection)  # forgets the old link's sessions
    connection.open()
    return connection


NO_LINK = (
    "hitl-desktop agent: no invite link. Run `hitl-desktop agent "
    "hitl://HOST:PORT/agent#TOKEN` with the agent link your host shows "
    "(`hitl-desktop host --headless` prints it as agent_link).\n"
)


def run(args: argparse.Namespace) -> int:
    from hitl_desktop.config import resolve_paths

    log.info("agent: creating the application")
    qt_app("Agent workspace")
    link: InviteLink | None = None
    if getattr(args, "link", None):
        try:
            link = InviteLink.parse(args.link)
        except InvalidLink as exc:
            sys.stderr.write(f"hitl-desktop agent: cannot use this link: {exc}\n")
            return 2
    paths = resolve_paths(config_dir=getattr(args, "config_dir", None))
    shown = show_window(paths.config_dir) if link is not None else None

    async def main() -> int:
        import asyncio  # ~40 ms with ssl & co.: only once the window is on screen

        from hitl_desktop.client.connection import HostConnection

        nonlocal link
        if link is None:
            from hitl_desktop.ui.join_dialog import choose_link

            log.info("agent: no link given, asking for one")
            link = await choose_link("agent")
            if link is None:
                sys.stderr.write(NO_LINK)
                return 2
        if link.role != "agent":
            log.warning("agent: this is a %s link; the host decides what it may see", link.role)
        log.info("agent: link for %s:%s (tls=%s)", link.host, link.port, link.tls)
        workspace, window = shown or show_window(paths.config_dir)
        closed = asyncio.Event()
        window.closed.connect(closed.set)
        _close_on_signals(window)
        from hitl_desktop.core.tasks import TaskSupervisor
        from hitl_desktop.ui.join_dialog import choose_link

        log.info("agent: connecting")
        connection = HostConnection(link, client_name="agent window")
        workspace.attach(connection)
        connection.open()
        tasks = TaskSupervisor("agent window")

        async def switch_link() -> None:
            """File → Open another link…: the join dialog, then the new connection."""
            nonlocal connection
            chosen = await choose_link("agent", window)
            if chosen is None:
                return
            connection = await switch_connection(workspace, connection, chosen)

        def on_open_link() -> None:
            if not len(tasks):  # one join dialog at a time
                tasks.spawn(switch_link(), "open another link")

        window.open_link_requested.connect(on_open_link)
        await closed.wait()
        log.info("agent: shutting down")
        await tasks.aclose()
        workspace.flush()
        await connection.aclose()
        return 0

    return run_qt(main, app_name="Agent workspace")
