"""The draft being written: paragraphs, and where each cited article goes."""

from __future__ import annotations

from collections.abc import Callable

from hitl_desktop.assistant.offline import sections
from hitl_desktop.knowledge.index import SearchHit


class Writer:
    """Collects paragraphs; every paragraph taken from an article cites it."""

    def __init__(self, markdown_of: Callable[[str], str | None]) -> None:
        self.markdown_of = markdown_of
        self.parts: list[str] = []
        self.citations: list[tuple[int, SearchHit]] = []
        self.cited: set[str] = set()
        self.used: set[tuple[str, str]] = set()  # (article, section) already quoted

    @property
    def text(self) -> str:
        return "".join(self.parts)

    def para(self, text: str) -> None:
        text = text.strip()
        if not text:
            return
        if self.parts:
            self.parts.append("\n\n")
        self.parts.append(text)

    def cite(self, hit: SearchHit) -> None:
        """Cite ``hit`` for the paragraph just written."""
        self.citations.append((len(self.text), hit))
        self.cited.add(hit.article_id)

    def quote(
        self,
        hit: SearchHit | None,
        query: str,
        *,
        skip: int = 0,
        max_sentences: int = 3,
        lead: str = "",
        drop: str = "",
        focus: str = "",
    ) -> bool:
        """The section of ``hit`` that best answers ``query``, whole, cited.
        ``skip`` passes over the best sections ("tell me more")."""
        if hit is None or hit.kind != "faq":
            return False  # representatives' articles (kb/) are for us, not to quote
        markdown = self.markdown_of(hit.article_id) or f"## {hit.section}\n\n{hit.text}"
        ranked = [
            p
            for p in sections.rank(markdown, query, hit.section, focus)
            if (hit.article_id, p.heading) not in self.used
        ]
        if len(ranked) <= skip:
            return False
        part = ranked[skip]
        body = sections.render(part, query, max_sentences, drop)
        if not body:
            return False
        self.used.add((hit.article_id, part.heading))
        if lead and body.split(" ", 1)[0].lower() in ("once", "after", "when", "if"):
            lead = ""
        if lead and body[:1].isupper() and body[1:2].islower():
            body = body[0].lower() + body[1:]
        self.para(f"{lead} {body}" if lead else body)
        self.cite(hit)
        return True

    def asks(self) -> bool:
        return self.text.rstrip().endswith("?")
