"""The Customer panel's identity bar: who the session's customer is, and how we know.

"Unverified visitor" (with Find customer…: search the shop by name, email or
order number, then link after checking identity in the conversation, or only
note a claim), or the customer with a badge saying how they were verified
(issued link, sign-in, or which representative), with Unlink. The host decides
and audits every change; this only renders ``Workspace`` state and sends its
intents (``search_customers``, ``link_customer``, ``unlink_customer``).
"""

from __future__ import annotations

import html

from PySide6.QtCore import Qt
from PySide6.QtWidgets import (
    QFrame,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QListWidget,
    QListWidgetItem,
    QPushButton,
    QSizePolicy,
    QVBoxLayout,
    QWidget,
)

from hitl_desktop.client.workspace import Workspace, identity_badge
from hitl_desktop.core import protocol as p

BADGE_COLORS = {"verified": "#2e9d5b", "claimed": "#d9822b", "anonymous": "#8a8a8a"}
LINK_HINT = ("Link only after checking who they are in the conversation, e.g. details of an "
             "order only the customer knows. A claim lets nothing be read or changed.")


class IdentityBar(QFrame):
    """Badge + name, Find customer… / Unlink, and the inline search and unlink forms."""

    def __init__(self, workspace: Workspace, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("identityBar")
        self.setSizePolicy(QSizePolicy.Policy.Preferred, QSizePolicy.Policy.Maximum)
        self.workspace = workspace
        lay = QVBoxLayout(self)
        lay.setContentsMargins(0, 0, 0, 6)
        lay.setSpacing(6)
        top = QHBoxLayout()
        self.badge = QLabel()
        self.badge.setObjectName("identityBadge")
        self.title = QLabel()
        self.title.setObjectName("identityTitle")
        self.title.setWordWrap(True)
        self.find_button = QPushButton("Find customer…")
        self.find_button.setObjectName("findCustomer")
        self.unlink_button = QPushButton("Unlink")
        self.unlink_button.setObjectName("unlinkCustomer")
        top.addWidget(self.badge, 0, Qt.AlignmentFlag.AlignTop)
        top.addWidget(self.title, 1)
        top.addWidget(self.find_button, 0, Qt.AlignmentFlag.AlignTop)
        top.addWidget(self.unlink_button, 0, Qt.AlignmentFlag.AlignTop)
        lay.addLayout(top)
        self.detail = QLabel()
        self.detail.setObjectName("identityDetail")
        self.detail.setWordWrap(True)
        lay.addWidget(self.detail)

        # Find customer…
        self.search_box = QFrame()
        self.search_box.setObjectName("customerSearch")
        s = QVBoxLayout(self.search_box)
        s.setContentsMargins(0, 0, 0, 0)
        row = QHBoxLayout()
        self.query = QLineEdit()
        self.query.setObjectName("customerQuery")
        self.query.setPlaceholderText("Name, email or order number")
        self.search_button = QPushButton("Search")
        row.addWidget(self.query, 1)
        row.addWidget(self.search_button)
        s.addLayout(row)
        self.results = QListWidget()
        self.results.setObjectName("customerResults")
        self.results.setMaximumHeight(110)
        s.addWidget(self.results)
        hint = QLabel(LINK_HINT)
        hint.setObjectName("linkHint")
        hint.setWordWrap(True)
        s.addWidget(hint)
        actions = QHBoxLayout()
        self.link_button = QPushButton("Link: identity checked")
        self.link_button.setObjectName("linkVerified")
        self.claim_button = QPushButton("Note as claim")
        self.claim_button.setObjectName("linkClaim")
        self.cancel_search = QPushButton("Cancel")
        self.cancel_search.setFlat(True)
        actions.addWidget(self.link_button)
        actions.addWidget(self.claim_button)
        actions.addStretch(1)
        actions.addWidget(self.cancel_search)
        s.addLayout(actions)
        lay.addWidget(self.search_box)

        # Unlink (with a reason for the audit trail)
        self.unlink_box = QFrame()
        u = QHBoxLayout(self.unlink_box)
        u.setContentsMargins(0, 0, 0, 0)
        self.unlink_reason = QLineEdit()
        self.unlink_reason.setObjectName("unlinkReason")
        self.unlink_reason.setPlaceholderText("Why? (kept in the audit trail)")
        self.unlink_reason.setMaxLength(500)
        self.confirm_unlink = QPushButton("Unlink")
        self.confirm_unlink.setObjectName("confirmUnlink")
        self.cancel_unlink = QPushButton("Cancel")
        self.cancel_unlink.setFlat(True)
        u.addWidget(self.unlink_reason, 1)
        u.addWidget(self.confirm_unlink)
        u.addWidget(self.cancel_unlink)
        lay.addWidget(self.unlink_box)

        self.find_button.clicked.connect(self.open_search)
        self.search_button.clicked.connect(self.search)
        self.query.returnPressed.connect(self.search)
        self.results.itemSelectionChanged.connect(self._selection_changed)
        self.results.itemDoubleClicked.connect(lambda _item: self.link(verified=True))
        self.link_button.clicked.connect(lambda: self.link(verified=True))
        self.claim_button.clicked.connect(lambda: self.link(verified=False))
        self.cancel_search.clicked.connect(self.search_box.hide)
        self.unlink_button.clicked.connect(self.open_unlink)
        self.confirm_unlink.clicked.connect(self.unlink)
        self.unlink_reason.returnPressed.connect(self.unlink)
        self.cancel_unlink.clicked.connect(self.unlink_box.hide)
        workspace.identity_changed.connect(self._on_identity)
        workspace.current_session_changed.connect(self._on_session)
        workspace.customer_results.connect(self._on_results)
        self.search_box.hide()
        self.unlink_box.hide()
        self.refresh()

    # ------------------------------------------------------------------ rendering

    def _identity(self) -> p.SessionIdentity | None:
        view = self.workspace.current
        return view.identity if view is not None else None

    def refresh(self) -> None:
        ident = self._identity()
        view = self.workspace.current
        if ident is None or view is None:
            self.setVisible(False)
            return
        self.setVisible(True)
        closed = view.summary.state == "closed"
        color = BADGE_COLORS.get(ident.state, "#8a8a8a")
        self.badge.setText(f" {identity_badge(ident)} ")
        self.badge.setStyleSheet(f"background:{color};color:white;border-radius:8px;"
                                 "padding:1px 6px;font-size:8.5pt;")
        who = html.escape(ident.customer_name or ident.customer_id or "")
        if ident.state == "verified":  # the profile below says who
            self.title.setText("")
            self.detail.setText("")
        elif ident.state == "claimed":
            self.title.setText(f"Says they are <b>{who}</b> <span style='color:gray'>"
                               f"{html.escape(ident.customer_id or '')}</span>")
            self.detail.setText("Not verified: nothing is read or changed on their account "
                                "until they sign in or you verify them.")
        else:
            self.title.setText(f"<b>{html.escape(view.display_name)}</b>")
            self.detail.setText("No account is read or changed. Ask them to use “Sign in "
                                "to your order”, or find them and link after checking who "
                                "they are.")
        self.detail.setVisible(bool(self.detail.text()))
        self.detail.setStyleSheet("color:gray;")
        self.find_button.setVisible(ident.state != "verified" and not closed)
        self.unlink_button.setVisible(ident.state != "anonymous" and not closed)
        if ident.state == "verified" or closed:
            self.search_box.hide()
        if ident.state == "anonymous" or closed:
            self.unlink_box.hide()
        self._selection_changed()

    def _on_identity(self, session_id: str) -> None:
        if session_id == self.workspace.current_session_id:
            self.refresh()

    def _on_session(self, *_args: object) -> None:
        self.search_box.hide()
        self.unlink_box.hide()
        self.results.clear()
        self.refresh()

    def _on_results(self, results: p.CustomerResults) -> None:
        if results.query != self.query.text().strip():
            return  # an answer to an older query
        self.results.clear()
        for c in results.customers:
            orders = f"{c.order_count} order{'s' if c.order_count != 1 else ''}"
            item = QListWidgetItem(f"{c.name} · {c.email} · {c.customer_id} · {orders}")
            item.setData(Qt.ItemDataRole.UserRole, c.customer_id)
            self.results.addItem(item)
        if not results.customers:
            empty = QListWidgetItem("No customer matches")
            empty.setFlags(Qt.ItemFlag.NoItemFlags)
            self.results.addItem(empty)
        elif len(results.customers) == 1:
            self.results.setCurrentRow(0)
        self._selection_changed()

    def _selection_changed(self) -> None:
        chosen = self.chosen_customer() is not None
        self.link_button.setEnabled(chosen)
        self.claim_button.setEnabled(chosen)

    # ------------------------------------------------------------------ intents

    def open_search(self) -> None:
        self.unlink_box.hide()
        self.search_box.show()
        self.query.setFocus()

    def search(self) -> None:
        if self.query.text().strip():
            self.workspace.search_customers(self.query.text())

    def chosen_customer(self) -> str | None:
        item = self.results.currentItem()
        value = item.data(Qt.ItemDataRole.UserRole) if item is not None else None
        return str(value) if value else None

    def link(self, *, verified: bool) -> None:
        customer = self.chosen_customer()
        if customer is not None and self.workspace.link_customer(customer, verified=verified):
            self.search_box.hide()

    def open_unlink(self) -> None:
        self.search_box.hide()
        self.unlink_box.show()
        self.unlink_reason.setFocus()

    def unlink(self) -> None:
        if self.workspace.unlink_customer(self.unlink_reason.text()):
            self.unlink_reason.clear()
            self.unlink_box.hide()
