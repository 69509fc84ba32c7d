"""Suggestion editor: the assistant's draft streams in live and stays editable.

Once the representative types, the editor stops replacing their text; newer
draft text is offered with a "Reload" bar instead of clobbering their edits.
"""

from __future__ import annotations

import html
from collections.abc import Callable

from PySide6.QtCore import Qt, QTimer, Signal
from PySide6.QtGui import QColor, QResizeEvent, QTextCharFormat, QTextCursor
from PySide6.QtWidgets import (
    QFrame,
    QHBoxLayout,
    QLabel,
    QPlainTextEdit,
    QPushButton,
    QTextEdit,
    QVBoxLayout,
    QWidget,
)

from hitl_desktop.client.workspace import Draft, Workspace
from hitl_desktop.ui.agent.steer import SteerLine
from hitl_desktop.ui.ask import Question, ask
from hitl_desktop.ui.fit import ElideLabel, WrapLabel

STATE_TEXT = {
    "streaming": "Drafting…",
    "completed": "Suggestion ready",
    "stale": "Stale — the customer wrote again",
    "failed": "Draft failed",
    "discarded": "Discarded",
    "sent": "Sent",
}
TYPING_IDLE_MS = 4000
CLAIM_HIGHLIGHT = "#fde2e1"  # a sentence the host says claims an unexecuted action
CLOSED_NOTE = "This conversation is closed: your draft is kept, but nothing can be sent."
CLOSED_REASON = "The conversation is closed — reopen it to reply"
HELD_NOTE = "{name} holds this conversation. You will be asked before your reply is sent."


class SuggestionEditor(QWidget):
    """Shows and edits the current session's draft; Send / Regenerate / Discard."""

    article_requested = Signal(str, str)  # article_id, quote

    def __init__(self, workspace: Workspace, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.workspace = workspace
        self._programmatic = False
        self._shown_text: str | None = ""
        self.user_edited = False
        self._turn_id: str | None = None
        self._revision = -1
        self._session: str | None = None
        self._unsent: dict[str, tuple[str | None, str]] = {}  # session -> (turn, edited text)
        self._typing_sent = False
        self._own_reply_turn: str | None = None  # the turn answered with typed text
        self.question: Question | None = None  # the open "replace your edits?" question
        # whether to ask before sending into a colleague's conversation (Preferences)
        self.warn_held: Callable[[], bool] = lambda: True

        # chips and errors wrap or elide: a 2,000-character error must not widen the window
        self.state_chip = ElideLabel("", self)
        self.state_chip.setObjectName("draftState")
        self.state_chip.setProperty("state", "none")
        self.provider_label = ElideLabel("", self, max_hint=220)
        self.provider_label.setObjectName("mutedLabel")
        head = QHBoxLayout()
        head.addWidget(self.state_chip, 0)
        head.addStretch(1)
        head.addWidget(self.provider_label, 0)
        self.problem = WrapLabel("", self, max_chars=300)
        self.problem.setObjectName("draftProblem")
        self.problem.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.problem.hide()
        # the host's claims check: sentences saying an action happened that has not
        self.claims_label = WrapLabel("", self, max_chars=600)
        self.claims_label.setObjectName("draftClaims")
        self.claims_label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.claims_label.hide()

        self.reload_bar = QFrame(self)
        self.reload_bar.setObjectName("reloadBar")
        bar_lay = QHBoxLayout(self.reload_bar)
        bar_lay.setContentsMargins(8, 4, 8, 4)
        bar_lay.addWidget(WrapLabel("The draft was updated while you were editing.",
                                    self.reload_bar), 1)
        self.reload_button = QPushButton("Reload draft", self.reload_bar)
        self.reload_button.setObjectName("reloadDraft")
        self.reload_button.clicked.connect(self.reload)
        bar_lay.addWidget(self.reload_button)
        self.reload_bar.hide()

        # a closed conversation is read-only: the draft stays, Send says why it cannot
        self.closed_bar = QFrame(self)
        self.closed_bar.setObjectName("reloadBar")
        closed_lay = QHBoxLayout(self.closed_bar)
        closed_lay.setContentsMargins(8, 4, 8, 4)
        self.closed_note = WrapLabel(CLOSED_NOTE, self.closed_bar)
        closed_lay.addWidget(self.closed_note, 1)
        self.reopen_button = QPushButton("Reopen", self.closed_bar)
        self.reopen_button.setObjectName("reopenConversation")
        self.reopen_button.setToolTip("Reopen the conversation so you can reply again")
        self.reopen_button.clicked.connect(self.reopen)
        closed_lay.addWidget(self.reopen_button)
        self.closed_bar.hide()

        # a colleague holds the conversation (issue 16): said before typing, asked at Send
        self.held_bar = QFrame(self)
        self.held_bar.setObjectName("reloadBar")
        held_lay = QHBoxLayout(self.held_bar)
        held_lay.setContentsMargins(8, 4, 8, 4)
        self.held_note = WrapLabel("", self.held_bar)
        held_lay.addWidget(self.held_note, 1)
        self.take_button = QPushButton("Take it", self.held_bar)
        self.take_button.setObjectName("takeFromEditor")
        self.take_button.setToolTip("Hold this conversation yourself (Ctrl+Shift+T)")
        self.take_button.clicked.connect(lambda _=False: self.workspace.take())
        held_lay.addWidget(self.take_button)
        self.held_bar.hide()

        from hitl_desktop.ui.agent.macros import ComposerEdit, MacroCompleter

        self.editor: QPlainTextEdit = ComposerEdit(self)
        self.editor.setObjectName("draftEditor")
        self.editor.setPlaceholderText("The assistant's suggestion appears here. "
                                       "Edit it freely, or write your own reply.")
        self.editor.setAccessibleName("Suggested reply")
        self.editor.textChanged.connect(self._on_text_changed)

        self.citations = QLabel(self)
        self.citations.setObjectName("citations")
        self.citations.setWordWrap(True)
        self.citations.setTextFormat(Qt.TextFormat.RichText)
        self.citations.linkActivated.connect(self._on_citation)
        self.citations.hide()

        self.send_button = QPushButton("Send", self)
        self.send_button.setObjectName("sendButton")
        self.send_button.setDefault(True)
        self.send_button.setToolTip("Send to the customer (Ctrl+Enter)")
        self.send_button.clicked.connect(self.send)
        self.regenerate_button = QPushButton("Regenerate", self)
        self.regenerate_button.setToolTip("Ask the assistant for a new draft")
        self.regenerate_button.clicked.connect(self.regenerate)
        self.discard_button = QPushButton("Discard", self)
        self.discard_button.setToolTip("Throw this draft away")
        self.discard_button.clicked.connect(self.discard)
        self.steer = SteerLine(workspace, self, self)  # "shorter", "offer a $10 voucher", Undo
        # "Ctrl+Enter to send" beside the buttons when the row has room for all of it,
        # else on a line of its own under Send: the demo's desk on a 1366 px screen (a
        # ~340 px column) cut it to "Ctrl+En…"
        self.send_hint = QLabel("Ctrl+Enter to send", self)
        self.send_hint.setObjectName("mutedLabel")
        buttons = QHBoxLayout()
        buttons.addWidget(self.send_hint)
        buttons.addStretch(1)
        buttons.addWidget(self.discard_button)
        buttons.addWidget(self.regenerate_button)
        buttons.addWidget(self.send_button)
        self._buttons_row = buttons
        self._hint_row = QHBoxLayout()
        self._hint_row.addStretch(1)

        lay = QVBoxLayout(self)
        lay.setContentsMargins(8, 6, 8, 8)
        lay.setSpacing(6)
        lay.addLayout(head)
        lay.addWidget(self.problem)
        lay.addWidget(self.claims_label)
        lay.addWidget(self.reload_bar)
        lay.addWidget(self.closed_bar)
        lay.addWidget(self.held_bar)
        lay.addWidget(self.editor, 1)
        lay.addWidget(self.citations)
        lay.addWidget(self.steer)
        lay.addLayout(buttons)
        lay.addLayout(self._hint_row)
        self.setFocusProxy(self.editor)

        self._typing_timer = QTimer(self)
        self._typing_timer.setSingleShot(True)
        self._typing_timer.setInterval(TYPING_IDLE_MS)
        self._typing_timer.timeout.connect(self._stop_typing)

        workspace.draft_changed.connect(self._on_draft_changed)
        workspace.current_session_changed.connect(self._on_session_changed)
        workspace.session_updated.connect(self._on_session_updated)
        workspace.send_held.connect(self._on_send_held)
        workspace.reps_changed.connect(self._update_buttons)
        self.macro_completer = MacroCompleter(workspace, self.editor, self)
        self._on_session_changed(workspace.current_session_id or "")

    def resizeEvent(self, event: QResizeEvent) -> None:
        super().resizeEvent(event)
        self._place_send_hint()

    def _place_send_hint(self) -> None:
        """The hint in the button row if it fits there whole, else under the buttons."""
        row = self._buttons_row
        margins = self.contentsMargins()
        outer = self.layout()
        inner = outer.contentsMargins() if outer is not None else margins
        room = (self.width() - margins.left() - margins.right()
                - inner.left() - inner.right())
        widgets = (self.send_hint, self.discard_button, self.regenerate_button,
                   self.send_button)
        needed = sum(w.sizeHint().width() for w in widgets) + row.spacing() * len(widgets)
        beside = needed <= room
        if beside == (row.indexOf(self.send_hint) >= 0):
            return
        if beside:
            self._hint_row.removeWidget(self.send_hint)
            row.insertWidget(0, self.send_hint)
        else:
            row.removeWidget(self.send_hint)
            self._hint_row.addWidget(self.send_hint)

    # ------------------------------------------------------------------ state

    @property
    def draft(self) -> Draft | None:
        view = self.workspace.current
        return view.draft if view is not None else None

    def text(self) -> str:
        return self.editor.toPlainText()

    def _set_text(self, text: str) -> None:
        self._programmatic = True
        try:
            # what we put there last (cheaper than copying the document on every update)
            old = self._shown_text if self._shown_text is not None else self.editor.toPlainText()
            if old == text:
                return
            cursor = self.editor.textCursor()
            at_end = cursor.position() >= len(old)
            if text.startswith(old) and old:
                # append only: keeps the view steady while streaming. Inside an edit
                # block the cursor skips finding its x on the line, which re-shapes the
                # whole (long, growing) paragraph twice; the layout runs once at the end.
                end = QTextCursor(self.editor.document())
                end.beginEditBlock()
                end.movePosition(QTextCursor.MoveOperation.End)
                end.insertText(text[len(old):])
                end.endEditBlock()
            else:
                self.editor.setPlainText(text)
            if at_end:
                if self.editor.textCursor().atEnd():
                    # the insert carried the cursor along: scroll to the bottom. Moving
                    # the cursor or ensureCursorVisible() would re-itemize and re-shape
                    # the whole growing paragraph to find the cursor's x (half an append)
                    bar = self.editor.verticalScrollBar()
                    bar.setValue(bar.maximum())
                else:
                    self.editor.moveCursor(QTextCursor.MoveOperation.End)
            self._shown_text = text
        finally:
            self._programmatic = False

    def _on_text_changed(self) -> None:
        self._mark_claims()
        if self._programmatic:
            return
        self._shown_text = None
        self.user_edited = True
        if not self._typing_sent and self.editor.toPlainText().strip():
            self._typing_sent = self.workspace.set_typing(True)
        self._typing_timer.start()
        self._update_buttons()

    def _stop_typing(self) -> None:
        if self._typing_sent:
            self.workspace.set_typing(False)
            self._typing_sent = False

    def _on_session_changed(self, session_id: str) -> None:
        if self._session and self.user_edited:
            self._unsent[self._session] = (self._turn_id, self.editor.toPlainText())
        self._stop_typing()
        self._session = session_id or None
        self._turn_id = None
        self._revision = -1
        self.user_edited = False
        self.reload_bar.hide()
        saved = self._unsent.pop(session_id, None) if session_id else None
        draft = self.draft
        if saved is not None:
            self._turn_id = saved[0]
            self._set_text(saved[1])
            self.user_edited = True
            self._revision = draft.revision if draft and draft.turn_id == saved[0] else -1
        else:
            self._set_text("")
        self._render(draft)

    def _on_session_updated(self, session_id: str) -> None:
        if session_id == self.workspace.current_session_id:
            self._update_buttons()  # closed / reopened

    def _on_draft_changed(self, session_id: str) -> None:
        if session_id == self.workspace.current_session_id:
            self._render(self.draft)

    def _render(self, draft: Draft | None) -> None:
        if draft is None:
            self._set_problem("")
            self._set_chip("none", "No suggestion yet")
            self.provider_label.set_full_text("")
            self.citations.hide()
            self._update_buttons()
            return
        new_turn = draft.turn_id != self._turn_id
        if new_turn:
            self._turn_id = draft.turn_id
            if self.user_edited and self.editor.toPlainText().strip():
                self.reload_bar.show()  # keep their words; offer the new draft
            else:
                self.user_edited = False
                self.reload_bar.hide()
                self._set_text(draft.text if draft.state not in ("sent", "discarded") else "")
                self._revision = draft.revision
        elif draft.revision != self._revision and draft.state not in ("sent", "discarded"):
            if self.user_edited:
                self.reload_bar.show()
            else:
                self._set_text(draft.text)
                self._revision = draft.revision
        if draft.state == "sent" and not self.user_edited:
            self._set_text("")
        label = STATE_TEXT.get(draft.state, draft.state)
        if draft.state == "stale" and draft.stale_reason:
            label = f"Stale — {draft.stale_reason}"
        elif draft.state == "streaming" and draft.gap:
            label = "Drafting… (catching up)"
        state = draft.state
        if self._own_reply_turn == draft.turn_id and state in ("completed", "discarded"):
            # they answered in their own words: the draft was not thrown away unread
            state, label = "sent", "Sent — your own reply"
        self._set_problem(draft.error or "" if draft.state == "failed" else "")
        self._mark_claims()
        self._set_chip(state, label)
        streaming = "true" if draft.state == "streaming" else "false"
        if self.editor.property("streaming") != streaming:
            self.editor.setProperty("streaming", streaming)
            self.editor.style().unpolish(self.editor)
            self.editor.style().polish(self.editor)
        provider = f"by {draft.provider}" if draft.provider else ""
        if self.provider_label.full_text() != provider:
            self.provider_label.set_full_text(provider)
        if draft.citations:
            links = " ".join(
                f"<a href='{html.escape(c.article_id)}'>{html.escape(c.title)}</a>"
                for c in draft.citations)
            self.citations.setText(f"<b>Sources:</b> {links}")
            self.citations.show()
        elif not self.citations.isHidden():
            self.citations.hide()
        self._update_buttons()

    def _mark_claims(self) -> None:
        """Mark the draft's sentences that claim an unexecuted action happened (the host's
        check), while they are still in the editor: highlighted, with the reason above."""
        draft = self.draft
        text = self.editor.toPlainText()
        claims = [c for c in (draft.claims if draft is not None else []) if c.sentence in text]
        selections: list[QTextEdit.ExtraSelection] = []
        fmt = QTextCharFormat()
        fmt.setBackground(QColor(CLAIM_HIGHLIGHT))
        fmt.setUnderlineStyle(QTextCharFormat.UnderlineStyle.WaveUnderline)
        for claim in claims:
            cursor = self.editor.document().find(claim.sentence)
            if cursor.isNull():
                continue
            sel = QTextEdit.ExtraSelection()
            sel.cursor = cursor
            sel.format = fmt
            selections.append(sel)
        self.editor.setExtraSelections(selections)
        message = "\n".join(f"\u26a0 \u201c{c.sentence}\u201d \u2014 {c.reason}. Reword it "
                             "before sending." for c in claims)
        if self.claims_label.full_text() != message:
            self.claims_label.set_full_text(message)
        self.claims_label.setVisible(bool(message))

    def _set_problem(self, message: str) -> None:
        """Why the draft failed, wrapped under the chip (selectable, full text on hover)."""
        if self.problem.full_text() != message:
            self.problem.set_full_text(message)
        self.problem.setVisible(bool(message))

    def _set_chip(self, state: str, text: str) -> None:
        label = ("● " if state == "streaming" else "") + text
        if self.state_chip.full_text() != label:
            self.state_chip.set_full_text(label)
        if self.state_chip.property("state") != state:  # re-polish only on a real change
            self.state_chip.setProperty("state", state)
            self.state_chip.style().unpolish(self.state_chip)
            self.state_chip.style().polish(self.state_chip)

    def _update_buttons(self) -> None:
        has_session = self.workspace.current is not None
        closed = self.workspace.is_closed()
        draft = self.draft
        live = draft is not None and draft.state not in ("sent", "discarded")
        self.send_button.setEnabled(has_session and not closed
                                    and not self.editor.document().isEmpty())
        self.regenerate_button.setEnabled(has_session and not closed)
        self.discard_button.setEnabled(live and not closed)
        self.send_button.setToolTip(CLOSED_REASON if closed
                                    else "Send to the customer (Ctrl+Enter)")
        self.regenerate_button.setToolTip(CLOSED_REASON if closed
                                          else "Ask the assistant for a new draft")
        if self.closed_bar.isHidden() == closed:
            self.closed_bar.setVisible(closed)
        holder = self.workspace.held_by_other() if has_session and not closed else None
        if holder is not None:
            self.held_note.set_full_text(HELD_NOTE.format(name=holder.name))
        if self.held_bar.isHidden() == (holder is not None):
            self.held_bar.setVisible(holder is not None)

    def _on_citation(self, article_id: str) -> None:
        draft = self.draft
        quote = ""
        for c in draft.citations if draft else []:
            if c.article_id == article_id:
                quote = c.quote or ""
        self.article_requested.emit(article_id, quote)

    # ------------------------------------------------------------------ intents

    def reload(self) -> None:
        """Replace the representative's edits with the latest draft text."""
        draft = self.draft
        self.user_edited = False
        self.reload_bar.hide()
        if draft is not None:
            self._set_text(draft.text)
            self._revision = draft.revision
        self._update_buttons()

    def send(self) -> None:
        text = self.editor.toPlainText().strip()
        if not text or self.workspace.is_closed():
            return  # closed: keep their words, the bar says why
        holder = self.workspace.needs_override_question()
        if holder is not None and self.warn_held():
            sid = self.workspace.current_session_id
            self.question = ask(
                self, f"{holder.name} holds this conversation. Send your reply anyway?",
                detail=f"{holder.name} is looking after this customer; two people answering "
                       "at once confuses them. You are asked once for this conversation "
                       "(or take it: Ctrl+Shift+T).",
                yes="Send anyway", no="Don't send",
                on_yes=lambda: self._send_over(sid))
            return
        self._send_now(override=True if holder is not None else None)

    def _send_over(self, session_id: str | None) -> None:
        """They agreed to write into a colleague's conversation: remember, then send."""
        if session_id != self.workspace.current_session_id:
            return  # they moved on while the question was up: their text went with it
        self.workspace.confirm_override(session_id)
        self._send_now(override=True)

    def _on_send_held(self, session_id: str, text: str, draft_id: object, name: str) -> None:
        """The host refused our reply: a colleague took the conversation meanwhile. The
        text comes back into the editor (nothing typed is lost) and we ask."""
        if session_id != self.workspace.current_session_id:
            self._unsent[session_id] = (str(draft_id) if draft_id else None, text)
            self.workspace.error_occurred.emit(
                f"Not sent: {name} holds that conversation — your reply is kept there")
            return
        if not self.editor.toPlainText().strip():
            self._set_text(text)
        self.user_edited = True
        self._update_buttons()
        self.question = ask(
            self, f"Not sent: {name} took this conversation before your reply went out.",
            detail="Your reply is back in the editor. Send it anyway?",
            yes="Send anyway", no="Don't send",
            on_yes=lambda: self._send_over(session_id))

    def _send_now(self, *, override: bool | None = None) -> None:
        text = self.editor.toPlainText().strip()
        if not text or self.workspace.is_closed():
            return
        draft = self.draft
        draft_id = draft.turn_id if draft is not None and draft.turn_id == self._turn_id \
            and draft.state not in ("discarded", "sent") else None
        if self.workspace.send_message(text, draft_id=draft_id, override=override):
            if draft_id is None:
                self._own_reply_turn = draft.turn_id if draft is not None else None
                self._set_chip("sent", "Sent — your own reply")
            self._typing_timer.stop()
            self._typing_sent = False
            self.user_edited = False
            self.reload_bar.hide()
            self._set_text("")
            if draft is not None:
                self._revision = draft.revision
            self._update_buttons()

    def regenerate(self) -> None:
        """A new draft; asks first when it would replace the representative's edits."""
        if self.workspace.is_closed():
            return
        if self.user_edited and self.editor.toPlainText().strip():
            self.question = ask(
                self, "Replace your edited reply with a new draft?",
                detail="The assistant writes a new suggestion; what you typed is lost.",
                yes="Replace with a new draft", no="Keep my edits",
                on_yes=self._regenerate_now)
            return
        self._regenerate_now()

    def reopen(self) -> None:
        """Reopen the closed conversation (the host says so to everyone in it)."""
        self.workspace.reopen_session()

    def _regenerate_now(self) -> None:
        if self.workspace.regenerate():
            self.user_edited = False
            self.reload_bar.hide()

    def discard(self) -> None:
        if self.workspace.discard():
            self.user_edited = False
            self.reload_bar.hide()
            self._set_text("")
            self._update_buttons()
