"""Action queue: pending approvals with schema forms, an explicit confirm step, history.

Nothing here decides anything: Approve sends the exact arguments shown in the
confirmation to the host, which validates and runs them; Reject sends the
representative's reason, which the host passes to the assistant.
"""

from __future__ import annotations

import json
import time
from typing import TYPE_CHECKING, Any

from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QBrush, QColor, QResizeEvent, QTextOption
from PySide6.QtWidgets import (
    QFrame,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QLineEdit,
    QPushButton,
    QScrollArea,
    QSizePolicy,
    QSplitter,
    QTextBrowser,
    QTreeWidget,
    QTreeWidgetItem,
    QVBoxLayout,
    QWidget,
)

from hitl_desktop.client.workspace import Approval, Workspace
from hitl_desktop.ui.agent.conversation import call_signature
from hitl_desktop.ui.fit import WrapLabel, clip

if TYPE_CHECKING:
    from hitl_desktop.ui.agent.schema_form import SchemaForm

#: the call preview scrolls inside the card beyond this height; Run it / Back stay in view
CALL_PREVIEW_MAX_H = 160
#: how much of one changed value the "You changed …" line quotes (the preview has it all)
DIFF_VALUE_CHARS = 80

STATE_LABEL = {
    "pending": "Pending",
    "approved": "Running…",
    "executed": "Executed",
    "failed": "Failed",
    "rejected": "Rejected",
    "expired": "Expired",
    "cancelled": "Cancelled",
}


class ApprovalCard(QFrame):
    """One pending action: editable arguments, Approve → confirm, Reject → reason."""

    approve_confirmed = Signal(str, dict)  # approval_id, arguments
    reject_confirmed = Signal(str, str)  # approval_id, reason
    confirm_shown = Signal()  # the queue scrolls so the open panel's buttons are in view

    def __init__(self, approval: Approval, parent: QWidget | None = None) -> None:
        # the form builder loads with the first action, not with the window
        from hitl_desktop.ui.agent.schema_form import SchemaForm, humanize

        super().__init__(parent)
        self.approval = approval
        self.setObjectName("approvalCard")
        self.setFrameShape(QFrame.Shape.StyledPanel)
        lay = QVBoxLayout(self)
        lay.setContentsMargins(12, 10, 12, 10)
        lay.setSpacing(6)
        title = QLabel(f"<b>{humanize(approval.tool)}</b> "
                       f"<span style='color:gray; font-family:monospace'>{approval.tool}</span>",
                       self)
        title.setObjectName("cardTitle")
        title.setWordWrap(True)
        lay.addWidget(title)
        if approval.description:
            text = approval.description
            if len(text) > 140:
                text = text[:137].rsplit(" ", 1)[0] + "…"
            desc = QLabel(text, self)
            desc.setToolTip(approval.description)
            desc.setWordWrap(True)
            desc.setObjectName("mutedLabel")
            lay.addWidget(desc)
        # what approving will do (the host's dry run), then where the request came from
        self.summary_label = WrapLabel("", self, max_chars=400)
        self.summary_label.setObjectName("actionSummary")
        if approval.summary:
            self.summary_label.set_full_text(f"If approved: {approval.summary}")
            lay.addWidget(self.summary_label)
        else:
            self.summary_label.hide()
        self.provenance_label = WrapLabel("", self, max_chars=600)
        self.provenance_label.setObjectName("provenance")
        self.provenance_label.setTextInteractionFlags(
            Qt.TextInteractionFlag.TextSelectableByMouse)
        prov = approval.provenance
        if prov is not None:
            lines = [f"Customer wrote: “{prov.quote}”"]
            if prov.instruction:  # the representative asked for it (steering), not the customer
                who = prov.instructed_by or "a representative"
                lines = [f"Asked for by {who}: “{prov.instruction}”",
                         f"In reply to the customer: “{prov.quote}”"]
            if prov.copied_into:
                lines.append("The customer's words were copied into: "
                             + ", ".join(prov.copied_into) + " (edit before approving).")
            if prov.flagged:
                lines.insert(0, "⚠ This request reads like instructions to the system ("
                             + "; ".join(prov.signs) + "). Check it before approving.")
            self.provenance_label.set_full_text("\n".join(lines))
            self.provenance_label.setProperty("flagged", "true" if prov.flagged else "false")
            lay.addWidget(self.provenance_label)
        else:
            self.provenance_label.hide()
        self.form: SchemaForm = SchemaForm(approval.schema, approval.arguments, self)
        self.form.setObjectName("approvalForm")
        lay.addWidget(self.form)

        # normal buttons
        self.buttons = QWidget(self)
        b = QHBoxLayout(self.buttons)
        b.setContentsMargins(0, 0, 0, 0)
        self.expiry = QLabel(self._expiry_text(), self.buttons)
        self.expiry.setObjectName("mutedLabel")
        self.expiry.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)
        b.addWidget(self.expiry)
        b.addStretch(1)
        self.reject_button = QPushButton("Reject…", self.buttons)
        self.reject_button.setObjectName("rejectButton")
        self.reject_button.clicked.connect(self.ask_reject)
        self.approve_button = QPushButton("Approve…", self.buttons)
        self.approve_button.setObjectName("approveButton")
        self.approve_button.clicked.connect(self.ask_approve)
        b.addWidget(self.reject_button)
        b.addWidget(self.approve_button)
        lay.addWidget(self.buttons)

        # inline confirmation: the exact call that will run. What was changed is always
        # in view; the call itself scrolls inside the card; the buttons stay below it.
        self.confirm = QFrame(self)
        self.confirm.setObjectName("confirmPanel")
        c = QVBoxLayout(self.confirm)
        c.setContentsMargins(10, 8, 10, 8)
        ask = QLabel("<b>Run this on the customer's account?</b>", self.confirm)
        ask.setWordWrap(True)
        c.addWidget(ask)
        self.diff_label = WrapLabel("", self.confirm, max_chars=400)
        self.diff_label.setObjectName("changedArgs")
        self.diff_label.hide()
        c.addWidget(self.diff_label)
        self.call_label = CallPreview(self.confirm)
        c.addWidget(self.call_label)
        cb = QHBoxLayout()
        cb.addStretch(1)
        self.back_button = QPushButton("Back", self.confirm)
        self.back_button.clicked.connect(self.cancel_confirm)
        self.run_button = QPushButton("Run it", self.confirm)
        self.run_button.setObjectName("confirmApprove")
        self.run_button.clicked.connect(self.confirm_approve)
        cb.addWidget(self.back_button)
        cb.addWidget(self.run_button)
        for button in (self.reject_button, self.approve_button, self.back_button,
                       self.run_button):
            button.setAutoDefault(True)  # Enter clicks it when focused, as in a dialog
        c.addLayout(cb)
        self.confirm.hide()
        lay.addWidget(self.confirm)

        # inline reject: a reason is required
        self.reject_panel = QFrame(self)
        self.reject_panel.setObjectName("rejectPanel")
        r = QVBoxLayout(self.reject_panel)
        r.setContentsMargins(10, 8, 10, 8)
        r.addWidget(WrapLabel("Why reject? The assistant will tell the customer.",
                              self.reject_panel))
        self.reason = QLineEdit(self.reject_panel)
        self.reason.setObjectName("rejectReason")
        self.reason.setPlaceholderText("e.g. order already left the warehouse")
        self.reason.textChanged.connect(self._reason_changed)
        self.reason.returnPressed.connect(self.confirm_reject)
        r.addWidget(self.reason)
        rb = QHBoxLayout()
        rb.addStretch(1)
        self.reject_back = QPushButton("Back", self.reject_panel)
        self.reject_back.clicked.connect(self.cancel_confirm)
        self.reject_confirm = QPushButton("Reject action", self.reject_panel)
        self.reject_confirm.setObjectName("confirmReject")
        self.reject_confirm.setEnabled(False)
        self.reject_confirm.clicked.connect(self.confirm_reject)
        rb.addWidget(self.reject_back)
        rb.addWidget(self.reject_confirm)
        self.reject_back.setAutoDefault(True)
        self.reject_confirm.setAutoDefault(True)
        r.addLayout(rb)
        self.reject_panel.hide()
        lay.addWidget(self.reject_panel)

        self.waiting = QLabel("Sent — waiting for the host…", self)
        self.waiting.setObjectName("mutedLabel")
        self.waiting.hide()
        lay.addWidget(self.waiting)
        self.set_state(approval)

    def _expiry_text(self) -> str:
        if self.approval.expires_at is None:
            return ""
        left = self.approval.expires_at - time.time()
        if left <= 0:
            return "expired"
        hours = left / 3600
        return f"expires in {hours:.0f} h" if hours >= 1 else f"expires in {left / 60:.0f} min"

    def pending_call(self) -> str:
        return call_signature(self.approval.tool, self.form.value())

    def ask_approve(self) -> bool:
        """Validate, then show the exact call that will run; False if the form is invalid."""
        if self.form.validate():
            return False
        self.reject_panel.hide()
        value = self.form.value()
        args = json.dumps(value, indent=2, ensure_ascii=False)

        def short(v: object) -> str:
            return clip(json.dumps(v, ensure_ascii=False), DIFF_VALUE_CHARS)

        changes = [f"{k}: {short(self.approval.arguments.get(k))} → {short(v)}"
                   for k, v in value.items() if self.approval.arguments.get(k) != v]
        self.diff_label.set_full_text(
            "You changed what the assistant proposed: " + "; ".join(changes) if changes else "")
        self.diff_label.setVisible(bool(changes))
        self.call_label.show_call(f"{self.approval.tool}({args})")
        self.call_label.setProperty("call", self.pending_call())
        self.buttons.hide()
        self.confirm.show()
        self.run_button.setFocus()
        self.confirm_shown.emit()
        return True

    def ask_reject(self) -> None:
        self.confirm.hide()
        self.buttons.hide()
        self.reject_panel.show()
        self.reason.setFocus()
        self.confirm_shown.emit()

    def cancel_confirm(self) -> None:
        self.confirm.hide()
        self.reject_panel.hide()
        self.buttons.show()

    def confirm_approve(self) -> None:
        if self.form.validate():
            self.cancel_confirm()
            return
        self.approve_confirmed.emit(self.approval.approval_id, self.form.value())
        self._sent()

    def _reason_changed(self, text: str) -> None:
        self.reject_confirm.setEnabled(bool(text.strip()))

    def confirm_reject(self) -> None:
        reason = self.reason.text().strip()
        if not reason:
            self.reason.setFocus()
            return
        self.reject_confirmed.emit(self.approval.approval_id, reason)
        self._sent()

    def _sent(self) -> None:
        self.confirm.hide()
        self.reject_panel.hide()
        self.buttons.hide()
        self.form.setEnabled(False)
        self.waiting.show()

    def show_refusal(self, message: str) -> None:
        """The host refused the decision (e.g. invalid arguments): edit and try again."""
        self.waiting.hide()
        self.form.setEnabled(True)
        self.buttons.show()
        self.form.errors.setText(f"• The host refused: {message}")
        self.form.errors.show()

    def set_state(self, approval: Approval) -> None:
        self.approval = approval
        if approval.state == "approved":
            self._sent()
            self.waiting.setText("Approved — running…")


class CallPreview(QTextBrowser):
    """The exact call that will run: monospace, wrapped anywhere, scrolling inside the
    card past ``CALL_PREVIEW_MAX_H`` so a 500-character argument cannot push the
    buttons away or widen the window."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("callPreview")
        self.setFrameShape(QFrame.Shape.NoFrame)
        self.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.setLineWrapMode(QTextBrowser.LineWrapMode.WidgetWidth)
        self.setWordWrapMode(QTextOption.WrapMode.WrapAtWordBoundaryOrAnywhere)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Fixed)
        self.setMinimumWidth(40)
        self.document().setDocumentMargin(2)
        self.document().documentLayout().documentSizeChanged.connect(self._fit_height)

    def show_call(self, call: str) -> None:
        self.setPlainText(call)
        self._fit_height()

    def text(self) -> str:
        """The call as the representative reads it."""
        return self.toPlainText()

    def _fit_height(self, *_args: object) -> None:
        height = int(self.document().size().height()) + 6
        self.setFixedHeight(max(24, min(height, CALL_PREVIEW_MAX_H)))


def _summary(result: dict[str, Any] | None, error: str | None, reason: str | None) -> str:
    if reason:
        return f"Reason: {reason}"
    if error:
        return error
    if not result:
        return ""
    for key in ("message", "status", "summary"):
        if isinstance(result.get(key), str):
            return str(result[key])
    return json.dumps(result, ensure_ascii=False)[:160]


#: a History header's text plus its padding: four whole headers fit the ~250 px the
#: demo's 1366x768 desk leaves the queue ("Detail" was cut at 24)
HEADER_PAD = 16


class ActionQueue(QWidget):
    """Pending approvals of the current session on top, history below."""

    def __init__(self, workspace: Workspace, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.workspace = workspace
        self.cards: dict[str, ApprovalCard] = {}
        self._session: str | None = None

        self.pending_title = QLabel(self)
        self.pending_title.setObjectName("sectionTitle")
        self.cards_box = QVBoxLayout()
        self.cards_box.setSpacing(8)
        self.empty = QLabel("Nothing waiting for approval.", self)
        self.empty.setObjectName("emptyLabel")
        self.empty.setAlignment(Qt.AlignmentFlag.AlignCenter)
        inner = QWidget(self)
        inner_lay = QVBoxLayout(inner)
        inner_lay.setContentsMargins(8, 8, 8, 8)
        inner_lay.addWidget(self.pending_title)
        inner_lay.addLayout(self.cards_box)
        inner_lay.addWidget(self.empty)
        inner_lay.addStretch(1)
        self.scroll_area = QScrollArea(self)
        self.scroll_area.setWidgetResizable(True)
        self.scroll_area.setFrameShape(QFrame.Shape.NoFrame)
        # cards wrap to the panel's width: never a horizontal scrollbar hiding the buttons
        self.scroll_area.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.scroll_area.setWidget(inner)

        hist = QWidget(self)
        hl = QVBoxLayout(hist)
        hl.setContentsMargins(8, 4, 8, 8)
        ht = QLabel("History", hist)
        ht.setObjectName("sectionTitle")
        hl.addWidget(ht)
        self.history = QTreeWidget(hist)
        self.history.setObjectName("approvalHistory")
        self._calls_width = 90  # the call column's width for its content (_fill_history)
        self.history.setHeaderLabels(["Time", "Action", "Outcome", "Details"])
        self.history.setRootIsDecorated(True)
        self.history.setUniformRowHeights(False)
        header = self.history.header()
        header.setMinimumSectionSize(48)
        header.setStretchLastSection(False)  # its Stretch mode instead: that one shrinks
        header.setSectionResizeMode(3, QHeaderView.ResizeMode.Stretch)
        self.history.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.history.setTextElideMode(Qt.TextElideMode.ElideRight)
        self.history.setAlternatingRowColors(False)
        hl.addWidget(self.history)

        split = QSplitter(Qt.Orientation.Vertical, self)
        split.addWidget(self.scroll_area)
        split.addWidget(hist)
        split.setStretchFactor(0, 3)
        split.setStretchFactor(1, 1)
        split.setSizes([420, 160])  # pending actions first; history below
        split.setChildrenCollapsible(False)
        lay = QVBoxLayout(self)
        lay.setContentsMargins(0, 0, 0, 0)
        lay.addWidget(split)
        self.setFocusProxy(self.scroll_area)

        workspace.approvals_changed.connect(self._on_changed)
        workspace.approval_failed.connect(self._on_refused)
        workspace.current_session_changed.connect(self.refresh)
        workspace.session_updated.connect(self._on_changed)  # closed / reopened
        self.refresh()

    def _on_changed(self, session_id: str) -> None:
        if session_id == self.workspace.current_session_id:
            self.refresh()

    def _on_refused(self, approval_id: str, message: str) -> None:
        card = self.cards.get(approval_id)
        if card is not None:
            card.show_refusal(message)

    def pending_cards(self) -> list[ApprovalCard]:
        return list(self.cards.values())

    def first_card(self) -> ApprovalCard | None:
        cards = [c for c in self.cards.values() if c.approval.state == "pending"]
        return cards[0] if cards else None

    def refresh(self, *_args: object) -> None:
        view = self.workspace.current
        sid = view.session_id if view else None
        if sid != self._session:
            for card in self.cards.values():
                card.setParent(None)
                card.deleteLater()
            self.cards.clear()
            self._session = sid
        pending = view.pending_approvals if view else []
        keep = {a.approval_id for a in pending}
        for aid in [k for k in self.cards if k not in keep]:
            card = self.cards.pop(aid)
            card.setParent(None)
            card.deleteLater()
        for appr in pending:
            existing = self.cards.get(appr.approval_id)
            if existing is not None:
                existing.set_state(appr)
                continue
            card = ApprovalCard(appr, self)
            card.approve_confirmed.connect(self._approve)
            card.confirm_shown.connect(lambda c=card: self._show_buttons(c))
            card.reject_confirmed.connect(self._reject)
            self.cards[appr.approval_id] = card
            self.cards_box.addWidget(card)
            card.show()
        n = len(pending)
        closed = view is not None and view.summary.state == "closed"
        for card in self.cards.values():  # a closed conversation decides nothing
            card.setEnabled(not closed)
            card.setToolTip("The conversation is closed — reopen it to decide" if closed else "")
        title = f"Waiting for approval ({n})" if n else "Waiting for approval"
        self.pending_title.setText(title + (" — conversation closed" if closed and n else ""))
        self.empty.setVisible(n == 0)
        self._fill_history(view.approval_history if view else [])

    def _fill_history(self, done: list[Approval]) -> None:
        self.history.clear()
        colors = {"executed": "#2e9d5b", "failed": "#d64545", "rejected": "#d9822b",
                  "expired": "#8a8a8a"}
        for appr in done:
            args = appr.final_arguments if appr.final_arguments is not None else appr.arguments
            item = QTreeWidgetItem([
                time.strftime("%H:%M", time.localtime(appr.updated_at)),
                call_signature(appr.tool, args),
                STATE_LABEL.get(appr.state, appr.state),
                _summary(appr.result, appr.error, appr.reason),
            ])
            item.setForeground(2, QBrush(QColor(colors.get(appr.state, "#8a8a8a"))))
            item.setToolTip(1, call_signature(appr.tool, args))
            item.setToolTip(3, _summary(appr.result, appr.error, appr.reason))
            if appr.by:
                item.setToolTip(2, f"{STATE_LABEL.get(appr.state, appr.state)} by {appr.by}")
            detail = json.dumps({"arguments": args, "result": appr.result, "error": appr.error,
                                 "reason": appr.reason}, indent=2, ensure_ascii=False)
            child = QTreeWidgetItem(["", "", "", detail])
            item.addChild(child)
            self.history.addTopLevelItem(item)
        # sized to content (the header's words included) with minimums; the call elides
        fm = self.history.fontMetrics()
        for col, floor in ((0, 48), (1, 90), (2, 64)):
            self.history.resizeColumnToContents(col)
            title = fm.horizontalAdvance(self.history.headerItem().text(col)) + HEADER_PAD
            self.history.setColumnWidth(col, max(self.history.columnWidth(col), title, floor))
        self._calls_width = self.history.columnWidth(1)
        self._fit_history_call()

    def _fit_history_call(self) -> None:
        """The call column elides (full text on hover) so Outcome and the Details header
        stay in view: in the demo's ~290 px column it left "Det" of Details."""
        fm = self.history.fontMetrics()
        header = self.history.headerItem()
        width = self.history.viewport().width()
        details = fm.horizontalAdvance(header.text(3)) + HEADER_PAD
        left = width - self.history.columnWidth(0) - self.history.columnWidth(2) - details
        floor = fm.horizontalAdvance(header.text(1)) + HEADER_PAD
        room = max(floor, min(max(120, int(width * 0.42)), left))
        self.history.setColumnWidth(1, min(self._calls_width, room))

    def resizeEvent(self, event: QResizeEvent) -> None:
        super().resizeEvent(event)
        self._fit_history_call()
        for card in self.cards.values():
            if card.confirm.isVisible():  # keep a confirmation's buttons in view
                self._show_buttons(card)

    def _show_buttons(self, card: ApprovalCard) -> None:
        """Scroll the queue so the open panel's buttons (Run it / Back, or the reason
        and Reject action) are visible: the focused one must be on screen."""
        inner = self.scroll_area.widget()
        if inner is not None:
            inner.adjustSize()
        if card.reject_panel.isVisible():
            self.scroll_area.ensureWidgetVisible(card.reject_confirm, 8, 8)
        else:
            self.scroll_area.ensureWidgetVisible(card.run_button, 8, 8)

    def _approve(self, approval_id: str, arguments: dict[str, Any]) -> None:
        self.workspace.approve(approval_id, arguments)

    def _reject(self, approval_id: str, reason: str) -> None:
        self.workspace.reject(approval_id, reason)

    # keyboard-first helpers used by the window's shortcuts
    def approve_first(self) -> bool:
        """First press shows the confirmation (scrolled to its Run it / Back, which
        ``confirm_shown`` does); a second press runs it."""
        card = self.first_card()
        if card is None:
            return False
        if card.confirm.isVisible():
            card.confirm_approve()
            self.scroll_area.ensureWidgetVisible(card)
        elif not card.ask_approve():  # the form's errors are at the card's top
            self.scroll_area.ensureWidgetVisible(card)
        return True

    def reject_first(self) -> bool:
        """The reason box, focused and scrolled into view with its buttons."""
        card = self.first_card()
        if card is None:
            return False
        card.ask_reject()
        return True
