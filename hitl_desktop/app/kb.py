"""``hitl-desktop kb``: browse the knowledge base in a window (the local index)."""

from __future__ import annotations

import argparse
import asyncio
import logging
from pathlib import Path

from hitl_desktop.app.qt import run_qt
from hitl_desktop.config import Settings, resolve_paths

log = logging.getLogger(__name__)


def run(args: argparse.Namespace) -> int:
    from hitl_desktop.knowledge.articles import default_knowledge_dir
    from hitl_desktop.knowledge.index import KnowledgeIndex
    from hitl_desktop.ui.kb_browser import KbBrowserWindow, LocalKbSource
    from hitl_desktop.ui.wizard import index_path

    paths = resolve_paths(args.data_dir, args.config_dir).ensure()
    settings = Settings.load(paths)
    root = Path(settings.knowledge_dir) if settings.knowledge_dir else default_knowledge_dir()

    async def main() -> int:
        index = await asyncio.to_thread(KnowledgeIndex.open, root, index_path(paths))
        try:
            window = KbBrowserWindow(LocalKbSource(index), title=f"Knowledge base ({root})")
            closed = asyncio.Event()
            window.closed.connect(closed.set)
            window.show()
            window.browser.refresh()
            count = await index.worker.call(len, index)
            log.info("kb browser: %d articles from %s", count, root)
            await closed.wait()
            window.deleteLater()
        finally:
            await asyncio.to_thread(index.close)
        return 0

    return run_qt(main, app_name="HITL Desk knowledge base")
