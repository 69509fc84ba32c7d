"""The host's window: where it listens, what drafts replies, sessions, links, log.

Why a client of its own host: the window talks to the relay only through an admin
:class:`~hitl_desktop.client.connection.HostConnection` (``session.list``,
``session.updated``, ``session.create``), exactly as a remote admin would, so the UI
never reaches into host internals and the import contract holds. The app module
(:mod:`hitl_desktop.app.host_window`) starts the host and hands over a
:class:`HostInfo` plus that connection.
"""

from __future__ import annotations

import html
import logging
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Final

from PySide6.QtCore import (
    QAbstractTableModel,
    QModelIndex,
    QObject,
    QPersistentModelIndex,
    Qt,
    QTimer,
    Signal,
)
from PySide6.QtGui import QCloseEvent, QColor, QGuiApplication
from PySide6.QtWidgets import (
    QAbstractItemView,
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QFormLayout,
    QFrame,
    QGridLayout,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QLineEdit,
    QMainWindow,
    QPlainTextEdit,
    QPushButton,
    QSplitter,
    QTableView,
    QVBoxLayout,
    QWidget,
)

from hitl_desktop.client.connection import ConnectionState, HostConnection
from hitl_desktop.core.protocol import (
    AssistantStatus,
    CustomerMatch,
    CustomerResults,
    CustomerSearch,
    SessionClose,
    SessionClosed,
    SessionCreate,
    SessionCreated,
    SessionList,
    SessionListRequest,
    SessionOpened,
    SessionSummary,
    SessionUpdated,
    Welcome,
)
from hitl_desktop.ui.ask import Question, ask
from hitl_desktop.ui.fit import fit_to_screen
from hitl_desktop.ui.qr import QrLabel
from hitl_desktop.ui.theme import button_css, colors, format_time

if TYPE_CHECKING:
    from hitl_desktop.ui.insights import InsightsWindow

log = logging.getLogger(__name__)

#: the "New session…" picker lists this many of the shop's customers (by name)
PICKER_LIMIT: Final = 50
NO_CUSTOMER = "No customer: an anonymous visitor (signs in or is verified in the chat)"


@dataclass(slots=True)
class HostInfo:
    """What the window shows about the running host (filled in by the app module)."""

    ws_url: str
    bind: str
    port: int
    public_host: str
    tls: bool
    desk_link: str
    lobby_link: str
    data_dir: str
    lan_addresses: list[str] = field(default_factory=list)
    provider: str = "offline"
    model: str | None = None
    is_ai: bool = False
    vector_store: str = ""
    discovery: str = ""

    @property
    def serves_lan(self) -> bool:
        return self.bind not in ("127.0.0.1", "::1", "localhost")

    def reach_text(self) -> str:
        """How other PCs reach this host, in a sentence."""
        if not self.serves_lan:
            return (f"Only this PC can connect (bound to {self.bind}). Restart with "
                    "--bind 0.0.0.0 to serve your network.")
        scheme = "hitls" if self.tls else "hitl"
        addrs = self.lan_addresses or [self.public_host]
        return "Other PCs connect to " + ", ".join(
            f"{scheme}://{a}:{self.port}" for a in addrs) + " (links below use " \
            f"{self.public_host})."


# ---------------------------------------------------------------------- log view


class LogEmitter(QObject):
    """Carries log records into the GUI thread (queued when emitted from workers)."""

    record = Signal(int, str)


class QtLogHandler(logging.Handler):
    """A logging handler that emits a Qt signal per record."""

    def __init__(self, level: int = logging.INFO) -> None:
        super().__init__(level)
        self.emitter = LogEmitter()
        self.setFormatter(logging.Formatter("%(asctime)s %(levelname)-7s %(name)s: %(message)s",
                                            "%H:%M:%S"))

    def emit(self, record: logging.LogRecord) -> None:
        try:
            self.emitter.record.emit(record.levelno, self.format(record))
        except RuntimeError:  # the emitter is gone (window closed): drop it
            pass
        except Exception:
            self.handleError(record)


class LogView(QPlainTextEdit):
    """A read-only, bounded, colour-coded live log."""

    MAX_LINES: Final = 2000

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setReadOnly(True)
        self.setMaximumBlockCount(self.MAX_LINES)
        self.setLineWrapMode(QPlainTextEdit.LineWrapMode.NoWrap)
        self.setPlaceholderText("Log messages of the host appear here.")
        font = self.font()
        font.setFamilies(["DejaVu Sans Mono", "Consolas", "Menlo", "monospace"])
        font.setPointSizeF(max(8.5, font.pointSizeF() - 1))
        self.setFont(font)
        self._scroll_pending = False
        self.follow = True  # stick to the tail until the user scrolls up to read
        bar = self.verticalScrollBar()
        bar.actionTriggered.connect(lambda _a: QTimer.singleShot(0, self._user_scrolled))

    def _user_scrolled(self) -> None:
        bar = self.verticalScrollBar()
        self.follow = bar.value() >= bar.maximum() - 2

    def add(self, level: int, text: str) -> None:
        c = colors()
        color = (c.error_text if level >= logging.ERROR else
                 c.warn_text if level >= logging.WARNING else c.text if level >= logging.INFO
                 else c.muted)
        self.appendHtml(f'<span style="color:{color}">{html.escape(text)}</span>')
        if self.follow and not self._scroll_pending:
            # the scroll range grows only after the layout catches up: scroll once it has
            self._scroll_pending = True
            QTimer.singleShot(0, self._to_end)

    def _to_end(self) -> None:
        self._scroll_pending = False
        if self.follow:
            bar = self.verticalScrollBar()
            bar.setValue(bar.maximum())

    def lines(self) -> list[str]:
        return self.toPlainText().splitlines()


# ---------------------------------------------------------------------- sessions


class SessionTableModel(QAbstractTableModel):
    """Session summaries from the admin connection, newest activity first."""

    HEADERS: Final = ("Customer", "Title", "State", "Last message", "Messages", "Pending approvals",
                      "Clients")

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.rows: list[SessionSummary] = []

    def rowCount(self, parent: QModelIndex | QPersistentModelIndex = QModelIndex()) -> int:  # noqa: B008
        return 0 if parent.isValid() else len(self.rows)

    def columnCount(self, parent: QModelIndex | QPersistentModelIndex = QModelIndex()) -> int:  # noqa: B008
        return 0 if parent.isValid() else len(self.HEADERS)

    def headerData(self, section: int, orientation: Qt.Orientation,
                   role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if role == Qt.ItemDataRole.DisplayRole and orientation == Qt.Orientation.Horizontal:
            return self.HEADERS[section]
        return None

    def data(self, index: QModelIndex | QPersistentModelIndex,
             role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if not index.isValid():
            return None
        s = self.rows[index.row()]
        col = index.column()
        if role == Qt.ItemDataRole.DisplayRole:
            return self.cell(s, col)
        if role == Qt.ItemDataRole.ToolTipRole:
            return f"{s.session_id}\n{s.last_message or ''}".strip()
        if role == Qt.ItemDataRole.ForegroundRole:
            c = colors()
            if col == 2:
                return QColor(c.ok if s.state == "open" else c.muted)
            if col == 5 and s.pending_approvals:
                return QColor(c.warn_text)
        if role == Qt.ItemDataRole.TextAlignmentRole and col >= 4:
            return int(Qt.AlignmentFlag.AlignCenter)
        if role == Qt.ItemDataRole.UserRole:
            return s.session_id
        return None

    @staticmethod
    def cell(s: SessionSummary, col: int) -> str:
        if col == 0:
            if s.customer_name and s.customer_id:
                return f"{s.customer_name} ({s.customer_id})"
            if s.customer_name or s.customer_id:
                return s.customer_name or s.customer_id or ""
            return f"Visitor #{s.number} (not verified)" if s.number else "—"
        if col == 1:
            return s.title
        if col == 2:
            return s.state
        if col == 3:
            if not s.last_message:
                return "—"
            text = s.last_message.replace("\n", " ")
            text = text if len(text) <= 60 else text[:59] + "…"
            when = format_time(s.last_message_at) if s.last_message_at else ""
            return f"{when}  {text}".strip()
        if col == 4:
            return str(s.messages)
        if col == 5:
            return str(s.pending_approvals)
        return str(s.clients)

    def reset_all(self, sessions: list[SessionSummary]) -> None:
        self.beginResetModel()
        self.rows = sorted(sessions, key=self._key)
        self.endResetModel()

    def merge(self, sessions: list[SessionSummary]) -> None:
        """Add a page of summaries (session.list paging): one reset, not one per row."""
        known = {r.session_id: r for r in self.rows}
        for summary in sessions:
            old = known.get(summary.session_id)
            if old is None or old.last_seq <= summary.last_seq:
                known[summary.session_id] = summary
        self.reset_all(list(known.values()))

    def upsert(self, summary: SessionSummary) -> None:
        """Update a row in place (keeps the selection), or add a new one on top."""
        for i, r in enumerate(self.rows):
            if r.session_id == summary.session_id:
                self.rows[i] = summary
                self.dataChanged.emit(self.index(i, 0), self.index(i, self.columnCount() - 1))
                return
        self.beginInsertRows(QModelIndex(), 0, 0)
        self.rows.insert(0, summary)
        self.endInsertRows()

    def mark_closed(self, session_id: str) -> None:
        for i, r in enumerate(self.rows):
            if r.session_id == session_id and r.state != "closed":
                self.rows[i] = r.model_copy(update={"state": "closed"})
                self.dataChanged.emit(self.index(i, 0), self.index(i, self.columnCount() - 1))

    def find(self, session_id: str) -> SessionSummary | None:
        return next((r for r in self.rows if r.session_id == session_id), None)

    @staticmethod
    def _key(s: SessionSummary) -> tuple[bool, float]:
        return (s.state != "open", -(s.last_message_at or s.created_at))


# ---------------------------------------------------------------------- links


def _copy(text: str) -> None:
    clip = QGuiApplication.clipboard()
    if clip is not None:
        clip.setText(text)


class LinkRow(QWidget):
    """A titled link with Copy and a QR code."""

    def __init__(self, title: str, link: str, hint: str, *, qr_scale: int = 3,
                 parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.link = link
        self.title = QLabel(f"<b>{html.escape(title)}</b>")
        self.hint = QLabel(hint)
        self.hint.setWordWrap(True)
        self.hint.setStyleSheet(f"color:{colors().muted};")
        self.field = QLineEdit(link)
        self.field.setReadOnly(True)
        self.field.setCursorPosition(0)
        self.copy = QPushButton("Copy")
        self.copy.setToolTip("Copy the link to the clipboard")
        self.copy.clicked.connect(self._copy)
        self.qr = QrLabel(link, scale=qr_scale)
        text = QVBoxLayout()
        text.setSpacing(4)
        text.addWidget(self.title)
        row = QHBoxLayout()
        row.addWidget(self.field, 1)
        row.addWidget(self.copy)
        self.button_row = row
        self.replace_button: QPushButton | None = None
        text.addLayout(row)
        text.addWidget(self.hint)
        text.addStretch(1)
        lay = QHBoxLayout(self)
        lay.setContentsMargins(0, 0, 0, 0)
        lay.addLayout(text, 1)
        lay.addWidget(self.qr)

    def set_link(self, link: str) -> None:
        self.link = link
        self.field.setText(link)
        self.field.setCursorPosition(0)
        self.qr.set_text(link)

    def _copy(self) -> None:
        _copy(self.link)
        self.copy.setText("Copied")
        QTimer.singleShot(1500, lambda: self.copy.setText("Copy"))


class SessionLinksDialog(QDialog):
    """The two links of a new session; shown once (the host keeps only hashes)."""

    def __init__(self, created: SessionCreated, title: str,
                 parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.created = created
        self.setWindowTitle(f"New session: {title}")
        lay = QVBoxLayout(self)
        note = QLabel("Send the customer link to the customer and open the agent link in an "
                      "agent window. Copy them now: the host stores only their hashes and "
                      "cannot show them again.")
        note.setWordWrap(True)
        lay.addWidget(note)
        self.customer = LinkRow("Customer link", created.customer_link,
                                "Opens the chat window for this session.", qr_scale=4)
        self.agent = LinkRow("Agent link", created.agent_link,
                             "Opens an agent workspace that sees only this session.",
                             qr_scale=4)
        lay.addWidget(self.customer)
        lay.addWidget(_hline())
        lay.addWidget(self.agent)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Close)
        buttons.rejected.connect(self.reject)
        lay.addWidget(buttons)
        self.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose, True)


class NewSessionDialog(QDialog):
    """Asks which customer the session is for (non-modal; ``submitted`` carries the answer).

    The customer link of a session made for a customer *is* that signed-in shop
    customer (verified from the start); "No customer" makes an anonymous one. The
    list comes from the shop (the host's answer to ``customer.search``)."""

    submitted = Signal(object, object)  # customer_id | None, title | None

    def __init__(self, parent: QWidget | None = None,
                 customers: list[CustomerMatch] | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("New session")
        self.customer = QComboBox()
        self.customer.setEditable(True)
        self.customer.setMinimumContentsLength(40)
        self.customer.setToolTip("The session's customer link is issued for this customer: "
                                 "whoever opens it is that signed-in customer")
        self.set_customers(customers or [])
        self.title = QLineEdit()
        self.title.setPlaceholderText("optional, e.g. \"Order question\"")
        form = QFormLayout(self)
        form.addRow("Customer:", self.customer)
        form.addRow("Title:", self.title)
        buttons = QDialogButtonBox(
            QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel)
        ok = buttons.button(QDialogButtonBox.StandardButton.Ok)
        ok.setText("Create")
        buttons.accepted.connect(self._submit)
        buttons.rejected.connect(self.reject)
        form.addRow(buttons)
        self.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose, True)

    def set_customers(self, customers: list[CustomerMatch]) -> None:
        """Fill the picker (keeps what was chosen when the list arrives later)."""
        chosen = self.customer.currentData() if self.customer.count() else None
        self.customer.clear()
        for c in customers:
            self.customer.addItem(f"{c.name} — {c.email} ({c.customer_id})", c.customer_id)
        self.customer.addItem(NO_CUSTOMER, "")
        index = self.customer.findData(chosen) if chosen is not None else 0
        self.customer.setCurrentIndex(max(0, index))

    def customer_id(self) -> str | None:
        """The chosen customer id; None for an anonymous visitor. Typed text is taken as
        a customer id (the host refuses one the shop does not have)."""
        text = self.customer.currentText().strip()
        index = self.customer.findText(text)
        if index >= 0:
            data = self.customer.itemData(index)
            return str(data) if data else None
        if "(" in text and text.endswith(")"):
            text = text.rsplit("(", 1)[1].rstrip(")")
        return text.split(" ", 1)[0] or None

    def _submit(self) -> None:
        self.submitted.emit(self.customer_id(), self.title.text().strip() or None)
        self.accept()


def _hline() -> QFrame:
    line = QFrame()
    line.setFrameShape(QFrame.Shape.HLine)
    line.setFrameShadow(QFrame.Shadow.Sunken)
    return line


def _card(title: str) -> tuple[QFrame, QVBoxLayout]:
    c = colors()
    frame = QFrame()
    frame.setObjectName("card")
    frame.setStyleSheet(f"#card{{background:{c.surface};border:1px solid {c.border};"
                        "border-radius:10px;}")
    lay = QVBoxLayout(frame)
    lay.setContentsMargins(14, 12, 14, 12)
    head = QLabel(title)
    head.setStyleSheet("font-weight:600;font-size:11pt;")
    lay.addWidget(head)
    return frame, lay


# ---------------------------------------------------------------------- the window


class HostWindow(QMainWindow):
    """Status, links, sessions and log of a running host."""

    closed = Signal()
    setup_requested = Signal()
    session_links_shown = Signal(object)  # SessionCreated
    #: "desk" or "lobby": replace that link (the host revokes the old one)
    rotate_requested = Signal(str)
    #: a session id: revoke its customer and agent links
    revoke_requested = Signal(str)

    def __init__(self, info: HostInfo, admin: HostConnection,
                 log_handler: QtLogHandler | None = None,
                 parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.info = info
        self.admin = admin
        self.setWindowTitle("HITL Desk — host")
        self.resize(*fit_to_screen(self, (1100, 780)))  # never larger than the screen
        self._pending_creates: dict[str, str] = {}  # message id -> title shown
        self.customers: list[CustomerMatch] = []  # the shop's, for "New session…"
        self._customer_search: str | None = None
        self._new_session_dialog: NewSessionDialog | None = None
        self.insights_window: InsightsWindow | None = None
        self._closing = False
        self._question: Question | None = None  # the open confirmation, if any

        central = QWidget()
        outer = QVBoxLayout(central)
        outer.setContentsMargins(14, 12, 14, 12)
        outer.setSpacing(10)

        top = QHBoxLayout()
        top.setSpacing(10)
        top.addWidget(self._status_card(), 5)
        top.addWidget(self._links_card(), 6)
        outer.addLayout(top)

        split = QSplitter(Qt.Orientation.Vertical)
        split.addWidget(self._sessions_panel())
        self.log_view = LogView()
        log_box = QWidget()
        log_lay = QVBoxLayout(log_box)
        log_lay.setContentsMargins(0, 0, 0, 0)
        log_title = QLabel("Log")
        log_title.setStyleSheet("font-weight:600;")
        log_lay.addWidget(log_title)
        log_lay.addWidget(self.log_view)
        split.addWidget(log_box)
        split.setStretchFactor(0, 3)
        split.setStretchFactor(1, 2)
        outer.addWidget(split, 1)
        self.setCentralWidget(central)
        self.setStyleSheet(f"QMainWindow{{background:{colors().window};}}")

        self.connection_label = QLabel()
        self.statusBar().addPermanentWidget(self.connection_label)
        self.statusBar().showMessage(f"Data in {info.data_dir}")

        if log_handler is not None:
            log_handler.emitter.record.connect(self.log_view.add)
        admin.welcome_received.connect(self._on_welcome)
        admin.message_received.connect(self._on_message)
        admin.error_received.connect(self._on_error)
        admin.state_changed.connect(self._on_state)
        self._on_state(admin.state.value)

    # ------------------------------------------------------------------ layout

    def _status_card(self) -> QFrame:
        frame, lay = _card("Host")
        grid = QGridLayout()
        grid.setHorizontalSpacing(12)
        grid.setVerticalSpacing(6)
        self.listen_label = self._value(f"{self.info.ws_url}  (bound to {self.info.bind}:"
                                        f"{self.info.port})")
        self.reach_label = self._value(self.info.reach_text())
        self.engine_label = self._value(self._engine_text())
        self.store_label = self._value(self.info.vector_store or "—")
        self.discovery_label = self._value(self.info.discovery or "—")
        self.counts_label = self._value("0 open sessions")
        for row, (name, widget) in enumerate((
            ("Listening", self.listen_label), ("Reach", self.reach_label),
            ("Assistant", self.engine_label), ("Vector store", self.store_label),
            ("LAN discovery", self.discovery_label), ("Sessions", self.counts_label),
        )):
            key = QLabel(name)
            key.setStyleSheet(f"color:{colors().muted};")
            grid.addWidget(key, row, 0, Qt.AlignmentFlag.AlignTop)
            grid.addWidget(widget, row, 1)
        grid.setColumnStretch(1, 1)
        lay.addLayout(grid)
        self.setup_button = QPushButton("Run setup…")
        self.setup_button.setToolTip("API key, model and vector-store upload")
        self.setup_button.clicked.connect(self.setup_requested.emit)
        row_l = QHBoxLayout()
        row_l.addStretch(1)
        row_l.addWidget(self.setup_button)
        lay.addLayout(row_l)
        lay.addStretch(1)
        return frame

    @staticmethod
    def _value(text: str) -> QLabel:
        lab = QLabel(text)
        lab.setWordWrap(True)
        lab.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        return lab

    def _engine_text(self) -> str:
        if self.info.is_ai:
            return f"AI co-pilot: {self.info.provider}, model {self.info.model or '?'}"
        return "Offline assistant (no API key: answers from the knowledge base and orders)"

    def _links_card(self) -> QFrame:
        frame, lay = _card("Invite links")
        self.desk_row = LinkRow(
            "Agent desk link", self.info.desk_link,
            "Representatives open this in the agent window: it sees every session.")
        self.lobby_row = LinkRow(
            "Customer lobby link", self.info.lobby_link,
            "Each customer who opens it gets a new chat session.")
        for which, row in (("desk", self.desk_row), ("lobby", self.lobby_row)):
            replace = QPushButton("Replace…")
            replace.setToolTip("Issue a new link; the old one stops working at once "
                               "(for a link that leaked)")
            replace.clicked.connect(lambda _=False, w=which: self.ask_rotate(w))
            row.replace_button = replace
            row.button_row.addWidget(replace)
        lay.addWidget(self.desk_row)
        lay.addWidget(_hline())
        lay.addWidget(self.lobby_row)
        return frame

    def ask_rotate(self, which: str) -> Question:
        who = "every representative" if which == "desk" else "new customers"
        self._question = ask(
            self, f"Replace the {which} link?", yes="Replace link",
            on_yes=lambda: self.rotate_requested.emit(which),
            detail=f"The old link stops working at once: {who} using it must get the new "
                   "one." + (" Chats already opened through it continue." if which == "lobby"
                             else ""))
        return self._question

    def set_link(self, which: str, link: str) -> None:
        """Show a replaced link."""
        row = self.desk_row if which == "desk" else self.lobby_row
        row.set_link(link)
        self.statusBar().showMessage(f"The {which} link was replaced; the old one no longer "
                                     "works.", 8000)

    def _sessions_panel(self) -> QWidget:
        box = QWidget()
        lay = QVBoxLayout(box)
        lay.setContentsMargins(0, 0, 0, 0)
        head = QHBoxLayout()
        title = QLabel("Sessions")
        title.setStyleSheet("font-weight:600;")
        head.addWidget(title)
        head.addStretch(1)
        self.close_button = QPushButton("Close session")
        self.close_button.setEnabled(False)
        c = colors()
        self.close_button.setStyleSheet(
            button_css(c, primary=False)
            + f"QPushButton:disabled{{color:{c.muted};border-color:{c.border};}}")
        self.close_button.clicked.connect(self.close_selected_session)
        self.new_button = QPushButton("New session…")
        self.new_button.setStyleSheet(button_css(colors()))
        self.new_button.clicked.connect(self.open_new_session_dialog)
        self.insights_button = QPushButton("Insights…")
        self.insights_button.setStyleSheet(button_css(c, primary=False))
        self.insights_button.setToolTip("How the co-pilot and the desk are doing; with a "
                                        "session selected, what was changed in its drafts")
        self.insights_button.clicked.connect(self.open_insights)
        head.addWidget(self.insights_button)
        self.revoke_button = QPushButton("Revoke links")
        self.revoke_button.setToolTip("The session's customer and agent links stop working "
                                      "at once (connected windows are closed)")
        self.revoke_button.setEnabled(False)
        self.revoke_button.setStyleSheet(self.close_button.styleSheet())
        self.revoke_button.clicked.connect(self.ask_revoke_selected)
        head.addWidget(self.revoke_button)
        head.addWidget(self.close_button)
        head.addWidget(self.new_button)
        lay.addLayout(head)
        self.sessions = SessionTableModel(self)
        self.table = QTableView()
        self.table.setModel(self.sessions)
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.table.setAlternatingRowColors(True)
        self.table.verticalHeader().setVisible(False)
        self.table.setShowGrid(False)
        hdr = self.table.horizontalHeader()
        hdr.setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        hdr.setSectionResizeMode(3, QHeaderView.ResizeMode.Stretch)
        sel = self.table.selectionModel()
        sel.selectionChanged.connect(self._selection_changed)
        self.sessions.modelReset.connect(self._selection_changed)
        self.sessions.dataChanged.connect(self._selection_changed)
        lay.addWidget(self.table, 1)
        return box

    # ------------------------------------------------------------------ actions

    def open_new_session_dialog(self) -> NewSessionDialog:
        dialog = NewSessionDialog(self, self.customers)
        dialog.submitted.connect(self.create_session)
        self._new_session_dialog = dialog
        dialog.destroyed.connect(lambda *_: setattr(self, "_new_session_dialog", None))
        self.load_customers()  # the shop may have changed since
        dialog.open()
        return dialog

    def load_customers(self) -> None:
        """Ask the host for the shop's customers ("*": everyone, by name)."""
        self._customer_search = self.admin.send(CustomerSearch(query="*", limit=PICKER_LIMIT))

    def create_session(self, customer_id: str | None, title: str | None = None) -> str:
        """Ask the host for a session; its links are shown when ``session.created`` comes."""
        msg_id = self.admin.send(SessionCreate(customer_id=customer_id, title=title))
        self._pending_creates[msg_id] = title or customer_id or "session"
        self.statusBar().showMessage("Creating a session…", 3000)
        return msg_id

    def selected_session(self) -> str | None:
        rows = self.table.selectionModel().selectedRows()
        if not rows:
            return None
        return self.sessions.rows[rows[0].row()].session_id

    def open_insights(self) -> InsightsWindow:
        """The Insights window (one per host window); shows the selected session's changes."""
        from hitl_desktop.ui.insights import InsightsWindow

        if self.insights_window is None:
            self.insights_window = InsightsWindow(self.admin)
            self.insights_window.overview.refresh()
        sid = self.selected_session()
        if sid is not None:
            self.insights_window.show_changes(sid)
        self.insights_window.show()
        self.insights_window.raise_()
        return self.insights_window

    def close_selected_session(self) -> None:
        sid = self.selected_session()
        if sid is not None:
            self.admin.send(SessionClose(), session=sid)

    def ask_revoke_selected(self) -> Question | None:
        sid = self.selected_session()
        if sid is None:
            return None
        self._question = ask(
            self, f"Revoke the links of session {sid}?", yes="Revoke links",
            on_yes=lambda: self.revoke_requested.emit(sid),
            detail="Its customer and agent links stop working at once; desk agents keep "
                   "the session.")
        return self._question

    def _selection_changed(self, *_: object) -> None:
        sid = self.selected_session()
        s = self.sessions.find(sid) if sid else None
        self.close_button.setEnabled(s is not None and s.state == "open")
        self.revoke_button.setEnabled(s is not None)

    def set_vector_store(self, text: str) -> None:
        self.info.vector_store = text
        self.store_label.setText(text)

    def set_discovery(self, text: str) -> None:
        self.info.discovery = text
        self.discovery_label.setText(text)

    # ------------------------------------------------------------------ host messages

    def _on_state(self, state: str) -> None:
        text = {
            ConnectionState.CONNECTED.value: "● connected to the relay",
        }.get(state, f"○ {state} {self.admin.state_message}".strip())
        self.connection_label.setText(text)

    def _on_welcome(self, welcome: Welcome) -> None:
        self.sessions.reset_all(list(welcome.sessions))
        self._update_counts()
        if welcome.cursor is not None:  # the first page; page in the rest (issue 18)
            self.admin.send(SessionListRequest(cursor=welcome.cursor, limit=500))
        self.load_customers()

    def _on_message(self, env: Any, payload: Any) -> None:
        if isinstance(payload, SessionUpdated):
            self.sessions.upsert(payload.summary)
        elif isinstance(payload, SessionOpened):
            if self.sessions.find(payload.summary.session_id) is None:
                self.sessions.upsert(payload.summary)
        elif isinstance(payload, SessionList):
            self.sessions.merge(list(payload.sessions))
            if payload.cursor is not None and self.sessions.rowCount() < 50_000:
                self.admin.send(SessionListRequest(cursor=payload.cursor, limit=500))
        elif isinstance(payload, SessionClosed) and env.session:
            self.sessions.mark_closed(env.session)
        elif isinstance(payload, CustomerResults):
            self.customers = list(payload.customers)
            if self._new_session_dialog is not None:
                self._new_session_dialog.set_customers(self.customers)
            return
        elif isinstance(payload, SessionCreated):
            title = self._pending_creates.pop(env.ref or "", None)
            if title is not None:
                self.show_session_links(payload, title)
        elif isinstance(payload, AssistantStatus):
            self.info.provider, self.info.model, self.info.is_ai = (
                payload.provider, payload.model, payload.is_ai)
            text = self._engine_text()
            if payload.state in ("error", "unconfigured") and payload.message:
                text += f" — {payload.message}"
            self.engine_label.setText(text)
        else:
            return
        self._update_counts()

    def _on_error(self, code: str, message: str, ref: object) -> None:
        if isinstance(ref, str) and self._pending_creates.pop(ref, None) is not None:
            message = f"Could not create the session: {message}"
        self.statusBar().showMessage(message, 8000)
        log.warning("host answered %s: %s", code, message)

    def show_session_links(self, created: SessionCreated, title: str) -> SessionLinksDialog:
        dialog = SessionLinksDialog(created, title, self)
        dialog.show()
        self.session_links_shown.emit(created)
        return dialog

    def _update_counts(self) -> None:
        rows = self.sessions.rows
        open_ = sum(1 for r in rows if r.state == "open")
        pending = sum(r.pending_approvals for r in rows)
        clients = sum(r.clients for r in rows if r.state == "open")
        self.counts_label.setText(
            f"{open_} open, {len(rows) - open_} closed; {pending} pending approvals; "
            f"{clients} clients connected"
        )

    # ------------------------------------------------------------------ shutdown

    def closeEvent(self, event: QCloseEvent) -> None:
        if self.insights_window is not None:
            self.insights_window.close()
        if not self._closing:
            self._closing = True
            self.statusBar().showMessage("Stopping the host…")
            self.closed.emit()
        event.accept()

