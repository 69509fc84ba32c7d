"""``hitl-desktop setup``: the setup wizard on the qasync loop.

Also home of :func:`needs_setup` (host and demo offer the wizard on a first start),
:func:`offer_setup` and :func:`ask` (a message box awaited on the loop).
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import sys
from typing import TextIO

from hitl_desktop import secrets
from hitl_desktop.config import Paths, Settings, host_command, resolve_paths

log = logging.getLogger(__name__)


def needs_setup(paths: Paths) -> bool:
    """True on a first start: no settings saved yet and no API key anywhere."""
    if paths.settings_file.exists() or os.environ.get("OPENAI_API_KEY"):
        return False
    try:
        return not secrets.load_api_key(paths)
    except Exception:  # a broken keyring is not a reason to crash the host
        log.exception("could not read the stored API key")
        return True


async def run_wizard(paths: Paths, *, offline: bool = False) -> Settings | None:
    """Show the wizard and wait (without a nested loop) until it closes."""
    from hitl_desktop.ui.wizard import SetupWizard

    wizard = SetupWizard(paths, offline=offline)
    done: asyncio.Future[Settings | None] = asyncio.get_running_loop().create_future()

    def finished(result: int) -> None:
        if not done.done():
            done.set_result(wizard.state.settings if result else None)

    wizard.finished.connect(finished)
    wizard.show()
    wizard.raise_()
    try:
        return await done
    finally:
        wizard.tasks.cancel_all()
        wizard.deleteLater()


async def ask(text: str, *, question: bool = True) -> bool:
    """A message box awaited on the running loop (no nested event loop); True = Yes/OK."""
    from PySide6.QtWidgets import QMessageBox

    buttons = (QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.No if question
               else QMessageBox.StandardButton.Ok)
    icon = QMessageBox.Icon.Question if question else QMessageBox.Icon.Critical
    box = QMessageBox(icon, "HITL Desk", text, buttons)
    answer: asyncio.Future[int] = asyncio.get_running_loop().create_future()

    def finished(result: int) -> None:
        if not answer.done():
            answer.set_result(int(result))

    box.finished.connect(finished)
    box.open()
    result = await answer
    box.deleteLater()
    return result in (int(QMessageBox.StandardButton.Yes), int(QMessageBox.StandardButton.Ok))


async def offer_setup(paths: Paths) -> None:
    """On a first start, offer the setup wizard — once. Declining (or cancelling the
    wizard) saves the defaults, so the question does not come back every start;
    ``hitl-desktop setup`` is always there."""
    wanted = await ask("Nothing is configured yet. Set up an OpenAI API key and upload the "
                       "knowledge base now?\n\nWithout a key HITL Desk runs the offline "
                       "assistant; you can run \"hitl-desktop setup\" at any time.")
    if wanted and await run_wizard(paths) is not None:
        return
    if not paths.settings_file.exists():
        Settings.load(paths).save(paths)
        log.info("setup declined: running with the defaults (hitl-desktop setup to change)")


def setup_offline(paths: Paths, out: TextIO | None = None) -> int:
    """``setup --offline``: build the local index, save the offline engine, exit.

    Non-interactive (no window, no question), so it works over SSH and in scripts;
    one progress line per step on ``out`` (stdout)."""
    import time

    from hitl_desktop.knowledge.articles import knowledge_root, load_articles
    from hitl_desktop.knowledge.index import INDEX_FILENAME, open_index

    stream = out or sys.stdout

    def say(text: str) -> None:
        stream.write(f"[setup] {text}\n")
        stream.flush()

    settings = Settings.load(paths)
    root = knowledge_root(settings.knowledge_dir)
    articles = load_articles(root) if root.is_dir() else []
    if not articles:
        say(f"no articles found in {root} (expected kb/*.md and faq/*.md): nothing to index")
        return 1
    say(f"indexing {len(articles)} articles from {root} …")
    started = time.perf_counter()
    with open_index(paths.data_dir, settings.knowledge_dir) as index:
        count = len(index)
    say(f"indexed {count} articles in {(time.perf_counter() - started) * 1000:.0f} ms: "
        f"{paths.data_dir / INDEX_FILENAME}")
    settings.provider = "offline"
    settings.save(paths)
    say(f"saved {paths.settings_file}: the offline assistant (no API key needed)")
    say(f"start the host with: {host_command()}")
    return 0


def run(args: argparse.Namespace) -> int:
    paths = resolve_paths(args.data_dir, args.config_dir).ensure()
    if getattr(args, "offline", False):
        return setup_offline(paths)
    from hitl_desktop.app.qt import run_qt

    async def main() -> int:
        settings = await run_wizard(paths)
        if settings is None:
            log.info("setup cancelled")
            return 1
        log.info("setup finished: provider %s, store %s", settings.provider,
                 settings.vector_store_id)
        return 0

    return run_qt(main, app_name="HITL Desk setup")
