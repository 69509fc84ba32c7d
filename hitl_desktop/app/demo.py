"""``hitl-desktop demo``: host + customer window + agent window on one PC.

The host runs in-process on 127.0.0.1 (any free port) with the co-pilot (the
offline engine without an API key, OpenAI with one); the two windows connect to
it over loopback WebSocket with their own invite links, exactly as separate PCs
would. ``--script`` plays DESIGN.md §3 by itself: it types as the customer into
the customer window and acts as the agent through the agent window's own
objects, prints a short transcript and exits. ``--screenshot DIR`` saves PNGs;
``--quit-after SECONDS`` exits cleanly.

Without a display (or with one nobody can answer: ``xvfb-run`` with stdin not a
terminal) the demo plays the script offscreen, prints the transcript, saves
screenshots to a directory it names and exits 0: a newcomer on a server sees the
product work in the terminal. No modal question opens unless someone can answer it.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from PySide6.QtCore import QRect, QSize
from PySide6.QtGui import QPixmap
from PySide6.QtWidgets import QWidget

from hitl_desktop.app.qt import qt_app, run_qt
from hitl_desktop.app.services import RunningHost, copilot_factory, start_host
from hitl_desktop.app.setup import needs_setup, offer_setup
from hitl_desktop.config import Paths, Settings, resolve_paths

if TYPE_CHECKING:
    from hitl_desktop.client.chat import ChatModel
    from hitl_desktop.client.connection import HostConnection
    from hitl_desktop.ui.customer_window import CustomerWindow

log = logging.getLogger(__name__)

#: the demo's customer is a signed-in shop customer: the session's customer link is issued
#: for this customer (verified from the start, DESIGN §3); a lobby visitor would start
#: anonymous and sign in first
DEMO_CUSTOMER = "CUST1001"
CUSTOMER_SIZE = (430, 820)
AGENT_SIZE = (1300, 820)
GAP = 16
#: on a screen too narrow for both at their sizes (a 1366 px laptop) the customer window
#: and the gaps give way first: every pixel left goes to the agent window's three columns
NARROW_CUSTOMER_WIDTH = 400
NARROW_GAP = 6
#: how fast the script "types" (seconds per character)
TYPING_DELAY_S = 0.025
#: the whole unattended run gives up (rc 1) after this long, never hangs
UNATTENDED_LIMIT_S = 170.0


class Transcript:
    """The demo's story in the terminal, one line per step (stdout: it is the output)."""

    def __init__(self, stream: Any = None, width: int = 110) -> None:
        self.stream = stream
        self.width = width
        self.lines: list[str] = []

    def say(self, what: str, text: str) -> None:
        flat = " ".join(text.split())
        if len(flat) > self.width:
            flat = flat[: self.width - 1].rstrip() + "…"
        line = f"[demo] {what:<15} {flat}"
        self.lines.append(line)
        stream = self.stream if self.stream is not None else sys.stdout
        stream.write(line + "\n")
        stream.flush()


def _agent_classes() -> tuple[type[Any], type[Any]] | None:
    """(Workspace, AgentWindow): the agent window is part of every build."""
    from hitl_desktop.client.workspace import Workspace
    from hitl_desktop.ui.agent.window import AgentWindow

    return Workspace, AgentWindow


def save_png(widget: QWidget, path: Path) -> Path:
    """Render ``widget`` as it is now (works offscreen and under Xvfb)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if not widget.grab().save(str(path), "PNG"):
        raise OSError(f"could not write {path}")
    log.info("screenshot %s", path)
    return path


@dataclass
class Demo:
    """Everything the demo runs, started in order and stopped in reverse."""

    paths: Paths
    settings: Settings
    args: argparse.Namespace
    host: RunningHost | None = None
    session_id: str = ""
    customer_conn: HostConnection | None = None
    chat: ChatModel | None = None
    customer_window: CustomerWindow | None = None
    agent_conn: HostConnection | None = None
    workspace: Any = None
    agent_window: QWidget | None = None
    closed: asyncio.Event = field(default_factory=asyncio.Event)
    screenshots: list[Path] = field(default_factory=list)
    steps: list[str] = field(default_factory=list)
    transcript: Transcript = field(default_factory=Transcript)

    async def start(self, *, restore_layout: bool = True) -> None:
        """Windows first (they say "Connecting…"), then the host, then the sockets."""
        from hitl_desktop.client.chat import ChatModel
        from hitl_desktop.client.connection import HostConnection
        from hitl_desktop.core.links import InviteLink
        from hitl_desktop.ui.customer_window import CustomerWindow

        log.info("demo: opening the customer window")
        self.customer_window = CustomerWindow()
        self.customer_window.closed.connect(self._customer_closed)
        self.customer_window.resize(*CUSTOMER_SIZE)
        classes = _agent_classes()
        if classes is not None:
            log.info("demo: opening the agent window")
            workspace_cls, window_cls = classes
            self.workspace = workspace_cls()
            self.agent_window = window_cls(
                self.workspace, config_dir=self.paths.config_dir, restore=restore_layout
            )
            closed_signal = getattr(self.agent_window, "closed", None)
            if closed_signal is not None:
                closed_signal.connect(self.closed.set)
            if not restore_layout:
                self.agent_window.resize(*AGENT_SIZE)
        gap = self._place_windows()
        self.customer_window.show()
        if self.agent_window is not None:
            self.agent_window.show()
        await asyncio.sleep(0.05)  # let them paint before the host's start-up work
        self._place_windows(gap=gap)  # again, now that their frames are known

        log.info("demo: starting the host on 127.0.0.1")
        self.host = await start_host(
            self.paths, self.settings, bind="127.0.0.1", port=0,
            copilot_factory=copilot_factory(
                self.paths, self.settings, provider=getattr(self.args, "provider", None),
                model=getattr(self.args, "model", None)),
        )
        log.info("demo: host on port %d; creating a session for %s", self.host.port,
                 DEMO_CUSTOMER)
        created = self.host.create_session(customer_id=DEMO_CUSTOMER, title="Demo conversation",
                                           by="demo")
        self.session_id = created.session_id

        self.customer_conn = HostConnection(
            InviteLink.parse(created.customer_link), client_name="demo customer window"
        )
        self.chat = ChatModel(self.customer_conn)
        self.customer_window.bind(self.chat, self.customer_conn)
        if self.workspace is not None:
            self.agent_conn = HostConnection(
                InviteLink.parse(self.host.desk_link), client_name="demo agent window"
            )
            self.workspace.attach(self.agent_conn)
        self.customer_conn.open()
        if self.agent_conn is not None:
            self.agent_conn.open()
        log.info("demo: windows up, connecting over loopback")

    def _customer_closed(self) -> None:
        """Closing the customer window ends the demo only when no agent window is left:
        the representative's workspace (and the host) keep running."""
        if self.agent_window is None or not self.agent_window.isVisible():
            self.closed.set()
        else:
            log.info("demo: the customer window closed; the agent window stays")

    def _place_windows(self, *, gap: int | None = None) -> int:
        """Side by side on the primary screen (see :func:`side_by_side`); called again
        after show, once the window manager's frames are known. Returns the gap used
        (kept when called again)."""
        from PySide6.QtGui import QGuiApplication

        assert self.customer_window is not None
        screen = self.customer_window.screen().availableGeometry()
        customer, agent = self.customer_window, self.agent_window
        if QGuiApplication.platformName() == "offscreen":  # no real screen to fit
            x, y = screen.x() + GAP, screen.y() + GAP
            customer.move(x, y)
            if agent is not None:
                agent.move(x + customer.width() + GAP, y)
            return GAP
        gap, where, agent_where = side_by_side(
            screen, customer.size(), _frame_extra(customer),
            agent.size() if agent is not None else None,
            _frame_extra(agent) if agent is not None else QSize(0, 0), gap=gap)
        customer.resize(where.size())
        customer.move(where.topLeft())
        if agent is not None and agent_where is not None:
            agent.resize(agent_where.size())
            agent.move(agent_where.topLeft())
        return gap

    async def wait_ready(self, within: float = 20.0) -> None:
        """Until both sides are connected and the first messages are on screen."""
        assert self.customer_conn is not None and self.chat is not None
        async with asyncio.timeout(within):
            await self.customer_conn.wait_connected()
            if self.agent_conn is not None:
                await self.agent_conn.wait_connected()
            await _until(lambda: self.chat is not None and self.chat.greeting is not None)
            if self.workspace is not None:
                await _until(lambda: self.workspace.session(self.session_id) is not None)
                if self.workspace.current_session_id != self.session_id:
                    self.workspace.select_session(self.session_id)
        await asyncio.sleep(0.4)  # let layouts settle and paint once
        log.info("demo: ready")

    def screenshot(self, directory: Path, suffix: str = "") -> list[Path]:
        saved = []
        if self.customer_window is not None:
            saved.append(save_png(self.customer_window, directory / f"demo-customer{suffix}.png"))
        if self.agent_window is not None:
            saved.append(save_png(self.agent_window, directory / f"demo-agent{suffix}.png"))
        desktop = self._grab_desktop()
        if desktop is not None:  # both windows side by side, as a person sees them
            path = directory / f"demo-desktop{suffix}.png"
            if desktop.save(str(path), "PNG"):
                saved.append(path)
        self.screenshots.extend(saved)
        return saved

    def _grab_desktop(self) -> QPixmap | None:
        """The screen area both windows cover (real displays and Xvfb; not offscreen)."""
        from PySide6.QtGui import QGuiApplication

        if QGuiApplication.platformName() == "offscreen" or self.customer_window is None:
            return None
        windows = [w for w in (self.customer_window, self.agent_window) if w is not None]
        for w in windows:
            w.repaint()  # the screen shows what was last painted: paint the latest state
        area = windows[0].frameGeometry()
        for w in windows[1:]:
            area = area.united(w.frameGeometry())
        screen = self.customer_window.screen()
        # a margin around them, on the screen (no black band where the windows are
        # as wide as the screen)
        area = area.adjusted(-GAP // 2, -GAP // 2, GAP // 2, GAP // 2).intersected(
            screen.geometry())
        return screen.grabWindow(0, area.x(), area.y(), area.width(), area.height())

    async def stop(self) -> None:
        log.info("demo: shutting down")
        if self.workspace is not None and hasattr(self.workspace, "flush"):
            self.workspace.flush()
        for conn in (self.agent_conn, self.customer_conn):
            if conn is not None:
                await conn.aclose()
        for window in (self.agent_window, self.customer_window):
            if window is not None:
                window.hide()
                window.deleteLater()
        if self.host is not None:
            await self.host.stop()
        log.info("demo: stopped")

    # ------------------------------------------------------------------ the script

    def _view(self) -> Any:
        return self.workspace.session(self.session_id) if self.workspace is not None else None

    async def type_as_customer(self, text: str) -> None:
        """Type into the customer window like a person, then press Enter."""
        window = self.customer_window
        assert window is not None
        window.composer.setFocus()
        for ch in text:
            window.composer.insertPlainText(ch)
            await asyncio.sleep(TYPING_DELAY_S)
        self.steps.append(f"customer: {text}")
        self.transcript.say("customer said", text)
        window.submit()

    async def wait_draft(self, *, after: set[str], within: float = 60.0) -> Any:
        """The next completed draft whose turn is not in ``after``."""

        def ready() -> bool:
            view = self._view()
            draft = view.draft if view is not None else None
            return bool(draft is not None and draft.turn_id not in after
                        and draft.state == "completed" and draft.text.strip())

        await _until(ready, within=within)
        draft = self._view().draft
        by = f" ({draft.provider})" if getattr(draft, "provider", "") else ""
        self.transcript.say("draft" + by, draft.text)
        articles = self._view().articles.get(draft.turn_id) or []
        if articles:
            self.transcript.say("articles", "; ".join(
                f"{a.title} ({a.score:.2f})" for a in articles[:3]))
        return draft

    async def send_draft_as_agent(self, draft: Any) -> None:
        """Press Send in the agent window's suggestion editor (what a person would do)."""
        assert self.agent_window is not None
        editor = getattr(self.agent_window, "suggestion_editor", None)
        await _until(lambda: editor is None or editor.editor.toPlainText().strip() != "",
                     within=5)
        if editor is not None and editor.send_button.isEnabled():
            editor.send()
        else:
            self.workspace.send_message(draft.text, draft_id=draft.turn_id,
                                        session_id=self.session_id)
        self.steps.append(f"agent sent: {draft.text[:60]}")
        self.transcript.say("agent sent", draft.text)

    async def play(self, shoot: Callable[[str], object] | None = None) -> None:
        """DESIGN.md §3, end to end, through the windows."""
        if self.workspace is None:
            await self.type_as_customer("How can I cancel my order?")
            return
        seen: set[str] = set()
        # 1-2: a question the knowledge base answers
        await self.type_as_customer("How can I cancel my order?")
        draft = await self.wait_draft(after=seen)
        seen.add(draft.turn_id)
        await self.send_draft_as_agent(draft)
        await asyncio.sleep(0.5)
        # 3: an action that needs approval; catch the draft while it streams
        shots: list[str] = []

        def take_midflow() -> None:
            shots.append("-midflow")
            if shoot is not None:
                shoot("-midflow")

        midflow = asyncio.ensure_future(self._midflow_moment(seen, take_midflow))
        await self.type_as_customer("Help me cancel order ORD1001")
        draft = await self.wait_draft(after=seen)
        seen.add(draft.turn_id)
        await _until(lambda: bool(self._view().pending_approvals), within=20)
        midflow.cancel()
        with contextlib.suppress(asyncio.CancelledError, TimeoutError):
            await midflow
        if not shots:
            log.info("demo: the draft streamed too fast to catch; mid-flow shot after it")
            take_midflow()
        from hitl_desktop.ui.agent.conversation import call_signature

        approval = self._view().pending_approvals[0]
        self.transcript.say("proposed action", call_signature(approval.tool, approval.arguments))
        # 4: the holding reply
        await self.send_draft_as_agent(draft)
        await asyncio.sleep(0.5)
        # 5: approve the action, exactly as proposed
        self.workspace.approve(approval.approval_id, session_id=self.session_id)
        self.steps.append(f"agent approved {approval.tool} {approval.arguments}")
        self.transcript.say("approved", call_signature(approval.tool, approval.arguments))
        await _until(lambda: not approval.pending, within=20)
        self.transcript.say("result", f"{approval.state}: {_outcome(approval)}")
        draft = await self.wait_draft(after=seen)
        seen.add(draft.turn_id)
        # 6: the confirmation reaches the customer
        await self.send_draft_as_agent(draft)
        await _until(lambda: self.chat is not None and len(
            [i for i in self.chat.items if not i.mine]) >= 3, within=10)
        await asyncio.sleep(0.5)
        log.info("demo: script finished: %s", " | ".join(self.steps))

    async def _midflow_moment(self, seen: set[str], on_moment: Callable[[], None]) -> None:
        """At a moment with a streaming draft (already on screen), articles and a
        pending action, call ``on_moment`` right away (it takes the screenshots)."""
        editor = getattr(self.agent_window, "suggestion_editor", None)

        def moment() -> bool:
            view = self._view()
            if view is None or view.draft is None:
                return False
            shown = editor.editor.toPlainText() if editor is not None else view.draft.text
            return bool(view.draft.state == "streaming" and view.draft.turn_id not in seen
                        and view.pending_approvals and view.current_articles
                        and len(shown) >= 90)

        await _until(moment, within=60, step=0.0)
        on_moment()


def _frame_extra(window: QWidget) -> QSize:
    """How much wider and taller the window manager's frame makes ``window`` (0, 0
    before it is shown or without a window manager)."""
    frame, inner = window.frameGeometry(), window.geometry()
    return QSize(frame.width() - inner.width(), frame.height() - inner.height())


def side_by_side(screen: QRect, customer: QSize, customer_frame: QSize,
                 agent: QSize | None, agent_frame: QSize, *,
                 gap: int | None = None) -> tuple[int, QRect, QRect | None]:
    """(gap, customer, agent): where each window's frame goes (top left) and its size
    inside the frame. Customer left, agent right, both frames on ``screen``. On a
    screen too narrow for both at their sizes (1366 px) the customer window and the
    gaps give way first, then the agent window shrinks (never below 900 px); heights
    count the title bars, which pushed both windows' bottom lines off a 768 px
    screen."""
    if gap is None:
        gap = GAP
        if agent is not None and customer.width() + agent.width() + 3 * GAP > screen.width():
            gap = NARROW_GAP
            customer = QSize(min(customer.width(), NARROW_CUSTOMER_WIDTH), customer.height())
    x, y = screen.x() + gap, screen.y() + gap
    height = max(400, screen.height() - 2 * gap)
    where = QRect(x, y, customer.width(),
                  min(customer.height(), height - customer_frame.height()))
    if agent is None:
        return gap, where, None
    agent_x = x + where.width() + customer_frame.width() + gap
    room = screen.x() + screen.width() - gap - agent_x - agent_frame.width()
    width = max(min(agent.width(), room), 900)
    agent_x = min(agent_x, screen.x() + screen.width() - width - agent_frame.width())
    return gap, where, QRect(agent_x, y, width,
                             min(agent.height(), height - agent_frame.height()))


def _outcome(approval: Any) -> str:
    """What an executed (or refused) action came back with, in a line."""
    if approval.error:
        return str(approval.error)
    result = approval.result or {}
    for key in ("message", "status", "summary"):
        if isinstance(result.get(key), str):
            return str(result[key])
    return ", ".join(f"{k}={v}" for k, v in result.items()) or "done"


async def _until(predicate: Callable[[], object], within: float = 30.0,
                 step: float = 0.02) -> None:
    """Await (never block) until ``predicate()`` holds."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while not predicate():
        if loop.time() > deadline:
            raise TimeoutError(f"demo: gave up waiting after {within:.0f}s")
        await asyncio.sleep(step)


def _xvfb_without_user(env: dict[str, str] | None = None) -> bool:
    """Under ``xvfb-run`` (its private Xauthority file) with stdin not a terminal:
    there is a display, but nobody who can see it or answer a question."""
    env = dict(os.environ) if env is None else env
    return "xvfb-run" in env.get("XAUTHORITY", "") and not _stdin_is_tty()


def _stdin_is_tty() -> bool:
    try:
        return sys.stdin is not None and sys.stdin.isatty()
    except (ValueError, OSError):  # closed or detached stdin
        return False


def unattended_reason() -> str | None:
    """Why nobody can watch or answer this run (then the demo plays by itself), or None."""
    from hitl_desktop.app.display import display_problem, has_display

    if os.environ.get("QT_QPA_PLATFORM", "").startswith(("offscreen", "minimal")):
        return f"QT_QPA_PLATFORM={os.environ['QT_QPA_PLATFORM']}"
    if not has_display():
        return "no display here"
    problem = display_problem()
    if problem is not None:
        return problem.rstrip(".")
    if _xvfb_without_user():
        return "xvfb-run without a terminal: nobody can see the windows"
    return None


def _interactive(args: argparse.Namespace) -> bool:
    """Someone is at the windows: only then may a question (the setup offer) open."""
    return not (args.screenshot or args.quit_after is not None or args.script
                or getattr(args, "unattended", False))


def default_screenshot_dir(paths: Paths) -> Path:
    return paths.data_dir / "demo-screenshots" / time.strftime("%Y%m%d-%H%M%S")


def prepare_unattended(args: argparse.Namespace, paths: Paths,
                       say: Callable[[str], object]) -> None:
    """Without anyone at a display: offscreen if there is none, the script, screenshots."""
    reason = unattended_reason()
    if reason is None:
        return
    args.unattended = True
    if os.environ.get("QT_QPA_PLATFORM") is None and unattended_display_missing():
        os.environ["QT_QPA_PLATFORM"] = "offscreen"  # before the QApplication exists
    if not args.script and args.quit_after is None:
        args.script = True
    if args.script and not args.screenshot:
        args.screenshot = str(default_screenshot_dir(paths))
    offscreen = os.environ.get("QT_QPA_PLATFORM", "").startswith("offscreen")
    say(f"[demo] {reason}: playing the demo by itself"
        + (" offscreen" if offscreen else "") + ", then exiting")
    _quiet_offscreen_warnings()
    if args.screenshot:
        say(f"[demo] screenshots go to {Path(args.screenshot).resolve()}")


def _quiet_offscreen_warnings() -> None:
    """The offscreen plugin warns about window hints it cannot apply, once per window:
    noise in a transcript meant for people. Everything else still reaches the log."""
    from PySide6.QtCore import QtMsgType, qInstallMessageHandler

    levels = {QtMsgType.QtDebugMsg: logging.DEBUG, QtMsgType.QtInfoMsg: logging.INFO,
              QtMsgType.QtWarningMsg: logging.WARNING}

    def handler(kind: QtMsgType, _context: object, message: str) -> None:
        if "propagateSizeHints" in message:
            return
        logging.getLogger("qt").log(levels.get(kind, logging.ERROR), "%s", message)

    qInstallMessageHandler(handler)


def unattended_display_missing() -> bool:
    from hitl_desktop.app.display import display_problem

    return display_problem() is not None


def run(args: argparse.Namespace) -> int:
    transcript = Transcript()

    def say(line: str) -> None:
        sys.stdout.write(line + "\n")
        sys.stdout.flush()

    user_paths = resolve_paths(args.data_dir, args.config_dir)
    prepare_unattended(args, user_paths, say)
    unattended = bool(getattr(args, "unattended", False))
    scratch: Path | None = None
    if args.script and args.data_dir is None and not os.environ.get("HITL_DATA_DIR"):
        # the script cancels ORD1001: on the user's shop it would do so once only, and
        # the second run would fail. A fresh demo shop per run, the user's settings kept.
        scratch = Path(tempfile.mkdtemp(prefix="hitl-demo-"))
        paths = Paths(scratch, user_paths.config_dir).ensure()
        log.info("demo: a fresh demo shop in %s for this scripted run", scratch)
    else:
        paths = user_paths.ensure()
    log.info("demo: creating the application")
    qt_app("Demo")
    log.info("demo: data in %s", paths.data_dir)
    shots = Path(args.screenshot).resolve() if args.screenshot else None

    async def main() -> int:
        started = time.monotonic()
        if _interactive(args) and await asyncio.to_thread(needs_setup, paths):  # keyring
            log.info("demo: first start, offering the setup wizard")
            await offer_setup(paths)
        settings = Settings.load(paths)
        demo = Demo(paths, settings, args, transcript=transcript)
        waiters: list[asyncio.Future[Any]] = []
        limit = args.quit_after if args.quit_after is not None else (
            UNATTENDED_LIMIT_S if unattended else None)
        try:
            await demo.start(restore_layout=shots is None and _interactive(args))
            await demo.wait_ready()
            if shots is not None:
                demo.screenshot(shots)

            def shoot(suffix: str) -> None:
                if shots is not None:
                    demo.screenshot(shots, suffix)

            def left() -> float | None:
                if limit is None:
                    return None
                return max(0.0, float(limit) - (time.monotonic() - started))

            closed = asyncio.ensure_future(demo.closed.wait())
            waiters.append(closed)
            if args.script:
                script = asyncio.ensure_future(demo.play(shoot))
                waiters.append(script)
                await asyncio.wait([closed, script], timeout=left(),
                                   return_when=asyncio.FIRST_COMPLETED)
                if not script.done():
                    if unattended and args.quit_after is None:
                        say(f"[demo] the flow did not finish within {limit:.0f} s: giving up")
                        return 1
                    log.warning("demo: the window closed or --quit-after ended the script")
                    return 0
                if script.exception() is not None:
                    log.error("demo script failed", exc_info=script.exception())
                    say(f"[demo] the flow failed: {script.exception()}")
                    return 1
                if shots is not None:
                    demo.screenshot(shots, "-final")
                    say(f"[demo] {len(demo.screenshots)} screenshots in {shots}:")
                    for path in demo.screenshots:
                        say(f"[demo]   {path}")
                say(f"[demo] done in {time.monotonic() - started:.0f} s: the customer got "
                    "an answer, the action ran after a human approved it")
                return 0
            await asyncio.wait([closed], timeout=left())
            return 0
        finally:
            for waiter in waiters:
                waiter.cancel()
            await demo.stop()

    try:
        return run_qt(main, app_name="Demo")
    finally:
        if scratch is not None:
            shutil.rmtree(scratch, ignore_errors=True)
