"""Insights: the report's data model and the text measures behind it (pure, no I/O).

Why here: the host computes reports (``host.insights``), the wire carries them
(``insights.report``), and the host window, the CSV writer and the PDF writer show
them; all of them share these models and these definitions of an "edit", so a
number means the same thing everywhere.

Definitions (docs/ARCHITECTURE.md "Insights" repeats them for readers):

* **normalised edit distance** of a sent line against its draft: the word-level
  Levenshtein distance (tokens: words and punctuation, case-folded) divided by the
  longer token count; 0 = sent as drafted, 1 = nothing in common.
* a sent draft is **edited** when the text changed and the distance is below
  :data:`REPLACED_AT`, **replaced** when it is at or above it.
* **kinds of edit** (an edited draft may have several, or none = "reworded"):
  ``shortened`` (sent has at most 80 % of the draft's words), ``lengthened``
  (at least 120 %), ``rewritten_opening`` (the first sentence differs),
  ``removed_sentence`` (fewer sentences than the draft).
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from typing import Final, Literal

from pydantic import BaseModel, ConfigDict, Field

REPLACED_AT: Final = 0.6
SHORTENED_AT: Final = 0.8
LENGTHENED_AT: Final = 1.2
EDIT_KINDS: Final = ("shortened", "lengthened", "rewritten_opening", "removed_sentence",
                     "reworded")
GAP_SIMILARITY: Final = 0.4  # Jaccard of content words to join a knowledge-gap cluster

# bounds on what one report carries (keeps an insights.report frame well under 1 MB)
MAX_GAP_CLUSTERS: Final = 20
MAX_GAP_EXAMPLES: Final = 3
MAX_EXAMPLE_CHARS: Final = 300
MAX_REASONS_PER_TOOL: Final = 10
MAX_REASON_CHARS: Final = 200
MAX_ARTICLES: Final = 50
MAX_AGENTS: Final = 100
MAX_PERIOD_DAYS: Final = 366

_WORD = re.compile(r"\w+(?:'\w+)?")
_PIECE = re.compile(r"\s+|\w+(?:'\w+)?|[^\w\s]")


# --------------------------------------------------------------------- text measures


_PUNCT: Final = "!\"#$%&()*+,./:;<=>?@[\\]^_`{|}~"
_SPLIT_PUNCT: Final = re.compile("([" + re.escape(_PUNCT) + "])")
_ENDS: Final = frozenset(".!?")


def tokens(text: str) -> list[str]:
    """Words and punctuation marks, case-folded (what the edit distance counts).

    ASCII punctuation (apostrophes and hyphens stay inside words) is padded with
    spaces and the text split: several times faster than matching tokens with a
    regular expression, and this runs for every sent draft of a report."""
    return _SPLIT_PUNCT.sub(r" \1 ", text.casefold()).split()


def levenshtein(a: Sequence[str], b: Sequence[str]) -> int:
    """Levenshtein distance of two token sequences, bit-parallel (Myers/Hyyrö).

    Why bit-parallel: a plain dynamic programme costs len(a)*len(b) Python steps
    per pair, which for a month of sent drafts is seconds; this costs len(a) steps
    of big-integer arithmetic."""
    if len(a) < len(b):
        a, b = b, a
    m = len(b)
    if m == 0:
        return len(a)
    peq: dict[str, int] = {}
    for i, tok in enumerate(b):
        peq[tok] = peq.get(tok, 0) | (1 << i)
    mask = (1 << m) - 1
    top = 1 << (m - 1)
    pv, mv, score = mask, 0, m
    for tok in a:
        eq = peq.get(tok, 0)
        xv = eq | mv
        xh = ((((eq & pv) + pv) & mask) ^ pv) | eq
        ph = (mv | ~(xh | pv)) & mask
        mh = pv & xh
        if ph & top:
            score += 1
        elif mh & top:
            score -= 1
        ph = ((ph << 1) | 1) & mask
        mh = (mh << 1) & mask
        pv = (mh | ~(xv | ph)) & mask
        mv = ph & xv
    return score


Distance = Callable[[Sequence[str], Sequence[str]], int]


def token_distance(a: Sequence[str], b: Sequence[str], lev: Distance = levenshtein) -> float:
    """Normalised edit distance of two token lists (0 when both are empty)."""
    longest = max(len(a), len(b))
    return 0.0 if longest == 0 else lev(a, b) / longest


def edit_distance(draft: str, sent: str) -> float:
    """Normalised word-level edit distance in [0, 1] (see the module docstring)."""
    return token_distance(tokens(draft), tokens(sent))


def _sentences(toks: list[str]) -> list[tuple[str, ...]]:
    """Token runs ending at ``.``, ``!`` or ``?`` (a trailing run without one counts)."""
    out: list[tuple[str, ...]] = []
    begin = 0
    for i, t in enumerate(toks):
        if t in _ENDS:
            if i + 1 > begin and not (i == begin and out):
                out.append(tuple(toks[begin:i + 1]))
            begin = i + 1
    if begin < len(toks):
        out.append(tuple(toks[begin:]))
    return out


def _words(toks: list[str]) -> int:
    return sum(1 for t in toks if t not in _PUNCT)


def edit_kinds(draft: str, sent: str) -> list[str]:
    """The kinds of an edit (see the module docstring); ["reworded"] when none applies."""
    return token_kinds(tokens(draft), tokens(sent))


def token_kinds(dt: list[str], st: list[str]) -> list[str]:
    """:func:`edit_kinds` of two token lists."""
    dw, sw = _words(dt), _words(st)
    ds, ss = _sentences(dt), _sentences(st)
    kinds: list[str] = []
    if dw and sw <= SHORTENED_AT * dw:
        kinds.append("shortened")
    if dw and sw >= LENGTHENED_AT * dw:
        kinds.append("lengthened")
    if ds and ss and ds[0] != ss[0]:
        kinds.append("rewritten_opening")
    if len(ss) < len(ds):
        kinds.append("removed_sentence")
    return kinds or ["reworded"]


DiffOp = Literal["equal", "delete", "insert", "replace"]
Outcome = Literal["sent_as_is", "edited", "replaced", "written_from_scratch"]


class DiffPiece(BaseModel):
    """One stretch of a draft-vs-sent diff: ``draft`` text became ``sent`` text."""

    model_config = ConfigDict(frozen=True)

    op: DiffOp
    draft: str
    sent: str


def diff(draft: str, sent: str) -> list[DiffPiece]:
    """A word-level diff of a draft and the sent text (whitespace kept, for display)."""
    import difflib

    a, b = _PIECE.findall(draft), _PIECE.findall(sent)
    matcher = difflib.SequenceMatcher(None, a, b, autojunk=False)
    return [DiffPiece(op=op, draft="".join(a[i1:i2]), sent="".join(b[j1:j2]))
            for op, i1, i2, j1, j2 in matcher.get_opcodes()]


_STOP: Final = frozenset({
    "a", "an", "and", "are", "as", "at", "be", "but", "by", "can", "could", "did", "do", "does",
    "for", "from", "had", "has", "have", "hello", "hi", "how", "i", "if", "in", "is", "it",
    "its", "me", "my", "no", "not", "of", "on", "or", "our", "please", "so", "than", "that",
    "the", "their", "them", "then", "there", "they", "this", "to", "was", "we", "were", "what",
    "when", "where", "which", "who", "why", "will", "with", "would", "you", "your", "yes",
    "thanks", "thank", "hey", "just", "get", "got", "im", "i'm",
})


def content_words(text: str) -> frozenset[str]:
    """The words that say what a question is about (stop words and short words dropped)."""
    return frozenset(w for w in _WORD.findall(text.casefold()) if len(w) > 2 and w not in _STOP)


def cluster(texts: Iterable[str], threshold: float = GAP_SIMILARITY) -> list[list[int]]:
    """Greedy leader clustering by Jaccard similarity of content words.

    Each text joins the first cluster whose leader (first member) it resembles at
    ``threshold`` or more, else starts a cluster. Deterministic for a given order;
    texts without content words join nothing and are dropped. Returns index lists,
    largest cluster first (ties: earliest first)."""
    leaders: list[frozenset[str]] = []
    members: list[list[int]] = []
    index: dict[str, list[int]] = {}  # word -> clusters whose leader has it
    for i, text in enumerate(texts):
        words = content_words(text)
        if not words:
            continue
        best = -1
        for c in sorted({c for w in words for c in index.get(w, ())}):
            lead = leaders[c]
            if len(words & lead) / len(words | lead) >= threshold:
                best = c
                break
        if best < 0:
            best = len(leaders)
            leaders.append(words)
            members.append([])
            for w in words:
                index.setdefault(w, []).append(best)
        members[best].append(i)
    order = sorted(range(len(members)), key=lambda c: (-len(members[c]), c))
    return [members[c] for c in order]


def cluster_label(texts: Iterable[str], words: int = 3) -> str:
    """The most frequent content words of a cluster (ties alphabetical)."""
    counts: Counter[str] = Counter()
    for t in texts:
        counts.update(content_words(t))
    top = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))[:words]
    return " ".join(w for w, _ in top)


# --------------------------------------------------------------------- the report


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Bucket(_Model):
    label: str
    upper: float | None  # the bucket holds values <= upper (None: no upper bound)
    count: int


class Distribution(_Model):
    """Durations in seconds (or distances): how many, the middle, and a histogram."""

    count: int = 0
    median: float | None = None
    p90: float | None = None
    mean: float | None = None
    buckets: list[Bucket] = Field(default_factory=list)


class DraftOutcomes(_Model):
    """What became of the co-pilot's drafts (one draft, one outcome)."""

    drafts: int = 0  # drafts that reached the representatives (all outcomes but failed)
    sent_as_is: int = 0
    edited: int = 0
    replaced: int = 0
    discarded: int = 0
    unused: int = 0  # completed, never sent nor discarded (e.g. superseded)
    failed: int = 0  # failed or interrupted before completion (not in ``drafts``)
    written_from_scratch: int = 0  # agent lines sent without a draft

    @property
    def decided(self) -> int:
        return self.sent_as_is + self.edited + self.replaced + self.discarded

    @property
    def acceptance(self) -> float | None:
        """Share of decided drafts sent unchanged."""
        return self.sent_as_is / self.decided if self.decided else None


class EditStats(_Model):
    """How much sent drafts were changed (edited and replaced ones)."""

    changed: int = 0
    distance: Distribution = Field(default_factory=Distribution)
    kinds: dict[str, int] = Field(default_factory=dict)  # over edited (not replaced) drafts


class AgentRow(_Model):
    """Per representative, by the name they connect with."""

    agent: str
    lines_sent: int = 0
    sent_as_is: int = 0
    edited: int = 0
    replaced: int = 0
    written_from_scratch: int = 0
    mean_distance: float | None = None
    first_replies: int = 0
    first_reply_median_s: float | None = None
    approvals_decided: int = 0
    approvals_approved: int = 0
    approvals_rejected: int = 0
    sessions_closed: int = 0


class ReasonCount(_Model):
    reason: str
    count: int


class ToolRow(_Model):
    """Approvals of one tool: how they were decided, why rejected, how fast."""

    tool: str
    proposed: int = 0
    approved: int = 0  # executed or failed after approval
    edited: int = 0  # approved with changed arguments (also counted in ``approved``)
    rejected: int = 0
    expired: int = 0
    pending: int = 0
    failed: int = 0  # approved but the shop refused (also counted in ``approved``)
    decision_median_s: float | None = None
    reasons: list[ReasonCount] = Field(default_factory=list)


class ArticleRow(_Model):
    article_id: str
    title: str
    shown: int = 0  # turns that showed it to the representative
    cited: int = 0  # drafts that cited it
    opened: int = 0  # times a representative opened it (article.get)


class GapCluster(_Model):
    """Similar customer questions the knowledge base did not answer well."""

    label: str
    count: int
    weak_retrieval: int
    replaced: int
    examples: list[str]


class DayRow(_Model):
    day: str  # YYYY-MM-DD, UTC
    conversations: int = 0
    sent_as_is: int = 0
    edited: int = 0
    replaced: int = 0
    discarded: int = 0


class InsightsReport(_Model):
    """A period's insights. The period selects conversations by when they opened."""

    period_from: float
    period_to: float
    generated_at: float
    conversations: int = 0
    closed: int = 0
    outcomes: DraftOutcomes = Field(default_factory=DraftOutcomes)
    edits: EditStats = Field(default_factory=EditStats)
    first_reply: Distribution = Field(default_factory=Distribution)
    resolution: Distribution = Field(default_factory=Distribution)
    agents: list[AgentRow] = Field(default_factory=list)
    tools: list[ToolRow] = Field(default_factory=list)
    articles: list[ArticleRow] = Field(default_factory=list)
    gaps: list[GapCluster] = Field(default_factory=list)
    gap_questions: int = 0
    days: list[DayRow] = Field(default_factory=list)
    weak_score: float = 0.0
    notes: list[str] = Field(default_factory=list)  # figures this host cannot give yet


class ChangeRow(_Model):
    """One agent line of a conversation next to the draft it came from."""

    message_id: str
    agent: str
    sent_at: float
    draft_id: str | None
    draft_text: str | None
    sent_text: str
    outcome: Outcome
    distance: float | None
    kinds: list[str] = Field(default_factory=list)


def outcome_of(draft: str | None, sent: str,
               lev: Distance = levenshtein) -> tuple[Outcome, float | None, list[str]]:
    """(outcome, distance, kinds) of one sent line against its draft (None: no draft).

    "Sent as-is" compares the stripped texts, as the host does when it marks a
    ``chat.message`` ``edited``."""
    if draft is None:
        return "written_from_scratch", None, []
    if draft.strip() == sent.strip():
        return "sent_as_is", 0.0, []
    dt, st = tokens(draft), tokens(sent)
    d = token_distance(dt, st, lev)
    if d >= REPLACED_AT:
        return "replaced", d, []
    return "edited", d, token_kinds(dt, st)


# --------------------------------------------------------------------- distributions

TIME_BUCKETS: Final = ((30.0, "≤30 s"), (60.0, "≤1 min"), (120.0, "≤2 min"),
                       (300.0, "≤5 min"), (900.0, "≤15 min"), (3600.0, "≤1 h"),
                       (None, ">1 h"))
DISTANCE_BUCKETS: Final = tuple((round(0.1 * i, 1), f"≤{0.1 * i:.1f}") for i in range(1, 11))


def distribution(values: Sequence[float],
                 buckets: Sequence[tuple[float | None, str]] = TIME_BUCKETS) -> Distribution:
    """Count, median, p90 (nearest rank), mean and a histogram of ``values``."""
    if not values:
        return Distribution(buckets=[Bucket(label=lbl, upper=u, count=0) for u, lbl in buckets])
    vs = sorted(values)
    n = len(vs)
    median = vs[n // 2] if n % 2 else (vs[n // 2 - 1] + vs[n // 2]) / 2
    p90 = vs[min(n - 1, max(0, -(-9 * n // 10) - 1))]
    counts = [0] * len(buckets)
    import bisect

    uppers = [u for u, _ in buckets if u is not None]
    for v in vs:
        counts[bisect.bisect_left(uppers, v - 1e-9)] += 1
    return Distribution(
        count=n, median=median, p90=p90, mean=sum(vs) / n,
        buckets=[Bucket(label=lbl, upper=u, count=c) for (u, lbl), c in zip(buckets, counts,
                                                                            strict=True)],
    )


# --------------------------------------------------------------------- CSV rows


def metric_rows(report: InsightsReport) -> list[tuple[str, str, str, str]]:
    """Every figure of a report as (section, key, metric, value) rows: the CSV export."""
    rows: list[tuple[str, str, str, str]] = []

    def add(section: str, key: str, metric: str, value: object) -> None:
        rows.append((section, key, metric, "" if value is None else _fmt(value)))

    add("period", "", "from", report.period_from)
    add("period", "", "to", report.period_to)
    add("period", "", "conversations", report.conversations)
    add("period", "", "closed", report.closed)
    o = report.outcomes
    for name in ("drafts", "sent_as_is", "edited", "replaced", "discarded", "unused", "failed",
                 "written_from_scratch"):
        add("drafts", "", name, getattr(o, name))
    add("drafts", "", "acceptance", o.acceptance)
    add("edits", "", "changed", report.edits.changed)
    _dist_rows(add, "edits", "", "distance", report.edits.distance)
    for kind, n in report.edits.kinds.items():
        add("edit_kinds", kind, "count", n)
    _dist_rows(add, "first_reply", "", "seconds", report.first_reply)
    _dist_rows(add, "resolution", "", "seconds", report.resolution)
    for a in report.agents:
        for name, value in a.model_dump().items():
            if name != "agent":
                add("agent", a.agent, name, value)
    for t in report.tools:
        for name, value in t.model_dump().items():
            if name not in ("tool", "reasons"):
                add("tool", t.tool, name, value)
        for r in t.reasons:
            add("rejection_reason", t.tool, r.reason, r.count)
    for art in report.articles:
        for name in ("shown", "cited", "opened"):
            add("article", art.article_id, name, getattr(art, name))
    add("gaps", "", "questions", report.gap_questions)
    for g in report.gaps:
        add("gap", g.label, "count", g.count)
        add("gap", g.label, "weak_retrieval", g.weak_retrieval)
        add("gap", g.label, "replaced", g.replaced)
        for i, ex in enumerate(g.examples, 1):
            add("gap", g.label, f"example_{i}", ex)
    for d in report.days:
        for name in ("conversations", "sent_as_is", "edited", "replaced", "discarded"):
            add("day", d.day, name, getattr(d, name))
    return rows


def _dist_rows(f: Callable[[str, str, str, object], None], section: str, key: str, unit: str,
               d: Distribution) -> None:
    f(section, key, "count", d.count)
    f(section, key, f"median_{unit}", d.median)
    f(section, key, f"p90_{unit}", d.p90)
    f(section, key, f"mean_{unit}", d.mean)
    for b in d.buckets:
        f(section, key, f"bucket {b.label}", b.count)


def _fmt(value: object) -> str:
    if isinstance(value, float):
        return f"{value:.6g}" if abs(value) < 1e6 else f"{value:.3f}"
    return str(value)
