"""The setup wizard: API key, model, knowledge folder, vector-store upload (or offline).

Why a wizard: a new user must get from nothing to a working host without editing
files. The pages are thin: the real work lives in :mod:`hitl_desktop.knowledge.vector_store`
(key check, sync), :mod:`hitl_desktop.secrets` (key storage) and
:class:`~hitl_desktop.knowledge.index.KnowledgeIndex` (offline path). All network and
disk work runs as supervised tasks on the qasync loop, so the UI never blocks and
no dialog runs a nested event loop.
"""

from __future__ import annotations

import asyncio
import logging
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
from hitl_desktop.config import DEFAULT_MODEL, Paths, Settings
from hitl_desktop.core.tasks import TaskSupervisor
from hitl_desktop.knowledge.articles import default_knowledge_dir, load_articles
from hitl_desktop.knowledge.index import KnowledgeIndex
from hitl_desktop.knowledge.vector_store import (
    FileProgress,
    FileState,
    SyncResult,
    VectorStoreError,
    VectorStoreSync,
    chat_models,
    check_api_key,
    make_client,
)

log = logging.getLogger(__name__)

INDEX_FILE: Final = "knowledge_index.sqlite3"
SUGGESTED_MODELS: Final = ("gpt-5-mini", "gpt-5", "gpt-5-nano", "gpt-4.1", "gpt-4.1-mini")

PAGE_WELCOME, PAGE_KEY, PAGE_MODEL, PAGE_FOLDER, PAGE_UPLOAD, PAGE_OFFLINE, PAGE_SUMMARY = range(7)

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
    key_note: str = ""
    models: list[str] = field(default_factory=list)
    sync_result: SyncResult | None = None
    index_articles: int = 0


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
    """Checks the key with a real call before letting the user go on."""

    check_finished = Signal(bool, str)

    def __init__(self, state: SetupState, tasks: TaskSupervisor) -> None:
        super().__init__()
        self.state = state
        self.tasks = tasks
        self.setTitle("OpenAI API key")
        self.setSubTitle("Paste a key from platform.openai.com; it is checked with a real call.")
        self.key = QLineEdit()
        self.key.setEchoMode(QLineEdit.EchoMode.Password)
        self.key.setPlaceholderText("sk-...")
        self.key.textChanged.connect(self._edited)
        self.check = QPushButton("Check key")
        self.check.clicked.connect(self.start_check)
        self.status = _label("")
        self.where = _label("")
        row = QHBoxLayout()
        row.addWidget(self.key, 1)
        row.addWidget(self.check)
        lay = QVBoxLayout(self)
        lay.addLayout(row)
        lay.addWidget(self.status)
        lay.addWidget(self.where)
        lay.addStretch(1)
        self._verified: str | None = None
        self._existing: str | None = None

    def initializePage(self) -> None:
        # the keyring may be slow (D-Bus, an unlock prompt): look it up off the loop
        self.tasks.spawn(self._load_existing(), "read stored key")

    async def _load_existing(self) -> None:
        try:
            self._existing = await asyncio.to_thread(secrets.load_api_key, self.state.paths)
        except Exception:  # a broken keyring must not stop the wizard
            log.exception("could not read the stored API key")
            self._existing = None
        if self._existing and not self.key.text():
            self.key.setPlaceholderText("a key is already configured: leave empty to keep it")
            self.status.setText("A key is already configured. Press \"Check key\" to verify it, "
                                "or paste a new one.")
        self.completeChanged.emit()

    def _edited(self) -> None:
        self._verified = None
        self.status.setText("")
        self.completeChanged.emit()

    def candidate(self) -> str:
        return self.key.text().strip() or (self._existing or "")

    def start_check(self) -> None:
        key = self.candidate()
        if not key:
            self.status.setText("Paste your API key first.")
            return
        self.check.setEnabled(False)
        self.status.setText("Checking the key with OpenAI…")
        self.tasks.spawn(self._check(key), "check key")

    async def _check(self, key: str) -> None:
        client = make_client(key, self.state.settings, timeout=20.0)
        try:
            ids = await check_api_key(client)
        except VectorStoreError as exc:
            self._verified = None
            self.status.setText(f"✗ {exc}")
            self.check_finished.emit(False, str(exc))
            return
        finally:
            self.check.setEnabled(True)
            await client.close()
        self.state.api_key = key
        self.state.models = chat_models(ids)
        if key != self._existing or not self._existing:
            note = await asyncio.to_thread(store_key, key, self.state.paths)
        else:
            note = "The key is unchanged."
        self.state.key_note = note
        self._verified = key
        self.status.setText(f"✓ The key works ({len(ids)} models available).")
        self.where.setText(note)
        self.completeChanged.emit()
        self.check_finished.emit(True, note)

    def isComplete(self) -> bool:
        return self._verified is not None and self._verified == self.candidate()


def store_key(key: str, paths: Paths) -> str:
    """Store the key (keyring, else a 0600 file) and say where, in one sentence."""
    return secrets.store_api_key(paths, key)


class ModelPage(QWizardPage):
    def __init__(self, state: SetupState) -> None:
        super().__init__()
        self.state = state
        self.setTitle("Model")
        self.setSubTitle("The model that drafts replies. Smaller models answer faster.")
        self.combo = QComboBox()
        self.combo.setEditable(True)
        form = QFormLayout(self)
        form.addRow("Model:", self.combo)
        form.addRow(_label("The model must support the Responses API with file search and "
                           "function tools."))

    def initializePage(self) -> None:
        current = self.state.settings.model or DEFAULT_MODEL
        offered = [m for m in self.state.models if m] or list(SUGGESTED_MODELS)
        if current not in offered:
            offered.insert(0, current)
        self.combo.clear()
        self.combo.addItems(offered)
        self.combo.setCurrentText(current)

    def validatePage(self) -> bool:
        model = self.combo.currentText().strip()
        if not model:
            return False
        self.state.settings.model = model
        return True


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
        self.setSubTitle("Creates the vector store the assistant searches, and uploads every "
                         "article. Only changed articles are uploaded again next time.")
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

    def cancel_sync(self) -> None:
        if self.running and self._task is not None:
            self._task.cancel()

    async def _sync(self) -> None:
        key = self.state.api_key or await asyncio.to_thread(
            secrets.load_api_key, self.state.paths) or ""
        # the chosen model and folder are saved before uploading, so a cancel keeps them
        self.state.settings.provider = "openai"
        await asyncio.to_thread(self.state.settings.save, self.state.paths)
        client = self.client_factory(key, self.state.settings)
        sync = VectorStoreSync(client, self.state.paths, self.state.settings,
                               poll_interval=self.poll_interval)
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
        settings.provider = "offline"
        root = Path(settings.knowledge_dir) if settings.knowledge_dir else default_knowledge_dir()
        try:
            count, seconds = await asyncio.to_thread(_build_index, root, self.state.paths)
            await asyncio.to_thread(settings.save, self.state.paths)
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
    def __init__(self, state: SetupState) -> None:
        super().__init__()
        self.state = state
        self.setTitle("All set")
        self.text = _label("", selectable=True)
        lay = QVBoxLayout(self)
        lay.addWidget(self.text)
        lay.addStretch(1)
        self.setFinalPage(True)

    def initializePage(self) -> None:
        s = self.state.settings
        lines = [f"Settings saved to {self.state.paths.settings_file}."]
        if self.state.offline:
            lines += ["Engine: the offline assistant.",
                      f"Local index: {self.state.index_articles} articles."]
        else:
            lines += [f"Engine: OpenAI, model {s.model}.",
                      f"Vector store: {s.vector_store_id}."]
            if self.state.key_note:
                lines.append(self.state.key_note)
        lines.append("Start the host with: hitl-desktop host")
        self.text.setText("\n".join(lines))

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
        self.model_page = ModelPage(self.state)
        self.folder_page = FolderPage(self.state)
        self.upload_page = UploadPage(self.state, self.tasks)
        self.offline_page = OfflinePage(self.state, self.tasks)
        self.summary_page = SummaryPage(self.state)
        for pid, page in (
            (PAGE_WELCOME, self.welcome), (PAGE_KEY, self.key_page),
            (PAGE_MODEL, self.model_page), (PAGE_FOLDER, self.folder_page),
            (PAGE_UPLOAD, self.upload_page), (PAGE_OFFLINE, self.offline_page),
            (PAGE_SUMMARY, self.summary_page),
        ):
            self.setPage(pid, page)
        self.setStartId(PAGE_WELCOME)
        self.accepted.connect(lambda: self.finished_ok.emit(self.state.settings))
        self.rejected.connect(self.tasks.cancel_all)

    def done(self, result: int) -> None:
        self.tasks.cancel_all()
        super().done(result)
