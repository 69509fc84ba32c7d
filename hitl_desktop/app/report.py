"""``hitl-desktop report``: a period's insights as CSV and a one-page PDF, from a data dir.

Why from the data dir and not over the socket: the support lead's report must
work whether or not the host is running (the stores are SQLite in WAL mode and
are only read). The PDF is painted by Qt on the offscreen platform: no window,
no display needed.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import logging
import os
import sys
import time
from pathlib import Path

from hitl_desktop.config import resolve_paths
from hitl_desktop.host.insights import WEAK_SCORE, report

log = logging.getLogger(__name__)
DAY = 86400.0


def parse_when(text: str, *, end: bool = False) -> float:
    """``YYYY-MM-DD`` (UTC; as an end date it includes that whole day) or an ISO date-time
    (UTC unless it names an offset) as UNIX seconds."""
    try:
        if len(text) == 10:
            day = dt.datetime.strptime(text, "%Y-%m-%d").replace(tzinfo=dt.UTC)
            return day.timestamp() + (DAY if end else 0.0)
        when = dt.datetime.fromisoformat(text)
    except ValueError:
        raise ValueError(f"not a date: {text!r} (use YYYY-MM-DD)") from None
    if when.tzinfo is None:
        when = when.replace(tzinfo=dt.UTC)
    return when.timestamp()


def outputs(out: str) -> tuple[Path | None, Path | None]:
    """(csv, pdf) paths: FILE.csv or FILE.pdf writes that one, any other name both."""
    path = Path(out)
    suffix = path.suffix.lower()
    if suffix == ".csv":
        return path, None
    if suffix == ".pdf":
        return None, path
    return path.with_name(path.name + ".csv"), path.with_name(path.name + ".pdf")


def run(args: argparse.Namespace) -> int:
    # Qt only paints files here: the offscreen platform, whatever the desktop (or none)
    os.environ["QT_QPA_PLATFORM"] = "offscreen"
    paths = resolve_paths(args.data_dir, getattr(args, "config_dir", None))
    try:
        end = parse_when(args.to, end=True) if args.to else (
            (time.time() // DAY + 1) * DAY)
        start = parse_when(args.from_) if args.from_ else end - 30 * DAY
        csv_path, pdf_path = outputs(args.out)
        began = time.perf_counter()
        result = report(paths.data_dir, start, end, weak_score=args.weak_score)
        took = time.perf_counter() - began
    except FileNotFoundError as exc:
        sys.stderr.write(f"hitl-desktop report: {exc}\n")
        return 1
    except ValueError as exc:
        sys.stderr.write(f"hitl-desktop report: {exc}\n")
        return 2
    written: list[str] = []
    for out in (csv_path, pdf_path):
        if out is not None:
            out.parent.mkdir(parents=True, exist_ok=True)
    if csv_path is not None:
        from hitl_desktop.ui.insights_report import write_csv

        write_csv(result, csv_path)
        written.append(str(csv_path))
    if pdf_path is not None:
        from hitl_desktop.app.qt import qt_app
        from hitl_desktop.ui.insights_report import write_pdf

        qt_app("HITL Desk report")
        write_pdf(result, pdf_path)
        written.append(str(pdf_path))
    sys.stdout.write(json.dumps({
        "from": start, "to": end, "conversations": result.conversations,
        "computed_s": round(took, 3), "written": written}) + "\n")
    return 0


def add_parser(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """The ``report`` sub-command's arguments (cli.py calls this)."""
    p = sub.add_parser("report", help="write a period's insights as CSV and a one-page PDF")
    p.add_argument("--from", dest="from_", default=None, metavar="DATE",
                   help="first day (YYYY-MM-DD, UTC; default: 30 days before --to)")
    p.add_argument("--to", default=None, metavar="DATE",
                   help="last day, included (YYYY-MM-DD, UTC; default: today)")
    p.add_argument("--out", required=True, metavar="FILE",
                   help="FILE.csv or FILE.pdf writes that one; any other name writes "
                        "FILE.csv and FILE.pdf")
    p.add_argument("--weak-score", type=float, default=WEAK_SCORE,
                   help=f"retrieval below this best score counts as weak (default {WEAK_SCORE})")
    p.add_argument("--data-dir", help="the host's data dir")
    p.add_argument("--config-dir", help="where settings live (default: next to the data)")
