"""The customer window's identity parts: "Sign in to your order" and "Signed in as …".

Why a module of its own: the customer window's layout and lifecycle change for
other reasons; these widgets only render the chat model's identity state
(``ChatModel.identity``) and pass the form to ``ChatModel.sign_in``. The host
decides (email + order number that belong together), never this window.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QFrame,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QSizePolicy,
    QVBoxLayout,
    QWidget,
)

from hitl_desktop.ui import theme

if TYPE_CHECKING:  # the window shows before the network stack (pydantic) is loaded
    from hitl_desktop.client.chat import ChatModel
    from hitl_desktop.core.protocol import IdentityStatus

SIGN_IN_LABEL = "Sign in to your order"


class AccountBadge(QWidget):
    """Header corner: the "Sign in to your order" button, or "Signed in as …"."""

    sign_in_requested = Signal()

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        lay = QHBoxLayout(self)
        lay.setContentsMargins(0, 0, 0, 0)
        self.button = QPushButton(SIGN_IN_LABEL)
        self.button.setObjectName("signInButton")
        self.button.setCursor(Qt.CursorShape.PointingHandCursor)
        self.button.setToolTip("Use the email address of your account and the number of one "
                               "of your orders, so we can help with your orders and account")
        self.button.clicked.connect(self.sign_in_requested)
        self.label = QLabel()
        self.label.setObjectName("signedInAs")
        self.label.setVisible(False)
        lay.addWidget(self.button)
        lay.addWidget(self.label)
        self.button.setVisible(False)  # shown once connected and not signed in

    def show_status(self, status: IdentityStatus, *, connected: bool) -> None:
        signed_in = status.signed_in and bool(status.customer_name)
        self.label.setVisible(signed_in)
        self.button.setVisible(connected and not status.signed_in)
        if signed_in:
            self.label.setText(f"Signed in as {status.customer_name}")
            self.label.setToolTip({
                "link": "You opened this chat from your account",
                "sign_in": "You signed in with your email address and order number",
                "representative": "Our representative confirmed who you are",
            }.get(status.method or "", ""))


class SignInPanel(QFrame):
    """The sign-in form under the header: email + order number, one neutral error line."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("signInPanel")
        self.setSizePolicy(QSizePolicy.Policy.Preferred, QSizePolicy.Policy.Maximum)
        self.chat: ChatModel | None = None
        lay = QVBoxLayout(self)
        lay.setContentsMargins(14, 10, 14, 10)
        lay.setSpacing(6)
        title = QLabel(SIGN_IN_LABEL)
        title.setObjectName("signInTitle")
        explain = QLabel("Enter the email address of your account and the number of one of "
                         "your orders (for example ORD1001). Then we can look at your orders "
                         "and account with you.")
        explain.setObjectName("signInExplain")
        explain.setWordWrap(True)
        self.email = QLineEdit()
        self.email.setObjectName("signInEmail")
        self.email.setPlaceholderText("Email address")
        self.email.setMaxLength(254)
        self.order = QLineEdit()
        self.order.setObjectName("signInOrder")
        self.order.setPlaceholderText("Order number, e.g. ORD1001")
        self.order.setMaxLength(64)
        self.error = QLabel()
        self.error.setObjectName("signInError")
        self.error.setWordWrap(True)
        self.error.setVisible(False)
        buttons = QHBoxLayout()
        self.submit_button = QPushButton("Sign in")
        self.submit_button.setObjectName("signInSubmit")
        self.submit_button.setMinimumWidth(
            self.submit_button.fontMetrics().horizontalAdvance("Checking…") + 40)
        self.cancel_button = QPushButton("Not now")
        self.cancel_button.setObjectName("signInCancel")
        self.cancel_button.setFlat(True)
        buttons.addStretch(1)
        buttons.addWidget(self.cancel_button)
        buttons.addWidget(self.submit_button)
        for w in (title, explain, self.email, self.order, self.error):
            lay.addWidget(w)
        lay.addLayout(buttons)
        self.submit_button.clicked.connect(self.submit)
        self.order.returnPressed.connect(self.submit)
        self.email.returnPressed.connect(self.order.setFocus)
        self.cancel_button.clicked.connect(self.hide)
        self.setVisible(False)

    def bind(self, chat: ChatModel) -> None:
        self.chat = chat
        chat.sign_in_failed.connect(self._on_failed)
        chat.identity_changed.connect(self._on_identity)

    def open(self) -> None:
        self.error.setVisible(False)
        self.submit_button.setEnabled(True)
        self.setVisible(True)
        self.email.setFocus()

    def submit(self) -> None:
        if self.chat is None:
            return
        self.error.setVisible(False)
        if self.chat.sign_in(self.email.text(), self.order.text()):
            self.submit_button.setEnabled(False)
            self.submit_button.setText("Checking…")

    def _on_failed(self, message: str) -> None:
        self.submit_button.setEnabled(True)
        self.submit_button.setText("Sign in")
        self.error.setText(message)
        self.error.setVisible(True)

    def _on_identity(self, status: IdentityStatus) -> None:
        self.submit_button.setEnabled(True)
        self.submit_button.setText("Sign in")
        if status.signed_in:
            self.order.clear()
            self.hide()

    def restyle(self, c: theme.Colors) -> None:
        self.setStyleSheet(
            f"#signInPanel{{background:{c.surface};border-bottom:1px solid {c.border};}}"
            f"#signInTitle{{color:{c.text};font-weight:600;}}"
            f"#signInExplain{{color:{c.muted};font-size:9pt;}}"
            f"#signInError{{color:#c0392b;font-size:9pt;}}"
            f"QLineEdit{{background:{c.window};color:{c.text};border:1px solid {c.border};"
            f"border-radius:6px;padding:4px 6px;}}"
            f"QLineEdit:focus{{border:1px solid {c.accent};}}"
        )
        self.submit_button.setStyleSheet(theme.button_css(c))
