"""Customer details: the profile and orders the host read from the shop database."""

from __future__ import annotations

import html
import time
from typing import Any

from PySide6.QtCore import Qt
from PySide6.QtGui import QBrush, QColor
from PySide6.QtWidgets import (
    QAbstractItemView,
    QFrame,
    QLabel,
    QScrollArea,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from hitl_desktop.client.workspace import Workspace
from hitl_desktop.ui.agent.identity import IdentityBar

ORDER_COLUMNS = [("order_id", "Order"), ("status", "Status"), ("total", "Total"),
                 ("ordered_on", "Placed"), ("items", "Items")]
STATUS_COLORS = {"pending": "#d9822b", "processing": "#d9822b", "shipped": "#2f6fde",
                 "delivered": "#2e9d5b", "completed": "#2e9d5b", "cancelled": "#8a8a8a",
                 "refunded": "#8a8a8a"}
PROFILE_FIELDS = [("customer_id", "Customer"), ("email", "Email"), ("phone", "Phone"),
                  ("address", "Address"), ("tier", "Tier"), ("member_since", "Member since"),
                  ("order_count", "Orders"), ("open_tickets", "Open tickets")]


def _fmt(key: str, value: Any) -> str:
    if value is None:
        return ""
    if key in ("created_at", "delivered_at", "updated_at") and isinstance(value, (int, float)):
        return time.strftime("%Y-%m-%d", time.localtime(value))
    if key in ("total", "amount", "amount_paid") and isinstance(value, (int, float, str)):
        try:
            return f"${float(value):,.2f}"
        except ValueError:
            return str(value)
    if key == "items" and isinstance(value, list):
        names = [str(i.get("name") or i.get("product_id") or i) if isinstance(i, dict) else str(i)
                 for i in value]
        return ", ".join(names)
    if isinstance(value, dict):
        return ", ".join(f"{v}" for v in value.values() if v)
    return str(value)


class CustomerPanel(QWidget):
    """Profile on top, orders table below; refreshed after every executed action."""

    def __init__(self, workspace: Workspace, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.workspace = workspace
        self.profile = QLabel(self)
        self.profile.setObjectName("customerProfile")
        self.profile.setWordWrap(True)
        self.profile.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.profile.setAlignment(Qt.AlignmentFlag.AlignTop | Qt.AlignmentFlag.AlignLeft)
        self.orders = QTableWidget(0, len(ORDER_COLUMNS), self)
        self.orders.setObjectName("ordersTable")
        self.orders.setHorizontalHeaderLabels([label for _, label in ORDER_COLUMNS])
        self.orders.verticalHeader().setVisible(False)
        self.orders.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.orders.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.orders.setShowGrid(False)
        self.orders.setWordWrap(False)
        self.orders.setTextElideMode(Qt.TextElideMode.ElideRight)
        # columns as wide as their content and header (never "Plac…"); a narrow dock
        # scrolls sideways instead of clipping the last columns
        self.orders.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAsNeeded)
        header = self.orders.horizontalHeader()
        header.setMinimumSectionSize(40)
        header.setStretchLastSection(True)
        # at least a header and three orders; below that the panel scrolls
        self.orders.setMinimumHeight(self.orders.horizontalHeader().sizeHint().height()
                                     + 3 * self.orders.verticalHeader().defaultSectionSize()
                                     + 2 * self.orders.frameWidth() + 16)
        lay = QVBoxLayout(self)
        lay.setContentsMargins(0, 0, 0, 0)
        # profile and orders scroll together: squeezed into a short dock (the demo's
        # 1366x768 desk, a tab bar under it) the profile's last lines were cut in half
        self.scroll_area = QScrollArea(self)
        self.scroll_area.setObjectName("customerScroll")
        self.scroll_area.setWidgetResizable(True)
        self.scroll_area.setFrameShape(QFrame.Shape.NoFrame)
        self.scroll_area.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        body = QWidget(self.scroll_area)
        body.setObjectName("customerBody")
        inner = QVBoxLayout(body)
        inner.setContentsMargins(8, 6, 8, 8)
        self.identity_bar = IdentityBar(workspace, body)
        self.profile.setParent(body)
        self.orders.setParent(body)
        inner.addWidget(self.identity_bar)
        inner.addWidget(self.profile)
        inner.addWidget(self.orders, 1)
        inner.addStretch(0)  # keeps the identity bar on top while the orders are hidden
        self.scroll_area.setWidget(body)
        lay.addWidget(self.scroll_area)
        self.setFocusProxy(self.orders)
        workspace.customer_changed.connect(self._on_changed)
        workspace.identity_changed.connect(self._on_changed)
        workspace.current_session_changed.connect(self.refresh)
        self.refresh()

    def _on_changed(self, session_id: str) -> None:
        if session_id == self.workspace.current_session_id:
            self.refresh()

    def refresh(self, *_args: object) -> None:
        self._fill()
        # as wide as the profile needs (the scroll area would clip it, never scroll it)
        body = self.scroll_area.widget()
        if body is not None:
            body.adjustSize()
            self.scroll_area.setMinimumWidth(body.minimumSizeHint().width()
                                        + self.scroll_area.verticalScrollBar().sizeHint().width())

    def _fill(self) -> None:
        view = self.workspace.current
        details = view.customer if view else None
        self.orders.setRowCount(0)
        # nobody's records for an unverified visitor (the identity bar says why)
        unverified = view is not None and not view.verified
        self.profile.setVisible(not unverified)
        self.orders.setVisible(not unverified)
        if unverified:
            return
        if details is None or details.customer is None:
            self.profile.setText("<span style='color:gray'>No customer linked to this "
                                 "conversation.</span>" if details else
                                 "<span style='color:gray'>Loading customer…</span>")
            return
        c = details.customer
        rows = "".join(
            f"<tr><td style='color:gray; padding-right:10px' nowrap>{label}</td>"
            f"<td>{html.escape(_fmt(key, c.get(key)))}</td></tr>"
            for key, label in PROFILE_FIELDS if c.get(key) not in (None, ""))
        self.profile.setText(f"<span style='font-size:large'><b>"
                             f"{html.escape(str(c.get('name', '')))}</b></span>"
                             f"<table style='margin-top:4px'>{rows}</table>")
        self.orders.setRowCount(len(details.orders))
        for r, order in enumerate(details.orders):
            for col, (key, _label) in enumerate(ORDER_COLUMNS):
                value = order.get(key)
                if key == "total" and value is None:
                    value = order.get("amount_paid", order.get("amount"))
                item = QTableWidgetItem(_fmt(key if key != "total" else "total", value))
                if key == "status":
                    item.setForeground(QBrush(QColor(STATUS_COLORS.get(str(value), "#8a8a8a"))))
                if key == "total":
                    item.setTextAlignment(Qt.AlignmentFlag.AlignRight
                                          | Qt.AlignmentFlag.AlignVCenter)
                item.setToolTip(_fmt("items", order.get("items")) or "")
                self.orders.setItem(r, col, item)
        fm = self.orders.horizontalHeader().fontMetrics()
        for col, (_key, label) in enumerate(ORDER_COLUMNS):
            self.orders.resizeColumnToContents(col)
            floor = fm.horizontalAdvance(label) + 28  # header text, padding, sort arrow
            if col == len(ORDER_COLUMNS) - 1:
                floor = max(floor, 120)  # items: a few names before the tooltip
                width = min(self.orders.columnWidth(col), 260)
            else:
                width = self.orders.columnWidth(col)
            self.orders.setColumnWidth(col, max(width, floor))
        self.orders.resizeRowsToContents()
