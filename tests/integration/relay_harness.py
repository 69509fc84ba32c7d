"""Helpers for relay tests: the one test host (``tests/support/host``) and the one
protocol client (``tests/support/protocol_client``)."""

from __future__ import annotations

from hitl_desktop.core.links import InviteLink
from tests.support.host import running_host
from tests.support.protocol_client import Client, refused

__all__ = ["Client", "refused", "running_host", "token_of"]


def token_of(link: str) -> str:
    return InviteLink.parse(link).token
