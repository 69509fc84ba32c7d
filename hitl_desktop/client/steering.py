"""Undo for steered drafts: the drafts a representative's instructions replaced.

``draft.steer`` gives a new draft of the same reply; the one it replaces
(``draft.started.replaces``) is kept here, per session, so the agent window can
show it again (Undo). The host keeps every draft as it was, so nothing is sent
to go back: steering the restored draft (its ``draft_id``) continues from it.
A draft that is not a steer (a new customer message, an approval decision, a
regenerate) starts a new reply and forgets the stack. UI-free (no Qt).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Generic, Protocol, TypeVar


class DraftLike(Protocol):
    """What undo reads of a draft (``client.workspace.Draft``; no import: no cycle)."""

    @property
    def turn_id(self) -> str: ...

    @property
    def text(self) -> str: ...


D = TypeVar("D", bound=DraftLike)

MAX_UNDO = 20  # drafts kept per session


@dataclass(slots=True)
class UndoEntry(Generic[D]):
    """A draft a steer replaced, and what the representative had in the editor then."""

    draft: D
    editor_text: str | None  # their edited text of it, when it differed from the draft
    instruction: str  # the instruction that replaced it ("shorter"; "" for a regenerate)


class DraftUndo(Generic[D]):
    """Per session: the drafts steers replaced, newest last."""

    def __init__(self) -> None:
        self._stacks: dict[str, list[UndoEntry[D]]] = {}
        # session -> (turn id, editor text) as it was when the representative steered
        self._snapshots: dict[str, tuple[str, str | None]] = {}

    def snapshot(self, session_id: str, turn_id: str, editor_text: str | None) -> None:
        """Remember the editor as it is when a steer of ``turn_id`` is sent."""
        self._snapshots[session_id] = (turn_id, editor_text)

    def started(self, session_id: str, current: D | None, replaces: str | None,
                instruction: str | None, reason: str = "") -> None:
        """A draft started: keep the one it replaces, or forget the stack (a new reply).
        A regenerated draft is the same reply again (the host keeps the instructions in
        force): the one it replaces is kept too, so Undo can go back to it."""
        if replaces is None and reason == "regenerate" and current is not None \
                and getattr(current, "state", "") not in ("sent", "discarded"):
            replaces, instruction = current.turn_id, ""
        if replaces is None:
            self.clear(session_id)
            return
        if current is None or current.turn_id != replaces:
            return  # not the draft we show (e.g. another agent steered an older one)
        snap = self._snapshots.pop(session_id, None)
        edited = snap[1] if snap is not None and snap[0] == current.turn_id else None
        if edited is not None and edited.strip() == current.text.strip():
            edited = None
        stack = self._stacks.setdefault(session_id, [])
        stack.append(UndoEntry(current, edited, instruction or ""))
        del stack[:-MAX_UNDO]

    def pop(self, session_id: str) -> UndoEntry[D] | None:
        stack = self._stacks.get(session_id)
        return stack.pop() if stack else None

    def peek(self, session_id: str) -> UndoEntry[D] | None:
        stack = self._stacks.get(session_id)
        return stack[-1] if stack else None

    def instructions(self, session_id: str) -> list[str]:
        """The instructions that led to the draft shown, oldest first (those in force)."""
        return [e.instruction for e in self._stacks.get(session_id, ()) if e.instruction]

    def depth(self, session_id: str) -> int:
        return len(self._stacks.get(session_id, ()))

    def clear(self, session_id: str | None = None) -> None:
        if session_id is None:
            self._stacks.clear()
            self._snapshots.clear()
        else:
            self._stacks.pop(session_id, None)
            self._snapshots.pop(session_id, None)
