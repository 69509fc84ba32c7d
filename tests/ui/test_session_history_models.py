"""Issue 18 item 2 in the desk's model: a session opened newest first (session.history)
and older pages put before it as the representative scrolls up ends up exactly as if its
whole history had been replayed oldest first — chat lines, notes, tool calls, approvals
decided in a later page than they were proposed, drafts started in one page and
finished in the next — whatever the page boundaries, with live frames arriving while
older pages are on the way. Fed through the wire encoding, no widgets."""

from __future__ import annotations

import json
import time
from typing import Any

from hitl_desktop.client.connection import HistoryPage
from hitl_desktop.client.workspace import (
    ChatItem,
    InternalNote,
    NoteItem,
    ToolItem,
    Workspace,
)
from hitl_desktop.core import protocol as p
from tests.ui.agent_feed import Sent, summary

SID = "s_long"
Frame = tuple[p.Envelope, p.Payload]


def _frames() -> list[Frame]:
    """A conversation with everything a page boundary can cut through."""
    now = time.time() - 3600
    out: list[Frame] = []

    def add(payload: p.Payload) -> None:
        seq = len(out) + 1
        raw = p.encode(p.host_type(payload), payload, session=SID, seq=seq, ts=now + seq)
        env, decoded, _ = p.decode_history_frame(json.loads(raw))
        out.append((env, decoded))

    cust = p.Author(role=p.Role.CUSTOMER, name="Priya")
    agent = p.Author(role=p.Role.AGENT, name="Sam")
    add(p.SessionOpened(summary=summary(SID, "Priya"), greeting="Hi there"))
    for turn in range(6):
        t = f"t{turn}"
        add(p.ChatMessage(message_id=f"c{turn}", author=cust, text=f"question {turn}"))
        add(p.DraftStarted(turn_id=t, reason="customer_message", provider="offline"))
        add(p.ArticlesFound(turn_id=t, articles=[p.Article(
            article_id=f"kb/{turn}", title=f"Article {turn}", kind="kb", snippet="s",
            score=0.5)]))
        if turn in (1, 4):  # an action proposed, decided a few frames later
            add(p.ToolCall(turn_id=t, call_id=f"call{turn}", name="cancel_order",
                           arguments={"order_id": f"ORD10{turn}"}, mode="approval"))
            add(p.ApprovalCreated(approval_id=f"a{turn}", call_id=f"call{turn}",
                                  tool="cancel_order", description=f"Cancel ORD10{turn}",
                                  arguments={"order_id": f"ORD10{turn}"},
                                  parameters_schema={"type": "object"}, expires_at=None))
        if turn == 2:  # an auto tool whose result comes a frame later
            add(p.ToolCall(turn_id=t, call_id="look2", name="get_order",
                           arguments={"order_id": "ORD102"}, mode="auto"))
            add(p.ToolResult(call_id="look2", name="get_order", ok=True,
                             output={"status": "shipped"}))
        if turn == 3:  # a draft that went stale
            add(p.DraftStale(turn_id=t, reason="replaced"))
            add(p.TurnEnded(turn_id=t, outcome="stale", reason="replaced"))
            continue
        add(p.DraftCompleted(turn_id=t, text=f"answer {turn}"))
        add(p.TurnEnded(turn_id=t, outcome="completed", reason="done"))
        if turn == 2:
            add(p.ApprovalUpdated(approval_id="a1", state="executed", by="Sam",
                                  result={"ok": True, "status": "cancelled"}))
        if turn != 5:
            add(p.ChatMessage(message_id=f"r{turn}", author=agent, text=f"answer {turn}",
                              draft_id=t))
        if turn == 1:
            add(p.NoteAdded(note_id="n1", author=agent, text="VIP customer"))
        if turn == 3:
            add(p.SessionAssigned(assignee=p.RepRef(rep_id="r1", name="Sam"), by="Sam",
                                  previous=None))
            add(p.SessionStatusChanged(status="waiting", by="Sam", previous="open"))
    add(p.ApprovalUpdated(approval_id="a4", state="rejected", by="Sam", reason="no"))
    # a last draft started, completed only after more lines
    add(p.DraftStarted(turn_id="t9", reason="customer_message", provider="offline"))
    add(p.ChatMessage(message_id="c9", author=cust, text="anyone?"))
    add(p.DraftCompleted(turn_id="t9", text="Yes, here"))
    return out


def _fingerprint(ws: Workspace) -> Any:
    view = ws.session(SID)
    assert view is not None
    items: list[tuple[Any, ...]] = []
    for i in view.transcript:
        if isinstance(i, ChatItem):
            items.append(("chat", i.message_id, i.text, i.seq, i.draft_id))
        elif isinstance(i, ToolItem):
            items.append(("tool", i.call_id, i.name, i.ok, i.outcome, i.output,
                          sorted(i.arguments.items()), i.mode))
        elif isinstance(i, InternalNote):
            items.append(("internal", i.note_id, i.text, i.seq))
        elif isinstance(i, NoteItem):
            items.append(("note", i.text))
    approvals = sorted((a.approval_id, a.state, a.by, str(a.result), a.reason)
                       for a in view.approvals.values())
    draft = view.draft
    return (items, approvals,
            (draft.turn_id, draft.state, draft.text) if draft else None,
            view.articles_turn, sorted(view.articles),
            len(view.pending_approvals))


def _welcome(last_seq: int) -> p.Welcome:
    return p.Welcome(protocol=1, role=p.Role.AGENT, scope=p.Scope.DESK, session_id=None,
                     sessions=[summary(SID, "Priya", last_seq=last_seq,
                                       last_at=time.time())],
                     server={}, heartbeat_s=20, you=p.RepRef(rep_id="r1", name="Sam"))


def _replayed(frames: list[Frame]) -> Workspace:
    """The reference: the whole history replayed oldest first (session.sync)."""
    ws = Workspace(send=Sent())
    synced: list[str] = []
    ws._sync_fn = synced.append
    ws.apply_welcome(_welcome(len(frames)))
    assert synced == [SID]
    for env, payload in frames:
        ws.handle(env, payload)
    return ws


class Pager:
    """The host's side of session.history over a fixed list of frames."""

    def __init__(self, frames: list[Frame]) -> None:
        self.frames = frames
        self.asked: list[tuple[int | None, int]] = []

    def __call__(self, sid: str, before: int | None, limit: int) -> str:
        assert sid == SID
        self.asked.append((before, limit))
        return f"h{len(self.asked)}"

    def answer(self, ws: Workspace, upto: int | None = None, limit: int | None = None) -> None:
        before, asked_limit = self.asked[-1]
        end = (upto if upto is not None else len(self.frames)) + 1 if before is None \
            else before
        n = limit or asked_limit
        part = self.frames[max(0, end - 1 - n):end - 1]
        first = part[0][0].seq if part else None
        ws.apply_history_page(HistoryPage(SID, before, first,
                                          part[-1][0].seq if part else None,
                                          bool(first and first > 1), part))


def _paged(frames: list[Frame], newest: int, older: int, live_after: int = 0) -> Workspace:
    """Opened newest first, then every older page; the frames after ``len - live_after``
    arrive live (while the older pages load)."""
    ws = Workspace(send=Sent())
    pager = Pager(frames)
    ws._history_fn = pager
    ws._sync_fn = lambda sid: (_ for _ in ()).throw(AssertionError("no sync"))
    upto = len(frames) - live_after
    ws.apply_welcome(_welcome(upto))
    view = ws.session(SID)
    assert view is not None and view.paged and view.history == "loading"
    assert pager.asked == [(None, 50)]
    pager.answer(ws, upto=upto, limit=newest)
    assert view.history == "loaded"
    live = iter(frames[upto:])
    while view.older:
        assert ws.load_older(SID)
        assert not ws.load_older(SID)  # one page on the way at a time
        for env, payload in [next(live, (None, None))]:
            if env is not None:
                assert payload is not None
                ws.handle(env, payload)  # a live frame while the older page loads
        pager.answer(ws, limit=older)
    for env, payload in live:
        ws.handle(env, payload)
    return ws


def test_pages_newest_first_give_exactly_the_replayed_history(qtbot: Any) -> None:
    frames = _frames()
    want = _fingerprint(_replayed(frames))
    assert want[1] == [("a1", "executed", "Sam", "{'ok': True, 'status': 'cancelled'}",
                        None), ("a4", "rejected", "Sam", "None", "no")]
    assert want[2] == ("t9", "completed", "Yes, here")
    for newest, older in [(1, 1), (2, 3), (5, 7), (13, 4), (20, 20), (50, 100),
                          (len(frames), 5)]:
        for live_after in (0, 3):
            assert _fingerprint(_paged(frames, newest, older, live_after)) == want, (
                newest, older, live_after)


def test_an_older_page_keeps_the_newer_part_and_announces_what_it_added(qtbot: Any) -> None:
    frames = _frames()
    ws = Workspace(send=Sent())
    pager = Pager(frames)
    ws._history_fn = pager
    ws.apply_welcome(_welcome(len(frames)))
    added: list[tuple[str, int]] = []
    ws.older_loaded.connect(lambda sid, n: added.append((sid, n)))
    lines: list[str] = []
    ws.customer_line.connect(lambda sid, text: lines.append(text))
    pager.answer(ws, limit=10)
    view = ws.session(SID)
    assert view is not None and view.older and view.oldest_seq == len(frames) - 9
    shown = list(view.transcript)
    ws.load_older(SID)
    assert view.older_loading
    pager.answer(ws, limit=10)
    assert not view.older_loading and added and added[0][0] == SID
    assert view.transcript[added[0][1]:] == shown  # put before, the rest untouched
    assert lines == [] and view.unread == 0  # history: no notification, nothing unread
    # a search hit far back: pages are loaded until it is held
    assert ws.load_until(SID, 3)
    while view.older_loading:
        pager.answer(ws)
    assert view.oldest_seq <= 3 and view.load_until is None
    assert any(isinstance(i, ChatItem) and i.seq == 2 for i in view.transcript)


def test_a_page_for_a_session_not_waiting_for_it_is_ignored(qtbot: Any) -> None:
    frames = _frames()
    ws = Workspace(send=Sent())
    pager = Pager(frames)
    ws._history_fn = pager
    ws.apply_welcome(_welcome(len(frames)))
    pager.answer(ws, limit=10)
    view = ws.session(SID)
    assert view is not None
    before = _fingerprint(ws)
    # an older page nobody asked for (or asked for another range) changes nothing
    ws.apply_history_page(HistoryPage(SID, 5, 1, 4, False, frames[:4]))
    ws.apply_history_page(HistoryPage(SID, None, 1, 4, False, frames[:4]))
    assert _fingerprint(ws) == before
    # the host refused the page: no longer waiting
    ws.load_older(SID)
    ws._on_history_failed(SID, view.oldest_seq, "no such session")
    assert not view.older_loading


def test_a_search_hit_in_a_session_not_opened_yet_loads_back_to_it(qtbot: Any) -> None:
    """The search panel opens the session and asks for the hit at once, before its
    newest page has arrived: the pages follow until the hit is held."""
    frames = _frames()
    ws = Workspace(send=Sent())
    pager = Pager(frames)
    ws._history_fn = pager
    ws.apply_welcome(_welcome(len(frames)))
    view = ws.session(SID)
    assert view is not None and view.history == "loading"
    assert ws.load_until(SID, 2)  # remembered until the newest page is there
    pager.answer(ws, limit=10)
    assert view.older_loading and pager.asked[-1] == (len(frames) - 9, 100)
    pager.answer(ws, limit=10)
    assert view.older_loading  # not there yet: the next page
    while view.older_loading:
        pager.answer(ws, limit=10)
    assert view.oldest_seq <= 2 and view.load_until is None
    assert any(isinstance(i, ChatItem) and i.seq == 2 for i in view.transcript)
