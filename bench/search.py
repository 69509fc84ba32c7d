"""Knowledge search latency: the FTS5 index vs a brute-force scan, in one run.

Measures, for our shipped knowledge base and for a generated corpus of 10,000
articles (written to a temp dir as Markdown, like a real knowledge folder):

* index build time (parse + chunk + FTS5 insert) and re-open time (unchanged files);
* p50 / p99 query latency of ``KnowledgeIndex.search`` (typo fixing, synonyms, BM25,
  snippets, one hit per article);
* the same queries answered by a brute-force baseline: pure-Python BM25 over every
  pre-tokenised chunk held in memory (no index), and its preparation time.

Queries are the customer messages of tests/data/offline_labelled.jsonl plus
generated ones. ``--quick`` shrinks the corpus and query count for CI.

    .venv/bin/python bench/search.py [--quick] [--articles N] [--queries N]
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import random
import statistics
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Sequence
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from hitl_desktop.knowledge.articles import default_knowledge_dir, load_articles  # noqa: E402
from hitl_desktop.knowledge.index import STOP_WORDS, KnowledgeIndex, tokenize  # noqa: E402

log = logging.getLogger("bench.search")

_TOPICS = [
    "order",
    "cancel",
    "refund",
    "return",
    "replacement",
    "delivery",
    "shipping",
    "tracking",
    "parcel",
    "courier",
    "payment",
    "card",
    "voucher",
    "discount",
    "complaint",
    "warranty",
    "account",
    "password",
    "email",
    "phone",
    "address",
    "privacy",
    "data",
    "invoice",
    "receipt",
    "stock",
    "size",
    "colour",
    "exchange",
    "damaged",
    "broken",
    "defective",
    "late",
    "lost",
    "customs",
    "duty",
    "express",
    "standard",
    "international",
    "subscription",
    "gift",
    "loyalty",
    "points",
    "membership",
    "checkout",
    "app",
]
_FILLER = [
    "the",
    "a",
    "customers",
    "can",
    "our",
    "we",
    "please",
    "within",
    "days",
    "business",
    "team",
    "support",
    "store",
    "product",
    "products",
    "item",
    "items",
    "policy",
    "request",
    "requests",
    "after",
    "before",
    "when",
    "if",
    "not",
    "only",
    "also",
    "may",
    "must",
    "will",
    "should",
    "check",
    "contact",
    "chat",
    "email",
    "link",
    "label",
    "box",
    "carrier",
    "status",
    "update",
    "new",
    "old",
    "free",
    "cost",
    "price",
    "total",
    "amount",
    "paid",
    "charge",
    "charged",
    "fee",
    "fees",
    "time",
    "week",
    "weeks",
    "month",
    "hours",
    "working",
    "open",
    "closed",
]


def pseudo_words(rng: random.Random, n: int) -> list[str]:
    """Product-ish names so the corpus vocabulary is realistic in size."""
    syll = ["ka", "lo", "mi", "ra", "ven", "tor", "bel", "sun", "ar", "del", "nor", "qua", "zen"]
    return ["".join(rng.choice(syll) for _ in range(rng.randint(2, 4))) for _ in range(n)]


def generate_corpus(root: Path, articles: int, seed: int = 7) -> None:
    """Write ``articles`` Markdown files with front matter and ## sections."""
    rng = random.Random(seed)
    names = pseudo_words(rng, 4000)
    for n in range(articles):
        kind = "faq" if n % 3 else "kb"
        topic = rng.sample(_TOPICS, 3)
        title = f"{topic[0].capitalize()} and {topic[1]} for {rng.choice(names).capitalize()}"
        lines = [
            "---",
            f"title: {title}",
            f"kind: {kind}",
            f"tags: [{', '.join(topic)}]",
            "---",
            f"# {title}",
            "",
        ]
        for _ in range(rng.randint(3, 5)):
            head = f"{rng.choice(topic).capitalize()} {rng.choice(_FILLER)} {rng.choice(names)}"
            words = [
                rng.choice(topic)
                if rng.random() < 0.15
                else rng.choice(names)
                if rng.random() < 0.1
                else rng.choice(_FILLER)
                for _ in range(rng.randint(40, 90))
            ]
            lines += [f"## {head}", "", " ".join(words).capitalize() + ".", ""]
        folder = root / kind
        folder.mkdir(parents=True, exist_ok=True)
        (folder / f"article-{n:05d}.md").write_text("\n".join(lines), "utf-8")


def real_queries() -> list[str]:
    path = REPO / "tests" / "data" / "offline_labelled.jsonl"
    return [json.loads(line)["message"] for line in path.read_text("utf-8").splitlines() if line]


def generated_queries(rng: random.Random, n: int) -> list[str]:
    out = []
    for _ in range(n):
        words = rng.sample(_TOPICS, 2) + rng.sample(_FILLER, 3)
        if rng.random() < 0.3:  # a typo, as customers type
            w = words[0]
            i = rng.randrange(1, len(w))
            words[0] = w[:i] + w[i + 1 :]
        out.append(" ".join(words))
    return out


class BruteForce:
    """Pure-Python BM25 over every chunk, scanning all of them per query."""

    def __init__(self, root: Path) -> None:
        self.docs: list[tuple[str, Counter[str], int]] = []
        for art in load_articles(root):
            for sec in art.sections:
                toks = [
                    t
                    for t in tokenize(f"{art.title} {sec.heading} {sec.text}")
                    if t not in STOP_WORDS
                ]
                self.docs.append((art.article_id, Counter(toks), len(toks)))
        self.avgdl = sum(d[2] for d in self.docs) / max(1, len(self.docs))
        df: Counter[str] = Counter()
        for _, tf, _ in self.docs:
            df.update(tf.keys())
        n = len(self.docs)
        self.idf = {t: math.log(1 + (n - c + 0.5) / (c + 0.5)) for t, c in df.items()}

    def search(self, query: str, limit: int = 5) -> list[str]:
        q = [t for t in tokenize(query) if t not in STOP_WORDS]
        k1, b = 1.2, 0.75
        best: dict[str, float] = {}
        for article_id, tf, dl in self.docs:
            score = 0.0
            for t in q:
                f = tf.get(t)
                if f:
                    score += self.idf[t] * f * (k1 + 1) / (f + k1 * (1 - b + b * dl / self.avgdl))
            if score > best.get(article_id, 0.0):
                best[article_id] = score
        return sorted(best, key=lambda a: -best[a])[:limit]


def percentiles(samples: Sequence[float]) -> tuple[float, float]:
    ordered = sorted(samples)
    p50 = statistics.median(ordered)
    p99 = ordered[min(len(ordered) - 1, math.ceil(0.99 * len(ordered)) - 1)]
    return p50 * 1000, p99 * 1000


def time_queries(fn: Callable[[str], object], queries: Sequence[str]) -> tuple[float, float]:
    for q in queries[:5]:
        fn(q)  # warm caches, as a running host would be
    samples = []
    for q in queries:
        t0 = time.perf_counter()
        fn(q)
        samples.append(time.perf_counter() - t0)
    return percentiles(samples)


def run_case(name: str, root: Path, queries: Sequence[str], workdir: Path) -> dict[str, float]:
    db = workdir / f"{name}.sqlite3"
    t0 = time.perf_counter()
    ix = KnowledgeIndex.open(root, db)
    build = time.perf_counter() - t0
    ix.close()
    t0 = time.perf_counter()
    ix = KnowledgeIndex.open(root, db)
    reopen = time.perf_counter() - t0
    assert not ix.rebuilt
    articles = len(ix)
    t0 = time.perf_counter()
    ix.correct("qxzvw")  # the first misspelt query builds the typo map once per process
    typo_map = time.perf_counter() - t0
    fts_p50, fts_p99 = time_queries(lambda q: ix.search(q, limit=5), queries)
    t0 = time.perf_counter()
    brute = BruteForce(root)
    brute_prep = time.perf_counter() - t0
    bf_p50, bf_p99 = time_queries(lambda q: brute.search(q, limit=5), queries)
    quality = ""
    if name == "our knowledge base":
        rows = [
            json.loads(line)
            for line in (REPO / "tests" / "data" / "offline_labelled.jsonl")
            .read_text()
            .splitlines()
        ]
        fts_ok = sum(
            bool(h := ix.search(r["message"], limit=1)) and h[0].article_id == r["article"]
            for r in rows
        )
        bf_ok = sum((brute.search(r["message"], limit=1) or [""])[0] == r["article"] for r in rows)
        quality = (
            f"\n  top-1 vs labels (raw message, no NLU): FTS5 {fts_ok / len(rows):.0%},"
            f" brute force {bf_ok / len(rows):.0%}"
        )
    ix.close()
    result = {
        "articles": articles,
        "chunks": len(brute.docs),
        "queries": len(queries),
        "build_s": build,
        "reopen_s": reopen,
        "typo_map_s": typo_map,
        "fts_p50_ms": fts_p50,
        "fts_p99_ms": fts_p99,
        "brute_prep_s": brute_prep,
        "brute_p50_ms": bf_p50,
        "brute_p99_ms": bf_p99,
    }
    print(
        f"\n== {name}: {articles} articles, {len(brute.docs)} sections, {len(queries)} queries\n"
        f"  index build          {build:8.3f} s    (re-open unchanged: {reopen * 1000:.1f} ms,"
        f" typo map on first use: {typo_map * 1000:.1f} ms)\n"
        f"  FTS5 index  p50/p99  {fts_p50:8.3f} / {fts_p99:.3f} ms\n"
        f"  brute force p50/p99  {bf_p50:8.3f} / {bf_p99:.3f} ms"
        f"    (prepare {brute_prep:.3f} s)\n"
        f"  speed-up (p50)       {bf_p50 / fts_p50 if fts_p50 else float('inf'):8.1f} x"
        f"{quality}"
    )
    return result


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="small corpus, few queries (CI)")
    ap.add_argument("--articles", type=int, default=None, help="generated corpus size")
    ap.add_argument("--queries", type=int, default=None, help="generated queries per case")
    ap.add_argument("--json", action="store_true", help="also print the numbers as JSON")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    n_articles = args.articles or (1000 if args.quick else 10_000)
    n_queries = args.queries or (60 if args.quick else 400)
    rng = random.Random(11)
    ours = real_queries()
    results = {}
    with tempfile.TemporaryDirectory(prefix="hitl-bench-search-") as tmp:
        work = Path(tmp)
        qs = (ours * 3)[: max(len(ours), n_queries)]
        results["ours"] = run_case("our knowledge base", default_knowledge_dir(), qs, work)
        corpus = work / "corpus"
        t0 = time.perf_counter()
        generate_corpus(corpus, n_articles)
        print(f"\n(generated {n_articles} articles in {time.perf_counter() - t0:.2f} s)")
        mixed = ours + generated_queries(rng, n_queries)
        results["generated"] = run_case(f"generated {n_articles}", corpus, mixed, work)
    if args.json:
        print(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
