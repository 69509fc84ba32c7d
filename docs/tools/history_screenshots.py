"""Screenshots of a long conversation opened newest first (issue 18 item 2): the newest
page with "Earlier messages" above it, "Loading older messages…" once scrolled to the top,
and the page before it put in front (the lines that were on screen stay where they were;
the shot scrolls up a little to show where the two pages meet).

The window is a desk's agent window fed what a host sends for ``session.history``
(through ``core.protocol``: each page's frames are encoded and decoded as on the wire):

    xvfb-run -a -s "-screen 0 1366x768x24" .venv/bin/python docs/tools/history_screenshots.py \
        --state newest --screenshot docs/screenshots/history-newest-1366x768.png
    ... --state loading --screenshot docs/screenshots/history-loading-1366x768.png
    ... --state older --screenshot docs/screenshots/history-older-1366x768.png
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from pathlib import Path

from PySide6.QtCore import QTimer
from PySide6.QtWidgets import QApplication

from hitl_desktop.client.connection import HistoryPage
from hitl_desktop.client.workspace import Workspace
from hitl_desktop.core import protocol as p
from hitl_desktop.ui.agent.window import AgentWindow

log = logging.getLogger("history-screenshots")
SID = "s_long"
CUSTOMER = p.Author(role=p.Role.CUSTOMER, name="Priya Shah")
AGENT = p.Author(role=p.Role.AGENT, name="Sam")
ASK = ["Hi, my parcel still has not arrived", "It was order ORD-1042", "Tracking says "
       "delivered but nothing is here", "Could a neighbour have it?", "OK I will check",
       "No, nobody has it", "Can you send a new one?", "Thanks, that would help"]
ANSWER = ["Sorry to hear that, let me look", "I see ORD-1042 marked delivered yesterday",
          "Sometimes the courier leaves it with a neighbour", "Could you check with them?",
          "Thanks for checking", "I can send a replacement or refund it",
          "I have started the replacement", "You will get a tracking link today"]


def frames(lines: int) -> list[tuple[p.Envelope, p.Payload]]:
    start = time.time() - lines * 40
    out: list[tuple[p.Envelope, p.Payload]] = []

    def add(payload: p.Payload) -> None:
        seq = len(out) + 1
        raw = p.encode(p.host_type(payload), payload, session=SID, seq=seq, ts=start + seq * 40)
        env, decoded, _ = p.decode_history_frame(json.loads(raw))
        out.append((env, decoded))

    add(p.SessionOpened(summary=summary(1), greeting="Hi! How can we help you today?"))
    for i in range(lines):
        who = i % 2 == 0
        text = (ASK if who else ANSWER)[(i // 2) % 8]
        add(p.ChatMessage(message_id=f"m{i}", author=CUSTOMER if who else AGENT,
                          text=f"{text} ({i + 1})"))
        if i == lines - 70:
            add(p.NoteAdded(note_id="n1", author=AGENT, text="Second missing parcel this "
                            "month: check the courier's depot before refunding again"))
    return out


def summary(last_seq: int) -> p.SessionSummary:
    ident = p.SessionIdentity(state="verified", customer_id="CUST1002",
                              customer_name="Priya Shah", method="link", by="host")
    return p.SessionSummary(session_id=SID, title="Chat with Priya Shah",
                            customer_id="CUST1002", customer_name="Priya Shah", state="open",
                            created_at=time.time() - 9000, last_seq=last_seq,
                            last_message_at=time.time(), identity=ident, number=7)


def page(all_: list[tuple[p.Envelope, p.Payload]], before: int | None, limit: int
         ) -> HistoryPage:
    end = len(all_) + 1 if before is None else before
    part = all_[max(0, end - 1 - limit):end - 1]
    first = part[0][0].seq if part else None
    return HistoryPage(SID, before, first, part[-1][0].seq if part else None,
                       bool(first and first > 1), part)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--state", choices=("newest", "loading", "older"), default="newest")
    parser.add_argument("--screenshot", type=Path, default=None)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO)
    app = QApplication(sys.argv[:1])
    from hitl_desktop.ui import theme

    theme.apply_app_style(app)
    all_ = frames(600)
    asked: list[tuple[int | None, int]] = []
    ws = Workspace(send=lambda payload, session: None)
    ws._history_fn = lambda sid, before, limit: asked.append((before, limit))
    window = AgentWindow(ws, restore=False)
    window.move(window.screen().availableGeometry().topLeft())
    window.show()
    ws.apply_welcome(p.Welcome(protocol=1, role=p.Role.AGENT, scope=p.Scope.DESK,
                               session_id=None, sessions=[summary(len(all_))], server={},
                               heartbeat_s=20, you=p.RepRef(rep_id="t_sam", name="Sam")))
    out = args.screenshot or Path(f"history-{args.state}.png")

    def answer() -> None:
        before, limit = asked[-1]
        ws.apply_history_page(page(all_, before, limit))

    bar = window.conversation.browser.verticalScrollBar()

    def scroll_up() -> None:
        bar.setValue(0)  # at the top: the page before it is asked for
        if args.state == "older":
            QTimer.singleShot(300, answer)
            # put on screen where the older page meets the lines that were shown
            QTimer.singleShot(500, lambda: bar.setValue(max(0, bar.value() - 260)))

    def shoot() -> None:
        out.parent.mkdir(parents=True, exist_ok=True)
        app.primaryScreen().grabWindow(0).save(str(out))
        log.info("saved %s (asked: %s)", out, asked)
        app.quit()

    QTimer.singleShot(200, answer)  # the newest page
    if args.state in ("older", "loading"):
        QTimer.singleShot(700, scroll_up)
        QTimer.singleShot(1400, shoot)
    else:
        QTimer.singleShot(900, shoot)
    return app.exec()


if __name__ == "__main__":
    raise SystemExit(main())
