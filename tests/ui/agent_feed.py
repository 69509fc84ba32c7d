"""Host messages for agent-workspace tests, sent through the real wire encoding.

Each call encodes a payload with ``core.protocol.encode`` and decodes it with
``decode_host`` (exactly what HostConnection does) before handing it to the
workspace, so tests exercise the same types the window sees in production.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from hitl_desktop.client.workspace import Workspace
from hitl_desktop.core import protocol as p

TOOLS = Path(__file__).resolve().parents[2] / "hitl_desktop" / "data" / "tools.json"


def tool_schema(name: str) -> dict[str, Any]:
    for tool in json.loads(TOOLS.read_text("utf-8"))["tools"]:
        if tool["name"] == name:
            return dict(tool["parameters"])
    raise KeyError(name)


def summary(sid: str, name: str = "Alex Morgan", *, last_seq: int = 0, state: str = "open",
            created: float | None = None, last_at: float | None = None,
            customer_id: str = "CUST1001") -> p.SessionSummary:
    return p.SessionSummary(
        session_id=sid, title=f"Chat with {name}", customer_id=customer_id,
        customer_name=name, state=state,  # type: ignore[arg-type,unused-ignore]
        created_at=created or time.time() - 100, last_seq=last_seq,
        last_message_at=last_at,
        # the host names a customer only once verified: these come from issued links
        identity=p.SessionIdentity(state="verified", customer_id=customer_id,
                                   customer_name=name, method="link", by="host"))


def welcome(*sessions: p.SessionSummary, session_id: str | None = None) -> p.Welcome:
    return p.Welcome(protocol=1, role=p.Role.AGENT, scope=p.Scope.DESK, session_id=session_id,
                     sessions=list(sessions), server={}, heartbeat_s=20)


class Feed:
    """Numbers durable messages per session like the relay does."""

    def __init__(self, ws: Workspace, session: str = "s1") -> None:
        self.ws = ws
        self.session = session
        self.seq: dict[str, int] = {}

    def __call__(self, payload: p.Payload, session: str | None = "", *,
                 seq: int | None = None) -> p.Envelope:
        sid = self.session if session == "" else session
        typ = p.host_type(payload)
        if seq is None and p.HOST_MESSAGES[typ].durable and sid:
            seq = self.seq[sid] = self.seq.get(sid, 0) + 1
        env, decoded, _ = p.decode_host(p.encode(typ, payload, session=sid, seq=seq))
        self.ws.handle(env, decoded)
        return env

    def customer(self, text: str, mid: str | None = None, **kw: Any) -> p.Envelope:
        return self(p.ChatMessage(message_id=mid or p.new_id(),
                                  author=p.Author(role=p.Role.CUSTOMER, name="Alex Morgan"),
                                  text=text), **kw)

    def agent(self, text: str, draft_id: str | None = None, **kw: Any) -> p.Envelope:
        return self(p.ChatMessage(message_id=p.new_id(),
                                  author=p.Author(role=p.Role.AGENT, name="Sam"),
                                  text=text, draft_id=draft_id), **kw)

    def error(self, code: p.ErrorCode, message: str, ref: str | None = None) -> None:
        """An ``error`` frame answering one of our requests (``ref`` = its id)."""
        env, decoded, _ = p.decode_host(p.error_frame(code, message, ref=ref,
                                                      session=self.session))
        self.ws.handle(env, decoded)

    def stream(self, turn: str, text: str, chunk: int = 7) -> None:
        for i in range(0, len(text), chunk):
            self(p.DraftDelta(turn_id=turn, offset=i, text=text[i:i + chunk]))

    def approval(self, aid: str = "a1", tool: str = "cancel_order",
                 arguments: dict[str, Any] | None = None) -> p.Envelope:
        return self(p.ApprovalCreated(
            approval_id=aid, call_id=f"call_{aid}", tool=tool,
            description=f"{tool} for the customer", arguments=arguments or {"order_id": "ORD1001"},
            parameters_schema=tool_schema(tool), expires_at=time.time() + 3600))


class Sent:
    """The workspace's outbound side for tests: records (type, payload, session)."""

    def __init__(self) -> None:
        self.items: list[tuple[str, p.Payload, str | None]] = []
        self.ids: list[str] = []  # message ids, as HostConnection.send returns them

    def __call__(self, payload: p.Payload, session: str | None) -> str:
        self.items.append((p.client_type(payload), payload, session))
        self.ids.append(p.new_id("c"))
        return self.ids[-1]

    def of(self, kind: str) -> list[p.Payload]:
        return [pl for t, pl, _ in self.items if t == kind]
