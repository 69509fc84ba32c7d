"""Issue 18 item 2 in the desk's models, fed by hand through the wire encoding: the
workspace pages summaries in, keeps unopened sessions as summaries (unread and
notifications from live frames), fetches a session on selection and treats what it
fetches as history; the inbox stays bounded on a 10,000-session desk."""

from __future__ import annotations

import time
from typing import Any

from hitl_desktop.client.workspace import ChatItem, Workspace
from hitl_desktop.core import protocol as p
from hitl_desktop.ui.agent.inbox import MAX_ROWS, InboxPanel
from tests.ui.agent_feed import Feed, Sent, summary


def _desk(sent: Sent, synced: list[str]) -> Workspace:
    ws = Workspace(send=sent)
    ws._sync_fn = synced.append  # what attach() wires to HostConnection.sync_session
    return ws


def _welcome(sessions: list[p.SessionSummary], cursor: str | None) -> p.Welcome:
    return p.Welcome(protocol=1, role=p.Role.AGENT, scope=p.Scope.DESK, session_id=None,
                     sessions=sessions, server={}, heartbeat_s=20,
                     you=p.RepRef(rep_id="r1", name="Sam"), cursor=cursor)


def _page_id(sent: Sent) -> str:
    """The id of the last session.list request the workspace sent."""
    return next(i for (t, _, _), i in zip(reversed(sent.items), reversed(sent.ids),
                                          strict=True) if t == "session.list")


def _page(ws: Workspace, ref: str, sessions: list[p.SessionSummary],
          cursor: str | None) -> None:
    env, decoded, _ = p.decode_host(p.encode("session.list",
                                             p.SessionList(sessions=sessions, cursor=cursor),
                                             ref=ref))
    ws.handle(env, decoded)


def test_summaries_are_paged_in_one_request_at_a_time(qtbot: Any) -> None:
    sent, synced = Sent(), list[str]()
    ws = _desk(sent, synced)
    now = time.time()
    all_ = [summary(f"s{i}", f"C{i}", last_seq=3, last_at=now - i) for i in range(1200)]
    ws.apply_welcome(_welcome(all_[:200], "c1"))
    assert synced == ["s0"]  # the first (most recent) is selected: only it is fetched
    for n, (lo, hi, cursor) in enumerate([(200, 700, "c2"), (700, 1200, None)]):
        pages = sent.of("session.list")
        assert len(pages) == n + 1, "one page asked at a time"
        req = pages[-1]
        assert isinstance(req, p.SessionListRequest)
        assert req.cursor == f"c{n + 1}" and req.limit == 500
        _page(ws, _page_id(sent), all_[lo:hi], cursor)
    assert len(ws.sessions()) == 1200 and not ws.paging
    assert len(sent.of("session.list")) == 2  # no cursor: done
    assert all(v.history == "none" for v in ws.sessions() if v.session_id != "s0")


def test_unopened_sessions_count_unread_and_opening_fetches_history(qtbot: Any) -> None:
    sent, synced = Sent(), list[str]()
    ws = _desk(sent, synced)
    now = time.time()
    ws.apply_welcome(_welcome([summary("s1", last_seq=2, last_at=now),
                               summary("s2", "Priya", last_seq=2, last_at=now - 5)], None))
    assert ws.current_session_id == "s1" and synced == ["s1"]
    feed = Feed(ws, "s2")
    feed.seq["s2"] = 2
    lines: list[tuple[str, str]] = []
    ws.customer_line.connect(lambda sid, text: lines.append((sid, text)))
    feed.customer("is anyone there?")  # live, seq 3, in a session never opened
    s2 = ws.session("s2")
    assert s2 is not None
    assert s2.unread == 1 and lines == [("s2", "is anyone there?")]
    assert s2.summary.last_message == "is anyone there?" and s2.summary.last_seq == 3
    assert s2.transcript == [] and s2.history == "none"  # a summary only
    s2 = ws.session("s2")  # read afresh: selecting it changes its state
    assert s2 is not None

    # the desk's state moves with the live frames too (holder, status)
    feed(p.SessionAssigned(assignee=p.RepRef(rep_id="r2", name="Ana"), by="Ana",
                           previous=None))
    feed(p.SessionStatusChanged(status="waiting", by="Ana", previous="open"))
    assert s2.assignee is not None and s2.assignee.name == "Ana"
    assert s2.status == "waiting" and s2.summary.last_seq == 5 and s2.transcript == []

    ws.select_session("s2")
    assert synced == ["s1", "s2"] and s2.loading and s2.unread == 0
    # the replay: seqs 1..3, history (no unread, no second notification), then live
    feed.seq["s2"] = 0
    feed(p.SessionOpened(summary=summary("s2", "Priya"), greeting="Hi"))
    feed.customer("my parcel")
    assert s2.loading
    feed.customer("is anyone there?")
    assert s2.loading
    feed(p.SessionAssigned(assignee=p.RepRef(rep_id="r2", name="Ana"), by="Ana",
                           previous=None))
    feed(p.SessionStatusChanged(status="waiting", by="Ana", previous="open"))
    assert s2.history == "loaded"
    feed.customer("hello?")  # live after the history
    texts = [i.text for i in s2.transcript if isinstance(i, ChatItem)]
    assert texts == ["my parcel", "is anyone there?", "hello?"]
    assert lines == [("s2", "is anyone there?"), ("s2", "hello?")]


def test_the_inbox_stays_bounded_on_a_large_desk(qtbot: Any) -> None:
    sent, synced = Sent(), list[str]()
    ws = _desk(sent, synced)
    now = time.time()
    many = [summary(f"s{i}", f"C{i}", last_seq=3, last_at=now - i) for i in range(2000)]
    inbox = InboxPanel(ws)
    qtbot.addWidget(inbox)
    ws.apply_welcome(_welcome(many[:200], "c"))
    _page(ws, _page_id(sent), many[200:], None)
    qtbot.waitUntil(lambda: len(inbox.session_ids()) == MAX_ROWS, timeout=3000)
    assert ws.large
    # a session far down is selected (a search hit): it joins the rows
    ws.select_session("s1999")
    assert "s1999" in inbox.session_ids() and len(inbox.session_ids()) == MAX_ROWS + 1
    # a live line in an unopened session far down: coalesced, then it is shown
    feed = Feed(ws, "s1500")
    feed.seq["s1500"] = 3
    feed.customer("hello from far down")
    view = ws.session("s1500")
    assert view is not None and view.unread == 1
    qtbot.waitUntil(lambda: inbox.session_ids()[:1] == ["s1500"], timeout=3000)



def test_a_desk_connection_follows_at_most_the_resume_cap(qtbot: Any) -> None:
    """More sessions opened than a hello's resume may list: the least recently opened
    are forgotten (fetched again when opened); re-opening one makes it recent."""
    from hitl_desktop.client.connection import MAX_RESUME, HostConnection
    from hitl_desktop.core.links import InviteLink

    conn = HostConnection(InviteLink.parse("hitl://127.0.0.1:9/agent#desk1.abcdefghijklmnopqrst"))
    forgotten: list[list[str]] = []
    conn.sessions_forgotten.connect(forgotten.append)
    for i in range(MAX_RESUME):
        conn.track(f"x{i}")
    conn.track("x0")  # opened again: now the most recent
    conn.track("new")
    assert forgotten == [["x1"]]
    assert conn.tracks("x0") and conn.tracks("new") and not conn.tracks("x1")
    assert len(conn.resume_points()) == MAX_RESUME


def test_a_session_sync_the_host_dropped_for_rate_is_asked_again(qtbot: Any) -> None:
    """A fetch the host refused with rate_limited would leave the session "loading"
    (and its live frames dropped) for good: the connection asks again."""
    from hitl_desktop.client.connection import HostConnection
    from hitl_desktop.core.links import InviteLink

    conn = HostConnection(InviteLink.parse("hitl://127.0.0.1:9/agent#desk1.abcdefghijklmnopqrst"))
    first = conn.sync_session("s1")
    env, err, _ = p.decode_host(p.error_frame(p.ErrorCode.RATE_LIMITED, "slow down",
                                              ref=first, retry_after=0.5))
    assert isinstance(err, p.ErrorPayload)
    conn._emit_error(env, err)
    again = [i for i in conn._outbox if i.type == "session.sync"]
    assert [i.session for i in again] == ["s1"] and again[0].msg_id != first
    # any other refusal is not retried (it would only be refused again)
    env, err, _ = p.decode_host(p.error_frame(p.ErrorCode.CONFLICT, "busy",
                                              ref=again[0].msg_id))
    assert isinstance(err, p.ErrorPayload)
    conn._emit_error(env, err)
    assert [i for i in conn._outbox if i.type == "session.sync"] == []


def test_opening_a_session_keeps_the_summary_newer_than_its_first_frame(qtbot: Any) -> None:
    """The replayed seq 1 (session.opened) carries the session as it was created: it
    must not take back what the desk already knows (the customer is online now)."""
    sent, synced = Sent(), list[str]()
    ws = _desk(sent, synced)
    now = time.time()
    ws.apply_welcome(_welcome([summary("s1", last_seq=2, last_at=now)], None))
    online = summary("s2", "Priya", last_seq=2, last_at=now).model_copy(
        update={"customer_online": True, "clients": 1})
    Feed(ws, "s2")(p.SessionUpdated(summary=online))  # live, from the desk's fan-out
    ws.select_session("s2")
    assert synced == ["s1", "s2"]
    feed = Feed(ws, "s2")
    feed(p.SessionOpened(summary=summary("s2", "Priya"), greeting="Hi"))  # seq 1, replayed
    view = ws.session("s2")
    assert view is not None and view.summary.customer_online and view.summary.last_seq == 2
    feed.customer("my parcel")
    assert view.history == "loaded" and view.summary.customer_online
