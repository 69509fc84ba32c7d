"""Typo correction for the intent rules: a misspelt word becomes the lexicon word it meant.

A :class:`Speller` is built from immutable word sets and keeps its memo on the
instance, so two spellers built from the same words answer the same thing in
any process ("customer service hours?" reads the same whether or not an engine
was built before).
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from hitl_desktop.assistant.offline.lexicon import COMMON, LEXICON, SUFFIXES
from hitl_desktop.knowledge.text import edit_distance_le

WORD_RE = re.compile(r"[a-z0-9]+(?:'[a-z]+)?")
_MEMO_LIMIT = 4096
_NAME_RE = re.compile(r"(?<=[a-z,] )[A-Z][a-z]+\b")
_HAS_UPPER = re.compile(r"[a-z,] [A-Z]")
#: :meth:`Speller.normalize`'s rewrites, in order (compiled once: looking each pattern
#: up in ``re``'s cache on every call cost more than most of the substitutions)
#: each with a substring every match contains: a text without it is left as it is
_REWRITES: tuple[tuple[str, re.Pattern[str], str], ...] = tuple(
    (needle, re.compile(pattern), repl) for needle, pattern, repl in (
        ("can", r"\bcan'?t\b", "cannot"),
        ("won", r"\bwon'?t\b", "will not"),
        ("n't", r"n't\b", " not"),
        ("dont", r"\b(?:dont)\b", "do not"),
        ("didnt", r"\b(?:didnt)\b", "did not"),
        ("doesnt", r"\b(?:doesnt)\b", "does not"),
        ("hasnt", r"\b(?:hasnt)\b", "has not"),
        ("havent", r"\b(?:havent)\b", "have not"),
        ("isnt", r"\b(?:isnt)\b", "is not"),
        ("u", r"\bu\b", "you"),
        ("whens", r"\bwhens\b", "when is"),
        ("ur", r"\bur\b", "your"),
        ("pl", r"\b(?:pls|plz|plse)\b", "please"),
        ("wanna", r"\bwanna\b", "want to"),
    )
)


class Speller:
    """Corrects words against ``LEXICON``; words in ``known`` (e.g. the knowledge
    base's own vocabulary) are spelt right by definition."""

    def __init__(self, known: Iterable[str] = ()) -> None:
        self.known = frozenset(w for w in known if w.isalpha() and len(w) >= 5)
        self._sorted = sorted(LEXICON)
        self._memo: dict[str, str] = {}

    def is_known(self, word: str) -> bool:
        if word in LEXICON or word in COMMON or word in self.known:
            return True
        return any(
            word.endswith(suf) and (word[: -len(suf)] in LEXICON or word[: -len(suf)] in self.known)
            for suf in SUFFIXES
        )

    def correct(self, word: str) -> str:
        """The lexicon word a misspelt ``word`` most likely means, else ``word``."""
        hit = self._memo.get(word)  # every word's answer, known ones too (pure)
        if hit is None:
            if len(word) < 4 or not word.isalpha() or self.is_known(word):
                hit = word
            else:
                hit = self._closest(word)
            if len(self._memo) >= _MEMO_LIMIT:  # bounded: start again when full
                self._memo.clear()
            self._memo[word] = hit
        return hit

    def _closest(self, word: str) -> str:
        limit = 1 if len(word) < 8 else 2
        best: tuple[int, str] | None = None
        for cand in self._sorted:
            if abs(len(cand) - len(word)) > limit or cand[0] != word[0]:
                continue
            for d in range(1, limit + 1):
                if edit_distance_le(word, cand, d):
                    if best is None or d < best[0]:
                        best = (d, cand)
                    break
        return best[1] if best else word

    def normalize(self, text: str) -> str:
        """Lower-case, typo-corrected, single-spaced words for the intent rules."""
        low = text.lower().replace("\u2019", "'").replace("\u2018", "'")
        for needle, rx, repl in _REWRITES:
            if needle in low:
                low = rx.sub(repl, low)
        # a capitalised word inside a sentence is a name ("it should be Alex Morgan Reed"):
        # spelt as its owner spells it, never "corrected" into a lexicon word ("amex")
        if _HAS_UPPER.search(text):
            names = {m.group(0).lower() for m in _NAME_RE.finditer(text)}
            if names:
                return " ".join(w if w in names else self.correct(w) for w in WORD_RE.findall(low))
        return " ".join(self.correct(w) for w in WORD_RE.findall(low))
