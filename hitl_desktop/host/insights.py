"""Insights computed from a host's durable stores (read-only), for the support lead.

Where the figures come from (all in the data dir):

* ``relay.sqlite3`` (:mod:`host.log`): sessions (opened / closed), every chat line
  with its author, ``draft.started`` (which customer line a draft answers),
  ``articles`` (what retrieval showed, with scores), ``session.closed`` (who closed);
* ``conversations.sqlite3`` (:mod:`host.conversation`): every draft with its final
  state and citations, every agent line next to the draft it came from;
* ``shop.sqlite3`` (:mod:`store.database`): approvals with who decided, when, why;
* ``insights.sqlite3`` (this module): which articles representatives opened
  (``article.get`` was recorded nowhere else).

Why one SQL pass per store and not the store classes' per-session readers: a
30-day report reads ~100,000 log rows; SQLite extracts the few JSON fields in C
(``json_extract``) and the Python side only folds tuples. :func:`naive_report`
computes the same report the obvious way (per session, ``json.loads`` of every
frame, a textbook edit distance) for the bench's ratio and as a cross-check.

Everything here blocks: the relay runs it in a worker thread (``asyncio.to_thread``),
each call on its own read-only connection, so the event loop never waits on it.
"""

from __future__ import annotations

import asyncio
import functools
import json
import logging
import sqlite3
import time
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

from hitl_desktop.core.insights import (
    DISTANCE_BUCKETS,
    EDIT_KINDS,
    MAX_AGENTS,
    MAX_ARTICLES,
    MAX_EXAMPLE_CHARS,
    MAX_GAP_CLUSTERS,
    MAX_GAP_EXAMPLES,
    MAX_PERIOD_DAYS,
    MAX_REASON_CHARS,
    MAX_REASONS_PER_TOOL,
    AgentRow,
    ArticleRow,
    ChangeRow,
    DayRow,
    Distance,
    DraftOutcomes,
    EditStats,
    GapCluster,
    InsightsReport,
    ReasonCount,
    ToolRow,
    cluster,
    cluster_label,
    distribution,
    levenshtein,
    outcome_of,
)
from hitl_desktop.core.threads import StoreLock, StoreWorker

log = logging.getLogger(__name__)

INSIGHTS_FILE: Final = "insights.sqlite3"
RELAY_FILE: Final = "relay.sqlite3"
CONVERSATIONS_FILE: Final = "conversations.sqlite3"
SHOP_FILE: Final = "shop.sqlite3"
#: a turn whose best article scored below this (or that showed none) had weak retrieval
WEAK_SCORE: Final = 0.3
#: at most this many gap questions are clustered per report (the earliest ones)
MAX_GAP_QUESTIONS: Final = 20_000
MAX_CHANGES: Final = 200
DAY: Final = 86400.0

WAITS_FOR_ISSUE_16: Final = (
    "Per-representative resolution time and workload wait for assignment (issue 16): "
    "sessions have no owner yet, so 'sessions_closed' counts who pressed close."
)

_OPENS_SCHEMA = """
CREATE TABLE IF NOT EXISTS article_opens (
    ts         REAL NOT NULL,
    article_id TEXT NOT NULL,
    agent      TEXT NOT NULL,
    session_id TEXT
);
CREATE INDEX IF NOT EXISTS article_opens_by_ts ON article_opens (ts);
"""


class ArticleOpens:
    """Records each ``article.get`` by a representative (one tiny INSERT, WAL)."""

    def __init__(self, data_dir: Path) -> None:
        data_dir.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(data_dir / INSIGHTS_FILE, isolation_level=None,
                                   check_same_thread=False)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.executescript(_OPENS_SCHEMA)
        self._lock = StoreLock("the insights store")

    def opened(self, article_id: str, agent: str, session_id: str | None,
               ts: float | None = None) -> None:
        with self._lock:
            self._db.execute(
                "INSERT INTO article_opens (ts, article_id, agent, session_id) VALUES (?,?,?,?)",
                (time.time() if ts is None else ts, article_id, agent, session_id))

    def opened_many(self, rows: Iterable[tuple[float, str, str, str | None]]) -> None:
        with self._lock, self._db:
            self._db.execute("BEGIN")
            self._db.executemany(
                "INSERT INTO article_opens (ts, article_id, agent, session_id) VALUES (?,?,?,?)",
                rows)

    def close(self) -> None:
        with self._lock:
            self._db.close()


# --------------------------------------------------------------------- extracted facts


@dataclass(slots=True)
class _Facts:
    """The rows a report is folded from; both extractors fill the same shape."""

    sessions: list[tuple[str, float, float | None]] = field(default_factory=list)
    # (session, type, ts, role, name, text, turn_id, reason) in log order per session;
    # types: chat.message, draft.started, session.closed (name = who closed)
    timeline: list[tuple[str, str, float, str | None, str | None, str | None, str | None,
                         str | None]] = field(default_factory=list)
    drafts: list[tuple[str, str, str, float]] = field(default_factory=list)  # turn, sid, state, t
    # (message, session, draft_id, agent, draft_text, sent_text, sent_at)
    sent: list[tuple[str, str, str | None, str, str | None, str, float]] = field(
        default_factory=list)
    # (tool, state, proposed json, approved json, created, decided_by, decided_at, reason)
    approvals: list[tuple[str, str, str, str | None, float, str | None, float | None,
                          str | None]] = field(default_factory=list)
    shown: list[tuple[str, str, str, float]] = field(default_factory=list)  # turn, art, title, s
    cited: list[tuple[str, str]] = field(default_factory=list)  # article, title
    opened: list[tuple[str, int]] = field(default_factory=list)  # article, times
    missing: list[str] = field(default_factory=list)  # stores not found


def _ro(path: Path) -> str:
    return f"file:{path.as_posix()}?mode=ro"


def _connect(data_dir: Path) -> tuple[sqlite3.Connection, list[str], list[str]]:
    """A read-only connection to the relay log with the other stores attached;
    returns it, the attached schema names and the stores that are missing."""
    relay = data_dir / RELAY_FILE
    if not relay.exists():
        raise FileNotFoundError(f"no relay log in {data_dir}")
    db = sqlite3.connect(_ro(relay), uri=True, isolation_level=None, check_same_thread=False)
    db.execute("PRAGMA busy_timeout=5000")
    attached, missing = [], []
    for name, file in (("conv", CONVERSATIONS_FILE), ("shop", SHOP_FILE),
                       ("ins", INSIGHTS_FILE)):
        if (data_dir / file).exists():
            db.execute("ATTACH DATABASE ? AS " + name, (_ro(data_dir / file),))
            attached.append(name)
        else:
            missing.append(file)
    return db, attached, missing


def _extract_sql(data_dir: Path, start: float, end: float) -> _Facts:
    """All facts of sessions opened in [start, end), one query per kind of fact."""
    db, attached, missing = _connect(data_dir)
    f = _Facts(missing=missing)
    try:
        db.execute("BEGIN")  # one snapshot across the attached files
        db.execute("CREATE TEMP TABLE p (session_id TEXT PRIMARY KEY, created_at REAL,"
                   " closed_at REAL)")
        db.execute("INSERT INTO p SELECT session_id, created_at, closed_at FROM main.sessions"
                   " WHERE created_at >= ? AND created_at < ?", (start, end))
        f.sessions = db.execute("SELECT session_id, created_at, closed_at FROM p").fetchall()
        f.timeline = db.execute(
            "SELECT m.session_id, m.type, m.ts,"
            " json_extract(m.frame, '$.data.author.role'),"
            " CASE m.type WHEN 'session.closed' THEN json_extract(m.frame, '$.data.by')"
            "  ELSE json_extract(m.frame, '$.data.author.name') END,"
            " CASE WHEN m.type = 'chat.message'"
            "  AND json_extract(m.frame, '$.data.author.role') = 'customer'"
            "  THEN json_extract(m.frame, '$.data.text') END,"
            " json_extract(m.frame, '$.data.turn_id'), json_extract(m.frame, '$.data.reason')"
            " FROM p JOIN main.messages m ON m.session_id = p.session_id"
            " WHERE m.type IN ('chat.message', 'draft.started', 'session.closed')"
            " ORDER BY m.session_id, m.seq").fetchall()
        f.shown = db.execute(
            "SELECT json_extract(m.frame, '$.data.turn_id'), json_extract(j.value, '$.article_id'),"
            " json_extract(j.value, '$.title'), json_extract(j.value, '$.score')"
            " FROM p JOIN main.messages m ON m.session_id = p.session_id,"
            " json_each(m.frame, '$.data.articles') j WHERE m.type = 'articles'").fetchall()
        if "conv" in attached:
            f.drafts = db.execute(
                "SELECT d.turn_id, d.session_id, d.state, d.created_at FROM conv.drafts d"
                " JOIN p ON p.session_id = d.session_id").fetchall()
            f.sent = db.execute(
                "SELECT s.message_id, s.session_id, s.draft_id, s.agent, s.draft_text,"
                " s.sent_text, s.sent_at FROM conv.sent s JOIN p ON p.session_id = s.session_id"
                " ORDER BY s.sent_at, s.message_id").fetchall()
            f.cited = db.execute(
                "SELECT json_extract(j.value, '$.article_id'), json_extract(j.value, '$.title')"
                " FROM conv.drafts d JOIN p ON p.session_id = d.session_id,"
                " json_each(d.citations) j WHERE d.citations != '[]'").fetchall()
        if "shop" in attached:
            f.approvals = db.execute(
                "SELECT a.tool, a.state, a.proposed_arguments, a.approved_arguments,"
                " a.created_at, a.decided_by, a.decided_at, a.reason"
                " FROM shop.approvals a JOIN p ON p.session_id = a.session_id").fetchall()
        if "ins" in attached:
            f.opened = db.execute(
                "SELECT article_id, COUNT(*) FROM ins.article_opens WHERE ts >= ? AND ts < ?"
                " GROUP BY article_id", (start, end)).fetchall()
        db.execute("COMMIT")
    finally:
        db.close()
    return f


def _extract_naive(data_dir: Path, start: float, end: float) -> _Facts:
    """The same facts the obvious way: every row fetched, every frame ``json.loads``-ed
    in Python, session by session (for the bench's ratio and as a cross-check)."""
    db, attached, missing = _connect(data_dir)
    f = _Facts(missing=missing)
    try:
        for sid, created, closed in db.execute(
                "SELECT session_id, created_at, closed_at FROM main.sessions").fetchall():
            if not start <= created < end:
                continue
            f.sessions.append((sid, created, closed))
            for type_, ts, frame in db.execute(
                    "SELECT type, ts, frame FROM main.messages WHERE session_id = ?"
                    " ORDER BY seq", (sid,)).fetchall():
                data = json.loads(frame)["data"]
                if type_ == "chat.message":
                    role = data["author"]["role"]
                    f.timeline.append((sid, type_, ts, role, data["author"]["name"],
                                       data["text"] if role == "customer" else None, None, None))
                elif type_ == "draft.started":
                    f.timeline.append((sid, type_, ts, None, None, None, data["turn_id"],
                                       data["reason"]))
                elif type_ == "session.closed":
                    f.timeline.append((sid, type_, ts, None, data["by"], None, None, None))
                elif type_ == "articles":
                    f.shown.extend((data["turn_id"], a["article_id"], a["title"], a["score"])
                                   for a in data["articles"])
            if "conv" in attached:
                for turn, state, created_at, citations in db.execute(
                        "SELECT turn_id, state, created_at, citations FROM conv.drafts"
                        " WHERE session_id = ?", (sid,)).fetchall():
                    f.drafts.append((turn, sid, state, created_at))
                    f.cited.extend((c["article_id"], c["title"]) for c in json.loads(citations))
                f.sent.extend(db.execute(
                    "SELECT message_id, session_id, draft_id, agent, draft_text, sent_text,"
                    " sent_at FROM conv.sent WHERE session_id = ?", (sid,)).fetchall())
            if "shop" in attached:
                f.approvals.extend(db.execute(
                    "SELECT tool, state, proposed_arguments, approved_arguments, created_at,"
                    " decided_by, decided_at, reason FROM shop.approvals WHERE session_id = ?",
                    (sid,)).fetchall())
        f.sent.sort(key=lambda r: (r[6], r[0]))
        if "ins" in attached:
            opened: Counter[str] = Counter()
            for ts, article in db.execute("SELECT ts, article_id FROM ins.article_opens"):
                if start <= ts < end:
                    opened[article] += 1
            f.opened = list(opened.items())
    finally:
        db.close()
    return f


def textbook_levenshtein(a: Sequence[str], b: Sequence[str]) -> int:
    """Levenshtein distance by the full dynamic programme (the naive baseline)."""
    if not a or not b:
        return max(len(a), len(b))
    prev = list(range(len(b) + 1))
    for i, x in enumerate(a, 1):
        cur = [i]
        for j, y in enumerate(b, 1):
            cur.append(min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (x != y)))
        prev = cur
    return prev[-1]


# --------------------------------------------------------------------- folding


def _day(ts: float) -> str:
    """The UTC day of ``ts`` as YYYY-MM-DD (a report asks ~20,000 times: memoised)."""
    return _day_name(int(ts // DAY))


@functools.lru_cache(maxsize=4096)
def _day_name(n: int) -> str:
    return time.strftime("%Y-%m-%d", time.gmtime(n * DAY))


def _median(values: Sequence[float]) -> float | None:
    return distribution(values).median if values else None


def _fold(f: _Facts, start: float, end: float, weak_score: float,
          lev: Distance) -> InsightsReport:
    """Fold the facts into a report (shared by both extractors, so they agree)."""
    # sent lines: outcome per line, per agent, per draft
    by_draft: dict[str, tuple[str, float | None, list[str]]] = {}
    agents: dict[str, dict[str, Any]] = defaultdict(lambda: defaultdict(float))
    dist_by_agent: dict[str, list[float]] = defaultdict(list)
    scratch = 0
    for _msg, _sid, draft_id, agent, draft_text, sent_text, _at in f.sent:
        outcome, d, kinds = outcome_of(draft_text, sent_text, lev)
        a = agents[agent]
        a["lines_sent"] += 1
        a[outcome] += 1
        if outcome == "written_from_scratch":
            scratch += 1
        elif draft_id is not None and draft_id not in by_draft:
            by_draft[draft_id] = (outcome, d, kinds)
            if d is not None:
                dist_by_agent[agent].append(d)

    counts: Counter[str] = Counter()
    kinds_count: Counter[str] = Counter({k: 0 for k in EDIT_KINDS})
    changed: list[float] = []
    per_day: dict[str, Counter[str]] = defaultdict(Counter)
    draft_outcome: dict[str, str] = {}
    for turn, _sid, state, created in f.drafts:
        hit = by_draft.get(turn)
        result: str
        if hit is not None:
            result = hit[0]
            if result in ("edited", "replaced"):
                assert hit[1] is not None
                changed.append(hit[1])
            if result == "edited":
                kinds_count.update(hit[2])
        elif state == "discarded":
            result = "discarded"
        elif state in ("completed", "stale", "sent"):
            result = "unused"
        else:
            result = "failed"
        counts[result] += 1
        draft_outcome[turn] = result
        per_day[_day(created)][result] += 1
    outcomes = DraftOutcomes(
        drafts=sum(counts.values()) - counts["failed"], sent_as_is=counts["sent_as_is"],
        edited=counts["edited"], replaced=counts["replaced"], discarded=counts["discarded"],
        unused=counts["unused"], failed=counts["failed"], written_from_scratch=scratch)
    edits = EditStats(changed=len(changed), distance=distribution(changed, DISTANCE_BUCKETS),
                      kinds=dict(kinds_count))

    # timeline: first reply, who replied first, who closed, which question a turn answers
    sessions = {sid: (created, closed) for sid, created, closed in f.sessions}
    first_customer: dict[str, float] = {}
    first_reply: dict[str, tuple[float, str]] = {}
    closer: dict[str, str] = {}
    question: dict[str, tuple[float, str, str]] = {}  # turn -> (ts, session, text)
    last_question: dict[str, tuple[float, str]] = {}
    for sid, type_, ts, role, name, line, turn_id, reason in f.timeline:
        if type_ == "chat.message":
            if role == "customer":
                first_customer.setdefault(sid, ts)
                last_question[sid] = (ts, line or "")
            elif sid in first_customer and sid not in first_reply:
                first_reply[sid] = (ts - first_customer[sid], name or "?")
        elif type_ == "draft.started":
            if reason == "customer_message" and sid in last_question and turn_id:
                q_ts, q_text = last_question[sid]
                question[turn_id] = (q_ts, sid, q_text)
        elif type_ == "session.closed" and name:
            closer[sid] = name
    reply_times = [t for t, _ in first_reply.values()]
    resolution = [closed - first_customer.get(sid, created)
                  for sid, (created, closed) in sessions.items() if closed is not None]
    replies_by: dict[str, list[float]] = defaultdict(list)
    for t, name in first_reply.values():
        replies_by[name].append(t)
    closed_by = Counter(closer.values())

    # approvals per tool and per deciding agent
    tools: dict[str, Counter[str]] = defaultdict(Counter)
    decisions: dict[str, list[float]] = defaultdict(list)
    reasons: dict[str, Counter[str]] = defaultdict(Counter)
    decided_by: dict[str, Counter[str]] = defaultdict(Counter)
    for tool, state, proposed, approved, created, by, at, reason in f.approvals:
        c = tools[tool]
        c["proposed"] += 1
        if state in ("executed", "failed", "approved"):
            c["approved"] += 1
            if state == "failed":
                c["failed"] += 1
            if approved is not None and json.loads(approved) != json.loads(proposed):
                c["edited"] += 1
        elif state in ("rejected", "expired", "pending"):
            c[state] += 1
        if state == "rejected":
            reasons[tool][(reason or "").strip()[:MAX_REASON_CHARS] or "(no reason)"] += 1
        # a representative's decision: not an expiry, nor a cancel by closing the session
        if state not in ("expired", "cancelled", "pending") and by is not None \
                and at is not None:
            decisions[tool].append(at - created)
            decided_by[by]["decided"] += 1
            decided_by[by]["rejected" if state == "rejected" else "approved"] += 1
    tool_rows = [
        ToolRow(tool=t, proposed=c["proposed"], approved=c["approved"], edited=c["edited"],
                rejected=c["rejected"], expired=c["expired"], pending=c["pending"],
                failed=c["failed"], decision_median_s=_median(decisions[t]),
                reasons=[ReasonCount(reason=r, count=n) for r, n in sorted(
                    reasons[t].items(), key=lambda kv: (-kv[1], kv[0]))[:MAX_REASONS_PER_TOOL]])
        for t, c in sorted(tools.items(), key=lambda kv: (-kv[1]["proposed"], kv[0]))]

    names = set(agents) | set(replies_by) | set(decided_by) | set(closed_by)
    agent_rows = [
        AgentRow(
            agent=n, lines_sent=int(agents[n]["lines_sent"]) if n in agents else 0,
            sent_as_is=int(agents[n]["sent_as_is"]) if n in agents else 0,
            edited=int(agents[n]["edited"]) if n in agents else 0,
            replaced=int(agents[n]["replaced"]) if n in agents else 0,
            written_from_scratch=int(agents[n]["written_from_scratch"]) if n in agents else 0,
            mean_distance=(sum(dist_by_agent[n]) / len(dist_by_agent[n])
                           if dist_by_agent.get(n) else None),
            first_replies=len(replies_by.get(n, ())),
            first_reply_median_s=_median(replies_by.get(n, [])),
            approvals_decided=decided_by[n]["decided"] if n in decided_by else 0,
            approvals_approved=decided_by[n]["approved"] if n in decided_by else 0,
            approvals_rejected=decided_by[n]["rejected"] if n in decided_by else 0,
            sessions_closed=closed_by.get(n, 0))
        for n in names]
    agent_rows.sort(key=lambda r: (-r.lines_sent, r.agent))

    # articles: shown per turn (once), cited, opened; best score per turn
    titles: dict[str, str] = {}
    shown_turns: dict[str, set[str]] = defaultdict(set)
    best: dict[str, float] = {}
    for turn, article, title, score in f.shown:
        titles.setdefault(article, title)
        shown_turns[article].add(turn)
        s = float(score or 0.0)
        best[turn] = max(best.get(turn, s), s)
    cited: Counter[str] = Counter()
    for article, title in f.cited:
        titles.setdefault(article, title)
        cited[article] += 1
    opened = dict(f.opened)
    ids = set(shown_turns) | set(cited) | set(opened)
    article_rows = sorted(
        (ArticleRow(article_id=a, title=titles.get(a, a), shown=len(shown_turns.get(a, ())),
                    cited=cited.get(a, 0), opened=int(opened.get(a, 0))) for a in ids),
        key=lambda r: (-r.shown, -r.cited, -r.opened, r.article_id))[:MAX_ARTICLES]

    # knowledge gaps: questions with weak retrieval or a replaced draft
    gap_q: list[tuple[float, str, str, bool, bool]] = []
    for turn, (q_ts, sid, q_text) in question.items():
        weak = best.get(turn, 0.0) < weak_score if turn in best else True
        replaced = draft_outcome.get(turn) == "replaced"
        if (weak or replaced) and turn in draft_outcome:
            gap_q.append((q_ts, sid, q_text, weak, replaced))
    gap_q.sort(key=lambda g: (g[0], g[1]))
    gap_q = gap_q[:MAX_GAP_QUESTIONS]
    gaps: list[GapCluster] = []
    for members in cluster(g[2] for g in gap_q)[:MAX_GAP_CLUSTERS]:
        texts = [gap_q[i][2] for i in members]
        examples: list[str] = []
        for text in texts:
            example = text.strip()[:MAX_EXAMPLE_CHARS]
            if example not in examples:
                examples.append(example)
            if len(examples) == MAX_GAP_EXAMPLES:
                break
        gaps.append(GapCluster(
            label=cluster_label(texts), count=len(members),
            weak_retrieval=sum(1 for i in members if gap_q[i][3]),
            replaced=sum(1 for i in members if gap_q[i][4]), examples=examples))

    # per day (UTC): conversations opened, draft outcomes by the draft's day
    opened_per_day = Counter(_day(created) for created, _ in sessions.values())
    days: list[DayRow] = []
    day0 = int(start // DAY)
    for n in range(day0, min(int((end - 1e-6) // DAY), day0 + MAX_PERIOD_DAYS) + 1):
        key = _day(n * DAY)
        c = per_day.get(key, Counter())
        days.append(DayRow(day=key, conversations=opened_per_day.get(key, 0),
                           sent_as_is=c["sent_as_is"], edited=c["edited"],
                           replaced=c["replaced"], discarded=c["discarded"]))

    notes = [WAITS_FOR_ISSUE_16]
    notes.extend(f"{m} not found: its figures are empty" for m in f.missing)
    return InsightsReport(
        period_from=start, period_to=end, generated_at=time.time(),
        conversations=len(sessions), closed=sum(1 for _c, cl in sessions.values() if cl),
        outcomes=outcomes, edits=edits, first_reply=distribution(reply_times),
        resolution=distribution(resolution), agents=agent_rows[:MAX_AGENTS], tools=tool_rows,
        articles=article_rows, gaps=gaps, gap_questions=len(gap_q), days=days,
        weak_score=weak_score, notes=notes)


def _check_period(start: float, end: float) -> None:
    if not end > start:
        raise ValueError("the period must end after it starts")
    if end - start > MAX_PERIOD_DAYS * DAY:
        raise ValueError(f"a report covers at most {MAX_PERIOD_DAYS} days")


def report(data_dir: Path, start: float, end: float, *,
           weak_score: float = WEAK_SCORE) -> InsightsReport:
    """The insights of conversations opened in [start, end) (blocking: use a thread)."""
    _check_period(start, end)
    return _fold(_extract_sql(data_dir, start, end), start, end, weak_score, levenshtein)


def naive_report(data_dir: Path, start: float, end: float, *,
                 weak_score: float = WEAK_SCORE) -> InsightsReport:
    """The same report computed row by row in Python (bench baseline, cross-check)."""
    _check_period(start, end)
    return _fold(_extract_naive(data_dir, start, end), start, end, weak_score,
                 textbook_levenshtein)


def changes(data_dir: Path, session_id: str, limit: int = MAX_CHANGES) -> list[ChangeRow]:
    """Every agent line of one conversation next to its draft (the "what changed" view)."""
    path = data_dir / CONVERSATIONS_FILE
    if not path.exists():
        return []
    db = sqlite3.connect(_ro(path), uri=True, isolation_level=None)
    try:
        rows = db.execute(
            "SELECT message_id, agent, sent_at, draft_id, draft_text, sent_text FROM sent"
            " WHERE session_id = ? ORDER BY sent_at, message_id LIMIT ?",
            (session_id, limit)).fetchall()
    finally:
        db.close()
    out = []
    for message_id, agent, sent_at, draft_id, draft_text, sent_text in rows:
        outcome, d, kinds = outcome_of(draft_text, sent_text)
        out.append(ChangeRow(message_id=message_id, agent=agent, sent_at=sent_at,
                             draft_id=draft_id, draft_text=draft_text, sent_text=sent_text,
                             outcome=outcome,
                             distance=d, kinds=kinds))
    return out


# --------------------------------------------------------------------- the relay's service


class InsightsService:
    """What the relay answers ``insights.get`` / ``insights.conversation`` with.

    Bounded cost: reports run in a worker thread (never on the event loop), one at a
    time host-wide (a second request waits for the first: two cores do not get
    faster with eight reports at once), and an identical request within
    :attr:`cache_s` gets the same report without a second computation. Each
    connection waits for its own answer before its next frame is read (the relay
    awaits handlers), so one client cannot queue more than one.
    """

    def __init__(self, data_dir: Path, *, cache_s: float = 10.0) -> None:
        self.data_dir = data_dir
        self.cache_s = cache_s
        self._lock: asyncio.Lock | None = None
        self._cache: dict[tuple[float, float, float], tuple[float, InsightsReport]] = {}
        self._opens: ArticleOpens | None = None  # opened and used on the worker only
        self._worker = StoreWorker("insights")
        self.computed = 0  # reports actually computed (tests, logs)

    async def report(self, start: float, end: float,
                     weak_score: float | None = None) -> InsightsReport:
        weak = WEAK_SCORE if weak_score is None else weak_score
        key = (start, end, weak)
        if self._lock is None:
            self._lock = asyncio.Lock()
        async with self._lock:
            await self._worker.call(_nothing)  # the article opens recorded so far are in
            hit = self._cache.get(key)
            if hit is not None and time.monotonic() - hit[0] < self.cache_s:
                return hit[1]
            began = time.perf_counter()
            result = await asyncio.to_thread(report, self.data_dir, start, end, weak_score=weak)
            self.computed += 1
            log.info("insights report over %.1f days: %d conversations in %.2f s",
                     (end - start) / DAY, result.conversations, time.perf_counter() - began)
            self._cache = {k: v for k, v in self._cache.items()
                           if time.monotonic() - v[0] < self.cache_s}
            self._cache[key] = (time.monotonic(), result)
            return result

    async def changes(self, session_id: str) -> list[ChangeRow]:
        return await asyncio.to_thread(changes, self.data_dir, session_id)

    def article_opened(self, article_id: str, agent: str, session_id: str | None) -> None:
        """Record an ``article.get`` on the insights worker (the loop never waits on it)."""
        self._worker.submit(self._record_open, article_id, agent, session_id)

    def _record_open(self, article_id: str, agent: str, session_id: str | None) -> None:
        """A tiny WAL insert (on the worker); a failure is logged, not raised."""
        try:
            if self._opens is None:
                self._opens = ArticleOpens(self.data_dir)
            self._opens.opened(article_id, agent, session_id)
        except sqlite3.Error:
            log.exception("could not record that %s opened %s", agent, article_id)

    def close(self) -> None:
        """Close the store after what is queued; never blocks the loop."""
        self._worker.submit(self._close_opens)
        self._worker.shutdown()

    def _close_opens(self) -> None:
        if self._opens is not None:
            self._opens.close()
            self._opens = None


def _nothing() -> None:
    return None
