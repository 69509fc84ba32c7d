"""The Insights window of the host window: a real host over generated stores, the real
window offscreen, the report over the admin connection, charts, tables, diff, exports."""

from __future__ import annotations

import asyncio
import csv
import gc
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from PySide6.QtWidgets import QApplication

from hitl_desktop.config import resolve_paths
from hitl_desktop.host import insights
from tests.support.insights_gen import DAY, generate
from tests.ui.conftest import until
from tests.ui.test_host_window import host_window_app

pytestmark = pytest.mark.qt_log_ignore("does not support propagateSizeHints",
                                       "does not support raise")
N = 200


@pytest.fixture(autouse=True)
def keep_app_running(qapp: QApplication) -> Iterator[None]:
    qapp.setQuitOnLastWindowClosed(False)
    yield
    gc.collect()


def _bar_total(chart: object) -> float:
    import pyqtgraph as pg

    items = chart.getPlotItem().items  # type: ignore[attr-defined]
    return sum(float(sum(i.opts["height"])) for i in items if isinstance(i, pg.BarGraphItem))


async def test_insights_window_shows_the_hosts_figures(qtbot: object, tmp_path: Path) -> None:
    data = resolve_paths().ensure().data_dir
    exp = await asyncio.to_thread(  # the stores are never used on the loop
        generate, data, N, start=time.time() - 20 * DAY, days=18.0)
    async with host_window_app() as app:
        window = app.window
        assert window is not None
        iw = window.open_insights()
        view = iw.overview
        await until(lambda: view.report is not None, 30, "the report")
        report = view.report
        assert report is not None
        want = insights.report(data, *view.period_bounds())
        # the generator records what the agents were told of each approval, so the host
        # has nothing to reconcile at start: the window's figures are exactly the stores'
        assert report.model_dump(exclude={"generated_at"}) == want.model_dump(
            exclude={"generated_at"})
        assert report.conversations == N
        assert report.outcomes.sent_as_is == exp.outcomes["sent_as_is"]
        # key figures, charts, tables
        assert view.figure_labels[0][0].text() == str(N)
        assert view.figure_labels[1][0].text() == f"{100 * exp.sent_as_is_ratio:.0f} %"
        assert len(view.charts) == 4
        # a widget added to a shown layout is shown by a queued call: let the loop run it
        await until(lambda: all(c.isVisible() for c in view.charts), 10, "charts shown")
        o = report.outcomes
        assert _bar_total(view.charts[0]) == o.sent_as_is + o.edited + o.replaced + o.discarded
        assert _bar_total(view.charts[1]) == sum(t.proposed - t.pending for t in report.tools)
        assert _bar_total(view.charts[2]) == N
        assert _bar_total(view.charts[3]) == sum(report.edits.kinds.values())
        assert view.gaps.rowCount() == len(report.gaps) == 4
        assert {view.gaps.item(r, 0).text() for r in range(4)} == set(exp.gaps)
        assert view.agents.rowCount() == 3
        assert view.reasons.rowCount() == sum(len(r) for r in exp.reasons.values())
        assert "issue 16" in view.notes.text()
        shot = iw.grab()
        assert shot.width() == iw.width() >= 640 and not shot.isNull()  # fits the screen

        # exports write what is on screen
        view.export(tmp_path / "x.csv")
        with (tmp_path / "x.csv").open(newline="", encoding="utf-8") as fh:
            rows = {(s, k, m): v for s, k, m, v in list(csv.reader(fh))[1:]}
        assert rows[("period", "", "conversations")] == str(N)
        view.export(tmp_path / "x.pdf")
        assert (tmp_path / "x.pdf").read_bytes().startswith(b"%PDF-")
        assert "Saved" in view.status.text()

        # a custom period asks again; an empty one shows zeros
        view.period.setCurrentIndex(3)
        view.start_date.setDate(view.start_date.date().addYears(-3))
        view.end_date.setDate(view.start_date.date().addDays(5))
        view.refresh()
        await until(lambda: view.report is not None and view.report.conversations == 0, 30,
                    "an empty report")
        assert view.figure_labels[0][0].text() == "0"

        # what changed: the session selected in the host window opens on its diff
        iw.show_changes("s_000012")  # i % 20 == 12: the last sentence was removed
        await until(lambda: "line-through" in iw.changes.browser.toHtml(), 15, "the diff")
        text = iw.changes.browser.toPlainText()
        assert "Ana" in text and "removed sentence" in text and "edited" in text
        iw.changes.show_session("s_000016")  # discarded, then written by hand
        await until(lambda: "without a draft" in iw.changes.browser.toPlainText(), 15)

        # a request cut off by a dropped connection does not leave the view waiting
        view.refresh()
        assert not view.refresh_button.isEnabled()
        window.admin.drop_socket()
        await until(view.refresh_button.isEnabled, 15, "refresh enabled again")
        assert "connection to the host was lost" in view.status.text()
        iw.close()
