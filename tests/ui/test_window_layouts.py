"""Layouts that never break: what the host says cannot make a window wider than the screen.

Real widgets offscreen, fed real protocol messages (tests/ui/agent_feed.py). The
offscreen screen is 800x800, so "fits the screen on a first start" is checked
against that, and "stays within 1366x768" by resizing to it.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from PySide6.QtCore import QPoint, QRect, Qt
from PySide6.QtTest import QTest
from PySide6.QtWidgets import QApplication, QLabel, QTabBar, QWidget
from pytestqt.qtbot import QtBot

from hitl_desktop.client.workspace import Workspace
from hitl_desktop.core import protocol as p
from hitl_desktop.ui.agent.window import AgentWindow
from tests.ui.agent_feed import Feed, Sent, summary, tool_schema, welcome

pytestmark = pytest.mark.qt_log_ignore("This plugin does not support")

SMALL = (1366, 768)
LONG_ERROR = ("OpenAI rejected the API key (401): Incorrect API key provided: "
              + "sk-proj-" + "A1b2C3d4" * 40 + " " + "You can find your API key at "
              "https://platform.openai.com/account/api-keys. " * 40)[:2000]


@pytest.fixture
def ws() -> Workspace:
    model = Workspace(send=Sent())
    model.apply_welcome(welcome(summary("s1", "Alex Morgan")))
    model.select_session("s1")
    return model


@pytest.fixture
def window(qtbot: QtBot, ws: Workspace, tmp_path: Path) -> AgentWindow:
    win = AgentWindow(ws, config_dir=tmp_path, restore=False)
    qtbot.addWidget(win)
    win.resize(*SMALL)  # as a first start on a 1366x768 laptop sizes it
    win.show()
    qtbot.waitExposed(win)
    return win


def _settle(win: QWidget, size: tuple[int, int] = SMALL) -> None:
    app = QApplication.instance()
    assert app is not None
    for _ in range(3):
        win.resize(*size)
        app.processEvents()


def _inside(widget: QWidget, outer: QWidget) -> bool:
    """``widget`` is shown and lies entirely within ``outer``'s rectangle."""
    top_left = widget.mapTo(outer, QPoint(0, 0))
    rect = QRect(top_left, widget.size())
    return widget.isVisible() and QRect(QPoint(0, 0), outer.size()).contains(rect)


def test_first_start_fits_the_available_screen(qtbot: QtBot, ws: Workspace,
                                               tmp_path: Path) -> None:
    window = AgentWindow(ws, config_dir=tmp_path, restore=False)
    qtbot.addWidget(window)
    window.show()
    area = window.screen().availableGeometry()
    assert window.width() <= area.width() and window.height() <= area.height()
    assert window.minimumSizeHint().width() <= SMALL[0]


def test_a_2000_character_draft_error_wraps_and_keeps_the_window_on_screen(
        window: AgentWindow, ws: Workspace) -> None:
    feed = Feed(ws, "s1")
    feed(p.DraftStarted(turn_id="t1", reason="customer_message", provider="openai"))
    feed(p.DraftFailed(turn_id="t1", code=p.ErrorCode.ASSISTANT_UNAVAILABLE,
                       message=LONG_ERROR))
    _settle(window)
    assert len(LONG_ERROR) == 2000
    assert window.width() <= SMALL[0], window.width()
    assert window.minimumSizeHint().width() <= SMALL[0]
    ed = window.suggestion_editor
    assert ed.state_chip.full_text() == "Draft failed"
    assert ed.problem.isVisible() and ed.problem.toolTip() == LONG_ERROR
    assert "401" in ed.problem.text()
    # the column keeps a usable width: the editor and its buttons are not squeezed away
    assert ed.width() >= 300
    assert _inside(ed.send_button, window.docks["suggestion"])
    # a long engine status in the status bar elides with the full text on hover
    feed(p.AssistantStatus(provider="openai", model="gpt-5-mini", is_ai=True, state="error",
                           message=LONG_ERROR), None)
    _settle(window)
    assert window.width() <= SMALL[0]
    assert window.assistant_label.width() <= 600
    assert window.assistant_label.toolTip() != ""


def test_a_500_character_argument_keeps_run_it_back_and_the_diff_in_the_card(
        window: AgentWindow, ws: Workspace) -> None:
    feed = Feed(ws, "s1")
    feed.approval("a1", "issue_voucher",
                  {"user_id": "CUST1001", "amount": 500.0, "reason": "goodwill-" * 56 + "x"})
    _settle(window)
    queue = window.action_queue
    card = queue.first_card()
    assert card is not None
    assert len(card.approval.arguments["reason"]) >= 500
    card.form.field("amount").set_value(127.5)
    assert card.ask_approve()
    _settle(window)
    assert window.width() <= SMALL[0] and window.minimumSizeHint().width() <= SMALL[0]
    viewport = queue.scroll_area.viewport()
    # the card is no wider than the panel, and its confirmation shows everything
    assert card.mapTo(viewport, QPoint(0, 0)).x() + card.width() <= viewport.width()
    for part in (card.run_button, card.back_button, card.diff_label):
        assert _inside(part, viewport), part.objectName() or part.text()
        assert not part.visibleRegion().isEmpty()
    assert "500.0 → 127.5" in card.diff_label.text()
    # the long call scrolls inside its own box
    assert "goodwill-goodwill" in card.call_label.text()
    assert card.call_label.height() <= 170
    assert card.call_label.verticalScrollBar().maximum() > 0
    # the reject form: no horizontal scrolling either
    card.cancel_confirm()
    card.ask_reject()
    _settle(window)
    assert _inside(card.reject_confirm, viewport) and _inside(card.reason, viewport)


def test_a_long_customer_name_elides_in_the_toolbar(qtbot: QtBot, tmp_path: Path) -> None:
    model = Workspace(send=Sent())
    name = "Maximiliane Alexandra " * 15
    model.apply_welcome(welcome(summary("s1", name)))
    model.select_session("s1")
    win = AgentWindow(model, config_dir=tmp_path, restore=False)
    qtbot.addWidget(win)
    win.show()
    _settle(win)
    assert win.width() <= SMALL[0]
    assert win.session_title.full_text().startswith(name.strip()[:20])
    assert win.session_title.text().endswith("…")
    assert name.strip()[:20] in win.session_title.toolTip()


def test_orders_columns_show_their_headers_and_content(window: AgentWindow,
                                                       ws: Workspace) -> None:
    orders = [{"order_id": f"ORD100{i}", "status": "delivered", "total": 127.5,
               "ordered_on": "2026-01-15", "items": [{"name": "Trail running shoes"}]}
              for i in range(3)]
    Feed(ws, "s1")(p.CustomerDetails(customer={"customer_id": "CUST1001",
                                               "name": "Alex Morgan"}, orders=orders))
    _settle(window)
    table = window.customer.orders
    fm = table.horizontalHeader().fontMetrics()
    for col in range(table.columnCount()):
        header = table.horizontalHeaderItem(col).text()
        assert table.columnWidth(col) >= fm.horizontalAdvance(header) + 16, header
        cell = table.item(0, col).text()
        if col < table.columnCount() - 1:
            assert table.columnWidth(col) >= table.fontMetrics().horizontalAdvance(cell), cell


def test_snippets_keep_tool_names_and_headings_stay_calm(window: AgentWindow) -> None:
    from hitl_desktop.ui.agent.articles import plain_snippet

    assert plain_snippet("Use `create_return` or _this_ **now**") == \
        "Use create_return or this now"
    viewer = window.article_viewer
    viewer.show_content(p.ArticleContent(article_id="kb/returns", title="Returns", kind="kb",
                                         markdown="# Returns and refunds\n\nBody text."))
    doc = viewer.browser.document()
    heading = doc.begin()
    size = heading.charFormat().fontPointSize() or heading.begin().fragment().charFormat(
    ).fontPointSize()
    assert 0 < size <= viewer.browser.font().pointSizeF() * 1.35


def test_an_expanded_result_wraps_instead_of_scrolling_sideways(window: AgentWindow,
                                                                ws: Workspace) -> None:
    feed = Feed(ws, "s1")
    feed.customer("Where is my parcel? https://carrier.example/track/" + "Z9" * 60)
    feed(p.ToolCall(turn_id="t1", call_id="c1", name="get_order",
                    arguments={"order_id": "ORD1001"}, mode="auto"))
    feed(p.ToolResult(call_id="c1", name="get_order", ok=True,
                      output={"tracking_url": "https://carrier.example/" + "x1y2" * 120,
                              "note": "left at the door " * 30}))
    window.conversation.toggle("c1")
    _settle(window)
    browser = window.conversation.browser
    assert "tracking_url" in browser.toPlainText()
    assert browser.horizontalScrollBar().maximum() == 0
    assert window.width() <= SMALL[0]


def test_every_window_asks_for_no_more_than_the_screen(qtbot: QtBot) -> None:
    from hitl_desktop.ui.customer_window import CustomerWindow
    from hitl_desktop.ui.fit import fit_to_screen

    probe = QWidget()
    qtbot.addWidget(probe)
    area = probe.screen().availableGeometry()  # 800x800 offscreen
    assert fit_to_screen(probe, (1100, 780)) == (min(1100, area.width() - 24),
                                                 min(780, area.height() - 24))
    assert fit_to_screen(probe, (440, 660)) == (440, 660)  # small windows keep their size
    customer = CustomerWindow()
    qtbot.addWidget(customer)
    assert (customer.width(), customer.height()) == (440, 660)


def test_the_insights_window_fits_the_screen(qtbot: QtBot) -> None:
    """Host → Insights… opened 1180x860 on a 1366x768 screen (Xvfb, audit9): its
    tables were below the screen's edge. It fits now, and its body still scrolls."""
    from hitl_desktop.client.connection import HostConnection
    from hitl_desktop.core.links import InviteLink
    from hitl_desktop.ui.insights import InsightsWindow

    conn = HostConnection(InviteLink.parse("hitl://127.0.0.1:9/agent#abcd1234.0123456789abcdef"))
    win = InsightsWindow(conn)
    qtbot.addWidget(win)
    area = win.screen().availableGeometry()  # 800x800 offscreen
    assert win.height() <= area.height() - 24 and win.width() <= area.width() - 24
    assert win.minimumSizeHint().height() <= area.height() - 24


def _desk_window(qtbot: QtBot, tmp_path: Path, size: tuple[int, int],
                 sent: Sent | None = None) -> AgentWindow:
    """A representative's desk (``you`` set) with one pending approval, shown at ``size``."""
    ws = Workspace(send=sent or Sent())
    win = AgentWindow(ws, config_dir=tmp_path, restore=False)
    qtbot.addWidget(win)
    win.resize(*size)
    win.show()
    qtbot.waitExposed(win)
    you = p.RepRef(rep_id="t_sam", name="Sam")
    ws.apply_welcome(welcome(summary("s1", "Alex Morgan")).model_copy(update={
        "you": you, "reps": [p.RepInfo(rep_id="t_sam", name="Sam", online=True)]}))
    ws.select_session("s1")
    Feed(ws, "s1").approval("a1")
    _settle(win, size)
    return win


def test_a_desk_on_a_1366_screen_keeps_its_inbox_filters_in_one_row(
        qtbot: QtBot, tmp_path: Path) -> None:
    """The welcome says "desk" after the window is up: its default layout then makes the
    inbox as wide as the four filters in one row (they fold only in narrower windows)."""
    win = _desk_window(qtbot, tmp_path, (1366, 740))
    bar = win.inbox.filter_bar
    qtbot.waitUntil(lambda: bar.columns == 4, timeout=2000)
    for button in win.inbox.filter_buttons.values():
        assert _inside(button, win.docks["inbox"]), button.text()


def test_the_demos_agent_window_beside_the_customers_keeps_the_approval_card_whole(
        qtbot: QtBot, tmp_path: Path) -> None:
    """``./scripts/demo`` on a 1366x768 laptop puts the agent window (a desk: filters,
    Take/Release/Transfer) beside the customer's, ~904x744. The desk's filter row and
    bar once held the inbox at 358 px and the conversation at 383 px, leaving the action
    queue 161 px: the card's "If approved: …" and its Approve button were cut off. The
    filters fold to two rows and the holder label may shrink to nothing instead."""
    win = _desk_window(qtbot, tmp_path, (904, 744))
    assert win.inbox.filter_bar.columns == 2
    queue = win.action_queue
    card = queue.first_card()
    assert card is not None
    viewport = queue.scroll_area.viewport()
    assert card.mapTo(viewport, QPoint(0, 0)).x() + card.width() <= viewport.width()
    assert _inside(card.approve_button, viewport)
    assert card.width() >= card.minimumSizeHint().width()
    inbox = win.docks["inbox"]
    for button in win.inbox.filter_buttons.values():
        assert _inside(button, inbox), button.text()
    bar = win.findChild(QWidget, "deskBar")
    assert bar is not None
    for name in ("takeButton", "releaseButton", "transferButton", "statusButton", "noteButton"):
        button = bar.findChild(QWidget, name)
        assert button is not None and _inside(button, win.docks["conversation"]), name


def _real_approval(ws: Workspace) -> None:
    """cancel_order as the host proposes it: description, dry-run summary, provenance."""
    Feed(ws, "s1")(p.ApprovalCreated(
        approval_id="a9", call_id="call_a9", tool="cancel_order",
        description=("Cancel an order that has not shipped yet (status pending or "
                     "processing). Shipped, delivered or already cancelled orders cannot "
                     "be cancelled; the payment is refunded."),
        arguments={"order_id": "ORD1001"}, parameters_schema=tool_schema("cancel_order"),
        summary="Cancel ORD1001 (pending, $158.95) and refund $158.95 to Visa ending in 4242",
        provenance=p.Provenance(quote="Help me cancel order ORD1001"),
        expires_at=time.time() + 3600))


def test_approving_from_the_keyboard_on_a_1366_desk_shows_run_it_and_enter_runs_it(
        qtbot: QtBot, tmp_path: Path) -> None:
    """Ctrl+Shift+A on a 1366x768 desk (seen under Xvfb): the confirmation opened with
    Run it focused but scrolled out of the queue (the shortcut scrolled back to the
    card's top), and Enter on the focused Run it did nothing (a push button outside a
    dialog takes only Space). A keyboard-only representative could not see what the
    key would do, nor use the key everyone tries first."""
    sent = Sent()
    win = _desk_window(qtbot, tmp_path, (1366, 740), sent)
    ws = win.workspace
    _real_approval(ws)
    _settle(win, (1366, 740))
    Feed(ws, "s1")(p.ApprovalUpdated(approval_id="a1", state="cancelled"))
    _settle(win, (1366, 740))
    queue = win.action_queue
    card = queue.first_card()
    assert card is not None and card.approval.approval_id == "a9"
    win.approve_first()
    _settle(win, (1366, 740))
    viewport = queue.scroll_area.viewport()
    assert card.confirm.isVisible()
    assert QApplication.focusWidget() is card.run_button
    for part in (card.run_button, card.back_button):
        assert _inside(part, viewport), part.text()
    QTest.keyClick(card.run_button, Qt.Key.Key_Return)
    assert [m.approval_id for m in sent.of("approval.approve")] == ["a9"]  # type: ignore[attr-defined]


def test_rejecting_from_the_keyboard_shows_the_reason_box_and_enter_on_back_goes_back(
        qtbot: QtBot, tmp_path: Path) -> None:
    """Ctrl+Shift+R: the reason box is in view and focused; Enter on a focused Back
    (Tab from the box) returns to the card's buttons."""
    win = _desk_window(qtbot, tmp_path, (1366, 740))
    queue = win.action_queue
    card = queue.first_card()
    assert card is not None
    win.reject_first()
    _settle(win, (1366, 740))
    viewport = queue.scroll_area.viewport()
    assert QApplication.focusWidget() is card.reason
    assert _inside(card.reason, viewport) and _inside(card.reject_confirm, viewport)
    QTest.keyClick(card.reject_back, Qt.Key.Key_Return)
    assert not card.reject_panel.isVisible() and card.buttons.isVisible()


DEMO_PROFILE = {"customer_id": "CUST1001", "name": "Alex Morgan",
                "email": "alex.morgan@example.com", "phone": "+1 555 0100 101",
                "address": "12 Harbor Lane, Portland, OR 97201, USA", "tier": "gold",
                "member_since": "2024-06-14", "order_count": 8, "open_tickets": 0}


def _demo_desk(qtbot: QtBot, tmp_path: Path, size: tuple[int, int]) -> AgentWindow:
    """The demo's desk as ./scripts/demo shows it: a customer profile with orders."""
    win = _desk_window(qtbot, tmp_path, size)
    orders = [{"order_id": f"ORD100{i}", "status": "processing", "total": 111.99,
               "ordered_on": "2026-12-01", "items": [{"name": "Pulse Fitness Watch"}]}
              for i in range(8)]
    Feed(win.workspace, "s1")(p.CustomerDetails(customer=DEMO_PROFILE, orders=orders))
    _settle(win, size)
    return win


def _tab_texts_cut(win: AgentWindow) -> list[str]:
    """The dock tabs whose title does not fit their tab (shown as "Relevant a…")."""
    cut = []
    for bar in win.findChildren(QTabBar):
        if not bar.isVisible() or bar.count() < 2:
            continue
        # squeezed tabs are narrower, together, than the bar would make them
        shown = sum(bar.tabRect(i).width() for i in range(bar.count()))
        right = bar.mapTo(win, bar.tabRect(bar.count() - 1).topRight()).x()
        if shown < bar.sizeHint().width() - 2 or right > win.width():
            cut.extend(bar.tabText(i) for i in range(bar.count()))
    return cut


@pytest.mark.parametrize("size", [(944, 731), (1300, 820), (1440, 900)])
def test_the_demos_agent_window_cuts_no_tab_hint_or_label(
        qtbot: QtBot, tmp_path: Path, size: tuple[int, int]) -> None:
    """./scripts/demo on 1366x768 gives the agent window ~944 px (1300 or 1440 on
    1920x1080). There the dock tabs read "Relevant a…", "A…", "Knowledge…", the reply's
    "Ctrl+En…", the desk bar's "Una…", the co-pilot line "…e.g. “offer a $10 vou…",
    History "Det" and the profile's last lines were cut in half."""
    win = _demo_desk(qtbot, tmp_path, size)
    assert _tab_texts_cut(win) == []
    editor = win.suggestion_editor
    hint = next(label for label in editor.findChildren(QLabel)
                if label.text().startswith("Ctrl+En"))
    assert hint.text() == "Ctrl+Enter to send"
    assert hint.width() >= hint.sizeHint().width()
    assert _inside(hint, win.docks["suggestion"])
    holder = win.conversation.desk_bar.holder
    assert holder.full_text() == "Unassigned · Open"
    assert holder.text() == holder.full_text() and _inside(holder, win.docks["conversation"])
    line = editor.steer.line
    placeholder = line.placeholderText()
    assert line.fontMetrics().horizontalAdvance(placeholder) <= line.width() - 30, placeholder
    Feed(win.workspace, "s1")(p.ApprovalUpdated(
        approval_id="a1", state="executed", by="Sam",
        result={"message": "Order ORD1001 is cancelled."}))
    _settle(win, size)
    history = win.action_queue.history
    fm = history.fontMetrics()
    for col in (1, 2, 3):  # Action, Outcome, Details: every header whole
        title = history.headerItem().text(col)
        assert history.header().sectionSize(col) >= fm.horizontalAdvance(title) + 10, title
    assert sum(history.header().sectionSize(c) for c in range(4)) <= history.viewport().width()
    profile = win.customer.profile
    assert profile.height() >= profile.heightForWidth(profile.width())
    assert profile.width() >= profile.minimumSizeHint().width()


def test_the_demos_tabs_are_whole_before_the_customer_is_known(
        qtbot: QtBot, tmp_path: Path) -> None:
    """Connecting, before any profile has widened the left column, the Customer and
    Knowledge base tabs read "Custo…" and "Knowledge b…" (Xvfb, 1366x768)."""
    win = AgentWindow(Workspace(send=Sent()), config_dir=tmp_path, restore=False)
    qtbot.addWidget(win)
    win.resize(904, 731)  # the demo's agent window beside a 430 px customer window
    win.show()
    qtbot.waitExposed(win)
    _settle(win, (904, 731))
    assert win.docks["kb"] in win.tabifiedDockWidgets(win.docks["customer"])
    assert _tab_texts_cut(win) == []
