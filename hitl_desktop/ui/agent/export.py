"""Export a transcript (issue 16): customer-visible or internal, Markdown or PDF.

The host writes the transcript (``transcript.get`` → Markdown: what the customer saw,
or with notes, drafts and who decided each action); PDF is that Markdown laid out by
``QTextDocument.setMarkdown`` and painted into a ``QPdfWriter``. The save dialog is
opened (``open()``), never exec()'d.

The file is written in a worker thread (``asyncio.to_thread``, supervised): laying out
and painting a long transcript takes seconds, which would freeze the window. The
``QTextDocument`` and ``QPdfWriter`` are created, used and dropped in that thread (both
are reentrant; Qt's "Thread-Support in Qt Modules" allows painting outside the GUI
thread), into memory; the bytes are then written by Python to a temporary file renamed
over the target, so a full disk or a read-only folder is an ``OSError`` with its reason
and never a half-written file. Every request ends in ``exported`` or ``failed``: a
host that does not answer within ``ANSWER_TIMEOUT_S`` fails it too.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import re
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from PySide6.QtCore import (
    QBuffer,
    QByteArray,
    QIODevice,
    QMarginsF,
    QObject,
    Qt,
    QTimer,
    Signal,
)
from PySide6.QtGui import QPageLayout, QPageSize, QPdfWriter, QTextDocument
from PySide6.QtWidgets import QFileDialog, QWidget

from hitl_desktop.client.workspace import Workspace, gap_appendix
from hitl_desktop.core.tasks import TaskSupervisor

if TYPE_CHECKING:
    from hitl_desktop.core import protocol as p

log = logging.getLogger(__name__)
AUDIENCE_TEXT = {"customer": "customer-visible", "internal": "internal (with notes)"}
FILTERS = "Markdown (*.md);;PDF (*.pdf)"
#: how long the host may take to send a transcript before the request fails (seconds)
ANSWER_TIMEOUT_S = 60.0


def pdf_bytes(markdown: str, title: str = "") -> bytes:
    """The Markdown laid out on A4 pages as a PDF (vector text, paginated by
    ``QTextDocument.print_``). Safe in a worker thread: every Qt object is made here."""
    data = QByteArray()
    buffer = QBuffer(data)
    buffer.open(QIODevice.OpenModeFlag.WriteOnly)
    writer = QPdfWriter(buffer)
    writer.setTitle(title or "Transcript")
    writer.setCreator("HITL Desk")
    writer.setPageLayout(QPageLayout(QPageSize(QPageSize.PageSizeId.A4),
                                     QPageLayout.Orientation.Portrait,
                                     QMarginsF(18, 18, 18, 18), QPageLayout.Unit.Millimeter))
    doc = QTextDocument()
    doc.setMarkdown(markdown)
    doc.print_(writer)
    del writer  # ends the PDF (its trailer) before the buffer is read
    buffer.close()
    return bytes(data.data())


def write_file(markdown: str, path: Path, fmt: str, title: str = "") -> None:
    """Write the transcript as Markdown or PDF: to a temporary file beside ``path``,
    renamed over it once complete (an ``OSError`` leaves no partial file)."""
    data = pdf_bytes(markdown, title or path.stem) if fmt == "pdf" \
        else markdown.encode("utf-8")
    tmp = path.with_name(f".{path.name}.{os.getpid()}.part")
    try:
        with tmp.open("wb") as out:
            out.write(data)
            out.flush()
            os.fsync(out.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise


def default_name(title: str, audience: str, fmt: str) -> str:
    stem = re.sub(r"[^A-Za-z0-9]+", "-", title).strip("-").lower() or "conversation"
    day = time.strftime("%Y-%m-%d")
    extra = "-internal" if audience == "internal" else ""
    return f"{stem[:60]}-{day}{extra}.{fmt}"


@dataclass(slots=True)
class ExportJob:
    """One export the representative asked for: where, which format, how far it got."""

    session_id: str
    audience: str
    path: Path
    fmt: str
    asked_at: float = field(default_factory=time.monotonic)
    state: str = "waiting"  # waiting (for the host's transcript) | writing
    timer: QTimer | None = None  # fails the request if the host does not answer


class TranscriptExporter(QObject):
    """Asks where, asks the host, writes the file in a worker thread; says how it went
    (``busy`` while anything is under way, then ``exported`` or ``failed`` per request)."""

    exported = Signal(str)  # path
    failed = Signal(str)  # why (names the file)
    busy = Signal(str)  # what is under way ("" once nothing is)

    def __init__(self, workspace: Workspace, parent: QWidget) -> None:
        super().__init__(parent)
        self.workspace = workspace
        self.parent_widget = parent
        self.dialog: QFileDialog | None = None
        self.jobs: list[ExportJob] = []  # oldest first
        self.answer_timeout_s = ANSWER_TIMEOUT_S
        self._tasks = TaskSupervisor("transcript export", logger=log)
        workspace.transcript_ready.connect(self._on_transcript)
        workspace.transcript_failed.connect(self._on_failed)

    def start(self, audience: str) -> QFileDialog | None:
        """The save dialog for the current conversation (opened, not exec()'d)."""
        view = self.workspace.current
        if view is None:
            self.workspace.error_occurred.emit("Choose a conversation first")
            return None
        sid = view.session_id
        dialog = QFileDialog(self.parent_widget,
                             f"Export the {AUDIENCE_TEXT[audience]} transcript")
        dialog.setObjectName("exportDialog")
        dialog.setAcceptMode(QFileDialog.AcceptMode.AcceptSave)
        dialog.setNameFilters(FILTERS.split(";;"))
        dialog.setDefaultSuffix("md")
        dialog.selectFile(default_name(view.display_name, audience, "md"))
        dialog.filterSelected.connect(
            lambda f: dialog.setDefaultSuffix("pdf" if "pdf" in f else "md"))
        dialog.fileSelected.connect(lambda path: self.export(sid, audience, Path(path)))
        dialog.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        if self.dialog is not None:
            self.dialog.close()
        self.dialog = dialog
        dialog.open()
        return dialog

    @property
    def working(self) -> bool:
        return bool(self.jobs)

    def export(self, session_id: str, audience: str, path: Path) -> bool:
        """Ask the host for the transcript; written to ``path`` when it arrives (PDF
        when the name ends in .pdf, else Markdown). False (and ``failed``) when it
        cannot even be asked for."""
        fmt = "pdf" if path.suffix.lower() == ".pdf" else "md"
        if self.workspace.request_transcript(audience, session_id) is None:
            self.failed.emit(f"Cannot export {path.name}: not connected to the host")
            return False
        job = ExportJob(session_id, audience, path, fmt)
        job.timer = QTimer(self)
        job.timer.setSingleShot(True)
        job.timer.timeout.connect(lambda: self._expire(job))
        job.timer.start(int(self.answer_timeout_s * 1000))
        self.jobs.append(job)
        self._announce()
        return True

    def _announce(self) -> None:
        writing = [j for j in self.jobs if j.state == "writing"]
        if writing:
            self.busy.emit(f"Writing {writing[0].path.name}…")
        elif self.jobs:
            self.busy.emit(f"Exporting {self.jobs[0].path.name}: waiting for the host…")
        else:
            self.busy.emit("")

    @staticmethod
    def _stop_timer(job: ExportJob) -> None:
        if job.timer is not None:
            job.timer.stop()
            job.timer.deleteLater()
            job.timer = None

    def _finish(self, job: ExportJob) -> None:
        self._stop_timer(job)
        with contextlib.suppress(ValueError):
            self.jobs.remove(job)
        self._announce()

    def _expire(self, job: ExportJob) -> None:
        if job in self.jobs and job.state == "waiting":
            self._finish(job)
            self.failed.emit(f"Cannot export {job.path.name}: the host did not send the "
                             "transcript; please try again")

    def _on_transcript(self, transcript: p.Transcript) -> None:
        job = next((j for j in self.jobs if j.state == "waiting"
                    and (j.session_id, j.audience) == (transcript.session_id,
                                                       transcript.audience)), None)
        if job is None:
            return
        job.state = "writing"
        self._stop_timer(job)
        view = self.workspace.session(transcript.session_id)
        title = view.display_name if view is not None else ""
        # what this window showed that the host no longer has (session.gap)
        markdown = transcript.markdown + (gap_appendix(view, transcript.audience)
                                          if view is not None else "")
        self._announce()
        self._tasks.spawn(self._write(job, markdown, title), f"write {job.path.name}")

    async def _write(self, job: ExportJob, markdown: str, title: str) -> None:
        try:
            await asyncio.to_thread(write_file, markdown, job.path, job.fmt, title)
        except OSError as exc:
            log.warning("cannot write %s: %s", job.path, exc)
            self._finish(job)
            self.failed.emit(f"Cannot write {job.path.name}: {exc.strerror or exc}")
            return
        except Exception as exc:  # a layout failure must still say so
            log.exception("cannot export %s", job.path)
            self._finish(job)
            self.failed.emit(f"Cannot export {job.path.name}: {exc}")
            return
        log.info("exported %s transcript of %s to %s", job.audience, job.session_id,
                 job.path)
        self._finish(job)
        self.exported.emit(str(job.path))

    def _on_failed(self, session_id: str, message: str) -> None:
        for job in [j for j in self.jobs if j.session_id == session_id
                    and j.state == "waiting"]:
            self._finish(job)
            self.failed.emit(f"Cannot export {job.path.name}: {message}")
