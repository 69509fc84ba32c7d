"""The one Qt start-up every windowed mode uses (customer, agent, demo, host window,
setup, knowledge base).

:func:`qt_app` creates (or reuses) the styled QApplication — the customer and agent
modes call it early to put a window on screen before the network stack loads;
:func:`run_qt` then runs a coroutine on a qasync loop driven by Qt, with the
:class:`GuiThreadCollector` installed, and returns its exit code. No mode builds
its own QApplication or loop.
"""

from __future__ import annotations

import gc
import logging
import sys
from collections.abc import Callable, Coroutine
from typing import Any

from PySide6.QtCore import QTimer
from PySide6.QtWidgets import QApplication

log = logging.getLogger(__name__)


def qt_app(name: str = "HITL Desk") -> QApplication:
    """The process's QApplication, named and styled (created on first use)."""
    from hitl_desktop.ui import theme

    app = QApplication.instance()
    if not isinstance(app, QApplication):
        app = QApplication([sys.argv[0] if sys.argv else "hitl-desktop"])
        app.setApplicationName("HITL Desk")
        app.setOrganizationName("HITL Desk")
        app.setDesktopFileName("hitl-desktop")
    app.setApplicationDisplayName(name)
    theme.apply_app_style(app)
    return app


def run_qt(main: Callable[[], Coroutine[Any, Any, int]], *, app_name: str = "HITL Desk") -> int:
    """Run ``main()`` on a qasync loop inside the QApplication; its result is the exit code.

    Closing the last window must not stop Qt's loop under our feet (the coroutine
    still has to shut down cleanly), so quitting is left to ``main``.
    """
    import asyncio  # with ssl & co.: only once a window can be on screen

    import qasync

    app = qt_app(app_name)
    app.setQuitOnLastWindowClosed(False)
    collector = GuiThreadCollector()
    loop = qasync.QEventLoop(app)
    asyncio.set_event_loop(loop)
    try:
        with loop:
            return int(loop.run_until_complete(main()))
    finally:
        asyncio.set_event_loop(None)
        collector.stop()


class GuiThreadCollector:
    """Runs Python's cyclic GC on the GUI thread only.

    Why: with automatic GC, a collection can start in any thread that allocates
    (``asyncio.to_thread`` workers, the stores' threads), and Qt objects caught in
    reference cycles would then be destroyed there ("Timers cannot be stopped from
    another thread", or a crash). Collecting from a Qt timer keeps every
    destruction on the GUI thread.
    """

    def __init__(self, interval_ms: int = 500) -> None:
        self.thresholds = gc.get_threshold()
        self._was_enabled = gc.isenabled()
        gc.disable()
        self.timer = QTimer()
        self.timer.setInterval(interval_ms)
        self.timer.timeout.connect(self.check)
        self.timer.start()

    def check(self) -> None:
        counts = gc.get_count()
        gen = -1
        for i in range(3):
            if counts[i] > self.thresholds[i]:
                gen = i
        if gen >= 0:
            gc.collect(gen)

    def stop(self) -> None:
        self.timer.stop()
        gc.collect()
        if self._was_enabled:
            gc.enable()

