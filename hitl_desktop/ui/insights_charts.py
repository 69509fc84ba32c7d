"""The Insights charts, built with pyqtgraph from an :class:`InsightsReport`.

Why pyqtgraph: QtCharts/QtGraphs live in the PySide6 add-ons (~450 MB more than
PySide6-Essentials, DESIGN.md §7); pyqtgraph is ~10 MB of Python plus numpy,
draws on QGraphicsView (so the same charts render into the PDF report through a
QPainter), and is maintained. Every chart here is static (no mouse panning, no
context menu): they answer a question at a glance, they are not for exploring.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Final

import pyqtgraph as pg
from PySide6.QtCore import QRectF, Qt
from PySide6.QtGui import QPainter
from PySide6.QtWidgets import QWidget

from hitl_desktop.core.insights import EDIT_KINDS, InsightsReport
from hitl_desktop.ui.theme import Colors

# outcome colours, the same in every chart and in the PDF
AS_IS: Final = "#2e9b57"
EDITED: Final = "#3b82f6"
REPLACED: Final = "#f59e0b"
DISCARDED: Final = "#9ca3af"
REJECTED: Final = "#dc4c4c"
EXPIRED: Final = "#9ca3af"
NEUTRAL: Final = "#6366f1"

KIND_LABELS: Final = {"shortened": "shorter", "lengthened": "longer",
                      "rewritten_opening": "new opening", "removed_sentence": "cut sentence",
                      "reworded": "reworded"}


def _plot(title: str, c: Colors) -> Any:
    """A static PlotWidget in the window's colours."""
    w = pg.PlotWidget(background=c.surface)
    w.setMenuEnabled(False)
    w.setMouseEnabled(x=False, y=False)
    w.hideButtons()
    item = w.getPlotItem()
    item.setTitle(title, color=c.text, size="10pt")
    for side in ("left", "bottom"):
        axis = item.getAxis(side)
        axis.setPen(pg.mkPen(c.border))
        axis.setTextPen(pg.mkPen(c.muted))
    item.getAxis("left").setWidth(44)  # fixed: labels laid out late would be dropped
    w.setMinimumHeight(180)
    return w


def _stack(w: Any, xs: Sequence[float], layers: Sequence[tuple[str, str, Sequence[int]]],
           width: float = 0.7, columns: int = 4) -> None:
    """Stacked bars: each layer (name, colour, heights) on top of the previous ones, with
    a one-row legend above them (the y range leaves it room)."""
    w.getPlotItem().addLegend(offset=(8, 2), colCount=columns, labelTextSize="8pt",
                              labelTextColor="#555")
    base = [0.0] * len(xs)
    for name, colour, heights in layers:
        w.addItem(pg.BarGraphItem(x=list(xs), height=list(heights), y0=list(base), width=width,
                                  brush=colour, pen=pg.mkPen(colour), name=name))
        base = [b + h for b, h in zip(base, heights, strict=True)]
    _ranges(w, len(xs), max([*base, 1]) * 1.55)


def _bars(w: Any, heights: Sequence[int], colour: str) -> None:
    w.addItem(pg.BarGraphItem(x=list(range(len(heights))), height=list(heights), width=0.7,
                              brush=colour, pen=pg.mkPen(colour)))
    _ranges(w, len(heights), max([*heights, 1]) * 1.12)


def _ranges(w: Any, n: int, top: float) -> None:
    """Fixed ranges (no auto-range): the chart is complete the moment it is built, so it
    also paints right into a PDF without an event loop having run."""
    item = w.getPlotItem()
    item.setYRange(0, top, padding=0)
    item.setXRange(-0.6, max(n, 1) - 0.4, padding=0)


def _ticks(w: Any, labels: Sequence[str], every: int = 1) -> None:
    ticks = [(i, lbl) for i, lbl in enumerate(labels) if i % every == 0]
    w.getPlotItem().getAxis("bottom").setTicks([ticks, []])


def acceptance_chart(report: InsightsReport, c: Colors) -> Any:
    """Drafts per day by outcome: how acceptance moves over the period."""
    w = _plot("Drafts per day: sent as-is, edited, replaced, discarded", c)
    days = report.days
    xs = list(range(len(days)))
    _stack(w, xs, [("as-is", AS_IS, [d.sent_as_is for d in days]),
                   ("edited", EDITED, [d.edited for d in days]),
                   ("replaced", REPLACED, [d.replaced for d in days]),
                   ("discarded", DISCARDED, [d.discarded for d in days])], width=0.8)
    _ticks(w, [d.day[5:] for d in days], every=max(1, len(days) // 6))
    return w


def approvals_chart(report: InsightsReport, c: Colors) -> Any:
    """Approvals per tool, stacked by decision."""
    w = _plot("Approvals by tool", c)
    tools = report.tools[:8]
    xs = list(range(len(tools)))
    _stack(w, xs, [("approved", AS_IS, [t.approved - t.edited for t in tools]),
                   ("edited", EDITED, [t.edited for t in tools]),
                   ("rejected", REJECTED, [t.rejected for t in tools]),
                   ("expired", EXPIRED, [t.expired for t in tools])], columns=2)
    _ticks(w, [t.tool.replace("_", " ") for t in tools])
    return w


def reply_time_chart(report: InsightsReport, c: Colors) -> Any:
    """How long customers waited for the first reply."""
    med = report.first_reply.median
    title = "Time to first reply" + (f" (median {duration(med)})" if med is not None else "")
    w = _plot(title, c)
    buckets = report.first_reply.buckets
    _bars(w, [b.count for b in buckets], NEUTRAL)
    _ticks(w, [b.label for b in buckets])
    return w


def edit_kinds_chart(report: InsightsReport, c: Colors) -> Any:
    """What representatives do to the drafts they edit."""
    w = _plot("Kinds of edit", c)
    _bars(w, [report.edits.kinds.get(k, 0) for k in EDIT_KINDS], EDITED)
    _ticks(w, [KIND_LABELS[k] for k in EDIT_KINDS])
    return w


CHARTS: Final = (acceptance_chart, approvals_chart, reply_time_chart, edit_kinds_chart)


def render_chart(widget: QWidget, painter: QPainter, target: QRectF) -> None:
    """Paint a chart widget into ``target`` of any painter (the PDF report): the scene
    is drawn as vectors, scaled to fit."""
    scene = widget.scene()  # type: ignore[attr-defined]
    painter.save()
    painter.setRenderHint(QPainter.RenderHint.Antialiasing)
    scene.render(painter, target, QRectF(widget.rect()),
                 Qt.AspectRatioMode.IgnoreAspectRatio)
    painter.restore()


def duration(seconds: float | None) -> str:
    """A duration in words a support lead reads at a glance (45 s, 3.5 min, 2.1 h)."""
    if seconds is None:
        return "—"
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.1f} min"
    return f"{seconds / 3600:.1f} h"
