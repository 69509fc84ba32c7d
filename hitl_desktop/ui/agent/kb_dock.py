"""The "Knowledge base" dock: the shared KB browser fed through the workspace.

``ui.kb_browser`` (host-window work) is the widget; here it gets a remote source
(``kb.search`` / ``article.get`` over the workspace) and lists articles the first
time it can: when the connection is up and an asyncio loop is running.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import TYPE_CHECKING

from PySide6.QtCore import Qt

from hitl_desktop.client.workspace import Workspace

if TYPE_CHECKING:
    from hitl_desktop.ui.kb_browser import KbBrowser

log = logging.getLogger(__name__)


def make_kb_browser(workspace: Workspace,
                    open_article: Callable[[str, str], None]) -> KbBrowser | None:
    """A KB browser widget over the workspace's kb.search/article.get, or None."""
    try:
        from hitl_desktop.ui.kb_browser import KbBrowser, SignalKbSource
    except ImportError as exc:
        log.info("no KB browser available (%s); the agent window has no KB dock", exc)
        return None
    browser = KbBrowser(SignalKbSource.from_workspace(workspace))
    browser.split.setOrientation(Qt.Orientation.Vertical)
    browser.setObjectName("kbBrowser")
    listed = False

    def list_once(state: str = "") -> None:
        nonlocal listed
        if listed or workspace.connection_state != "connected":
            return
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            return  # no asyncio loop (a test without qasync): nothing to fetch with
        listed = True
        browser.refresh()

    workspace.connection_state_changed.connect(list_once)
    list_once()
    return browser
