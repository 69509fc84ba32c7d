"""Export a transcript (issue 16): customer-visible or internal, Markdown or PDF.

The host writes the transcript (``transcript.get`` → Markdown: what the customer saw,
or with notes, drafts and who decided each action); PDF is that Markdown laid out by
``QTextDocument.setMarkdown`` and painted into a ``QPdfWriter``. The save dialog is
opened (``open()``), never exec()'d.
"""

from __future__ import annotations

import logging
import re
import time
from pathlib import Path
from typing import TYPE_CHECKING

from PySide6.QtCore import QMarginsF, QObject, Qt, Signal
from PySide6.QtGui import QPageLayout, QPageSize, QPdfWriter, QTextDocument
from PySide6.QtWidgets import QFileDialog, QWidget

from hitl_desktop.client.workspace import Workspace

if TYPE_CHECKING:
    from hitl_desktop.core import protocol as p

log = logging.getLogger(__name__)
AUDIENCE_TEXT = {"customer": "customer-visible", "internal": "internal (with notes)"}
FILTERS = "Markdown (*.md);;PDF (*.pdf)"


def write_pdf(markdown: str, path: Path, title: str = "") -> None:
    """Lay the Markdown out on A4 pages and write the PDF (vector text, paginated by
    ``QTextDocument.print_``)."""
    writer = QPdfWriter(str(path))
    writer.setTitle(title or path.stem)
    writer.setCreator("HITL Desk")
    writer.setPageLayout(QPageLayout(QPageSize(QPageSize.PageSizeId.A4),
                                     QPageLayout.Orientation.Portrait,
                                     QMarginsF(18, 18, 18, 18), QPageLayout.Unit.Millimeter))
    doc = QTextDocument()
    doc.setMarkdown(markdown)
    doc.print_(writer)


def default_name(title: str, audience: str, fmt: str) -> str:
    stem = re.sub(r"[^A-Za-z0-9]+", "-", title).strip("-").lower() or "conversation"
    day = time.strftime("%Y-%m-%d")
    extra = "-internal" if audience == "internal" else ""
    return f"{stem[:60]}-{day}{extra}.{fmt}"


class TranscriptExporter(QObject):
    """Asks where, asks the host, writes the file; says how it went."""

    exported = Signal(str)  # path
    failed = Signal(str)  # why

    def __init__(self, workspace: Workspace, parent: QWidget) -> None:
        super().__init__(parent)
        self.workspace = workspace
        self.parent_widget = parent
        self.dialog: QFileDialog | None = None
        # (session, audience) -> where to write, in which format
        self._pending: dict[tuple[str, str], tuple[Path, str]] = {}
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

    def export(self, session_id: str, audience: str, path: Path) -> bool:
        """Ask the host for the transcript; written to ``path`` when it arrives (PDF
        when the name ends in .pdf, else Markdown)."""
        fmt = "pdf" if path.suffix.lower() == ".pdf" else "md"
        if self.workspace.request_transcript(audience, session_id) is None:
            return False
        self._pending[(session_id, audience)] = (path, fmt)
        return True

    def _on_transcript(self, transcript: p.Transcript) -> None:
        target = self._pending.pop((transcript.session_id, transcript.audience), None)
        if target is None:
            return
        path, fmt = target
        try:
            if fmt == "pdf":
                view = self.workspace.session(transcript.session_id)
                write_pdf(transcript.markdown, path,
                          view.display_name if view is not None else "")
            else:
                path.write_text(transcript.markdown, encoding="utf-8")
        except OSError as exc:
            log.warning("cannot write %s: %s", path, exc)
            self.failed.emit(f"Cannot write {path.name}: {exc.strerror or exc}")
            return
        log.info("exported %s transcript of %s to %s", transcript.audience,
                 transcript.session_id, path)
        self.exported.emit(str(path))

    def _on_failed(self, session_id: str, message: str) -> None:
        for key in [k for k in self._pending if k[0] == session_id]:
            self._pending.pop(key, None)
        self.failed.emit(f"Cannot export: {message}")
