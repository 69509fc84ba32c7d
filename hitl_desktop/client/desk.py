"""The desk's UI-free models (issue 16): inbox filters and waiting times, macro
placeholders, the representative's preferences and when to notify.

Why a module apart from :mod:`client.workspace`: the workspace mirrors the host's
messages; these decide how one representative looks at them (their filter, their
toggles, whether the window has focus). QtCore only, so every rule here is tested
by feeding the workspace frames, without a window.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

from PySide6.QtCore import QObject, QSettings, Signal

if TYPE_CHECKING:
    from hitl_desktop.client.workspace import SessionView, Workspace

InboxFilter = Literal["mine", "unassigned", "open", "resolved"]
FILTERS: tuple[InboxFilter, ...] = ("mine", "unassigned", "open", "resolved")
FILTER_TEXT: dict[InboxFilter, str] = {
    "mine": "Mine", "unassigned": "Unassigned", "open": "All open", "resolved": "Resolved"}

# ----------------------------------------------------------------------------- inbox


def in_filter(view: SessionView, which: InboxFilter, you_id: str | None) -> bool:
    """Whether a session belongs in the inbox under ``which``.

    mine / unassigned / all open: conversations still to work on (open, or waiting on
    the customer, and not closed); resolved: resolved or closed ones."""
    done = view.summary.state == "closed" or view.status == "resolved"
    if which == "resolved":
        return done
    if done:
        return False
    if which == "mine":
        return view.assignee is not None and you_id is not None \
            and view.assignee.rep_id == you_id
    if which == "unassigned":
        return view.assignee is None
    return True


def inbox_order(views: Iterable[SessionView]) -> list[SessionView]:
    """Customers waiting for an answer first, the longest wait at the top; then the
    rest by latest activity (newest first)."""

    def key(v: SessionView) -> tuple[int, float]:
        if v.waiting_since is not None and v.summary.state == "open":
            return (0, v.waiting_since)
        return (1, -(v.summary.last_message_at or v.summary.created_at))

    return sorted(views, key=key)


def filtered(workspace: Workspace, which: InboxFilter) -> list[SessionView]:
    you = workspace.you
    you_id = you.rep_id if you is not None else None
    return inbox_order(v for v in workspace.sessions() if in_filter(v, which, you_id))


def filter_counts(workspace: Workspace) -> dict[InboxFilter, int]:
    you = workspace.you
    you_id = you.rep_id if you is not None else None
    views = workspace.sessions()
    return {f: sum(1 for v in views if in_filter(v, f, you_id)) for f in FILTERS}


def waiting_text(since: float | None, now: float | None = None) -> str:
    """"waiting 3 min" for a customer line unanswered since ``since`` ("" when none)."""
    if since is None:
        return ""
    delta = max(0.0, (now if now is not None else time.time()) - since)
    if delta < 60:
        return "waiting <1 min"
    minutes = int(delta // 60)
    if minutes < 60:
        return f"waiting {minutes} min"
    hours = minutes // 60
    if hours < 24:
        rest = minutes % 60
        return f"waiting {hours} h {rest} min" if rest else f"waiting {hours} h"
    return f"waiting {hours // 24} d"


def waiting_level(since: float | None, now: float | None = None) -> str:
    """"" / "warn" (5 min) / "late" (15 min): how urgently the wait is coloured."""
    if since is None:
        return ""
    delta = (now if now is not None else time.time()) - since
    return "late" if delta >= 900 else "warn" if delta >= 300 else ""


def holder_text(view: SessionView, you_id: str | None) -> str:
    if view.assignee is None:
        return "Unassigned"
    if you_id is not None and view.assignee.rep_id == you_id:
        return "You"
    return view.assignee.name


# ----------------------------------------------------------------------------- macros

MACRO_NAME = re.compile(r"^[a-z0-9_-]{1,40}$")
PLACEHOLDER = re.compile(r"\{([a-z_]+)\}")
PLACEHOLDERS = ("customer_first_name", "customer_name", "order_id", "rep_name")
ORDER_ID = re.compile(r"\bORD-?\s?(\d{3,})\b", re.IGNORECASE)


def macro_name_problem(name: str) -> str:
    """Why a macro name is not allowed ("" when it is): what the host enforces too."""
    if not name:
        return "A macro needs a name"
    if not MACRO_NAME.match(name):
        return "A macro name is 1 to 40 of a-z, 0-9, _ and - (no spaces or capitals)"
    return ""


@dataclass(frozen=True, slots=True)
class MacroContext:
    """What the placeholders stand for in one conversation (None: not known)."""

    customer_name: str | None
    order_id: str | None
    rep_name: str

    @property
    def customer_first_name(self) -> str | None:
        return self.customer_name.split()[0] if self.customer_name else None

    def value(self, key: str) -> str | None:
        if key == "customer_first_name":
            return self.customer_first_name
        if key == "customer_name":
            return self.customer_name
        if key == "order_id":
            return self.order_id
        if key == "rep_name":
            return self.rep_name
        return None


def macro_context(workspace: Workspace, view: SessionView | None) -> MacroContext:
    """The verified customer's name (a visitor's claim is not their name), the order
    the customer mentioned last (else their only order), the representative's name."""
    name = view.summary.customer_name if view is not None and view.verified else None
    order: str | None = None
    if view is not None:
        from hitl_desktop.client.workspace import ChatItem

        for item in reversed(view.transcript):
            if isinstance(item, ChatItem) and item.role == "customer":
                found = ORDER_ID.findall(item.text)
                if found:
                    order = f"ORD{found[-1]}"
                    break
        if order is None and view.customer is not None and len(view.customer.orders) == 1:
            only = view.customer.orders[0].get("order_id")
            order = str(only) if only else None
    return MacroContext(customer_name=name, order_id=order, rep_name=workspace.my_name)


def expand_macro(text: str, context: MacroContext) -> tuple[str, list[tuple[int, int]]]:
    """The macro with the placeholders it knows filled in; the ones it does not stay
    as written (e.g. ``{order_id}``) and their spans are returned, so the editor can
    select the first for the representative to fill in."""
    out: list[str] = []
    unfilled: list[tuple[int, int]] = []
    pos = 0
    length = 0
    for match in PLACEHOLDER.finditer(text):
        out.append(text[pos:match.start()])
        length += match.start() - pos
        value = context.value(match.group(1))
        if value is None:
            piece = match.group(0)
            if match.group(1) in PLACEHOLDERS:
                unfilled.append((length, length + len(piece)))
        else:
            piece = value
        out.append(piece)
        length += len(piece)
        pos = match.end()
    out.append(text[pos:])
    return "".join(out), unfilled


def macro_prefix(text: str, cursor: int) -> str | None:
    """The macro name being typed at ``cursor`` after a "/" that starts a word (None:
    not typing one). "/" alone gives ""; "http://x" and "and/or" give None."""
    start = cursor
    while start > 0 and (text[start - 1].isalnum() or text[start - 1] in "_-"):
        start -= 1
    if start == 0 or text[start - 1] != "/":
        return None
    slash = start - 1
    if slash > 0 and not text[slash - 1].isspace():
        return None
    word = text[start:cursor]
    return word if all(c.islower() or c.isdigit() or c in "_-" for c in word) else None


# ----------------------------------------------------------------------------- preferences


PREFERENCE_DEFAULTS: dict[str, bool] = {
    "notify/enabled": True,  # desktop notifications while the window is not focused
    "notify/customer_lines": True,  # a customer writes in a session you hold / unassigned
    "notify/approvals": True,  # a new action waits for approval
    "notify/sound": False,  # a beep with each notification (off by default)
    "desk/warn_held": True,  # ask before writing into a session a colleague holds
}
PREFERENCE_TEXT: dict[str, str] = {
    "notify/enabled": "Desktop notifications when the window is not focused",
    "notify/customer_lines": "A customer writes in a conversation you hold or nobody holds",
    "notify/approvals": "An action waits for approval",
    "notify/sound": "Play a sound with each notification",
    "desk/warn_held": "Ask before writing into a conversation a colleague holds",
}


class Preferences(QObject):
    """The representative's toggles, kept in an INI file (QSettings) next to the layout."""

    changed = Signal(str)  # the key that changed

    def __init__(self, settings: QSettings, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._settings = settings

    def get(self, key: str) -> bool:
        default = PREFERENCE_DEFAULTS[key]
        value = self._settings.value(key, default)
        if isinstance(value, str):  # INI files give strings back
            return value.strip().lower() in ("true", "1", "yes", "on")
        return bool(value)

    def set(self, key: str, value: bool) -> None:
        if key not in PREFERENCE_DEFAULTS:
            raise KeyError(key)
        if self.get(key) == value and self._settings.contains(key):
            return
        self._settings.setValue(key, bool(value))
        self._settings.sync()
        self.changed.emit(key)

    def reset(self) -> None:
        for key, value in PREFERENCE_DEFAULTS.items():
            self.set(key, value)

    def items(self) -> list[tuple[str, str, bool]]:
        """(key, what it does, value) in the order the dialog shows them."""
        return [(k, PREFERENCE_TEXT[k], self.get(k)) for k in PREFERENCE_DEFAULTS]


# ----------------------------------------------------------------------------- notifications


@dataclass(frozen=True, slots=True)
class Notification:
    session_id: str
    title: str
    body: str
    kind: Literal["customer", "approval"]


class Notifier(QObject):
    """Decides what deserves a desktop notification; the view shows it (tray, sound).

    Only while the window is not focused: a customer line in a session this
    representative holds or nobody holds (a colleague's customers are theirs), and a
    new action waiting for approval in such a session. ``unread_changed`` carries the
    workspace's unread total for the tray tooltip and the title."""

    notify = Signal(object)  # Notification
    unread_changed = Signal(int)

    def __init__(self, workspace: Workspace, preferences: Preferences,
                 parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.workspace = workspace
        self.preferences = preferences
        self.focused = True
        self.sent: list[Notification] = []  # the last few, newest last (tests, a menu)
        self._unread = workspace.unread_total()
        workspace.customer_line.connect(self._on_customer_line)
        workspace.approval_arrived.connect(self._on_approval)
        workspace.session_updated.connect(self._on_unread)
        workspace.sessions_changed.connect(self._on_unread)

    @property
    def unread(self) -> int:
        return self._unread

    def set_focused(self, focused: bool) -> None:
        self.focused = focused
        self.workspace.set_window_active(focused)
        self._on_unread()

    def _concerns_me(self, session_id: str) -> bool:
        view = self.workspace.session(session_id)
        if view is None or view.summary.state == "closed":
            return False
        return view.assignee is None or self.workspace.is_mine(view)

    def _on_customer_line(self, session_id: str, text: str) -> None:
        prefs = self.preferences
        if self.focused or not prefs.get("notify/enabled") \
                or not prefs.get("notify/customer_lines") or not self._concerns_me(session_id):
            return
        view = self.workspace.session(session_id)
        name = view.display_name if view is not None else "A customer"
        held = "" if view is None or view.assignee is not None else " (unassigned)"
        body = " ".join(text.split())
        self._emit(Notification(session_id, f"{name}{held}", body[:200], "customer"))

    def _on_approval(self, session_id: str, approval_id: str) -> None:
        prefs = self.preferences
        if self.focused or not prefs.get("notify/enabled") \
                or not prefs.get("notify/approvals") or not self._concerns_me(session_id):
            return
        view = self.workspace.session(session_id)
        if view is None:
            return
        approval = view.approvals.get(approval_id)
        what = (approval.summary or approval.description) if approval is not None else ""
        self._emit(Notification(session_id, f"Approval needed — {view.display_name}",
                                " ".join(what.split())[:200], "approval"))

    def _emit(self, note: Notification) -> None:
        self.sent.append(note)
        del self.sent[:-50]
        self.notify.emit(note)

    def _on_unread(self, *_args: object) -> None:
        unread = self.workspace.unread_total()
        if unread != self._unread:
            self._unread = unread
            self.unread_changed.emit(unread)
