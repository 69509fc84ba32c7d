"""Knowledge-base articles: Markdown files with YAML front matter.

Articles live at ``{root}/{kind}/{slug}.md`` with ``kind`` in {kb, faq}; their id
is ``"{kind}/{slug}"`` everywhere (index, vector-store attributes, protocol), so a
search hit from any engine maps back to the same local file.
"""

from __future__ import annotations

import logging
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import frontmatter

log = logging.getLogger(__name__)

KINDS: tuple[str, ...] = ("kb", "faq")
_HEADING_RE = re.compile(r"^(#{1,6})\s+(.*?)\s*#*\s*$")


@dataclass(frozen=True, slots=True)
class Section:
    """One ``##`` section of an article (the unit the index searches)."""

    heading: str  # "" for the text before the first ## heading
    text: str  # body without the heading line


@dataclass(frozen=True, slots=True)
class KbArticle:
    """A loaded article; ``markdown`` is the body without front matter."""

    article_id: str
    kind: str
    slug: str
    title: str
    path: Path
    markdown: str
    tags: tuple[str, ...] = ()
    sections: tuple[Section, ...] = field(default_factory=tuple)

    @property
    def attributes(self) -> dict[str, str]:
        """The vector-store / file_search attributes that identify this article."""
        return {
            "article_id": self.article_id,
            "kind": self.kind,
            "slug": self.slug,
            "title": self.title,
            "path": f"{self.kind}/{self.slug}.md",
        }


def split_sections(markdown: str) -> tuple[Section, ...]:
    """Split a body at ``##`` headings; the H1 line is dropped, deeper headings stay."""
    sections: list[Section] = []
    heading = ""
    lines: list[str] = []
    in_code = False

    def flush() -> None:
        text = "\n".join(lines).strip()
        if text or heading:
            sections.append(Section(heading, text))

    for line in markdown.splitlines():
        if line.lstrip().startswith("```"):
            in_code = not in_code
        m = None if in_code else _HEADING_RE.match(line)
        if m and len(m.group(1)) == 1:
            continue  # the title line; the title comes from front matter
        if m and len(m.group(1)) == 2:
            flush()
            heading, lines = m.group(2).strip(), []
            continue
        lines.append(line)
    flush()
    return tuple(s for s in sections if s.text or s.heading)


def _tags(raw: Any) -> tuple[str, ...]:
    if isinstance(raw, str):
        return tuple(t.strip() for t in raw.split(",") if t.strip())
    if isinstance(raw, list | tuple):
        return tuple(str(t).strip() for t in raw if str(t).strip())
    return ()


def _title_from(markdown: str, slug: str) -> str:
    for line in markdown.splitlines():
        m = _HEADING_RE.match(line)
        if m and len(m.group(1)) == 1:
            return m.group(2).strip()
    return slug.replace("-", " ").replace("_", " ").capitalize()


def load_article(path: Path, kind: str) -> KbArticle:
    """Parse one file; a missing or broken front matter falls back to sane defaults."""
    raw = path.read_text("utf-8")
    try:
        post = frontmatter.loads(raw)
        meta: dict[str, Any] = dict(post.metadata)
        body = str(post.content)
    except Exception as exc:  # a YAML error in one file must not hide the others
        log.warning("bad front matter in %s: %s", path, exc)
        meta, body = {}, raw
    slug = path.stem
    declared = str(meta.get("kind") or kind)
    if declared != kind:
        log.warning("%s declares kind %r but lives in %s/; using %s", path, declared, kind, kind)
    title = str(meta.get("title") or _title_from(body, slug)).strip()
    return KbArticle(
        article_id=f"{kind}/{slug}",
        kind=kind,
        slug=slug,
        title=title,
        path=path,
        markdown=body.strip() + "\n",
        tags=_tags(meta.get("tags")),
        sections=split_sections(body),
    )


def article_files(root: Path) -> list[tuple[Path, str]]:
    """Every ``{kind}/*.md`` under root, sorted, with its kind."""
    found: list[tuple[Path, str]] = []
    for kind in KINDS:
        folder = root / kind
        if folder.is_dir():
            found.extend((p, kind) for p in sorted(folder.glob("*.md")) if p.is_file())
    return found


def load_articles(root: Path) -> list[KbArticle]:
    """Load all articles below ``root`` (kb/ then faq/, by slug)."""
    articles: list[KbArticle] = []
    for path, kind in article_files(Path(root)):
        try:
            articles.append(load_article(path, kind))
        except (OSError, UnicodeDecodeError) as exc:
            log.warning("skipping unreadable article %s: %s", path, exc)
    return articles


def _candidates() -> list[Path]:
    here = Path(__file__).resolve()
    out: list[Path] = []
    meipass = getattr(sys, "_MEIPASS", None)
    if meipass:  # PyInstaller bundle: datas copied next to the executable's files
        out += [Path(meipass) / "knowledge_base", Path(meipass) / "hitl_desktop" / "knowledge_base"]
    out += [
        here.parents[2] / "knowledge_base",  # repository checkout / editable install
        here.parents[1] / "data" / "knowledge_base",  # installed as package data
        here.parents[1] / "knowledge_base",
        Path(sys.prefix) / "share" / "hitl-desktop" / "knowledge_base",  # data_files install
        Path(sys.executable).resolve().parent / "knowledge_base",  # frozen one-folder app
    ]
    return out


def default_knowledge_dir() -> Path:
    """The knowledge base shipped with the app (checkout, bundle or package data).

    Returns the first candidate that holds articles; if none does, the checkout
    path, so error messages name a sensible place.
    """
    candidates = _candidates()
    for cand in candidates:
        if article_files(cand):
            return cand
    log.warning("no shipped knowledge base found in %s", [str(c) for c in candidates])
    return Path(__file__).resolve().parents[2] / "knowledge_base"


def knowledge_root(configured: str | Path | None = None) -> Path:
    """The folder the app reads articles from: the one the settings name
    (``knowledge_dir``), else the knowledge base shipped with the app."""
    return Path(configured) if configured else default_knowledge_dir()
