"""Insights recover exactly what the generator built, in-process and over the wire."""

from __future__ import annotations

import asyncio
import statistics
import time
from pathlib import Path

import pytest

from hitl_desktop.core.insights import EDIT_KINDS, InsightsReport
from hitl_desktop.host import insights
from hitl_desktop.host.conversation import ConversationStore
from tests.support.host import running_host
from tests.support.insights_gen import (
    AGENTS,
    DAY,
    GAP_FAMILIES,
    REPLY_DELAYS,
    T0,
    Expected,
    family_label,
    generate,
)
from tests.support.protocol_client import Client, token_of

N = 360  # every cycle of the generator turns over at least once


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Expected, InsightsReport]:
    data = tmp_path_factory.mktemp("insights") / "data"
    exp = generate(data, N)
    return data, exp, insights.report(data, T0, T0 + 30 * DAY)


def test_draft_outcomes_and_the_sent_as_is_ratio(built: tuple[Path, Expected,
                                                              InsightsReport]) -> None:
    _data, exp, r = built
    assert r.conversations == N and r.closed == exp.closed
    o = r.outcomes
    assert (o.sent_as_is, o.edited, o.replaced, o.discarded, o.unused, o.failed) == (
        exp.outcomes["sent_as_is"], exp.outcomes["edited"], exp.outcomes["replaced"],
        exp.outcomes["discarded"], exp.outcomes["unused"], exp.outcomes["failed"])
    assert o.drafts == N - exp.outcomes["failed"]
    assert o.written_from_scratch == exp.written_from_scratch
    assert o.acceptance == exp.sent_as_is_ratio == 180 / 324  # 10 of every 18 decided


def test_edit_sizes_and_kinds(built: tuple[Path, Expected, InsightsReport]) -> None:
    _data, exp, r = built
    e = r.edits
    assert e.changed == len(exp.distances) == 108
    assert e.distance.mean == pytest.approx(statistics.fmean(exp.distances), rel=1e-12)
    assert e.distance.median == pytest.approx(statistics.median(exp.distances), rel=1e-12)
    assert e.kinds == {k: exp.kinds.get(k, 0) for k in EDIT_KINDS}
    assert set(e.kinds.values()) == {18}  # each kind of edit was built 18 times
    by_label = {b.label: b.count for b in e.distance.buckets}
    # reworded 1/24 and opening 3/24 (≤0.1, ≤0.2), lengthened 8/32, removed 8/24, replaced 1
    assert by_label == {"≤0.1": 18, "≤0.2": 18, "≤0.3": 18, "≤0.4": 18, "≤0.5": 0,
                        "≤0.6": 0, "≤0.7": 0, "≤0.8": 0, "≤0.9": 0, "≤1.0": 36}


def test_reply_and_resolution_times(built: tuple[Path, Expected, InsightsReport]) -> None:
    _data, exp, r = built
    assert r.first_reply.count == N
    assert r.first_reply.median == statistics.median(exp.reply_times)
    label = {20.0: "≤30 s", 45.0: "≤1 min", 90.0: "≤2 min", 200.0: "≤5 min",
             600.0: "≤15 min", 1800.0: "≤1 h", 5000.0: ">1 h"}
    want = {lbl: sum(1 for t in exp.reply_times if t == d) for d, lbl in label.items()}
    assert {b.label: b.count for b in r.first_reply.buckets} == want
    assert set(REPLY_DELAYS) == set(label)
    assert r.resolution.count == exp.closed
    assert r.resolution.median == pytest.approx(statistics.median(exp.resolution_times))
    assert r.resolution.mean == pytest.approx(statistics.fmean(exp.resolution_times))


def test_per_representative(built: tuple[Path, Expected, InsightsReport]) -> None:
    _data, exp, r = built
    rows = {a.agent: a for a in r.agents}
    assert set(rows) == set(AGENTS)
    for name in AGENTS:
        assert rows[name].lines_sent == exp.agent_lines[name]
        assert rows[name].sent_as_is == exp.agent_as_is[name]
        assert rows[name].sessions_closed == exp.agent_closed[name]
        assert rows[name].first_replies == exp.agent_lines[name]
    decided = sum(a.approvals_decided for a in r.agents)
    assert decided == sum(len(v) for v in exp.decision_times.values())


def test_approvals_per_tool_with_reasons(built: tuple[Path, Expected, InsightsReport]) -> None:
    _data, exp, r = built
    tools = {t.tool: t for t in r.tools}
    assert set(tools) == set(exp.tools)
    for name, want in exp.tools.items():
        t = tools[name]
        assert (t.proposed, t.approved, t.edited, t.rejected, t.expired, t.failed) == (
            want["proposed"], want["approved"], want["edited"], want["rejected"],
            want["expired"], want["failed"]), name
        assert {x.reason: x.count for x in t.reasons} == dict(exp.reasons[name])
        assert t.decision_median_s == statistics.median(exp.decision_times[name])
    assert sum(t.rejected for t in r.tools) > 0 and sum(t.edited for t in r.tools) > 0


def test_articles_shown_cited_opened(built: tuple[Path, Expected, InsightsReport]) -> None:
    _data, exp, r = built
    arts = {a.article_id: a for a in r.articles}
    for article in set(exp.shown) | set(exp.cited) | set(exp.opened):
        a = arts[article]
        assert (a.shown, a.cited, a.opened) == (exp.shown[article], exp.cited[article],
                                                exp.opened[article]), article
    assert arts["faq/refunds"].opened == N // 4


def test_knowledge_gaps_cluster_by_family(built: tuple[Path, Expected,
                                                       InsightsReport]) -> None:
    _data, exp, r = built
    assert r.gap_questions == sum(exp.gaps.values())
    assert {g.label: g.count for g in r.gaps} == dict(exp.gaps)
    assert len(r.gaps) == len(GAP_FAMILIES)
    for g in r.gaps:
        assert g.weak_retrieval == exp.gap_weak[g.label]
        assert g.replaced == exp.gap_replaced[g.label]
        assert g.examples == exp.gap_examples[g.label]
    assert family_label(0) == "deliver islands overseas"


def test_the_period_selects_conversations_by_when_they_opened(
        built: tuple[Path, Expected, InsightsReport]) -> None:
    data, _exp, _r = built
    spacing = 30 * DAY / N
    half = insights.report(data, T0, T0 + 15 * DAY)  # T0 is mid-day: 16 UTC days
    assert half.conversations == sum(1 for i in range(N) if T0 + i * spacing < T0 + 15 * DAY)
    assert len(half.days) == 16 and sum(d.conversations for d in half.days) == half.conversations
    empty = insights.report(data, T0 - 10 * DAY, T0)
    assert empty.conversations == 0 and empty.outcomes.drafts == 0 and empty.gaps == []
    with pytest.raises(ValueError):
        insights.report(data, T0, T0 + 400 * DAY)


def test_the_naive_computation_agrees(built: tuple[Path, Expected, InsightsReport]) -> None:
    data, _exp, r = built
    naive = insights.naive_report(data, T0, T0 + 30 * DAY)
    assert naive.model_dump(exclude={"generated_at"}) == r.model_dump(exclude={"generated_at"})


def test_what_changed_in_one_conversation(built: tuple[Path, Expected,
                                                      InsightsReport]) -> None:
    data, _exp, _r = built
    (row,) = insights.changes(data, "s_000012")  # i % 20 == 12: the last sentence removed
    assert row.outcome == "edited" and row.kinds == ["shortened", "removed_sentence"]
    assert row.distance == pytest.approx(8 / 24)
    assert row.draft_text is not None and row.sent_text in row.draft_text
    (scratch,) = insights.changes(data, "s_000016")  # discarded, then written by hand
    assert scratch.outcome == "written_from_scratch" and scratch.draft_text is None


def test_a_real_send_is_measured_like_a_generated_one(tmp_path: Path) -> None:
    """The store's own record_sent (what the co-pilot calls) feeds the same figures."""
    data = tmp_path / "data"
    generate(data, 1)
    store = ConversationStore(data / "conversations.sqlite3")
    try:
        store.draft_started("t_live", "s_000000", "customer_message")
        store.draft_finished("t_live", "completed", text="We can refund it. It takes a week.")
        store.record_sent("s_000000", "c_live", "We can refund it.", "t_live", "Dana")
    finally:
        store.close()
    r = insights.report(data, T0, T0 + DAY)
    dana = next(a for a in r.agents if a.agent == "Dana")
    assert dana.edited == 1 and dana.lines_sent == 1
    assert r.edits.kinds["removed_sentence"] == 1


async def test_insights_over_the_wire_with_a_customer_chatting_beside(
        built: tuple[Path, Expected, InsightsReport], tmp_path: Path) -> None:
    """An agent asking for reports in a loop costs the host one report at a time, in a
    worker thread: a customer's chat line still reaches the desk within a blink."""
    src, exp, _r = built
    data = tmp_path / "data"
    data.mkdir()
    for f in src.iterdir():  # a copy: the host writes to its data dir
        (data / f.name).write_bytes(f.read_bytes())
    async with running_host(data) as host:
        agent = await Client.connect(host.local_url, token_of(host.desk_link))
        customer = await Client.connect(host.local_url, token_of(host.lobby_link))
        sid = customer.session
        assert sid is not None
        mid = await agent.send("insights.get", {"start": T0, "end": T0 + 30 * DAY})
        got = await agent.expect("insights.report", ref=mid, wait=30)
        report = InsightsReport.model_validate(got["data"]["report"])
        assert report.outcomes.sent_as_is == exp.outcomes["sent_as_is"]
        assert report.gap_questions == sum(exp.gaps.values())
        computed = host.relay.insights.computed

        async def flood() -> None:
            for k in range(6):  # distinct periods: no cache hit
                m = await agent.send("insights.get", {"start": T0, "end": T0 + (k + 1) * DAY})
                await agent.expect("insights.report", ref=m, wait=30)

        flooding = asyncio.create_task(flood())
        await asyncio.sleep(0.05)
        desk = await Client.connect(host.local_url, token_of(host.desk_link))
        began = time.monotonic()
        await customer.send("chat.send", {"text": "hello, is anyone there?"}, session=sid)
        await desk.expect("chat.message", session=sid, wait=5)
        assert time.monotonic() - began < 1.0
        await flooding
        assert host.relay.insights.computed == computed + 6
        # the same request again within the cache window is not computed twice
        m = await agent.send("insights.get", {"start": T0, "end": T0 + DAY})
        await agent.expect("insights.report", ref=m, wait=10)
        assert host.relay.insights.computed == computed + 6
        # what changed in one conversation
        m = await agent.send("insights.conversation", {}, session="s_000012")
        ch = await agent.expect("insights.changes", ref=m)
        assert ch["data"]["changes"][0]["kinds"] == ["shortened", "removed_sentence"]
        # customers may not ask; a bad period is refused with a clear message
        m = await customer.send("insights.get", {"start": T0, "end": T0 + DAY})
        err = await customer.expect("error", ref=m)
        assert err["data"]["code"] == "forbidden"
        m = await agent.send("insights.get", {"start": T0, "end": T0 + 400 * DAY})
        err = await agent.expect("error", ref=m)
        assert err["data"]["code"] == "bad_message" and "366 days" in err["data"]["message"]
        for c in (agent, customer, desk):
            await c.close()


async def test_opening_an_article_is_recorded(tmp_path: Path) -> None:
    """``article.get`` is the only place "opened" exists: the relay records it."""
    from hitl_desktop.host.copilot import build_copilot

    data = tmp_path / "data"
    await asyncio.to_thread(generate, data, 4)
    async with running_host(
            data, copilot_factory=lambda outbox: build_copilot(
                host_paths(data), _settings(), outbox, provider_override="offline")) as host:
        agent = await Client.connect(host.local_url, token_of(host.desk_link))
        m = await agent.send("article.get", {"article_id": "faq/refunds"})
        await agent.expect("article.content", ref=m, wait=30)
        m = await agent.send("article.get", {"article_id": "faq/nope"})
        await agent.expect("error", ref=m)
        await agent.close()
    r = insights.report(data, time.time() - 60, time.time() + 60)
    assert {a.article_id: a.opened for a in r.articles} == {"faq/refunds": 1}


def host_paths(data: Path):  # type: ignore[no-untyped-def]
    from hitl_desktop.config import resolve_paths

    return resolve_paths(data, data / "config")


def _settings():  # type: ignore[no-untyped-def]
    from hitl_desktop.config import Settings

    return Settings()


def test_approvals_cancelled_by_closing_are_nobodys_decision(tmp_path: Path) -> None:
    """Closing a session cancels its pending approvals in the closing agent's name: that
    is not an approval or a rejection by that agent, and no decision time."""
    from hitl_desktop.store.catalog_file import default_catalog
    from hitl_desktop.store.database import ShopDatabase

    async def scenario() -> str:
        async with running_host(tmp_path) as host:
            return host.create_session(customer_id="CUST1001").session_id

    sid = asyncio.run(scenario())
    shop = ShopDatabase.open(tmp_path, default_catalog())
    rec = shop.create_approval(sid, "c1", "cancel_order", {"order_id": "ORD1001"},
                               customer_id="CUST1001")
    [cancelled] = shop.cancel_pending(sid, "the session was closed by Dana", "Dana")
    assert cancelled.approval_id == rec.approval_id and cancelled.decided_by == "Dana"
    shop.close()
    rep = insights.report(tmp_path, time.time() - 3600, time.time() + 60)
    [row] = [t for t in rep.tools if t.tool == "cancel_order"]
    assert (row.proposed, row.approved, row.rejected, row.pending) == (1, 0, 0, 0)
    assert row.decision_median_s is None
    assert all(a.approvals_decided == 0 for a in rep.agents)
