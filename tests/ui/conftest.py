"""UI test set-up: async tests run inside Qt's event loop (qasync), as the app does.

pytest-asyncio 1.5 asks the ``pytest_asyncio_loop_factories`` hook for the loops
to run async tests in; returning a factory for ``qasync.QEventLoop(app)`` makes
every coroutine test share one thread and one loop with the widgets, so signals,
timers and painting behave exactly as in the real windows. Never call
``qtbot.wait*`` from inside such a test: a nested Qt loop loses asyncio tasks.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest
import qasync
from PySide6.QtWidgets import QApplication

from hitl_desktop.app.qt import GuiThreadCollector
from hitl_desktop.client.connection import HostConnection
from hitl_desktop.client.workspace import Workspace
from hitl_desktop.core.links import InviteLink
from hitl_desktop.ui.agent.window import AgentWindow
from tests.support.host import running_host
from tests.ui.agent_feed import Feed, Sent, summary, welcome

__all__ = ["agent_window_on", "dark_palette", "running_host", "until"]


def qt_app() -> QApplication:
    """The one QApplication (pytest-qt's ``qapp`` reuses it)."""
    app = QApplication.instance()
    if app is None:
        app = QApplication(["hitl-desktop-tests"])
    assert isinstance(app, QApplication)
    # closing a test's last window must not stop the loop the test runs in
    app.setQuitOnLastWindowClosed(False)
    return app


@pytest.fixture(scope="session", autouse=True)
def gui_thread_gc() -> Iterator[None]:
    """Python's cyclic GC on the GUI thread only, as every windowed mode runs
    (``app.qt.run_qt``): the stores' and ``to_thread`` workers allocate too, and a
    collection there would destroy Qt objects from the wrong thread (a crash)."""
    qt_app()
    collector = GuiThreadCollector()
    yield
    collector.stop()


def _qasync_loop() -> asyncio.AbstractEventLoop:
    loop: asyncio.AbstractEventLoop = qasync.QEventLoop(qt_app())
    return loop


def pytest_asyncio_loop_factories(
    config: pytest.Config, item: pytest.Item
) -> Mapping[str, Callable[[], asyncio.AbstractEventLoop]]:
    return {"qasync": _qasync_loop}


async def until(predicate: Callable[[], object], within: float = 10.0, what: str = "") -> None:
    """Await (never block) until ``predicate()`` is truthy, letting Qt and asyncio run."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while not predicate():
        if loop.time() > deadline:
            raise AssertionError(f"timed out after {within}s waiting for {what or predicate}")
        await asyncio.sleep(0.01)


# ------------------------------------------------- an agent workspace fed by hand
# (a module that needs another start defines its own ``ws``; pytest takes the nearest)


@pytest.fixture
def sent() -> Sent:
    return Sent()


@pytest.fixture
def ws(sent: Sent) -> Workspace:
    model = Workspace(send=sent)
    model.apply_welcome(welcome(summary("s1", "Alex Morgan"),
                                summary("s2", "Priya Shah", customer_id="CUST1002")))
    model.select_session("s1")
    return model


@pytest.fixture
def feed(ws: Workspace) -> Feed:
    return Feed(ws, "s1")


@contextlib.asynccontextmanager
async def agent_window_on(link: str, qtbot: Any, config_dir: Path, *,
                          client_name: str = "test agent",
                          ) -> AsyncIterator[tuple[HostConnection, Workspace, AgentWindow]]:
    """The production stack (HostConnection -> Workspace -> AgentWindow) on ``link``,
    shown and connected; closed again on the way out."""
    conn = HostConnection(InviteLink.parse(link), client_name=client_name)
    ws = Workspace()
    ws.attach(conn)
    window = AgentWindow(ws, config_dir=config_dir)
    qtbot.addWidget(window)
    window.show()
    conn.open()
    try:
        async with asyncio.timeout(5):
            await conn.wait_connected()
        yield conn, ws, window
    finally:
        window.close()
        await conn.aclose()


@contextlib.contextmanager
def dark_palette(app: QApplication) -> Iterator[None]:
    """A dark system palette for the block (the colours ui.theme keys on), then back."""
    from PySide6.QtGui import QColor, QPalette

    before = app.palette()
    dark = QPalette(before)
    for role, color in ((QPalette.ColorRole.Window, "#1b1f24"),
                        (QPalette.ColorRole.Base, "#15181c"),
                        (QPalette.ColorRole.Text, "#e6e9ed"),
                        (QPalette.ColorRole.WindowText, "#e6e9ed")):
        dark.setColor(role, QColor(color))
    try:
        app.setPalette(dark)
        QApplication.processEvents()
        yield
    finally:
        app.setPalette(before)
        QApplication.processEvents()
