"""Invite links: everything a client needs to join, in one copyable string.

Format: ``hitl://HOST:PORT/ROLE#TOKEN`` (``hitls://`` when the host uses TLS).
ROLE is ``customer`` or ``agent`` and tells a launcher which window to open;
the host decides the real role and scope from the token. The token lives in
the fragment, which is never sent to any server: clients present it in their
``hello`` frame, so it never appears in a WebSocket URL or a proxy log.
A token is ``TOKEN_ID.SECRET``; the host stores only a hash of the secret.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal
from urllib.parse import urlsplit

LinkRole = Literal["customer", "agent"]
WS_PATH = "/ws"
_TOKEN_RE = re.compile(r"^[A-Za-z0-9_-]{4,40}\.[A-Za-z0-9_-]{16,120}$")


class InvalidLink(ValueError):
    """A link that cannot be used to join; the message says why."""


@dataclass(frozen=True, slots=True)
class InviteLink:
    host: str
    port: int
    role: LinkRole
    token: str
    tls: bool = False

    @property
    def ws_url(self) -> str:
        scheme = "wss" if self.tls else "ws"
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{scheme}://{host}:{self.port}{WS_PATH}"

    def __str__(self) -> str:
        scheme = "hitls" if self.tls else "hitl"
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{scheme}://{host}:{self.port}/{self.role}#{self.token}"

    @classmethod
    def parse(cls, text: str) -> InviteLink:
        text = text.strip()
        try:
            parts = urlsplit(text)
            port = parts.port
        except ValueError as exc:
            raise InvalidLink(f"not a valid link: {exc}") from None
        if parts.scheme not in ("hitl", "hitls"):
            raise InvalidLink("an invite link starts with hitl:// or hitls://")
        if not parts.hostname:
            raise InvalidLink("the link names no host")
        if port is None:
            raise InvalidLink("the link names no port")
        role = parts.path.strip("/")
        if role not in ("customer", "agent"):
            raise InvalidLink("the link must end in /customer or /agent before the '#'")
        if not is_well_formed_token(parts.fragment):
            raise InvalidLink("the link carries no valid secret after '#'")
        return cls(
            host=parts.hostname,
            port=port,
            role=role,  # type: ignore[arg-type]
            token=parts.fragment,
            tls=parts.scheme == "hitls",
        )


def is_well_formed_token(token: str) -> bool:
    return bool(_TOKEN_RE.match(token))
