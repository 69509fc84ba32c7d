"""Fill a host's data dir with conversations of known composition (insights tests, bench).

Why a generator and not a recorded host: the tests must know the true figures
(sent-as-is ratio, edit sizes and kinds, reply times, rejection reasons, gap
questions) independently of the code that measures them. Every conversation is
built from its index by fixed cycles, and :class:`Expected` counts what was
built as it is built: it never calls the metrics code.

The rows go through the real schemas (``RelayLog``, ``ConversationStore`` and
``ShopDatabase.open`` create them) and the relay frames are real ``encode``
output; they are written in bulk (one transaction per file) so that 10,000
conversations take seconds.
"""

from __future__ import annotations

import json
import statistics
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hitl_desktop.core.protocol import (
    Article,
    ArticlesFound,
    Author,
    ChatMessage,
    Citation,
    DraftCompleted,
    DraftStarted,
    SessionClosed,
    SessionOpened,
    SessionSummary,
    encode,
    host_type,
)
from hitl_desktop.core.turns import ApprovalOutcome
from hitl_desktop.host.conversation import ConversationStore
from hitl_desktop.host.insights import ArticleOpens
from hitl_desktop.host.log import RelayLog
from hitl_desktop.store.catalog_file import default_catalog
from hitl_desktop.store.database import ShopDatabase

T0 = 1_780_000_000.0  # a fixed start (2026-05-28 UTC), so days and medians are stable
DAY = 86400.0
AGENTS = ("Ana", "Ben", "Chloe")
REPLY_DELAYS = (20.0, 20.0, 45.0, 45.0, 45.0, 90.0, 90.0, 200.0, 600.0, 1800.0, 5000.0)
EXTRA_TO_CLOSE = (300.0, 900.0, 2400.0, 6000.0)
DECISION_DELAYS = (30.0, 90.0, 240.0, 600.0)
TOOLS = ("create_refund", "create_return", "issue_voucher")
REASONS = ("amount exceeds policy", "customer not eligible", "duplicate request")
# outcome of conversation i's draft by i % 20
OUTCOMES = (["as_is"] * 10 + ["reworded", "opening", "removed", "lengthened",
                              "replaced", "replaced", "discarded", "discarded", "unused",
                              "failed"])
# knowledge-gap families: four shared content words, one varying
GAP_FAMILIES = (
    ("Can you deliver parcels overseas to {} islands?", ("faroe", "canary", "cayman"),
     ("deliver", "islands", "overseas", "parcels")),
    ("Do you accept payment with {} cryptocurrency wallets?", ("bitcoin", "ethereum", "monero"),
     ("accept", "cryptocurrency", "payment", "wallets")),
    ("Is there a student discount for {} university students?",
     ("engineering", "medical", "art"), ("discount", "student", "students", "university")),
    ("Can I rent {} instead of buying equipment?", ("cameras", "drones", "tripods"),
     ("buying", "equipment", "instead", "rent")),
)
S1 = ["Thanks", "for", "your", "message", "about", "order", "ORD{i}", "."]
S2 = ["We", "checked", "the", "refund", "status", "for", "you", "."]
S3 = ["It", "should", "arrive", "within", "five", "business", "days", "."]
S4 = ["We", "will", "email", "you", "a", "confirmation", "soon", "."]
REPLACEMENT = ["Apologies", "regarding", "that", "delay", "!", "A", "colleague", "will",
               "phone", "shortly", "!"]
SCRATCH = "Let me look into that for you right away."
KINDS = {"reworded": ["reworded"], "opening": ["rewritten_opening"],
         "removed": ["shortened", "removed_sentence"], "lengthened": ["lengthened"]}


def _text(tokens: list[str]) -> str:
    out = ""
    for t in tokens:
        out += t if t in (".", "!") or not out else " " + t
    return out


@dataclass
class Expected:
    """What the generator built, counted as it built it."""

    conversations: int = 0
    closed: int = 0
    outcomes: Counter[str] = field(default_factory=Counter)
    written_from_scratch: int = 0
    distances: list[float] = field(default_factory=list)  # edited + replaced drafts
    kinds: Counter[str] = field(default_factory=Counter)
    reply_times: list[float] = field(default_factory=list)
    resolution_times: list[float] = field(default_factory=list)
    agent_lines: Counter[str] = field(default_factory=Counter)
    agent_as_is: Counter[str] = field(default_factory=Counter)
    agent_closed: Counter[str] = field(default_factory=Counter)
    tools: dict[str, Counter[str]] = field(default_factory=lambda: defaultdict(Counter))
    reasons: dict[str, Counter[str]] = field(default_factory=lambda: defaultdict(Counter))
    decision_times: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    shown: Counter[str] = field(default_factory=Counter)
    cited: Counter[str] = field(default_factory=Counter)
    opened: Counter[str] = field(default_factory=Counter)
    gaps: Counter[str] = field(default_factory=Counter)  # label -> questions
    gap_weak: Counter[str] = field(default_factory=Counter)
    gap_replaced: Counter[str] = field(default_factory=Counter)
    gap_examples: dict[str, list[str]] = field(default_factory=lambda: defaultdict(list))

    @property
    def sent_as_is_ratio(self) -> float:
        decided = sum(self.outcomes[k] for k in ("sent_as_is", "edited", "replaced",
                                                   "discarded"))
        return self.outcomes["sent_as_is"] / decided

    def median(self, values: list[float]) -> float:
        return float(statistics.median(values))


def family_label(family: int) -> str:
    return " ".join(sorted(GAP_FAMILIES[family][2])[:3])


def generate(data_dir: Path, n: int, *, start: float = T0, days: float = 30.0) -> Expected:
    """Write ``n`` conversations spread evenly over ``days`` from ``start``."""
    data_dir.mkdir(parents=True, exist_ok=True)
    spacing = days * DAY / n
    relay = RelayLog.open_in(data_dir)
    conv = ConversationStore(data_dir / "conversations.sqlite3")
    shop = ShopDatabase.open(data_dir, default_catalog())
    opens = ArticleOpens(data_dir)
    exp = Expected()
    sessions: list[tuple[Any, ...]] = []
    messages: list[tuple[Any, ...]] = []
    drafts: list[tuple[Any, ...]] = []
    sent: list[tuple[Any, ...]] = []
    approvals: list[tuple[Any, ...]] = []
    opened: list[tuple[float, str, str, str | None]] = []
    gap_n = 0
    good = [("faq/refunds", "Refunds", 0.8), ("faq/return-policy", "Return policy", 0.5)]
    weak_article = ("faq/support-hours", "Support hours", 0.1)
    for i in range(n):
        sid = f"s_{i:06d}"
        created = start + i * spacing
        agent = AGENTS[i % 3]
        outcome = OUTCOMES[i % 20]
        weak_kind = "low" if i % 7 == 3 else "none" if i % 7 == 5 else None
        is_gap = weak_kind is not None or outcome == "replaced"
        if is_gap:
            fam = gap_n % 4
            template, variants, _shared = GAP_FAMILIES[fam]
            question = template.format(variants[(gap_n // 4) % 3])
            label = family_label(fam)
            exp.gaps[label] += 1
            exp.gap_weak[label] += weak_kind is not None
            exp.gap_replaced[label] += outcome == "replaced"
            if question not in exp.gap_examples[label] and len(exp.gap_examples[label]) < 3:
                exp.gap_examples[label].append(question)
            gap_n += 1
        else:
            question = f"Where is my refund for order ORD{i}?"
        closes = i % 10 != 9
        exp.conversations += 1
        seq = 0

        def log(payload: Any, ts: float, *, sid: str = sid) -> None:
            nonlocal seq
            seq += 1
            t = host_type(payload)
            messages.append((sid, seq, t, ts, encode(t, payload, session=sid, seq=seq, ts=ts)))

        summary = SessionSummary(session_id=sid, title=f"Chat {i}", customer_id="CUST1001",
                                 customer_name=None, state="open", created_at=created,
                                 last_seq=1)
        log(SessionOpened(summary=summary), created)
        asked = created + 5.0
        log(ChatMessage(message_id=f"c_{i}", author=Author(role="customer", name="Alex"),
                        text=question), asked)
        turn = f"t_{i:06d}"
        log(DraftStarted(turn_id=turn, reason="customer_message", provider="fake"), asked + 1)
        shown = [] if weak_kind == "none" else [weak_article] if weak_kind == "low" else good
        if shown:
            log(ArticlesFound(turn_id=turn, articles=[
                Article(article_id=a, title=t, kind="faq", snippet="...", score=s)
                for a, t, s in shown]), asked + 2)
            for a, _t, _s in shown:
                exp.shown[a] += 1
        words = [w.replace("{i}", str(i)) for w in S1] + S2 + S3
        draft_text = _text(words)
        citations = [] if weak_kind is not None or outcome == "failed" else [
            {"article_id": "faq/refunds", "title": "Refunds", "quote": None}]
        for c in citations:
            exp.cited[c["article_id"]] += 1
        if outcome != "failed":
            log(DraftCompleted(turn_id=turn, text=draft_text,
                               citations=[Citation(**c) for c in citations]), asked + 15)
        state = {"failed": "failed", "discarded": "discarded", "unused": "completed"}.get(
            outcome, "sent")
        drafts.append((turn, sid, "customer_message", state, draft_text if outcome != "failed"
                       else "", json.dumps(citations), asked + 1, asked + 15))
        # the agent's reply
        replied = asked + REPLY_DELAYS[i % len(REPLY_DELAYS)]
        if state == "sent":
            if outcome == "as_is":
                reply_tokens, k = words, 0
            elif outcome == "reworded":
                reply_tokens = [("seven" if w == "five" else w) for w in words]
                k = 1
            elif outcome == "opening":
                reply_tokens = ["Hello", "concerning", "this", *words[3:]]
                k = 3
            elif outcome == "removed":
                reply_tokens, k = words[:16], 8
            elif outcome == "lengthened":
                reply_tokens, k = [*words, *S4], 8
            else:  # replaced: no token in common
                reply_tokens, k = REPLACEMENT, 24
            reply = _text(reply_tokens)
            key = {"as_is": "sent_as_is", "replaced": "replaced"}.get(outcome, "edited")
            exp.outcomes[key] += 1
            if key != "sent_as_is":
                exp.distances.append(k / max(len(words), len(reply_tokens)))
            else:
                exp.agent_as_is[agent] += 1
            if key == "edited":
                exp.kinds.update(KINDS[outcome])
            sent.append((f"a_{i}", sid, turn, agent, draft_text, reply,
                         int(reply != draft_text), replied))
            log(ChatMessage(message_id=f"a_{i}", author=Author(role="agent", name=agent),
                            text=reply, draft_id=turn, edited=reply != draft_text), replied)
        else:
            exp.outcomes[{"failed": "failed", "discarded": "discarded",
                          "completed": "unused"}[state]] += 1
            exp.written_from_scratch += 1
            sent.append((f"a_{i}", sid, None, agent, None, SCRATCH, None, replied))
            log(ChatMessage(message_id=f"a_{i}", author=Author(role="agent", name=agent),
                            text=SCRATCH), replied)
        exp.agent_lines[agent] += 1
        exp.reply_times.append(replied - asked)
        # an approval in every fifth conversation
        if i % 5 == 0:
            tool = TOOLS[(i // 5) % 3]
            kind = (i // 15) % 6
            proposed = {"order_id": f"ORD{i}", "amount": 20.0, "reason": "damaged"}
            approved: dict[str, Any] | None = None
            delay = DECISION_DELAYS[(i // 5) % 4]
            proposed_at = asked + 16
            by: str | None = agent
            reason = None
            c = exp.tools[tool]
            c["proposed"] += 1
            if kind in (0, 1, 5):
                approved = dict(proposed, amount=15.0) if kind == 1 else proposed
                st = "failed" if kind == 5 else "executed"
                c["approved"] += 1
                c["edited"] += kind == 1
                c["failed"] += kind == 5
            elif kind in (2, 3):
                st = "rejected"
                reason = REASONS[(i // 90 + (kind == 3)) % 3]
                c["rejected"] += 1
                exp.reasons[tool][reason] += 1
            else:
                st, by = "expired", "system"
                c["expired"] += 1
            if st != "expired":
                exp.decision_times[tool].append(delay)
            approvals.append((f"apr_{i}", sid, f"call_{i}", tool, "CUST1001",
                              json.dumps(proposed), None if approved is None
                              else json.dumps(approved), st, proposed_at, proposed_at + 900,
                              by, proposed_at + (900 if st == "expired" else delay), reason))
        if i % 4 == 0:
            opened.append((created + 30, "faq/refunds", agent, None))
            exp.opened["faq/refunds"] += 1
        if closes:
            closed_at = replied + EXTRA_TO_CLOSE[i % 4]
            log(SessionClosed(by=agent), closed_at)
            exp.closed += 1
            exp.agent_closed[agent] += 1
            exp.resolution_times.append(closed_at - asked)
            sessions.append((sid, f"Chat {i}", "CUST1001", "closed", created, closed_at))
        else:
            sessions.append((sid, f"Chat {i}", "CUST1001", "open", created, None))

    with relay._tx():
        relay.db.executemany("INSERT INTO sessions (session_id, title, customer_id, state,"
                             " created_at, closed_at) VALUES (?,?,?,?,?,?)", sessions)
        relay.db.executemany("INSERT INTO messages (session_id, seq, type, ts, frame)"
                             " VALUES (?,?,?,?,?)", messages)
        # what the agents were told of each approval: its final state, as a live host
        # records it, so a host started on this data has nothing to reconcile
        relay.db.executemany("INSERT INTO approvals (session_id, approval_id, state)"
                             " VALUES (?,?,?)", [(a[1], a[0], a[7]) for a in approvals])
    relay.close()
    db = conv._db
    db.execute("BEGIN")
    db.executemany("INSERT INTO drafts (turn_id, session_id, reason, state, text, citations,"
                   " created_at, finished_at) VALUES (?,?,?,?,?,?,?,?)", drafts)
    db.executemany("INSERT INTO sent (message_id, session_id, draft_id, agent, draft_text,"
                   " sent_text, edited, sent_at) VALUES (?,?,?,?,?,?,?,?)", sent)
    db.execute("COMMIT")
    # ... and what the model was told of each decision, so nothing is drafted at start
    for a in approvals:
        if a[7] != "pending":
            conv.append(a[1], ApprovalOutcome(
                approval_id=a[0], call_id=a[2], tool=a[3], state=a[7], by=a[10],
                reason=a[12], proposed_arguments=json.loads(a[5]),
                arguments=json.loads(a[6] or a[5])))
    conv.close()
    with shop._tx() as sdb:
        sdb.executemany(
            "INSERT INTO approvals (id, session_id, call_id, tool, customer_id,"
            " proposed_arguments, approved_arguments, state, created_at, expires_at,"
            " decided_by, decided_at, reason) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)", approvals)
    shop.close()
    opens.opened_many(opened)
    opens.close()
    return exp
