"""The Insights exports: every metric as CSV, a period on one PDF page.

Both take an :class:`InsightsReport` and nothing else, so the host window (which
got the report over the wire) and ``hitl-desktop report`` (which computed it from
the data dir) write the same files. The PDF is painted with Qt's QPdfWriter; its
charts are the window's pyqtgraph charts, drawn as vectors (a QApplication must
exist: the CLI makes one on the offscreen platform).
"""

from __future__ import annotations

import csv
import logging
import time
from pathlib import Path
from typing import Any, Final

from PySide6.QtCore import QMarginsF, QRectF, Qt
from PySide6.QtGui import QColor, QFont, QPageLayout, QPageSize, QPainter, QPdfWriter, QPen
from PySide6.QtWidgets import QApplication

from hitl_desktop.core.insights import InsightsReport, metric_rows
from hitl_desktop.ui.insights_charts import CHARTS, duration, render_chart
from hitl_desktop.ui.theme import colors_for

log = logging.getLogger(__name__)

CSV_HEADER: Final = ("section", "key", "metric", "value")
PDF_DPI: Final = 96  # the screen's logical DPI: chart text keeps its size against the bars
CHART_PX: Final = (520, 300)  # the size charts are laid out at before scaling into the page


def write_csv(report: InsightsReport, path: Path) -> int:
    """Every figure of the report as one row (section, key, metric, value); returns rows."""
    rows = metric_rows(report)
    with path.open("w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(CSV_HEADER)
        w.writerows(rows)
    return len(rows)


def period_text(report: InsightsReport) -> str:
    start = time.strftime("%Y-%m-%d", time.gmtime(report.period_from))
    end = time.strftime("%Y-%m-%d", time.gmtime(report.period_to - 1))
    return f"{start} \u2013 {end} (UTC)"


def pct(part: int, whole: int) -> str:
    return "—" if whole == 0 else f"{100 * part / whole:.0f} %"


def key_figures(report: InsightsReport) -> list[tuple[str, str]]:
    """(value, caption) pairs: the row of big numbers in the window and the PDF."""
    o = report.outcomes
    approved = sum(t.approved for t in report.tools)
    proposed = sum(t.proposed for t in report.tools)
    return [
        (f"{report.conversations:,}", "conversations"),
        (pct(o.sent_as_is, o.decided), "drafts sent as-is"),
        (f"{pct(o.edited, o.decided)} / {pct(o.replaced, o.decided)}", "edited / replaced"),
        (duration(report.first_reply.median), "median first reply"),
        (duration(report.resolution.median), "median resolution"),
        (pct(approved, proposed), f"actions approved ({approved:,} of {proposed:,})"),
    ]


def write_pdf(report: InsightsReport, path: Path) -> None:
    """A one-page A4 summary of the period: figures, four charts, gaps, representatives.

    Never spins an event loop (no processEvents): the window calls this from a slot
    under qasync, where a nested Qt loop would lose asyncio callbacks."""
    if QApplication.instance() is None:
        raise RuntimeError("write_pdf needs a QApplication (charts are widgets)")
    writer = QPdfWriter(str(path))
    writer.setResolution(PDF_DPI)
    writer.setPageLayout(QPageLayout(QPageSize(QPageSize.PageSizeId.A4),
                                     QPageLayout.Orientation.Portrait,
                                     QMarginsF(12, 12, 12, 12), QPageLayout.Unit.Millimeter))
    writer.setTitle("HITL Desk insights " + period_text(report))
    writer.setCreator("HITL Desk")
    c = colors_for(dark=False)
    charts = [make(report, c) for make in CHARTS]
    try:
        for w in charts:  # show() delivers the resize synchronously: no event loop needed
            w.setAttribute(Qt.WidgetAttribute.WA_DontShowOnScreen)
            w.resize(*CHART_PX)
            w.show()
        painter = QPainter(writer)
        try:
            _paint_page(painter, report, charts, writer.width(), writer.height())
        finally:
            painter.end()
    finally:
        for w in charts:
            w.close()
            w.deleteLater()
    log.info("wrote the insights PDF %s", path)


def _font(size: float, bold: bool = False) -> QFont:
    f = QFont("DejaVu Sans")
    f.setPointSizeF(size)
    f.setBold(bold)
    return f


def _paint_page(p: QPainter, report: InsightsReport, charts: list[Any], width: int,
                height: int) -> None:
    c = colors_for(dark=False)
    ink, muted, line = QColor(c.text), QColor(c.muted), QColor(c.border)
    unit = PDF_DPI / 72  # device pixels per point
    y = 0.0

    def text(rect: QRectF, s: str, size: float, *, bold: bool = False,
             colour: QColor = ink, wrap: bool = False) -> None:
        """One line, elided to fit (or wrapped, for the notes)."""
        p.setFont(_font(size, bold))
        p.setPen(colour)
        if not wrap:
            s = p.fontMetrics().elidedText(s, Qt.TextElideMode.ElideRight, int(rect.width()))
        flags = Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignTop
        p.drawText(rect, int(flags | Qt.TextFlag.TextWordWrap) if wrap else int(flags), s)

    text(QRectF(0, y, width, 24 * unit), "HITL Desk — how the co-pilot and the desk are doing",
         15, bold=True)
    y += 22 * unit
    o = report.outcomes
    text(QRectF(0, y, width, 14 * unit),
         f"{period_text(report)} \u00b7 {report.conversations:,} conversations opened, "
         f"{report.closed:,} closed \u00b7 {o.drafts:,} drafts \u00b7 "
         f"{o.written_from_scratch:,} lines written without a draft", 8.5, colour=muted)
    y += 20 * unit

    # key figures
    figures = key_figures(report)
    box_w = width / len(figures)
    for i, (value, caption) in enumerate(figures):
        x = i * box_w
        text(QRectF(x, y, box_w - 6 * unit, 20 * unit), value, 11.5, bold=True)
        text(QRectF(x, y + 19 * unit, box_w - 6 * unit, 12 * unit), caption, 7.5, colour=muted)
    y += 38 * unit
    p.setPen(QPen(line, unit))
    p.drawLine(0, int(y), width, int(y))
    y += 8 * unit

    # four charts, 2 x 2
    gap = 8 * unit
    cw = (width - gap) / 2
    ch = cw * CHART_PX[1] / CHART_PX[0]
    for i, w in enumerate(charts):
        col, row = i % 2, i // 2
        render_chart(w, p, QRectF(col * (cw + gap), y + row * (ch + gap), cw, ch))
    y += 2 * ch + gap + 10 * unit

    # knowledge gaps and representatives, side by side
    half = (width - gap) / 2
    text(QRectF(0, y, half, 14 * unit), "Top knowledge gaps", 10.5, bold=True)
    text(QRectF(half + gap, y, half, 14 * unit), "Representatives", 10.5, bold=True)
    y += 16 * unit
    gy = y
    if not report.gaps:
        text(QRectF(0, gy, half, 12 * unit), "No knowledge gaps in this period.", 8.5,
             colour=muted)
    for g in report.gaps[:5]:
        text(QRectF(0, gy, half, 12 * unit), f"{g.count:,} \u00d7 {g.label}", 8.5, bold=True)
        example = g.examples[0] if g.examples else ""
        text(QRectF(0, gy + 11 * unit, half, 11 * unit),
             f"weak retrieval {g.weak_retrieval:,} \u00b7 replaced {g.replaced:,} \u00b7 "
             f"\u201c{example}\u201d", 7, colour=muted)
        gy += 24 * unit
    ry = y
    cols = (("name", 0.30), ("lines", 0.12), ("as-is", 0.14), ("1st reply", 0.16),
            ("decided", 0.14), ("closed", 0.14))
    x = half + gap
    for name, share in cols:
        text(QRectF(x, ry, half * share, 12 * unit), name, 7.5, bold=True, colour=muted)
        x += half * share
    ry += 13 * unit
    for a in report.agents[:8]:
        values = (a.agent, f"{a.lines_sent:,}", pct(a.sent_as_is, a.lines_sent),
                  duration(a.first_reply_median_s), f"{a.approvals_decided:,}",
                  f"{a.sessions_closed:,}")
        x = half + gap
        for (_n, share), v in zip(cols, values, strict=True):
            text(QRectF(x, ry, half * share - 2 * unit, 12 * unit), v, 8)
            x += half * share
        ry += 12 * unit
    y = max(gy, ry) + 8 * unit

    # rejection reasons and articles, side by side
    text(QRectF(0, y, half, 14 * unit), "Why actions were rejected", 10.5, bold=True)
    text(QRectF(half + gap, y, half, 14 * unit), "Articles: shown / cited / opened", 10.5,
         bold=True)
    y += 16 * unit
    reasons = sorted(((r.count, t.tool, r.reason) for t in report.tools for r in t.reasons),
                     key=lambda r: (-r[0], r[1], r[2]))[:6]
    ay = y
    if not reasons:
        text(QRectF(0, ay, half, 12 * unit), "No rejections in this period.", 8.5,
             colour=muted)
    for count, tool, reason in reasons:
        text(QRectF(0, ay, half, 12 * unit),
             f"{count:,} \u00d7 {tool.replace('_', ' ')}: {reason[:60]}", 8)
        ay += 12 * unit
    by = y
    for art in report.articles[:6]:
        text(QRectF(half + gap, by, half * 0.62, 12 * unit), art.title[:40], 8)
        text(QRectF(half + gap + half * 0.62, by, half * 0.38, 12 * unit),
             f"{art.shown:,} / {art.cited:,} / {art.opened:,}", 8)
        by += 12 * unit
    y = max(ay, by) + 8 * unit

    notes = [f"Knowledge gaps: questions whose retrieval was weak (best score < "
             f"{report.weak_score:g}, or no article) or whose draft was replaced.", *report.notes]
    footer_h = 18 * unit * len(notes)
    fy = max(y, height - footer_h)
    for n in notes:
        text(QRectF(0, fy, width, 18 * unit), n, 6.5, colour=muted, wrap=True)
        fy += 18 * unit
