"""Invite tokens: ``TOKENID.SECRET``; the host keeps only ``sha256(SECRET)``.

Why this shape: the id lets the host find the row without comparing against
every hash, the secret is compared in constant time (``hmac.compare_digest``),
and a database leak reveals no usable secret. Secrets are never logged: only
token ids appear in log lines.

Kinds (what a token lets its holder be):

=================  =========  =======  ==========================================
kind               role       scope    notes
=================  =========  =======  ==========================================
customer-session   customer   session  one session's customer
customer-lobby     customer   lobby    each use opens a fresh session; the welcome
                                       carries a personal customer-session token
agent-session      agent      session  an agent bound to one session
agent-desk         agent      desk     sees every session; many may connect
admin              admin      desk     everything, plus ``session.create``
=================  =========  =======  ==========================================
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from dataclasses import dataclass
from enum import StrEnum

from hitl_desktop.core.links import is_well_formed_token
from hitl_desktop.core.protocol import Role, Scope
from hitl_desktop.host.log import RelayLog


class TokenKind(StrEnum):
    CUSTOMER_SESSION = "customer-session"
    CUSTOMER_LOBBY = "customer-lobby"
    AGENT_SESSION = "agent-session"
    AGENT_DESK = "agent-desk"
    ADMIN = "admin"

    @property
    def role(self) -> Role:
        if self in (TokenKind.CUSTOMER_SESSION, TokenKind.CUSTOMER_LOBBY):
            return Role.CUSTOMER
        if self is TokenKind.ADMIN:
            return Role.ADMIN
        return Role.AGENT

    @property
    def scope(self) -> Scope:
        if self is TokenKind.CUSTOMER_LOBBY:
            return Scope.LOBBY
        if self in (TokenKind.AGENT_DESK, TokenKind.ADMIN):
            return Scope.DESK
        return Scope.SESSION

    @property
    def link_role(self) -> str:
        """The ``/customer`` or ``/agent`` part of an invite link (admins use agent windows)."""
        return "customer" if self.role is Role.CUSTOMER else "agent"


@dataclass(frozen=True, slots=True)
class TokenRecord:
    token_id: str
    kind: TokenKind
    session_id: str | None
    label: str | None

    @property
    def role(self) -> Role:
        return self.kind.role

    @property
    def scope(self) -> Scope:
        return self.kind.scope


_KINDS = {k.value: k for k in TokenKind}
_NO_HASH = "0" * 64  # matches no sha256 hex digest of a secret (they are never all zeros)


def hash_secret(secret: str) -> str:
    return hashlib.sha256(secret.encode("utf-8")).hexdigest()


class Tokens:
    """Issue, verify and revoke tokens stored in the relay log's database."""

    def __init__(self, relay_log: RelayLog) -> None:
        self.db = relay_log.db

    def issue(
        self, kind: TokenKind, *, session_id: str | None = None, label: str | None = None
    ) -> str:
        """Create a token and return it in full. This is the only time the secret exists
        in clear on the host side (callers show it once or store it deliberately)."""
        if (kind.scope is Scope.SESSION) != (session_id is not None):
            raise ValueError(f"{kind} tokens {'need' if kind.scope is Scope.SESSION else 'take no'}"
                             " session id")
        token_id = secrets.token_hex(6)
        secret = secrets.token_urlsafe(24)
        self.db.execute(
            "INSERT INTO tokens(token_id, secret_hash, kind, session_id, label, created_at)"
            " VALUES (?, ?, ?, ?, ?, ?)",
            (token_id, hash_secret(secret), kind.value, session_id, label, time.time()),
        )
        return f"{token_id}.{secret}"

    def verify(self, token: str) -> TokenRecord | None:
        """The token's record, or None for a malformed, unknown, wrong or revoked token.

        The same work whether or not the id exists (one row either way, a hash, a
        constant-time compare, no early return), so timing does not tell which ids
        exist."""
        if not is_well_formed_token(token):
            return None
        token_id, _, secret = token.partition(".")
        row = self.db.execute(
            "SELECT secret_hash, kind, session_id, label, revoked_at FROM"
            " (SELECT secret_hash, kind, session_id, label, revoked_at, 0 AS o FROM tokens"
            "  WHERE token_id = ?"
            "  UNION ALL SELECT ?, '', NULL, NULL, NULL, 1) ORDER BY o LIMIT 1",
            (token_id, _NO_HASH),
        ).fetchone()
        matches = hmac.compare_digest(hash_secret(secret), row[0])
        live = row[4] is None
        kind = _KINDS.get(row[1])
        if not (matches & live) or kind is None:
            return None
        return TokenRecord(token_id=token_id, kind=kind, session_id=row[2], label=row[3])

    def revoke(self, token_or_id: str) -> bool:
        """Revoke by token id (or full token); True if a live token was revoked."""
        token_id = token_or_id.partition(".")[0]
        cur = self.db.execute(
            "UPDATE tokens SET revoked_at = ? WHERE token_id = ? AND revoked_at IS NULL",
            (time.time(), token_id),
        )
        return cur.rowcount > 0

    def revoke_kind(self, kind: TokenKind, *, keep: str | None = None) -> set[str]:
        """Revoke every live *unlabelled* token of ``kind`` except the id ``keep``; their
        ids. (The desk, lobby and admin links are one unlabelled token each: replacing one
        revokes the rest. Labelled ones are personal: a representative's desk link made by
        ``rep add`` survives a rotation of the shared desk link.)"""
        rows = self.db.execute(
            "SELECT token_id FROM tokens WHERE kind = ? AND revoked_at IS NULL"
            " AND label IS NULL", (kind.value,)
        ).fetchall()
        ids = {str(r[0]) for r in rows} - {keep}
        now = time.time()
        for token_id in ids:
            self.db.execute("UPDATE tokens SET revoked_at = ? WHERE token_id = ?",
                            (now, token_id))
        return ids

    def representatives(self) -> list[tuple[str, str, str | None, float]]:
        """(token id, kind, label, created at) of every live desk and admin link. (By
        the kind index: ``+revoked_at`` keeps SQLite off the revoked index, under which
        every live session token would be read — the desk asks every few seconds.)"""
        rows = self.db.execute(
            "SELECT token_id, kind, label, created_at FROM tokens WHERE kind IN (?, ?)"
            " AND +revoked_at IS NULL ORDER BY created_at",
            (TokenKind.AGENT_DESK.value, TokenKind.ADMIN.value)).fetchall()
        return [(str(r[0]), str(r[1]), r[2], float(r[3])) for r in rows]

    def revoke_session(self, session_id: str) -> int:
        cur = self.db.execute(
            "UPDATE tokens SET revoked_at = ? WHERE session_id = ? AND revoked_at IS NULL",
            (time.time(), session_id),
        )
        return cur.rowcount

    def revoked_since(self, since: float) -> set[str]:
        """Ids of tokens revoked at or after ``since`` (by this or another process)."""
        rows = self.db.execute(
            "SELECT token_id FROM tokens WHERE revoked_at >= ?", (since,)
        ).fetchall()
        return {str(r[0]) for r in rows}

    def is_live(self, token_id: str) -> bool:
        row = self.db.execute(
            "SELECT 1 FROM tokens WHERE token_id = ? AND revoked_at IS NULL", (token_id,)
        ).fetchone()
        return row is not None
