"""Article sections as draft text: the section that answers, rendered whole.

A draft quotes one section (or a few of its sentences), never fragments
stitched from several places: a sentence like "After that, the warranty
applies." makes no sense without its neighbours. Lists stay lists and
numbered steps stay numbered.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass

from hitl_desktop.knowledge.articles import split_sections

_STOP = frozenset(
    {
        "the",
        "a",
        "an",
        "and",
        "or",
        "to",
        "of",
        "for",
        "you",
        "your",
        "is",
        "it",
        "in",
        "on",
        "my",
        "i",
        "we",
        "can",
        "be",
        "with",
        "do",
        "how",
        "what",
        "our",
        "us",
        "me",
        "if",
        "are",
        "this",
        "that",
        "please",
        "want",
        "need",
        "would",
        "like",
        "get",
    }
)
_ITEM_RE = re.compile(r"^\s*(?:[-*+]|(\d+)\.)\s+(.*)$")
_SENT_RE = re.compile(r"(?<=[.!?])\s+(?=[A-Z0-9\"(])")
#: Sentences that lean on something outside the section ("See ...", "After that, ...").
_SEE_RE = re.compile(r"\s*\(see [^)]*\)")
_LEANING_RE = re.compile(r"^(?:see |after that|this |that |it |these |those |also )", re.I)


@dataclass(frozen=True, slots=True)
class Block:
    """A run of prose sentences or a list (``numbered`` when its items are steps)."""

    lines: tuple[str, ...]
    is_list: bool
    numbered: bool


@dataclass(frozen=True, slots=True)
class Part:
    heading: str
    blocks: tuple[Block, ...]

    @property
    def plain(self) -> str:
        return " ".join(" ".join(b.lines) for b in self.blocks)


def terms(text: str) -> set[str]:
    """Content words cut to 5 letters (a cheap stem: refund/refunds/refunded)."""
    low = text.lower().replace("how much", "cost price").replace("how long", "days takes")
    words = [w[:-1] if len(w) > 3 and w.endswith("s") and not w.endswith("ss") else w
             for w in re.findall(r"[a-z0-9$]+", low)]
    out = {w[:5] for w in words if w not in _STOP and len(w) > 1}
    return {"ship" if w in ("deliv", "shipp") else w for w in out}  # deliver = ship


def _inline(text: str) -> str:
    text = re.sub(r"\*\*|__|`", "", text)
    text = re.sub(r"\[([^\]]+)\]\([^)]+\)", r"\1", text)
    return re.sub(r"\s+", " ", text).strip()


def _blocks(text: str) -> list[Block]:
    """Prose paragraphs split into sentences; list items kept as items."""
    blocks: list[Block] = []
    prose: list[str] = []
    items: list[str] = []
    numbered = False
    header: list[str] | None = None
    for raw in [*text.splitlines(), ""]:
        line = raw.strip()
        if line.startswith("|"):  # a table row becomes a list item: "Express: 1-2 days; $12.99"
            cells = [_inline(c) for c in line.strip("|").split("|")]
            if header is None:
                header = cells
            elif not all(re.fullmatch(r":?-+:?", c) for c in cells):
                line = f"- {cells[0]}: " + "; ".join(c for c in cells[1:] if c)
            if not line.startswith("- "):
                continue
        else:
            header = None
        if line.startswith("#"):
            continue
        m = _ITEM_RE.match(line)
        if (m or not line) and prose:
            sents = [x.strip() for x in _SENT_RE.split(_inline(" ".join(prose))) if x.strip()]
            blocks.append(Block(tuple(sents), False, False))
            prose = []
        if (not m) and items:
            blocks.append(Block(tuple(items), True, numbered))
            items = []
        if m:
            numbered = bool(m.group(1))
            items.append(_inline(m.group(2)))
        elif line:
            prose.append(line)
    return blocks


def parts(markdown: str) -> list[Part]:
    """The article's sections as prose blocks and lists."""
    out: list[Part] = []
    for sec in split_sections(markdown):
        blocks = _blocks(sec.text)
        if blocks:
            out.append(Part(sec.heading, tuple(blocks)))
    return out


@functools.lru_cache(maxsize=256)
def _indexed(markdown: str) -> tuple[tuple[Part, frozenset[str], frozenset[str]], ...]:
    """:func:`parts` with each part's heading and body :func:`terms`: pure, kept per
    article text (every draft quotes one of the same few articles; each draft split
    and stemmed them again)."""
    return tuple((part, frozenset(terms(part.heading)), frozenset(terms(part.plain)))
                 for part in parts(markdown))


@functools.lru_cache(maxsize=4096)
def _sentence_terms(sentence: str) -> frozenset[str]:
    """:func:`terms` of an article's sentence (the same sentences, draft after draft)."""
    return frozenset(terms(sentence))


def rank(markdown: str, query: str, prefer: str = "", focus: str = "") -> list[Part]:
    """Sections by how well they answer ``query`` (heading words count double); the
    customer's own words (``focus``) count once more."""
    q = terms(query)
    f = terms(focus)
    how = re.match(r"\s*how (?:do|can|to|should|would)\b", focus.lower()) is not None
    # "what do I do if it arrives broken": the section that says what to do, not the intro
    todo = re.match(r"\s*what (?:do|should|can|must) (?:i|we) do\b", focus.lower()) is not None
    scored: list[tuple[float, int, Part]] = []
    for n, (part, head, body) in enumerate(_indexed(markdown)):
        score = 2.0 * len(q & head) + len(q & body) + 2.0 * len(f & head) + len(f & body)
        if head and len(q & head) * 2 >= len(head):
            score += 1.5  # the heading is mostly the question ("Support hours")
        if prefer and part.heading == prefer:
            score += 0.75
        if how and part.heading.lower().startswith("how"):
            score += 2.0  # "how do I ...": the section that says how
        if todo and part.heading.lower().startswith(("what to do", "how to")):
            score += 2.0
        scored.append((score, -n, part))
    scored.sort(key=lambda s: (-s[0], -s[1]))
    return [p for s, _, p in scored if s > 0] or [p for _, _, p in scored[:1]]


def render(part: Part, query: str = "", max_sentences: int = 3, drop: str = "") -> str:
    """A section as draft text: prose sentences (the ones that answer, in order) and
    lists as lists; a sentence leaning on text that is left out is dropped."""
    q = terms(query)
    out: list[str] = []
    for block in part.blocks:
        if block.is_list:
            marker = (
                [f"{n}." for n in range(1, len(block.lines) + 1)]
                if block.numbered
                else (["-"] * len(block.lines))
            )
            out.append(
                "\n".join(f"{m} {line}" for m, line in zip(marker, block.lines, strict=True))
            )
            continue
        sents = [s for s in block.lines if not (drop and drop in s.lower())]
        if len(sents) > max_sentences and q:
            keep = sorted(range(len(sents)),
                          key=lambda i: (-len(q & _sentence_terms(sents[i])), i))
            chosen = sorted(keep[:max_sentences])
            sents = [
                sents[i]
                for i in chosen
                if i == chosen[0] or i - 1 in chosen or not _LEANING_RE.match(sents[i])
            ]
        sents = [_SEE_RE.sub("", s) for s in sents if not s.lower().startswith("see ")]
        if sents:
            out.append(" ".join(sents))
    return "\n\n".join(out)
