"""Screenshot of the steer line (issue 16 item 4): the agent window mid-flow, after the
representative asked for a shorter draft, typing the next instruction.

    xvfb-run -a -s "-screen 0 1366x768x24" python docs/tools/steer_screenshot.py \\
        --screenshot docs/screenshots/desk-steer.png

The window is the one ``agent_window_preview.py`` populates (real protocol frames into
the real workspace); the steer is fed as the host answers it (``draft.started`` with
``instruction`` and ``replaces``), so Undo is live. ``--refused`` also shows the
offline engine refusing an instruction it cannot follow.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from PySide6.QtWidgets import QApplication

sys.path.insert(0, str(Path(__file__).resolve().parent))

import agent_window_preview as preview

from hitl_desktop.client.workspace import Workspace
from hitl_desktop.core import protocol as p
from hitl_desktop.ui.agent.window import AgentWindow

log = logging.getLogger("steer-screenshot")
SHORTER = ("Thanks, Alex! Order ORD1001 (Trail Running Shoes, $89.97) is still pending, so "
           "it can be cancelled: I've passed the cancellation on to a colleague for "
           "confirmation. The refund goes back to your card within 5-10 business days.")
REFUSED = ("The offline assistant (no AI model) cannot follow \u201cfrench\u201d. It follows: "
           "shorter, more formal, apologise (for the delay), ask for the order number, add the "
           "relevant article link, offer a $N voucher, ask for a photo.")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--screenshot", type=Path, default=None)
    parser.add_argument("--refused", action="store_true")
    parser.add_argument("--dark", action="store_true")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO)
    app = QApplication(sys.argv[:1])
    from hitl_desktop.ui import theme

    theme.apply_app_style(app)
    if args.dark:
        app.setPalette(preview.dark_palette())
    ids: list[str] = []

    def send(payload: p.Payload, session: str | None) -> str:
        ids.append(p.new_id("c"))
        return ids[-1]

    ws = Workspace(send=send)
    window = AgentWindow(ws, restore=False)
    window.move(window.screen().availableGeometry().topLeft())
    window.show()
    preview.populate(ws, window, streaming=False)
    feed = preview.Feeder(ws)
    feed.seq[preview.S1] = 40
    line = window.suggestion_editor.steer
    line.steer("shorter")
    feed(p.DraftStarted(turn_id="t3", reason="steer", provider="offline", replaces="t2",
                        instruction="shorter"))
    feed(p.DraftCompleted(turn_id="t3", text=SHORTER, citations=[
        p.Citation(article_id="kb/cancel-order", title="Cancelling an order")]))
    ws.flush()
    if args.refused:
        line.steer("write it in French")
        env, decoded, _ = p.decode_host(p.error_frame(
            p.ErrorCode.UNSUPPORTED, REFUSED, ref=ids[-1], session=preview.S1))
        ws.handle(env, decoded)
    line.line.setText("offer a $10 voucher")
    line.line.setFocus()
    window.docks["suggestion"].raise_()
    if args.screenshot:
        preview.shoot_and_quit(app, window, args.screenshot)
    return app.exec()


if __name__ == "__main__":
    raise SystemExit(main())
