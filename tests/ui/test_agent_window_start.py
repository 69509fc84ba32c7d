"""Agent window start-up: what an empty window loads, and panels built on demand.

Timing lives in bench/ui_stream.py; these tests pin the *structure* that keeps the
start fast (which modules an empty window leaves unloaded) and the behaviour around
it (panels appear when the first conversation is chosen, the streamed draft follows
the end), deterministically.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from PySide6.QtWidgets import QLabel
from pytestqt.qtbot import QtBot

from hitl_desktop.client.workspace import Workspace
from hitl_desktop.core import protocol as p
from hitl_desktop.ui.agent.window import SESSION_PANELS, AgentWindow
from tests.ui.agent_feed import Feed, Sent, summary, welcome

pytestmark = pytest.mark.qt_log_ignore("This plugin does not support")

REPO = Path(__file__).resolve().parents[2]

# what the empty window must not import at start (each costs start-up time)
DEFERRED = [
    "hitl_desktop.ui.agent.inbox", "hitl_desktop.ui.agent.conversation",
    "hitl_desktop.ui.agent.suggestion",
    "hitl_desktop.ui.agent.articles", "hitl_desktop.ui.agent.actions",
    "hitl_desktop.ui.agent.customer", "hitl_desktop.ui.agent.schema_form",
    "hitl_desktop.ui.agent.viewer", "hitl_desktop.ui.agent.kb_dock",
    "hitl_desktop.core.protocol", "hitl_desktop.config", "websockets", "pydantic",
]

_CHILD = """
import json, sys, tempfile
from pathlib import Path
from PySide6.QtWidgets import QApplication
app = QApplication([])
from hitl_desktop.client.workspace import Workspace
from hitl_desktop.ui.agent.window import AgentWindow
window = AgentWindow(Workspace(), config_dir=Path(tempfile.mkdtemp()), restore=False)
window.show()
app.processEvents()
json.dump(sorted(m for m in sys.modules if m.startswith(("hitl_desktop", "websockets",
          "pydantic"))), sys.stdout)
"""


def test_an_empty_window_leaves_the_conversation_panels_unloaded(tmp_path: Path) -> None:
    env = dict(os.environ, QT_QPA_PLATFORM="offscreen", PYTHONPATH=str(REPO))
    out = subprocess.run([sys.executable, "-c", _CHILD], capture_output=True, text=True,
                         env=env, cwd=tmp_path, timeout=60, check=True)
    loaded = set(json.loads(out.stdout))
    assert "hitl_desktop.ui.agent.window" in loaded
    assert not loaded & set(DEFERRED), sorted(loaded & set(DEFERRED))


def test_panels_are_built_when_the_first_conversation_is_chosen(qtbot: QtBot,
                                                                tmp_path: Path) -> None:
    ws = Workspace(send=Sent())
    win = AgentWindow(ws, config_dir=tmp_path, restore=False)
    qtbot.addWidget(win)
    win.show()
    for key in SESSION_PANELS:  # empty states until there is a conversation
        label = win.docks[key].widget()
        assert isinstance(label, QLabel) and label.text() == SESSION_PANELS[key]
    ws.apply_welcome(welcome(summary("s1", "Alex Morgan")))  # selects the first session
    assert win.docks["inbox"].widget() is win.inbox
    assert win.inbox.session_ids() == ["s1"]
    assert win.docks["suggestion"].widget() is win.suggestion_editor
    assert win.docks["conversation"].widget() is win.conversation
    assert win.docks["actions"].widget() is win.action_queue
    assert win.docks["customer"].widget() is win.customer
    assert win.docks["articles"].widget() is win.articles
    Feed(ws, "s1").customer("Hello, where is my order?")
    assert "where is my order" in win.conversation.browser.toPlainText()
    assert win.customer.isVisible()


def test_the_article_viewer_is_built_when_an_article_opens(qtbot: QtBot,
                                                           tmp_path: Path) -> None:
    sent = Sent()
    ws = Workspace(send=sent)
    ws.apply_welcome(welcome(summary("s1", "Alex Morgan")))
    win = AgentWindow(ws, config_dir=tmp_path, restore=False)
    qtbot.addWidget(win)
    win.show()
    before = win._article_viewer
    assert before is None  # tabbed behind "Relevant articles"
    win.open_article("kb/returns-policy")
    assert win._article_viewer is not None
    assert win.docks["viewer"].isVisible()
    assert [a.article_id for a in sent.of("article.get")
            if isinstance(a, p.ArticleGet)] == ["kb/returns-policy"]


def test_a_streamed_draft_follows_the_end_unless_the_cursor_moved(qtbot: QtBot,
                                                                  tmp_path: Path) -> None:
    ws = Workspace(send=Sent())
    ws.apply_welcome(welcome(summary("s1", "Alex Morgan")))
    win = AgentWindow(ws, config_dir=tmp_path, restore=False)
    qtbot.addWidget(win)
    win.resize(900, 600)
    win.show()
    feed = Feed(ws, "s1")
    editor = win.suggestion_editor.editor
    bar = editor.verticalScrollBar()
    feed(p.DraftStarted(turn_id="t1", reason="customer_message", provider="offline"))
    text = ""
    for i in range(120):  # one long paragraph, appended delta by delta
        piece = f"word{i} and some more words here "
        feed(p.DraftDelta(turn_id="t1", offset=len(text), text=piece))
        text += piece
        ws.flush()
    assert editor.toPlainText() == text
    assert bar.maximum() > 0 and bar.value() == bar.maximum()
    assert editor.textCursor().atEnd()
    cursor = editor.textCursor()  # the representative puts the cursor at the start
    cursor.setPosition(0)
    editor.setTextCursor(cursor)
    bar.setValue(0)
    for i in range(5):
        piece = f"late{i} "
        feed(p.DraftDelta(turn_id="t1", offset=len(text), text=piece))
        text += piece
        ws.flush()
    assert editor.toPlainText() == text
    assert editor.textCursor().position() == 0 and bar.value() == 0
