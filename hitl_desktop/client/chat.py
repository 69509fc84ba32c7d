"""The customer's side of a conversation, without widgets.

Turns the host's messages into a list of chat items (with delivery state), a
greeting and a "representative is typing" flag, so the customer window only
renders and the logic is testable without a screen.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from enum import StrEnum
from typing import Final

from PySide6.QtCore import QObject, QTimer, Signal

from hitl_desktop.client.connection import ConnectionState, HostConnection
from hitl_desktop.core.protocol import (
    MAX_TEXT_CHARS,
    ChatDelivered,
    ChatMessage,
    ChatSend,
    Envelope,
    ErrorCode,
    IdentitySignIn,
    IdentityStatus,
    Payload,
    Role,
    SessionClosed,
    SessionGap,
    SessionOpened,
    SessionReopened,
    Typing,
    TypingState,
    Welcome,
)

log = logging.getLogger(__name__)

#: send "typing" at most this often while the user keeps typing (seconds)
TYPING_REFRESH_S: Final = 3.0
#: the user stopped typing after this long without a keystroke
TYPING_IDLE_S: Final = 4.0
#: hide the other side's typing indicator if no update came for this long
TYPING_EXPIRE_S: Final = 8.0


class Delivery(StrEnum):
    SENDING = "sending"  # queued or written, not yet stored by the host
    SENT = "sent"  # the host stored it (echoed with a seq)
    DELIVERED = "delivered"  # the other side received it
    FAILED = "failed"  # the host refused it (see ChatItem.error)


@dataclass(slots=True)
class ChatItem:
    key: str  # the client message id for our own messages, else the host's message id
    role: str  # customer | agent | admin | assistant | system
    name: str
    text: str
    ts: float
    mine: bool
    delivery: Delivery | None = None
    seq: int | None = None
    error: str | None = None
    lost: bool = False  # shown, but the host lost it in an unclean stop (session.gap)
    kind: str = "message"  # "gap": the system line saying where the host lost messages


def gap_notice(lost: int) -> str:
    """What the customer reads where the host lost messages (calm, and what to do)."""
    if lost:
        which = "the message marked ⚠ above" if lost == 1 else \
            f"the {lost} messages marked ⚠ above"
        return (f"We had a brief interruption, and {which} may not have reached the "
                "other side. If something is missing, please send it again.")
    return ("We had a brief interruption. Messages sent just before it may not have "
            "arrived; if something seems missing, please send it again.")


class ChatModel(QObject):
    """One chat as seen by one participant (the customer window uses role customer)."""

    message_added = Signal(object)  # ChatItem
    message_changed = Signal(object)  # ChatItem (delivery state, error)
    greeting_changed = Signal(str)
    typing_changed = Signal(bool)  # the other side is typing
    session_closed = Signal(str)  # the reason given, or ""
    session_reopened = Signal(str)  # who reopened it
    reset = Signal()  # a different session: forget all items
    identity_changed = Signal(object)  # IdentityStatus: signed in (as whom) or not
    sign_in_failed = Signal(str)  # the host's (neutral) reason, to show under the form

    def __init__(
        self,
        connection: HostConnection,
        *,
        my_role: Role = Role.CUSTOMER,
        parent: QObject | None = None,
    ) -> None:
        super().__init__(parent)
        self.connection = connection
        self.my_role = my_role
        self.items: list[ChatItem] = []
        self.greeting: str | None = None
        self.title: str | None = None
        self.other_typing = False
        self.closed = False
        self.closed_reason: str | None = None
        self.identity = IdentityStatus(signed_in=False)
        self._sign_in_ref: str | None = None
        self._session: str | None = None
        self._by_key: dict[str, ChatItem] = {}
        self._typing_sent_at = 0.0
        self._typing_active = False
        self._idle = QTimer(self)
        self._idle.setSingleShot(True)
        self._idle.setInterval(int(TYPING_IDLE_S * 1000))
        self._idle.timeout.connect(self._stop_composing)
        self._expire = QTimer(self)
        self._expire.setSingleShot(True)
        self._expire.setInterval(int(TYPING_EXPIRE_S * 1000))
        self._expire.timeout.connect(lambda: self._set_other_typing(False))
        connection.welcome_received.connect(self._on_welcome)
        connection.message_received.connect(self._on_message)
        connection.error_received.connect(self._on_error)
        connection.state_changed.connect(self._on_state)
        connection.history_reset.connect(self._on_history_reset)

    # ------------------------------------------------------------------ user intents

    def send_text(self, text: str) -> ChatItem | None:
        """Send what the user typed; blank input sends nothing. Works offline (queued)."""
        text = text.strip()
        if not text:
            return None
        text = text[:MAX_TEXT_CHARS]
        self._stop_composing()
        msg_id = self.connection.send(ChatSend(text=text), session=self._session)
        item = ChatItem(
            key=msg_id, role=self.my_role.value, name="You", text=text, ts=time.time(),
            mine=True, delivery=Delivery.SENDING,
        )
        self._add(item)
        return item

    def sign_in(self, email: str, order_id: str) -> bool:
        """"Sign in to your order": the host checks that the email and the order number
        belong together. The answer arrives as ``identity_changed`` or ``sign_in_failed``
        (one neutral message for every failure)."""
        email, order_id = email.strip(), order_id.strip()
        if len(email) < 3 or "@" not in email or not order_id:
            self.sign_in_failed.emit("Enter the email address and the order number of one "
                                     "of your orders.")
            return False
        if self._session is None or self.connection.state is not ConnectionState.CONNECTED:
            self.sign_in_failed.emit("Not connected: try again in a moment.")
            return False
        self._sign_in_ref = self.connection.send(
            IdentitySignIn(email=email[:254], order_id=order_id[:64]), session=self._session)
        return True

    def _set_identity(self, status: IdentityStatus | None) -> None:
        status = status or IdentityStatus(signed_in=False)
        if status != self.identity:
            self.identity = status
            self.identity_changed.emit(status)

    def set_composing(self, active: bool = True) -> None:
        """Call on every keystroke; sends throttled ``typing`` frames."""
        if not active:
            self._stop_composing()
            return
        now = time.monotonic()
        if not self._typing_active or now - self._typing_sent_at > TYPING_REFRESH_S:
            self._typing_active = True
            self._typing_sent_at = now
            self._send_typing(True)
        self._idle.start()

    # ------------------------------------------------------------------ host events

    def _send_typing(self, active: bool) -> None:
        if self._session is not None and self.connection.state is ConnectionState.CONNECTED:
            self.connection.send(Typing(active=active), session=self._session)

    def _stop_composing(self) -> None:
        self._idle.stop()
        if self._typing_active:
            self._typing_active = False
            self._send_typing(False)

    def _on_welcome(self, welcome: Welcome) -> None:
        if self._session is not None and welcome.session_id != self._session:
            log.info("now in session %s (was %s)", welcome.session_id, self._session)
            self.items.clear()
            self._by_key.clear()
            self.reset.emit()
        self._session = welcome.session_id
        self._set_identity(welcome.identity)

    def _on_state(self, state: str) -> None:
        if state != ConnectionState.CONNECTED:
            self._set_other_typing(False)

    def _on_message(self, env: Envelope, payload: Payload) -> None:
        if self._session is not None and env.session not in (None, self._session):
            return
        if isinstance(payload, ChatMessage):
            self._on_chat(env, payload)
        elif isinstance(payload, ChatDelivered):
            if payload.by != self.my_role:
                for item in self.items:
                    if (
                        item.mine and item.seq is not None and item.seq <= payload.seq
                        and item.delivery is not Delivery.DELIVERED
                    ):
                        item.delivery = Delivery.DELIVERED
                        self.message_changed.emit(item)
        elif isinstance(payload, SessionGap):
            self._on_gap(env, payload)
        elif isinstance(payload, TypingState):
            if payload.role in (Role.AGENT, Role.ADMIN):
                self._set_other_typing(payload.active)
        elif isinstance(payload, SessionOpened):
            self.title = payload.summary.title
            if payload.greeting and payload.greeting != self.greeting:
                self.greeting = payload.greeting
                self.greeting_changed.emit(payload.greeting)
        elif isinstance(payload, IdentityStatus):
            self._set_identity(payload)
        elif isinstance(payload, SessionClosed):
            self.closed = True
            self.closed_reason = payload.reason
            self.session_closed.emit(payload.reason or "")
        elif isinstance(payload, SessionReopened) and self.closed:
            self.closed = False
            self.closed_reason = None
            self.session_reopened.emit(payload.by)

    def _on_chat(self, env: Envelope, msg: ChatMessage) -> None:
        mine = msg.author.role == self.my_role
        if mine:
            item = self._match_own(env.ref, msg)
            if item is not None:
                item.seq = env.seq
                item.ts = env.ts
                if item.delivery in (Delivery.SENDING, Delivery.FAILED, None):
                    item.delivery = Delivery.SENT
                    item.error = None
                self.message_changed.emit(item)
                return
        elif msg.author.role in (Role.AGENT, Role.ADMIN):
            self._set_other_typing(False)
        if msg.message_id in self._by_key:
            return
        self._add(
            ChatItem(
                key=msg.message_id, role=str(msg.author.role),
                name="You" if mine else msg.author.name, text=msg.text, ts=env.ts, mine=mine,
                delivery=Delivery.SENT if mine else None, seq=env.seq,
            )
        )

    def _on_history_reset(self, session_id: str, first_seq: int) -> None:
        """The connection held seqs from ``first_seq`` on that the host lost: mark them
        (the ``session.gap`` frame that follows adds the notice)."""
        if self._session is None or session_id == self._session:
            self._mark_lost(first_seq, None)

    def _on_gap(self, env: Envelope, gap: SessionGap) -> None:
        """One notice where the host lost messages, the lost ones marked (once: a
        replayed gap frame is the same seq)."""
        key = f"gap-{env.seq}"
        if key in self._by_key:
            return
        lost = self._mark_lost(gap.first_seq, gap.last_seq)
        self._add(ChatItem(key=key, role="system", name="", text=gap_notice(lost),
                           ts=env.ts, mine=False, seq=env.seq, kind="gap"))

    def _mark_lost(self, first_seq: int, last_seq: int | None) -> int:
        """Mark the messages with seqs in the range lost (None: no end); how many are."""
        count = 0
        for item in self.items:
            if (item.kind == "message" and item.seq is not None and item.seq >= first_seq
                    and (last_seq is None or item.seq <= last_seq)):
                count += 1
                if not item.lost:
                    item.lost = True
                    self.message_changed.emit(item)
        return count

    def _match_own(self, ref: str | None, msg: ChatMessage) -> ChatItem | None:
        for key in (ref, msg.message_id):
            if key is not None and key in self._by_key:
                return self._by_key[key]
        for item in self.items:  # a host that echoes neither id: oldest same text
            if item.mine and item.seq is None and item.text == msg.text:
                return item
        return None

    def _on_error(self, code: str, message: str, ref: object) -> None:
        if ref is not None and ref == self._sign_in_ref:
            self._sign_in_ref = None
            if code in (ErrorCode.SIGN_IN_FAILED, ErrorCode.RATE_LIMITED, ErrorCode.CONFLICT,
                        ErrorCode.SESSION_CLOSED, ErrorCode.BAD_MESSAGE):
                self.sign_in_failed.emit(message)
            else:
                self.sign_in_failed.emit("Signing in did not work; please try again.")
            return
        if isinstance(ref, str) and ref in self._by_key:
            item = self._by_key[ref]
            item.delivery = Delivery.FAILED
            item.error = message
            self.message_changed.emit(item)

    def _set_other_typing(self, active: bool) -> None:
        if active:
            self._expire.start()
        else:
            self._expire.stop()
        if active != self.other_typing:
            self.other_typing = active
            self.typing_changed.emit(active)

    def _add(self, item: ChatItem) -> None:
        self.items.append(item)
        self._by_key[item.key] = item
        self.message_added.emit(item)
