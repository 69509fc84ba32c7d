"""Search every conversation on the host (issue 16): Ctrl+F / Ctrl+Shift+F.

The host searches (SQLite FTS5 over chat lines and notes of every session, closed
ones too); this dialog asks, lists the hits and opens one in the workspace. Shown,
never exec()'d: the window keeps working while it is open.
"""

from __future__ import annotations

import html
import re
import time
from typing import TYPE_CHECKING

from PySide6.QtCore import QModelIndex, QPersistentModelIndex, QRect, QSize, Qt, Signal
from PySide6.QtGui import QAbstractTextDocumentLayout, QPainter, QPalette, QTextDocument
from PySide6.QtWidgets import (
    QDialog,
    QHBoxLayout,
    QLineEdit,
    QListWidget,
    QListWidgetItem,
    QPushButton,
    QStyle,
    QStyledItemDelegate,
    QStyleOptionViewItem,
    QVBoxLayout,
    QWidget,
)

from hitl_desktop.client.workspace import Workspace
from hitl_desktop.ui.fit import ElideLabel, clip

if TYPE_CHECKING:
    from hitl_desktop.core import protocol as p

ROLE_HIT = Qt.ItemDataRole.UserRole + 1
ROLE_HTML = Qt.ItemDataRole.UserRole + 2
PAGE = 20
WHO = {"customer": "customer", "agent": "representative", "admin": "representative",
       "assistant": "assistant", "note": "internal note"}


def query_words(query: str) -> list[str]:
    """The words of a query (quotes and a trailing * dropped), for highlighting."""
    return [w for w in re.findall(r"[\w'-]+", query.replace("*", " ")) if len(w) > 1]


def snippet_html(snippet: str, query: str) -> str:
    """The host's snippet (plain text), escaped, with the query's words in bold."""
    text = html.escape(" ".join(snippet.split()))
    words = query_words(query)
    if not words:
        return text
    pattern = re.compile(r"\b(" + "|".join(re.escape(html.escape(w)) for w in words) + r")",
                         re.IGNORECASE)
    return pattern.sub(r"<b>\1</b>", text)


def hit_time(ts: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M", time.localtime(ts))


class HitDelegate(QStyledItemDelegate):
    """A hit as two lines of rich text: where and when, then the snippet with the
    query's words in bold (three lines at most)."""

    def _doc(self, option: QStyleOptionViewItem,
             index: QModelIndex | QPersistentModelIndex) -> QTextDocument:
        doc = QTextDocument()
        doc.setDefaultFont(option.font)
        doc.setHtml(str(index.data(ROLE_HTML) or ""))
        doc.setTextWidth(max(120, option.rect.width() - 12))
        return doc

    def sizeHint(self, option: QStyleOptionViewItem,
                 index: QModelIndex | QPersistentModelIndex) -> QSize:
        doc = self._doc(option, index)
        return QSize(int(doc.idealWidth()), min(int(doc.size().height()) + 8, 92))

    def paint(self, painter: QPainter, option: QStyleOptionViewItem,
              index: QModelIndex | QPersistentModelIndex) -> None:
        painter.save()
        rect: QRect = option.rect
        selected = bool(option.state & QStyle.StateFlag.State_Selected)
        if selected:
            painter.fillRect(rect, option.palette.color(QPalette.ColorRole.Highlight))
        elif index.row() % 2:
            painter.fillRect(rect, option.palette.color(QPalette.ColorRole.AlternateBase))
        doc = self._doc(option, index)
        if selected:  # the muted part must stay readable on the highlight
            light = option.palette.color(QPalette.ColorRole.HighlightedText).name()
            doc.setHtml(str(index.data(ROLE_HTML) or "").replace("color:gray", f"color:{light}"))
        painter.translate(rect.left() + 6, rect.top() + 4)
        painter.setClipRect(QRect(0, 0, rect.width() - 12, rect.height() - 8))
        ctx = QAbstractTextDocumentLayout.PaintContext()
        ctx.palette.setColor(QPalette.ColorRole.Text, option.palette.color(
            QPalette.ColorRole.HighlightedText if selected else QPalette.ColorRole.Text))
        doc.documentLayout().draw(painter, ctx)
        painter.restore()


class SearchDialog(QDialog):
    """Query, results (newest first), "More" for older ones, Enter opens a hit."""

    hit_opened = Signal(str, int)  # session_id, seq

    def __init__(self, workspace: Workspace, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.workspace = workspace
        self.setObjectName("searchDialog")
        self.setWindowTitle("Search conversations — HITL Desk")
        self.hits: list[p.SearchHit] = []
        self._query = ""
        self._appending = False
        self.field = QLineEdit(self)
        self.field.setObjectName("searchField")
        self.field.setPlaceholderText("Words or a \"phrase\" from any conversation, closed "
                                      "ones too")
        self.field.setClearButtonEnabled(True)
        self.field.returnPressed.connect(self._on_return)
        self.search_button = QPushButton("Search", self)
        self.search_button.setObjectName("searchButton")
        self.search_button.clicked.connect(self.run)
        self.results = QListWidget(self)
        self.results.setObjectName("searchResults")
        self.results.setWordWrap(True)
        self.results.setItemDelegate(HitDelegate(self.results))
        self.results.itemActivated.connect(self._open_item)
        self.status = ElideLabel("", self, max_hint=600)
        self.status.setObjectName("mutedLabel")
        self.more_button = QPushButton("More results", self)
        self.more_button.setObjectName("moreResults")
        self.more_button.clicked.connect(self.more)
        self.more_button.hide()
        self.open_button = QPushButton("Open", self)
        self.open_button.setObjectName("openHit")
        self.open_button.setToolTip("Open the conversation in the workspace (Enter)")
        self.open_button.clicked.connect(self.open_current)
        self.open_button.setEnabled(False)
        self.results.currentRowChanged.connect(
            lambda row: self.open_button.setEnabled(row >= 0))
        # Enter is the field's (search, or open the hit it found) and the list's (open):
        # a dialog's auto-default Search button also took it, so every Enter searched
        # twice, and Enter on a hit opened it and searched again
        for button in (self.search_button, self.more_button, self.open_button):
            button.setAutoDefault(False)
        top = QHBoxLayout()
        top.addWidget(self.field, 1)
        top.addWidget(self.search_button)
        bottom = QHBoxLayout()
        bottom.addWidget(self.status, 1)
        bottom.addWidget(self.more_button)
        bottom.addWidget(self.open_button)
        lay = QVBoxLayout(self)
        lay.addLayout(top)
        lay.addWidget(self.results, 1)
        lay.addLayout(bottom)
        self.resize(640, 460)
        workspace.search_results.connect(self._on_results)
        workspace.search_failed.connect(self._on_failed)

    def start(self, text: str = "") -> None:
        """Show (or bring up) the dialog with the cursor in the field."""
        if text:
            self.field.setText(text)
        self.show()
        self.raise_()
        self.activateWindow()
        self.field.setFocus()
        self.field.selectAll()

    def _on_return(self) -> None:
        """Enter in the field: a new query searches; the query already answered opens
        the chosen hit ("Enter opens one", as the status line says)."""
        if self.field.text().strip() == self._query and self.results.currentItem() is not None:
            self.open_current()
        else:
            self.run()

    def run(self) -> bool:
        query = self.field.text().strip()
        if not query:
            return False
        self._query = query
        self._appending = False
        self.status.set_full_text("Searching…")
        return self.workspace.search(query, limit=PAGE)

    def more(self) -> bool:
        if not self.hits or not self._query:
            return False
        self._appending = True
        self.status.set_full_text("Searching older conversations…")
        return self.workspace.search(self._query, limit=PAGE, before=self.hits[-1].at)

    def _on_results(self, results: p.SearchResults) -> None:
        if results.query != self._query:
            return
        if not self._appending:
            self.hits = []
            self.results.clear()
        self.hits.extend(results.hits)
        for hit in results.hits:
            who = "internal note" if hit.kind == "note" \
                else WHO.get(hit.author_role, hit.author_role)
            item = QListWidgetItem()
            item.setData(ROLE_HIT, hit)
            words = " ".join(hit.snippet.split())
            item.setText(f"{clip(hit.title, 80)}  ·  {hit_time(hit.at)}  ·  {who}\n"
                         f"{clip(words, 240)}")
            item.setData(ROLE_HTML, (
                f"<b>{html.escape(clip(hit.title, 80))}</b>"
                f"<span style='color:gray'> · {hit_time(hit.at)} · {html.escape(who)}</span>"
                f"<br>{snippet_html(clip(words, 240), self._query)}"))
            item.setToolTip(f"{hit.title}\n{hit.snippet}")
            self.results.addItem(item)
        n = len(self.hits)
        if n == 0:
            self.status.set_full_text(f"Nothing found for “{self._query}”.")
        else:
            self.status.set_full_text(f"{n} result{'s' if n != 1 else ''} for "
                                      f"“{self._query}” — Enter opens one")
        self.more_button.setVisible(len(results.hits) >= PAGE)
        if self.results.currentRow() < 0 and self.results.count():
            self.results.setCurrentRow(0)

    def _on_failed(self, message: str) -> None:
        self.status.set_full_text(f"Cannot search: {message}")
        self.more_button.hide()

    def open_current(self) -> None:
        item = self.results.currentItem()
        if item is not None:
            self._open_item(item)

    def _open_item(self, item: QListWidgetItem) -> None:
        hit = item.data(ROLE_HIT)
        if hit is None:
            return
        self.workspace.open_session(hit.session_id, hit.title, hit.at)
        self.hit_opened.emit(hit.session_id, hit.seq)
