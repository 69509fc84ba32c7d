"""Inbox panel: every session with its customer, last message and what needs attention."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from PySide6 import QtWidgets
from PySide6.QtCore import QModelIndex, QPersistentModelIndex, QRect, QSize, Qt
from PySide6.QtGui import QColor, QFont, QPainter, QPalette, QStandardItem, QStandardItemModel
from PySide6.QtWidgets import (
    QAbstractItemView,
    QListView,
    QStyledItemDelegate,
    QVBoxLayout,
    QWidget,
)

from hitl_desktop.client.workspace import SessionView, Workspace

if TYPE_CHECKING:
    from PySide6.QtWidgets import QStyleOptionViewItem

ROLE_ID = Qt.ItemDataRole.UserRole + 1
ROLE_VIEW = Qt.ItemDataRole.UserRole + 2


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
        return QSize(240, 64)

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
        painter.setPen(QColor(muted.red(), muted.green(), muted.blue(), 40))
        painter.drawLine(rect.bottomLeft(), rect.bottomRight())
        painter.restore()


class InboxPanel(QWidget):
    """The session list; choosing a row selects the session in the workspace."""

    def __init__(self, workspace: Workspace, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.workspace = workspace
        self.model = QStandardItemModel(self)
        self.list = QListView(self)
        self.list.setObjectName("inboxList")
        self.list.setModel(self.model)
        self.list.setItemDelegate(SessionDelegate(self.list))
        self.list.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.list.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.list.setMouseTracking(True)
        self.list.setAccessibleName("Inbox")
        lay = QVBoxLayout(self)
        lay.setContentsMargins(0, 0, 0, 0)
        lay.addWidget(self.list)
        self.setFocusProxy(self.list)
        self._syncing = False
        self.list.selectionModel().currentChanged.connect(self._on_current)
        workspace.sessions_changed.connect(self.rebuild)
        workspace.session_updated.connect(self._on_updated)
        workspace.typing_changed.connect(self._on_updated)
        workspace.current_session_changed.connect(self._select_row)
        self.rebuild()

    def session_ids(self) -> list[str]:
        return [self.model.item(r).data(ROLE_ID) for r in range(self.model.rowCount())]

    def rebuild(self) -> None:
        self._syncing = True
        try:
            self.model.clear()
            for view in self.workspace.sessions():
                item = QStandardItem(view.display_name)
                item.setData(view.session_id, ROLE_ID)
                item.setData(view, ROLE_VIEW)
                item.setToolTip(f"{view.display_name} — {view.summary.title}")
                self.model.appendRow(item)
            self._select_row(self.workspace.current_session_id or "")
        finally:
            self._syncing = False

    def _on_updated(self, session_id: str) -> None:
        for r in range(self.model.rowCount()):
            item = self.model.item(r)
            if item.data(ROLE_ID) == session_id:
                view = self.workspace.session(session_id)
                item.setData(view, ROLE_VIEW)
                if view is not None:
                    item.setText(view.display_name)
                # the view object is the same one (mutated in place), so setData saw no
                # change and told no one: repaint the row on every event, not the next
                item.emitDataChanged()
                return

    def _select_row(self, session_id: str) -> None:
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
