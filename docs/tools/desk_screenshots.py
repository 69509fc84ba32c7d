"""Screenshots of the desk in the agent window (issue 16): the inbox with holders, filters
and waiting times; an internal note; the macro picker; the Preferences dialog; search;
a conversation being fetched when it is opened (issue 18: "Loading…").

The window is fed the frames a host sends (through ``core.protocol``), on top of
``agent_window_preview``'s mid-flow conversation. Whole-screen grabs, so dialogs and
the picker's popup are in the picture:

    xvfb-run -a -s "-screen 0 1366x768x24" .venv/bin/python docs/tools/desk_screenshots.py \
        --state inbox --screenshot docs/screenshots/desk-inbox-1366x768.png

``--state all --out DIR`` writes every state (desk-<state>-<WxH>.png) in one run.
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from pathlib import Path

from PySide6.QtCore import QTimer
from PySide6.QtTest import QTest
from PySide6.QtWidgets import QApplication

sys.path.insert(0, str(Path(__file__).resolve().parent))
import agent_window_preview as preview

from hitl_desktop.client.workspace import Workspace
from hitl_desktop.core import protocol as p
from hitl_desktop.ui.agent.window import AgentWindow

log = logging.getLogger("desk-screenshots")
STATES = ("inbox", "note", "macros", "preferences", "search", "loading")
SAM = p.RepRef(rep_id="t_sam", name="Sam")
KIM = p.RepRef(rep_id="t_kim", name="Kim Park")
REPS = [p.RepInfo(rep_id="t_sam", name="Sam", online=True),
        p.RepInfo(rep_id="t_kim", name="Kim Park", online=True),
        p.RepInfo(rep_id="t_lee", name="Lee Chen", online=False)]


def make_desk(ws: Workspace) -> None:
    """Who holds what, statuses and waits, as the host's summaries say."""
    now = time.time()
    desk = {
        preview.S1: {"assignee": SAM, "waiting_since": now - 190},
        "s_priya": {"assignee": None, "waiting_since": now - 780},
        "s_jonas": {"assignee": KIM, "status": "waiting"},
        "s_maria": {"assignee": KIM, "waiting_since": now - 65},
        "s_kenji": {"assignee": SAM, "status": "resolved"},
    }
    sessions = []
    for sid, update in desk.items():
        view = ws.session(sid)
        assert view is not None
        sessions.append(view.summary.model_copy(update=update))
    extra = p.SessionSummary(
        session_id="s_visitor", title="Visitor #14", customer_id=None, customer_name=None,
        state="open", created_at=now - 400, last_seq=2, last_message="Do you ship to Canada?",
        last_message_at=now - 300, number=14, customer_online=True, waiting_since=now - 300)
    ws.apply_welcome(p.Welcome(protocol=1, role=p.Role.AGENT, scope=p.Scope.DESK,
                               session_id=None, sessions=[*sessions, extra], server={},
                               heartbeat_s=20, you=SAM, reps=REPS))
    unread = ws.session("s_priya")
    if unread is not None:
        unread.unread = 2
    ws.select_session(preview.S1)


def desk_frames(ws: Workspace, window: AgentWindow) -> None:
    feed = preview.Feeder(ws)
    feed.seq[preview.S1] = 60
    feed(p.SessionAssigned(assignee=SAM, by="Sam", previous=None))
    feed(p.NoteAdded(note_id="n1", author=p.Author(role=p.Role.AGENT, name="Kim Park"),
                     text="Alex called yesterday about the same order — promised a quick "
                          "answer. Gold tier: a voucher is fine if the cancellation fails."))
    feed(p.MacroList(macros=[
        p.Macro(name="thanks", text="Thanks for your patience, {customer_first_name}! "
                "— {rep_name}", updated_by="Kim Park", updated_at=time.time() - 86400),
        p.Macro(name="tracking", text="You can follow {order_id} with the tracking link in "
                "your confirmation email.", updated_by="Sam", updated_at=time.time() - 3600),
        p.Macro(name="refund-timing", text="Refunds reach your original payment method "
                "within 5-10 business days.", updated_by="Lee Chen",
                updated_at=time.time() - 7200),
        p.Macro(name="handover", text="I'm handing you to a colleague who knows this "
                "topic best — they'll reply here shortly.", updated_by="Sam",
                updated_at=time.time() - 600)]), None)
    ws.flush()
    window.inbox.set_filter("open")


def apply_state(state: str, ws: Workspace, window: AgentWindow) -> None:
    if state == "loading":
        # a desk that fetches histories on demand (as attached to a HostConnection):
        # Priya's conversation was never opened; selecting it asks the host for it
        ws._sync_fn = lambda _sid: None
        ws._lazy = True
        view = ws.session("s_priya")
        assert view is not None
        view.history = "none"
        view.transcript.clear()
        view.summary = view.summary.model_copy(update={"last_seq": 14})
        ws.select_session("s_priya")
    elif state == "note":
        window.write_note()
        window.conversation.note_box.editor.setPlainText(
            "Cancellation approved by the customer on the phone too.")
    elif state == "macros":
        editor = window.suggestion_editor
        editor.editor.setPlainText("")
        editor.editor.setFocus()
        QTest.keyClicks(editor.editor, "/t")
        # no window manager under Xvfb to keep the editor focused: open the picker again
        # once the window is up
        QTimer.singleShot(600, editor.macro_completer._update)
    elif state == "preferences":
        dialog = window.open_preferences()
        dialog.move(window.geometry().center() - dialog.rect().center())
    elif state == "search":
        dialog = window.open_search()
        dialog.field.setText("refund")
        dialog._query = "refund"
        now = time.time()
        hits = [
            p.SearchHit(session_id=preview.S1, seq=12, title="Alex Morgan",
                        snippet="…the refund of $89.97 goes back to your original payment "
                                "method within 5-10 business days.", at=now - 600,
                        author_role="agent"),
            p.SearchHit(session_id="s_kenji", seq=9, title="Kenji Tanaka",
                        snippet="…asked for a refund on the camping stove, approved by Sam.",
                        at=now - 86400 * 3, author_role="agent", kind="note"),
            p.SearchHit(session_id="s_old1", seq=4, title="Visitor #3",
                        snippet="I never got my refund for ORD0991, it has been two weeks…",
                        at=now - 86400 * 9, author_role="customer"),
            p.SearchHit(session_id="s_old2", seq=7, title="Dana Ross",
                        snippet="Your refund was issued today; it can take 5-10 business "
                                "days to appear.", at=now - 86400 * 21, author_role="agent"),
        ]
        frame = p.encode("search.results", p.SearchResults(query="refund", hits=hits))
        env, payload, _ = p.decode_host(frame)
        ws.handle(env, payload)
        dialog.move(window.geometry().center() - dialog.rect().center())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--state", choices=(*STATES, "all"), default="inbox")
    parser.add_argument("--screenshot", type=Path, default=None)
    parser.add_argument("--dark", action="store_true", help="a dark desktop palette")
    parser.add_argument("--out", type=Path, default=None,
                        help="with --state all: the directory for desk-<state>-<WxH>.png")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO)
    app = QApplication(sys.argv[:1])
    app.setQuitOnLastWindowClosed(False)  # one window per state, one after the other
    from hitl_desktop.ui import theme

    theme.apply_app_style(app)
    if args.dark:
        app.setPalette(preview.dark_palette())
    states = list(STATES) if args.state == "all" else [args.state]
    size = app.primaryScreen().size()
    pending = list(states)

    def next_state() -> None:
        if not pending:
            app.quit()
            return
        state = pending.pop(0)
        ws = Workspace(send=lambda payload, session: None)
        window = AgentWindow(ws, restore=False)
        window.move(window.screen().availableGeometry().topLeft())
        window.show()
        preview.populate(ws, window, streaming=False)
        make_desk(ws)
        desk_frames(ws, window)
        apply_state(state, ws, window)
        if args.state == "all":
            out = (args.out or Path("docs/screenshots")) / \
                f"desk-{state}-{size.width()}x{size.height()}.png"
        else:
            out = args.screenshot or Path(f"desk-{state}.png")

        def shoot() -> None:
            out.parent.mkdir(parents=True, exist_ok=True)
            app.primaryScreen().grabWindow(0).save(str(out))
            log.info("saved %s", out)
            for widget in QApplication.topLevelWidgets():
                widget.close()
            window.deleteLater()
            QTimer.singleShot(200, next_state)

        QTimer.singleShot(900, shoot)

    QTimer.singleShot(0, next_state)
    return app.exec()


if __name__ == "__main__":
    raise SystemExit(main())
