"""The Insights window of the host: how the co-pilot and the desk are doing, in charts.

It asks the host over the window's admin connection (``insights.get``,
``insights.conversation`` through :class:`~hitl_desktop.client.insights.InsightsModel`),
exactly as a remote agent could, and shows what comes back: key figures, four charts
(drafts per day by outcome, approvals by tool, time to first reply, kinds of edit),
the top knowledge gaps, representatives, articles and rejection reasons, and per
conversation a "what changed" diff of each draft against the text that was sent.
Exports (CSV, PDF) write the report on screen. No figure is computed here.
"""

from __future__ import annotations

import html
import logging
import time
from pathlib import Path
from typing import Any, Final

from PySide6.QtCore import QDate, Qt, QTimeZone, Signal
from PySide6.QtGui import QCloseEvent
from PySide6.QtWidgets import (
    QAbstractItemView,
    QComboBox,
    QDateEdit,
    QFileDialog,
    QFrame,
    QGridLayout,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QLineEdit,
    QMainWindow,
    QPushButton,
    QScrollArea,
    QTableWidget,
    QTableWidgetItem,
    QTabWidget,
    QTextBrowser,
    QVBoxLayout,
    QWidget,
)

from hitl_desktop.client.connection import HostConnection
from hitl_desktop.client.insights import InsightsModel
from hitl_desktop.core.insights import ChangeRow, InsightsReport, diff
from hitl_desktop.ui.fit import fit_to_screen
from hitl_desktop.ui.insights_charts import CHARTS, duration
from hitl_desktop.ui.insights_report import key_figures, pct, period_text, write_csv, write_pdf
from hitl_desktop.ui.theme import button_css, colors

log = logging.getLogger(__name__)

DAY: Final = 86400.0
PERIODS: Final[tuple[tuple[str, int], ...]] = (
    ("Last 7 days", 7), ("Last 30 days", 30), ("Last 90 days", 90), ("Custom dates", 0))


def _table(headers: list[str]) -> QTableWidget:
    t = QTableWidget(0, len(headers))
    t.setHorizontalHeaderLabels(headers)
    t.verticalHeader().setVisible(False)
    t.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
    t.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
    t.setAlternatingRowColors(True)
    t.setShowGrid(False)
    t.setWordWrap(False)
    hdr = t.horizontalHeader()
    hdr.setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
    hdr.setStretchLastSection(True)
    t.setMinimumHeight(150)
    return t


def _fill(t: QTableWidget, rows: list[list[Any]], tips: list[str] | None = None) -> None:
    t.setRowCount(len(rows))
    for r, row in enumerate(rows):
        for col, value in enumerate(row):
            item = QTableWidgetItem(f"{value:,}" if isinstance(value, int) else str(value))
            if isinstance(value, int):
                item.setTextAlignment(Qt.AlignmentFlag.AlignRight
                                      | Qt.AlignmentFlag.AlignVCenter)
            if tips is not None:
                item.setToolTip(tips[r])
            t.setItem(r, col, item)


def diff_html(draft: str, sent: str) -> str:
    """The draft with deletions struck through in red and insertions in green."""
    out = []
    for piece in diff(draft, sent):
        if piece.op == "equal":
            out.append(html.escape(piece.draft))
            continue
        if piece.draft:
            out.append('<span style="background:#ffd7d5;color:#8a1c1c;'
                       f'text-decoration:line-through">{html.escape(piece.draft)}</span>')
        if piece.sent:
            out.append('<span style="background:#d3f5dc;color:#0f5c2a">'
                       f"{html.escape(piece.sent)}</span>")
    return "".join(out).replace("\n", "<br>")


OUTCOME_TEXT: Final = {"sent_as_is": "sent as drafted", "edited": "edited",
                       "replaced": "replaced", "written_from_scratch": "written without a draft"}


def changes_html(session_id: str, rows: list[ChangeRow]) -> str:
    """Every agent line of a conversation next to its draft, as a diff."""
    if not rows:
        return (f"<p>No agent line in <b>{html.escape(session_id)}</b> yet (or this host "
                "keeps no draft records).</p>")
    parts = [f"<h3>What changed in {html.escape(session_id)}</h3>"]
    for r in rows:
        when = time.strftime("%Y-%m-%d %H:%M", time.localtime(r.sent_at))
        meta = [OUTCOME_TEXT[r.outcome]]
        if r.distance is not None and r.outcome != "sent_as_is":
            meta.append(f"edit distance {r.distance:.2f}")
        if r.kinds:
            meta.append(", ".join(k.replace("_", " ") for k in r.kinds))
        parts.append(f"<p style='margin-bottom:2px'><b>{html.escape(r.agent)}</b> "
                     f"<span style='color:#66707a'>{when} · {html.escape(' · '.join(meta))}"
                     "</span></p>")
        if r.draft_text is None:
            body = html.escape(r.sent_text)
        elif r.outcome == "replaced":
            body = (f"<span style='color:#66707a'>Draft:</span> "
                    f"<s>{html.escape(r.draft_text)}</s><br>"
                    f"<span style='color:#66707a'>Sent:</span> {html.escape(r.sent_text)}")
        else:
            body = diff_html(r.draft_text, r.sent_text)
        parts.append(f"<div style='margin:0 0 12px 12px'>{body}</div>")
    return "".join(parts)


class InsightsView(QWidget):
    """Period picker, figures, charts and tables of one report, and exports."""

    def __init__(self, model: InsightsModel, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.model = model
        self.report: InsightsReport | None = None
        self.charts: list[Any] = []
        c = colors()
        lay = QVBoxLayout(self)
        lay.setContentsMargins(12, 10, 12, 10)

        bar = QHBoxLayout()
        self.period = QComboBox()
        for label, _days in PERIODS:
            self.period.addItem(label)
        self.period.setCurrentIndex(1)
        self.start_date = QDateEdit(QDate.currentDate().addDays(-29))
        self.end_date = QDateEdit(QDate.currentDate())
        for d in (self.start_date, self.end_date):
            d.setCalendarPopup(True)
            d.setDisplayFormat("yyyy-MM-dd")
        self.refresh_button = QPushButton("Refresh")
        self.refresh_button.setStyleSheet(button_css(c))
        self.csv_button = QPushButton("Export CSV…")
        self.pdf_button = QPushButton("Export PDF…")
        for b in (self.csv_button, self.pdf_button):
            b.setStyleSheet(button_css(c, primary=False))
            b.setEnabled(False)
        bar.addWidget(QLabel("Period"))
        bar.addWidget(self.period)
        bar.addWidget(self.start_date)
        bar.addWidget(QLabel("to"))
        bar.addWidget(self.end_date)
        bar.addWidget(self.refresh_button)
        bar.addStretch(1)
        bar.addWidget(self.csv_button)
        bar.addWidget(self.pdf_button)
        lay.addLayout(bar)
        self.status = QLabel("Choose a period and press Refresh.")
        self.status.setStyleSheet(f"color:{c.muted};")
        lay.addWidget(self.status)

        scroll = QScrollArea()
        scroll.setWidgetResizable(True)
        scroll.setFrameShape(QFrame.Shape.NoFrame)
        body = QWidget()
        self.body = QVBoxLayout(body)
        self.body.setContentsMargins(0, 4, 0, 4)
        self.figures = QGridLayout()
        self.figure_labels: list[tuple[QLabel, QLabel]] = []
        for i in range(6):
            value, caption = QLabel("—"), QLabel("")
            value.setStyleSheet("font-size:20px;font-weight:600;")
            caption.setStyleSheet(f"color:{c.muted};")
            self.figures.addWidget(value, 0, i)
            self.figures.addWidget(caption, 1, i)
            self.figure_labels.append((value, caption))
        self.body.addLayout(self.figures)
        self.chart_grid = QGridLayout()
        self.chart_grid.setSpacing(8)
        self.body.addLayout(self.chart_grid)

        self.tables = QTabWidget()
        self.gaps = _table(["Knowledge gap", "Questions", "Weak retrieval", "Replaced",
                            "Example"])
        self.agents = _table(["Representative", "Lines", "As-is", "Edited", "Replaced",
                              "Without draft", "First replies", "Median first reply",
                              "Decided", "Rejected", "Closed"])
        self.articles = _table(["Article", "Shown", "Cited", "Opened"])
        self.reasons = _table(["Tool", "Rejection reason", "Times"])
        self.tables.addTab(self.gaps, "Knowledge gaps")
        self.tables.addTab(self.agents, "Representatives")
        self.tables.addTab(self.articles, "Articles")
        self.tables.addTab(self.reasons, "Rejections")
        self.tables.setMinimumHeight(230)
        self.body.addWidget(self.tables)
        self.notes = QLabel("")
        self.notes.setWordWrap(True)
        self.notes.setStyleSheet(f"color:{c.muted};font-size:11px;")
        self.body.addWidget(self.notes)
        scroll.setWidget(body)
        lay.addWidget(scroll, 1)

        self.period.currentIndexChanged.connect(self._period_changed)
        self.refresh_button.clicked.connect(self.refresh)
        self.csv_button.clicked.connect(lambda: self._ask_path("CSV files (*.csv)", ".csv"))
        self.pdf_button.clicked.connect(lambda: self._ask_path("PDF files (*.pdf)", ".pdf"))
        model.report_ready.connect(self.show_report)
        model.failed.connect(self._failed)
        model.busy_changed.connect(self._busy)
        self._period_changed()

    # ------------------------------------------------------------------ period

    def period_bounds(self) -> tuple[float, float]:
        """[start, end) in UNIX seconds: whole local days, the end day included."""
        days = PERIODS[self.period.currentIndex()][1]
        if days:
            end_day = QDate.currentDate()
            start_day = end_day.addDays(-(days - 1))
        else:
            start_day, end_day = self.start_date.date(), self.end_date.date()
        zone = QTimeZone.systemTimeZone()
        start = start_day.startOfDay(zone).toSecsSinceEpoch()
        end = end_day.addDays(1).startOfDay(zone).toSecsSinceEpoch()
        return float(start), float(end)

    def _period_changed(self) -> None:
        custom = PERIODS[self.period.currentIndex()][1] == 0
        self.start_date.setEnabled(custom)
        self.end_date.setEnabled(custom)

    def refresh(self) -> None:
        start, end = self.period_bounds()
        if end <= start:
            self.status.setText("The period must end after it starts.")
            return
        self.model.request_report(start, end)

    def _busy(self, busy: bool) -> None:
        self.refresh_button.setEnabled(not busy)
        if busy:
            self.status.setText("Computing the report on the host…")

    def _failed(self, message: str) -> None:
        self.status.setText(f"The host refused: {message}")

    # ------------------------------------------------------------------ showing

    def show_report(self, report: InsightsReport) -> None:
        self.report = report
        c = colors()
        self.status.setText(
            f"{period_text(report)} · {report.conversations:,} conversations, "
            f"{report.outcomes.drafts:,} drafts · computed "
            f"{time.strftime('%H:%M:%S', time.localtime(report.generated_at))}")
        for (value, caption), (v, cap) in zip(self.figure_labels, key_figures(report),
                                              strict=True):
            value.setText(v)
            caption.setText(cap)
        for w in self.charts:
            self.chart_grid.removeWidget(w)
            w.deleteLater()
        self.charts = [make(report, c) for make in CHARTS]
        for i, w in enumerate(self.charts):
            w.setMinimumHeight(210)
            w.setMaximumHeight(250)
            self.chart_grid.addWidget(w, i // 2, i % 2)
        _fill(self.gaps, [[g.label, g.count, g.weak_retrieval, g.replaced,
                           g.examples[0] if g.examples else ""] for g in report.gaps],
              ["\n".join(g.examples) for g in report.gaps])
        _fill(self.agents, [[a.agent, a.lines_sent, pct(a.sent_as_is, a.lines_sent), a.edited,
                             a.replaced, a.written_from_scratch, a.first_replies,
                             duration(a.first_reply_median_s), a.approvals_decided,
                             a.approvals_rejected, a.sessions_closed] for a in report.agents])
        _fill(self.articles, [[f"{a.title} ({a.article_id})", a.shown, a.cited, a.opened]
                              for a in report.articles])
        _fill(self.reasons, [[t.tool, r.reason, r.count] for t in report.tools
                             for r in t.reasons])
        self.notes.setText(" ".join(report.notes))
        for b in (self.csv_button, self.pdf_button):
            b.setEnabled(True)

    # ------------------------------------------------------------------ exports

    def _ask_path(self, filter_: str, suffix: str) -> None:
        dialog = QFileDialog(self, "Export insights", str(Path.home()), filter_)
        dialog.setAcceptMode(QFileDialog.AcceptMode.AcceptSave)
        dialog.setDefaultSuffix(suffix.lstrip("."))
        dialog.selectFile(f"insights-{time.strftime('%Y-%m-%d')}{suffix}")
        dialog.fileSelected.connect(lambda path: self.export(Path(path)))
        dialog.open()  # not exec(): the asyncio loop keeps running

    def export(self, path: Path) -> None:
        """Write the report on screen as CSV or PDF (by the file's suffix)."""
        if self.report is None:
            return
        try:
            if path.suffix.lower() == ".pdf":
                write_pdf(self.report, path)
            else:
                write_csv(self.report, path)
        except OSError as exc:
            self.status.setText(f"Could not write {path}: {exc}")
            return
        self.status.setText(f"Saved {path}")


class ChangesView(QWidget):
    """One conversation's agent lines against their drafts, as a diff."""

    def __init__(self, model: InsightsModel, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.model = model
        lay = QVBoxLayout(self)
        lay.setContentsMargins(12, 10, 12, 10)
        bar = QHBoxLayout()
        self.session = QLineEdit()
        self.session.setPlaceholderText("session id, e.g. s_3f2a…")
        self.show_button = QPushButton("Show changes")
        self.show_button.setStyleSheet(button_css(colors()))
        bar.addWidget(QLabel("Conversation"))
        bar.addWidget(self.session, 1)
        bar.addWidget(self.show_button)
        lay.addLayout(bar)
        self.browser = QTextBrowser()
        self.browser.setOpenExternalLinks(False)
        self.browser.setHtml("<p>Pick a conversation (or select one in the host window's "
                             "sessions and press <i>What changed</i>).</p>")
        lay.addWidget(self.browser, 1)
        self.show_button.clicked.connect(lambda: self.show_session(self.session.text()))
        self.session.returnPressed.connect(lambda: self.show_session(self.session.text()))
        model.changes_ready.connect(self._changes)
        model.failed.connect(lambda m: self.browser.setHtml(f"<p>{html.escape(m)}</p>"))

    def show_session(self, session_id: str) -> None:
        sid = session_id.strip()
        if not sid:
            return
        self.session.setText(sid)
        self.browser.setHtml(f"<p>Asking the host about {html.escape(sid)}…</p>")
        self.model.request_changes(sid)

    def _changes(self, session_id: str, rows: list[ChangeRow]) -> None:
        self.browser.setHtml(changes_html(session_id, rows))


class InsightsWindow(QMainWindow):
    """The Insights view and the "what changed" view, in two tabs."""

    closed = Signal()

    def __init__(self, connection: HostConnection, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("HITL Desk — insights")
        # never taller than the screen: 860 px hid its tables below a 768 px laptop's edge
        self.resize(*fit_to_screen(self, (1180, 860)))
        self.model = InsightsModel(connection, self)
        self.tabs = QTabWidget()
        self.overview = InsightsView(self.model)
        self.changes = ChangesView(self.model)
        self.tabs.addTab(self.overview, "Overview")
        self.tabs.addTab(self.changes, "What changed")
        self.setCentralWidget(self.tabs)
        self.setStyleSheet(f"QMainWindow{{background:{colors().window};}}")

    def show_changes(self, session_id: str) -> None:
        self.tabs.setCurrentWidget(self.changes)
        self.changes.show_session(session_id)

    def closeEvent(self, event: QCloseEvent) -> None:
        self.closed.emit()
        super().closeEvent(event)

