"""Screenshots of ``session.gap`` in both windows: a real host on loopback, the customer's
chat window and the agent window on it; the host's log files are copied mid-conversation
(what reached the disk), the conversation goes on, the host stops, the copy is put back
(a power cut lost the last lines) and a new host starts on the same port. Both windows
reconnect, show one line where the gap is and mark the lines the host lost::

    xvfb-run -a -s "-screen 0 1366x768x24" .venv/bin/python docs/tools/gap_screenshots.py \
        --out docs/screenshots

writes gap-agent-1366x768.png and gap-customer-1366x768.png.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import shutil
import tempfile
from pathlib import Path
from urllib.parse import urlsplit

from PySide6.QtWidgets import QApplication, QWidget

from hitl_desktop.app.qt import run_qt
from hitl_desktop.app.services import RunningHost, start_host
from hitl_desktop.client.chat import ChatModel
from hitl_desktop.client.connection import HostConnection
from hitl_desktop.client.workspace import ChatItem, GapItem, Workspace
from hitl_desktop.config import Settings, resolve_paths
from hitl_desktop.core.links import InviteLink
from hitl_desktop.host.relay import RelayConfig
from hitl_desktop.ui.agent.window import AgentWindow
from hitl_desktop.ui.customer_window import CustomerWindow

log = logging.getLogger("gap-screenshots")
LOG_FILES = ("relay.sqlite3", "relay.sqlite3-wal")
BEFORE = [("Hi, my parcel still has not arrived", "Sorry to hear that, let me look"),
          ("It was order ORD1001", "I see ORD1001 left the depot on Monday")]
LOST = [("Tracking says delivered but nothing is here",
         "I will start a replacement for you now")]
AFTER = [("Hello? Are you still there?", "Yes, sorry, we had a short interruption")]


async def until(check: object, what: str, within: float = 15.0) -> None:
    loop = asyncio.get_running_loop()
    end = loop.time() + within
    while not check():  # type: ignore[operator]
        if loop.time() > end:
            raise TimeoutError(what)
        await asyncio.sleep(0.02)


async def shoot(app: QApplication, show: QWidget, hide: QWidget, out: Path) -> None:
    hide.hide()
    show.show()
    show.raise_()
    await asyncio.sleep(0.8)
    out.parent.mkdir(parents=True, exist_ok=True)
    app.primaryScreen().grabWindow(0).save(str(out))
    log.info("saved %s", out)


async def run(out_dir: Path) -> int:
    app = QApplication.instance()
    assert isinstance(app, QApplication)
    tmp = Path(tempfile.mkdtemp(prefix="gap-shots-"))
    data, snapshot = tmp / "data", tmp / "snapshot"
    snapshot.mkdir()
    paths = resolve_paths(data, data / "config")

    async def host_on(port: int) -> RunningHost:
        return await start_host(paths, Settings(), port=port,
                                config=RelayConfig(checkpoint_interval=3600.0))

    host = await host_on(0)
    port = urlsplit(host.local_url).port or 0
    created = host.create_session(customer_id="CUST1001", title="Chat with Alex Morgan")
    sid = created.session_id
    customer = HostConnection(InviteLink.parse(created.customer_link), backoff_base=0.2,
                              backoff_max=0.5)
    chat = ChatModel(customer)
    cwin = CustomerWindow(chat, customer)
    cwin.resize(440, 700)
    cwin.move(460, 30)
    cwin.show()
    agent = HostConnection(InviteLink.parse(created.agent_link), backoff_base=0.2,
                           backoff_max=0.5)
    ws = Workspace()
    ws.attach(agent)
    awin = AgentWindow(ws, config_dir=tmp / "agent", restore=False)
    awin.setGeometry(app.primaryScreen().availableGeometry())
    awin.show()
    customer.open()
    agent.open()
    await customer.wait_connected()
    await agent.wait_connected()

    def agent_texts() -> list[str]:
        view = ws.session(sid)
        return [] if view is None else [i.text for i in view.transcript
                                        if isinstance(i, ChatItem)]

    async def exchange(pairs: list[tuple[str, str]]) -> None:
        for question, answer in pairs:
            chat.send_text(question)
            await until(lambda q=question: q in agent_texts(), question)
            ws.send_message(answer)
            await until(lambda a=answer: any(i.text == a and i.seq for i in chat.items), answer)

    second: RunningHost | None = None
    try:
        await exchange(BEFORE)
        host.relay_log.db.execute("SELECT 1")  # what is grouped is committed
        for name in LOG_FILES:
            shutil.copy2(data / name, snapshot / name)
        await exchange(LOST)
        await host.stop()
        for name in LOG_FILES:  # the power cut: the log's last lines are gone
            shutil.copy2(snapshot / name, data / name)
        (data / "relay.sqlite3-shm").unlink(missing_ok=True)
        second = await host_on(port)
        view = ws.session(sid)
        await until(lambda: view is not None and any(isinstance(i, GapItem)
                                                     for i in view.transcript), "agent gap")
        await until(lambda: any(i.kind == "gap" for i in chat.items), "customer gap")
        await exchange(AFTER)
        await shoot(app, awin, cwin, out_dir / "gap-agent-1366x768.png")
        await shoot(app, cwin, awin, out_dir / "gap-customer-1366x768.png")
    finally:
        cwin.close()
        awin.close()
        await customer.aclose()
        await agent.aclose()
        if second is not None:
            await second.stop()
        shutil.rmtree(tmp, ignore_errors=True)
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--out", type=Path, default=Path("docs/screenshots"))
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO)
    return run_qt(lambda: run(args.out))


if __name__ == "__main__":
    raise SystemExit(main())
