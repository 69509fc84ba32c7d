"""The knowledge-base browser: KB and FAQ articles, search, rendered Markdown.

One widget, two homes: a dock in the agent window (fed remotely, through the
host's ``kb.search`` / ``article.get``) and a window of its own (``hitl-desktop kb``,
fed by the local :class:`~hitl_desktop.knowledge.index.KnowledgeIndex`). The widget
only knows the :class:`KbSource` protocol; sources are async so a remote round
trip never blocks the UI. Searches are debounced and stale answers dropped.

For the agent window::

    source = SignalKbSource.from_workspace(workspace)  # search_kb/request_article + signals
    browser = KbBrowser(source)        # a plain widget for your own dock, or:
    dock = make_kb_dock(source, parent=window)          # a ready QDockWidget
    dock.browser.open_article("faq/cancel-order")
    # either lists the articles the first time it is shown
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Final, Protocol, runtime_checkable

from PySide6.QtCore import (
    QModelIndex,
    QPersistentModelIndex,
    QSize,
    Qt,
    QTimer,
    QUrl,
    Signal,
    SignalInstance,
)
from PySide6.QtGui import (
    QColor,
    QDesktopServices,
    QFont,
    QFontMetrics,
    QPainter,
    QShowEvent,
    QTextCharFormat,
    QTextCursor,
    QTextDocument,
    QTextFormat,
)
from PySide6.QtWidgets import (
    QComboBox,
    QDockWidget,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QListWidget,
    QListWidgetItem,
    QMainWindow,
    QSplitter,
    QStyle,
    QStyledItemDelegate,
    QStyleOptionViewItem,
    QTextBrowser,
    QVBoxLayout,
    QWidget,
)

from hitl_desktop.core.tasks import TaskSupervisor
from hitl_desktop.knowledge.index import KnowledgeIndex
from hitl_desktop.ui.fit import fit_to_screen
from hitl_desktop.ui.theme import colors

log = logging.getLogger(__name__)

DEBOUNCE_MS: Final = 150
KIND_LABEL: Final = {"kb": "KB", "faq": "FAQ"}
ENTRY_ROLE: Final = int(Qt.ItemDataRole.UserRole) + 1


@dataclass(frozen=True, slots=True)
class KbEntry:
    """One line of the result list."""

    article_id: str
    title: str
    kind: str
    snippet: str = ""


@dataclass(frozen=True, slots=True)
class KbDocument:
    """One article to render."""

    article_id: str
    title: str
    kind: str
    markdown: str


@runtime_checkable
class KbSource(Protocol):
    """Where the browser gets articles; an empty query lists articles by title."""

    async def search(self, query: str, kind: str | None, limit: int) -> Sequence[KbEntry]: ...

    async def article(self, article_id: str) -> KbDocument | None: ...


class LocalKbSource:
    """The local index (the ``hitl-desktop kb`` window, or a host-side browser); called
    through the index's own worker thread, never on the Qt loop."""

    def __init__(self, index: KnowledgeIndex) -> None:
        self.index = index

    async def search(self, query: str, kind: str | None, limit: int) -> Sequence[KbEntry]:
        ix = self.index
        if not query.strip():
            arts = [a for a in await ix.worker.call(ix.articles) if kind in (None, a.kind)]
            arts.sort(key=lambda a: (a.kind != "kb", a.title.lower()))
            return [KbEntry(a.article_id, a.title, a.kind, _first_line(a.markdown))
                    for a in arts[:limit]]
        hits = await ix.worker.call(ix.search, query, limit, kind)
        return [KbEntry(h.article_id, h.title, h.kind, h.snippet) for h in hits]

    async def article(self, article_id: str) -> KbDocument | None:
        art = await self.index.worker.call(self.index.get, article_id)
        if art is None:
            return None
        return KbDocument(art.article_id, art.title, art.kind, art.markdown)


class SignalKbSource:
    """A remote source from request functions plus reply signals (the agent workspace).

    ``request_search(query, kind, limit)`` sends ``kb.search``; ``results`` is a signal
    carrying ``KbResults`` (matched to the request by its ``query``).
    ``request_article(article_id)`` sends ``article.get``; ``article_loaded`` carries
    ``ArticleContent``. An unanswered request returns empty after ``timeout`` seconds.
    """

    def __init__(
        self,
        request_search: Callable[[str, str | None, int], object],
        request_article: Callable[[str], object],
        results: SignalInstance,
        article_loaded: SignalInstance,
        *,
        timeout: float = 10.0,
    ) -> None:
        self._request_search = request_search
        self._request_article = request_article
        self.timeout = timeout
        self._searches: dict[str, list[asyncio.Future[Any]]] = {}
        self._articles: dict[str, list[asyncio.Future[Any]]] = {}
        results.connect(self._on_results)
        article_loaded.connect(self._on_article)

    @classmethod
    def from_workspace(cls, workspace: Any, *, timeout: float = 10.0) -> SignalKbSource:
        """For ``client.workspace.Workspace``: search_kb/request_article + their signals."""
        return cls(workspace.search_kb, workspace.request_article, workspace.kb_results,
                   workspace.article_loaded, timeout=timeout)

    @staticmethod
    def _resolve(waiting: dict[str, list[asyncio.Future[Any]]], key: str, value: Any) -> None:
        for fut in waiting.pop(key, []):
            if not fut.done():
                fut.set_result(value)

    def _on_results(self, payload: Any) -> None:
        entries = [KbEntry(a.article_id, a.title, a.kind, a.snippet) for a in payload.articles]
        self._resolve(self._searches, str(payload.query), entries)

    def _on_article(self, payload: Any) -> None:
        doc = KbDocument(payload.article_id, payload.title, payload.kind, payload.markdown)
        self._resolve(self._articles, doc.article_id, doc)

    async def _wait(self, waiting: dict[str, list[asyncio.Future[Any]]], key: str,
                    send: Callable[[], object], empty: Any) -> Any:
        fut: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        waiting.setdefault(key, []).append(fut)
        try:
            if send() is False:
                return empty
            return await asyncio.wait_for(fut, self.timeout)
        except TimeoutError:
            log.info("no answer from the host for %r", key)
            return empty
        finally:
            futs = waiting.get(key)
            if futs and fut in futs:
                futs.remove(fut)
                if not futs:
                    waiting.pop(key, None)

    async def search(self, query: str, kind: str | None, limit: int) -> Sequence[KbEntry]:
        entries: list[KbEntry] = await self._wait(
            self._searches, query, lambda: self._request_search(query, kind, limit), [])
        return [e for e in entries if kind in (None, e.kind)]

    async def article(self, article_id: str) -> KbDocument | None:
        doc: KbDocument | None = await self._wait(
            self._articles, article_id, lambda: self._request_article(article_id), None)
        return doc


def _first_line(markdown: str) -> str:
    for raw in markdown.splitlines():
        line = raw.strip()
        if line and not line.startswith("#"):
            return line[:200]
    return ""


def article_id_from_href(href: str, current_kind: str | None) -> str | None:
    """Map a Markdown link between articles (``../faq/x.md``, ``x.md``) to an article id."""
    path = href.split("#", 1)[0].split("?", 1)[0]
    if not path.endswith(".md") or "://" in path:
        return None
    parts = [p for p in path.split("/") if p not in ("", ".", "..")]
    if not parts:
        return None
    slug = parts[-1][:-3]
    kind = parts[-2] if len(parts) >= 2 and parts[-2] in KIND_LABEL else current_kind
    return f"{kind}/{slug}" if kind else slug


_MD_MARKS: Final = re.compile(r"(\*\*|__|`|^\s*[-*+]\s+|^\s*#+\s*|\[|\]\([^)]*\))", re.M)


def plain_snippet(text: str) -> str:
    """A snippet without Markdown marks, on one line."""
    return " ".join(_MD_MARKS.sub("", text).split())


def tone_headings(doc: QTextDocument) -> None:
    """Markdown headings render huge by default; scale them to a reading size."""
    base = doc.defaultFont().pointSizeF()
    if base <= 0:
        base = 10.0
    sizes = {1: base * 1.45, 2: base * 1.25, 3: base * 1.1}
    block = doc.begin()
    while block.isValid():
        level = block.blockFormat().headingLevel()
        if level:
            cur = QTextCursor(block)
            cur.movePosition(QTextCursor.MoveOperation.StartOfBlock)
            cur.movePosition(QTextCursor.MoveOperation.EndOfBlock,
                             QTextCursor.MoveMode.KeepAnchor)
            # the size adjustment the importer sets wins over a point size: clear it
            fmt = QTextCharFormat(cur.charFormat())
            fmt.clearProperty(QTextFormat.Property.FontSizeAdjustment)
            fmt.setFontPointSize(sizes.get(level, base))
            fmt.setFontWeight(QFont.Weight.DemiBold)
            cur.setCharFormat(fmt)
            bf = block.blockFormat()
            bf.setTopMargin(base * 1.1)
            bf.setBottomMargin(base * 0.3)
            QTextCursor(block).setBlockFormat(bf)
        block = block.next()


class ResultDelegate(QStyledItemDelegate):
    """Paints a result as a bold title, a muted kind/id line and a one-line snippet."""

    PAD: Final = 8

    def paint(self, painter: QPainter, option: QStyleOptionViewItem,
              index: QModelIndex | QPersistentModelIndex) -> None:
        entry = index.data(ENTRY_ROLE)
        if not isinstance(entry, KbEntry):
            super().paint(painter, option, index)
            return
        c = colors()
        painter.save()
        rect = option.rect
        selected = bool(option.state & QStyle.StateFlag.State_Selected)
        if selected:
            painter.fillRect(rect, QColor(c.info_bg))
            painter.fillRect(rect.x(), rect.y(), 3, rect.height(), QColor(c.accent))
        elif index.row() % 2:
            painter.fillRect(rect, QColor(c.surface_alt))
        x, w = rect.x() + self.PAD + 4, rect.width() - 2 * self.PAD - 4
        y = rect.y() + self.PAD
        base = QFont(option.font)
        title_font = QFont(base)
        title_font.setBold(True)
        fm_title = QFontMetrics(title_font)
        fm = QFontMetrics(base)
        painter.setFont(title_font)
        painter.setPen(QColor(c.text))
        painter.drawText(x, y + fm_title.ascent(),
                         fm_title.elidedText(entry.title, Qt.TextElideMode.ElideRight, w))
        y += fm_title.height() + 2
        small = QFont(base)
        small.setPointSizeF(max(7.5, base.pointSizeF() - 1))
        fm_small = QFontMetrics(small)
        painter.setFont(small)
        painter.setPen(QColor(c.accent if entry.kind == "faq" else c.ok))
        kind = KIND_LABEL.get(entry.kind, entry.kind)
        painter.drawText(x, y + fm_small.ascent(), kind)
        painter.setPen(QColor(c.muted))
        painter.drawText(x + fm_small.horizontalAdvance(kind + "  "), y + fm_small.ascent(),
                         entry.article_id)
        y += fm_small.height() + 2
        if entry.snippet:
            painter.setFont(base)
            painter.setPen(QColor(c.muted))
            snippet = plain_snippet(entry.snippet)
            painter.drawText(x, y + fm.ascent(),
                             fm.elidedText(snippet, Qt.TextElideMode.ElideRight, w))
        painter.restore()

    def sizeHint(self, option: QStyleOptionViewItem,
                 index: QModelIndex | QPersistentModelIndex) -> QSize:
        base = QFont(option.font)
        bold = QFont(base)
        bold.setBold(True)
        small = QFont(base)
        small.setPointSizeF(max(7.5, base.pointSizeF() - 1))
        h = (QFontMetrics(bold).height() + QFontMetrics(small).height()
             + QFontMetrics(base).height() + 4 + 2 * self.PAD)
        return QSize(200, h)


class KbBrowser(QWidget):
    """Search box + kind filter + result list + rendered article."""

    article_shown = Signal(str)  # article id
    results_shown = Signal(int)  # how many results are listed

    def __init__(self, source: KbSource, parent: QWidget | None = None, *,
                 limit: int = 50) -> None:
        super().__init__(parent)
        self.source = source
        self.limit = limit
        self.current: KbDocument | None = None
        self._tasks = TaskSupervisor("kb browser", logger=log)
        self._search_gen = 0
        self._article_gen = 0

        self.query = QLineEdit()
        self.query.setPlaceholderText("Search articles (e.g. cancel order, refund, shipping)")
        self.query.setClearButtonEnabled(True)
        self.query.textChanged.connect(self._schedule)
        self.query.returnPressed.connect(self.search_now)
        self.kind = QComboBox()
        self.kind.addItem("All articles", None)
        self.kind.addItem("Knowledge base", "kb")
        self.kind.addItem("FAQ", "faq")
        self.kind.currentIndexChanged.connect(self.search_now)
        self.results = QListWidget()
        self.results.setItemDelegate(ResultDelegate(self.results))
        self.results.setUniformItemSizes(True)
        self.results.setMinimumWidth(260)
        self.results.currentItemChanged.connect(self._picked)
        self.count = QLabel("")
        self.count.setStyleSheet(f"color:{colors().muted};")
        self.title = QLabel("")
        self.title.setWordWrap(True)
        self.title.setStyleSheet("font-size:13pt;font-weight:600;")
        self.badge = QLabel("")
        self.view = QTextBrowser()
        self.view.setOpenLinks(False)
        self.view.anchorClicked.connect(self._link)
        self.view.setPlaceholderText("Pick an article on the left.")
        self.view.document().setDocumentMargin(12)

        self._debounce = QTimer(self)
        self._debounce.setSingleShot(True)
        self._debounce.setInterval(DEBOUNCE_MS)
        self._debounce.timeout.connect(self.search_now)

        top = QHBoxLayout()
        top.addWidget(self.query, 1)
        top.addWidget(self.kind)
        left = QWidget()
        left_lay = QVBoxLayout(left)
        left_lay.setContentsMargins(0, 0, 0, 0)
        left_lay.addWidget(self.results, 1)
        left_lay.addWidget(self.count)
        right = QWidget()
        right_lay = QVBoxLayout(right)
        right_lay.setContentsMargins(0, 0, 0, 0)
        head = QHBoxLayout()
        head.addWidget(self.title, 1)
        head.addWidget(self.badge, 0, Qt.AlignmentFlag.AlignTop)
        right_lay.addLayout(head)
        right_lay.addWidget(self.view, 1)
        self.split = QSplitter(Qt.Orientation.Horizontal)
        self.split.addWidget(left)
        self.split.addWidget(right)
        # the list a third of the width: at 2:5 most "Procedure - …" titles were cut
        self.split.setStretchFactor(0, 1)
        self.split.setStretchFactor(1, 2)
        lay = QVBoxLayout(self)
        lay.addLayout(top)
        lay.addWidget(self.split, 1)

    def showEvent(self, event: QShowEvent) -> None:
        """The first time the browser is shown, list the articles (docks open lazily)."""
        super().showEvent(event)
        if self._search_gen == 0:
            try:
                asyncio.get_running_loop()
            except RuntimeError:
                return  # no loop yet: the owner calls refresh() once it runs
            self.refresh()

    # ------------------------------------------------------------------ tasks

    def cancel_tasks(self) -> None:
        self._tasks.cancel_all()

    # ------------------------------------------------------------------ search

    def _schedule(self) -> None:
        self._debounce.start()

    def search_now(self) -> None:
        self._debounce.stop()
        self._search_gen += 1
        self._tasks.spawn(self._search(self._search_gen, self.query.text().strip(),
                                 self.kind.currentData()), "search")

    def refresh(self) -> None:
        """List articles for the current query (the first listing, too)."""
        self.search_now()

    async def _search(self, gen: int, query: str, kind: str | None) -> None:
        entries = await self.source.search(query, kind, self.limit)
        if gen != self._search_gen:
            return  # a newer search is under way
        self.show_results(entries, query)

    def show_results(self, entries: Sequence[KbEntry], query: str = "") -> None:
        keep = self.current.article_id if self.current else None
        self.results.blockSignals(True)
        self.results.clear()
        select: QListWidgetItem | None = None
        for e in entries:
            item = QListWidgetItem(e.title)
            item.setData(Qt.ItemDataRole.UserRole, e.article_id)
            item.setData(ENTRY_ROLE, e)
            # the full title first: the list may cut it
            item.setToolTip(f"{e.title}\n{e.snippet}" if e.snippet else e.title)
            self.results.addItem(item)
            if e.article_id == keep:
                select = item
        self.results.blockSignals(False)
        if select is not None:
            self.results.setCurrentItem(select)
        n = len(entries)
        if query:
            self.count.setText(f"{n} article{'s' if n != 1 else ''} match \"{query}\""
                               if n else f"Nothing matches \"{query}\"")
        else:
            self.count.setText(f"{n} article{'s' if n != 1 else ''}")
        self.results_shown.emit(n)

    def listed_ids(self) -> list[str]:
        out = []
        for i in range(self.results.count()):
            item = self.results.item(i)
            if item is not None:
                out.append(str(item.data(Qt.ItemDataRole.UserRole)))
        return out

    # ------------------------------------------------------------------ articles

    def _picked(self, item: QListWidgetItem | None, _prev: QListWidgetItem | None = None) -> None:
        if item is not None:
            self.open_article(str(item.data(Qt.ItemDataRole.UserRole)))

    def open_article(self, article_id: str) -> None:
        """Show an article (also used by the agent window's "relevant articles")."""
        if self.current is not None and self.current.article_id == article_id:
            return
        self._article_gen += 1
        self._tasks.spawn(self._open(self._article_gen, article_id), f"open {article_id}")

    async def _open(self, gen: int, article_id: str) -> None:
        doc = await self.source.article(article_id)
        if gen != self._article_gen:
            return
        if doc is None:
            self.title.setText("Article not found")
            self.view.setPlainText(f"There is no article {article_id!r}.")
            return
        self.show_article(doc)

    def show_article(self, doc: KbDocument) -> None:
        self.current = doc
        self.title.setText(doc.title)
        c = colors()
        self.badge.setText(KIND_LABEL.get(doc.kind, doc.kind))
        self.badge.setStyleSheet(f"background:{c.info_bg};color:{c.info_text};border-radius:6px;"
                                 "padding:2px 8px;font-weight:600;")
        body = doc.markdown
        first = body.lstrip().splitlines()[0] if body.strip() else ""
        if first.startswith("# "):  # the title is already shown above
            body = body.lstrip()[len(first):].lstrip("\n")
        self.view.setMarkdown(body)
        tone_headings(self.view.document())
        self.article_shown.emit(doc.article_id)

    def _link(self, url: QUrl) -> None:
        target = article_id_from_href(url.toString(), self.current.kind if self.current else None)
        if target is not None:
            self.open_article(target)
        elif url.scheme() in ("http", "https", "mailto"):
            QDesktopServices.openUrl(url)


class KbBrowserWindow(QMainWindow):
    """The browser as a window of its own (``hitl-desktop kb``)."""

    closed = Signal()

    def __init__(self, source: KbSource, *, title: str = "Knowledge base",
                 parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle(f"HITL Desk — {title}")
        self.browser = KbBrowser(source)
        self.setCentralWidget(self.browser)
        self.resize(*fit_to_screen(self, (1040, 700)))  # never larger than the screen

    def closeEvent(self, event: Any) -> None:
        self.browser.cancel_tasks()
        self.closed.emit()
        super().closeEvent(event)


class KbDock(QDockWidget):
    """The browser as a dock (the agent window embeds this)."""

    def __init__(self, source: KbSource, parent: QWidget | None = None) -> None:
        super().__init__("Knowledge base", parent)
        self.setObjectName("kb_browser_dock")
        self.browser = KbBrowser(source)
        self.browser.split.setOrientation(Qt.Orientation.Vertical)
        self.setWidget(self.browser)


def make_kb_dock(source: KbSource, parent: QWidget | None = None) -> KbDock:
    """A dock whose browser lists the articles the first time it is shown."""
    return KbDock(source, parent)

