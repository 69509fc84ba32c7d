"""The setup wizard: API key and model, knowledge folder, vector-store upload (or offline).

Why a wizard: a new user must get from nothing to a working host without editing
files. Every path ends on the summary page and Finish; nothing (key, settings) is
saved before Finish — only the upload itself happens on the way, in the user's
OpenAI account, and the page says so. The key page checks the key with one tiny
real call to the chosen model and says in plain words what is wrong (wrong key,
no credit, model not allowed, streaming needs a verified organisation) and which
model would work; it also points to the offline assistant for anyone without a
key. The pages are thin: the real work lives in :mod:`hitl_desktop.knowledge.vector_store`
(key check, sync), :mod:`hitl_desktop.secrets` (key storage) and
:class:`~hitl_desktop.knowledge.index.KnowledgeIndex` (offline path). All network and
disk work runs as supervised tasks on the qasync loop, so the UI never blocks and
no dialog runs a nested event loop.
"""

from __future__ import annotations

import asyncio
import html
import logging
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QColor
from PySide6.QtWidgets import (
    QAbstractItemView,
    QButtonGroup,
    QComboBox,
    QDialog,
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QLineEdit,
    QProgressBar,
    QPushButton,
    QRadioButton,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
    QWizard,
    QWizardPage,
)

from hitl_desktop import secrets
from hitl_desktop.config import DEFAULT_MODEL, Paths, Settings, host_command
from hitl_desktop.core.tasks import TaskSupervisor
from hitl_desktop.knowledge.articles import default_knowledge_dir, load_articles
from hitl_desktop.knowledge.index import KnowledgeIndex
from hitl_desktop.knowledge.vector_store import (
    FileProgress,
    FileState,
    KeyCheck,
    ProbeResult,
    SyncResult,
    VectorStoreError,
    VectorStoreSync,
    chat_models,
    check_api_key,
    make_client,
)

log = logging.getLogger(__name__)

INDEX_FILE: Final = "knowledge_index.sqlite3"
NOTHING_SAVED: Final = "Nothing is saved until you press Finish on the last page."
CHECK_FIRST: Final = "Press \"Check key\" (or Enter) to try the key: Next turns on once it works."

PAGE_WELCOME, PAGE_KEY, PAGE_FOLDER, PAGE_UPLOAD, PAGE_OFFLINE, PAGE_SUMMARY = range(6)
_URL = re.compile(r"https://[^\s)]+[^\s).,]")

_STATE_COLORS: Final = {
    FileState.DONE: "#1b7f3b",
    FileState.UNCHANGED: "#5f6b7a",
    FileState.DELETED: "#5f6b7a",
    FileState.FAILED: "#b3261e",
    FileState.CANCELLED: "#a15c00",
    FileState.UPLOADING: "#1f5fbf",
    FileState.PROCESSING: "#1f5fbf",
    FileState.DELETING: "#1f5fbf",
}


_STATE_ICONS: Final = {
    FileState.DONE: "✓",
    FileState.UNCHANGED: "=",
    FileState.DELETED: "✂",
    FileState.FAILED: "✗",
    FileState.CANCELLED: "■",
    FileState.UPLOADING: "↑",
    FileState.PROCESSING: "⟳",
    FileState.DELETING: "✂",
    FileState.QUEUED: "·",
}


def index_path(paths: Paths) -> Path:
    """Where the local (offline) search index lives."""
    return paths.data_dir / INDEX_FILE


@dataclass
class SetupState:
    """What the pages decided; the summary shows it and ``finish`` saves it."""

    paths: Paths
    settings: Settings
    offline: bool = False
    api_key: str | None = None
    existing_key: str | None = None  # the key stored before this run (kept if unchanged)
    key_note: str = ""
    stream_note: str = ""  # set when drafts will arrive whole (unverified organisation)
    models: list[str] = field(default_factory=list)
    sync_result: SyncResult | None = None
    index_articles: int = 0


def linked(text: str) -> str:
    """Plain text as label HTML with its https links clickable."""
    out, last = [], 0
    for m in _URL.finditer(text):
        out.append(html.escape(text[last:m.start()]))
        url = html.escape(m.group(0))
        out.append(f'<a href="{url}">{url}</a>')
        last = m.end()
    out.append(html.escape(text[last:]))
    return "".join(out).replace("\n", "<br>")


def save_setup(state: SetupState) -> str:
    """Finish: store the key (if new) and save the settings; say where the key went.

    Blocking (keyring, disk): run it in a worker thread."""
    settings = state.settings
    note = ""
    if state.offline:
        settings.provider = "offline"
    else:
        settings.provider = "openai"
        if state.api_key and state.api_key != state.existing_key:
            note = secrets.store_api_key(state.paths, state.api_key)
        elif state.api_key:
            note = "The API key is unchanged."
    settings.save(state.paths)
    log.info("setup saved %s (provider %s)", state.paths.settings_file, settings.provider)
    return note


def _label(text: str, *, wrap: bool = True, selectable: bool = False) -> QLabel:
    lab = QLabel(text)
    lab.setWordWrap(wrap)
    lab.setTextFormat(Qt.TextFormat.PlainText)
    if selectable:
        lab.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
    return lab


class WelcomePage(QWizardPage):
    def __init__(self, state: SetupState) -> None:
        super().__init__()
        self.state = state
        self.setTitle("Welcome to HITL Desk")
        self.setSubTitle("Choose the engine that drafts replies for your representatives.")
        self.ai = QRadioButton("OpenAI (best answers; needs an API key and internet)")
        self.offline = QRadioButton("Offline assistant (no key; answers from the local "
                                    "knowledge base and the order database)")
        group = QButtonGroup(self)
        group.addButton(self.ai)
        group.addButton(self.offline)
        (self.offline if state.offline else self.ai).setChecked(True)
        lay = QVBoxLayout(self)
        lay.addWidget(_label("The API key stays on this host PC. Representatives and customers "
                             "connect to it with invite links and never see the key."))
        lay.addSpacing(12)
        lay.addWidget(self.ai)
        lay.addWidget(self.offline)
        lay.addStretch(1)

    def nextId(self) -> int:
        self.state.offline = self.offline.isChecked()
        return PAGE_FOLDER if self.state.offline else PAGE_KEY


class KeyPage(QWizardPage):
    """Checks the key with one tiny real call to the chosen model before going on."""

    check_finished = Signal(bool, str)
    offline_requested = Signal()

    def __init__(self, state: SetupState, tasks: TaskSupervisor) -> None:
        super().__init__()
        self.state = state
        self.tasks = tasks
        self.setTitle("OpenAI API key and model")
        self.setSubTitle("Paste a key from platform.openai.com. \"Check\" sends one tiny "
                         "test message to the model (it costs a tiny fraction of a cent). "
                         + NOTHING_SAVED)
        self.key = QLineEdit()
        self.key.setEchoMode(QLineEdit.EchoMode.Password)
        self.key.setPlaceholderText("sk-...")
        self.key.textChanged.connect(self._edited)
        self.key.returnPressed.connect(self._enter)
        self.check = QPushButton("Check key")
        self.check.clicked.connect(self.start_check)
        self.combo = QComboBox()
        self.combo.setEditable(True)
        self.combo.setMinimumContentsLength(18)
        self.combo.currentTextChanged.connect(self._edited)
        self.status = QLabel("")
        self.status.setWordWrap(True)
        self.status.setTextFormat(Qt.TextFormat.RichText)
        self.status.setOpenExternalLinks(True)
        self.status.setTextInteractionFlags(Qt.TextInteractionFlag.TextBrowserInteraction)
        self.use_alternative = QPushButton()
        self.use_alternative.setVisible(False)
        self.use_alternative.clicked.connect(self._take_alternative)
        self.where = _label("")
        self.offline_hint = _label("No API key, or rather not use one? The offline assistant "
                                   "drafts replies from your knowledge base and the order "
                                   "database, with no key and no internet.")
        self.go_offline = QPushButton("Use the offline assistant instead")
        self.go_offline.clicked.connect(self.offline_requested.emit)
        row = QHBoxLayout()
        row.addWidget(self.key, 1)
        row.addWidget(self.check)
        form = QFormLayout()
        form.addRow("API key:", row)
        form.addRow("Model:", self.combo)
        form.addRow(_label("Offered: models that can search the knowledge base and call the "
                           "shop's tools. You may type another model name."))
        lay = QVBoxLayout(self)
        lay.addLayout(form)
        lay.addWidget(self.status)
        lay.addWidget(self.use_alternative, 0, Qt.AlignmentFlag.AlignLeft)
        lay.addWidget(self.where)
        lay.addStretch(1)
        lay.addWidget(self.offline_hint)
        lay.addWidget(self.go_offline, 0, Qt.AlignmentFlag.AlignLeft)
        self._verified: tuple[str, str] | None = None  # (key, model) that works
        self._alternative: str | None = None
        self._checked_key: str | None = None  # the key the alternative was found with

    def initializePage(self) -> None:
        current = self.state.settings.model or DEFAULT_MODEL
        self._fill_models(self.state.models or chat_models([]), current)
        # the keyring may be slow (D-Bus, an unlock prompt): look it up off the loop
        self.tasks.spawn(self._load_existing(), "read stored key")

    def _fill_models(self, offered: list[str], current: str) -> None:
        if current and current not in offered:
            offered = [current, *offered]
        self.combo.blockSignals(True)
        self.combo.clear()
        self.combo.addItems(offered)
        self.combo.setCurrentText(current)
        self.combo.blockSignals(False)

    async def _load_existing(self) -> None:
        try:
            existing = await asyncio.to_thread(secrets.load_api_key, self.state.paths)
        except Exception:  # a broken keyring must not stop the wizard
            log.exception("could not read the stored API key")
            existing = None
        self.state.existing_key = existing
        if existing and not self.key.text():
            self.key.setPlaceholderText("a key is already configured: leave empty to keep it")
            self._say("A key is already configured. Press \"Check key\" to verify it, or "
                      "paste a new one.")
        self.completeChanged.emit()

    def _say(self, text: str) -> None:
        self.status.setText(linked(text))

    def status_text(self) -> str:
        """What the status line says, as plain text (tests, screenshots)."""
        return self.status.text() and html.unescape(re.sub(r"<[^>]+>", "", self.status.text()))

    def _edited(self) -> None:
        if self._verified is not None and self._verified != (self.candidate(), self.model()):
            self._verified = None
            self._say("")
            self.use_alternative.setVisible(False)
        self.completeChanged.emit()
        if self._verified is None and self.key.text().strip() and self.check.isEnabled():
            # Next stays off until a check passes: say so (a pasted key and a dead Next
            # button, with Enter doing nothing, left a new user stuck here)
            self._say(CHECK_FIRST)

    def _enter(self) -> None:
        """Enter in the key box checks the key (Next cannot go on before that)."""
        if not self.isComplete() and self.check.isEnabled():
            self.start_check()

    def candidate(self) -> str:
        return self.key.text().strip() or (self.state.existing_key or "")

    def model(self) -> str:
        return self.combo.currentText().strip()

    def start_check(self) -> None:
        key, model = self.candidate(), self.model()
        if not key:
            self._say("Paste your API key first (or use the offline assistant below).")
            return
        if not model:
            self._say("Choose a model first.")
            return
        self.check.setEnabled(False)
        self.use_alternative.setVisible(False)
        self._say(f"Checking the key with a test message to {model}…")
        self.tasks.spawn(self._check(key, model), "check key")

    async def _check(self, key: str, model: str) -> None:
        client = make_client(key, self.state.settings, timeout=30.0)
        try:
            result = await check_api_key(client, model)
        finally:
            self.check.setEnabled(True)
            await client.close()
        self.show_check(key, result)

    def show_check(self, key: str, result: KeyCheck) -> None:
        """Say what the check found; remember the key and model when they work."""
        probe = result.probe
        if result.models:
            self.state.models = chat_models(result.models)
            self._fill_models(self.state.models, self.model())
        ok = probe.result.usable
        lines = [probe.message if ok else f"✗ {probe.message}"]
        if probe.detail and not ok:
            lines.append(f"(OpenAI said: {probe.detail})")
        if result.listing_note:
            lines.append(result.listing_note)
        self._alternative, self._checked_key = result.alternative, key
        if result.alternative:
            why = ("streams for this key" if ok else "works with this key")
            lines.append(f"{result.alternative} {why}: press the button below to use it.")
            self.use_alternative.setText(f"Use {result.alternative}")
            self.use_alternative.setVisible(True)
        if probe.result is ProbeResult.BAD_KEY or probe.result is ProbeResult.NO_QUOTA:
            lines.append("No key at hand? The offline assistant below works without one.")
        self._say("\n".join(lines))
        if ok:
            self.state.api_key = key
            self.state.stream_note = (probe.message if probe.result is ProbeResult.WHOLE_ONLY
                                      else "")
            self._verified = (key, probe.model)
        else:
            self._verified = None
        self.where.setText("The key and model are saved when you press Finish." if ok else "")
        self.completeChanged.emit()
        self.check_finished.emit(ok, probe.message)

    def _take_alternative(self) -> None:
        """The offered model was just checked with this key: take it without a new call."""
        model, key = self._alternative, self._checked_key
        if not model or not key:
            return
        self.combo.setCurrentText(model)
        self.state.api_key = key
        self.state.stream_note = ""
        self._verified = (key, model)
        self.use_alternative.setVisible(False)
        self._say(f"✓ The key works with {model}, and drafts will appear word by word.")
        self.where.setText("The key and model are saved when you press Finish.")
        self.completeChanged.emit()

    def isComplete(self) -> bool:
        return self._verified is not None and self._verified == (self.candidate(), self.model())

    def validatePage(self) -> bool:
        self.state.settings.model = self.model()
        return self.isComplete()

    def nextId(self) -> int:
        return PAGE_FOLDER


class FolderPage(QWizardPage):
    def __init__(self, state: SetupState) -> None:
        super().__init__()
        self.state = state
        self.setTitle("Knowledge folder")
        self.setSubTitle("Markdown articles in kb/ and faq/ sub-folders, with front matter.")
        self.path = QLineEdit()
        self.path.textChanged.connect(self._changed)
        browse = QPushButton("Browse…")
        browse.clicked.connect(self._browse)
        self.info = _label("")
        row = QHBoxLayout()
        row.addWidget(self.path, 1)
        row.addWidget(browse)
        lay = QVBoxLayout(self)
        lay.addLayout(row)
        lay.addWidget(self.info)
        lay.addStretch(1)
        self._count = 0

    def initializePage(self) -> None:
        folder = self.state.settings.knowledge_dir or str(default_knowledge_dir())
        self.path.setText(folder)
        self._changed()

    def _browse(self) -> None:
        chosen = QFileDialog.getExistingDirectory(self, "Knowledge folder", self.path.text())
        if chosen:
            self.path.setText(chosen)

    def _changed(self) -> None:
        folder = Path(self.path.text().strip()).expanduser()
        arts = load_articles(folder) if folder.is_dir() else []
        self._count = len(arts)
        kb = sum(1 for a in arts if a.kind == "kb")
        self.info.setText(
            f"{len(arts)} articles: {kb} knowledge-base, {len(arts) - kb} FAQ." if arts
            else "No articles found here (expected kb/*.md and faq/*.md)."
        )
        self.completeChanged.emit()

    def isComplete(self) -> bool:
        return self._count > 0

    def validatePage(self) -> bool:
        folder = Path(self.path.text().strip()).expanduser().resolve()
        shipped = default_knowledge_dir().resolve()
        self.state.settings.knowledge_dir = None if folder == shipped else str(folder)
        return True

    def nextId(self) -> int:
        return PAGE_OFFLINE if self.state.offline else PAGE_UPLOAD


class UploadPage(QWizardPage):
    """Creates the store and uploads with progress; Cancel stops, Resume continues."""

    sync_finished = Signal(bool, str)

    COLUMNS: Final = ("Article", "Title", "Status", "Detail")

    def __init__(self, state: SetupState, tasks: TaskSupervisor) -> None:
        super().__init__()
        self.state = state
        self.tasks = tasks
        self.setTitle("Upload the knowledge base")
        self.setSubTitle("Creates the vector store the assistant searches in your OpenAI "
                         "account and uploads every article now; only changed articles are "
                         "uploaded next time. Your settings and key are saved on Finish.")
        self.bar = QProgressBar()
        self.bar.setRange(0, 1000)
        self.bar.setFormat("%p%")
        self.summary = _label("")
        self.counts = _label("")
        self.table = QTableWidget(0, len(self.COLUMNS))
        self.table.setHorizontalHeaderLabels(list(self.COLUMNS))
        self.table.verticalHeader().setVisible(False)
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setAlternatingRowColors(True)
        self.table.setShowGrid(False)
        self.table.setWordWrap(False)
        self.table.verticalHeader().setDefaultSectionSize(24)
        header = self.table.horizontalHeader()
        header.setSectionResizeMode(0, QHeaderView.ResizeMode.ResizeToContents)
        header.setSectionResizeMode(1, QHeaderView.ResizeMode.Stretch)
        header.setSectionResizeMode(2, QHeaderView.ResizeMode.ResizeToContents)
        header.setSectionResizeMode(3, QHeaderView.ResizeMode.ResizeToContents)
        self.cancel = QPushButton("Cancel upload")
        self.cancel.clicked.connect(self.cancel_sync)
        self.resume = QPushButton("Resume")
        self.resume.clicked.connect(self.start_sync)
        buttons = QHBoxLayout()
        buttons.addWidget(self.summary, 1)
        buttons.addWidget(self.resume)
        buttons.addWidget(self.cancel)
        lay = QVBoxLayout(self)
        lay.addWidget(self.bar)
        lay.addLayout(buttons)
        lay.addWidget(self.table, 1)
        lay.addWidget(self.counts)
        self._rows: dict[str, tuple[QTableWidgetItem, ...]] = {}
        self._states: dict[str, FileState] = {}
        self._task: asyncio.Task[Any] | None = None
        self._done = False
        self.poll_interval = 1.0
        self.client_factory: Callable[[str, Settings], Any] = make_client

    def initializePage(self) -> None:
        self.start_sync()

    def cleanupPage(self) -> None:
        self.cancel_sync()

    @property
    def running(self) -> bool:
        return self._task is not None and not self._task.done()

    def start_sync(self) -> None:
        if self.running:
            return
        self._done = False
        self.completeChanged.emit()
        self.resume.setEnabled(False)
        self.cancel.setEnabled(True)
        self.summary.setText("Preparing the vector store…")
        self._task = self.tasks.spawn(self._sync(), "vector-store sync")
        # the page is complete only once the task is over: say so when it is (the
        # completeChanged of _finish fires while the task still counts as running)
        self._task.add_done_callback(lambda _task: self._emit_complete_changed())

    def _emit_complete_changed(self) -> None:
        try:
            self.completeChanged.emit()
        except RuntimeError:  # the wizard is already gone
            log.debug("upload finished after the wizard closed")

    def cancel_sync(self) -> None:
        if self.running and self._task is not None:
            self._task.cancel()

    async def _sync(self) -> None:
        key = self.state.api_key or await asyncio.to_thread(
            secrets.load_api_key, self.state.paths) or ""
        client = self.client_factory(key, self.state.settings)
        # settings are saved on Finish; the manifest in the data dir remembers the store,
        # so a wizard cancelled after (part of) the upload reuses it next time
        sync = VectorStoreSync(client, self.state.paths, self.state.settings,
                               poll_interval=self.poll_interval, persist_settings=False)
        try:
            result = await sync.run(self.on_progress)
        except asyncio.CancelledError:
            self.summary.setText("Cancelled. Press Resume to continue where it stopped.")
            self._finish(False, "cancelled")
            raise
        except VectorStoreError as exc:
            self.summary.setText(f"✗ {exc}")
            self._finish(False, str(exc))
            return
        finally:
            await client.close()
        self.state.sync_result = result
        self.bar.setValue(1000)
        text = (f"Vector store {result.vector_store_id}: {len(result.uploaded)} uploaded, "
                f"{len(result.unchanged)} unchanged, {len(result.deleted)} removed")
        if result.failed:
            text += f", {len(result.failed)} failed (press Resume to retry)"
        else:
            text += ". Press Next"
        self.summary.setText(text + ".")
        self._done = True
        self._finish(result.ok, text)

    def _finish(self, ok: bool, message: str) -> None:
        self.resume.setEnabled(True)
        self.cancel.setEnabled(False)
        self.completeChanged.emit()
        self.sync_finished.emit(ok, message)

    def on_progress(self, p: FileProgress) -> None:
        items = self._rows.get(p.article_id)
        if items is None:
            row = self.table.rowCount()
            self.table.insertRow(row)
            items = (QTableWidgetItem(p.article_id), QTableWidgetItem(p.title),
                     QTableWidgetItem(), QTableWidgetItem())
            for col, item in enumerate(items):
                self.table.setItem(row, col, item)
            self._rows[p.article_id] = items
        status, detail = items[2], items[3]
        status.setText(f"{_STATE_ICONS.get(p.state, '')} {p.state.value}".strip())
        color = _STATE_COLORS.get(p.state)
        status.setForeground(QColor(color) if color else self.palette().text().color())
        detail.setText(p.message or "")
        self.bar.setValue(int(p.fraction * 1000))
        self._states[p.article_id] = p.state
        self._update_counts()
        if p.state in (FileState.UPLOADING, FileState.PROCESSING):
            self.summary.setText(f"{p.state.value.capitalize()} {p.title}…")

    def _update_counts(self) -> None:
        tally: dict[FileState, int] = {}
        for st in self._states.values():
            tally[st] = tally.get(st, 0) + 1
        order = (FileState.DONE, FileState.UNCHANGED, FileState.UPLOADING, FileState.PROCESSING,
                 FileState.QUEUED, FileState.DELETED, FileState.FAILED, FileState.CANCELLED)
        parts = [f"{tally[st]} {st.value}" for st in order if tally.get(st)]
        self.counts.setText(f"{len(self._states)} articles: " + ", ".join(parts))

    def status_of(self, article_id: str) -> str:
        """The state shown for one article (without its icon)."""
        st = self._states.get(article_id)
        return st.value if st is not None else ""

    def isComplete(self) -> bool:
        return self._done and not self.running

    def nextId(self) -> int:
        return PAGE_SUMMARY


class OfflinePage(QWizardPage):
    """Builds the local search index the offline assistant uses."""

    index_finished = Signal(bool, str)

    def __init__(self, state: SetupState, tasks: TaskSupervisor) -> None:
        super().__init__()
        self.state = state
        self.tasks = tasks
        self.setTitle("Build the local index")
        self.setSubTitle("The offline assistant searches this index; no key is needed.")
        self.bar = QProgressBar()
        self.bar.setRange(0, 0)
        self.status = _label("Indexing…")
        lay = QVBoxLayout(self)
        lay.addWidget(self.bar)
        lay.addWidget(self.status)
        lay.addStretch(1)
        self._done = False

    def initializePage(self) -> None:
        self._done = False
        self.bar.setRange(0, 0)
        self.tasks.spawn(self._build(), "build index")

    async def _build(self) -> None:
        settings = self.state.settings
        root = Path(settings.knowledge_dir) if settings.knowledge_dir else default_knowledge_dir()
        try:
            count, seconds = await asyncio.to_thread(_build_index, root, self.state.paths)
        except Exception as exc:
            log.exception("index build failed")
            self.bar.setRange(0, 1)
            self.status.setText(f"✗ Could not build the index: {exc}")
            self.index_finished.emit(False, str(exc))
            return
        self.state.index_articles = count
        self.bar.setRange(0, 1)
        self.bar.setValue(1)
        self.status.setText(f"✓ Indexed {count} articles in {seconds * 1000:.0f} ms.")
        self._done = True
        self.completeChanged.emit()
        self.index_finished.emit(True, self.status.text())

    def isComplete(self) -> bool:
        return self._done

    def nextId(self) -> int:
        return PAGE_SUMMARY


def _build_index(root: Path, paths: Paths) -> tuple[int, float]:
    paths.ensure()
    with KnowledgeIndex.open(root, index_path(paths)) as index:
        return len(index), index.build_seconds


class SummaryPage(QWizardPage):
    def __init__(self, state: SetupState, tasks: TaskSupervisor) -> None:
        super().__init__()
        self.state = state
        self.tasks = tasks
        self.setTitle("All set: press Finish to save")
        self.text = QLabel("")
        self.text.setWordWrap(True)
        self.text.setTextFormat(Qt.TextFormat.RichText)
        self.text.setOpenExternalLinks(True)
        self.text.setTextInteractionFlags(Qt.TextInteractionFlag.TextBrowserInteraction)
        lay = QVBoxLayout(self)
        lay.addWidget(self.text)
        lay.addStretch(1)
        self.setFinalPage(True)
        self._lines: list[str] = []

    def initializePage(self) -> None:
        s = self.state.settings
        lines = [f"Finish saves these settings to {self.state.paths.settings_file}:"]
        if self.state.offline:
            lines += ["• Engine: the offline assistant (no key, no internet).",
                      f"• Local index: {self.state.index_articles} articles."]
        else:
            lines += [f"• Engine: OpenAI, model {s.model}.",
                      f"• Vector store: {s.vector_store_id}."]
            if self.state.stream_note:
                lines.append("• Drafts arrive whole until your OpenAI organisation is "
                             "verified: https://platform.openai.com/settings/organization/"
                             "general")
        lines += ["", f"Then start the host with:  {host_command()}",
                  f"(or try it all on this PC first with the demo: {host_command('demo')})"]
        self._lines = lines
        self._show()
        if not self.state.offline and self.state.api_key and \
                self.state.api_key != self.state.existing_key:
            self.tasks.spawn(self._where_the_key_goes(), "key destination")

    async def _where_the_key_goes(self) -> None:
        note = await asyncio.to_thread(secrets.key_destination, self.state.paths)
        self._lines.insert(len(self._lines) - 3, f"• {note}")
        self._show()

    def _show(self) -> None:
        self.text.setText(linked("\n".join(self._lines)))

    def plain_text(self) -> str:
        return "\n".join(self._lines)

    def nextId(self) -> int:
        return -1


class SetupWizard(QWizard):
    """The whole setup flow; ``finished_ok`` fires with the saved settings."""

    finished_ok = Signal(object)

    def __init__(self, paths: Paths, *, offline: bool = False,
                 parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("HITL Desk setup")
        self.setWizardStyle(QWizard.WizardStyle.ModernStyle)
        self.setOption(QWizard.WizardOption.NoBackButtonOnLastPage, True)
        self.resize(860, 640)
        self.paths = paths.ensure()
        self.tasks = TaskSupervisor("setup wizard")
        self.state = SetupState(paths, Settings.load(paths), offline=offline)
        self.welcome = WelcomePage(self.state)
        self.key_page = KeyPage(self.state, self.tasks)
        self.folder_page = FolderPage(self.state)
        self.upload_page = UploadPage(self.state, self.tasks)
        self.offline_page = OfflinePage(self.state, self.tasks)
        self.summary_page = SummaryPage(self.state, self.tasks)
        for pid, page in (
            (PAGE_WELCOME, self.welcome), (PAGE_KEY, self.key_page),
            (PAGE_FOLDER, self.folder_page), (PAGE_UPLOAD, self.upload_page),
            (PAGE_OFFLINE, self.offline_page), (PAGE_SUMMARY, self.summary_page),
        ):
            self.setPage(pid, page)
        self.setStartId(PAGE_WELCOME)
        self.key_page.offline_requested.connect(self.switch_to_offline)
        self.accepted.connect(lambda: self.finished_ok.emit(self.state.settings))
        self.rejected.connect(self.tasks.cancel_all)
        self._saved = False
        self._saving = False
        self.saved_note = ""

    def switch_to_offline(self) -> None:
        """The key page's way out: the offline path, from the welcome page on."""
        self.state.offline = True
        self.welcome.offline.setChecked(True)
        while self.currentId() not in (PAGE_WELCOME, -1):
            self.back()
        self.next()

    def accept(self) -> None:
        """Finish: save (off the loop), then close. Nothing was saved before this."""
        if self._saved:
            super().accept()
            return
        if self._saving:
            return
        self._saving = True
        self.button(QWizard.WizardButton.FinishButton).setEnabled(False)
        self.tasks.spawn(self._save_and_close(), "save setup")

    async def _save_and_close(self) -> None:
        try:
            self.saved_note = await asyncio.to_thread(save_setup, self.state)
        except Exception as exc:
            log.exception("saving the setup failed")
            self.summary_page.text.setText(linked(f"✗ Could not save the settings: {exc}"))
            self._saving = False
            self.button(QWizard.WizardButton.FinishButton).setEnabled(True)
            return
        if self.saved_note:
            log.info("%s", self.saved_note)
        self.state.key_note = self.saved_note
        self._saved = True
        self.accept()

    def done(self, result: int) -> None:
        if result == int(QDialog.DialogCode.Accepted) and not self._saved:
            self.accept()  # QWizard's Finish calls done(Accepted) directly: save first
            return
        self.tasks.cancel_all()
        super().done(result)
