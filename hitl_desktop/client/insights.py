"""Insights requests over a host connection, as Qt signals (no widgets).

Why a model of its own: the Insights view (host window) asks for reports and
for one conversation's changes, and must match each answer to its request (a
slow report may be overtaken by a newer one: only the latest counts). The view
only calls :meth:`InsightsModel.request_report` / :meth:`request_changes` and
listens to the signals.
"""

from __future__ import annotations

import logging

from PySide6.QtCore import QObject, Signal

from hitl_desktop.client.connection import ConnectionState, HostConnection
from hitl_desktop.core.insights import ChangeRow, InsightsReport
from hitl_desktop.core.protocol import (
    Envelope,
    InsightsChanges,
    InsightsConversation,
    InsightsGet,
    InsightsReportData,
    Payload,
)

log = logging.getLogger(__name__)


class InsightsModel(QObject):
    """Sends ``insights.get`` / ``insights.conversation``; emits the latest answers."""

    #: an :class:`InsightsReport` answering the latest request
    report_ready = Signal(object)
    #: (session id, list[ChangeRow]) answering the latest changes request
    changes_ready = Signal(str, object)
    #: a request was refused (message)
    failed = Signal(str)
    #: True while a report is being computed
    busy_changed = Signal(bool)

    def __init__(self, connection: HostConnection, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.connection = connection
        self._report_id: str | None = None
        self._changes_id: str | None = None
        self.report: InsightsReport | None = None
        self._connected = connection.state is ConnectionState.CONNECTED
        connection.message_received.connect(self._on_message)
        connection.error_received.connect(self._on_error)
        connection.state_changed.connect(self._on_state)

    @property
    def busy(self) -> bool:
        return self._report_id is not None

    def request_report(self, start: float, end: float) -> str:
        """Ask for the report of conversations opened in [start, end) (UNIX seconds)."""
        self._report_id = self.connection.send(InsightsGet(start=start, end=end))
        self.busy_changed.emit(True)
        return self._report_id

    def request_changes(self, session_id: str) -> str:
        self._changes_id = self.connection.send(InsightsConversation(), session=session_id)
        return self._changes_id

    def _on_message(self, env: Envelope, payload: Payload) -> None:
        if isinstance(payload, InsightsReportData) and env.ref == self._report_id:
            self._report_id = None
            self.report = payload.report
            self.busy_changed.emit(False)
            self.report_ready.emit(payload.report)
        elif isinstance(payload, InsightsChanges) and env.ref == self._changes_id:
            self._changes_id = None
            rows: list[ChangeRow] = list(payload.changes)
            self.changes_ready.emit(payload.session_id, rows)

    def _on_state(self, state: str) -> None:
        """A request in flight when an open connection drops is not written again (it is
        a read: the user asks again), so do not leave the view waiting for it. Requests
        made before the first connect wait in the connection's outbox: they stay."""
        was, self._connected = self._connected, state == ConnectionState.CONNECTED.value
        if self._connected or not was:
            return
        pending = self._report_id is not None or self._changes_id is not None
        self._report_id = self._changes_id = None
        if pending:
            self.busy_changed.emit(False)
            self.failed.emit("the connection to the host was lost; press Refresh again")

    def _on_error(self, code: str, message: str, ref: object) -> None:
        if ref is None or ref not in (self._report_id, self._changes_id):
            return
        if ref == self._report_id:
            self._report_id = None
            self.busy_changed.emit(False)
        else:
            self._changes_id = None
        log.info("insights request refused: %s (%s)", message, code)
        self.failed.emit(message)
