"""The relay's rules without sockets: relay_core fed frames, hellos and log pages.

The role matrix is read from docs/PROTOCOL.md §6 (the table independent clients are
written from) and every row is run against ``authorize`` for every kind of connection
and every kind of envelope session; resume, replay pages, acks and the rate and error
limits are driven with plain values and a hand-moved clock.
"""

from __future__ import annotations

import itertools
import re
from pathlib import Path

import pytest

from hitl_desktop.core import protocol as P
from hitl_desktop.core.protocol import AGENT_ONLY_TYPES, ErrorCode, Role, Scope
from hitl_desktop.host import desk
from hitl_desktop.host import relay_core as core
from hitl_desktop.host.ratelimit import TokenBucket
from hitl_desktop.host.relay_core import (
    Buckets,
    FrameLimits,
    RelayConfig,
    Replays,
    SessionView,
    SyncDecision,
)
from tests.support.clock import ManualClock

DOC = (Path(__file__).resolve().parents[2] / "docs" / "PROTOCOL.md").read_text()
ROLES = (Role.CUSTOMER, Role.AGENT, Role.ADMIN)


def doc_matrix() -> dict[str, set[Role]]:
    """PROTOCOL.md §6's table: operation -> the roles marked ``yes``."""
    table = DOC[DOC.index("| client operation |"):]
    table = table[:table.index("\n\n")]
    out: dict[str, set[Role]] = {}
    for line in table.splitlines()[2:]:
        m = re.match(r"^\| `([a-z_.]+)` \| (.+) \|$", line)
        assert m, line
        cells = [c.strip() for c in m.group(2).split("|")]
        assert all(c in ("yes", "—") for c in cells), line
        out[m.group(1)] = {r for r, c in zip(ROLES, cells, strict=True) if c == "yes"}
    return out


MATRIX = doc_matrix()

OWN, OTHER, UNKNOWN = "s_own", "s_other", "s_unknown"
KNOWN = {OWN: "state of own", OTHER: "state of other"}

# every kind of connection a token can make (PROTOCOL.md §3): (role, bound session)
CONNECTIONS = {
    "customer-session": (Role.CUSTOMER, OWN),
    "agent-session": (Role.AGENT, OWN),
    "agent-desk": (Role.AGENT, None),
    "admin": (Role.ADMIN, None),
}


def test_doc_matrix_is_the_protocol_module_senders() -> None:
    """The doc's table and CLIENT_MESSAGES name the same operations and senders (the
    relay authorises from CLIENT_MESSAGES, clients are written from the doc)."""
    assert set(MATRIX) == set(P.CLIENT_MESSAGES)
    assert {t: set(s) for t, s in core.role_matrix().items()} == MATRIX


def _expected(type_: str, role: Role, bound: str | None,
              session: str | None) -> tuple[ErrorCode | None, str | None]:
    """The rule of §6 written out again, independently of relay_core."""
    if role not in MATRIX[type_]:
        return ErrorCode.FORBIDDEN, None
    if bound is not None and type_ in core.DESK_ONLY_TYPES:
        return ErrorCode.FORBIDDEN, None
    if not P.CLIENT_MESSAGES[type_].session_required:
        return None, None
    if bound is not None and session != bound:
        return ErrorCode.FORBIDDEN, None  # other sessions, existing or not
    if session not in KNOWN:
        return ErrorCode.NOT_FOUND, None
    return None, KNOWN[session]


CASES = list(itertools.product(sorted(MATRIX), sorted(CONNECTIONS), (OWN, OTHER, UNKNOWN)))


@pytest.mark.parametrize(("type_", "kind", "session"), CASES,
                         ids=[f"{t}-{k}-{s}" for t, k, s in CASES])
def test_every_row_of_the_role_matrix(type_: str, kind: str, session: str) -> None:
    role, bound = CONNECTIONS[kind]
    looked_up: list[str] = []

    def lookup(sid: str) -> str | None:
        looked_up.append(sid)
        return KNOWN.get(sid)

    refusal, state = core.authorize(role, bound, P.CLIENT_MESSAGES[type_], session, lookup)
    code, want_state = _expected(type_, role, bound, session)
    assert (refusal.code if refusal else None) == code
    assert state == want_state
    if refusal is not None:
        assert state is None
        assert refusal.message
        if code is ErrorCode.FORBIDDEN and role not in MATRIX[type_]:
            assert refusal.message == f"a {role.value} may not send {type_}"
    # a refused role or a foreign session is decided without asking whether it exists:
    # a session-bound client learns nothing about other sessions
    if code is ErrorCode.FORBIDDEN or not P.CLIENT_MESSAGES[type_].session_required:
        assert looked_up == []


def test_session_binding_says_forbidden_for_existing_and_unknown_alike() -> None:
    spec = P.CLIENT_MESSAGES["chat.send"]
    for role in (Role.CUSTOMER, Role.AGENT):
        a, _ = core.authorize(role, OWN, spec, OTHER, KNOWN.get)
        b, _ = core.authorize(role, OWN, spec, UNKNOWN, KNOWN.get)
        assert a == b == core.Refusal(ErrorCode.FORBIDDEN, "not your session")
    # desk scope: unknown is not_found, another session is fine
    refusal, _ = core.authorize(Role.AGENT, None, spec, UNKNOWN, KNOWN.get)
    assert refusal == core.Refusal(ErrorCode.NOT_FOUND, f"no session {UNKNOWN!r}")
    assert core.authorize(Role.AGENT, None, spec, OTHER, KNOWN.get) == (None, KNOWN[OTHER])


def test_desk_only_operations_refuse_session_bound_agents() -> None:
    """Issue 16: session agents are not representatives; of the desk's operations they
    may only add notes (the same list host/desk.py checks)."""
    assert desk.DESK_TYPES - {"note.add"} == core.DESK_ONLY_TYPES
    for type_ in core.DESK_ONLY_TYPES:
        spec = P.CLIENT_MESSAGES[type_]
        refusal, _ = core.authorize(Role.AGENT, OWN, spec, OWN, KNOWN.get)
        assert refusal == core.Refusal(ErrorCode.FORBIDDEN,
                                       f"only desk representatives may send {type_}")
        for role in (Role.AGENT, Role.ADMIN):
            assert core.authorize(role, None, spec, OWN, KNOWN.get)[0] is None
    note = P.CLIENT_MESSAGES["note.add"]
    assert core.authorize(Role.AGENT, OWN, note, OWN, KNOWN.get) == (None, KNOWN[OWN])


def test_what_each_role_receives() -> None:
    """§6: customers get the session's own frames, never an agent-only type; agents and
    admins get everything."""
    customer_types = {"session.opened", "session.closed", "session.reopened", "session.gap",
                      "chat.message", "chat.delivered", "typing", "identity.state"}
    for type_ in P.HOST_MESSAGES:
        assert core.may_receive(Role.AGENT, type_)
        assert core.may_receive(Role.ADMIN, type_)
        assert core.may_receive(Role.CUSTOMER, type_) == (type_ not in AGENT_ONLY_TYPES)
    for type_ in customer_types:
        assert core.may_receive(Role.CUSTOMER, type_), type_
    for type_ in ("draft.started", "draft.completed", "approval.created", "identity.changed",
                  "session.updated", "assistant.status", "articles", "tool.call"):
        assert not core.may_receive(Role.CUSTOMER, type_), type_


# ----------------------------------------------------------------------------- limits


def _limits(clock: ManualClock, **cfg: float) -> FrameLimits:
    config = RelayConfig(**cfg)  # type: ignore[arg-type]
    return FrameLimits(config, TokenBucket(config.rate, config.burst, clock), clock)


def test_rate_budget_counts_bytes_and_refills_with_the_clock() -> None:
    clock = ManualClock(1000.0)
    lim = _limits(clock, rate=20.0, burst=60.0, cost_bytes=1000)
    # a light frame costs ~1 unit: a burst of 60 passes, the 61st is dropped
    assert all(lim.admit(10) is None for _ in range(59))
    drop = lim.admit(10)
    assert drop is not None and drop.notify and not drop.close
    assert drop.retry_after == pytest.approx(1.01 / 20 - (60 - 59 * 1.01) / 20, abs=0.01)
    clock.advance(1.0)  # 20 units back
    # an 8,000-character line costs 9 units: two fit, the third does not
    assert lim.admit(8000) is None
    assert lim.admit(8000) is None
    assert lim.admit(8000) is not None


def test_heavy_operations_cost_more() -> None:
    clock = ManualClock(0.0)
    lim = _limits(clock, rate=1.0, burst=12.0, heavy_cost=5.0)
    assert lim.admit_heavy("chat.send") is None  # not heavy: no extra cost at all
    for type_ in core.HEAVY_TYPES:
        assert type_ in P.CLIENT_MESSAGES
    assert lim.admit(0) is None and lim.admit_heavy("kb.search") is None  # 6
    assert lim.admit(0) is None and lim.admit_heavy("session.sync") is None  # 12
    assert lim.admit(0) is not None  # empty


def test_rate_drops_notify_once_per_run_then_close() -> None:
    clock = ManualClock(0.0)
    lim = _limits(clock, rate=1.0, burst=1.0, max_rate_drops=50)
    assert lim.admit(0) is None
    drops = [lim.admit(0) for _ in range(51)]
    assert all(d is not None for d in drops)
    notified = [i + 1 for i, d in enumerate(drops) if d is not None and d.notify]
    assert notified == [1, 21, 41, 51]  # one error per run of 20, then the closing one
    last = drops[-1]
    assert last is not None and last.close and last.retry_after is None
    assert not any(d is not None and d.close for d in drops[:-1])
    assert drops[0] is not None and drops[0].retry_after == pytest.approx(1.0)


def test_one_bucket_per_token_is_shared_by_its_connections() -> None:
    clock = ManualClock(0.0)
    config = RelayConfig(rate=1.0, burst=3.0)
    tokens = Buckets(config.rate, config.burst, max_keys=100, clock=clock)
    a = FrameLimits(config, tokens.get("tok1"), clock)
    b = FrameLimits(config, tokens.get("tok1"), clock)  # a second socket, same link
    other = FrameLimits(config, tokens.get("tok2"), clock)
    assert a.admit(0) is None and b.admit(0) is None
    assert a.admit(100) is not None  # 1.1 > 1 left
    assert b.admit(0) is None
    assert b.admit(0) is not None  # the link's budget is spent, whichever socket sends
    assert other.admit(0) is None  # another link is not affected
    reconnected = FrameLimits(config, tokens.get("tok1"), clock)
    assert reconnected.admit(0) is not None  # reconnecting does not refill it


def test_buckets_forget_idle_keys_past_the_bound() -> None:
    clock = ManualClock(0.0)
    buckets = Buckets(1.0, 1.0, max_keys=3, clock=clock)
    for key in "abcd":
        assert buckets.get(key).take()
    assert len(buckets) == 4
    assert not buckets.get("a").take()  # known key: no new bucket, no refill
    buckets.get("e", keep=lambda: {"b"})  # past the bound: only live keys survive
    assert len(buckets) == 2 and buckets.peek("b") is not None and buckets.peek("a") is None
    assert buckets.get("a").take()  # a forgotten key starts afresh


def test_error_burst_closes_only_within_the_window() -> None:
    clock = ManualClock(0.0)
    lim = _limits(clock, max_errors=100, error_window=10.0)
    assert not any(lim.rejected() for _ in range(100))
    clock.advance(10.5)  # those fell out of the window
    assert not any(lim.rejected() for _ in range(100))
    assert lim.rejected()  # the 101st within 10 s


def test_connection_caps() -> None:
    cfg = RelayConfig(max_per_session_token=4, max_per_desk_token=64, max_per_session=16)
    assert core.over_cap(cfg, Scope.SESSION, 3, 0) is None
    assert core.over_cap(cfg, Scope.SESSION, 4, 0) == "this link already has 4 open connections"
    assert core.over_cap(cfg, Scope.DESK, 63, None) is None
    assert core.over_cap(cfg, Scope.DESK, 64, None) is not None
    assert core.over_cap(cfg, Scope.SESSION, 0, 16) == (
        "this chat already has 16 open connections")
    assert core.over_cap(cfg, Scope.DESK, 0, None) is None  # desk: no session cap


def test_slow_reader_limit() -> None:
    cfg = RelayConfig(max_queue=20_000, max_queue_bytes=8 * 1024 * 1024)
    assert not core.over_queue(cfg, 19_999, 8 * 1024 * 1024)
    assert core.over_queue(cfg, 20_000, 0)
    assert core.over_queue(cfg, 1, 8 * 1024 * 1024 + 1)


# ----------------------------------------------------------------------------- resume


SESSIONS = [SessionView("s1", True, 10), SessionView("s2", False, 5),
            SessionView("s3", True, 3), SessionView("s4", False, 7)]


def test_resume_session_bound_replays_its_session_from_zero_if_missing() -> None:
    assert core.resume_plan("s2", SESSIONS, {}) == ([("s2", 0)], [])
    assert core.resume_plan("s2", SESSIONS, {"s2": 3, "s1": 0}) == ([("s2", 3)], [])
    assert core.resume_plan("s2", SESSIONS, {"s2": 5}) == ([], ["s2"])
    assert core.resume_plan("s2", SESSIONS, {"s2": 99}) == ([], ["s2"])  # beyond: nothing
    assert core.resume_plan("s2", SESSIONS, {"s2": -4}) == ([("s2", 0)], [])


def test_resume_desk_replays_exactly_the_sessions_its_resume_lists() -> None:
    # issue 18: a desk hello replays nothing it did not ask for (open or closed)
    replays, settled = core.resume_plan(None, SESSIONS, {})
    assert replays == [] and settled == []
    replays, settled = core.resume_plan(None, SESSIONS, {"s1": 10, "s4": 2, "s3": 0, "s9": 4})
    assert replays == [("s3", 0), ("s4", 2)]  # open s3 from 0, closed s4 after 2
    assert settled == ["s1"]  # up to date: no replay, live frames may follow at once
    # s2 (closed) is not listed: nothing; a session the host does not know (s9) is not
    # replayed and not an error


def _log(n: int) -> list[tuple[int, str, str]]:
    """A session's log: every third message agent-only."""
    types = ["chat.message", "draft.started", "typing"]
    return [(seq, types[seq % 3] if seq % 3 != 2 else "draft.completed", f"f{seq}")
            for seq in range(1, n + 1)]


def _pages(rows: list[tuple[int, str, str]], replays: Replays, role: Role,
           page: int) -> list[str]:
    """Drive a connection's replays page by page, as the relay's writer does."""
    out: list[str] = []
    last_seq = rows[-1][0]
    while (head := replays.next()) is not None:
        sid, after = head
        chunk = [r for r in rows if r[0] > after][:page]
        frames, last, nbytes = core.page_frames(chunk, role, after)
        assert nbytes == sum(len(r[2]) for r in chunk)
        out += frames
        replays.advance(sid, last, last_seq)
    return out


@pytest.mark.parametrize("role", [Role.CUSTOMER, Role.AGENT])
@pytest.mark.parametrize("after", [0, 1, 7, 24, 25, 30])
def test_replay_sends_exactly_what_was_missed_in_order(role: Role, after: int) -> None:
    rows = _log(25)
    replays = Replays()
    owed = replays.add("s1", after, 25)
    assert owed == (after < 25)
    got = _pages(rows, replays, role, page=4)
    want = [f for seq, t, f in rows if seq > after and core.may_receive(role, t)]
    assert got == want
    assert not replays and "s1" not in replays


def test_replay_ends_when_the_log_has_no_more() -> None:
    replays = Replays()
    assert replays.add("s1", 3, 10)
    assert not replays.advance("s1", 6, 10)
    assert replays["s1"] == 6
    assert replays.advance("s1", 6, 10)  # an empty page: done, not stuck
    assert "s1" not in replays


def test_session_sync_during_a_replay() -> None:
    replays = Replays()
    assert replays.sync("s1", 0, 10) is SyncDecision.REPLAY
    replays.advance("s1", 4, 10)
    assert replays.sync("s1", 4, 10) is SyncDecision.COALESCE  # already on its way
    assert replays.sync("s1", 9, 10) is SyncDecision.COALESCE
    assert replays.sync("s1", 2, 10) is SyncDecision.CONFLICT  # asks for what was sent
    assert replays.sync("s2", 5, 5) is SyncDecision.NOTHING
    assert "s2" not in replays
    assert replays.sync("s2", 1, 5) is SyncDecision.REPLAY
    assert list(replays) == ["s1", "s2"]  # replayed in the order asked


def test_hello_resume_map_is_capped() -> None:
    """A hello may name at most 5,000 sessions (bounded work before any check)."""
    ok = P.encode("hello", P.Hello(token="t" * 20, resume={f"s{i}": 1 for i in range(5000)}))
    P.decode_client(ok)
    big = ok.replace('"s0":1', '"s0":1,"extra":1')
    with pytest.raises(P.ProtocolError) as err:
        P.decode_client(big)
    assert err.value.code is ErrorCode.BAD_MESSAGE


def test_ack_receipts_move_forward_only_and_are_clamped() -> None:
    assert core.ack_to_send(5, 10, 0) == 5
    assert core.ack_to_send(50, 10, 5) == 10  # beyond the last seq: clamped
    assert core.ack_to_send(4, 10, 5) is None
    assert core.ack_to_send(5, 10, 5) is None
    assert core.ack_to_send(0, 10, 0) is None


def test_unclean_stop_gap() -> None:
    gap = core.unclean_gap(17, 256)
    assert gap is not None and (gap.first_seq, gap.last_seq) == (18, 256)
    assert "17" in gap.reason
    assert core.unclean_gap(256, 256) is None


def test_session_pages_are_most_recent_first_and_name_every_session_once() -> None:
    items = [(float(i % 97), f"s{i:04d}") for i in range(1200)]  # ties in activity
    seen: list[tuple[float, str]] = []
    after: core.SessionKey | None = None
    pages = 0
    while True:
        page, after = core.session_page(items, lambda x: x, after, 500)
        pages += 1
        assert len(page) <= 500
        assert page == sorted(page, reverse=True)
        seen.extend(page)
        if after is None:
            break
        assert core.decode_cursor(core.encode_cursor(after)) == after
    assert pages == 3
    assert seen == sorted(items, reverse=True)  # every one exactly once, newest first
    assert core.session_page([], lambda x: x, None, 200) == ([], None)
    assert core.session_page(items[:200], lambda x: x, None, 200)[1] is None  # exactly full


def test_session_pages_skip_what_moved_up_meanwhile() -> None:
    """A session whose activity grows while a client pages moves above the cursor: it
    is not named twice (the client gets it as session.updated)."""
    items = {f"s{i}": float(i) for i in range(10)}
    key = lambda sid: (items[sid], sid)  # noqa: E731
    page, after = core.session_page(items, key, None, 4)
    assert page == ["s9", "s8", "s7", "s6"]
    items["s2"] = 100.0  # s2 chats
    rest: list[str] = []
    while after is not None:
        page, after = core.session_page(items, key, after, 4)
        rest.extend(page)
    assert rest == ["s5", "s4", "s3", "s1", "s0"]


def test_bad_cursors_are_refused() -> None:
    for bad in ("", "x", "1.5", "nan~s1", "inf~s1", "1.5~", "abc~s1", "1~" + "s" * 65):
        assert core.decode_cursor(bad) is None, bad
    assert core.decode_cursor("1767225600.123~s_1") == (1767225600.123, "s_1")
