"""Retrieval: the articles a representative would open first, for each request.

Each request is searched twice, with its intent's topic words (the articles'
vocabulary) and with the customer's own words (ids, product names and filler
removed, synonyms and other languages mapped to the articles' words); the two
rankings are fused so the topic picks the subject and the customer's words
pick among close articles and their sections.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol

from hitl_desktop.assistant.offline.intents import without_turned_down
from hitl_desktop.assistant.offline.lexicon import PRODUCT_WORDS, RETRIEVAL_SYNONYMS
from hitl_desktop.assistant.offline.records import RECORDS
from hitl_desktop.assistant.offline.understanding import Understanding, english_words
from hitl_desktop.knowledge.index import SearchHit

log = logging.getLogger(__name__)

_NOISE_RE = re.compile(
    r"\b(?:ORD[\s#-]?\d{4}|#?\d{4}|CUST\d{4}|orders?|northwind|please|pls|thanks?|hi|hello|hey"
    r"|need|help|want|question)\b",
    re.I,
)
#: Intents whose article is written for representatives (kb/) on purpose.
_REP_TOPICS = frozenset({"human"})


class SearchIndex(Protocol):
    """What retrieval needs of :class:`~hitl_desktop.knowledge.index.KnowledgeIndex`."""

    def search(self, query: str, limit: int = 5, kind: str | None = None, *,
               snippets: bool = True) -> list[SearchHit]: ...


@dataclass(slots=True)
class Retrieval:
    queries: list[str] = field(default_factory=list)
    hits: list[SearchHit] = field(default_factory=list)  # the file_search results, best first
    picks: dict[str, SearchHit] = field(default_factory=dict)  # intent -> its article


#: RETRIEVAL_SYNONYMS as (phrase, its pattern, replacement), compiled once
_SYNONYM_RES: tuple[tuple[str, re.Pattern[str], str], ...] = tuple(
    (phrase, re.compile(rf"\b{re.escape(phrase)}\b"), kb)
    for phrase, kb in RETRIEVAL_SYNONYMS.items()
)


def customer_words(text: str) -> str:
    """The customer's words as search words: no ids or filler, synonyms mapped."""
    low = without_turned_down(english_words(text))  # "a refund rather than a new one"
    for phrase, rx, kb in _SYNONYM_RES:
        if phrase in low:  # the pattern cannot match otherwise (most messages: none do)
            low = rx.sub(kb, low)
    words = [
        w for w in re.findall(r"[a-z0-9$]+", _NOISE_RE.sub(" ", low)) if w not in PRODUCT_WORDS
    ]
    return " ".join(words)


#: how many texts' search words a retriever keeps (every tool round of a reply asks again)
WORDS_MEMO_LIMIT = 4096
#: how many understandings' retrievals a retriever keeps (every tool round of a reply
#: understands the same message the same way and searched for it the same way)
RETRIEVAL_MEMO_LIMIT = 1024


class Retriever:
    def __init__(self, index: SearchIndex | None, max_results: int) -> None:
        self.index = index
        self.max_results = max(1, max_results)
        self._words: dict[str, str] = {}  # text -> customer_words(text) (pure)
        # what retrieve reads of an understanding (and the index's generation) -> its
        # result; only for an index that says when it changes (``generation``)
        self._found: dict[tuple[object, ...], Retrieval] = {}
        self._failures = 0  # searches that raised (their empty answer is not kept)

    def words(self, text: str) -> str:
        """:func:`customer_words`, kept per text."""
        hit = self._words.get(text)
        if hit is None:
            hit = customer_words(text)
            if len(self._words) >= WORDS_MEMO_LIMIT:
                self._words.clear()
            self._words[text] = hit
        return hit

    def search(self, query: str) -> list[SearchHit]:
        if self.index is None or not query.strip():
            return []
        try:
            # the engine quotes whole sections: FTS5's snippets are never read here
            return list(self.index.search(query, limit=self.max_results, snippets=False))
        except Exception:  # the draft must still come: search is an aid
            self._failures += 1
            log.exception("knowledge search failed for %r", query)
            return []

    def fused(self, topic: str, words: str) -> list[SearchHit]:
        """Topic and customer rankings, each scaled to its best hit, summed."""
        by_topic = self.search(topic) if topic else []
        by_words = self.search(words) if re.search(r"[a-z]{3,}", words) else []
        best: dict[str, SearchHit] = {}
        total: dict[str, float] = {}
        for hits, weight in ((by_topic, 1.0), (by_words, 0.5 if by_topic else 1.0)):
            top = max((h.score for h in hits), default=0.0)
            for h in hits:
                total[h.article_id] = total.get(h.article_id, 0.0) + weight * (
                    h.score / top if top > 0 else 0.0
                )
                if h.article_id not in best or hits is by_words:
                    best[h.article_id] = h  # the customer's words choose the section
        ranked = sorted(best.values(), key=lambda h: (-total[h.article_id], h.article_id))
        return [
            SearchHit(
                h.article_id,
                h.kind,
                h.slug,
                h.title,
                h.path,
                h.section,
                h.snippet,
                round(total[h.article_id] * 10.0, 4),
                h.text,
            )
            for h in ranked
        ]

    @staticmethod
    def pick(hits: Sequence[SearchHit], intent: str) -> SearchHit | None:
        """The best customer-facing FAQ (representatives' articles only for their own topics)."""
        if not hits:
            return None
        if intent in _REP_TOPICS:
            return hits[0]
        faq = next((h for h in hits if h.kind == "faq"), None)
        return faq if faq is not None else hits[0]  # the draft quotes customer-facing text

    def retrieve(self, und: Understanding) -> Retrieval:
        """The searches for ``und`` and the articles they found; kept per understanding
        (what of it this reads) while the index is unchanged."""
        generation = getattr(self.index, "generation", None)
        if generation is None:
            return self._retrieve(und)
        key = (generation, tuple(und.topics[:3]),
               tuple((r.intent, r.clause, r.question) for r in und.requests),
               und.norm, und.text, bool(und.social), und.injection)
        found = self._found.get(key)
        if found is None:
            failures = self._failures
            found = self._retrieve(und)
            if failures != self._failures:  # a search failed: ask again next time
                return found
            if len(self._found) >= RETRIEVAL_MEMO_LIMIT:
                self._found.clear()
            self._found[key] = found
        # the caller's own lists: nothing is shared with the memo
        return Retrieval(list(found.queries), list(found.hits), dict(found.picks))

    def _retrieve(self, und: Understanding) -> Retrieval:
        out = Retrieval()
        pool: list[SearchHit] = []
        clauses = {r.intent: r.clause for r in und.requests}
        questions = {r.intent: r.question for r in und.requests}
        for intent in und.topics[:3]:
            rec = RECORDS[intent]
            if not rec.topic:
                continue
            how = re.search(r"\bhow (?:do|can|to|would|should)\b|\bsteps?\b", und.norm)
            topic = rec.question_topic if questions.get(intent) and not how else rec.topic
            words = self.words(clauses.get(intent, und.text))
            out.queries.append(f"{topic} {words}".strip())
            hits = self.fused(topic, words)
            pick = self.pick(hits, intent)
            if pick is not None and all(
                p.article_id != pick.article_id for p in out.picks.values()
            ):
                out.picks[intent] = pick
            pool += hits
        if not out.queries and und.text.strip() and not und.social and not und.injection:
            words = self.words(und.text)
            if re.search(r"[a-z]{3,}", words):
                out.queries.append(words)
                hits = self.search(words)
                pool += hits
                if hits and _covers(hits[0], words):
                    out.picks[""] = hits[0]
        ordered = list(out.picks.values())
        for h in sorted(pool, key=lambda h: -h.score):
            if all(h.article_id != o.article_id for o in ordered):
                ordered.append(h)
        out.hits = ordered[: self.max_results]
        return out


def _covers(hit: SearchHit, words: str) -> bool:
    """Does the article talk about most of what the customer asked?"""
    asked = {w[:5] for w in words.split() if len(w) > 2}
    have = {w[:5] for w in re.findall(r"[a-z0-9]+", f"{hit.title} {hit.text}".lower())}
    return bool(asked) and len(asked & have) / len(asked) >= 0.6
