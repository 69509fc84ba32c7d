"""The agent workspace model: protocol messages in, state and signals out, intents out."""

from __future__ import annotations

import time

import pytest
from pytestqt.qtbot import QtBot

from hitl_desktop.client import workspace as wsmod
from hitl_desktop.client.workspace import ChatItem, NoteItem, ToolItem, Workspace
from hitl_desktop.core import protocol as p
from tests.ui.agent_feed import Feed, Sent, summary, welcome


@pytest.fixture
def ws(qtbot: QtBot, sent: Sent) -> Workspace:
    model = Workspace(send=sent)
    model.apply_welcome(welcome(summary("s1", "Alex Morgan"), summary("s2", "Priya Shah",
                                                                      customer_id="CUST1002")))
    return model


@pytest.fixture
def feed(ws: Workspace) -> Feed:
    return Feed(ws, "s1")


def test_welcome_lists_sessions_selects_one_and_asks_for_customer(ws: Workspace,
                                                                  sent: Sent) -> None:
    assert {s.session_id for s in ws.sessions()} == {"s1", "s2"}
    assert ws.current_session_id in {"s1", "s2"}
    assert [pl for pl in sent.of("customer.get")], "selecting a session requests its customer"
    assert sent.items[0][2] == ws.current_session_id


def test_inbox_orders_open_sessions_by_latest_activity(qtbot: QtBot) -> None:
    now = time.time()
    ws = Workspace(send=Sent())
    ws.apply_welcome(welcome(
        summary("old", "A", last_at=now - 500), summary("new", "B", last_at=now - 5),
        summary("closed", "C", state="closed", last_at=now)))
    assert [s.session_id for s in ws.sessions()] == ["new", "old", "closed"]
    ws.select_session("new")
    ws.select_relative(1)
    assert ws.current_session_id == "old"
    ws.select_relative(-1)
    ws.select_relative(-1)
    assert ws.current_session_id == "closed"  # wraps around


def test_customer_message_updates_transcript_summary_and_unread(ws: Workspace, feed: Feed,
                                                                qtbot: QtBot) -> None:
    ws.select_session("s1")
    with qtbot.waitSignal(ws.session_updated, check_params_cb=lambda sid: sid == "s2"):
        feed.customer("Where is my parcel?", session="s2")
    s2 = ws.session("s2")
    assert s2 is not None and s2.unread == 1
    assert s2.summary.last_message == "Where is my parcel?"
    feed.customer("How can I cancel my order?")
    s1 = ws.session("s1")
    assert s1 is not None and s1.unread == 0  # the open session is being read
    assert isinstance(s1.transcript[-1], ChatItem)
    assert s1.transcript[-1].role == "customer"
    ws.select_session("s2")
    assert s2.unread == 0


def test_history_replayed_on_connect_is_not_unread(qtbot: QtBot) -> None:
    ws = Workspace(send=Sent())
    ws.apply_welcome(welcome(summary("s1", last_seq=3), summary("s2", last_seq=2)))
    ws.select_session("s1")
    feed = Feed(ws, "s2")
    feed(p.SessionOpened(summary=summary("s2", last_seq=2), greeting="Hi!"))
    feed.customer("old question")  # seq 2: history
    feed.customer("new question")  # seq 3: new
    s2 = ws.session("s2")
    assert s2 is not None and s2.unread == 1
    notes = [i.text for i in s2.transcript if isinstance(i, NoteItem)]
    assert notes == ["Session opened", "Greeting: Hi!"]


def test_replayed_chat_message_is_not_duplicated(ws: Workspace, feed: Feed) -> None:
    feed.customer("hello", mid="m1")
    feed.customer("hello", mid="m1", seq=1)
    s1 = ws.session("s1")
    assert s1 is not None
    assert len([i for i in s1.transcript if isinstance(i, ChatItem)]) == 1


def test_draft_streams_and_is_coalesced(ws: Workspace, feed: Feed, qtbot: QtBot) -> None:
    emitted: list[str] = []
    ws.draft_changed.connect(emitted.append)
    feed(p.DraftStarted(turn_id="t1", reason="customer_message", provider="offline"))
    assert emitted == ["s1"]  # state changes are immediate
    text = "You can cancel an order while it is pending or processing. " * 4
    feed.stream("t1", text, chunk=3)
    draft = ws.session("s1").draft  # type: ignore[union-attr]
    assert draft is not None and draft.text == text and draft.state == "streaming"
    assert emitted == ["s1"], "deltas are coalesced, not emitted one by one"
    qtbot.waitUntil(lambda: len(emitted) == 2, timeout=1000)
    assert emitted == ["s1", "s1"]  # one update for ~80 deltas


def test_duplicate_and_overlapping_deltas_are_ignored(ws: Workspace, feed: Feed) -> None:
    feed(p.DraftStarted(turn_id="t1", reason="customer_message", provider="offline"))
    feed(p.DraftDelta(turn_id="t1", offset=0, text="Hello "))
    feed(p.DraftDelta(turn_id="t1", offset=0, text="Hello "))  # duplicate
    feed(p.DraftDelta(turn_id="t1", offset=3, text="lo world"))  # overlaps by 3
    feed(p.DraftDelta(turn_id="t1", offset=6, text="wor"))  # already have it
    draft = ws.session("s1").draft  # type: ignore[union-attr]
    assert draft is not None and draft.text == "Hello world"
    assert not draft.gap


def test_delta_gap_is_detected_and_repaired_by_completed(ws: Workspace, feed: Feed,
                                                         qtbot: QtBot) -> None:
    feed(p.DraftStarted(turn_id="t1", reason="customer_message", provider="offline"))
    feed(p.DraftDelta(turn_id="t1", offset=0, text="Hello "))
    with qtbot.waitSignal(ws.draft_gap) as blocker:
        feed(p.DraftDelta(turn_id="t1", offset=11, text=" again"))  # "world" went missing
    assert blocker.args == ["s1", "t1"]
    draft = ws.session("s1").draft  # type: ignore[union-attr]
    assert draft is not None and draft.gap and draft.text == "Hello "
    feed(p.DraftDelta(turn_id="t1", offset=17, text="!"))  # still cannot be placed
    assert draft.text == "Hello "
    cites = [p.Citation(article_id="kb/cancel-order", title="Cancelling an order")]
    feed(p.DraftCompleted(turn_id="t1", text="Hello world again!", citations=cites))
    assert draft.text == "Hello world again!" and draft.state == "completed"
    assert not draft.gap and draft.citations[0].article_id == "kb/cancel-order"


def test_catch_up_delta_after_a_reconnect_closes_the_gap(ws: Workspace, feed: Feed) -> None:
    feed(p.DraftStarted(turn_id="t1", reason="customer_message", provider="offline"))
    feed(p.DraftDelta(turn_id="t1", offset=0, text="Hello "))
    feed(p.DraftDelta(turn_id="t1", offset=11, text=" again"))  # lost "world" in the drop
    draft = ws.session("s1").draft  # type: ignore[union-attr]
    assert draft is not None and draft.gap
    feed(p.DraftDelta(turn_id="t1", offset=0, text="Hello world again"))  # text so far
    assert draft.text == "Hello world again" and not draft.gap
    feed(p.DraftDelta(turn_id="t1", offset=17, text="!"))
    assert draft.text == "Hello world again!"


def test_joining_mid_draft_adopts_the_turn(ws: Workspace, feed: Feed) -> None:
    feed(p.DraftDelta(turn_id="t9", offset=0, text="Partial text so far"))
    draft = ws.session("s1").draft  # type: ignore[union-attr]
    assert draft is not None and draft.turn_id == "t9" and draft.text == "Partial text so far"


def test_new_turn_replaces_draft_and_late_deltas_of_old_turn_are_dropped(
        ws: Workspace, feed: Feed) -> None:
    feed(p.DraftStarted(turn_id="t1", reason="customer_message", provider="offline"))
    feed(p.DraftDelta(turn_id="t1", offset=0, text="First"))
    feed(p.DraftStarted(turn_id="t2", reason="customer_message", provider="offline"))
    feed(p.DraftDelta(turn_id="t1", offset=5, text=" late"))
    feed(p.DraftDelta(turn_id="t2", offset=0, text="Second"))
    draft = ws.session("s1").draft  # type: ignore[union-attr]
    assert draft is not None and draft.turn_id == "t2" and draft.text == "Second"


def test_stale_and_failed_drafts(ws: Workspace, feed: Feed, qtbot: QtBot) -> None:
    feed(p.DraftStarted(turn_id="t1", reason="customer_message", provider="offline"))
    feed(p.DraftCompleted(turn_id="t1", text="Answer"))
    with qtbot.waitSignal(ws.draft_changed):
        feed(p.DraftStale(turn_id="t1", reason="the customer wrote again"))
    draft = ws.session("s1").draft  # type: ignore[union-attr]
    assert draft is not None and draft.state == "stale"
    assert draft.stale_reason == "the customer wrote again"
    feed(p.DraftStale(turn_id="other", reason="x"))  # unknown turn: ignored
    assert draft.state == "stale"
    feed(p.DraftStarted(turn_id="t2", reason="customer_message", provider="openai"))
    feed(p.DraftFailed(turn_id="t2", code=p.ErrorCode.ASSISTANT_UNAVAILABLE,
                       message="rate limited, try again"))
    d2 = ws.session("s1").draft  # type: ignore[union-attr]
    assert d2 is not None and d2.state == "failed" and d2.error == "rate limited, try again"


def test_sent_draft_is_marked_sent(ws: Workspace, feed: Feed, sent: Sent) -> None:
    ws.select_session("s1")
    feed(p.DraftStarted(turn_id="t1", reason="customer_message", provider="offline"))
    feed(p.DraftCompleted(turn_id="t1", text="Answer"))
    assert ws.send_message("Answer, edited", draft_id="t1")
    msg = sent.of("chat.send")[-1]
    assert isinstance(msg, p.ChatSend) and msg.draft_id == "t1" and msg.text == "Answer, edited"
    assert sent.items[-1][2] == "s1"
    feed.agent("Answer, edited", draft_id="t1")
    assert ws.session("s1").draft.state == "sent"  # type: ignore[union-attr]


def test_articles_per_turn_ranked(ws: Workspace, feed: Feed, qtbot: QtBot) -> None:
    arts = [p.Article(article_id=f"kb/a{i}", title=f"A{i}", kind="kb", snippet="s", score=s)
            for i, s in enumerate([0.2, 0.9, 0.5])]
    with qtbot.waitSignal(ws.articles_changed):
        feed(p.ArticlesFound(turn_id="t1", articles=arts))
    s1 = ws.session("s1")
    assert s1 is not None
    assert [a.article_id for a in s1.current_articles] == ["kb/a1", "kb/a2", "kb/a0"]
    feed(p.ArticlesFound(turn_id="t2", articles=arts[:1]))
    assert [a.article_id for a in s1.current_articles] == ["kb/a0"]
    assert len(s1.articles["t1"]) == 3  # earlier turns are kept


def test_tool_call_and_result_form_one_compact_item(ws: Workspace, feed: Feed) -> None:
    feed(p.ToolCall(turn_id="t1", call_id="c1", name="get_order",
                    arguments={"order_id": "ORD1001"}, mode="auto"))
    feed(p.ToolResult(call_id="c1", name="get_order", ok=True, output={"status": "pending"}))
    s1 = ws.session("s1")
    assert s1 is not None
    tools = [i for i in s1.transcript if isinstance(i, ToolItem)]
    assert len(tools) == 1
    assert tools[0].ok is True and tools[0].output == {"status": "pending"}
    assert tools[0].arguments == {"order_id": "ORD1001"}


def test_approval_lifecycle(ws: Workspace, feed: Feed, sent: Sent, qtbot: QtBot) -> None:
    ws.select_session("s1")
    with qtbot.waitSignal(ws.approvals_changed):
        feed.approval("a1")
    s1 = ws.session("s1")
    assert s1 is not None
    assert [a.approval_id for a in s1.pending_approvals] == ["a1"]
    assert s1.summary.pending_approvals == 1
    assert s1.pending_approvals[0].schema["properties"]["order_id"]["type"] == "string"
    assert ws.approve("a1", {"order_id": "ORD1008"})
    msg = sent.of("approval.approve")[-1]
    assert isinstance(msg, p.ApprovalApprove) and msg.arguments == {"order_id": "ORD1008"}
    before = len(sent.of("customer.get"))
    feed(p.ApprovalUpdated(approval_id="a1", state="executed", by="Sam",
                           arguments={"order_id": "ORD1008"}, result={"status": "cancelled"}))
    assert s1.pending_approvals == [] and s1.summary.pending_approvals == 0
    hist = s1.approval_history
    assert hist[0].state == "executed" and hist[0].result == {"status": "cancelled"}
    assert hist[0].final_arguments == {"order_id": "ORD1008"}
    assert len(sent.of("customer.get")) == before + 1, "customer refreshed after an action"


def test_reject_needs_a_reason_and_failed_expired_go_to_history(
        ws: Workspace, feed: Feed, sent: Sent) -> None:
    ws.select_session("s1")
    feed.approval("a1")
    feed.approval("a2", "reset_password", {"user_id": "CUST1001"})
    feed.approval("a3", "issue_voucher", {"user_id": "CUST1001", "amount": 10, "reason": "x"})
    assert not ws.reject("a1", "   ")
    assert sent.of("approval.reject") == []
    assert ws.reject("a1", "Order already shipped")
    msg = sent.of("approval.reject")[-1]
    assert isinstance(msg, p.ApprovalReject) and msg.reason == "Order already shipped"
    feed(p.ApprovalUpdated(approval_id="a1", state="rejected", by="Sam",
                           reason="Order already shipped"))
    feed(p.ApprovalUpdated(approval_id="a2", state="failed", error="unknown customer"))
    feed(p.ApprovalUpdated(approval_id="a3", state="expired"))
    s1 = ws.session("s1")
    assert s1 is not None and s1.pending_approvals == []
    states = {a.approval_id: a.state for a in s1.approval_history}
    assert states == {"a1": "rejected", "a2": "failed", "a3": "expired"}
    assert next(a for a in s1.approval_history if a.approval_id == "a2").error == "unknown customer"


def test_intents_regenerate_discard_and_lookups(ws: Workspace, feed: Feed, sent: Sent,
                                                qtbot: QtBot) -> None:
    ws.select_session("s1")
    feed(p.DraftStarted(turn_id="t1", reason="customer_message", provider="offline"))
    assert ws.regenerate()
    assert sent.items[-1][0] == "draft.regenerate" and sent.items[-1][2] == "s1"
    assert ws.discard()
    msg = sent.of("draft.discard")[-1]
    assert isinstance(msg, p.DraftDiscard) and msg.turn_id == "t1"
    assert ws.session("s1").draft.state == "discarded"  # type: ignore[union-attr]
    ws.request_article("kb/cancel-order")
    ws.search_kb("refund", kind="faq", limit=5)
    art = sent.of("article.get")[-1]
    kb = sent.of("kb.search")[-1]
    assert isinstance(art, p.ArticleGet) and art.article_id == "kb/cancel-order"
    assert isinstance(kb, p.KbSearch) and kb.kind == "faq" and kb.limit == 5
    with qtbot.waitSignal(ws.article_loaded) as blocker:
        feed(p.ArticleContent(article_id="kb/cancel-order", title="Cancel", kind="kb",
                              markdown="# Cancel"), None)
    assert blocker.args[0].title == "Cancel"
    with qtbot.waitSignal(ws.kb_results):
        feed(p.KbResults(query="refund", articles=[]), None)


def test_customer_details_status_and_errors(ws: Workspace, feed: Feed, qtbot: QtBot) -> None:
    with qtbot.waitSignal(ws.customer_changed):
        feed(p.CustomerDetails(customer={"name": "Alex Morgan"}, orders=[{"order_id": "O1"}]))
    assert ws.session("s1").customer.orders[0]["order_id"] == "O1"  # type: ignore[union-attr]
    with qtbot.waitSignal(ws.assistant_status_changed):
        feed(p.AssistantStatus(provider="offline", model=None, is_ai=False, state="ready"), None)
    assert ws.assistant_status is not None and not ws.assistant_status.is_ai
    with qtbot.waitSignal(ws.error_occurred) as blocker:
        feed(p.ErrorPayload(code=p.ErrorCode.FORBIDDEN, message="not allowed"), None)
    assert blocker.args == ["not allowed"]


def test_session_closed_and_typing(ws: Workspace, feed: Feed, qtbot: QtBot) -> None:
    with qtbot.waitSignal(ws.typing_changed):
        feed(p.TypingState(role=p.Role.CUSTOMER, active=True))
    assert ws.session("s1").customer_typing  # type: ignore[union-attr]
    feed(p.SessionClosed(by="customer", reason="done"))
    s1 = ws.session("s1")
    assert s1 is not None and s1.summary.state == "closed"
    assert isinstance(s1.transcript[-1], NoteItem) and "closed" in s1.transcript[-1].text


def test_unknown_session_message_creates_a_placeholder(ws: Workspace, feed: Feed) -> None:
    feed.customer("hi from a new session", session="s9")
    assert ws.session("s9") is not None


def test_not_connected_reports_instead_of_crashing(qtbot: QtBot) -> None:
    ws = Workspace()
    ws.apply_welcome(welcome(summary("s1")))
    with qtbot.waitSignal(ws.error_occurred):
        assert not ws.send_message("hello")


def test_coalesce_interval_is_within_budget() -> None:
    assert 30 <= wsmod.DRAFT_COALESCE_MS <= 50


def test_approval_outcome_shows_on_its_tool_call(ws: Workspace, feed: Feed) -> None:
    feed(p.ToolCall(turn_id="t1", call_id="call_a1", name="cancel_order",
                    arguments={"order_id": "ORD1001"}, mode="approval"))
    feed.approval("a1")  # call_id call_a1
    feed(p.ToolCall(turn_id="t1", call_id="call_a2", name="reset_password",
                    arguments={"user_id": "CUST1001"}, mode="approval"))
    feed.approval("a2", "reset_password", {"user_id": "CUST1001"})
    feed(p.ApprovalUpdated(approval_id="a1", state="executed", by="Sam",
                           arguments={"order_id": "ORD1008"}, result={"ok": True}))
    feed(p.ApprovalUpdated(approval_id="a2", state="rejected", by="Sam", reason="not asked"))
    s1 = ws.session("s1")
    assert s1 is not None
    tools = {i.call_id: i for i in s1.transcript if isinstance(i, ToolItem)}
    assert tools["call_a1"].ok is True and tools["call_a1"].outcome == "executed"
    assert tools["call_a1"].arguments == {"order_id": "ORD1008"}  # what really ran
    assert tools["call_a2"].ok is False and tools["call_a2"].outcome == "rejected"
    assert tools["call_a2"].output is not None
    assert tools["call_a2"].output["reason"] == "not asked"


def test_new_message_moves_its_session_to_the_top(qtbot: QtBot) -> None:
    now = time.time()
    ws = Workspace(send=Sent())
    ws.apply_welcome(welcome(summary("a", "A", last_at=now - 50),
                             summary("b", "B", last_at=now - 500)))
    assert [s.session_id for s in ws.sessions()] == ["a", "b"]
    with qtbot.waitSignal(ws.sessions_changed):
        Feed(ws, "b").customer("news")
    assert [s.session_id for s in ws.sessions()] == ["b", "a"]
    changes: list[int] = []
    ws.sessions_changed.connect(lambda: changes.append(1))
    Feed(ws, "b").customer("more news")  # already on top: no inbox rebuild
    assert changes == []
