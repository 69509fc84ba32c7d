"""The representative's main window: named, dockable, tabbable panels over one model.

Every dock and toolbar has an objectName so ``saveState()``/``restoreState()``
bring the layout back; the layout lives in an INI file in the config dir.
The window holds no business logic: panels render the :class:`Workspace` and
turn clicks and shortcuts into its intents.
"""

from __future__ import annotations

import html
import logging
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, cast

from PySide6.QtCore import QByteArray, QEvent, QSettings, Qt, QTimer, Signal
from PySide6.QtGui import QAction, QCloseEvent, QKeySequence, QShowEvent
from PySide6.QtWidgets import (
    QDockWidget,
    QLabel,
    QMainWindow,
    QPushButton,
    QSizePolicy,
    QToolBar,
    QVBoxLayout,
    QWidget,
)

from hitl_desktop.client.desk import Notifier, Preferences
from hitl_desktop.client.workspace import Workspace
from hitl_desktop.ui.agent.style import agent_style, is_dark
from hitl_desktop.ui.ask import Question, ask
from hitl_desktop.ui.fit import ElideLabel, fit_to_screen

if TYPE_CHECKING:
    from hitl_desktop.core import protocol as p
    from hitl_desktop.ui.agent.actions import ActionQueue
    from hitl_desktop.ui.agent.articles import ArticlesPanel
    from hitl_desktop.ui.agent.conversation import ConversationPanel
    from hitl_desktop.ui.agent.customer import CustomerPanel
    from hitl_desktop.ui.agent.export import TranscriptExporter
    from hitl_desktop.ui.agent.inbox import InboxPanel
    from hitl_desktop.ui.agent.macros import MacrosDialog
    from hitl_desktop.ui.agent.notify import TrayNotifier
    from hitl_desktop.ui.agent.prefs import PreferencesDialog
    from hitl_desktop.ui.agent.search import SearchDialog
    from hitl_desktop.ui.agent.suggestion import SuggestionEditor
    from hitl_desktop.ui.agent.viewer import ArticleViewer
    from hitl_desktop.ui.kb_browser import KbBrowser

log = logging.getLogger(__name__)

LAYOUT_VERSION = 1
#: the size the window asks for on a first start, shrunk to the available screen
PREFERRED_SIZE = (1440, 900)
# from this window width a desk's inbox is as wide as its four filters in one row; a
# narrower window (the demo's, beside the customer's on 1366 px) folds them in two
ROOMY_DESK_WIDTH = 1200
CONNECTION_TEXT = {
    "connected": "● Connected",
    "ready": "● Connected",
    "connecting": "◌ Connecting…",
    "authenticating": "◌ Connecting…",
    "reconnecting": "◌ Reconnecting…",
    "disconnected": "○ Disconnected",
    "closed": "○ Disconnected",
    "failed": "✕ Cannot connect",
    "revoked": "✕ Access revoked",
}
# Panels with nothing to show until there is a conversation, with what their dock
# says until then. They are built (and their modules loaded) when the first
# conversation arrives, a panel is focused, or code asks for one: an empty workspace
# (every start, before the host answers) comes up faster.
SESSION_PANELS = {
    "inbox": "No conversations yet.",
    "conversation": "No conversation selected.",
    "suggestion": "The assistant's suggested reply appears here.",
    "articles": "Articles the assistant relies on appear here.",
    "actions": "Nothing waiting for approval.",
    "customer": "The customer's profile and orders appear here.",
}


def layout_settings(config_dir: Path | None = None) -> QSettings:
    """The INI file holding the window layout (in HITL_CONFIG_DIR unless given)."""
    if config_dir is None:
        from hitl_desktop.config import resolve_paths  # json + platformdirs: only if needed

        config_dir = resolve_paths().config_dir
    base = config_dir
    base.mkdir(parents=True, exist_ok=True)
    return QSettings(str(base / "agent-window.ini"), QSettings.Format.IniFormat)


class AgentWindow(QMainWindow):
    """Inbox, conversation, suggestion editor, articles, viewer, actions, customer."""

    closed = Signal()  # after the layout was saved; the app shuts down on it
    open_link_requested = Signal()  # File → Open another link…: the app asks for one

    def __init__(self, workspace: Workspace, *, config_dir: Path | None = None,
                 restore: bool = True, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.workspace = workspace
        self.setObjectName("agentWindow")
        self.setWindowTitle("HITL Desk — Agent workspace")
        self.resize(*fit_to_screen(self, PREFERRED_SIZE))
        self.setDockNestingEnabled(True)
        self.setDockOptions(QMainWindow.DockOption.AllowTabbedDocks
                            | QMainWindow.DockOption.AllowNestedDocks
                            | QMainWindow.DockOption.AnimatedDocks)
        self._restyling = False
        self._dark = is_dark()
        self.setStyleSheet(agent_style(self))

        self._panels: dict[str, QWidget] = {}
        self._article_viewer: ArticleViewer | None = None
        self.kb_browser: KbBrowser | None = None
        self._settings = layout_settings(config_dir)
        # issue 16: the representative's toggles, and what deserves a notification
        self.preferences = Preferences(self._settings, self)
        self.notifier = Notifier(workspace, self.preferences, self)
        self.tray_notifier: TrayNotifier | None = None
        self.search_dialog: SearchDialog | None = None
        self.macros_dialog: MacrosDialog | None = None
        self.preferences_dialog: PreferencesDialog | None = None
        self.exporter: TranscriptExporter | None = None
        self.export_error_box: QWidget | None = None  # the last "Export failed" message
        self.desk_question: Question | None = None  # a desk question (resolve anyway?)

        self.docks: dict[str, QDockWidget] = {}
        self._add_dock("inbox", "Inbox", self._placeholder("inbox"))
        self._add_dock("conversation", "Conversation", self._placeholder("conversation"))
        self._add_dock("suggestion", "Suggested reply", self._placeholder("suggestion"))
        self._add_dock("articles", "Relevant articles", self._placeholder("articles"))
        self._add_lazy_dock("viewer", "Article", lambda: self.article_viewer)
        self._add_dock("actions", "Action queue", self._placeholder("actions"))
        self._add_dock("customer", "Customer", self._placeholder("customer"))
        self._add_kb_dock()
        self._default_layout()

        self._build_toolbar()
        self._build_menus()
        self._build_status_bar()

        self._close_armed: str | None = None
        self.question: Question | None = None  # the open "close anyway?" question
        workspace.sessions_changed.connect(self._build_session_panels)
        workspace.current_session_changed.connect(self._build_session_panels)
        workspace.current_session_changed.connect(self._on_session)
        workspace.session_updated.connect(self._on_session_updated)
        workspace.approvals_changed.connect(self._on_approvals)
        workspace.connection_state_changed.connect(self._on_connection)
        workspace.assistant_status_changed.connect(self._on_assistant)
        workspace.error_occurred.connect(self._on_error)
        workspace.status_refused.connect(self._on_status_refused)
        workspace.reps_changed.connect(self._on_reps)
        self.notifier.unread_changed.connect(self._update_title)
        self.ensure_tray()

        self.default_state = self.saveState(LAYOUT_VERSION)
        self.default_geometry = self.saveGeometry()
        self._restored = bool(restore and self.restore_layout())
        self._sized = self._restored
        self._desk_sized = self._restored  # sized once more when the link is a desk's
        self._on_connection(workspace.connection_state)
        if workspace.assistant_status is not None:
            self._on_assistant(workspace.assistant_status)
        self._build_session_panels()
        self._on_session(workspace.current_session_id or "")

    # ------------------------------------------------------------------ panels

    def _placeholder(self, key: str) -> QWidget:
        label = QLabel(SESSION_PANELS[key])
        label.setObjectName("emptyLabel")
        label.setAlignment(Qt.AlignmentFlag.AlignCenter)
        label.setWordWrap(True)
        return label

    def _build_session_panels(self, *_args: object) -> None:
        if len(self._panels) < len(SESSION_PANELS) and (
                self.workspace.current_session_id or self.workspace.sessions()):
            for key in SESSION_PANELS:
                self._session_panel(key)

    def _session_panel(self, key: str) -> QWidget:
        """The panel for ``key``, built (and docked in place of its empty-state label)
        on first use."""
        panel = self._panels.get(key)
        if panel is not None:
            return panel
        ws = self.workspace
        if key == "inbox":
            from hitl_desktop.client.desk import FILTERS
            from hitl_desktop.ui.agent.inbox import InboxPanel

            inbox = InboxPanel(ws)
            chosen = self._settings.value("desk/inbox_filter", "open")
            if chosen in FILTERS and chosen != inbox.filter:
                inbox.set_filter(chosen)
            inbox.filter_changed.connect(
                lambda which: self._settings.setValue("desk/inbox_filter", which))
            panel = inbox
        elif key == "conversation":
            from hitl_desktop.ui.agent.conversation import ConversationPanel

            panel = ConversationPanel(ws)
        elif key == "suggestion":
            from hitl_desktop.ui.agent.suggestion import SuggestionEditor

            editor = SuggestionEditor(ws)
            editor.article_requested.connect(self.open_article)
            editor.warn_held = lambda: self.preferences.get("desk/warn_held")
            panel = editor
        elif key == "articles":
            from hitl_desktop.ui.agent.articles import ArticlesPanel

            articles = ArticlesPanel(ws)
            articles.article_chosen.connect(self.open_article)
            panel = articles
        elif key == "actions":
            from hitl_desktop.ui.agent.actions import ActionQueue

            panel = ActionQueue(ws)
        elif key == "customer":
            from hitl_desktop.ui.agent.customer import CustomerPanel

            panel = CustomerPanel(ws)
        else:
            raise KeyError(key)
        self._panels[key] = panel
        dock = self.docks[key]
        old = dock.widget()
        dock.setWidget(panel)
        if old is not None:
            old.deleteLater()
        return panel

    @property
    def inbox(self) -> InboxPanel:
        return cast("InboxPanel", self._session_panel("inbox"))

    @property
    def conversation(self) -> ConversationPanel:
        return cast("ConversationPanel", self._session_panel("conversation"))

    @property
    def suggestion_editor(self) -> SuggestionEditor:
        return cast("SuggestionEditor", self._session_panel("suggestion"))

    @property
    def articles(self) -> ArticlesPanel:
        return cast("ArticlesPanel", self._session_panel("articles"))

    @property
    def action_queue(self) -> ActionQueue:
        return cast("ActionQueue", self._session_panel("actions"))

    @property
    def customer(self) -> CustomerPanel:
        return cast("CustomerPanel", self._session_panel("customer"))

    # ------------------------------------------------------------------ docks

    def _add_dock(self, key: str, title: str, widget: QWidget) -> QDockWidget:
        dock = QDockWidget(title, self)
        dock.setObjectName(f"dock_{key}")
        dock.setWidget(widget)
        dock.setFeatures(QDockWidget.DockWidgetFeature.DockWidgetMovable
                         | QDockWidget.DockWidgetFeature.DockWidgetFloatable
                         | QDockWidget.DockWidgetFeature.DockWidgetClosable)
        self.addDockWidget(Qt.DockWidgetArea.LeftDockWidgetArea, dock)
        self.docks[key] = dock
        return dock

    def _add_lazy_dock(self, key: str, title: str, build: Callable[[], object]) -> QDockWidget:
        """A dock whose panel is built the first time the dock is shown: the ones that
        start tabbed behind another cost start-up time for nothing."""
        holder = QWidget()
        holder.setObjectName(f"{key}Holder")
        QVBoxLayout(holder).setContentsMargins(0, 0, 0, 0)
        dock = self._add_dock(key, title, holder)
        dock.visibilityChanged.connect(lambda visible: build() if visible else None)
        return dock

    def _place_in_holder(self, key: str, widget: QWidget) -> None:
        holder = self.docks[key].widget()
        layout = holder.layout()
        if layout is not None:
            layout.addWidget(widget)
        holder.setFocusProxy(widget)

    @property
    def article_viewer(self) -> ArticleViewer:
        """The article viewer, built on first use (its dock starts behind "Relevant
        articles"; the viewer module and its text classes load then)."""
        if self._article_viewer is None:
            from hitl_desktop.ui.agent.viewer import ArticleViewer

            self._article_viewer = ArticleViewer(self.workspace)
            self._place_in_holder("viewer", self._article_viewer)
        return self._article_viewer

    def _add_kb_dock(self) -> None:
        """The shared KB browser, fed through the workspace. Built the first time the
        dock is shown: importing the knowledge package costs ~90 ms at start-up."""
        holder = QWidget()
        holder.setObjectName("kbHolder")
        QVBoxLayout(holder).setContentsMargins(0, 0, 0, 0)
        dock = self._add_dock("kb", "Knowledge base", holder)
        dock.visibilityChanged.connect(self._build_kb_browser)

    def _build_kb_browser(self, visible: bool = True) -> KbBrowser | None:
        if self.kb_browser is not None or not visible:
            return self.kb_browser
        from hitl_desktop.ui.agent.kb_dock import make_kb_browser

        widget = make_kb_browser(self.workspace, self.open_article)
        if widget is None:
            holder = self.docks["kb"].widget()
            note = QLabel("The knowledge base browser is not part of this build.", holder)
            note.setObjectName("emptyLabel")
            holder_layout = holder.layout()
            if holder_layout is not None:
                holder_layout.addWidget(note)
            return None
        self.kb_browser = widget
        holder_layout = self.docks["kb"].widget().layout()
        if holder_layout is not None:
            holder_layout.addWidget(widget)
        return widget

    def ensure_kb_browser(self) -> KbBrowser | None:
        """The KB browser widget, building it now if the dock was never shown."""
        return self._build_kb_browser(True)

    def _default_layout(self) -> None:
        d = self.docks
        left = Qt.DockWidgetArea.LeftDockWidgetArea
        right = Qt.DockWidgetArea.RightDockWidgetArea
        for dock in d.values():
            dock.setFloating(False)
            self.removeDockWidget(dock)
        self.addDockWidget(left, d["inbox"])
        self.addDockWidget(right, d["conversation"])
        self.splitDockWidget(d["conversation"], d["actions"], Qt.Orientation.Horizontal)
        self.splitDockWidget(d["inbox"], d["customer"], Qt.Orientation.Vertical)
        self.splitDockWidget(d["conversation"], d["suggestion"], Qt.Orientation.Vertical)
        self.splitDockWidget(d["actions"], d["articles"], Qt.Orientation.Vertical)
        self.tabifyDockWidget(d["articles"], d["viewer"])
        if "kb" in d:
            self.tabifyDockWidget(d["viewer"], d["kb"])
        d["articles"].raise_()
        for dock in d.values():
            dock.show()
        self._default_sizes()

    def _default_sizes(self) -> None:
        """Columns and rows in proportion to the window (inbox 22 %, conversation 44 %,
        actions 34 %): fixed pixel sizes squeezed one column on a small screen. The inbox
        gets half of its column: on a desk it is where the work is chosen."""
        d = self.docks
        w, h = max(self.width(), 640), max(self.height(), 480)
        inbox = int(w * 0.22)
        if self.workspace.you is not None and w >= ROOMY_DESK_WIDTH:
            inbox = max(inbox, self.inbox.filter_bar.one_row_width() + 8)
        rest = w - inbox  # conversation and actions keep their 44 : 34
        if self._place_kb_tab(int(rest * 34 / 78)):
            # then the left column shows "Customer" and "Knowledge base" whole (before
            # the profile arrives and widens it, 22 % read "Custo…", "Knowledge b…")
            inbox = max(inbox, self._tabs_width("customer", "kb") + 12)
            rest = w - inbox
        self.resizeDocks([d["inbox"], d["conversation"], d["actions"]],
                         [inbox, int(rest * 44 / 78), int(rest * 34 / 78)],
                         Qt.Orientation.Horizontal)
        self.resizeDocks([d["conversation"], d["suggestion"]], [int(h * 0.6), int(h * 0.4)],
                         Qt.Orientation.Vertical)
        self.resizeDocks([d["actions"], d["articles"]], [int(h * 0.58), int(h * 0.42)],
                         Qt.Orientation.Vertical)
        self.resizeDocks([d["inbox"], d["customer"]], [int(h * 0.5), int(h * 0.5)],
                         Qt.Orientation.Vertical)

    def _tabs_width(self, *keys: str) -> int:
        """The width a row of these docks' tabs needs to show every title whole."""
        fm = self.fontMetrics()
        return sum(fm.horizontalAdvance(self.docks[k].windowTitle()) + 28 for k in keys)

    def _place_kb_tab(self, actions_width: int) -> bool:
        """The Knowledge base tab sits behind the articles, unless the actions column
        cannot show three tabs whole ("Relevant a…", "A…", "Knowledge…" in the demo's
        ~940 px window): then it goes behind the Customer panel, in the left column.
        True when it is there."""
        d = self.docks
        if "kb" not in d:
            return False
        # some room to spare for the inbox column growing when the customer's profile
        # arrives (the actions column gives way)
        tabs = self._tabs_width("articles", "viewer", "kb") + 48
        beside_customer = d["kb"] in self.tabifiedDockWidgets(d["customer"])
        if (tabs > actions_width) == beside_customer:
            return beside_customer
        self.removeDockWidget(d["kb"])  # a tabbed dock does not move to another group
        self.tabifyDockWidget(d["viewer"] if beside_customer else d["customer"], d["kb"])
        d["kb"].show()
        d["customer"].raise_()
        d["articles"].raise_()
        return not beside_customer

    def reset_layout(self) -> None:
        """Back to the layout the window started with."""
        self._default_layout()  # re-docks, re-tabs, shows and sizes every panel
        self.toolbar.show()

    def save_layout(self) -> None:
        self._settings.setValue("agent/geometry", self.saveGeometry())
        self._settings.setValue("agent/state", self.saveState(LAYOUT_VERSION))
        self._settings.sync()

    def restore_layout(self) -> bool:
        geometry = self._settings.value("agent/geometry")
        state = self._settings.value("agent/state")
        if isinstance(geometry, QByteArray):
            self.restoreGeometry(geometry)
        if isinstance(state, QByteArray):
            ok = self.restoreState(state, LAYOUT_VERSION)
            log.info("restored agent window layout: %s", ok)
            return ok
        return False

    # ------------------------------------------------------------------ chrome

    def _build_toolbar(self) -> None:
        bar = QToolBar("Actions", self)
        bar.setObjectName("toolbar_main")
        bar.setMovable(False)
        bar.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextOnly)
        self.addToolBar(Qt.ToolBarArea.TopToolBarArea, bar)
        self.toolbar = bar
        self.session_title = ElideLabel("", bar, max_hint=420)
        self.session_title.setObjectName("sessionTitle")

        def act(text: str, shortcuts: list[str], slot: object, tip: str) -> QAction:
            a = QAction(text, self)
            a.setShortcuts([QKeySequence(s) for s in shortcuts])
            a.setShortcutContext(Qt.ShortcutContext.WindowShortcut)
            a.setToolTip(f"{tip} ({shortcuts[0]})" if shortcuts else tip)
            a.triggered.connect(slot)
            self.addAction(a)
            return a

        self.prev_action = act("◀ Previous", ["Ctrl+PgUp", "Alt+Up"],
                               lambda: self.select_relative(-1), "Previous conversation")
        self.next_action = act("Next ▶", ["Ctrl+PgDown", "Alt+Down"],
                               lambda: self.select_relative(1), "Next conversation")
        self.send_action = act("Send", ["Ctrl+Return", "Ctrl+Enter"],
                               self.send_reply, "Send the reply")
        self.regenerate_action = act("Regenerate", ["Ctrl+Shift+G"],
                                     self.regenerate_draft, "New draft")
        self.approve_action = act("✓ Approve first action", ["Ctrl+Shift+A"],
                                  self.approve_first, "Approve the first pending action")
        self.reject_action = act("✕ Reject first action", ["Ctrl+Shift+R"],
                                 self.reject_first, "Reject the first pending action")
        self.close_session_action = act("Close conversation", ["Ctrl+Shift+W"],
                                        self.close_session, "Close this conversation")
        self.reopen_session_action = act("Reopen conversation", [],
                                         self.reopen_session,
                                         "Reopen this closed conversation to reply again")
        # issue 16: the desk
        self.take_action = act("Take conversation", ["Ctrl+Shift+T"],
                               lambda _=False: self.workspace.take(), "Hold this conversation")
        self.release_action = act("Release conversation", ["Ctrl+Shift+L"],
                                  lambda _=False: self.workspace.release(),
                                  "Let go of this conversation")
        self.transfer_action = act("Transfer to…", ["Ctrl+Shift+X"], self.transfer,
                                   "Hand this conversation to a colleague")
        self.status_actions = {
            status: act(text, keys, lambda _=False, s=status: self.set_status(s), tip)
            for status, text, keys, tip in (
                ("open", "Mark open", [], "Mark the conversation open"),
                ("waiting", "Mark waiting on customer", [],
                 "The next step is the customer's"),
                ("resolved", "Mark resolved", ["Ctrl+Shift+D"],
                 "Mark the conversation resolved (done)"))}
        self.note_action = act("Internal note", ["Ctrl+Shift+N"], self.write_note,
                               "Write a note only representatives see")
        self.search_action = act("Search conversations…", ["Ctrl+F", "Ctrl+Shift+F"],
                                 self.open_search, "Full-text search over every conversation")
        self.export_customer_action = act(
            "Export transcript (customer-visible)…", ["Ctrl+Shift+E"],
            lambda: self.export_transcript("customer"), "What the customer saw, as Markdown or PDF")
        self.export_internal_action = act(
            "Export transcript with notes (internal)…", [],
            lambda: self.export_transcript("internal"),
            "With notes, drafts and who decided each action, as Markdown or PDF")
        self.macros_action = act("Macros…", ["Ctrl+Shift+M"], self.open_macros,
                                 "Saved replies: type / and the name in a reply")
        self.preferences_action = act("Preferences…", ["Ctrl+,"], self.open_preferences,
                                      "Notifications and desk settings")
        bar.addAction(self.prev_action)
        bar.addAction(self.next_action)
        bar.addWidget(self.session_title)
        spacer = QWidget(bar)
        spacer.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Preferred)
        bar.addWidget(spacer)
        bar.addAction(self.approve_action)
        bar.addAction(self.reject_action)
        self.approve_action.setEnabled(False)
        self.reject_action.setEnabled(False)

    def _build_menus(self) -> None:
        bar = self.menuBar()
        file_menu = bar.addMenu("&File")
        self.open_link_action = QAction("Open another link…", self)
        self.open_link_action.setObjectName("openAnotherLink")
        self.open_link_action.setShortcut(QKeySequence("Ctrl+O"))
        self.open_link_action.setToolTip("Connect with a different agent link (Ctrl+O)")
        self.open_link_action.triggered.connect(self.open_link_requested)
        self.addAction(self.open_link_action)
        file_menu.addAction(self.open_link_action)
        file_menu.addSeparator()
        quit_action = file_menu.addAction("Close window")
        quit_action.setShortcut(QKeySequence("Ctrl+Q"))
        quit_action.triggered.connect(self.close)
        conv = bar.addMenu("&Conversation")
        for a in (self.send_action, self.regenerate_action, self.prev_action, self.next_action):
            conv.addAction(a)
        conv.addSeparator()
        conv.addAction(self.close_session_action)
        conv.addAction(self.reopen_session_action)
        conv.addSeparator()
        conv.addAction(self.export_customer_action)
        conv.addAction(self.export_internal_action)
        desk = bar.addMenu("&Desk")
        self.desk_menu = desk
        for a in (self.take_action, self.release_action, self.transfer_action):
            desk.addAction(a)
        desk.addSeparator()
        for a in self.status_actions.values():
            desk.addAction(a)
        desk.addSeparator()
        desk.addAction(self.note_action)
        desk.addAction(self.search_action)
        desk.addAction(self.macros_action)
        desk.addSeparator()
        desk.addAction(self.preferences_action)
        actions = bar.addMenu("&Actions")
        actions.addAction(self.approve_action)
        actions.addAction(self.reject_action)
        view = bar.addMenu("&View")
        self.view_menu = view
        self.focus_actions: dict[str, QAction] = {}
        order = ["inbox", "conversation", "suggestion", "articles", "actions", "customer",
                 "viewer", "kb"]
        for n, key in enumerate([k for k in order if k in self.docks], 1):
            dock = self.docks[key]
            toggle = dock.toggleViewAction()
            toggle.setObjectName(f"toggle_{key}")
            view.addAction(toggle)
            focus = QAction(f"Go to {dock.windowTitle()}", self)
            focus.setObjectName(f"focus_{key}")
            if n <= 9:
                focus.setShortcut(QKeySequence(f"Alt+{n}"))
            focus.triggered.connect(lambda _=False, k=key: self.focus_panel(k))
            self.addAction(focus)
            self.focus_actions[key] = focus
        view.addSeparator()
        go = view.addMenu("Go to panel")
        for a in self.focus_actions.values():
            go.addAction(a)
        view.addSeparator()
        self.reset_action = view.addAction("Reset layout")
        self.reset_action.setObjectName("resetLayout")
        self.reset_action.triggered.connect(self.reset_layout)
        help_menu = bar.addMenu("&Help")
        self.shortcuts_action = help_menu.addAction("Keyboard shortcuts")
        self.shortcuts_action.setObjectName("keyboardShortcuts")
        self.shortcuts_action.setShortcut(QKeySequence("F1"))
        self.shortcuts_action.triggered.connect(self.show_shortcuts)
        self.about_action = help_menu.addAction("About HITL Desk")
        self.about_action.setObjectName("about")
        self.about_action.triggered.connect(self.show_about)
        self.help_box: QWidget | None = None

    def _build_status_bar(self) -> None:
        sb = self.statusBar()
        self.connection_label = QLabel(self)
        self.connection_label.setObjectName("statusChip")
        self.assistant_label = ElideLabel("Assistant: unknown", self, max_hint=520)
        self.assistant_label.setObjectName("statusChip")
        # a wrong or revoked link must not leave a dead, empty workspace
        self.other_link_button = QPushButton("Open another link…", self)
        self.other_link_button.setObjectName("otherLinkButton")
        self.other_link_button.clicked.connect(self.open_link_requested)
        self.other_link_button.hide()
        sb.addPermanentWidget(self.assistant_label)
        sb.addPermanentWidget(self.other_link_button)
        sb.addPermanentWidget(self.connection_label)

    # ------------------------------------------------------------------ reactions

    def focus_panel(self, key: str) -> None:
        dock = self.docks.get(key)
        if dock is None:
            return
        if key in SESSION_PANELS:
            self._session_panel(key)
        dock.show()
        dock.raise_()
        widget = dock.widget()
        widget.setFocus(Qt.FocusReason.ShortcutFocusReason)

    def open_article(self, article_id: str, passage: str = "") -> None:
        """Show an article; highlight ``passage``, else the snippet the search matched."""
        view = self.workspace.current
        if not passage and view is not None:
            for turn in [view.articles_turn, *reversed(list(view.articles))]:
                for art in view.articles.get(turn or "", []):
                    if art.article_id == article_id and art.snippet:
                        passage = art.snippet
                        break
                if passage:
                    break
        self.docks["viewer"].show()
        self.docks["viewer"].raise_()
        self.article_viewer.open_article(article_id, passage)

    def send_reply(self) -> None:
        """Ctrl+Enter: sends the reply, or adds the note when the note box has focus."""
        if "conversation" in self._panels and self.conversation.note_box.editor.hasFocus():
            self.conversation.note_box.submit()
            return
        self.suggestion_editor.send()

    # ------------------------------------------------------------------ the desk (issue 16)

    def select_relative(self, step: int) -> None:
        """Previous / next conversation in the order the inbox shows (its filter)."""
        if "inbox" in self._panels:
            self.inbox.select_relative(step)
        else:
            self.workspace.select_relative(step)

    def transfer(self) -> None:
        if self.workspace.current is None:
            return
        self.focus_panel("conversation")
        self.conversation.desk_bar.popup_transfer()

    def set_status(self, status: str, session_id: str | None = None) -> None:
        """Open / waiting / resolved; resolving with pending actions asks first."""
        from hitl_desktop.ui.agent.conversation_bar import ask_status

        self.desk_question = ask_status(self, self.workspace, status, session_id)

    def _on_status_refused(self, session_id: str, status: str, pending: int) -> None:
        """The host still had actions pending (one arrived meanwhile): ask, then force."""
        from hitl_desktop.ui.agent.conversation_bar import ask_status

        self.desk_question = ask_status(self, self.workspace, status, session_id,
                                        pending=max(pending, 1))

    def write_note(self) -> None:
        if self.workspace.current is None:
            return
        self.focus_panel("conversation")
        self.conversation.show_note_box()

    def open_search(self) -> SearchDialog:
        if self.search_dialog is None:
            from hitl_desktop.ui.agent.search import SearchDialog

            self.search_dialog = SearchDialog(self.workspace, self)
            self.search_dialog.hit_opened.connect(self._on_hit_opened)
        self.search_dialog.start()
        return self.search_dialog

    def _on_hit_opened(self, session_id: str, seq: int) -> None:
        self.docks["conversation"].show()
        self.docks["conversation"].raise_()
        self.conversation.show_seq(session_id, seq)
        self.raise_()
        self.activateWindow()

    def ensure_exporter(self) -> TranscriptExporter:
        if self.exporter is None:
            from hitl_desktop.ui.agent.export import TranscriptExporter

            self.exporter = TranscriptExporter(self.workspace, self)
            self.exporter.exported.connect(
                lambda path: self.statusBar().showMessage(f"Exported to {path}", 8000))
            self.exporter.failed.connect(self._export_failed)
            # while the host sends it and a worker writes it: said in the status bar
            self.exporter.busy.connect(
                lambda what: self.statusBar().showMessage(what) if what
                else self.statusBar().clearMessage())
        return self.exporter

    def _export_failed(self, why: str) -> None:
        """A failed export is said where it cannot be missed (the representative asked
        for a file and has none): a message box, opened (never exec()'d), and the
        status bar."""
        from PySide6.QtWidgets import QMessageBox

        self.statusBar().showMessage(why, 15000)
        box = QMessageBox(QMessageBox.Icon.Warning, "Export failed",
                          f"{why}\n\nChoose another folder or free some space, then "
                          "export again.", QMessageBox.StandardButton.Ok, self)
        box.setObjectName("exportFailed")
        box.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        self.export_error_box = box
        box.open()

    def export_transcript(self, audience: str) -> None:
        self.ensure_exporter().start(audience)

    def open_macros(self) -> MacrosDialog:
        if self.macros_dialog is None:
            from hitl_desktop.ui.agent.macros import MacrosDialog

            self.macros_dialog = MacrosDialog(self.workspace, self)
        self.macros_dialog.start()
        return self.macros_dialog

    def open_preferences(self) -> PreferencesDialog:
        if self.preferences_dialog is None:
            from hitl_desktop.ui.agent.prefs import PreferencesDialog

            self.preferences_dialog = PreferencesDialog(self.preferences, self)
        self.preferences_dialog.show()
        self.preferences_dialog.raise_()
        return self.preferences_dialog

    def ensure_tray(self) -> TrayNotifier:
        if self.tray_notifier is None:
            from hitl_desktop.ui.agent.notify import TrayNotifier

            self.tray_notifier = TrayNotifier(self.notifier, self)
        return self.tray_notifier

    def _on_reps(self) -> None:
        """Desk actions only for a representative's desk link."""
        desk = self.workspace.you is not None
        for a in (self.take_action, self.release_action, self.transfer_action,
                  *self.status_actions.values(), self.search_action, self.macros_action):
            a.setEnabled(desk)
        if desk and self._sized and not self._desk_sized:
            # the welcome says this is a desk: room for its inbox filters (a default
            # layout only, once, right after start)
            self._desk_sized = True
            QTimer.singleShot(0, self, self._default_sizes)  # after the pending layout
        self._on_session(self.workspace.current_session_id or "")

    def regenerate_draft(self) -> None:
        self.suggestion_editor.regenerate()

    def approve_first(self) -> None:
        self.docks["actions"].show()
        self.docks["actions"].raise_()
        self.action_queue.approve_first()

    def reject_first(self) -> None:
        self.docks["actions"].show()
        self.docks["actions"].raise_()
        self.action_queue.reject_first()

    def close_session(self) -> None:
        """Asks first when something is pending (an action waiting for approval, a draft
        being written, an unsent reply); otherwise two presses: the status bar asks, a
        second press confirms."""
        view = self.workspace.current
        if view is None or view.summary.state == "closed":
            return
        pending = self._pending_work(view.session_id)
        if pending:
            sid, name = view.session_id, view.display_name
            self.question = ask(
                self, f"Close the conversation with {name}?",
                detail="Still open: " + "; ".join(pending) + ". The customer can no longer "
                       "write once it is closed (you can reopen it).",
                yes="Close conversation", no="Keep it open",
                on_yes=lambda: self._close_now(sid, name))
            return
        if self._close_armed == view.session_id:
            self._close_armed = None
            self.workspace.close_session(view.session_id)
            self.statusBar().showMessage(f"Closing the conversation with {view.display_name}…",
                                         5000)
            return
        self._close_armed = view.session_id
        self.statusBar().showMessage(
            f"Press Ctrl+Shift+W again to close the conversation with {view.display_name}.",
            5000)

    def _pending_work(self, session_id: str) -> list[str]:
        """What closing this session would cut short, in words."""
        view = self.workspace.session(session_id)
        if view is None:
            return []
        out = []
        n = len(view.pending_approvals)
        if n:
            out.append(f"{n} action{'s' if n > 1 else ''} waiting for approval "
                       "(closing cancels {})".format("them" if n > 1 else "it"))
        if view.draft is not None and view.draft.state == "streaming":
            out.append("the assistant is writing a draft")
        editor = self._panels.get("suggestion")
        if editor is not None and session_id == self.workspace.current_session_id \
                and getattr(editor, "user_edited", False) \
                and self.suggestion_editor.text().strip():
            out.append("your unsent reply")
        return out

    def _close_now(self, session_id: str, name: str) -> None:
        self._close_armed = None
        if self.workspace.close_session(session_id):
            self.statusBar().showMessage(f"Closing the conversation with {name}…", 5000)

    def reopen_session(self) -> None:
        view = self.workspace.current
        if view is not None and view.summary.state == "closed":
            self.workspace.reopen_session(view.session_id)
            self.statusBar().showMessage(
                f"Reopening the conversation with {view.display_name}…", 5000)

    def _update_title(self, *_args: object) -> None:
        """"(3) Alex Morgan — HITL Desk": the unread count (lines in other conversations,
        and in this one while the window is not focused)."""
        view = self.workspace.current
        unread = self.workspace.unread_total()
        badge = f"({unread}) " if unread else ""
        name = f"{view.display_name} — " if view is not None else ""
        self.setWindowTitle(f"{badge}{name}HITL Desk")

    def _on_session(self, session_id: str) -> None:
        view = self.workspace.session(session_id) if session_id else None
        self._close_armed = None
        if view is None:
            self.session_title.set_full_text("No conversation selected")
        else:
            title = view.display_name
            if view.summary.customer_id:
                title += f"  ·  {view.summary.customer_id}"
            if view.summary.state == "closed":
                title += "  ·  closed"
            self.session_title.set_full_text(title)
        self._update_title()
        self.close_session_action.setEnabled(view is not None
                                              and view.summary.state == "open")
        self.reopen_session_action.setEnabled(view is not None
                                              and view.summary.state == "closed")
        desk = self.workspace.you is not None and view is not None
        mine = view is not None and self.workspace.is_mine(view)
        open_ = view is not None and view.summary.state == "open"
        self.take_action.setEnabled(desk and open_ and not mine)
        self.release_action.setEnabled(desk and view is not None and view.assignee is not None)
        self.transfer_action.setEnabled(desk and open_)
        for status, a in self.status_actions.items():
            a.setEnabled(desk and view is not None and view.status != status)
        self.note_action.setEnabled(view is not None)
        self.export_customer_action.setEnabled(view is not None)
        self.export_internal_action.setEnabled(view is not None)
        self._on_approvals(session_id)

    def _on_session_updated(self, session_id: str) -> None:
        if session_id == self.workspace.current_session_id:
            self._on_session(session_id)
        else:
            self._update_title()

    def _on_approvals(self, session_id: str) -> None:
        view = self.workspace.current
        n = len(view.pending_approvals) if view else 0
        closed = view is not None and view.summary.state == "closed"
        self.approve_action.setEnabled(n > 0 and not closed)
        self.reject_action.setEnabled(n > 0 and not closed)
        why = " — the conversation is closed" if closed else ""
        self.approve_action.setToolTip(f"Approve the first pending action{why}")
        self.reject_action.setToolTip(f"Reject the first pending action{why}")
        title = f"Action queue ({n})" if n else "Action queue"
        self.docks["actions"].setWindowTitle(title)

    def _on_connection(self, state: str) -> None:
        text = CONNECTION_TEXT.get(state, state.capitalize())
        level = "ok" if text.startswith("●") else "busy" if "◌" in text else "bad"
        self.connection_label.setText(text)
        failed = state in ("failed", "revoked")
        self.other_link_button.setVisible(failed)
        why = self.workspace.connection_message if failed else ""
        self.connection_label.setToolTip(why)
        if why:  # what went wrong and what to do stays in view, not 8 s
            self.statusBar().showMessage(why)
        if self.connection_label.property("conn") != level:
            # a property the window's style sheet colours, not a per-widget style sheet
            # (each of those is parsed and cascaded on its own)
            self.connection_label.setProperty("conn", level)
            self.connection_label.style().unpolish(self.connection_label)
            self.connection_label.style().polish(self.connection_label)

    def _on_assistant(self, status: p.AssistantStatus) -> None:
        if status.is_ai:
            name = f"AI model {status.model}" if status.model else f"AI ({status.provider})"
            text = f"Assistant: {name}"
        else:
            text = "Offline assistant — not an AI model"
        if status.state in ("error", "unconfigured"):
            text += f" · {status.message or status.state}"
        elif status.is_ai and status.message:  # e.g. "drafts arrive whole" (unverified org)
            text += f" · {status.message}"
        self.assistant_label.set_full_text(text, tip=status.message or "")

    def _on_error(self, message: str) -> None:
        self.statusBar().showMessage(message, 8000)

    def shortcut_rows(self) -> list[tuple[str, str]]:
        """(what, keys) for every action with a shortcut, in menu order."""
        rows: list[tuple[str, str]] = []
        for action in self.actions():
            keys = [k.toString(QKeySequence.SequenceFormat.NativeText)
                    for k in action.shortcuts() if not k.isEmpty()]
            name = action.text().replace("&", "").strip(" ✓✕◀▶")
            if keys and name:
                rows.append((name, " or ".join(keys)))
        for action in (self.shortcuts_action,):
            rows.append((action.text(), action.shortcut().toString(
                QKeySequence.SequenceFormat.NativeText)))
        return rows

    def show_shortcuts(self) -> None:
        """Help → Keyboard shortcuts: every shortcut this window answers to."""
        # two pairs of columns: one pair (25 rows) made the box 712 px tall, more than a
        # 1366x768 laptop has under its title bar and panel (Close off the screen)
        rows = self.shortcut_rows()
        half = (len(rows) + 1) // 2

        def cells(row: tuple[str, str] | None) -> str:
            if row is None:
                return "<td></td><td></td>"
            return (f"<td style='padding:2px 12px 2px 0; white-space:nowrap'>"
                    f"{html.escape(row[0])}</td><td style='padding:2px 28px 2px 0; "
                    f"white-space:nowrap'><b>{html.escape(row[1])}</b></td>")

        table = "".join(
            "<tr>" + cells(rows[i]) + cells(rows[i + half] if i + half < len(rows) else None)
            + "</tr>" for i in range(half))
        self._help("Keyboard shortcuts", wide=True, body=(
                   "<p>In the suggested reply, <b>Ctrl+Enter</b> sends.<br>In an approval "
                   "card, the first Approve shows the exact call with <b>Run it</b> "
                   "focused:<br><b>Enter</b> (or pressing Approve again) runs it; "
                   f"Shift+Tab, Enter goes Back.</p><table>{table}</table>"))

    def show_about(self) -> None:
        from hitl_desktop import __version__

        self._help("About HITL Desk",
                   f"<p><b>HITL Desk {html.escape(__version__)}</b></p><p>An AI co-pilot "
                   "drafts every reply and proposes every action; you decide what reaches "
                   "the customer and what runs on their account.</p><p>Engine: "
                   f"{html.escape(self.assistant_label.full_text())}</p>")

    def _help(self, title: str, body: str, *, wide: bool = False) -> None:
        """A non-modal help box; ``wide``: its text may be as wide as a table needs
        (a message box otherwise wraps it at ~500 px, every cell on two lines)."""
        from PySide6.QtWidgets import QMessageBox

        if self.help_box is not None:
            self.help_box.close()
        box = QMessageBox(QMessageBox.Icon.Information, title, body,
                          QMessageBox.StandardButton.Close, self)
        box.setTextFormat(Qt.TextFormat.RichText)
        if wide:
            label = box.findChild(QLabel, "qt_msgbox_label")
            if label is not None:
                label.setWordWrap(False)
        box.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        box.setWindowModality(Qt.WindowModality.NonModal)
        box.destroyed.connect(lambda *_: setattr(self, "help_box", None))
        self.help_box = box
        box.show()

    def changeEvent(self, event: QEvent) -> None:
        """Follow the system's light/dark switch: re-derive the style, re-render HTML;
        tell the notifier whether the representative is looking."""
        super().changeEvent(event)
        if event.type() == QEvent.Type.ActivationChange:
            self.notifier.set_focused(self.isActiveWindow())
        if event.type() in (QEvent.Type.PaletteChange, QEvent.Type.ApplicationPaletteChange) \
                and not self._restyling and is_dark() != self._dark:
            self._restyling = True
            self._dark = is_dark()
            try:
                self.setStyleSheet(agent_style(self))
                if "conversation" in self._panels:
                    self.conversation.refresh()
                if "articles" in self._panels:
                    self.articles.refresh()
            finally:
                self._restyling = False

    def showEvent(self, event: QShowEvent) -> None:
        super().showEvent(event)
        if not self._sized:  # first show of a default layout: size it to the real window
            self._sized = True
            self._desk_sized = self.workspace.you is not None
            self._default_sizes()

    def closeEvent(self, event: QCloseEvent) -> None:
        self.save_layout()
        super().closeEvent(event)
        if event.isAccepted():
            if self.tray_notifier is not None:
                self.tray_notifier.hide()
            self.closed.emit()
