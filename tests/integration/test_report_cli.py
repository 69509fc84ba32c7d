"""``hitl-desktop report`` as a real subprocess: the CSV and the PDF it writes, reopened."""

from __future__ import annotations

import csv
import json
import os
import re
import shutil
import subprocess
import sys
import zlib
from pathlib import Path

import pytest

from tests.support.insights_gen import Expected, generate

N = 120


def pdf_streams(raw: bytes) -> list[bytes]:
    """The decompressed content of every Flate stream of a PDF."""
    out = []
    for m in re.finditer(rb"stream\r?\n", raw):
        end = raw.find(b"endstream", m.end())
        try:
            out.append(zlib.decompress(raw[m.end():end]))
        except zlib.error:
            continue
    return out


def fill_colours(content: bytes) -> set[tuple[int, int, int]]:
    """Every colour a PDF content stream sets (``r g b scn`` / ``rg``), as 0..255 RGB."""
    return {tuple(round(float(v) * 255) for v in m.groups())  # type: ignore[misc]
            for m in re.finditer(rb"([\d.]+) ([\d.]+) ([\d.]+) (?:scn|rg)\b", content)}


def _rgb(hex_colour: str) -> tuple[int, int, int]:
    return (int(hex_colour[1:3], 16), int(hex_colour[3:5], 16), int(hex_colour[5:7], 16))


@pytest.fixture(scope="module")
def written(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Expected, dict[str, object]]:
    root = tmp_path_factory.mktemp("report")
    data = root / "data"
    exp = generate(data, N, days=10.0)
    out = root / "out" / "may"
    env = {k: v for k, v in os.environ.items() if k != "QT_QPA_PLATFORM"}  # it must not need one
    proc = subprocess.run(
        [sys.executable, "-m", "hitl_desktop", "report", "--data-dir", str(data),
         "--from", "2026-05-28", "--to", "2026-06-08", "--out", str(out)],
        capture_output=True, text=True, timeout=120, env=env, check=False)
    assert proc.returncode == 0, proc.stderr
    info = json.loads(proc.stdout)
    return root, exp, info


def test_the_csv_has_every_metric(written: tuple[Path, Expected, dict[str, object]]) -> None:
    root, exp, info = written
    assert info["conversations"] == N
    path = root / "out" / "may.csv"
    assert str(path) in info["written"]  # type: ignore[operator]
    with path.open(newline="", encoding="utf-8") as fh:
        rows = list(csv.reader(fh))
    assert rows[0] == ["section", "key", "metric", "value"]
    values = {(s, k, m): v for s, k, m, v in rows[1:]}
    assert values[("period", "", "conversations")] == str(N)
    assert values[("drafts", "", "sent_as_is")] == str(exp.outcomes["sent_as_is"])
    assert values[("drafts", "", "replaced")] == str(exp.outcomes["replaced"])
    assert float(values[("drafts", "", "acceptance")]) == pytest.approx(exp.sent_as_is_ratio,
                                                                        rel=1e-5)
    for tool, reasons in exp.reasons.items():
        for reason, n in reasons.items():
            assert values[("rejection_reason", tool, reason)] == str(n)
    for label, n in exp.gaps.items():
        assert values[("gap", label, "count")] == str(n)
        assert values[("gap", label, "example_1")] == exp.gap_examples[label][0]
    assert values[("article", "faq/refunds", "opened")] == str(exp.opened["faq/refunds"])
    assert len(rows) > 150


def test_the_pdf_is_one_a4_page_with_the_charts(
        written: tuple[Path, Expected, dict[str, object]]) -> None:
    root, _exp, info = written
    path = root / "out" / "may.pdf"
    assert str(path) in info["written"]  # type: ignore[operator]
    raw = path.read_bytes()
    assert raw.startswith(b"%PDF-") and raw.rstrip().endswith(b"%%EOF")
    assert len(re.findall(rb"/Type\s*/Page\b", raw)) == 1
    box = re.search(rb"/MediaBox\s*\[\s*0 0 ([\d.]+) ([\d.]+)", raw)
    assert box and abs(float(box.group(1)) - 595) < 2 and abs(float(box.group(2)) - 842) < 2
    title = raw[raw.index(b"/Title"):raw.index(b"/Title") + 200]  # a UTF-16BE string
    assert "insights 2026-05-28".encode("utf-16-be") in title
    content = b"".join(pdf_streams(raw))
    # the four charts' bar colours are painted (as-is, edited, replaced, rejected)
    from hitl_desktop.ui.insights_charts import AS_IS, EDITED, REJECTED, REPLACED

    painted = fill_colours(content)
    for colour in (AS_IS, EDITED, REPLACED, REJECTED):
        assert _rgb(colour) in painted, colour


@pytest.mark.skipif(shutil.which("pdftoppm") is None, reason="poppler-utils not installed")
def test_the_pdf_renders_to_a_page_with_ink(written: tuple[Path, Expected,
                                                          dict[str, object]]) -> None:
    """Poppler (an independent reader) draws the page; a good share of it is not white."""
    from PySide6.QtGui import QImage

    root, _exp, _info = written
    subprocess.run(["pdftoppm", "-png", "-r", "40", str(root / "out" / "may.pdf"),
                    str(root / "page")], check=True, timeout=60)
    img = QImage(str(root / "page-1.png"))
    assert not img.isNull() and img.height() > img.width()
    ink = sum(1 for y in range(0, img.height(), 4) for x in range(0, img.width(), 4)
              if img.pixelColor(x, y).lightness() < 200)
    assert ink > 500


def test_bad_arguments_are_one_clear_line(tmp_path: Path) -> None:
    data = tmp_path / "data"
    generate(data, 2)
    for args, needle in ((["--from", "May 1st"], "not a date"),
                         (["--from", "2025-01-01", "--to", "2026-12-31"], "at most 366 days"),
                         (["--from", "2026-06-02", "--to", "2026-06-01"], "end after")):
        proc = subprocess.run(
            [sys.executable, "-m", "hitl_desktop", "report", "--data-dir", str(data),
             "--out", str(tmp_path / "x.csv"), *args],
            capture_output=True, text=True, timeout=60, check=False)
        assert proc.returncode == 2 and needle in proc.stderr, (args, proc.stderr)
        assert proc.stderr.count("\n") == 1
    empty = tmp_path / "nothing"
    empty.mkdir()
    proc = subprocess.run(
        [sys.executable, "-m", "hitl_desktop", "report", "--data-dir", str(empty),
         "--out", str(tmp_path / "x.csv")], capture_output=True, text=True, timeout=60,
        check=False)
    assert proc.returncode == 1 and "no relay log" in proc.stderr
