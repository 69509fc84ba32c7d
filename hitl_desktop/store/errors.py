"""Errors of the shop database, each carrying a protocol ErrorCode.

They subclass :class:`core.ports.OperationError`, so the co-pilot can let them
reach the relay, which turns them into ``error`` frames for the agent.
"""

from __future__ import annotations

from hitl_desktop.core.ports import OperationError
from hitl_desktop.core.protocol import ErrorCode


class StoreError(OperationError):
    """Base class: an operation on the shop database refused with a stable code."""

    code_default = ErrorCode.INTERNAL

    def __init__(self, message: str) -> None:
        super().__init__(self.code_default, message)


class NotFound(StoreError):
    code_default = ErrorCode.NOT_FOUND


class Conflict(StoreError):
    """The approval was already decided (executed, failed, rejected) or is being decided."""

    code_default = ErrorCode.CONFLICT


class Expired(StoreError):
    code_default = ErrorCode.EXPIRED


class Forbidden(StoreError):
    """A tool the catalog says needs approval was asked to run without one."""

    code_default = ErrorCode.FORBIDDEN


class BusinessRuleError(Exception):
    """A tool refused by a shop rule; becomes ``{"ok": false, "error": ...}`` for the model."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message
