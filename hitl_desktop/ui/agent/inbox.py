"""Inbox panel: every session with its customer, last message and what needs attention.

On a desk (issue 16) it also shows who holds each conversation, its status and how
long the customer has been waiting, with the filters mine / unassigned / all open /
resolved (``client.desk`` decides what each shows and the order: longest wait first)
and a context menu to take, release, transfer and set the status.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from PySide6 import QtWidgets
from PySide6.QtCore import (
    QModelIndex,
    QPersistentModelIndex,
    QPoint,
    QRect,
    QSize,
    Qt,
    QTimer,
    Signal,
)
from PySide6.QtGui import (
    QColor,
    QFont,
    QPainter,
    QPalette,
    QResizeEvent,
    QStandardItem,
    QStandardItemModel,
)
from PySide6.QtWidgets import (
    QAbstractItemView,
    QButtonGroup,
    QGridLayout,
    QLayout,
    QListView,
    QMenu,
    QStyledItemDelegate,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from hitl_desktop.client.desk import (
    FILTER_TEXT,
    FILTERS,
    InboxFilter,
    filter_counts,
    filtered,
    holder_text,
    waiting_level,
    waiting_text,
)
from hitl_desktop.client.workspace import COALESCE_MS, STATUS_TEXT, SessionView, Workspace

if TYPE_CHECKING:
    from PySide6.QtWidgets import QStyleOptionViewItem

ROLE_ID = Qt.ItemDataRole.UserRole + 1
ROLE_VIEW = Qt.ItemDataRole.UserRole + 2
ROLE_YOU = Qt.ItemDataRole.UserRole + 3  # this representative's rep_id ("" when none)
ROLE_DESK = Qt.ItemDataRole.UserRole + 4  # show the desk line (holder, status, wait)
TICK_MS = 15_000  # "waiting 3 min" moves on by itself
# rows the list holds at most (the filter's first ones, plus the selected session): a
# desk may hold ten thousand summaries (issue 18); the filter buttons count them all
MAX_ROWS = 300
WAIT_COLOR = {"": "#6b7280", "warn": "#d9822b", "late": "#d64545"}


def short_time(ts: float | None, now: float | None = None) -> str:
    if not ts:
        return ""
    now = now or time.time()
    delta = max(0.0, now - ts)
    if delta < 60:
        return "now"
    if delta < 3600:
        return f"{int(delta // 60)} min"
    if delta < 86400:
        return time.strftime("%H:%M", time.localtime(ts))
    return time.strftime("%b %d", time.localtime(ts))


def clock_time(ts: float, now: float | None = None) -> str:
    """When a session started, as a clock time (with the day once it is not today)."""
    now = now or time.time()
    same_day = time.localtime(ts)[:3] == time.localtime(now)[:3]
    return time.strftime("%H:%M" if same_day else "%b %d %H:%M", time.localtime(ts))


class SessionDelegate(QStyledItemDelegate):
    """Paints one inbox row: name, time, last message, unread and approval badges."""

    def sizeHint(self, option: QStyleOptionViewItem,
                 index: QModelIndex | QPersistentModelIndex) -> QSize:
        return QSize(240, 84 if index.data(ROLE_DESK) else 64)

    def paint(self, painter: QPainter, option: QStyleOptionViewItem,
              index: QModelIndex | QPersistentModelIndex) -> None:
        view: SessionView | None = index.data(ROLE_VIEW)
        if view is None:
            super().paint(painter, option, index)
            return
        painter.save()
        rect: QRect = option.rect
        pal: QPalette = option.palette
        state = option.state
        # QtWidgets.QStyle on use: PySide builds QStyle's many enums the first time
        # Python names it, and rows are only painted once there are sessions
        flag = QtWidgets.QStyle.StateFlag
        selected = bool(state & flag.State_Selected)
        if selected:
            painter.fillRect(rect, pal.color(QPalette.ColorRole.Highlight))
        elif state & flag.State_MouseOver:
            painter.fillRect(rect, pal.color(QPalette.ColorRole.AlternateBase))
        text_color = pal.color(QPalette.ColorRole.HighlightedText if selected
                               else QPalette.ColorRole.Text)
        muted = QColor(text_color)
        muted.setAlphaF(0.65)
        inner = rect.adjusted(12, 8, -12, -8)
        # presence: filled green while the customer's window is connected, a grey ring
        # while it is not, grey when the session is closed
        painter.setRenderHint(QPainter.RenderHint.Antialiasing)
        online = view.summary.customer_online and view.summary.state == "open"
        if online:
            painter.setPen(Qt.PenStyle.NoPen)
            painter.setBrush(QColor("#2e9d5b"))
        elif view.summary.state == "open":
            painter.setPen(QColor("#9a9a9a"))
            painter.setBrush(Qt.BrushStyle.NoBrush)
        else:
            painter.setPen(Qt.PenStyle.NoPen)
            painter.setBrush(QColor("#9a9a9a"))
        painter.drawEllipse(inner.left(), inner.top() + 5, 8, 8)
        name_font = QFont(option.font)
        name_font.setBold(True)
        when = short_time(view.summary.last_message_at or view.summary.created_at)
        painter.setFont(option.font)
        painter.setPen(muted)
        time_w = painter.fontMetrics().horizontalAdvance(when) + 4
        painter.drawText(QRect(inner.right() - time_w, inner.top(), time_w, 18),
                         Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter, when)
        painter.setFont(name_font)
        painter.setPen(text_color)
        name_rect = QRect(inner.left() + 16, inner.top(), inner.width() - 20 - time_w, 18)
        name = painter.fontMetrics().elidedText(view.display_name, Qt.TextElideMode.ElideRight,
                                                name_rect.width())
        painter.drawText(name_rect, Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignVCenter,
                         name)
        # when it started, after the name (two visitors of the same minute still differ
        # by number)
        used = painter.fontMetrics().horizontalAdvance(name) + 6
        painter.setFont(option.font)
        painter.setPen(muted)
        started = f"started {clock_time(view.summary.created_at)}"
        rest = QRect(name_rect.left() + used, name_rect.top(), name_rect.width() - used,
                     name_rect.height())
        if rest.width() > 30:
            painter.drawText(rest, Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignVCenter,
                             painter.fontMetrics().elidedText(
                                 started, Qt.TextElideMode.ElideRight, rest.width()))
        # badges on the second line, right-aligned
        badges: list[tuple[str, QColor]] = []
        if view.summary.pending_approvals:
            badges.append((f"⚑ {view.summary.pending_approvals}", QColor("#d9822b")))
        if view.unread:
            badges.append((str(view.unread), QColor("#2f6fde")))
        if view.summary.state == "closed":
            badges.append(("closed", QColor("#8a8a8a")))
        elif not view.verified:
            badges.append(("unverified", QColor("#a0a0a0")))
        painter.setFont(option.font)
        fm = painter.fontMetrics()
        right = inner.right()
        line2 = QRect(inner.left() + 16, inner.top() + 24, inner.width() - 16, 20)
        for label, color in badges:
            w = fm.horizontalAdvance(label) + 14
            badge = QRect(right - w, line2.top() + 1, w, 18)
            painter.setPen(Qt.PenStyle.NoPen)
            painter.setBrush(color)
            painter.drawRoundedRect(badge, 9, 9)
            painter.setPen(QColor("white"))
            painter.drawText(badge, Qt.AlignmentFlag.AlignCenter, label)
            right -= w + 4
        last = view.summary.last_message or "No messages yet"
        if view.customer_typing:
            last = "typing…"
        painter.setPen(muted)
        msg_rect = QRect(line2.left(), line2.top(), right - line2.left() - 4, line2.height())
        painter.drawText(msg_rect, Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignVCenter,
                         fm.elidedText(last.replace("\n", " "), Qt.TextElideMode.ElideRight,
                                       msg_rect.width()))
        if index.data(ROLE_DESK):
            self._paint_desk_line(painter, view, str(index.data(ROLE_YOU) or ""),
                                  QRect(inner.left() + 16, inner.top() + 46,
                                        inner.width() - 16, 18), muted, selected)
        painter.setPen(QColor(muted.red(), muted.green(), muted.blue(), 40))
        painter.drawLine(rect.bottomLeft(), rect.bottomRight())
        painter.restore()

    @staticmethod
    def _paint_desk_line(painter: QPainter, view: SessionView, you: str, line: QRect,
                         muted: QColor, selected: bool) -> None:
        """Third line: who holds it (left), its status and the customer's wait (right)."""
        fm = painter.fontMetrics()
        right = line.right()
        wait = waiting_text(view.waiting_since) if view.summary.state == "open" else ""
        if wait:
            level = waiting_level(view.waiting_since)
            text = f"◷ {wait}"
            w = fm.horizontalAdvance(text) + 4
            painter.setPen(muted if selected and not level else QColor(WAIT_COLOR[level]))
            painter.drawText(QRect(right - w, line.top(), w, line.height()),
                             Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter, text)
            right -= w + 8
        if view.status != "open":
            label = "on customer" if view.status == "waiting" else STATUS_TEXT[view.status]
            w = fm.horizontalAdvance(label) + 14
            chip = QRect(right - w, line.top() + 1, w, line.height() - 2)
            painter.setPen(Qt.PenStyle.NoPen)
            painter.setBrush(QColor("#2e9d5b" if view.status == "resolved" else "#7c6fd6"))
            painter.drawRoundedRect(chip, 8, 8)
            painter.setPen(QColor("white"))
            painter.drawText(chip, Qt.AlignmentFlag.AlignCenter, label)
            right -= w + 8
        holder = holder_text(view, you or None)
        mine = holder == "You"
        text = f"● {holder}" if view.assignee is not None else "○ Unassigned"
        font = QFont(painter.font())
        font.setBold(mine)
        painter.setFont(font)
        painter.setPen(QColor("#2f6fde") if mine and not selected else muted)
        room = max(0, right - line.left() - 4)
        painter.drawText(QRect(line.left(), line.top(), room, line.height()),
                         Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignVCenter,
                         painter.fontMetrics().elidedText(text, Qt.TextElideMode.ElideRight,
                                                          room))


class FilterBar(QWidget):
    """The inbox's filter buttons: one row when they fit, else two. Always in one row they
    held the inbox at 358 px, so the demo's agent window beside the customer's on a
    1366 px screen (~904 px) left the action queue 161 px and cut the approval card off."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.grid = QGridLayout(self)
        self.grid.setContentsMargins(6, 4, 6, 4)
        self.grid.setHorizontalSpacing(4)
        self.grid.setVerticalSpacing(2)
        # the bar's minimum is its two-row width (minimumSizeHint), not the grid's
        self.grid.setSizeConstraint(QLayout.SizeConstraint.SetNoConstraint)
        self.buttons: list[QToolButton] = []
        self.columns = 0

    def add(self, button: QToolButton) -> None:
        self.buttons.append(button)
        self.columns = 0
        self.refit()

    def _width(self, columns: int) -> int:
        """What ``columns`` columns of the buttons need (each as wide as its widest)."""
        widths = [b.sizeHint().width() for b in self.buttons]
        if not widths:
            return 0
        per_column = [max(widths[c::columns]) for c in range(min(columns, len(widths)))]
        m = self.grid.contentsMargins()
        return (sum(per_column) + self.grid.horizontalSpacing() * (len(per_column) - 1)
                + m.left() + m.right())

    def minimumSizeHint(self) -> QSize:
        return QSize(self._width(2), super().minimumSizeHint().height())

    def one_row_width(self) -> int:
        """The width the filters need in one row (the agent window's default layout)."""
        return self._width(len(self.buttons))

    def refit(self) -> None:
        """One row if the bar is wide enough for it, else two (texts change with counts)."""
        n = len(self.buttons)
        columns = n if self.width() >= self._width(n) else min(2, n)
        if columns == self.columns:
            return
        self.columns = columns
        for button in self.buttons:
            self.grid.removeWidget(button)
        for i, button in enumerate(self.buttons):
            self.grid.addWidget(button, i // columns, i % columns)
        for c in range(n + 1):  # what is left of the row stays empty, on the right
            self.grid.setColumnStretch(c, 1 if c == columns else 0)
        self.updateGeometry()

    def resizeEvent(self, event: QResizeEvent) -> None:
        super().resizeEvent(event)
        self.refit()


class InboxPanel(QWidget):
    """The session list; choosing a row selects the session in the workspace."""

    filter_changed = Signal(str)  # the representative chose another filter (the window
    # remembers it)

    def __init__(self, workspace: Workspace, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.workspace = workspace
        self.filter: InboxFilter = "open"
        self.menu: QMenu | None = None  # the open context menu (tests trigger its actions)
        # the filters: shown on a desk (a representative's link), hidden otherwise
        self.filter_bar = FilterBar(self)
        self.filter_bar.setObjectName("inboxFilters")
        self.filter_group = QButtonGroup(self)
        self.filter_group.setExclusive(True)
        self.filter_buttons: dict[InboxFilter, QToolButton] = {}
        for which in FILTERS:
            button = QToolButton(self.filter_bar)
            button.setObjectName(f"filter_{which}")
            button.setCheckable(True)
            button.setAutoRaise(True)
            button.setText(FILTER_TEXT[which])
            button.setChecked(which == self.filter)
            button.clicked.connect(lambda _=False, w=which: self.set_filter(w))
            self.filter_group.addButton(button)
            self.filter_buttons[which] = button
            self.filter_bar.add(button)
        self.model = QStandardItemModel(self)
        self.list = QListView(self)
        self.list.setObjectName("inboxList")
        self.list.setModel(self.model)
        self.list.setItemDelegate(SessionDelegate(self.list))
        self.list.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.list.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.list.setMouseTracking(True)
        self.list.setAccessibleName("Inbox")
        self.list.setContextMenuPolicy(Qt.ContextMenuPolicy.CustomContextMenu)
        self.list.customContextMenuRequested.connect(self._context_menu)
        lay = QVBoxLayout(self)
        lay.setContentsMargins(0, 0, 0, 0)
        lay.setSpacing(0)
        lay.addWidget(self.filter_bar)
        lay.addWidget(self.list)
        self.setFocusProxy(self.list)
        self._syncing = False
        self._shown: list[str] = []
        self._row_of: dict[str, int] = {}
        self.list.selectionModel().currentChanged.connect(self._on_current)
        # a large desk (Workspace.large) coalesces: one check per COALESCE_MS
        self._pending: set[str] = set()
        self._pending_rebuild = False
        self._coalesce = QTimer(self)
        self._coalesce.setSingleShot(True)
        self._coalesce.setInterval(COALESCE_MS)
        self._coalesce.timeout.connect(self._flush)
        workspace.sessions_changed.connect(self._on_sessions_changed)
        workspace.session_updated.connect(self._on_updated)
        workspace.typing_changed.connect(self._on_updated)
        workspace.current_session_changed.connect(self._select_row)
        workspace.reps_changed.connect(self.rebuild)
        self.tick = QTimer(self)
        self.tick.setInterval(TICK_MS)
        self.tick.timeout.connect(self.list.viewport().update)
        self.tick.start()
        self.rebuild()

    @property
    def desk(self) -> bool:
        """A representative's desk (assignment, filters), not a one-session link."""
        return self.workspace.you is not None

    def session_ids(self) -> list[str]:
        return [self.model.item(r).data(ROLE_ID) for r in range(self.model.rowCount())]

    def set_filter(self, which: InboxFilter) -> None:
        changed = which != self.filter
        self.filter = which
        self.filter_buttons[which].setChecked(True)
        self.rebuild()
        if changed:
            self.filter_changed.emit(which)

    def visible_sessions(self) -> list[SessionView]:
        """What the inbox lists, in its order: all sessions without a desk; on a desk,
        the filter's, the longest-waiting customer first."""
        if not self.desk:
            return self.workspace.sessions()
        return filtered(self.workspace, self.filter)

    def _rows(self) -> list[SessionView]:
        """What the list holds: the first MAX_ROWS of ``visible_sessions()``, and the
        selected session when it is further down."""
        views = self.visible_sessions()
        if len(views) <= MAX_ROWS:
            return views
        rows = views[:MAX_ROWS]
        current = self.workspace.current_session_id
        if current and all(v.session_id != current for v in rows):
            rows.extend(v for v in views[MAX_ROWS:] if v.session_id == current)
        return rows

    def select_relative(self, step: int) -> None:
        """Next / previous conversation in the order the inbox shows."""
        order = self.session_ids()
        if not order:
            return
        current = self.workspace.current_session_id
        idx = order.index(current) if current in order else -1
        self.workspace.select_session(order[(idx + step) % len(order)])

    def rebuild(self) -> None:
        self._syncing = True
        try:
            self.model.clear()
            desk = self.desk
            you = self.workspace.you
            self.filter_bar.setVisible(desk)
            if desk:
                counts = filter_counts(self.workspace)
                for which, button in self.filter_buttons.items():
                    button.setText(f"{FILTER_TEXT[which]} {counts[which]}")
                self.filter_bar.refit()
            views = self._rows()
            self._shown = [v.session_id for v in views]
            self._row_of = {sid: r for r, sid in enumerate(self._shown)}
            items = []
            for view in views:
                item = QStandardItem(view.display_name)
                item.setData(view.session_id, ROLE_ID)
                item.setData(view, ROLE_VIEW)
                item.setData(you.rep_id if you is not None else "", ROLE_YOU)
                item.setData(desk, ROLE_DESK)
                item.setToolTip(self._tip(view))
                items.append(item)
            if items:  # one insertion, not one per row (a desk may list hundreds)
                self.model.appendColumn(items)
            self._select_row(self.workspace.current_session_id or "")
        finally:
            self._syncing = False

    def _tip(self, view: SessionView) -> str:
        tip = f"{view.display_name} — {view.summary.title}"
        if self.desk:
            you = self.workspace.you
            holder = holder_text(view, you.rep_id if you is not None else None)
            tip += f"\nHeld by: {holder}  ·  Status: {STATUS_TEXT.get(view.status, view.status)}"
            wait = waiting_text(view.waiting_since)
            if wait and view.summary.state == "open":
                tip += f"  ·  {wait}"
        return tip

    def _on_sessions_changed(self) -> None:
        if self.workspace.large:
            self._pending_rebuild = True
            if not self._coalesce.isActive():
                self._coalesce.start()
            return
        self.rebuild()

    def _flush(self) -> None:
        """A large desk's coalesced updates: one rebuild when the rows change, else the
        updated rows repainted."""
        pending, self._pending = self._pending, set()
        rebuild, self._pending_rebuild = self._pending_rebuild, False
        if rebuild or [v.session_id for v in self._rows()] != self._shown:
            self.rebuild()
            return
        self._update_counts()
        for sid in pending:
            self._repaint(sid)

    def _update_counts(self) -> None:
        counts = filter_counts(self.workspace)
        for which, button in self.filter_buttons.items():
            text = f"{FILTER_TEXT[which]} {counts[which]}"
            if button.text() != text:
                button.setText(text)
        self.filter_bar.refit()

    def _on_updated(self, session_id: str) -> None:
        if self.workspace.large:
            self._pending.add(session_id)
            if not self._coalesce.isActive():
                self._coalesce.start()
            return
        if self.desk:
            # holder, status and wait decide the filter and the order: rebuild when the
            # list would change, else repaint the row
            views = self._rows()
            if [v.session_id for v in views] != self._shown:
                self.rebuild()
                return
            self._update_counts()
        self._repaint(session_id)

    def _repaint(self, session_id: str) -> None:
        row = self._row_of.get(session_id)
        if row is not None and row < self.model.rowCount():
            item = self.model.item(row)
            if item.data(ROLE_ID) == session_id:
                view = self.workspace.session(session_id)
                item.setData(view, ROLE_VIEW)
                if view is not None:
                    item.setText(view.display_name)
                    item.setToolTip(self._tip(view))
                # the view object is the same one (mutated in place), so setData saw no
                # change and told no one: repaint the row on every event, not the next
                item.emitDataChanged()
                return

    # ------------------------------------------------------------------ context menu

    def session_at(self, pos: QPoint) -> str | None:
        index = self.list.indexAt(pos)
        return str(index.data(ROLE_ID)) if index.isValid() else None

    def build_menu(self, session_id: str) -> QMenu:
        """Take / Release / Transfer to… / status, for one row (a desk only)."""
        ws = self.workspace
        view = ws.session(session_id)
        menu = QMenu(self)
        menu.setObjectName("inboxMenu")
        if view is None:
            return menu
        closed = view.summary.state == "closed"
        mine = ws.is_mine(view)
        take = menu.addAction("Take" if view.assignee is None
                              else f"Take from {view.assignee.name}")
        take.setObjectName("menuTake")
        take.setEnabled(not mine and not closed)
        take.triggered.connect(lambda: ws.take(session_id))
        release = menu.addAction("Release")
        release.setObjectName("menuRelease")
        release.setEnabled(view.assignee is not None)
        release.triggered.connect(lambda: ws.release(session_id))
        transfer = menu.addMenu("Transfer to…")
        transfer.setObjectName("menuTransfer")
        others = [r for r in ws.reps
                  if view.assignee is None or r.rep_id != view.assignee.rep_id]
        for rep in others:
            you = ws.you is not None and rep.rep_id == ws.you.rep_id
            label = f"{rep.name}{' (you)' if you else ''}{'' if rep.online else ' — offline'}"
            act = transfer.addAction(label)
            act.setObjectName(f"transfer_{rep.rep_id}")
            act.triggered.connect(lambda _=False, r=rep.rep_id: ws.transfer(r, session_id))
        transfer.setEnabled(bool(others) and not closed)
        menu.addSeparator()
        for status, text in (("open", "Mark open"), ("waiting", "Mark waiting on customer"),
                             ("resolved", "Mark resolved")):
            act = menu.addAction(text)
            act.setObjectName(f"menuStatus_{status}")
            act.setEnabled(view.status != status)
            act.triggered.connect(lambda _=False, s=status: self.status_requested(session_id, s))
        return menu

    def status_requested(self, session_id: str, status: str) -> None:
        """Resolving with pending actions asks first: the window answers (it owns the
        question); here the row only says which."""
        window = self.window()
        ask = getattr(window, "set_status", None)
        if callable(ask):
            ask(status, session_id)
        else:
            self.workspace.set_status(status, session_id=session_id)

    def _context_menu(self, pos: QPoint) -> None:
        sid = self.session_at(pos)
        current = self.list.currentIndex()
        if sid is None and current.isValid():
            # the keyboard's menu key / Shift+F10: the current row's menu, under it
            sid = str(current.data(ROLE_ID))
            pos = self.list.visualRect(current).bottomLeft()
        if sid is None or not self.desk:
            return
        if self.menu is not None:
            self.menu.close()
            self.menu.deleteLater()
        self.menu = self.build_menu(sid)
        self.menu.popup(self.list.viewport().mapToGlobal(pos))

    def _select_row(self, session_id: str) -> None:
        if (session_id and session_id not in self._row_of and not self._syncing
                and len(self._shown) >= MAX_ROWS
                and self.workspace.session(session_id) is not None):
            self.rebuild()  # selected further down than the rows held: it joins them
            return
        for r in range(self.model.rowCount()):
            if self.model.item(r).data(ROLE_ID) == session_id:
                was = self._syncing
                self._syncing = True
                self.list.setCurrentIndex(self.model.index(r, 0))
                self._syncing = was
                return

    def _on_current(self, current: QModelIndex, _previous: QModelIndex) -> None:
        if self._syncing or not current.isValid():
            return
        sid = current.data(ROLE_ID)
        if sid:
            self.workspace.select_session(str(sid))
