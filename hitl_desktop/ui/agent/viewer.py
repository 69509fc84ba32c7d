"""The article viewer: an article's rendered Markdown with the cited passage highlighted.

Its dock starts tabbed behind "Relevant articles", so the window builds it the first
time it is shown (or an article is opened), not at start-up.
"""

from __future__ import annotations

import html
import re
from typing import TYPE_CHECKING

from PySide6.QtGui import QColor, QTextCharFormat, QTextCursor
from PySide6.QtWidgets import QLabel, QTextBrowser, QTextEdit, QVBoxLayout, QWidget

from hitl_desktop.client.workspace import Workspace
from hitl_desktop.ui.agent.style import is_dark

if TYPE_CHECKING:
    from hitl_desktop.core import protocol as p


class ArticleViewer(QWidget):
    """Rendered Markdown of one article with the cited passage highlighted."""

    def __init__(self, workspace: Workspace, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.workspace = workspace
        self.article_id: str | None = None
        self.passage = ""
        self.highlighted = ""
        self.title = QLabel("No article open", self)
        self.title.setObjectName("viewerTitle")
        self.title.setWordWrap(True)
        self.browser = QTextBrowser(self)
        self.browser.setObjectName("articleBrowser")
        self.browser.setOpenExternalLinks(False)
        self.browser.setAccessibleName("Article")
        lay = QVBoxLayout(self)
        lay.setContentsMargins(8, 6, 8, 8)
        lay.addWidget(self.title)
        lay.addWidget(self.browser, 1)
        self.setFocusProxy(self.browser)
        workspace.article_loaded.connect(self._on_loaded)
        workspace.articles_changed.connect(self._on_turn_articles)
        workspace.current_session_changed.connect(self._on_turn_articles)
        self._title_html = ""
        self._turn: str | None = None  # the turn whose articles were listed at opening
        self.earlier = False  # the open article is not among the latest turn's articles

    def open_article(self, article_id: str, passage: str = "") -> None:
        """Ask the host for the article; it renders when ``article.content`` arrives."""
        self.article_id = article_id
        self.passage = passage
        view = self.workspace.current
        self._turn = view.articles_turn if view is not None else None
        self.title.setText(f"Loading {html.escape(article_id)}…")
        self.workspace.request_article(article_id)

    def _on_loaded(self, content: p.ArticleContent) -> None:
        if content.article_id != self.article_id:
            return  # someone else's request (e.g. the KB browser)
        self.show_content(content, self.passage)

    def show_content(self, content: p.ArticleContent, passage: str = "") -> None:
        self.article_id = content.article_id
        kind = "FAQ" if content.kind == "faq" else "Knowledge base"
        self._title_html = (f"<b>{html.escape(content.title)}</b><br><span style='color:gray'>"
                            f"{kind} · {html.escape(content.article_id)}</span>")
        self.earlier = False
        self.title.setText(self._title_html)
        self.browser.document().setMarkdown(content.markdown)
        _calm_headings(self.browser)
        self.highlighted = self.highlight(passage) if passage else ""

    def _on_turn_articles(self, *_args: object) -> None:
        """Say so when the open article is not one the latest message relies on
        (a new turn started): the representative must not check a claim against it."""
        view = self.workspace.current
        if self.article_id is None or not self._title_html:
            return
        current = {a.article_id for a in view.current_articles} if view is not None else set()
        turn = view.articles_turn if view is not None else None
        earlier = turn != self._turn and self.article_id not in current
        if earlier != self.earlier:
            self.earlier = earlier
            note = ("<br><span style='color:#d9822b'>From an earlier message: not among "
                    "the articles for the latest one.</span>") if earlier else ""
            self.title.setText(self._title_html + note)

    def highlight(self, passage: str) -> str:
        """Highlight the best match of ``passage`` in the document; return what matched."""
        doc = self.browser.document()
        found = QTextCursor()
        matched = ""
        for candidate in _candidates(passage):
            cur = doc.find(candidate, 0)
            if not cur.isNull():
                found, matched = cur, candidate
                break
        if found.isNull():
            self.browser.setExtraSelections([])
            return ""
        # extend to the whole block (paragraph) for a readable highlight
        block_cur = QTextCursor(found)
        block_cur.setPosition(found.selectionStart())
        block_cur.movePosition(QTextCursor.MoveOperation.StartOfBlock)
        end = QTextCursor(found)
        end.setPosition(found.selectionEnd())
        end.movePosition(QTextCursor.MoveOperation.EndOfBlock)
        block_cur.setPosition(end.position(), QTextCursor.MoveMode.KeepAnchor)
        fmt = QTextCharFormat()
        dark = is_dark()
        fmt.setBackground(QColor("#6b5a12" if dark else "#fff1a8"))
        sel = QTextEdit.ExtraSelection()
        sel.cursor = block_cur
        sel.format = fmt
        self.browser.setExtraSelections([sel])
        view_cur = QTextCursor(found)
        view_cur.clearSelection()
        self.browser.setTextCursor(view_cur)
        self.browser.ensureCursorVisible()
        return matched

    def highlighted_text(self) -> str:
        sels = self.browser.extraSelections()
        return sels[0].cursor.selectedText() if sels else ""


#: heading sizes relative to body text: Qt's Markdown defaults (up to 2x) swamp a
#: narrow dock with a title that wraps over three lines
HEADING_SCALE = {1: 1.3, 2: 1.18, 3: 1.08}


def _calm_headings(browser: QTextBrowser) -> None:
    """Scale Markdown headings to the panel: bold and a little larger, not huge."""
    base = browser.font().pointSizeF()
    if base <= 0:
        return
    doc = browser.document()
    block = doc.begin()
    while block.isValid():
        level = block.blockFormat().headingLevel()
        if level:
            fmt = QTextCharFormat()
            fmt.setFontPointSize(base * HEADING_SCALE.get(level, 1.0))
            fmt.setFontWeight(700)
            cursor = QTextCursor(block)
            cursor.movePosition(QTextCursor.MoveOperation.EndOfBlock,
                                QTextCursor.MoveMode.KeepAnchor)
            cursor.mergeCharFormat(fmt)
        block = block.next()


def _candidates(passage: str) -> list[str]:
    """Pieces of a snippet to look for, longest first: Markdown is rendered, so the
    raw snippet rarely matches verbatim."""
    text = re.sub(r"[*_`#>\[\]]", "", passage)
    text = re.sub(r"\(https?://[^)]*\)", "", text)
    text = re.sub(r"\s+", " ", text).strip().strip("…").strip()
    out: list[str] = []
    if text:
        out.append(text)
    for sentence in re.split(r"(?<=[.!?])\s+|\s*[-•]\s+|\s*\|\s*", text):
        s = sentence.strip().strip("…").strip()
        if len(s) >= 12 and s not in out:
            out.append(s)
    words = text.split()
    for size in (8, 5):
        for i in range(0, max(0, len(words) - size + 1), size):
            chunk = " ".join(words[i:i + size])
            if len(chunk) >= 12 and chunk not in out:
                out.append(chunk)
    return [c for c in out if c] or ([passage] if passage else [])


