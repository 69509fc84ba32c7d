"""The customer's chat window: what customers judge us by.

Only rendering and user intents live here; the conversation logic is in
:class:`hitl_desktop.client.chat.ChatModel` and the network in
:class:`hitl_desktop.client.connection.HostConnection`.
"""

from __future__ import annotations

import contextlib
import logging
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

from PySide6.QtCore import QEvent, QSize, Qt, QTimer, Signal
from PySide6.QtGui import QCloseEvent, QFontMetrics, QKeyEvent, QResizeEvent, QShowEvent
from PySide6.QtWidgets import (
    QApplication,
    QFrame,
    QGridLayout,
    QHBoxLayout,
    QLabel,
    QPlainTextEdit,
    QPushButton,
    QScrollArea,
    QSizePolicy,
    QVBoxLayout,
    QWidget,
)

from hitl_desktop.ui import theme
from hitl_desktop.ui.customer_sign_in import AccountBadge, SignInPanel
from hitl_desktop.ui.fit import WrapLabel, breakable, fit_to_screen

if TYPE_CHECKING:
    # types only: the window shows before the network stack (pydantic, websockets)
    # is imported, so it must not need these modules at run time until bind()
    from hitl_desktop.client.chat import ChatItem, ChatModel
    from hitl_desktop.client.connection import HostConnection

log = logging.getLogger(__name__)

SHOP_NAME = "Northwind Goods"
# client.chat.Delivery values (a StrEnum, so plain strings compare equal)
_DELIVERY_MARK = {
    "sending": "Sending…",
    "sent": "✓ Sent",
    "delivered": "✓✓ Delivered",
    "failed": "Not sent",
}
# client.connection.ConnectionState values
CONNECTED, CONNECTING, RECONNECTING, FAILED, OFFLINE = (
    "connected", "connecting", "reconnecting", "failed", "offline")


@dataclass(slots=True)
class _Note:
    """A bubble that is not a chat message (the greeting); shaped like ChatItem."""

    key: str
    role: str
    name: str
    text: str
    ts: float
    mine: bool = False
    delivery: str | None = None
    seq: int | None = None
    error: str | None = None
    lost: bool = False
    kind: str = "message"


#: under a message the host lost in an unclean stop (ChatItem.lost)
LOST_MARK = "⚠ May not have reached the other side"


class ComposerEdit(QPlainTextEdit):
    """Enter sends, Shift+Enter starts a new line; grows with its text up to 5 lines."""

    submitted = Signal()
    MAX_LINES = 5

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setPlaceholderText("Type your message…")
        self.setTabChangesFocus(True)
        self.setVerticalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAsNeeded)
        self.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Fixed)
        self.document().documentLayout().documentSizeChanged.connect(self._fit)
        self._fit()

    def keyPressEvent(self, event: QKeyEvent) -> None:
        if event.key() in (Qt.Key.Key_Return, Qt.Key.Key_Enter):
            if event.modifiers() & Qt.KeyboardModifier.ShiftModifier:
                self.insertPlainText("\n")
            else:
                self.submitted.emit()
            event.accept()
            return
        super().keyPressEvent(event)

    def changeEvent(self, event: QEvent) -> None:
        super().changeEvent(event)
        if event.type() in (QEvent.Type.StyleChange, QEvent.Type.FontChange,
                            QEvent.Type.PaletteChange):
            self._fit()  # padding and font come from the style sheet

    def showEvent(self, event: QShowEvent) -> None:
        super().showEvent(event)
        self._fit()

    def _fit(self) -> None:
        self.ensurePolished()
        line = QFontMetrics(self.font()).lineSpacing()
        lines = max(1, min(self.MAX_LINES, int(self.document().size().height())))
        margins = self.contentsMargins()
        doc_margin = int(self.document().documentMargin() * 2)
        self.setFixedHeight(lines * line + doc_margin + margins.top() + margins.bottom() + 4)


class Bubble(QFrame):
    """One chat message: text, sender (theirs), time and delivery state (mine)."""

    def __init__(self, item: ChatItem | _Note, colors: theme.Colors,
                 parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.item = item
        self.mine = item.mine
        self.gap = item.kind == "gap"  # the notice where the host lost messages
        self.setObjectName("gapNotice" if self.gap
                           else "bubbleMine" if item.mine else "bubbleTheirs")
        layout = self._layout = QVBoxLayout(self)
        layout.setContentsMargins(12, 8, 12, 6)
        layout.setSpacing(2)
        self.name_label = QLabel(item.name)
        self.name_label.setObjectName("bubbleName")
        self.name_label.setVisible(not item.mine)
        # long URLs and ids get break opportunities: a bubble never clips a line
        self.text_label = QLabel(breakable(item.text))
        self.text_label.setObjectName("bubbleText")
        self.text_label.setWordWrap(True)
        self.text_label.setTextFormat(Qt.TextFormat.PlainText)
        self.text_label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.meta_label = QLabel()
        self.meta_label.setObjectName("bubbleMeta")
        self.meta_label.setAlignment(Qt.AlignmentFlag.AlignRight)
        layout.addWidget(self.name_label)
        layout.addWidget(self.text_label)
        layout.addWidget(self.meta_label)
        if self.gap:
            self.name_label.setVisible(False)
            self.meta_label.setVisible(False)
            self.setAccessibleName("Interruption notice")
        self.restyle(colors)
        self.refresh()

    def fit(self, max_width: int) -> None:
        """Be as wide as the text needs, up to ``max_width`` (QLabel alone wraps too early)."""
        self.ensurePolished()
        self.text_label.ensurePolished()
        fm = QFontMetrics(self.text_label.font())
        natural = max((fm.horizontalAdvance(line) for line in self.item.text.split("\n")),
                      default=0)
        meta = QFontMetrics(self.meta_label.font()).horizontalAdvance(self.meta_label.text())
        name = QFontMetrics(self.name_label.font()).horizontalAdvance(self.name_label.text())
        inner = max(natural + 4, meta + 4, name + 4 if not self.mine else 0, 40)
        margins = self._layout.contentsMargins()
        inner = min(inner, max_width - margins.left() - margins.right())
        self.text_label.setFixedWidth(inner)

    def refresh(self) -> None:
        """Show the item's current time and delivery state."""
        parts = [theme.format_time(self.item.ts)]
        if self.item.lost:
            parts.append(LOST_MARK)
        elif self.item.mine and self.item.delivery is not None:
            parts.append(_DELIVERY_MARK[self.item.delivery])
        text = "  ·  ".join(parts)
        if self.item.delivery == "failed" and self.item.error:
            text += f" — {self.item.error}"
        self.meta_label.setText(text)
        self.setToolTip("We had an interruption just after this message; if the answer "
                        "depends on it, please send it again." if self.item.lost
                        else self.item.error or "")

    def restyle(self, c: theme.Colors) -> None:
        if self.gap:
            self.setStyleSheet(
                f"#gapNotice{{background:{c.warn_bg};border-radius:10px;}}"
                f"#bubbleText{{color:{c.warn_text};background:transparent;font-size:9.5pt;}}")
            return
        if self.mine:
            bg, fg, meta = c.mine, c.mine_text, "rgba(255,255,255,0.78)"
            border = "none"
            if self.item.delivery == "failed":
                bg = c.error_bg
                fg = meta = c.error_text
        else:
            bg, fg, meta, border = c.surface, c.text, c.muted, f"1px solid {c.border}"
        if self.item.lost:  # dashed edge; the mark itself is in the meta line
            border = f"2px dashed {c.warn_text}"
            if not self.mine:
                meta = c.warn_text
        self.setStyleSheet(
            f"#{self.objectName()}{{background:{bg};border:{border};border-radius:14px;}}"
            f"#bubbleText{{color:{fg};background:transparent;font-size:10.5pt;}}"
            f"#bubbleName{{color:{c.accent};background:transparent;font-weight:600;"
            f"font-size:9pt;}}"
            f"#bubbleMeta{{color:{meta};background:transparent;font-size:8pt;}}"
        )


class TypingIndicator(QLabel):
    """'Representative is typing…' with animated dots."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._step = 0
        self._timer = QTimer(self)
        self._timer.setInterval(400)
        self._timer.timeout.connect(self._tick)
        self.setVisible(False)
        self._tick()

    def set_active(self, active: bool) -> None:
        self.setVisible(active)
        if active:
            self._timer.start()
        else:
            self._timer.stop()

    def _tick(self) -> None:
        self._step = (self._step + 1) % 3
        dots = "." * (self._step + 1)
        self.setText(f"Representative is typing{dots.ljust(3)}")


class ConnectionBanner(QFrame):
    """Shown while not connected: what happened, when we retry, a Retry button."""

    retry_clicked = Signal()

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("connectionBanner")
        layout = self._grid = QGridLayout(self)
        layout.setContentsMargins(12, 6, 8, 6)
        self.label = QLabel()
        self.label.setWordWrap(True)
        self.retry_button = QPushButton("Retry now")
        self.retry_button.setCursor(Qt.CursorShape.PointingHandCursor)
        self.retry_button.clicked.connect(self.retry_clicked)
        # a wrong or revoked link: retrying cannot help, another link can
        self.other_link_button = QPushButton("Open another link…")
        self.other_link_button.setObjectName("otherLinkButton")
        self.other_link_button.setCursor(Qt.CursorShape.PointingHandCursor)
        self.other_link_button.hide()
        layout.addWidget(self.label, 0, 0)
        layout.addWidget(self.retry_button, 0, 1)
        layout.addWidget(self.other_link_button, 0, 2)
        layout.setColumnStretch(0, 1)
        self.kind = "ok"
        self.setVisible(False)

    def show_state(self, kind: str, text: str, *, retry: bool, c: theme.Colors) -> None:
        self.kind = kind
        self.label.setText(text)
        self.retry_button.setVisible(retry)
        _bg, fg = theme.banner_colors(c, kind)
        self.setStyleSheet(
            f"#connectionBanner{{{theme.banner_css(c, kind)}}}"
            f"QLabel{{background:transparent;color:{fg};font-weight:600;}}"
        )
        self.retry_button.setStyleSheet(theme.button_css(c, primary=False))
        self.other_link_button.setStyleSheet(theme.button_css(c, primary=False))
        self.other_link_button.setVisible(kind == "error")
        # with both buttons the sentence gets the whole width above them (beside them
        # a 430 px window left it ~130 px: a word a line, its end cut off)
        below = int(kind == "error")
        self._grid.addWidget(self.label, 0, 0, 1, 3 if below else 1)
        self._grid.addWidget(self.retry_button, below, 1)
        self._grid.addWidget(self.other_link_button, below, 2)
        self.setVisible(True)


class CustomerWindow(QWidget):
    """The chat window a customer sees."""

    closed = Signal()  # the user closed the window
    open_link_requested = Signal()  # "Open another link…" after a link failed

    chat: ChatModel
    connection: HostConnection

    def __init__(
        self,
        chat: ChatModel | None = None,
        connection: HostConnection | None = None,
        parent: QWidget | None = None,
    ) -> None:
        """Without a chat and connection the window shows at once ("Connecting…");
        :meth:`bind` attaches them when the network stack has loaded."""
        super().__init__(parent)
        self._bound = False
        self.bubbles: list[Bubble] = []
        self._by_key: dict[str, Bubble] = {}
        self._colors = theme.colors()
        self._restyling = False
        self.setWindowTitle(f"{SHOP_NAME} — Support chat")
        self.setObjectName("customerWindow")
        self.resize(*fit_to_screen(self, (440, 660)))  # never larger than the screen
        self.setMinimumSize(320, 420)

        root = QVBoxLayout(self)
        root.setContentsMargins(0, 0, 0, 0)
        root.setSpacing(0)
        root.addWidget(self._build_header())
        self.sign_in_panel = SignInPanel()
        root.addWidget(self.sign_in_panel)
        self.account.sign_in_requested.connect(self.sign_in_panel.open)
        self.banner = ConnectionBanner()
        self.banner.other_link_button.clicked.connect(self.open_link_requested)
        root.addWidget(self.banner)

        self.scroll_area = QScrollArea()
        self.scroll_area.setObjectName("chatScroll")
        self.scroll_area.setWidgetResizable(True)
        self.scroll_area.setFrameShape(QFrame.Shape.NoFrame)
        self.scroll_area.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.list_widget = QWidget()
        self.list_widget.setObjectName("chatList")
        self.list_layout = QVBoxLayout(self.list_widget)
        self.list_layout.setContentsMargins(14, 14, 14, 8)
        self.list_layout.setSpacing(8)
        self.intro = self._build_intro()
        self.list_layout.addWidget(self.intro)
        self.list_layout.addStretch(1)
        self.scroll_area.setWidget(self.list_widget)
        self.scroll_area.verticalScrollBar().rangeChanged.connect(self._on_range_changed)
        self.scroll_area.verticalScrollBar().valueChanged.connect(self._on_scrolled)
        root.addWidget(self.scroll_area, 1)

        self.typing = TypingIndicator()
        self.typing.setObjectName("typingIndicator")
        self.typing.setContentsMargins(18, 2, 18, 4)
        root.addWidget(self.typing)

        self.closed_label = QLabel()
        self.closed_label.setObjectName("closedNotice")
        self.closed_label.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.closed_label.setWordWrap(True)
        self.closed_label.setVisible(False)
        root.addWidget(self.closed_label)

        composer = QFrame()
        composer.setObjectName("composerBar")
        row = QHBoxLayout(composer)
        row.setContentsMargins(12, 10, 12, 12)
        row.setSpacing(8)
        self.composer = ComposerEdit()
        self.composer.setObjectName("composer")
        self.composer.submitted.connect(self.submit)
        self.composer.textChanged.connect(self._on_text_changed)
        self.send_button = QPushButton("Send")
        self.send_button.setObjectName("sendButton")
        self.send_button.setCursor(Qt.CursorShape.PointingHandCursor)
        self.send_button.setEnabled(False)
        self.send_button.clicked.connect(self.submit)
        row.addWidget(self.composer, 1)
        row.addWidget(self.send_button, 0, Qt.AlignmentFlag.AlignBottom)
        root.addWidget(composer)
        self.hint = QLabel("Enter to send · Shift+Enter for a new line")
        self.hint.setObjectName("composerHint")
        self.hint.setContentsMargins(14, 0, 14, 8)
        root.addWidget(self.hint)

        self.greeting_bubble: Bubble | None = None
        self._stick_to_bottom = True
        self._countdown = QTimer(self)
        self._countdown.setInterval(1000)
        self._countdown.timeout.connect(self._refresh_banner)
        self._recovered = QTimer(self)
        self._recovered.setSingleShot(True)
        self._recovered.setInterval(2500)
        self._recovered.timeout.connect(self._hide_recovered)
        self._was_disconnected = False

        self._restyle()
        self.composer.setFocus()
        if chat is not None and connection is not None:
            self.bind(chat, connection)
        else:
            self.banner.show_state("info", "Connecting to support…", retry=False,
                                   c=self._colors)

    def unbind(self) -> None:
        """Let go of the chat and connection (another link is being opened): stop
        following them and clear what they showed."""
        if not self._bound:
            return
        chat, connection = self.chat, self.connection
        for signal, slot in ((self.banner.retry_clicked, connection.reconnect_now),
                             (chat.message_added, self._on_added),
                             (chat.message_changed, self._on_changed),
                             (chat.greeting_changed, self._on_greeting),
                             (chat.typing_changed, self.typing.set_active),
                             (chat.session_closed, self._on_closed),
                             (chat.session_reopened, self._on_reopened),
                             (chat.reset, self._on_reset),
                             (connection.state_changed, self._on_state)):
            with contextlib.suppress(RuntimeError, TypeError):
                signal.disconnect(slot)
        self._bound = False
        self._on_reset()
        if self.greeting_bubble is not None:
            self.greeting_bubble.setParent(None)
            self.greeting_bubble.deleteLater()
            self.greeting_bubble = None
        self._on_reopened("")  # input enabled again until the new chat says otherwise
        self.typing.set_active(False)

    def bind(self, chat: ChatModel, connection: HostConnection) -> None:
        """Show this chat and follow this connection (once; :meth:`unbind` first to
        show another)."""
        if self._bound:
            raise RuntimeError("the window is already bound to a chat")
        self.chat = chat
        self.connection = connection
        self._bound = True
        self.banner.retry_clicked.connect(connection.reconnect_now)
        chat.message_added.connect(self._on_added)
        chat.message_changed.connect(self._on_changed)
        chat.greeting_changed.connect(self._on_greeting)
        chat.typing_changed.connect(self.typing.set_active)
        chat.session_closed.connect(self._on_closed)
        chat.session_reopened.connect(self._on_reopened)
        chat.reset.connect(self._on_reset)
        self.sign_in_panel.bind(chat)
        chat.identity_changed.connect(lambda _status: self._show_account())
        connection.state_changed.connect(self._on_state)
        if chat.greeting:
            self._on_greeting(chat.greeting)
        for item in chat.items:
            self._on_added(item)
        self._on_state(connection.state.value)
        self._on_text_changed()
        if chat.closed:
            self._on_closed(chat.closed_reason or "")

    # ------------------------------------------------------------------ building

    def _build_header(self) -> QWidget:
        header = QFrame()
        header.setObjectName("chatHeader")
        row = QHBoxLayout(header)
        row.setContentsMargins(14, 10, 14, 10)
        row.setSpacing(10)
        self.avatar = QLabel(theme.initials(SHOP_NAME))
        self.avatar.setObjectName("avatar")
        self.avatar.setFixedSize(QSize(38, 38))
        self.avatar.setAlignment(Qt.AlignmentFlag.AlignCenter)
        titles = QVBoxLayout()
        titles.setSpacing(0)
        self.title_label = QLabel(SHOP_NAME)
        self.title_label.setObjectName("headerTitle")
        # wrapped, never clipped: the account badge shares the row, and a 400-440 px
        # window (the demo's) had room for "● Online · a representative wi…" only
        self.status_label = WrapLabel("Connecting…", max_chars=160)
        self.status_label.setObjectName("headerStatus")
        titles.addWidget(self.title_label)
        titles.addWidget(self.status_label)
        row.addWidget(self.avatar)
        row.addLayout(titles, 1)
        self.account = AccountBadge()
        row.addWidget(self.account, 0, Qt.AlignmentFlag.AlignVCenter)
        return header

    def _show_account(self) -> None:
        """Signed in as …, or the way to sign in (only while the chat can take it)."""
        if not self._bound:
            return
        usable = self.connection.state.value == CONNECTED and not self.is_closed
        self.account.show_status(self.chat.identity, connected=usable)
        if not usable or self.chat.identity.signed_in:
            self.sign_in_panel.hide()

    def _build_intro(self) -> QWidget:
        """What this chat is, at the top of the history: who answers, and when."""
        card = QFrame()
        card.setObjectName("introCard")
        lay = QVBoxLayout(card)
        lay.setContentsMargins(16, 12, 16, 12)
        lay.setSpacing(2)
        title = QLabel(f"{SHOP_NAME} customer support")
        title.setObjectName("introTitle")
        title.setAlignment(Qt.AlignmentFlag.AlignCenter)
        body = QLabel("A member of our team answers you here.\n"
                      "Mon\u2013Fri 8:00\u201320:00 · Sat 9:00\u201314:00 (US Eastern)")
        body.setObjectName("introBody")
        body.setAlignment(Qt.AlignmentFlag.AlignCenter)
        body.setWordWrap(True)
        lay.addWidget(title)
        lay.addWidget(body)
        return card

    def _restyle(self) -> None:
        c = self._colors = theme.colors()
        self._restyling = True
        try:
            self.setStyleSheet(
                f"#customerWindow{{background:{c.window};}}"
                f"#chatHeader{{background:{c.surface};border-bottom:1px solid {c.border};}}"
                f"#avatar{{background:{c.accent};color:{c.accent_text};border-radius:19px;"
                f"font-weight:700;font-size:10pt;}}"
                f"#headerTitle{{color:{c.text};font-weight:700;font-size:11.5pt;}}"
                f"#headerStatus{{color:{c.muted};font-size:9pt;}}"
                f"#chatScroll, #chatList{{background:{c.window};}}"
                f"#introCard{{background:transparent;border:1px dashed {c.border};"
                f"border-radius:12px;}}"
                f"#introTitle{{color:{c.text};font-weight:600;font-size:9.5pt;}}"
                f"#introBody{{color:{c.muted};font-size:8.5pt;}}"
                f"#typingIndicator{{color:{c.muted};font-style:italic;font-size:9pt;"
                f"background:{c.window};}}"
                f"#closedNotice{{color:{c.muted};background:{c.window};padding:6px;}}"
                f"#composerBar{{background:{c.surface};border-top:1px solid {c.border};}}"
                f"#composer{{background:{c.window};color:{c.text};border:1px solid {c.border};"
                f"border-radius:10px;padding:4px 6px;font-size:10.5pt;}}"
                f"#composer:focus{{border:1px solid {c.accent};}}"
                f"#composerHint{{color:{c.muted};background:{c.surface};font-size:8pt;}}"
            )
            self.send_button.setStyleSheet(theme.button_css(c))
            self.sign_in_panel.restyle(c)
            self.account.setStyleSheet(
                f"#signedInAs{{color:{c.muted};font-size:9pt;}}"
                f"#signInButton{{color:{c.accent};background:transparent;border:1px solid "
                f"{c.accent};border-radius:12px;padding:3px 10px;font-size:9pt;}}")
            for bubble in self.bubbles:
                bubble.restyle(c)
            if self.greeting_bubble is not None:
                self.greeting_bubble.restyle(c)
            if self._bound:
                self._on_state(self.connection.state.value)
        finally:
            self._restyling = False

    def changeEvent(self, event: QEvent) -> None:
        if event.type() == QEvent.Type.PaletteChange and not self._restyling:
            self._restyle()
        super().changeEvent(event)

    # ------------------------------------------------------------------ user intents

    def submit(self) -> None:
        """Send the composer's text (Enter or the Send button)."""
        text = self.composer.toPlainText()
        if not self._bound or not text.strip() or self.chat.closed:
            return
        self.composer.clear()
        self._stick_to_bottom = True
        self.chat.send_text(text)

    def _on_text_changed(self) -> None:
        has_text = bool(self.composer.toPlainText().strip())
        if not self._bound:
            self.send_button.setEnabled(False)
            return
        self.send_button.setEnabled(has_text and not self.chat.closed)
        if has_text:
            self.chat.set_composing(True)

    # ------------------------------------------------------------------ model events

    def _insert(self, bubble: Bubble, index: int | None = None) -> None:
        row = QHBoxLayout()
        row.setContentsMargins(0, 0, 0, 0)
        if bubble.gap:
            row.addStretch(1)
            row.addWidget(bubble, 0)
            row.addStretch(1)
        elif bubble.mine:
            row.addStretch(1)
            row.addWidget(bubble, 0)
        else:
            row.addWidget(bubble, 0)
            row.addStretch(1)
        self._fit_bubble(bubble)
        position = self.list_layout.count() if index is None else index
        self.list_layout.insertLayout(position, row)

    def _fit_bubble(self, bubble: Bubble) -> None:
        bubble.fit(max(200, int(self.scroll_area.viewport().width() * 0.78)))

    def _on_greeting(self, text: str) -> None:
        if self.greeting_bubble is not None:
            self.greeting_bubble.item.text = text
            self.greeting_bubble.text_label.setText(breakable(text))
            return
        item = _Note(
            key="greeting", role="system", name=SHOP_NAME, text=text,
            ts=self.chat.items[0].ts if self.chat.items else time.time(),
        )
        self.greeting_bubble = Bubble(item, self._colors)
        self.greeting_bubble.setObjectName("bubbleTheirs")
        self.greeting_bubble.restyle(self._colors)
        self._insert(self.greeting_bubble, index=2)  # after the intro card and the stretch

    def _on_added(self, item: ChatItem) -> None:
        bubble = Bubble(item, self._colors)
        self.bubbles.append(bubble)
        self._by_key[item.key] = bubble
        if item.mine:
            self._stick_to_bottom = True
        self._insert(bubble)
        if not item.mine and not self.isActiveWindow():
            QApplication.alert(self)  # flash the task bar entry: an answer arrived

    def _on_changed(self, item: ChatItem) -> None:
        bubble = self._by_key.get(item.key)
        if bubble is not None:
            bubble.refresh()
            bubble.restyle(self._colors)
            self._fit_bubble(bubble)

    def _on_closed(self, reason: str) -> None:
        """Read-only from now on, and said everywhere: the header no longer says
        "Online", the composer is disabled (not silently dropping what is typed)."""
        why = f" {reason}" if reason else ""
        self.closed_label.setText(
            f"This conversation has ended.{why} You can read it here, but no longer "
            "write; please start a new chat if you need more help.")
        self.closed_label.setVisible(True)
        self.typing.set_active(False)
        self.composer.setEnabled(False)
        self.composer.setPlaceholderText("This conversation has ended")
        self.send_button.setEnabled(False)
        self.send_button.setToolTip("This conversation has ended")
        self.hint.setVisible(False)
        self._show_status()

    def _on_reopened(self, _by: str) -> None:
        self.closed_label.setVisible(False)
        self.composer.setEnabled(True)
        self.composer.setPlaceholderText("Type your message…")
        self.send_button.setToolTip("")
        self.hint.setVisible(True)
        self._on_text_changed()
        self._show_status()

    @property
    def is_closed(self) -> bool:
        return self._bound and self.chat.closed

    def _show_status(self) -> None:
        if self._bound:
            self._on_state(self.connection.state.value)

    def _on_reset(self) -> None:
        for bubble in self.bubbles:
            bubble.setParent(None)
            bubble.deleteLater()
        self.bubbles.clear()
        self._by_key.clear()

    def _on_scrolled(self, value: int) -> None:
        # follow new messages only while the reader is at the bottom
        bar = self.scroll_area.verticalScrollBar()
        self._stick_to_bottom = value >= bar.maximum() - 24

    def _on_range_changed(self, _lo: int, hi: int) -> None:
        if self._stick_to_bottom:
            self.scroll_area.verticalScrollBar().setValue(hi)

    def resizeEvent(self, event: QResizeEvent) -> None:
        super().resizeEvent(event)
        for bubble in self.bubbles:
            self._fit_bubble(bubble)
        if self.greeting_bubble is not None:
            self._fit_bubble(self.greeting_bubble)

    # ------------------------------------------------------------------ connection

    def _on_state(self, state: str) -> None:
        c = self._colors
        st = str(state)
        self._show_account()
        if self.is_closed and st in (CONNECTED, OFFLINE):
            self._countdown.stop()
            self.status_label.set_full_text("Conversation ended")
            self.status_label.setStyleSheet(f"color:{c.muted};")
            self.banner.setVisible(False)
            return
        if st == CONNECTED:
            self._countdown.stop()
            self.status_label.set_full_text("● Online · a representative will answer you here")
            self.status_label.setStyleSheet(f"color:{c.ok};")
            if self._was_disconnected:
                self.banner.show_state("ok", "Connected again.", retry=False, c=c)
                self._recovered.start()
            elif self.banner.kind != "ok" or not self._recovered.isActive():
                self.banner.setVisible(False)
            self._was_disconnected = False
            return
        self.status_label.setStyleSheet(f"color:{c.muted};")
        if st == CONNECTING:
            self.status_label.set_full_text("Connecting…")
            self.banner.show_state("info", "Connecting to support…", retry=False, c=c)
            return
        if st == FAILED:
            self._countdown.stop()
            self.status_label.set_full_text("Offline")
            self.banner.show_state(
                "error", self.connection.state_message or "Cannot connect.", retry=True, c=c
            )
            return
        if st == OFFLINE:
            self._countdown.stop()
            self.status_label.set_full_text("Offline")
            return
        self._was_disconnected = True
        self.status_label.set_full_text("Reconnecting…")
        self._countdown.start()
        self._refresh_banner()

    def _refresh_banner(self) -> None:
        if not self._bound or self.connection.state != RECONNECTING:
            self._countdown.stop()
            return
        wait = self.connection.retry_in()
        pending = self.connection.pending_count()
        if self.connection.connects:
            text = "Connection lost. "
            text += f"Reconnecting in {wait:.0f} s…" if wait else "Reconnecting…"
        else:  # never connected: nothing was lost (the host is not up or not reachable)
            text = "Cannot reach the support desk yet. "
            text += f"Trying again in {wait:.0f} s…" if wait else "Trying again…"
        if pending:
            text += f" {pending} message{'s' if pending > 1 else ''} will be sent then."
        self.banner.show_state("warn", text, retry=True, c=self._colors)

    def retry_visible(self) -> bool:
        """Whether the banner offers "Retry now" (tests, accessibility checks)."""
        return self.banner.isVisible() and not self.banner.retry_button.isHidden()

    def _hide_recovered(self) -> None:
        if self._bound and self.connection.state == CONNECTED:
            self.banner.setVisible(False)
            self.banner.kind = "ok"

    def closeEvent(self, event: QCloseEvent) -> None:
        if self._bound:
            self.chat.set_composing(False)
        super().closeEvent(event)
        self.closed.emit()
