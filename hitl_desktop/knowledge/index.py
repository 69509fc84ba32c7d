"""Local full-text search over the knowledge base (SQLite FTS5, BM25).

Why FTS5: it ships inside Python's sqlite3, ranks with BM25 in C, returns
snippets, and answers in well under a millisecond on our articles and a few
milliseconds on 10,000. Articles are chunked by ``##`` section so a hit points
at the passage that answers the question; the article title and tags are
indexed with every chunk and weighted higher. The index file is rebuilt only
when the Markdown files change (manifest of path, mtime, size and sha256).
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
import sqlite3
import time
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

from hitl_desktop.core.threads import StoreLock, StoreWorker
from hitl_desktop.knowledge.articles import (
    KbArticle,
    article_files,
    knowledge_root,
    load_article,
    split_sections,
)
from hitl_desktop.knowledge.text import edit_distance_le

log = logging.getLogger(__name__)

SCHEMA_VERSION = "5"
INDEX_FILENAME = "knowledge_index.sqlite3"  # in the data dir; one file for every engine
# bm25 column weights: title, section heading, tags, body
_WEIGHTS = (6.0, 2.5, 4.0, 1.0)
_TOKEN_RE = re.compile(r"[^\W_]+(?:'[^\W_]+)?", re.UNICODE)
_SNIPPET_TOKENS = 28
_MAX_QUERY_TERMS = 40  # a pasted essay must not become a 2,000-term OR query
_COMMON_FRACTION = 0.25  # in large corpora, terms in more sections than this are skipped
_COMMON_MIN_CHUNKS = 200
_CACHE_ENTRIES = 4096  # searches and articles remembered until the index changes
_MISSING = object()

STOP_WORDS: frozenset[str] = frozenset(
    """
    a about above after again against all am an and any are aren't as at be because been
    before being below between both but by can can't could couldn't did didn't do does
    doesn't doing don't down during each few for from further had hadn't has hasn't have
    haven't having he he'd he'll he's her here here's hers herself him himself his how
    how's i i'd i'll i'm i've if in into is isn't it it's its itself let's me more most
    mustn't my myself no nor not of off on once only or other ought our ours ourselves out
    over own same shan't she she'd she'll she's should shouldn't so some such than that
    that's the their theirs them themselves then there there's these they they'd they'll
    they're they've this those through to too under until up very was wasn't we we'd we'll
    we're we've were weren't what what's when when's where where's which while who who's
    whom why why's with won't would wouldn't you you'd you'll you're you've your yours
    yourself yourselves hi hello hey please pls plz thanks thank thx ok okay yes just
    want wanted need needed like would could get got im ive dont cant wont also still
    really know tell help me us can anyone somebody someone hey guys dear regards sir madam
    i'd i'm one
    """.split()  # noqa: SIM905
)

# Query-side expansion: customer words -> words our articles use. Kept small and
# obvious; every entry fixed a real miss in tests/data/offline_labelled.jsonl.
SYNONYMS: dict[str, tuple[str, ...]] = {
    "pwd": ("password",),
    "pw": ("password",),
    "passwd": ("password",),
    "passcode": ("password",),
    "login": ("sign", "password"),
    "log": ("sign",),
    "signin": ("sign",),
    "cancel": ("cancellation",),
    "cancelled": ("cancel",),
    "canceled": ("cancel",),
    "cancelling": ("cancel",),
    "canceling": ("cancel",),
    "cancellation": ("cancel",),
    "money": ("refund",),
    "reimburse": ("refund",),
    "reimbursement": ("refund",),
    "refunded": ("refund",),
    "parcel": ("delivery",),
    "package": ("delivery", "parcel"),
    "shipment": ("shipping",),
    "ship": ("shipping",),
    "deliver": ("delivery",),
    "arrive": ("delivery",),
    "arrived": ("delivery",),
    "broken": ("damaged",),
    "smashed": ("damaged",),
    "cracked": ("damaged",),
    "dented": ("damaged",),
    "faulty": ("defective",),
    "swap": ("exchange",),
    "exchange": ("replacement",),
    "coupon": ("voucher",),
    "promo": ("voucher", "code"),
    "giftcard": ("voucher",),
    "hours": ("support",),
    "opening": ("hours",),
    "abroad": ("international",),
    "overseas": ("international",),
    "worldwide": ("international",),
    "customs": ("international",),
    "track": ("tracking",),
    "gdpr": ("privacy", "data"),
    "guarantee": ("warranty",),
    "complain": ("complaint",),
    "unhappy": ("complaint",),
    "paypal": ("payment",),
    "visa": ("payment",),
    "card": ("payment",),
    "purchases": ("orders",),
}


@dataclass(frozen=True, slots=True)
class SearchHit:
    """The best-matching section of one article."""

    article_id: str
    kind: str
    slug: str
    title: str
    path: str  # "{kind}/{slug}.md", as in the vector-store attributes
    section: str
    snippet: str
    score: float  # higher is better (negated BM25, aggregated per article)
    text: str  # the whole matching section


def tokenize(text: str) -> list[str]:
    """Lower-cased word tokens (apostrophes kept inside words)."""
    return [t.replace("'", "") if t.endswith("'") else t for t in _TOKEN_RE.findall(text.lower())]


def _fts_quote(token: str) -> str:
    return '"' + token.replace('"', '""') + '"'


class KnowledgeIndex:
    """A BM25 index of article sections stored in one SQLite file."""

    def __init__(self, root: Path, conn: sqlite3.Connection, path: Path | None = None) -> None:
        self.root = root
        self.path = path  # the SQLite file (None for an index built in memory)
        self._conn = conn
        self._lock = StoreLock("the knowledge index")
        self.worker = StoreWorker("index")  # the loop calls us only through it
        self._vocab: frozenset[str] = frozenset()
        self._deletes: dict[str, list[str]] | None = None
        self._n_chunks = 0
        self._stem_df: dict[str, int] = {}  # query word -> sections holding its stem
        self._fix_cache: dict[str, str | None] = {}
        # The co-pilot asks the same few queries again every round of a turn and for
        # every customer with the same question: answers are kept until the index
        # changes (``refresh``), bounded; dicts keep insertion order, oldest go first.
        self._hits_cache: dict[tuple[str, int, str | None, bool], tuple[SearchHit, ...]] = {}
        # the same, by MATCH expression: queries that differ only in stop words, case,
        # punctuation or order of repeats ask SQLite the same question
        self._expr_cache: dict[tuple[str, int, str | None, bool], tuple[SearchHit, ...]] = {}
        # section row -> (heading, body), for searches without snippets
        self._chunk_cache: dict[int, tuple[str, str]] = {}
        # query token -> its alternatives (typo fix, synonyms): customers' messages
        # share most of their words, each message is new
        self._alts_cache: dict[str, tuple[str, ...]] = {}
        # article id -> (kind, slug, title, relpath), read once per build: a search
        # needed one more SQL query for them (issue 18)
        self._meta: dict[str, tuple[str, str, str, str]] = {}
        self._article_cache: dict[str, object] = {}
        self._generation = 0  # bumped by refresh: an answer read before it is not kept
        self.rebuilt = False
        self.build_seconds = 0.0

    # ----------------------------------------------------------------- lifecycle

    @classmethod
    def open(cls, root: Path, index_path: Path) -> KnowledgeIndex:
        """Open (creating or rebuilding when the files changed) the index for ``root``."""
        root = Path(root)
        index_path = Path(index_path)
        index_path.parent.mkdir(parents=True, exist_ok=True)
        conn: sqlite3.Connection | None = None
        try:
            conn = cls._connect(index_path)
            self = cls(root, conn, index_path)
            self.refresh()
        except sqlite3.DatabaseError as exc:  # corrupt or foreign file: start over
            log.warning("index %s unusable (%s); recreating it", index_path, exc)
            if conn is not None:
                conn.close()
            for suffix in ("", "-wal", "-shm"):
                Path(f"{index_path}{suffix}").unlink(missing_ok=True)
            conn = cls._connect(index_path)
            self = cls(root, conn, index_path)
            self.refresh()
        return self

    @staticmethod
    def _connect(index_path: Path) -> sqlite3.Connection:
        conn = sqlite3.connect(str(index_path), check_same_thread=False, isolation_level=None)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=NORMAL")
        return conn

    def close(self) -> None:
        with self._lock:
            self._conn.close()
        self.worker.shutdown()

    def __enter__(self) -> KnowledgeIndex:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ----------------------------------------------------------------- build

    def _manifest_stat(self) -> list[tuple[str, int, int, Path, str]]:
        out = []
        for path, kind in article_files(self.root):
            st = path.stat()
            out.append((f"{kind}/{path.name}", st.st_mtime_ns, st.st_size, path, kind))
        return out

    def _stored(self, key: str) -> str | None:
        try:
            row = self._conn.execute("SELECT value FROM meta WHERE key=?", (key,)).fetchone()
        except sqlite3.OperationalError:
            return None
        return None if row is None else str(row[0])

    def refresh(self) -> bool:
        """Rebuild if the files changed since the last build; True when it rebuilt.

        Cheap first: equal (mtime, size) of every file means unchanged without
        reading them; otherwise equal sha256 means only touched (the new stats
        are remembered); anything else, or another schema or root, rebuilds.
        """
        with self._lock:
            stats = self._manifest_stat()
            stored_raw = self._stored("manifest")
            stored: dict[str, list[object]] = json.loads(stored_raw) if stored_raw else {}
            comparable = (
                stored_raw is not None
                and self._stored("schema") == SCHEMA_VERSION
                and self._stored("root") == str(self.root.resolve())
            )
            quick = {rel: [mt, size] for rel, mt, size, _, _ in stats}
            rebuilt = False
            if not (comparable and {k: v[:2] for k, v in stored.items()} == quick):
                hashes = {
                    rel: hashlib.sha256(p.read_bytes()).hexdigest() for rel, _, _, p, _ in stats
                }
                manifest = {rel: [mt, size, hashes[rel]] for rel, mt, size, _, _ in stats}
                if comparable and {k: v[2] for k, v in stored.items()} == hashes:
                    self._conn.execute(  # only touched: remember the new stats, keep the index
                        "INSERT OR REPLACE INTO meta VALUES ('manifest', ?)",
                        (json.dumps(manifest),),
                    )
                else:
                    self._rebuild([(p, kind) for _, _, _, p, kind in stats], manifest)
                    rebuilt = True
            self._load_vocab()
            self.rebuilt = rebuilt
            return rebuilt

    def _rebuild(self, files: list[tuple[Path, str]], manifest: dict[str, list[object]]) -> None:
        t0 = time.perf_counter()
        c = self._conn
        c.execute("BEGIN IMMEDIATE")
        try:
            for table in ("meta", "articles", "chunks", "vocab"):
                c.execute(f"DROP TABLE IF EXISTS {table}")
            c.execute("CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)")
            c.execute(
                "CREATE TABLE articles (article_id TEXT PRIMARY KEY, kind TEXT, slug TEXT,"
                " title TEXT, path TEXT, relpath TEXT, tags TEXT, markdown TEXT)"
            )
            c.execute(
                "CREATE VIRTUAL TABLE chunks USING fts5(title, section, tags, body,"
                " article_id UNINDEXED, kind UNINDEXED, chunk_no UNINDEXED,"
                " tokenize='porter unicode61 remove_diacritics 2')"
            )
            c.execute("CREATE TABLE vocab (term TEXT PRIMARY KEY, df INTEGER) WITHOUT ROWID")
            vocab: Counter[str] = Counter()
            for path, kind in files:
                try:
                    art = load_article(path, kind)
                except (OSError, UnicodeDecodeError) as exc:
                    log.warning("skipping unreadable article %s: %s", path, exc)
                    continue
                self._insert(art, vocab)
            c.executemany("INSERT INTO vocab VALUES (?, ?)", sorted(vocab.items()))
            c.executemany(
                "INSERT INTO meta VALUES (?, ?)",
                [
                    ("schema", SCHEMA_VERSION),
                    ("root", str(self.root.resolve())),
                    ("manifest", json.dumps(manifest)),
                    ("built_at", str(time.time())),
                ],
            )
            c.execute("COMMIT")
        except BaseException:
            c.execute("ROLLBACK")
            raise
        self.build_seconds = time.perf_counter() - t0
        log.info(
            "knowledge index rebuilt: %d files in %.3f s (%s)",
            len(files),
            self.build_seconds,
            self.root,
        )

    def _insert(self, art: KbArticle, vocab: Counter[str]) -> None:
        tags = " ".join(art.tags)
        self._conn.execute(
            "INSERT OR REPLACE INTO articles VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (
                art.article_id,
                art.kind,
                art.slug,
                art.title,
                str(art.path),
                f"{art.kind}/{art.slug}.md",
                json.dumps(list(art.tags)),
                art.markdown,
            ),
        )
        sections = art.sections or split_sections(art.markdown)
        rows = []
        for no, sec in enumerate(sections):
            rows.append((art.title, sec.heading, tags, sec.text, art.article_id, art.kind, no))
            vocab.update(set(tokenize(f"{art.title} {tags} {sec.heading} {sec.text}")))
        self._conn.executemany("INSERT INTO chunks VALUES (?, ?, ?, ?, ?, ?, ?)", rows)

    def _load_vocab(self) -> None:
        try:
            rows = self._conn.execute("SELECT term, df FROM vocab").fetchall()
            chunks = int(self._conn.execute("SELECT count(*) FROM chunks").fetchone()[0])
        except sqlite3.OperationalError:
            rows, chunks = [], 0
        terms = [r[0] for r in rows]
        self._vocab = frozenset(terms)
        self._n_chunks = chunks
        try:
            self._meta = {str(r[0]): (r[1], r[2], r[3], r[4]) for r in self._conn.execute(
                "SELECT article_id, kind, slug, title, relpath FROM articles")}
        except sqlite3.OperationalError:
            self._meta = {}
        self._stem_df = {}
        if chunks >= _COMMON_MIN_CHUNKS:
            try:  # stems and their section counts, as FTS5 itself sees them
                self._conn.execute(
                    "CREATE VIRTUAL TABLE IF NOT EXISTS temp.stemmer USING fts5(w,"
                    " tokenize='porter unicode61 remove_diacritics 2')"
                )
                self._conn.execute(
                    "CREATE VIRTUAL TABLE IF NOT EXISTS temp.stemmer_v"
                    " USING fts5vocab(temp, stemmer, 'instance')"
                )
                self._conn.execute("DROP TABLE IF EXISTS temp.chunks_v")
                self._conn.execute(
                    "CREATE VIRTUAL TABLE temp.chunks_v USING fts5vocab(main, chunks, 'row')"
                )
            except sqlite3.OperationalError as exc:
                log.warning("no common-term filtering (%s)", exc)
                self._n_chunks = 0
        self._deletes = None  # built on the first misspelt query
        self._fix_cache = {}
        self._hits_cache = {}
        self._expr_cache = {}
        self._chunk_cache = {}
        self._alts_cache = {}
        self._article_cache = {}
        self._generation += 1

    @property
    def generation(self) -> int:
        """Bumped whenever the indexed articles may have changed (:meth:`refresh`): what
        a caller derived from earlier searches is stale once it moves."""
        return self._generation

    @property
    def vocabulary(self) -> frozenset[str]:
        """Every word of the indexed articles (lower case, unstemmed)."""
        return self._vocab

    # ----------------------------------------------------------------- query

    def correct(self, token: str) -> str | None:
        """The vocabulary word a misspelt token most likely meant (None if none close).

        Candidates come from the deletion neighbourhood (one deletion on either
        side: substitutions, insertions, deletions, swaps), so a look-up costs a
        few dictionary probes whatever the vocabulary size.
        """
        if token in self._vocab or not token.isalpha() or len(token) < 4:
            return None
        if token in self._fix_cache:
            return self._fix_cache[token]
        if self._deletes is None:
            self._deletes = self._deletion_map()
        keys = {token, *(token[:i] + token[i + 1 :] for i in range(len(token)))}
        found: dict[str, int] = {}
        for key in keys:
            for cand in self._deletes.get(key, ()):
                if cand not in found:
                    found[cand] = 1 if edit_distance_le(token, cand, 1) else 2
        best: str | None = None
        if found:
            ordered = sorted(found.items(), key=lambda kv: (kv[1], kv[0][0] != token[0], kv[0]))
            cand, dist = ordered[0]
            if dist == 1 or len(token) > 5:
                best = cand
        if len(self._fix_cache) > 10_000:
            self._fix_cache.clear()
        self._fix_cache[token] = best
        return best

    def _deletion_map(self) -> dict[str, list[str]]:
        """SymSpell-style neighbourhood: words one deletion apart share a key."""
        deletes: dict[str, list[str]] = {}
        for t in self._vocab:
            if t.isalpha() and len(t) >= 4:
                for key in {t, *(t[:i] + t[i + 1 :] for i in range(len(t)))}:
                    deletes.setdefault(key, []).append(t)
        return deletes

    def query_terms(self, query: str) -> list[tuple[str, ...]]:
        """Groups of alternative terms (original, typo fix, synonyms) for a query."""
        groups: list[tuple[str, ...]] = []
        seen: set[str] = set()
        for tok in tokenize(query):
            if tok in STOP_WORDS or tok in seen:
                continue
            seen.add(tok)
            group = self._alts_cache.get(tok)
            if group is None:
                group = self._alternatives(tok)
                if len(self._alts_cache) >= _CACHE_ENTRIES:
                    self._alts_cache.clear()
                self._alts_cache[tok] = group
            groups.append(group)
        if not groups:  # a query of stop words only: search them rather than nothing
            groups = [(t,) for t in dict.fromkeys(tokenize(query))]
        common = self._common_words([t for g in groups for t in g])
        rare = [kept for g in groups if (kept := tuple(t for t in g if t not in common))]
        return (rare or groups)[:_MAX_QUERY_TERMS]

    def _alternatives(self, tok: str) -> tuple[str, ...]:
        """The token, its typo fix and their synonyms (a pure function of the token and
        the vocabulary)."""
        alts = [tok]
        fixed = self.correct(tok)
        if fixed:
            alts.append(fixed)
        for base in list(alts):
            alts.extend(SYNONYMS.get(base, ()))
        return tuple(dict.fromkeys(alts))

    def _common_words(self, words: list[str]) -> set[str]:
        """Words whose stem is in more than a quarter of the sections of a large
        corpus: BM25 gives them almost no weight, but they cost the most to score."""
        if self._n_chunks < _COMMON_MIN_CHUNKS:
            return set()
        todo = [w for w in dict.fromkeys(words) if w not in self._stem_df and " " not in w]
        if todo:
            with self._lock:
                c = self._conn
                c.execute("DELETE FROM temp.stemmer")
                c.executemany(
                    "INSERT INTO temp.stemmer (rowid, w) VALUES (?, ?)", enumerate(todo, 1)
                )
                stems = {
                    todo[doc - 1]: term
                    for term, doc in c.execute("SELECT term, doc FROM temp.stemmer_v")
                }
                for word in todo:
                    stem = stems.get(word)
                    row = (
                        c.execute(
                            "SELECT doc FROM temp.chunks_v WHERE term = ?", (stem,)
                        ).fetchone()
                        if stem
                        else None
                    )
                    self._stem_df[word] = int(row[0]) if row else 0
            if len(self._stem_df) > 50_000:
                self._stem_df.clear()
        limit = _COMMON_FRACTION * self._n_chunks
        return {w for w in words if self._stem_df.get(w, 0) > limit}

    def fts_query(self, query: str) -> str:
        """A safe FTS5 MATCH expression: every term quoted, groups OR-ed."""
        parts = []
        for group in self.query_terms(query):
            terms = []
            for t in group:
                words = t.split()
                terms.append(
                    _fts_quote(t)
                    if len(words) == 1
                    else "(" + " ".join(map(_fts_quote, words)) + ")"
                )
            parts.append(terms[0] if len(terms) == 1 else "(" + " OR ".join(terms) + ")")
        return " OR ".join(parts)

    def search(self, query: str, limit: int = 5, kind: str | None = None, *,
               snippets: bool = True) -> list[SearchHit]:
        """Best articles for ``query`` (one hit per article, best section first).

        An empty query lists articles by title (for browsing). Never raises on
        odd input: the query is reduced to quoted word tokens. ``snippets=False``:
        the same hits with ``snippet`` left empty, for a caller that reads the
        whole section (``text``) only - FTS5 computes a snippet by running the
        MATCH again (~40 % of a search's cost).
        """
        limit = max(1, int(limit))
        if not query.strip():
            return self._browse(limit, kind)
        key = (query, limit, kind, snippets)
        cached = self._hits_cache.get(key)
        if cached is not None:
            return list(cached)
        generation = self._generation
        expr = self.fts_query(query)
        by_expr = (expr, limit, kind, snippets)
        cached = self._expr_cache.get(by_expr)
        hits = (list(cached) if cached is not None
                else self._search(query, expr, limit, kind, snippets))
        with self._lock:
            if generation == self._generation:
                _remember(self._hits_cache, key, tuple(hits))
                _remember(self._expr_cache, by_expr, tuple(hits))
        return hits

    def _search(self, query: str, expr: str, limit: int, kind: str | None,
                snippets: bool = True) -> list[SearchHit]:
        """The hits for ``expr`` (:meth:`fts_query` of ``query``, which logs name)."""
        if not expr:
            return []
        rank_sql = (
            "SELECT rowid, article_id, bm25(chunks, ?, ?, ?, ?) AS r FROM chunks"
            " WHERE chunks MATCH ?" + (" AND kind = ?" if kind else "") + " ORDER BY r LIMIT ?"
        )
        params: tuple[object, ...] = (*_WEIGHTS, expr, *((kind,) if kind else ()), limit * 8 + 32)
        with self._lock:
            try:
                rows = self._conn.execute(rank_sql, params).fetchall()
            except sqlite3.OperationalError as exc:  # should not happen: terms are quoted
                log.warning("search failed for %r (%s): %s", query, expr, exc)
                return []
            best: dict[str, tuple[int, float]] = {}  # article -> (best rowid, total score)
            for rowid, article_id, rank in rows:
                score = -float(rank)
                if article_id not in best:
                    best[article_id] = (rowid, score)
                else:  # other matching sections add a little evidence
                    best[article_id] = (best[article_id][0], best[article_id][1] + 0.25 * score)
            ranked = sorted(best.items(), key=lambda kv: -kv[1][1])[:limit]
            if not ranked:
                return []
            wanted = [row for _, (row, _) in ranked]
            detail = (self._snippets(expr, wanted) if snippets
                      else self._sections(wanted))
            meta = self._article_meta(a for a, _ in ranked)
        hits = []
        for article_id, (rowid, total) in ranked:
            if article_id not in meta or rowid not in detail:
                continue
            kind_, slug, title, relpath = meta[article_id]
            section, body, snip = detail[rowid]
            text = str(body)
            hits.append(
                SearchHit(
                    article_id=article_id,
                    kind=kind_,
                    slug=slug,
                    title=title,
                    path=relpath,
                    section=str(section),
                    snippet=(str(snip).strip() or text[:240]) if snippets else "",
                    score=round(total, 4),
                    text=text,
                )
            )
        return hits

    def _snippets(self, expr: str, rows: list[int]) -> dict[int, tuple[str, str, str]]:
        """(locked) Each row's heading, body and FTS5 snippet for ``expr``."""
        marks = ",".join("?" * len(rows))
        return {
            r[0]: r[1:]
            for r in self._conn.execute(
                "SELECT rowid, section, body,"
                f" snippet(chunks, 3, '', '', ' … ', {_SNIPPET_TOKENS}) FROM chunks"
                f" WHERE chunks MATCH ? AND rowid IN ({marks})",
                (expr, *rows),
            )
        }

    def _sections(self, rows: list[int]) -> dict[int, tuple[str, str, str]]:
        """(locked) Each row's heading and body (no snippet), kept per row."""
        cache = self._chunk_cache
        out = {r: (*cache[r], "") for r in rows if r in cache}
        todo = [r for r in rows if r not in out]
        if todo:
            marks = ",".join("?" * len(todo))
            for rowid, section, body in self._conn.execute(
                    f"SELECT rowid, section, body FROM chunks WHERE rowid IN ({marks})", todo):
                out[rowid] = (section, body, "")
                _remember(cache, rowid, (section, body))
        return out

    def _article_meta(self, ids: Iterable[str]) -> dict[str, tuple[str, str, str, str]]:
        ids = list(ids)
        if not ids:
            return {}
        if self._meta:  # read at load (every search's articles are in it)
            meta = self._meta
            return {a: meta[a] for a in ids if a in meta}
        out: dict[str, tuple[str, str, str, str]] = {}
        for i in range(0, len(ids), 500):
            part = ids[i : i + 500]
            marks = ",".join("?" * len(part))
            for row in self._conn.execute(
                f"SELECT article_id, kind, slug, title, relpath FROM articles"
                f" WHERE article_id IN ({marks})",
                part,
            ):
                out[row[0]] = (row[1], row[2], row[3], row[4])
        return out

    def _browse(self, limit: int, kind: str | None) -> list[SearchHit]:
        with self._lock:
            rows = self._conn.execute(
                "SELECT article_id, kind, slug, title, relpath, markdown FROM articles"
                " WHERE (? IS NULL OR kind = ?) ORDER BY kind, title LIMIT ?",
                (kind, kind, limit),
            ).fetchall()
        hits = []
        for article_id, kind_, slug, title, relpath, markdown in rows:
            secs = split_sections(markdown)
            first = secs[0] if secs else None
            text = first.text if first else ""
            hits.append(
                SearchHit(
                    article_id,
                    kind_,
                    slug,
                    title,
                    relpath,
                    first.heading if first else "",
                    text[:240],
                    0.0,
                    text,
                )
            )
        return hits

    # ----------------------------------------------------------------- articles

    def cached_article(self, article_id: str) -> tuple[bool, KbArticle | None]:
        """``(True, article or None)`` when :meth:`get` answered this id before (memory
        only, no lock: safe on the event loop); ``(False, None)`` when it must ask."""
        cached = self._article_cache.get(_article_key(article_id), _MISSING)
        if cached is _MISSING:
            return False, None
        return True, cast("KbArticle | None", cached)

    def get(self, article_id: str) -> KbArticle | None:
        """The article with this id (or the given filename stem), or None."""
        key = _article_key(article_id)
        cached = self._article_cache.get(key, _MISSING)
        if cached is not _MISSING:
            return cast("KbArticle | None", cached)
        with self._lock:
            row = self._conn.execute(
                "SELECT article_id, kind, slug, title, path, tags, markdown FROM articles"
                " WHERE article_id = ? OR (instr(?, '/') = 0 AND slug = ?)"
                " ORDER BY kind = 'faq' DESC LIMIT 1",
                (key, key, key),
            ).fetchone()
            art = None if row is None else self._article(row)
            _remember(self._article_cache, key, art)
        return art

    def articles(self) -> list[KbArticle]:
        """Every indexed article, kb/ then faq/, by slug."""
        with self._lock:
            rows = self._conn.execute(
                "SELECT article_id, kind, slug, title, path, tags, markdown FROM articles"
                " ORDER BY kind DESC, slug"
            ).fetchall()
        return [self._article(r) for r in rows]

    def __len__(self) -> int:
        with self._lock:
            return int(self._conn.execute("SELECT count(*) FROM articles").fetchone()[0])

    @staticmethod
    def _article(row: tuple[str, str, str, str, str, str, str]) -> KbArticle:
        article_id, kind, slug, title, path, tags, markdown = row
        return KbArticle(
            article_id=article_id,
            kind=kind,
            slug=slug,
            title=title,
            path=Path(path),
            markdown=markdown,
            tags=tuple(json.loads(tags or "[]")),
            sections=split_sections(markdown),
        )


def _article_key(article_id: str) -> str:
    key = article_id.strip()
    return key[:-3] if key.endswith(".md") else key


def _remember(cache: dict[Any, Any], key: Any, value: Any) -> None:
    """Keep ``value`` under ``key``, dropping the oldest entry past the bound."""
    if len(cache) >= _CACHE_ENTRIES:
        cache.pop(next(iter(cache)))
    cache[key] = value


def open_index(data_dir: Path, knowledge_dir: str | Path | None = None) -> KnowledgeIndex:
    """The host's index: the configured knowledge dir (else the shipped articles),
    kept in ``data_dir``. The co-pilot and the offline and compatible engines all
    open it here, so they agree on the file and rebuild it at most once."""
    return KnowledgeIndex.open(knowledge_root(knowledge_dir), Path(data_dir) / INDEX_FILENAME)
