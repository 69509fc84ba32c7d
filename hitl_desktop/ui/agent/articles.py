"""Relevant articles: a ranked list with scores and snippets.

Choosing one opens it in the article viewer (``viewer.py``), which highlights the
passage the draft relied on, so the representative can check a claim in one glance.
"""

from __future__ import annotations

import html
import logging
import re
from typing import TYPE_CHECKING

from PySide6 import QtGui, QtWidgets
from PySide6.QtCore import QModelIndex, QPersistentModelIndex, QSize, Qt, Signal
from PySide6.QtGui import QPalette
from PySide6.QtWidgets import (
    QLabel,
    QListView,
    QListWidget,
    QListWidgetItem,
    QStyledItemDelegate,
    QVBoxLayout,
    QWidget,
)

from hitl_desktop.client.workspace import Workspace
from hitl_desktop.ui.agent.style import is_dark

if TYPE_CHECKING:
    from PySide6.QtGui import QPainter, QTextDocument
    from PySide6.QtWidgets import QStyleOptionViewItem

    from hitl_desktop.core import protocol as p

log = logging.getLogger(__name__)
ROLE_ARTICLE = Qt.ItemDataRole.UserRole + 1
ROLE_HTML = Qt.ItemDataRole.UserRole + 2


def plain_snippet(markdown: str) -> str:
    """A snippet as readable text: Markdown emphasis, links and list markers removed."""
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", markdown)
    text = re.sub(r"[*`#>]+", "", text)
    # underscores only as emphasis (_word_, __word__), not inside create_return
    text = re.sub(r"(?<![A-Za-z0-9])_+|_+(?![A-Za-z0-9])", "", text)
    text = re.sub(r"(^|\s)[-•]\s+", r"\1", text)
    return re.sub(r"\s+", " ", text).strip()


def article_html(rank: int, art: p.Article, muted: str, accent: str) -> str:
    snippet = plain_snippet(art.snippet)
    if len(snippet) > 220:
        snippet = snippet[:217].rstrip() + "…"
    kind = "FAQ" if art.kind == "faq" else "Guide"
    bar = "█" * max(1, round(min(1.0, art.score) * 8))
    return (f"<div><span style='color:{muted}'>{rank}.</span> <b>{html.escape(art.title)}</b>"
            f"</div><div style='color:{muted}; font-size:small'>{kind} · "
            f"<span style='color:{accent}'>{bar}</span> {art.score:.2f} · "
            f"{html.escape(art.article_id)}</div>"
            f"<div style='margin-top:2px'>{html.escape(snippet)}</div>")


class ArticleDelegate(QStyledItemDelegate):
    """Paints an article row as rich text (title, kind, score bar, snippet), wrapped."""

    PAD = 8

    def __init__(self, view: QListView) -> None:
        super().__init__(view)
        self.view = view

    def _doc(self, option: QStyleOptionViewItem,
             index: QModelIndex | QPersistentModelIndex, width: int) -> QTextDocument:
        # QtGui.X / QtWidgets.X on use: PySide builds a class (and all its enums) the
        # first time Python names it, and these are only needed once rows are painted
        doc = QtGui.QTextDocument()
        doc.setDefaultFont(option.font)
        doc.setHtml(str(index.data(ROLE_HTML) or ""))
        doc.setTextWidth(max(80, width - 2 * self.PAD))
        return doc

    def sizeHint(self, option: QStyleOptionViewItem,
                 index: QModelIndex | QPersistentModelIndex) -> QSize:
        width = self.view.viewport().width()
        doc = self._doc(option, index, width)
        return QSize(width, int(doc.size().height()) + 2 * self.PAD)

    def paint(self, painter: QPainter, option: QStyleOptionViewItem,
              index: QModelIndex | QPersistentModelIndex) -> None:
        painter.save()
        rect = option.rect
        pal = option.palette
        selected = bool(option.state & QtWidgets.QStyle.StateFlag.State_Selected)
        if selected:
            painter.fillRect(rect, pal.color(QPalette.ColorRole.Highlight).lighter(170)
                             if pal.color(QPalette.ColorRole.Base).lightness() > 128
                             else pal.color(QPalette.ColorRole.Highlight).darker(150))
        elif option.state & QtWidgets.QStyle.StateFlag.State_MouseOver:
            painter.fillRect(rect, pal.color(QPalette.ColorRole.AlternateBase))
        doc = self._doc(option, index, rect.width())
        painter.translate(rect.left() + self.PAD, rect.top() + self.PAD)
        ctx = QtGui.QAbstractTextDocumentLayout.PaintContext()
        ctx.palette.setColor(QPalette.ColorRole.Text, pal.color(QPalette.ColorRole.Text))
        doc.documentLayout().draw(painter, ctx)
        painter.restore()
        painter.save()
        line = QtGui.QColor(pal.color(QPalette.ColorRole.Text))
        line.setAlpha(30)
        painter.setPen(line)
        painter.drawLine(rect.bottomLeft(), rect.bottomRight())
        painter.restore()


class ArticlesPanel(QWidget):
    """The articles the assistant found for the current turn, best first."""

    article_chosen = Signal(str, str)  # article_id, passage to highlight

    def __init__(self, workspace: Workspace, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.workspace = workspace
        self.list = QListWidget(self)
        self.list.setObjectName("articlesList")
        self.list.setWordWrap(True)
        self.list.setResizeMode(QListView.ResizeMode.Adjust)
        self.list.setUniformItemSizes(False)
        self.list.setMouseTracking(True)
        self.list.setVerticalScrollMode(QListView.ScrollMode.ScrollPerPixel)
        self.list.setItemDelegate(ArticleDelegate(self.list))
        self.list.setAccessibleName("Relevant articles")
        self.list.itemActivated.connect(self._choose)
        self.list.itemClicked.connect(self._choose)
        self.empty = QLabel("Articles the assistant relies on appear here.", self)
        self.empty.setObjectName("emptyLabel")
        self.empty.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.empty.setWordWrap(True)
        lay = QVBoxLayout(self)
        lay.setContentsMargins(0, 0, 0, 0)
        lay.addWidget(self.list, 1)
        lay.addWidget(self.empty, 1)
        self.setFocusProxy(self.list)
        workspace.articles_changed.connect(self._on_changed)
        workspace.draft_changed.connect(self._on_changed)  # a new turn: not its articles
        workspace.current_session_changed.connect(self.refresh)
        self._shown: tuple[str | None, str | None] | None = None
        self.refresh()

    def _on_changed(self, session_id: str) -> None:
        if session_id == self.workspace.current_session_id:
            self.refresh()

    def articles(self) -> list[p.Article]:
        return [self.list.item(i).data(ROLE_ARTICLE) for i in range(self.list.count())]

    def refresh(self, *_args: object) -> None:
        view = self.workspace.current
        articles = view.current_articles if view is not None else []
        draft = view.draft if view is not None else None
        if (view is not None and draft is not None and draft.state == "streaming"
                and draft.turn_id != view.articles_turn):
            # a new turn started: the list belongs to the previous message
            articles = []
            self.empty.setText("Looking for articles for the latest message…")
        else:
            self.empty.setText("Articles the assistant relies on appear here.")
        shown = (view.session_id if view else None,
                 view.articles_turn if view and articles else None)
        if shown == self._shown and self.list.count() == len(articles):
            return  # draft updates stream many times a second: nothing changed here
        self._shown = shown
        self.list.clear()
        dark = is_dark()
        muted, accent = ("#9aa0a6", "#4c8dff") if dark else ("#6b7280", "#2f6fde")
        for rank, art in enumerate(articles, 1):
            kind = "FAQ" if art.kind == "faq" else "Guide"
            item = QListWidgetItem(f"{rank}. {art.title} [{kind} · {art.score:.2f}]")
            item.setData(ROLE_ARTICLE, art)
            item.setData(ROLE_HTML, article_html(rank, art, muted, accent))
            item.setToolTip(f"{art.title}\nrelevance {art.score:.3f}\n\n{art.snippet}")
            self.list.addItem(item)
        self.list.setVisible(bool(articles))
        self.empty.setVisible(not articles)

    def choose_row(self, row: int) -> None:
        item = self.list.item(row)
        if item is not None:
            self._choose(item)

    def _choose(self, item: QListWidgetItem) -> None:
        art: p.Article = item.data(ROLE_ARTICLE)
        self.article_chosen.emit(art.article_id, art.snippet)
