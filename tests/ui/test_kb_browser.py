"""The KB browser over the local index, and over a real host through the agent workspace."""

from __future__ import annotations

import asyncio
import gc
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from hitl_desktop.client.connection import HostConnection
from hitl_desktop.client.workspace import Workspace
from hitl_desktop.config import resolve_paths
from hitl_desktop.core.links import InviteLink
from hitl_desktop.knowledge.articles import default_knowledge_dir
from hitl_desktop.knowledge.index import KnowledgeIndex
from hitl_desktop.ui.kb_browser import (
    KbBrowserWindow,
    KbSource,
    LocalKbSource,
    SignalKbSource,
    article_id_from_href,
    make_kb_dock,
)
from tests.conftest import REPO
from tests.ui.conftest import running_host, until


@pytest.fixture(autouse=True)
def collect_on_gui_thread() -> Iterator[None]:
    yield
    gc.collect()  # Qt objects in cycles die here, on the GUI thread, not on a worker


def test_links_between_articles_map_to_ids() -> None:
    assert article_id_from_href("../faq/return-policy.md", "kb") == "faq/return-policy"
    assert article_id_from_href("refunds.md#when", "faq") == "faq/refunds"
    assert article_id_from_href("https://example.com/x.md", "faq") is None
    assert article_id_from_href("https://example.com/", "faq") is None


async def test_local_browser_lists_searches_filters_and_renders(qtbot: object,
                                                                tmp_path: Path) -> None:
    index = await asyncio.to_thread(KnowledgeIndex.open, default_knowledge_dir(),
                                    tmp_path / "idx.sqlite3")
    total = await index.worker.call(len, index)
    source = LocalKbSource(index)
    assert isinstance(source, KbSource)
    window = KbBrowserWindow(source)
    b = window.browser
    window.show()
    try:
        b.refresh()
        await until(lambda: len(b.listed_ids()) == total, what="full listing")
        assert {i.split("/")[0] for i in b.listed_ids()} == {"kb", "faq"}
        assert b.count.text() == f"{total} articles"

        b.query.setText("how do I cancel my order")  # debounced search
        await until(lambda: b.listed_ids()[:1] == ["faq/cancel-order"], what="search")
        assert "match" in b.count.text()
        b.results.setCurrentRow(0)
        await until(lambda: b.current is not None and b.current.article_id == "faq/cancel-order",
                    what="article shown")
        assert b.title.text() == "How to cancel an order"
        text = b.view.toPlainText()
        assert "pending" in text and "processing" in text
        assert "**" not in text and "##" not in text  # rendered, not raw Markdown
        assert b.badge.text() == "FAQ"

        b.kind.setCurrentIndex(1)  # knowledge base only
        await until(lambda: b.listed_ids() and all(i.startswith("kb/") for i in b.listed_ids()),
                    what="kind filter")

        b.query.setText("zzqxv nonsense")
        await until(lambda: b.listed_ids() == [], what="no results")
        assert "Nothing matches" in b.count.text()

        b.open_article("faq/does-not-exist")
        await until(lambda: b.title.text() == "Article not found", what="missing article")
    finally:
        window.close()
        window.deleteLater()
        await asyncio.to_thread(index.close)


async def test_remote_browser_through_the_workspace_and_a_real_host(qtbot: object,
                                                                    tmp_path: Path) -> None:
    resolve_paths().ensure()
    async with running_host(tmp_path / "host", copilot=True) as host:
        conn = HostConnection(InviteLink.parse(host.desk_link), client_name="kb test")
        workspace = Workspace()
        workspace.attach(conn)
        conn.open()
        await asyncio.wait_for(conn.wait_connected(), 10)
        source = SignalKbSource.from_workspace(workspace, timeout=5)
        dock = make_kb_dock(source)
        b = dock.browser
        dock.show()
        try:
            await until(lambda: len(b.listed_ids()) > 20, what="remote listing")
            b.query.setText("refund")
            await until(lambda: "faq/refunds" in b.listed_ids()[:3], what="remote search")
            b.open_article("faq/refunds")
            await until(lambda: b.current is not None and b.current.article_id == "faq/refunds",
                        what="remote article")
            assert "500" in b.view.toPlainText()  # the refund limit the policy states
            source.timeout = 0.5  # the host answers an unknown id with an error frame
            missing = await source.article("faq/nope")
            assert missing is None
        finally:
            dock.close()
            dock.deleteLater()
            await conn.aclose()


pytestmark = pytest.mark.qt_log_ignore("does not support propagateSizeHints")


def test_kb_command_opens_the_window(tmp_path: Path) -> None:
    """``hitl-desktop kb`` in a real subprocess: the window comes up over the local index."""
    env = {**os.environ, "QT_QPA_PLATFORM": "offscreen", "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "hitl_desktop", "-v", "kb", "--data-dir", str(tmp_path / "d")],
        cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )
    try:
        assert proc.stdout is not None
        deadline = time.monotonic() + 30
        seen = ""
        while time.monotonic() < deadline:
            line = proc.stdout.readline()
            if not line:
                break
            seen += line
            if "kb browser:" in line:
                break
        assert "kb browser: " in seen and "articles from" in seen, seen
        assert "Traceback" not in seen
        assert proc.poll() is None  # still running: the window is up
        assert (tmp_path / "d" / "knowledge_index.sqlite3").exists()
    finally:
        proc.terminate()
        proc.wait(10)


async def test_the_kb_window_at_1366x768_names_every_article_in_full(
        qtbot: object, tmp_path: Path) -> None:
    """Under Xvfb at 1366x768 (audit9) most titles were cut ("Procedure - delivery
    problems an…") and hovering showed only the snippet: the list now gets a third of
    the width, and a hover names the full title above its snippet."""
    from PySide6.QtGui import QFont, QFontMetrics

    index = await asyncio.to_thread(KnowledgeIndex.open, default_knowledge_dir(),
                                    tmp_path / "idx.sqlite3")
    total = await index.worker.call(len, index)
    window = KbBrowserWindow(LocalKbSource(index))
    window.resize(1040, 700)  # its size on a 1366x768 screen
    b = window.browser
    window.show()
    try:
        b.refresh()
        await until(lambda: len(b.listed_ids()) == total, what="full listing")
        # a third of the window for the list (it had 2/7: 28 %), and every title a
        # hover away
        assert b.results.width() >= window.width() // 3 - 20, b.results.width()
        bold = QFont(b.results.font())
        bold.setBold(True)
        room = b.results.viewport().width() - 2 * 8 - 4  # the delegate's text width
        cut = [b.results.item(i).text() for i in range(b.results.count())
               if QFontMetrics(bold).horizontalAdvance(b.results.item(i).text()) > room]
        assert len(cut) <= 3, cut
        for i in range(b.results.count()):
            item = b.results.item(i)
            assert item.toolTip().startswith(item.text())
    finally:
        window.close()
        window.deleteLater()
        await asyncio.to_thread(index.close)
