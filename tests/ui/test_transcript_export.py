"""Exporting a transcript never freezes the window and never loses a request silently:
the file (Markdown or PDF) is laid out and written in a worker thread while the window
keeps painting; a folder that cannot be written, a host that never answers or refuses
each end in a clear "Export failed" message naming the file; a lost-lines appendix
(session.gap) goes into the file. Real widgets offscreen, real files, frames through the
wire encoding."""

from __future__ import annotations

import itertools
import os
import sys
import time
from pathlib import Path

import pytest
from PySide6.QtCore import QElapsedTimer, QTimer
from pytestqt.qtbot import QtBot

from hitl_desktop.client.workspace import Workspace
from hitl_desktop.core import protocol as p
from hitl_desktop.ui.agent.window import AgentWindow
from tests.ui.agent_feed import Feed, Sent
from tests.ui.conftest import until
from tests.ui.test_desk_models import SAM, desk_summary, desk_welcome

pytestmark = pytest.mark.qt_log_ignore("This plugin does not support")


@pytest.fixture
def ws(sent: Sent) -> Workspace:
    model = Workspace(send=sent)
    model.apply_welcome(desk_welcome(desk_summary("s1", "Alex Morgan", assignee=SAM)))
    model.select_session("s1")
    return model


@pytest.fixture
def window(qtbot: QtBot, ws: Workspace, tmp_path: Path) -> AgentWindow:
    win = AgentWindow(ws, config_dir=tmp_path / "cfg", restore=False)
    qtbot.addWidget(win)
    win.show()
    qtbot.waitExposed(win)
    return win


def _answer(ws: Workspace, sent: Sent, markdown: str, audience: str = "internal") -> None:
    env, payload, _ = p.decode_host(p.encode(
        "transcript", p.Transcript(session_id="s1", audience=audience,  # type: ignore[arg-type]
                                   markdown=markdown), session="s1", ref=sent.ids[-1]))
    ws.handle(env, payload)


def _long_transcript(lines: int) -> str:
    parts = ["# Chat with Alex Morgan", ""]
    for n in range(lines):
        who = "Alex Morgan" if n % 2 == 0 else "Sam"
        parts += [f"**{who}** (10:{n % 60:02d}): line {n}, about the parcel that went "
                  "to the wrong depot and what happens next with the replacement.", ""]
    return "\n".join(parts)


async def test_a_long_pdf_is_written_while_the_window_keeps_painting(
        window: AgentWindow, ws: Workspace, sent: Sent, tmp_path: Path) -> None:
    exporter = window.ensure_exporter()
    target = tmp_path / "long.pdf"
    busy: list[str] = []
    exporter.busy.connect(busy.append)
    assert exporter.export("s1", "internal", target)
    ticks: list[int] = []
    clock = QElapsedTimer()
    clock.start()
    timer = QTimer()
    timer.timeout.connect(lambda: ticks.append(clock.elapsed()))
    timer.start(10)
    started = time.monotonic()
    _answer(ws, sent, _long_transcript(4000))  # ~0.5 MB, ~120 pages
    handled = time.monotonic() - started
    await until(lambda: not exporter.working, within=60, what="the PDF written")
    took = time.monotonic() - started
    timer.stop()
    assert target.read_bytes().startswith(b"%PDF") and target.stat().st_size > 20_000
    assert not [n for n in os.listdir(tmp_path) if n.endswith(".part")], "nothing left"
    assert busy[0].startswith("Exporting long.pdf") and "Writing long.pdf…" in busy
    assert busy[-1] == ""
    assert window.statusBar().currentMessage() == f"Exported to {target}"
    # the layout took a while, the GUI thread did not wait for it
    gaps = [b - a for a, b in itertools.pairwise(ticks)]
    assert handled < 0.1, f"the transcript frame was handled in {handled:.3f}s"
    # (painted on the GUI thread, one gap would be as long as the whole write)
    assert len(ticks) > 5 and max(gaps) < max(100, took * 1000 / 3), (took, max(gaps))


@pytest.mark.skipif(sys.platform != "linux", reason="chmod / sysfs semantics")
async def test_a_read_only_folder_fails_clearly(window: AgentWindow, ws: Workspace,
                                                sent: Sent, tmp_path: Path) -> None:
    """A folder without write permission (as root, which writes anywhere chmod allows:
    /sys, where nobody may create files)."""
    root = os.geteuid() == 0
    folder = Path("/sys") if root else tmp_path / "locked"
    if not root:
        folder.mkdir()
        folder.chmod(0o555)
    try:
        exporter = window.ensure_exporter()
        failed: list[str] = []
        exporter.failed.connect(failed.append)
        assert exporter.export("s1", "customer", folder / "t.md")
        _answer(ws, sent, "# hi\n", "customer")
        await until(lambda: failed, what="the failure")
        assert failed[0] in ("Cannot write t.md: Permission denied",
                             "Cannot write t.md: Read-only file system"), failed
        assert not (folder / "t.md").exists()
        box = window.export_error_box
        assert box is not None and box.isVisible() and failed[0] in box.text()  # type: ignore[attr-defined]
    finally:
        if not root:
            folder.chmod(0o755)


async def test_a_path_that_cannot_be_written_fails_clearly(
        window: AgentWindow, ws: Workspace, sent: Sent, tmp_path: Path) -> None:
    """(Also as root: a "folder" that is a file.) The message box says which file and
    why; the export is not silently dropped, and nothing is left behind."""
    blocker = tmp_path / "notes.txt"
    blocker.write_text("a file, not a folder")
    exporter = window.ensure_exporter()
    failed: list[str] = []
    exporter.failed.connect(failed.append)
    for name in ("t.md", "t.pdf"):
        assert exporter.export("s1", "internal", blocker / name)
        _answer(ws, sent, "# Chat\n\nhello\n")
        await until(lambda n=name: any(n in f for f in failed), what=name)
    assert failed == ["Cannot write t.md: Not a directory",
                      "Cannot write t.pdf: Not a directory"]
    box = window.export_error_box
    assert box is not None and box.isVisible()
    assert "Cannot write t.pdf: Not a directory" in box.text()  # type: ignore[attr-defined]
    assert not exporter.working and window.statusBar().currentMessage() == failed[-1]
    assert blocker.read_text() == "a file, not a folder"
    assert not [n for n in os.listdir(tmp_path) if n.endswith(".part")]


async def test_a_host_that_never_answers_or_refuses_ends_the_request(
        window: AgentWindow, ws: Workspace, sent: Sent, tmp_path: Path) -> None:
    exporter = window.ensure_exporter()
    exporter.answer_timeout_s = 0.2
    failed: list[str] = []
    exporter.failed.connect(failed.append)
    assert exporter.export("s1", "internal", tmp_path / "never.md")
    await until(lambda: failed, what="the timeout")
    assert failed == ["Cannot export never.md: the host did not send the transcript; "
                      "please try again"]
    exporter.answer_timeout_s = 30
    assert exporter.export("s1", "customer", tmp_path / "refused.md")
    Feed(ws, "s1").error(p.ErrorCode.FORBIDDEN, "not your conversation", ref=sent.ids[-1])
    assert failed[-1] == "Cannot export refused.md: not your conversation"
    assert not exporter.working and not (tmp_path / "refused.md").exists()
    # a late answer for a request that already failed writes nothing
    _answer(ws, sent, "# late\n")
    assert not exporter.working and not (tmp_path / "never.md").exists()


async def test_two_exports_of_the_same_transcript_both_arrive(
        window: AgentWindow, ws: Workspace, sent: Sent, tmp_path: Path) -> None:
    exporter = window.ensure_exporter()
    done: list[str] = []
    exporter.exported.connect(done.append)
    assert exporter.export("s1", "internal", tmp_path / "a.md")
    assert exporter.export("s1", "internal", tmp_path / "b.pdf")
    _answer(ws, sent, "# one\n")
    _answer(ws, sent, "# two\n")
    await until(lambda: len(done) == 2, what="both")
    assert (tmp_path / "a.md").read_text("utf-8") == "# one\n"
    assert (tmp_path / "b.pdf").read_bytes().startswith(b"%PDF")


async def test_lines_the_host_lost_are_added_to_the_export(
        window: AgentWindow, ws: Workspace, sent: Sent, tmp_path: Path) -> None:
    feed = Feed(ws, "s1")
    feed.customer("hello")  # seq 1
    feed.customer("my parcel is lost")  # seq 2: the host lost it
    feed(p.NoteAdded(note_id="n1", author=p.Author(role=p.Role.AGENT, name="Sam"),
                     text="check the depot"))  # seq 3: lost too
    feed(p.SessionGap(first_seq=2, last_seq=10, reason="unclean stop"), seq=11)
    exporter = window.ensure_exporter()
    for audience in ("internal", "customer"):
        assert exporter.export("s1", audience, tmp_path / f"{audience}.md")
        _answer(ws, sent, "# Chat\n\n**Alex Morgan:** hello\n", audience)
    await until(lambda: not exporter.working, what="written")
    internal = (tmp_path / "internal.md").read_text("utf-8")
    customer = (tmp_path / "customer.md").read_text("utf-8")
    for text in (internal, customer):
        assert text.startswith("# Chat\n\n**Alex Morgan:** hello\n")
        assert "**Messages lost by the host.**" in text and "my parcel is lost" in text
    assert "check the depot" in internal
    assert "check the depot" not in customer, "internal notes stay internal"
