"""The desk's models (issue 16) fed host frames through the real wire encoding: who
holds what, notes, status, filters and waiting times, macros, search, the warning
before writing into a colleague's conversation, preferences and notifications."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from PySide6.QtCore import QSettings
from pytestqt.qtbot import QtBot

from hitl_desktop.client.desk import (
    MacroContext,
    Notifier,
    Preferences,
    expand_macro,
    filter_counts,
    filtered,
    macro_context,
    macro_name_problem,
    macro_prefix,
    waiting_level,
    waiting_text,
)
from hitl_desktop.client.workspace import InternalNote, NoteItem, Workspace
from hitl_desktop.core import protocol as p
from tests.ui.agent_feed import Feed, Sent, summary

SAM = p.RepRef(rep_id="t_sam", name="Sam")
KIM = p.RepRef(rep_id="t_kim", name="Kim")


def desk_summary(sid: str, name: str, *, assignee: p.RepRef | None = None,
                 status: str = "open", waiting: float | None = None,
                 state: str = "open", last_at: float | None = None) -> p.SessionSummary:
    base = summary(sid, name, state=state, last_at=last_at, customer_id=f"C_{sid}")
    return base.model_copy(update={"assignee": assignee, "status": status,
                                   "waiting_since": waiting})


def desk_welcome(*sessions: p.SessionSummary, you: p.RepRef | None = SAM) -> p.Welcome:
    return p.Welcome(protocol=1, role=p.Role.AGENT, scope=p.Scope.DESK, session_id=None,
                     sessions=list(sessions), server={}, heartbeat_s=20, you=you,
                     reps=[p.RepInfo(rep_id=SAM.rep_id, name="Sam", online=True),
                           p.RepInfo(rep_id=KIM.rep_id, name="Kim", online=False)])


@pytest.fixture
def ws(qtbot: QtBot, sent: Sent) -> Workspace:
    now = time.time()
    model = Workspace(send=sent)
    model.apply_welcome(desk_welcome(
        desk_summary("s1", "Alex Morgan", assignee=SAM, waiting=now - 200),
        desk_summary("s2", "Priya Shah", assignee=KIM, waiting=now - 1000),
        desk_summary("s3", "Jo Lee", waiting=None, last_at=now - 5),
        desk_summary("s4", "Ann Bell", status="resolved"),
        desk_summary("s5", "Ray Cole", assignee=SAM, state="closed")))
    return model


def ids(views: list[object]) -> list[str]:
    return [v.session_id for v in views]  # type: ignore[attr-defined]


def test_welcome_names_the_representative_and_the_desk(ws: Workspace, sent: Sent) -> None:
    assert ws.you == SAM and ws.my_name == "Sam"
    assert [(r.name, r.online) for r in ws.reps] == [("Sam", True), ("Kim", False)]
    assert sent.of("macro.list"), "a desk asks for the shared macros at welcome"


def test_a_reps_push_updates_who_is_on_the_desk(ws: Workspace, qtbot: QtBot) -> None:
    """Transfer to… offers the desk as it is now: Kim comes online, Ana is added."""
    ana = p.RepInfo(rep_id="tok_ana", name="Ana", online=True)
    with qtbot.waitSignal(ws.reps_changed):
        Feed(ws)(p.RepsUpdated(reps=[p.RepInfo(rep_id=SAM.rep_id, name="Sam", online=True),
                                     p.RepInfo(rep_id=KIM.rep_id, name="Kim", online=True),
                                     ana]), None)
    assert [(r.name, r.online) for r in ws.reps] == [("Sam", True), ("Kim", True), ("Ana", True)]


def test_filters_and_the_longest_wait_first(ws: Workspace) -> None:
    assert ids(filtered(ws, "mine")) == ["s1"]
    assert ids(filtered(ws, "unassigned")) == ["s3"]
    # the customer waiting longest first (s2: 16 min), then s1 (3 min), then the rest
    assert ids(filtered(ws, "open")) == ["s2", "s1", "s3"]
    assert set(ids(filtered(ws, "resolved"))) == {"s4", "s5"}
    assert filter_counts(ws) == {"mine": 1, "unassigned": 1, "open": 3, "resolved": 2}


def test_waiting_text_and_level() -> None:
    now = 10_000.0
    assert waiting_text(None, now) == ""
    assert waiting_text(now - 20, now) == "waiting <1 min"
    assert waiting_text(now - 185, now) == "waiting 3 min"
    assert waiting_text(now - 3 * 3600 - 120, now) == "waiting 3 h 2 min"
    assert waiting_text(now - 2 * 86400, now) == "waiting 2 d"
    assert (waiting_level(now - 60, now), waiting_level(now - 301, now),
            waiting_level(now - 901, now)) == ("", "warn", "late")


def test_assignment_frames_update_the_holder_live(ws: Workspace, qtbot: QtBot) -> None:
    feed = Feed(ws, "s3")
    with qtbot.waitSignal(ws.assignment_changed, check_params_cb=lambda s: s == "s3"):
        feed(p.SessionAssigned(assignee=KIM, by="Kim", previous=None))
    view = ws.session("s3")
    assert view is not None and view.assignee == KIM
    assert ws.held_by_other("s3") == KIM
    assert ids(filtered(ws, "unassigned")) == []
    feed(p.SessionAssigned(assignee=SAM, by="Kim", previous=KIM))
    assert ws.is_mine(view) and ws.held_by_other("s3") is None
    feed(p.SessionAssigned(assignee=None, by="Sam", previous=SAM))
    assert view.assignee is None
    lines = [i.text for i in view.transcript if isinstance(i, NoteItem)]
    assert lines[-3:] == ["Kim took the conversation",
                          "Kim transferred the conversation to Sam",
                          "Sam released the conversation"]


def test_notes_are_kept_apart_from_chat_and_not_doubled_on_replay(ws: Workspace) -> None:
    feed = Feed(ws, "s1")
    note = p.NoteAdded(note_id="n1", author=p.Author(role=p.Role.AGENT, name="Kim"),
                       text="Customer is a VIP, be generous")
    feed(note)
    feed(note, seq=1)  # a replay after a resume
    view = ws.session("s1")
    assert view is not None
    notes = [i for i in view.transcript if isinstance(i, InternalNote)]
    assert [(n.author, n.text) for n in notes] == [("Kim", "Customer is a VIP, be generous")]
    assert view.summary.last_message != note.text, "a note is not the customer's last line"


def test_status_changes_and_a_customer_line_reopens(ws: Workspace, sent: Sent) -> None:
    feed = Feed(ws, "s1")
    assert ws.set_status("waiting", session_id="s1")
    assert sent.of("session.status")[-1] == p.SessionStatusSet(status="waiting")
    feed(p.SessionStatusChanged(status="resolved", by="Sam", previous="open"))
    assert "s1" in ids(filtered(ws, "resolved")) and "s1" not in ids(filtered(ws, "mine"))
    feed(p.SessionStatusChanged(status="open", by="customer", previous="resolved"))
    view = ws.session("s1")
    assert view is not None and view.status == "open"
    assert isinstance(view.transcript[-1], NoteItem)
    assert view.transcript[-1].text == "The customer wrote again: open"


def test_resolving_refused_for_pending_actions_comes_back_as_a_signal(
        ws: Workspace, sent: Sent, qtbot: QtBot) -> None:
    feed = Feed(ws, "s1")
    ws.set_status("resolved", session_id="s1")
    ref = sent.ids[-1]
    with qtbot.waitSignal(ws.status_refused) as refused:
        env, payload, _ = p.decode_host(p.error_frame(
            p.ErrorCode.CONFLICT, "1 action is pending", ref=ref, session="s1",
            details={"pending": 1}))
        ws.handle(env, payload)
    assert refused.args == ["s1", "resolved", 1]
    # through HostConnection's error signal (code, message, ref: no details), and a
    # "resolved already" conflict stays a plain error
    ws.set_status("resolved", session_id="s1")
    with qtbot.waitSignal(ws.status_refused) as again:
        ws._on_error_signal("conflict", "2 actions still await approval; resolve with "
                            "force to leave them pending", sent.ids[-1])
    assert again.args == ["s1", "resolved", 2]
    errors: list[str] = []
    ws.error_occurred.connect(errors.append)
    ws.set_status("resolved", session_id="s1")
    ws._on_error_signal("conflict", "the conversation is resolved already", sent.ids[-1])
    assert errors == ["the conversation is resolved already"]
    ws.set_status("resolved", force=True, session_id="s1")
    assert sent.of("session.status")[-1] == p.SessionStatusSet(status="resolved", force=True)
    del feed


def test_writing_into_a_colleagues_session_asks_once_then_overrides(
        ws: Workspace, sent: Sent) -> None:
    ws.select_session("s2")  # Kim's
    assert ws.needs_override_question() == KIM
    ws.send_message("plain send")  # the model never decides for the window: no override
    assert sent.of("chat.send")[-1] == p.ChatSend(text="plain send")
    ws.confirm_override()
    assert ws.needs_override_question() is None, "asked once per session and holder"
    ws.send_message("second line")
    assert sent.of("chat.send")[-1] == p.ChatSend(text="second line", override=True)
    # the session changes hands: ask again
    Feed(ws, "s2")(p.SessionAssigned(assignee=p.RepRef(rep_id="t_lee", name="Lee"), by="Lee",
                                     previous=KIM))
    assert ws.needs_override_question() is not None
    ws.select_session("s3")  # unassigned: anyone may write
    assert ws.needs_override_question() is None


def test_a_send_refused_as_held_by_other_gives_the_text_back(
        ws: Workspace, sent: Sent, qtbot: QtBot) -> None:
    ws.select_session("s3")
    ws.send_message("Your refund is on its way", draft_id="turn_1")
    ref = sent.ids[-1]
    with qtbot.waitSignal(ws.send_held) as held:
        env, payload, _ = p.decode_host(p.error_frame(
            p.ErrorCode.HELD_BY_OTHER, "Kim holds this session", ref=ref, session="s3",
            details={"assignee": {"rep_id": "t_kim", "name": "Kim"}}))
        ws.handle(env, payload)
    assert held.args == ["s3", "Your refund is on its way", "turn_1", "Kim"]


def test_macros_list_and_placeholders(ws: Workspace, qtbot: QtBot) -> None:
    feed = Feed(ws, None)
    with qtbot.waitSignal(ws.macros_changed):
        feed(p.MacroList(macros=[
            p.Macro(name="thanks", text="Thanks {customer_first_name}! — {rep_name}",
                    updated_by="Kim", updated_at=1.0),
            p.Macro(name="refund", text="Refund for {order_id} started.", updated_by="Sam",
                    updated_at=2.0)]), session=None)
    assert [m.name for m in ws.macros] == ["refund", "thanks"]
    s1 = Feed(ws, "s1")
    s1.customer("It is about order ord-1042, please")
    view = ws.session("s1")
    ctx = macro_context(ws, view)
    assert ctx == MacroContext(customer_name="Alex Morgan", order_id="ORD1042", rep_name="Sam")
    assert expand_macro(ws.macros[1].text, ctx) == ("Thanks Alex! — Sam", [])
    text, unfilled = expand_macro("Hi {customer_first_name}, order {order_id}",
                                  MacroContext(None, None, "Sam"))
    assert text == "Hi {customer_first_name}, order {order_id}"
    assert [text[a:b] for a, b in unfilled] == ["{customer_first_name}", "{order_id}"]


@pytest.mark.parametrize(("text", "cursor", "prefix"), [
    ("/", 1, ""), ("/tha", 4, "tha"), ("Hi /re", 6, "re"), ("see http://x", 12, None),
    ("and/or", 6, None), ("/Thanks", 7, None), ("no slash", 8, None)])
def test_macro_prefix(text: str, cursor: int, prefix: str | None) -> None:
    assert macro_prefix(text, cursor) == prefix


def test_macro_names() -> None:
    assert macro_name_problem("refund-2") == ""
    assert macro_name_problem("") and macro_name_problem("Has Space")
    assert macro_name_problem("x" * 41)


def test_search_answers_only_the_latest_query(ws: Workspace, sent: Sent,
                                              qtbot: QtBot) -> None:
    got: list[p.SearchResults] = []
    ws.search_results.connect(got.append)
    assert ws.search("refund")
    old = sent.ids[-1]
    assert ws.search("parcel")
    new = sent.ids[-1]
    for ref, query in ((old, "refund"), (new, "parcel")):
        frame = p.encode("search.results", p.SearchResults(query=query, hits=[]), ref=ref)
        env, payload, _ = p.decode_host(frame)
        ws.handle(env, payload)
    assert [r.query for r in got] == ["parcel"]
    assert ws.search("x y")
    failed: list[str] = []
    ws.search_failed.connect(failed.append)
    env, payload, _ = p.decode_host(p.error_frame(p.ErrorCode.INVALID_ARGUMENTS,
                                                  "nothing to search for", ref=sent.ids[-1]))
    ws.handle(env, payload)
    assert failed == ["nothing to search for"]


def test_preferences_persist_with_sound_off_by_default(tmp_path: Path, qtbot: QtBot) -> None:
    ini = str(tmp_path / "agent-window.ini")
    prefs = Preferences(QSettings(ini, QSettings.Format.IniFormat))
    assert prefs.get("notify/enabled") and not prefs.get("notify/sound")
    with qtbot.waitSignal(prefs.changed, check_params_cb=lambda k: k == "notify/sound"):
        prefs.set("notify/sound", True)
    prefs.set("notify/approvals", False)
    again = Preferences(QSettings(ini, QSettings.Format.IniFormat))
    assert again.get("notify/sound") and not again.get("notify/approvals")
    again.reset()
    assert not again.get("notify/sound") and again.get("notify/approvals")


def test_notifications_only_when_unfocused_and_only_mine_or_unassigned(
        ws: Workspace, tmp_path: Path, qtbot: QtBot) -> None:
    prefs = Preferences(QSettings(str(tmp_path / "p.ini"), QSettings.Format.IniFormat))
    notifier = Notifier(ws, prefs)
    ws.select_session("s1")
    Feed(ws, "s1").customer("while focused")
    assert notifier.sent == [], "nothing pops up while the representative is looking"
    notifier.set_focused(False)
    Feed(ws, "s1").customer("Mine: are you there?")
    Feed(ws, "s2").customer("Kim's customer")
    Feed(ws, "s3").customer("Unassigned customer")
    assert [(n.session_id, n.kind) for n in notifier.sent] == [("s1", "customer"),
                                                               ("s3", "customer")]
    assert notifier.sent[1].title == "Jo Lee (unassigned)"
    # unread: the line in the selected session counts too while unfocused
    s1 = ws.session("s1")
    assert s1 is not None and s1.unread == 1
    assert notifier.unread == ws.unread_total() == 3
    Feed(ws, "s3").approval("a9")
    assert notifier.sent[-1].kind == "approval"
    assert notifier.sent[-1].title == "Approval needed — Jo Lee"
    prefs.set("notify/customer_lines", False)
    Feed(ws, "s3").customer("muted")
    assert notifier.sent[-1].kind == "approval"
    notifier.set_focused(True)
    assert s1.unread == 0, "focusing the window reads the selected conversation"
