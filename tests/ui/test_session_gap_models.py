"""``session.gap`` in the models (no widgets): after an unclean stop the host skips the
seqs it had reserved and says so. The agent's workspace and the customer's chat model
record one gap line where the gap is and mark the lines they showed that the host no
longer has — once, also when the gap frame comes again (replay, a page), and in place
when a newest-first page carries it. Fed through the wire encoding."""

from __future__ import annotations

from typing import Any

from hitl_desktop.client.chat import ChatModel, gap_notice
from hitl_desktop.client.connection import HistoryPage, HostConnection
from hitl_desktop.client.workspace import (
    ChatItem,
    GapItem,
    InternalNote,
    Workspace,
    gap_text,
)
from hitl_desktop.core import protocol as p
from hitl_desktop.core.links import InviteLink
from tests.ui.agent_feed import Feed, Sent, summary

GAP = p.SessionGap(first_seq=3, last_seq=20, reason="the host stopped uncleanly")


def _lines(ws: Workspace, sid: str = "s1") -> list[tuple[str, int | None, bool]]:
    view = ws.session(sid)
    assert view is not None
    out: list[tuple[str, int | None, bool]] = []
    for item in view.transcript:
        if isinstance(item, ChatItem | InternalNote):
            out.append((item.text, item.seq, item.lost))
        elif isinstance(item, GapItem):
            out.append((f"GAP {item.first_seq}-{item.last_seq} lost={item.lost}", item.seq,
                        False))
    return out


def test_a_gap_after_held_lines_marks_them_and_shows_once(ws: Workspace,
                                                          feed: Feed) -> None:
    feed.customer("hello")  # seq 1
    feed.agent("hi there")  # seq 2
    feed.customer("my order ORD1001 is late")  # seq 3: lost by the host
    feed(p.NoteAdded(note_id="n1", author=p.Author(role=p.Role.AGENT, name="Sam"),
                     text="check the carrier"))  # seq 4: lost too
    changed: list[str] = []
    ws.transcript_changed.connect(changed.append)
    feed(GAP, seq=21)
    feed(GAP, seq=21)  # the same frame again (a replay after a reconnect)
    feed.customer("still there?", seq=22)
    assert _lines(ws) == [
        ("hello", 1, False), ("hi there", 2, False),
        ("my order ORD1001 is late", 3, True), ("check the carrier", 4, True),
        ("GAP 3-20 lost=2", 21, False), ("still there?", 22, False)]
    assert changed and set(changed) == {"s1"}
    gap = next(i for i in ws.session("s1").transcript  # type: ignore[union-attr]
               if isinstance(i, GapItem))
    assert "2 lines marked ⚠" in gap_text(gap)
    assert ws.session("s1").summary.last_seq == 22  # type: ignore[union-attr]


def test_a_gap_after_nothing_lost_is_a_plain_line(ws: Workspace, feed: Feed) -> None:
    feed.customer("hello")  # seq 1
    feed.customer("anyone?")  # seq 2
    feed(GAP, seq=21)  # the host lost 3-20; this window held none of them
    assert _lines(ws) == [("hello", 1, False), ("anyone?", 2, False),
                          ("GAP 3-20 lost=0", 21, False)]
    gap = ws.session("s1").transcript[-1]  # type: ignore[union-attr]
    assert isinstance(gap, GapItem)
    assert "may be missing" in gap_text(gap) and "⚠" not in gap_text(gap)


def test_history_reset_marks_the_held_lines_before_the_gap_frame(ws: Workspace,
                                                                 feed: Feed) -> None:
    """HostConnection.history_reset (the connection held seqs the host lost) comes just
    before the gap frame: the lines are marked at once, and counted by the frame."""
    for text in ("one", "two", "three"):
        feed.customer(text)
    ws._on_history_reset("s1", 2)
    assert [lost for _, _, lost in _lines(ws)] == [False, True, True]
    feed(p.SessionGap(first_seq=2, last_seq=40, reason="x"), seq=41)
    assert _lines(ws)[-1] == ("GAP 2-40 lost=2", 41, False)


def test_a_newest_first_page_shows_the_gap_in_place() -> None:
    """A desk opening the session after the restart: the page carries the gap frame
    between the lines before and after it (the lost lines are in no page)."""
    ws = Workspace(send=Sent())
    asked: list[tuple[str, int | None, int]] = []

    def fetch(sid: str, before: int | None, limit: int) -> str:
        asked.append((sid, before, limit))
        return "h1"

    ws._history_fn = fetch
    ws.apply_welcome(p.Welcome(protocol=1, role=p.Role.AGENT, scope=p.Scope.DESK,
                               session_id=None, sessions=[summary("s9", last_seq=22)],
                               server={}, heartbeat_s=20))
    assert asked and asked[0][0] == "s9"
    frames: list[tuple[p.Envelope, p.Payload]] = []
    for seq, payload in ((1, p.ChatMessage(message_id="m1", author=p.Author(
            role=p.Role.CUSTOMER, name="Alex"), text="hello")),
                         (2, p.ChatMessage(message_id="m2", author=p.Author(
                             role=p.Role.AGENT, name="Sam"), text="hi")),
                         (21, GAP),
                         (22, p.ChatMessage(message_id="m22", author=p.Author(
                             role=p.Role.CUSTOMER, name="Alex"), text="back again"))):
        env, decoded, _ = p.decode_host(p.encode(p.host_type(payload), payload,
                                                 session="s9", seq=seq))
        frames.append((env, decoded))
    ws.apply_history_page(HistoryPage("s9", None, 1, 22, False, frames))
    assert _lines(ws, "s9") == [("hello", 1, False), ("hi", 2, False),
                                ("GAP 3-20 lost=0", 21, False), ("back again", 22, False)]
    # the same gap arriving live again (a reconnect's replay) adds nothing
    env, decoded, _ = p.decode_host(p.encode("session.gap", GAP, session="s9", seq=21))
    ws.handle(env, decoded)
    assert sum(isinstance(i, GapItem)
               for i in ws.session("s9").transcript) == 1  # type: ignore[union-attr]


def _customer_model(qtbot: Any) -> tuple[ChatModel, HostConnection]:
    conn = HostConnection(InviteLink.parse("hitl://127.0.0.1:9/customer#cust1.abcdefghijklmnopqrst"))
    model = ChatModel(conn)
    conn.welcome_received.emit(p.Welcome(protocol=1, role=p.Role.CUSTOMER,
                                         scope=p.Scope.SESSION, session_id="s1",
                                         sessions=[], server={}, heartbeat_s=20))
    return model, conn


def _host(conn: HostConnection, payload: p.Payload, seq: int) -> None:
    env, decoded, _ = p.decode_host(p.encode(p.host_type(payload), payload, session="s1",
                                             seq=seq))
    conn.message_received.emit(env, decoded)


def test_the_customer_model_marks_lost_messages_and_adds_one_notice(qtbot: Any) -> None:
    model, conn = _customer_model(qtbot)
    changed: list[str] = []
    model.message_changed.connect(lambda item: changed.append(item.key))
    _host(conn, p.ChatMessage(message_id="a1", author=p.Author(role=p.Role.AGENT, name="Sam"),
                              text="How can I help?"), 2)
    mine = model.send_text("My parcel never came")
    assert mine is not None
    _host(conn, p.ChatMessage(message_id="m3", author=p.Author(role=p.Role.CUSTOMER,
                                                               name="Alex"),
                              text="My parcel never came"), 3)
    conn.history_reset.emit("s1", 3)  # the connection held seq 3, which the host lost
    _host(conn, GAP, 21)
    _host(conn, GAP, 21)  # replayed again
    texts = [(i.kind, i.text, i.lost) for i in model.items]
    assert texts == [("message", "How can I help?", False),
                     ("message", "My parcel never came", True),
                     ("gap", gap_notice(1), False)]
    assert "the message marked ⚠ above" in gap_notice(1)
    assert changed.count(mine.key) == 2  # sent (echoed with its seq), then lost
