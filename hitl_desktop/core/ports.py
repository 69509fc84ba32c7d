"""The seam between the relay and the assistant side of the host.

The relay (``host.relay``) owns sockets, tokens and the durable log; the
co-pilot (``host.copilot``) owns turns, tools and approvals. Each sees the
other only through these protocols, so either can be tested alone and the
relay runs as a plain chat relay with :class:`NullCopilot`.
"""

from __future__ import annotations

from contextvars import ContextVar
from typing import Any, Protocol

from hitl_desktop.core.protocol import (
    ArticleContent,
    AssistantStatus,
    CustomerDetails,
    CustomerMatch,
    ErrorCode,
    KbResults,
    Payload,
    SessionIdentity,
    SessionSummary,
)

CAUSE: ContextVar[str | None] = ContextVar("hitl_cause", default=None)
"""The id of the client frame whose handling is running (the relay sets it around
each operation). Work it starts inherits it (asyncio copies the context into
tasks), so every frame the co-pilot publishes because of that message carries it
as ``ref``; background work (expiry) runs with none."""


class OperationError(Exception):
    """An operation refused for a reason the client should see (code + message)."""

    def __init__(self, code: ErrorCode, message: str, *,
                 details: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.details = details  # the error frame's ``details`` (e.g. held_by_other's holder)


class SessionOutbox(Protocol):
    """How the co-pilot speaks into a session. Implemented by the relay."""

    async def publish(self, session_id: str, payload: Payload, *, ref: str | None = None) -> int:
        """Durable types are logged then relayed (returns the seq); ephemeral ones
        are only relayed (returns 0). Agent-only types never reach customers. Frames
        of one session reach everyone in the order they were published. The relay may
        return before a durable frame is committed (the co-pilot's turn frames join its
        group commit; each is relayed only once durable); should that commit fail, the
        session's next turn frame raises."""
        ...

    def session_summary(self, session_id: str) -> SessionSummary | None: ...

    def session_identity(self, session_id: str) -> SessionIdentity:
        """Who the session's customer is (anonymous for an unknown session): the host's
        record, read from memory. Tools, approvals and instructions are decided on it
        (see ``core.identity``)."""
        ...


class CustomerDirectory(Protocol):
    """The shop's customers as the relay needs them: names, sign-in and search.

    Implemented by ``store.database.ShopDatabase``. Calls may touch the disk: the
    relay runs :meth:`match_sign_in` and :meth:`find_customers` in a worker thread."""

    def customer_name(self, customer_id: str) -> str | None:
        """The customer's name; None if there is no such customer."""
        ...

    def match_sign_in(self, email: str, order_id: str) -> str | None:
        """The customer whose email this is *and* who placed this order; else None."""
        ...

    def find_customers(self, query: str, limit: int) -> list[CustomerMatch]:
        """Customers whose name, email, id or one of whose order ids matches ``query``."""
        ...


class Copilot(Protocol):
    """What the relay calls after it has validated, authorised and logged a message."""

    async def on_customer_message(self, session_id: str, message_id: str, text: str) -> None: ...

    async def on_agent_message(
        self, session_id: str, message_id: str, text: str, draft_id: str | None, agent: str
    ) -> None: ...

    async def approve(
        self, session_id: str, approval_id: str, agent: str, arguments: dict[str, Any] | None
    ) -> None: ...

    async def reject(self, session_id: str, approval_id: str, agent: str, reason: str) -> None: ...

    async def regenerate(self, session_id: str) -> None: ...

    async def steer(
        self, session_id: str, instruction: str, draft_id: str | None, agent: str
    ) -> None:
        """A new draft of the current turn following the representative's instruction
        (``draft.steer``); raises OperationError (e.g. ``unsupported``) when it cannot."""
        ...

    async def on_session_closed(self, session_id: str, by: str) -> None:
        """The session was closed: pending approvals are cancelled, drafting stops."""
        ...

    async def discard(self, session_id: str, turn_id: str) -> None: ...

    async def turn_end_lost(self, session_id: str, turn_id: str) -> None:
        """The host could not store the frames that ended this turn (``draft.completed``
        or ``draft.stale``, ``turn.ended``: a failed group commit), so the agents never
        saw it end: end it again, visibly (``draft.failed``)."""
        ...

    def draft_in_progress(self, session_id: str) -> tuple[str, str] | None:
        """(turn_id, text so far) of a draft still streaming, for resuming agents."""
        ...

    async def draft_text(self, session_id: str, draft_id: str) -> str | None:
        """The text the assistant drafted as ``draft_id`` in this session, if known:
        the relay compares it with what the agent sent (``chat.message.edited``)."""
        ...

    async def customer_details(self, session_id: str) -> CustomerDetails: ...

    async def article(self, article_id: str) -> ArticleContent: ...

    async def kb_search(self, query: str, kind: str | None, limit: int) -> KbResults: ...

    def status(self) -> AssistantStatus: ...

    async def aclose(self) -> None: ...


class NullCopilot:
    """No assistant: the host relays chat between customer and agents only."""

    async def on_customer_message(self, session_id: str, message_id: str, text: str) -> None:
        return None

    async def on_agent_message(
        self, session_id: str, message_id: str, text: str, draft_id: str | None, agent: str
    ) -> None:
        return None

    async def approve(
        self, session_id: str, approval_id: str, agent: str, arguments: dict[str, Any] | None
    ) -> None:
        raise OperationError(ErrorCode.NOT_FOUND, f"no approval {approval_id!r} in this session")

    async def reject(self, session_id: str, approval_id: str, agent: str, reason: str) -> None:
        raise OperationError(ErrorCode.NOT_FOUND, f"no approval {approval_id!r} in this session")

    async def regenerate(self, session_id: str) -> None:
        raise OperationError(ErrorCode.ASSISTANT_UNAVAILABLE, "this host runs without an assistant")

    async def steer(
        self, session_id: str, instruction: str, draft_id: str | None, agent: str
    ) -> None:
        raise OperationError(ErrorCode.ASSISTANT_UNAVAILABLE, "this host runs without an assistant")

    async def discard(self, session_id: str, turn_id: str) -> None:
        raise OperationError(ErrorCode.NOT_FOUND, f"no draft {turn_id!r} in this session")

    async def turn_end_lost(self, session_id: str, turn_id: str) -> None:
        return None

    async def on_session_closed(self, session_id: str, by: str) -> None:
        return None

    def draft_in_progress(self, session_id: str) -> tuple[str, str] | None:
        return None

    async def draft_text(self, session_id: str, draft_id: str) -> str | None:
        return None

    async def customer_details(self, session_id: str) -> CustomerDetails:
        return CustomerDetails(customer=None, orders=[])

    async def article(self, article_id: str) -> ArticleContent:
        raise OperationError(ErrorCode.NOT_FOUND, f"no article {article_id!r}")

    async def kb_search(self, query: str, kind: str | None, limit: int) -> KbResults:
        return KbResults(query=query, articles=[])

    def status(self) -> AssistantStatus:
        return AssistantStatus(
            provider="none", model=None, is_ai=False, state="unconfigured",
            message="this host relays chat only",
        )

    async def aclose(self) -> None:
        return None
