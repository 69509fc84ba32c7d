"""Protocol codec, tokens, rate limiter and the durable log, without sockets."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Any

import pytest

from hitl_desktop.core import protocol as P
from hitl_desktop.core.insights import ChangeRow, GapCluster, InsightsReport
from hitl_desktop.host.log import RelayLog
from hitl_desktop.host.ratelimit import TokenBucket
from hitl_desktop.host.tokens import TokenKind, Tokens, hash_secret


def _frame(type_: str, data: Any, **env: Any) -> str:
    return json.dumps({"v": 1, "type": type_, "id": "x1", "session": "s_1", "seq": None,
                       "ts": 0.0, "data": data, **env})


def test_client_frames_decode_and_reject_precisely() -> None:
    _env, payload, spec = P.decode_client(_frame("chat.send", {"text": "hi"}))
    assert isinstance(payload, P.ChatSend) and payload.text == "hi" and spec.type == "chat.send"
    cases: list[tuple[str | bytes, P.ErrorCode]] = [
        (b"\x00", P.ErrorCode.BAD_FRAME),
        ("not json", P.ErrorCode.BAD_FRAME),
        ("[1, 2]", P.ErrorCode.BAD_FRAME),
        ("[" * 100_000, P.ErrorCode.BAD_FRAME),
        (_frame("chat.send", {"text": ""}), P.ErrorCode.BAD_MESSAGE),
        (_frame("chat.send", {"text": "x" * (P.MAX_TEXT_CHARS + 1)}), P.ErrorCode.BAD_MESSAGE),
        (_frame("chat.send", {"text": "hi", "extra": 1}), P.ErrorCode.BAD_MESSAGE),
        (_frame("chat.send", {"text": "hi"}, session=None), P.ErrorCode.BAD_MESSAGE),
        (_frame("chat.send", {"text": "hi"}, extra=1), P.ErrorCode.BAD_MESSAGE),
        (_frame("ack", {"seq": "3"}), P.ErrorCode.BAD_MESSAGE),
        (_frame("ack", {"seq": -1}), P.ErrorCode.BAD_MESSAGE),
        (_frame("nope", {}), P.ErrorCode.UNKNOWN_TYPE),
        (_frame("chat.send", {"text": "hi"}, v=2), P.ErrorCode.UNSUPPORTED_VERSION),
        (_frame("welcome", {}), P.ErrorCode.UNKNOWN_TYPE),  # host-only type from a client
    ]
    for raw, code in cases:
        with pytest.raises(P.ProtocolError) as info:
            P.decode_client(raw)
        assert info.value.code is code, raw[:60]
    with pytest.raises(P.ProtocolError) as info:
        P.decode_client(_frame("nope", {}))
    assert info.value.ref == "x1"


def test_every_host_type_round_trips() -> None:
    summary = P.SessionSummary(session_id="s_1", title="t", customer_id="CUST1001",
                               customer_name="Alex Morgan", state="open", created_at=1.0,
                               last_seq=1)
    samples: dict[str, P.Payload] = {
        "welcome": P.Welcome(protocol=1, role=P.Role.AGENT, scope=P.Scope.DESK,
                             session_id=None, sessions=[summary], server={}, heartbeat_s=20),
        "error": P.ErrorPayload(code=P.ErrorCode.FORBIDDEN, message="no"),
        "session.opened": P.SessionOpened(summary=summary, greeting="hi"),
        "session.updated": P.SessionUpdated(summary=summary),
        "session.closed": P.SessionClosed(by="Agent"),
        "session.reopened": P.SessionReopened(by="Agent"),
        "session.gap": P.SessionGap(first_seq=5, last_seq=260, reason="unclean stop"),
        "chat.message": P.ChatMessage(message_id="c1", author=P.Author(role="assistant",
                                                                        name="bot"), text="x"),
        "chat.delivered": P.ChatDelivered(seq=3, by=P.Role.CUSTOMER),
        "typing": P.TypingState(role=P.Role.AGENT, active=True),
        "draft.started": P.DraftStarted(turn_id="t", reason="customer_message", provider="p"),
        "draft.delta": P.DraftDelta(turn_id="t", offset=0, text="a"),
        "draft.completed": P.DraftCompleted(turn_id="t", text="a", citations=[
            P.Citation(article_id="kb/x", title="X")], claims=[
            P.DraftClaim(tool="cancel_order", sentence="Done.", reason="pending")]),
        "draft.stale": P.DraftStale(turn_id="t", reason="r"),
        "draft.failed": P.DraftFailed(turn_id="t", code=P.ErrorCode.INTERNAL, message="m"),
        "turn.ended": P.TurnEnded(turn_id="t", outcome="completed", reason="customer_message"),
        "articles": P.ArticlesFound(turn_id="t", articles=[P.Article(
            article_id="kb/x", title="X", kind="kb", snippet="s", score=1.0)]),
        "tool.call.delta": P.ToolCallDelta(turn_id="t", call_id="c", name="n",
                                           arguments_partial={}),
        "tool.call": P.ToolCall(turn_id="t", call_id="c", name="n", arguments={}, mode="auto"),
        "tool.result": P.ToolResult(call_id="c", name="n", ok=True, output={}),
        "approval.created": P.ApprovalCreated(approval_id="a", call_id="c", tool="t",
                                              description="d", arguments={},
                                              parameters_schema={}, expires_at=None,
                                              summary="Cancel ORD1001", provenance=P.Provenance(
                                                  quote="cancel it", flagged=True,
                                                  signs=["x"])),
        "approval.updated": P.ApprovalUpdated(approval_id="a", state="executed"),
        "assistant.status": P.AssistantStatus(provider="p", model=None, is_ai=False,
                                              state="ready"),
        "session.list": P.SessionList(sessions=[summary]),
        "session.history": P.SessionHistory(
            before_seq=None, first_seq=1, last_seq=1, more=False,
            frames=[json.loads(P.encode("session.opened", P.SessionOpened(summary=summary),
                                        session="s_1", seq=1))]),
        "session.created": P.SessionCreated(session_id="s", customer_link="a", agent_link="b"),
        "customer.details": P.CustomerDetails(customer=None, orders=[]),
        "article.content": P.ArticleContent(article_id="kb/x", title="X", kind="kb",
                                            markdown="#"),
        "kb.results": P.KbResults(query="q", articles=[]),
        "insights.report": P.InsightsReportData(report=InsightsReport(
            period_from=0.0, period_to=86400.0, generated_at=1.0, conversations=3,
            gaps=[GapCluster(label="rent drones", count=2, weak_retrieval=1, replaced=1,
                             examples=["Can I rent drones?"])])),
        "insights.changes": P.InsightsChanges(session_id="s_1", changes=[ChangeRow(
            message_id="c1", agent="Ana", sent_at=1.0, draft_id="t", draft_text="a b",
            sent_text="a c", outcome="edited", distance=0.5, kinds=["reworded"])]),
        "identity.changed": P.IdentityChanged(
            identity=P.SessionIdentity(state="verified", customer_id="CUST1002",
                                       customer_name="Priya Shah", method="representative",
                                       by="Sam", at=1.0),
            previous=P.SessionIdentity(), action="link", by="Sam"),
        "identity.state": P.IdentityStatus(signed_in=True, customer_name="Priya Shah",
                                           method="sign_in"),
        "customer.results": P.CustomerResults(query="priya", customers=[P.CustomerMatch(
            customer_id="CUST1002", name="Priya Shah", email="p@example.com", order_count=2)]),
        "session.assigned": P.SessionAssigned(
            assignee=P.RepRef(rep_id="r1", name="Ann"), by="Ann", previous=None),
        "note.added": P.NoteAdded(note_id="n1", author=P.Author(role=P.Role.AGENT, name="Ann"),
                                  text="called the courier"),
        "session.status_changed": P.SessionStatusChanged(status="resolved", by="Ann",
                                                         previous="open"),
        "macro.list": P.MacroList(macros=[P.Macro(name="thanks", text="Thanks {customer_name}!",
                                                  updated_by="Ann", updated_at=1.0)]),
        "search.results": P.SearchResults(query="parcel", hits=[P.SearchHit(
            session_id="s_1", seq=4, title="t", snippet="my parcel…", at=1.0,
            author_role="customer", kind="chat")]),
        "transcript": P.Transcript(session_id="s_1", audience="internal", markdown="# t"),
        "reps": P.RepsUpdated(reps=[P.RepInfo(rep_id="r1", name="Ann", online=True)]),
    }
    assert set(samples) == set(P.HOST_MESSAGES)
    for type_, payload in samples.items():
        assert P.host_type(payload) == type_
        seq = 2 if P.HOST_MESSAGES[type_].durable else None
        raw = P.encode(type_, payload, session="s_1", seq=seq, ref="r1")
        env, back, _spec = P.decode_host(raw)
        assert back == payload and env.seq == seq and env.ref == "r1"


def test_hand_built_chat_frame_equals_the_model() -> None:
    model = P.ChatMessage(message_id="c1", author=P.Author(role=P.Role.AGENT, name="Ann"),
                          text="héllo", draft_id="t1")
    a = P.encode("chat.message", model, session="s", seq=4, msg_id="m", ts=1.5, ref="r")
    b = P.encode_data("chat.message", {"message_id": "c1", "author": {"role": "agent",
                      "name": "Ann"}, "text": "héllo", "draft_id": "t1", "edited": None},
                      session="s", seq=4, msg_id="m", ts=1.5, ref="r")
    assert a == b


def test_tokens_store_only_hashes_and_revoke(tmp_path: Path) -> None:
    relay_log = RelayLog(tmp_path / "r.sqlite3")
    tokens = Tokens(relay_log)
    row, _ = relay_log.create_session()
    tok = tokens.issue(TokenKind.CUSTOMER_SESSION, session_id=row.session_id)
    tid, _, secret = tok.partition(".")
    rec = tokens.verify(tok)
    assert rec is not None and rec.session_id == row.session_id
    assert rec.role is P.Role.CUSTOMER and rec.scope is P.Scope.SESSION
    db = sqlite3.connect(tmp_path / "r.sqlite3")
    stored = db.execute("SELECT secret_hash FROM tokens WHERE token_id = ?", (tid,)).fetchone()
    assert stored == (hash_secret(secret),)
    dump = "\n".join(db.iterdump())
    assert secret not in dump
    assert tokens.verify(f"{tid}.{'A' * len(secret)}") is None
    assert tokens.verify("garbage") is None
    assert tokens.revoke(tok) and not tokens.revoke(tok)
    assert tokens.verify(tok) is None
    with pytest.raises(ValueError):
        tokens.issue(TokenKind.AGENT_SESSION)  # a session token needs its session
    desk = tokens.issue(TokenKind.AGENT_DESK)
    assert (r := tokens.verify(desk)) is not None and r.scope is P.Scope.DESK
    relay_log.close()


def test_log_sequences_and_reload(tmp_path: Path) -> None:
    relay_log = RelayLog(tmp_path / "r.sqlite3")
    row, _ = relay_log.create_session(title="T", greeting="hello")
    assert row.customer_id is None and row.last_seq == 1  # no session defaults to a customer
    assert row.identity.state == "anonymous"
    for i in range(3):
        relay_log.append_chat(row, message_id=f"c{i}", role="customer", name="A",
                              text=f"t{i}", draft_id=None, ref=None)
    relay_log.append(row, P.ApprovalCreated(approval_id="a1", call_id="c", tool="t",
                                            description="d", arguments={},
                                            parameters_schema={}, expires_at=None))
    assert row.pending_approvals == 1 and row.last_seq == 5
    relay_log.append(row, P.SessionClosed(by="x"))
    with pytest.raises(ValueError):
        relay_log.append(row, P.DraftDelta(turn_id="t", offset=0, text="x"))  # ephemeral
    relay_log.close()
    again = RelayLog(tmp_path / "r.sqlite3")
    (_, loaded), = again.load_sessions()
    assert loaded.last_seq == 6 and loaded.state == "closed"
    assert loaded.last_message == "t2" and loaded.pending_approvals == 1
    assert [m["seq"] for m in again.messages(row.session_id)] == [1, 2, 3, 4, 5, 6]
    assert [t for t, _ in again.typed_frames_after(row.session_id, 4)] == [
        "approval.created", "session.closed"]
    again.close()


def test_token_bucket() -> None:
    now = [0.0]
    bucket = TokenBucket(rate=10, burst=3, clock=lambda: now[0])
    assert [bucket.take() for _ in range(4)] == [True, True, True, False]
    assert bucket.retry_after() == pytest.approx(0.1)
    now[0] += 0.1
    assert bucket.take() and not bucket.take()
    now[0] += 100
    assert sum(bucket.take() for _ in range(10)) == 3
