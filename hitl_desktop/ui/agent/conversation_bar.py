"""The desk bar above the transcript: who holds the conversation, its status, and the
buttons to take, release, transfer, set the status and write a note (issue 16).

Why here and not in the toolbar: what it says belongs to the conversation shown, so it
sits with it (the window's Desk menu and shortcuts do the same things).
"""

from __future__ import annotations

from PySide6.QtCore import QPoint, Signal
from PySide6.QtGui import QResizeEvent
from PySide6.QtWidgets import QHBoxLayout, QMenu, QToolButton, QVBoxLayout, QWidget

from hitl_desktop.client.workspace import STATUS_TEXT, Workspace
from hitl_desktop.ui.ask import Question, ask
from hitl_desktop.ui.fit import ElideLabel

STATUS_CHOICES = (("open", "Open"), ("waiting", "Waiting on customer"), ("resolved", "Resolved"))


def ask_status(parent: QWidget, workspace: Workspace, status: str,
               session_id: str | None = None, *, pending: int | None = None) -> Question | None:
    """Set the status; resolving with actions still pending asks first (then forces).
    Returns the open question, if one was asked."""
    sid = session_id or workspace.current_session_id
    view = workspace.session(sid) if sid else None
    if view is None:
        return None
    n = len(view.pending_approvals) if pending is None else pending
    if status == "resolved" and n:
        what = f"{n} action{'s' if n > 1 else ''} still wait{'s' if n == 1 else ''}"
        return ask(parent, f"Resolve the conversation with {view.display_name}?",
                   detail=f"{what} for approval; {'they stay' if n > 1 else 'it stays'} "
                          "pending after you resolve (approve or reject from the action "
                          "queue).",
                   yes="Resolve anyway", no="Keep it open",
                   on_yes=lambda: workspace.set_status("resolved", force=True,
                                                       session_id=view.session_id))
    workspace.set_status(status, session_id=view.session_id)
    return None


class DeskBar(QWidget):
    """"Held by Kim · Open"  [Take] [Release] [Transfer ▾] [Status ▾] [✎ Note]."""

    note_requested = Signal()

    def __init__(self, workspace: Workspace, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.workspace = workspace
        self.setObjectName("deskBar")
        self.question: Question | None = None
        # may shrink to nothing: the inbox row names the holder too, and the buttons
        # must fit a narrow conversation column (the demo's agent window on 1366 px)
        self.holder = ElideLabel("", self, min_width=0, max_hint=320)
        self.holder.setObjectName("holderLabel")

        def button(text: str, name: str, tip: str) -> QToolButton:
            b = QToolButton(self)
            b.setText(text)
            b.setObjectName(name)
            b.setToolTip(tip)
            b.setAutoRaise(True)
            return b

        self.take_button = button("Take", "takeButton",
                                  "Hold this conversation: colleagues see it is yours "
                                  "(Ctrl+Shift+T)")
        self.take_button.clicked.connect(lambda _=False: workspace.take())
        self.release_button = button("Release", "releaseButton",
                                     "Let go of this conversation: anyone may take it "
                                     "(Ctrl+Shift+L)")
        self.release_button.clicked.connect(lambda _=False: workspace.release())
        self.transfer_button = button("Transfer ▾", "transferButton",
                                      "Hand this conversation to a colleague")
        # menus popped up (non-blocking), not a tool button's menu: that one runs a
        # nested event loop, which qasync's asyncio callbacks would wait behind
        self.transfer_menu = QMenu(self.transfer_button)
        self.transfer_menu.setObjectName("transferMenu")
        self.transfer_button.clicked.connect(lambda _=False: self.popup_transfer())
        self.status_button = button("Status ▾", "statusButton",
                                    "Open, waiting on the customer, or resolved")
        self.status_menu = QMenu(self.status_button)
        self.status_actions = {}
        for status, text in STATUS_CHOICES:
            act = self.status_menu.addAction(text)
            act.setObjectName(f"status_{status}")
            act.setCheckable(True)
            act.triggered.connect(lambda _=False, s=status: self.set_status(s))
            self.status_actions[status] = act
        self.status_button.clicked.connect(
            lambda _=False: self.status_menu.popup(self._below(self.status_button)))
        self.note_button = button("✎ Note", "noteButton",
                                  "Write an internal note: only representatives see it "
                                  "(Ctrl+Shift+N)")
        self.note_button.clicked.connect(self.note_requested)
        lay = QVBoxLayout(self)
        lay.setContentsMargins(8, 3, 4, 3)
        lay.setSpacing(0)
        self._above = QHBoxLayout()  # the holder, when the row cannot show it whole
        row = self._row = QHBoxLayout()
        row.setSpacing(2)
        row.addWidget(self.holder, 1)
        self._buttons = (self.take_button, self.release_button, self.transfer_button,
                         self.status_button, self.note_button)
        for b in self._buttons:
            row.addWidget(b)
        lay.addLayout(self._above)
        lay.addLayout(row)
        workspace.current_session_changed.connect(self.refresh)
        workspace.session_updated.connect(self._on_updated)
        workspace.reps_changed.connect(self.refresh)
        self.refresh()

    def resizeEvent(self, event: QResizeEvent) -> None:
        super().resizeEvent(event)
        self._place_holder()

    def _place_holder(self) -> None:
        """"Unassigned · Open" beside the buttons when it fits whole there, else on a
        line above them: the demo's ~380 px column cut it to "Unassi…"."""
        layout = self.layout()
        m = layout.contentsMargins() if layout is not None else None
        room = self.width() - (m.left() + m.right() if m is not None else 0)
        text = self.holder.full_text()
        needed = (self.holder.fontMetrics().horizontalAdvance(text) + 8
                  + sum(b.sizeHint().width() + self._row.spacing()
                        for b in self._buttons if not b.isHidden()))
        beside = not text or needed <= room
        if beside == (self._row.indexOf(self.holder) >= 0):
            return
        if beside:
            self._above.removeWidget(self.holder)
            self._row.insertWidget(0, self.holder, 1)
        else:
            self._row.removeWidget(self.holder)
            self._above.addWidget(self.holder)

    def _on_updated(self, session_id: str) -> None:
        if session_id == self.workspace.current_session_id:
            self.refresh()

    def holder_sentence(self) -> str:
        ws = self.workspace
        view = ws.current
        if view is None:
            return ""
        if view.assignee is None:
            who = "Unassigned"
        elif ws.is_mine(view):
            who = "Held by you"
        else:
            who = f"Held by {view.assignee.name}"
        status = STATUS_TEXT.get(view.status, view.status)
        closed = " · closed" if view.summary.state == "closed" else ""
        return f"{who} · {status[0].upper()}{status[1:]}{closed}"

    def refresh(self, *_args: object) -> None:
        ws = self.workspace
        view = ws.current
        desk = ws.you is not None
        # the bar is for a desk; a one-session agent link still writes notes
        for b in (self.take_button, self.release_button, self.transfer_button,
                  self.status_button):
            b.setVisible(desk)
        self.holder.setVisible(desk)
        self.setVisible(view is not None)
        if view is None:
            return
        self.holder.set_full_text(self.holder_sentence())
        mine = ws.is_mine(view)
        closed = view.summary.state == "closed"
        self.take_button.setEnabled(not mine and not closed)
        self.take_button.setText("Take" if view.assignee is None or mine
                                 else f"Take from {view.assignee.name}")
        self.release_button.setEnabled(view.assignee is not None)
        self.transfer_button.setEnabled(not closed and bool(ws.reps))
        for status, act in self.status_actions.items():
            act.setChecked(view.status == status)
        self.holder.setProperty("mine", "true" if mine else "false")
        self._place_holder()

    @staticmethod
    def _below(widget: QWidget) -> QPoint:
        return widget.mapToGlobal(widget.rect().bottomLeft())

    def popup_transfer(self) -> QMenu:
        """The colleagues to hand the conversation to, under the Transfer button."""
        self._fill_transfer()
        self.transfer_menu.popup(self._below(self.transfer_button))
        return self.transfer_menu

    def _fill_transfer(self) -> None:
        ws = self.workspace
        view = ws.current
        self.transfer_menu.clear()
        if view is None:
            return
        for rep in ws.reps:
            if view.assignee is not None and rep.rep_id == view.assignee.rep_id:
                continue
            you = ws.you is not None and rep.rep_id == ws.you.rep_id
            act = self.transfer_menu.addAction(
                f"{rep.name}{' (you)' if you else ''}{'' if rep.online else ' — offline'}")
            act.setObjectName(f"transfer_{rep.rep_id}")
            act.triggered.connect(lambda _=False, r=rep.rep_id, s=view.session_id:
                                  ws.transfer(r, s))

    def set_status(self, status: str) -> None:
        self.question = ask_status(self, self.workspace, status)
        self.refresh()
