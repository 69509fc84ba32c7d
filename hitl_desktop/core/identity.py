"""Who the customer is: the identity rules of a session, pure (no I/O).

The host owns each session's :class:`~hitl_desktop.core.protocol.SessionIdentity`
(``host.log`` stores it, ``host.relay`` changes it); everything that decides what
may happen on the basis of it lives here, so the relay, the co-pilot and the
tests share one definition:

* how each way in sets the identity (issued link, sign-in, a representative's
  link or claim, unlink);
* what a tool may do (:func:`tool_access`): nothing at all in an anonymous or
  claimed session, and only on the verified customer's records otherwise;
* whether an approval may run (:func:`approval_refusal`);
* what the model is told (:func:`instructions_for`) and what the customer
  window shows (:func:`customer_status`);
* the sign-in throttle (:class:`SignInLimiter`): per session, per email
  address and per client IP, with lockouts.
"""

from __future__ import annotations

import collections
import hashlib
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Final

from hitl_desktop.core.protocol import ErrorCode, IdentityStatus, SessionIdentity

ANONYMOUS: Final = SessionIdentity()
NOT_VERIFIED: Final = "customer not verified"
SIGN_IN_HINT: Final = "Sign in to your order"
# the one answer to every failed sign-in: it must not say which half was wrong
SIGN_IN_FAILED_MESSAGE: Final = (
    "We couldn't verify those details. Check the email address and the order number "
    "and try again."
)
APPROVAL_FIX: Final = (
    "Verify the customer first: ask them to use \"Sign in to your order\" (email + order "
    "number), or check their identity in the conversation and link the session to them in "
    "the Customer panel (Find customer…); then approve. Otherwise reject the action."
)


# ------------------------------------------------------------------ ways in


def issued_link(customer_id: str, name: str | None, *, by: str, at: float) -> SessionIdentity:
    """A link issued for one customer: that is the signed-in shop customer."""
    return SessionIdentity(state="verified", customer_id=customer_id, customer_name=name,
                           method="link", by=by, at=at)


def signed_in(customer_id: str, name: str | None, *, at: float) -> SessionIdentity:
    """The customer proved an email + order number that belong together."""
    return SessionIdentity(state="verified", customer_id=customer_id, customer_name=name,
                           method="sign_in", by="customer", at=at)


def linked(customer_id: str, name: str | None, *, by: str, at: float,
           verified: bool) -> SessionIdentity:
    """A representative linked the session: verified (they checked) or only claimed."""
    if verified:
        return SessionIdentity(state="verified", customer_id=customer_id, customer_name=name,
                               method="representative", by=by, at=at)
    return SessionIdentity(state="claimed", customer_id=customer_id, customer_name=name,
                           by=by, at=at)


def verified_customer(identity: SessionIdentity | None) -> str | None:
    """The customer whose records this session may touch; None unless verified."""
    if identity is None or identity.state != "verified" or not identity.customer_id:
        return None
    return identity.customer_id


def describe(identity: SessionIdentity) -> str:
    """One line for logs and panels: "verified by sign-in as Alex Morgan (CUST1001)"."""
    who = _who(identity)
    if identity.state == "verified":
        how = {"link": "an issued link", "sign_in": "sign-in",
               "representative": f"representative {identity.by}"}.get(identity.method or "", "?")
        return f"verified by {how} as {who}"
    if identity.state == "claimed":
        return f"claims to be {who} (not verified)"
    return "anonymous visitor (not verified)"


def _who(identity: SessionIdentity) -> str:
    if identity.customer_name and identity.customer_id:
        return f"{identity.customer_name} ({identity.customer_id})"
    return identity.customer_id or "unknown"


# ------------------------------------------------------------------ tools and approvals


@dataclass(frozen=True, slots=True)
class ToolAccess:
    """What the host lets one tool call do: run/propose for ``customer_id``, or answer
    ``refusal`` to the model instead (nothing is read, changed or proposed)."""

    customer_id: str | None
    refusal: dict[str, Any] | None

    @property
    def allowed(self) -> bool:
        return self.refusal is None


def not_verified_output(tool: str, identity: SessionIdentity) -> dict[str, Any]:
    """The function output the model gets for a tool in an unverified session."""
    return {
        "ok": False,
        "error": NOT_VERIFIED,
        "error_code": ErrorCode.NOT_VERIFIED.value,
        "tool": tool,
        "identity": identity.state,
        "message": (
            "No customer data can be read or changed: this customer is not verified. Ask the "
            f"customer to sign in with \"{SIGN_IN_HINT}\" (their email address and an order "
            "number) at the top of the chat window, or the representative to verify them. Do "
            "not guess or repeat any account details."
        ),
    }


def tool_access(identity: SessionIdentity | None, tool: str) -> ToolAccess:
    """Every shop tool reads or changes a customer's data: it runs (or is proposed) only
    in a verified session, confined to that customer's records."""
    customer = verified_customer(identity)
    if customer is None:
        return ToolAccess(None, not_verified_output(tool, identity or ANONYMOUS))
    return ToolAccess(customer, None)


# what a tool's order_id may say for "no order" (the shop's create_ticket / create_complaint)
NO_ORDER: Final = frozenset({"", "N/A", "NA", "NONE", "-"})


def confinement_error(args: Mapping[str, Any], customer_id: str,
                      order_owner: Callable[[str], str | None]) -> str | None:
    """Why these arguments reach beyond the verified customer's records (None if they do
    not): a ``user_id`` that is someone else, an ``order_id`` that is not theirs. A
    missing order and another customer's order get the same answer, so the model (and
    whoever coaxes it) learns nothing about other customers."""
    user = args.get("user_id")
    if isinstance(user, str) and user.strip().upper() != customer_id:
        return (f"user_id {user.strip()!r} is not this conversation's customer: tools only "
                f"work on the verified customer's own account ({customer_id})")
    order = args.get("order_id")
    if isinstance(order, str) and order.strip().upper() not in NO_ORDER:
        oid = order.strip().upper()
        if order_owner(oid) != customer_id:
            return f"{oid} is not one of this customer's orders"
    return None


def is_not_verified(output: Mapping[str, Any] | None) -> bool:
    """Whether a tool output is the host's "customer not verified" answer."""
    return bool(output) and output is not None and (
        output.get("error_code") == ErrorCode.NOT_VERIFIED.value
        or output.get("error") == NOT_VERIFIED)


def approval_refusal(identity: SessionIdentity | None,
                     approval_customer: str | None) -> tuple[ErrorCode, str] | None:
    """Why an approval may not run now (code, message naming the fix), or None."""
    customer = verified_customer(identity)
    if customer is None:
        return ErrorCode.NOT_VERIFIED, (
            "This session's customer is not verified, so no action can run on an account. "
            + APPROVAL_FIX)
    if approval_customer is None or approval_customer.strip().upper() != customer:
        return ErrorCode.CONFLICT, (
            f"This action was proposed for {approval_customer or 'an unverified visitor'}, but "
            f"the session's verified customer is now {customer}. Reject it; the assistant can "
            "propose it again for the verified customer.")
    return None


# ------------------------------------------------------------------ what the model and customer see


def instructions_for(identity: SessionIdentity, profile: Mapping[str, Any] | None) -> str:
    """The identity paragraph of the model's instructions (never another customer's data)."""
    customer = verified_customer(identity)
    if customer is not None:
        who = customer
        if profile:
            email = profile.get("email")
            who = (f"{profile.get('name') or identity.customer_name} (customer id {customer}"
                   + (f", email {email})" if email else ")"))
        how = {"link": "a link issued for this customer", "sign_in": "their sign-in (email "
               "and order number)", "representative": f"the representative {identity.by}"}.get(
            identity.method or "", "the host")
        return (
            f"The customer in this conversation is {who}, verified by {how}. Use this customer "
            "id for tools that take a user_id. Tools only work on this customer's own account "
            "and orders."
        )
    state = ("a visitor who is not verified" if identity.state == "anonymous" else
             f"a visitor who says they are {_who(identity)}, which is NOT verified")
    return (
        f"The customer in this conversation is {state}. You have no access to any customer's "
        f"account: tools that read or change customer data answer \"{NOT_VERIFIED}\". Do not "
        "reveal, guess or confirm any account or order details. For questions about their "
        f"orders or account, ask the customer to sign in with \"{SIGN_IN_HINT}\" (their email "
        "address and an order number) at the top of the chat window, or tell them the "
        "representative will verify them. General questions can be answered from the "
        "knowledge base."
    )


def change_note(identity: SessionIdentity) -> str:
    """A developer note for the model's history when the identity changed mid-conversation."""
    if verified_customer(identity) is not None:
        return (f"Identity update: the customer is now {describe(identity)}. Their account "
                "tools are available from now on.")
    return (f"Identity update: the customer is now {describe(identity)}. No customer data may "
            "be read or changed any more.")


def customer_status(identity: SessionIdentity) -> IdentityStatus:
    """What the customer's own window shows: signed in (as whom, how) or not. A claim a
    representative noted is not shown to the visitor."""
    if verified_customer(identity) is None:
        return IdentityStatus(signed_in=False)
    return IdentityStatus(signed_in=True, customer_name=identity.customer_name,
                          method=identity.method)


def normalise_email(email: str) -> str:
    return email.strip().lower()


def normalise_order(order_id: str) -> str:
    return order_id.strip().upper()


# ------------------------------------------------------------------ sign-in throttle


@dataclass(frozen=True, slots=True)
class SignInLimits:
    """Failed sign-ins allowed per key within ``window_s`` before a ``lockout_s`` lockout."""

    per_session: int = 5
    per_email: int = 10
    per_ip: int = 30
    window_s: float = 900.0
    lockout_s: float = 900.0
    max_keys: int = 50_000  # bounded memory under a flood of distinct keys


@dataclass(slots=True)
class _Key:
    failures: collections.deque[float] = field(default_factory=collections.deque)
    locked_until: float = 0.0


class SignInLimiter:
    """Counts failed sign-ins per session, per email address and per client IP.

    A key that reaches its limit within the window is locked out; while any of
    an attempt's keys is locked the attempt is refused *before* the shop is
    asked, so a right guess during a lockout looks exactly like a wrong one.
    Attempts refused for a lockout do not count as failures. Time is passed in
    (``now``), so the rules are testable without sleeping.
    """

    def __init__(self, limits: SignInLimits | None = None) -> None:
        self.limits = limits or SignInLimits()
        self._keys: dict[str, _Key] = {}

    @staticmethod
    def keys(session_id: str, email: str, ip: str) -> list[str]:
        digest = hashlib.sha256(normalise_email(email).encode()).hexdigest()[:16]
        return [f"session:{session_id}", f"email:{digest}", f"ip:{ip}"]

    def _limit(self, key: str) -> int:
        kind = key.partition(":")[0]
        return {"session": self.limits.per_session, "email": self.limits.per_email,
                "ip": self.limits.per_ip}.get(kind, self.limits.per_session)

    def retry_after(self, keys: Iterable[str], now: float) -> float | None:
        """Seconds until every locked key of this attempt is free; None if none is."""
        wait = 0.0
        for key in keys:
            k = self._keys.get(key)
            if k is not None and k.locked_until > now:
                wait = max(wait, k.locked_until - now)
        return wait or None

    def failed(self, keys: Iterable[str], now: float) -> list[str]:
        """Record a failed attempt; returns the keys this failure locked out."""
        if len(self._keys) >= self.limits.max_keys:
            self._prune(now)
        locked = []
        for key in keys:
            k = self._keys.setdefault(key, _Key())
            while k.failures and k.failures[0] <= now - self.limits.window_s:
                k.failures.popleft()
            k.failures.append(now)
            if len(k.failures) >= self._limit(key) and k.locked_until <= now:
                k.locked_until = now + self.limits.lockout_s
                k.failures.clear()
                locked.append(key)
        return locked

    def succeeded(self, keys: Iterable[str]) -> None:
        """A right answer clears the session's and the address's failures (not the IP's)."""
        for key in keys:
            if not key.startswith("ip:"):
                self._keys.pop(key, None)

    def _prune(self, now: float) -> None:
        horizon = now - self.limits.window_s
        for key in [k for k, v in self._keys.items()
                    if v.locked_until <= now and (not v.failures or v.failures[-1] <= horizon)]:
            del self._keys[key]
        if len(self._keys) >= self.limits.max_keys:  # still full: forget the oldest half
            for key in list(self._keys)[: len(self._keys) // 2]:
                del self._keys[key]
