"""Conversation panel: the transcript, with tool calls compact and results expandable.

Internal notes (issue 16) are shown apart from chat lines (a yellow block saying only
representatives see it); the desk bar above the transcript says who holds the
conversation and its status, the note box below it writes notes.
"""

from __future__ import annotations

import html
import json
import time
from typing import Any

from PySide6.QtCore import QTimer, QUrl
from PySide6.QtGui import QTextCursor, QTextDocument, QTextDocumentFragment
from PySide6.QtWidgets import QLabel, QTextBrowser, QVBoxLayout, QWidget

from hitl_desktop.client.workspace import (
    ChatItem,
    GapItem,
    InternalNote,
    NoteItem,
    ToolItem,
    Workspace,
    gap_text,
)
from hitl_desktop.ui.agent.style import is_dark
from hitl_desktop.ui.fit import breakable


def call_signature(name: str, arguments: dict[str, Any]) -> str:
    """``cancel_order(order_id="ORD1001")`` — how a call reads to a human."""
    args = ", ".join(f"{k}={json.dumps(v, ensure_ascii=False)}" for k, v in arguments.items())
    return f"{name}({args})"


NOTE_LABEL = "Internal note — only representatives see this"
NOTE_BG = ("#fff4c2", "#4a3f12")  # light, dark
NOTE_EDGE = ("#e0b400", "#c9a227")
GAP_BG = ("#fdecea", "#4a2220")  # light, dark: where the host lost messages
GAP_EDGE = ("#d9822b", "#e8a25a")
#: on a line the host lost in an unclean stop (ChatItem.lost / InternalNote.lost)
LOST_MARK = "⚠ lost by the host"
Item = ChatItem | ToolItem | NoteItem | InternalNote | GapItem


def _signature(item: Item, expanded: set[str]) -> tuple[object, ...]:
    """What about an item changes its rendering (tool results arrive later)."""
    if isinstance(item, ToolItem):
        return ("tool", item.call_id, item.ok, item.outcome, item.output is not None,
                item.call_id in expanded, tuple(sorted(item.arguments.items(), key=str)).__repr__())
    if isinstance(item, ChatItem):
        return ("chat", item.message_id, item.lost)
    if isinstance(item, InternalNote):
        return ("internal", item.note_id, item.lost)
    if isinstance(item, GapItem):
        return ("gap", item.seq, item.lost)
    return ("note", item.text)


def _anchor(seq: int | None) -> str:
    """Where a search hit scrolls to (``scrollToAnchor``)."""
    return f"<a name='seq-{seq}'></a>" if seq is not None else ""


def _esc(text: str) -> str:
    """Escaped, with line breaks kept and long runs (URLs, ids) breakable, so no line
    is wider than the panel (no horizontal scrollbar)."""
    return html.escape(breakable(text)).replace("\n", "<br>")


class ConversationPanel(QWidget):
    """Renders the current session's transcript as HTML bubbles."""

    def __init__(self, workspace: Workspace, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.workspace = workspace
        self.expanded: set[str] = set()
        self.wanted: tuple[str, int] | None = None  # a search hit to scroll to once shown
        self._shown: tuple[str, int] = ("", 0)
        self._sigs: list[tuple[object, ...]] = []
        self._dark = False
        self._rendering = False  # the document is being replaced: its scroll moves are ours
        self.browser = QTextBrowser(self)
        self.browser.setObjectName("transcript")
        self.browser.setOpenLinks(False)
        self.browser.setAccessibleName("Conversation transcript")
        self.browser.anchorClicked.connect(self._on_anchor)
        self.typing = QLabel("", self)
        self.typing.setObjectName("typingLabel")
        # a desk fetches a conversation's history when it is opened (issue 18)
        self.loading = QLabel("  Loading…", self)
        self.loading.setObjectName("historyLoading")
        self.loading.setAccessibleName("Loading the conversation")
        self.loading.setVisible(False)
        # a long conversation comes newest first: older pages when scrolled to the top
        self.older = QLabel("", self)
        self.older.setObjectName("historyOlder")
        self.older.setAccessibleName("Earlier messages")
        self.older.setVisible(False)
        self.older.setContentsMargins(8, 3, 8, 3)
        self.older.linkActivated.connect(lambda _link: self.load_older())
        from hitl_desktop.ui.agent.conversation_bar import DeskBar
        from hitl_desktop.ui.agent.notes import NoteBox

        self.desk_bar = DeskBar(workspace, self)
        self.note_box = NoteBox(workspace, self)
        self.desk_bar.note_requested.connect(self.show_note_box)
        lay = QVBoxLayout(self)
        lay.setContentsMargins(0, 0, 0, 0)
        lay.setSpacing(0)
        lay.addWidget(self.desk_bar)
        lay.addWidget(self.loading)
        lay.addWidget(self.older)
        lay.addWidget(self.browser, 1)
        lay.addWidget(self.typing)
        lay.addWidget(self.note_box)
        self.setFocusProxy(self.browser)
        workspace.transcript_changed.connect(self._on_changed)
        workspace.current_session_changed.connect(self.refresh)
        workspace.typing_changed.connect(self._on_typing)
        workspace.history_changed.connect(self._on_changed)
        self.browser.verticalScrollBar().valueChanged.connect(self._on_scrolled)
        self.refresh()

    def _on_changed(self, session_id: str) -> None:
        if session_id == self.workspace.current_session_id:
            self.refresh()

    def _on_typing(self, session_id: str) -> None:
        view = self.workspace.current
        if view is not None and view.session_id == session_id:
            self.typing.setText(f"  {view.display_name} is typing…" if view.customer_typing
                                else "")

    def _on_anchor(self, url: QUrl) -> None:
        if url.scheme() == "toggle":
            call_id = url.path() or url.host()
            if call_id in self.expanded:
                self.expanded.discard(call_id)
            else:
                self.expanded.add(call_id)
            self.refresh()

    def _on_scrolled(self, value: int) -> None:
        if value == 0 and not self._rendering:  # at the top: the page before, if any
            self.load_older()

    def load_older(self) -> bool:
        """Ask for the messages before the oldest shown (shown once they arrive, the
        scroll position kept)."""
        return self.workspace.load_older()

    def _show_older_state(self) -> None:
        view = self.workspace.current
        if view is None or not view.paged or view.history != "loaded":
            self.older.setVisible(False)
            return
        if view.older_loading:
            self.older.setText("Loading older messages…")
        elif view.older:
            self.older.setText("↑ <a href='older'>Earlier messages</a> "
                               "(scroll up to load them)")
        else:
            self.older.setVisible(False)
            return
        self.older.setVisible(True)

    def show_seq(self, session_id: str, seq: int) -> bool:
        """Scroll to the line with durable ``seq`` (a search hit); when the session's
        history is still arriving (or the line is in an older page, loaded back to it),
        once it is there. True when it was shown now."""
        self.wanted = (session_id, seq)
        if self._scroll_to_wanted():
            return True
        self.workspace.load_until(session_id, seq)
        return False

    def _scroll_to_wanted(self) -> bool:
        view = self.workspace.current
        if self.wanted is None or view is None or view.session_id != self.wanted[0]:
            return False
        seq = self.wanted[1]
        if not any(getattr(i, "seq", None) == seq for i in view.transcript):
            return False
        self.wanted = None
        self.browser.scrollToAnchor(f"seq-{seq}")
        return True

    def show_note_box(self) -> None:
        """Open the note box and put the cursor in it (Ctrl+Shift+N); the transcript
        keeps showing its end if it did (the box takes room from it)."""
        bar = self.browser.verticalScrollBar()
        at_bottom = bar.value() >= bar.maximum() - 4
        self.note_box.open_box()
        if at_bottom:
            QTimer.singleShot(0, self, lambda: bar.setValue(bar.maximum()))

    def toggle(self, call_id: str) -> None:
        self._on_anchor(QUrl(f"toggle:{call_id}"))

    def refresh(self, *_args: object) -> None:
        """Render the transcript; new items at the end are appended, an older page put
        before, not re-rendered (a full render of a long conversation costs tens of
        milliseconds)."""
        self._rendering = True
        try:
            self._render()
        finally:
            self._rendering = False

    def _render(self) -> None:
        view = self.workspace.current
        self.loading.setVisible(view is not None and view.loading)
        self._show_older_state()
        bar = self.browser.verticalScrollBar()
        at_bottom = bar.value() >= bar.maximum() - 4
        if view is None:
            self.browser.setHtml("<p style='color:gray'>No conversation selected.</p>")
            self._sigs = []
            self._shown = ("", 0)
            return
        sigs = [_signature(item, self.expanded) for item in view.transcript]
        dark = is_dark()
        same_base = (self._shown[0] == view.session_id and self._dark == dark
                     and len(sigs) > len(self._sigs) and sigs[:len(self._sigs)] == self._sigs)
        older = (self._shown[0] == view.session_id and self._dark == dark and bool(self._sigs)
                 and len(sigs) > len(self._sigs)
                 and sigs[len(sigs) - len(self._sigs):] == self._sigs)
        if older and not same_base:
            # an older page: put it before what is shown, and keep the lines the
            # representative was reading where they were
            added = len(sigs) - len(self._sigs)
            html_old = "".join(self._item_html(i, dark) for i in view.transcript[:added])
            part = QTextDocument()
            part.setDefaultFont(self.browser.document().defaultFont())
            part.setHtml(f"<html><body>{html_old}</body></html>")
            before = bar.maximum()
            keep = bar.value()
            cursor = QTextCursor(self.browser.document())
            cursor.movePosition(QTextCursor.MoveOperation.Start)
            cursor.insertFragment(QTextDocumentFragment(part))
            if not isinstance(view.transcript[added], NoteItem | InternalNote | GapItem):
                cursor.insertBlock()  # the old first line keeps a paragraph of its own
            self._shown = (view.session_id, len(view.transcript))
            self._sigs = sigs
            bar.setValue(keep + (bar.maximum() - before))
            self._on_typing(view.session_id)
            if self.wanted is not None:
                self._scroll_to_wanted()
            return
        if same_base:
            html_new = "".join(self._item_html(i, dark) for i in view.transcript[len(self._sigs):])
            # parse with the full HTML importer (insertHtml drops table backgrounds)
            part = QTextDocument()
            part.setDefaultFont(self.browser.document().defaultFont())
            part.setHtml(f"<html><body>{html_new}</body></html>")
            cursor = QTextCursor(self.browser.document())
            cursor.movePosition(QTextCursor.MoveOperation.End)
            if isinstance(view.transcript[len(self._sigs)], NoteItem | InternalNote | GapItem):
                cursor.insertBlock()  # a one-paragraph fragment would join the last line
            cursor.insertFragment(QTextDocumentFragment(part))
            keep = bar.value()
        elif sigs == self._sigs and self._shown[0] == view.session_id and self._dark == dark:
            self._on_typing(view.session_id)
            return
        else:
            keep = bar.value()
            body = "".join(self._item_html(i, dark) for i in view.transcript)
            self.browser.setHtml(f"<html><body>{body}</body></html>")
            self.browser.document().setDocumentMargin(8)
        shown = (view.session_id, len(view.transcript))
        grew = shown != self._shown
        self._shown = shown
        self._sigs = sigs
        self._dark = dark
        bar.setValue(bar.maximum() if (at_bottom or grew) else keep)
        self._on_typing(view.session_id)
        if self.wanted is not None:
            self._scroll_to_wanted()

    def _item_html(self, item: Item, dark: bool) -> str:
        theirs = "#2b2f36" if dark else "#f0f2f5"
        ours = "#1f3d6b" if dark else "#dbe8ff"
        tool_bg = "#262a30" if dark else "#fafafa"
        muted = "#9aa0a6" if dark else "#6b7280"
        if isinstance(item, NoteItem):
            return (f"<p align='center' style='color:{muted}; font-size:small'>"
                    f"{_esc(item.text)}</p>")
        if isinstance(item, ToolItem):
            return self._tool_html(item, tool_bg, muted)
        if isinstance(item, InternalNote):
            return self._note_html(item, dark, muted)
        if isinstance(item, GapItem):
            return self._gap_html(item, dark)
        mine = item.role in ("agent", "admin")
        who = item.name if not mine else f"{item.name} (you)"
        stamp = time.strftime("%H:%M", time.localtime(item.ts))
        extra = ""
        if mine and item.draft_id:
            extra = " · edited draft" if item.edited else " · AI draft"
        if item.lost:
            extra += f" · <b style='color:{GAP_EDGE[dark]}'>{LOST_MARK}</b>"
        bg = ours if mine else theirs
        bubble = (f"<table cellpadding='8' style='background:{bg}; border-radius:8px'>"
                  f"<tr><td>{_anchor(item.seq)}<span style='color:{muted}; font-size:small'>"
                  f"<b>{_esc(who)}</b> "
                  f"· {stamp}{extra}</span><br>{_esc(item.text)}</td></tr></table>")
        # the representative's lines (typed or drafted, short or long) all hang from the
        # right edge, the customer's from the left: a gutter on the other side keeps
        # long bubbles from spanning the panel and looking left-aligned
        gutter = "<td width='14%'></td>"
        cells = (f"{gutter}<td align='right'>{bubble}</td>" if mine
                 else f"<td align='left'>{bubble}</td>{gutter}")
        return (f"<table width='100%' cellspacing='0' cellpadding='0' style='margin:4px 0'>"
                f"<tr>{cells}</tr></table>")

    @staticmethod
    def _gap_html(item: GapItem, dark: bool) -> str:
        """Where the host lost messages: full width, amber, saying what it means."""
        bg, edge = GAP_BG[dark], GAP_EDGE[dark]
        stamp = time.strftime("%H:%M", time.localtime(item.ts))
        return (f"<table width='100%' cellspacing='0' cellpadding='0' style='margin:4px 0'>"
                f"<tr><td><table width='100%' cellpadding='8' style='background:{bg}; "
                f"border-left:3px solid {edge}'><tr><td>{_anchor(item.seq)}"
                f"<b style='color:{edge}'>⚠ Messages lost</b> "
                f"<span style='font-size:small'>· {stamp}</span><br>{_esc(gap_text(item))}"
                f"</td></tr></table></td></tr></table>")

    @staticmethod
    def _note_html(item: InternalNote, dark: bool, muted: str) -> str:
        """A representative's note: full width, yellow, labelled as never sent."""
        bg, edge = NOTE_BG[dark], NOTE_EDGE[dark]
        stamp = time.strftime("%H:%M", time.localtime(item.ts))
        lost = f" · <b style='color:{GAP_EDGE[dark]}'>{LOST_MARK}</b>" if item.lost else ""
        return (f"<table width='100%' cellspacing='0' cellpadding='0' style='margin:4px 0'>"
                f"<tr><td><table width='100%' cellpadding='8' style='background:{bg}; "
                f"border-left:3px solid {edge}'><tr><td>"
                f"{_anchor(item.seq)}"
                f"<span style='color:{muted}; font-size:small'>✎ <b>{NOTE_LABEL}</b> · "
                f"{_esc(item.author)} · {stamp}{lost}</span><br>{_esc(item.text)}"
                f"</td></tr></table></td></tr></table>")

    def _tool_html(self, item: ToolItem, bg: str, muted: str) -> str:
        if item.ok is None:
            status = "◷ waiting for approval" if item.mode == "approval" else "◷ running"
        elif item.ok:
            done = "approved ✓ executed" if item.outcome == "executed" else "✓ done"
            status = f"<span style='color:#2e9d5b'>{done}</span>"
        elif item.outcome in ("rejected", "expired"):
            status = f"<span style='color:#d9822b'>✗ {item.outcome}</span>"
        else:
            status = "<span style='color:#d64545'>✗ failed</span>"
        mode = "auto-run" if item.mode == "auto" else "needs approval"
        toggle = ""
        body = ""
        if item.output is not None:
            open_ = item.call_id in self.expanded
            toggle = (f" · <a href='toggle:{html.escape(item.call_id)}'>"
                      f"{'hide result' if open_ else 'show result'}</a>")
            if open_:
                text = json.dumps(item.output, indent=2, ensure_ascii=False)
                # wrapped, not <pre>: a long value must not scroll the transcript sideways
                body = (f"<div style='font-family:monospace; font-size:small; "
                        f"white-space:pre-wrap; margin:4px 0 0 18px'>"
                        f"{html.escape(breakable(text))}</div>")
        sig = html.escape(breakable(call_signature(item.name, item.arguments), 40, 60))
        # same nesting as chat bubbles: an appended (insertHtml) outer table loses its
        # background, an inner one keeps it
        return (f"<table width='100%' cellspacing='0' cellpadding='0' style='margin:2px 0'>"
                f"<tr><td><table width='100%' cellpadding='4' style='background:{bg}'>"
                f"<tr><td><span style='font-family:monospace; font-size:small'>⚙ {sig}</span>"
                f" <span style='color:{muted}; font-size:small'>· {mode} · {status}{toggle}"
                f"</span>{body}</td></tr></table></td></tr></table>")
