"""The local knowledge index: loading, ranking, snippets, rebuilds, odd queries."""

from __future__ import annotations

import os
import sqlite3
import sys
from dataclasses import replace
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hitl_desktop.knowledge.articles import (
    default_knowledge_dir,
    load_articles,
    split_sections,
)
from hitl_desktop.knowledge.index import KnowledgeIndex
from tests.support.budget import examples


def write(root: Path, kind: str, slug: str, title: str, body: str, tags: str = "") -> Path:
    path = root / kind / f"{slug}.md"
    path.parent.mkdir(parents=True, exist_ok=True)
    meta = f"---\ntitle: {title}\nkind: {kind}\n" + (f"tags: [{tags}]\n" if tags else "") + "---\n"
    path.write_text(meta + body, "utf-8")
    return path


@pytest.fixture
def small_kb(tmp_path: Path) -> Path:
    root = tmp_path / "kb"
    write(
        root,
        "faq",
        "cancel-order",
        "How to cancel an order",
        "# How to cancel\n\nIntro.\n\n## When\n\nAn order can be cancelled while pending.\n\n"
        "## Shipped orders\n\nA shipped order cannot be cancelled; return it instead.\n",
        "cancel, cancellation",
    )
    write(
        root,
        "faq",
        "returns",
        "Return policy",
        "## Window\n\nReturn products within 30 days of delivery.\n\n## Refund\n\n"
        "We refund to the original payment method.\n",
        "return, refund",
    )
    write(
        root,
        "kb",
        "tone",
        "Tone and style",
        "## Voice\n\nFriendly and calm. Mention the order only when needed.\n",
    )
    return root


@pytest.fixture
def index(small_kb: Path, tmp_path: Path) -> KnowledgeIndex:
    return KnowledgeIndex.open(small_kb, tmp_path / "ix" / "index.sqlite3")


def test_shipped_kb_is_found_and_complete() -> None:
    root = default_knowledge_dir()
    articles = load_articles(root)
    assert len(articles) >= 26
    kinds = {a.kind for a in articles}
    assert kinds == {"kb", "faq"}
    for art in articles:
        assert art.article_id == f"{art.kind}/{art.slug}"
        assert art.title and art.title != art.slug
        assert art.tags, art.article_id
        assert len(art.sections) >= 2, art.article_id
        assert all(s.heading for s in art.sections[1:])


def test_shipped_kb_states_the_database_policy() -> None:
    """The numbers customers read are the numbers the shop database enforces."""
    text = {a.article_id: a.markdown for a in load_articles(default_knowledge_dir())}
    assert "30 days of delivery" in text["faq/return-policy"]
    assert "pending" in text["faq/cancel-order"] and "processing" in text["faq/cancel-order"]
    assert "$500.00" in text["faq/refunds"] and "5\u201310 business days" in text["faq/refunds"]
    assert "$50.00" in text["faq/vouchers"]
    assert "1 hour" in text["faq/password-reset"]
    assert "$4.99" in text["faq/shipping-delivery"] and "$12.99" in text["faq/shipping-delivery"]
    assert "40 countries" in text["faq/international-shipping"]
    hours = text["faq/support-hours"]
    assert "8:00\u201320:00" in hours and "9:00\u201314:00" in hours
    for method in ("Visa", "Mastercard", "American Express", "PayPal", "Apple Pay", "Google Pay"):
        assert method in text["faq/payment-methods"]


def test_default_dir_prefers_a_pyinstaller_bundle(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write(tmp_path / "knowledge_base", "faq", "x", "X", "## A\n\nb\n")
    monkeypatch.setattr(sys, "_MEIPASS", str(tmp_path), raising=False)
    assert default_knowledge_dir() == tmp_path / "knowledge_base"


def test_sections_split_on_level_two_headings_only() -> None:
    secs = split_sections(
        "# T\n\nintro\n\n## A\n\ntext a\n\n### deeper\n\nmore\n\n## B\n\n```\n## not\n```\n"
    )
    assert [s.heading for s in secs] == ["", "A", "B"]
    assert "### deeper" in secs[1].text
    assert "## not" in secs[2].text


def test_ranking_and_snippet(index: KnowledgeIndex) -> None:
    hits = index.search("can I cancel a shipped order?")
    assert hits[0].article_id == "faq/cancel-order"
    assert hits[0].section == "Shipped orders"
    assert "cannot be cancelled" in hits[0].snippet
    assert hits[0].path == "faq/cancel-order.md"
    assert hits[0].score > 0
    assert [h.article_id for h in hits].count("faq/cancel-order") == 1  # one hit per article
    assert index.search("refund original payment")[0].article_id == "faq/returns"


def test_search_without_snippets_finds_the_same_sections(index: KnowledgeIndex) -> None:
    """The offline engine quotes whole sections: its searches skip FTS5's snippet (a
    second MATCH), and find the same articles, sections, scores and texts; a search by
    another query with the same terms is answered from memory (the MATCH expression)."""
    for query in ("can I cancel a shipped order?", "refund original payment", "tone",
                  "retrun windw", "the the"):
        full = index.search(query)
        bare = index.search(query, snippets=False)
        assert bare == [replace(h, snippet="") for h in full]
        assert index.search(query, snippets=False) == bare  # cached: the same again
    assert index.search("cancel my SHIPPED order, please!!", snippets=False) == \
        index.search("cancel shipped order", snippets=False)
    generation = index.generation
    index.refresh()  # unchanged files: nothing rebuilt, nothing forgotten
    assert index.generation == generation + 1
    assert index.search("refund original payment", snippets=False)[0].section == "Refund"


def test_title_is_boosted(index: KnowledgeIndex) -> None:
    # "order" appears in the body of the tone article but in the title of cancel-order
    assert index.search("order")[0].article_id == "faq/cancel-order"


def test_kind_filter_and_limit(index: KnowledgeIndex) -> None:
    assert {h.kind for h in index.search("order", kind="kb")} == {"kb"}
    assert len(index.search("order", limit=1)) == 1


def test_typos_stop_words_and_synonyms(index: KnowledgeIndex) -> None:
    assert index.search("how do i cancle my oder")[0].article_id == "faq/cancel-order"
    assert index.search("I want my money back")[0].article_id == "faq/returns"
    assert index.search("the and of") == [] or index.search("the and of")[0].article_id


def test_empty_query_lists_articles(index: KnowledgeIndex) -> None:
    hits = index.search("", limit=10)
    assert {h.article_id for h in hits} == {"faq/cancel-order", "faq/returns", "kb/tone"}


@pytest.mark.parametrize(
    "query",
    [
        '"',
        "AND",
        "OR NOT",
        "NEAR(a b)",
        "col:umn",
        "*",
        "^start",
        "a - b",
        "(((",
        "😀",
        "ORD1001",
        "title:cancel",
        "x" * 5000,
        "\x00",
        "'; DROP TABLE chunks; --",
    ],
)
def test_fts_syntax_never_escapes(index: KnowledgeIndex, query: str) -> None:
    # search() swallows an FTS error (and logs it), so ask SQLite about the expression
    # itself: every query must become a MATCH expression SQLite accepts
    _assert_valid_match(index, query)
    assert isinstance(index.search(query), list)


@settings(
    max_examples=examples(150, quick=40), deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(st.text(max_size=80))
def test_any_text_is_a_safe_query(index: KnowledgeIndex, query: str) -> None:
    _assert_valid_match(index, query)
    hits = index.search(query)
    assert all(h.article_id in {"faq/cancel-order", "faq/returns", "kb/tone"} for h in hits)


def test_the_match_check_catches_raw_fts_syntax(index: KnowledgeIndex) -> None:
    """The check above fails on what search() would swallow (else it proves nothing)."""
    with pytest.raises(sqlite3.OperationalError):
        _match(index, 'NEAR((("')


def _match(index: KnowledgeIndex, expr: str) -> None:
    assert index.path is not None
    db = sqlite3.connect(index.path)
    try:
        db.execute("SELECT count(*) FROM chunks WHERE chunks MATCH ?", (expr,)).fetchone()
    finally:
        db.close()


def _assert_valid_match(index: KnowledgeIndex, query: str) -> None:
    expr = index.fts_query(query)
    if expr:  # an empty expression means "no terms": search() returns [] without SQL
        _match(index, expr)


def test_get_and_articles(index: KnowledgeIndex) -> None:
    art = index.get("faq/returns")
    assert art is not None and art.title == "Return policy" and art.tags == ("return", "refund")
    assert index.get("returns.md") is not None  # filename stem fallback
    assert index.get("faq/nope") is None
    assert [a.article_id for a in index.articles()] == [
        "kb/tone",
        "faq/cancel-order",
        "faq/returns",
    ]


def test_rebuilds_only_when_files_change(small_kb: Path, tmp_path: Path) -> None:
    db = tmp_path / "ix.sqlite3"
    first = KnowledgeIndex.open(small_kb, db)
    assert first.rebuilt
    first.close()
    again = KnowledgeIndex.open(small_kb, db)
    assert not again.rebuilt
    again.close()
    # touched but identical content: no rebuild
    path = small_kb / "faq" / "returns.md"
    st_ = path.stat()
    os.utime(path, ns=(st_.st_atime_ns, st_.st_mtime_ns + 5_000_000_000))
    touched = KnowledgeIndex.open(small_kb, db)
    assert not touched.rebuilt
    touched.close()
    # edited: rebuilt and searchable
    path.write_text(path.read_text("utf-8") + "\n## Gift cards\n\nGift cards are not returnable.\n")
    edited = KnowledgeIndex.open(small_kb, db)
    assert edited.rebuilt
    assert edited.search("gift cards")[0].section == "Gift cards"
    # added and deleted files
    write(small_kb, "faq", "hours", "Support hours", "## Hours\n\nMonday to Friday.\n")
    (small_kb / "kb" / "tone.md").unlink()
    assert edited.refresh()
    assert edited.get("faq/hours") is not None and edited.get("kb/tone") is None
    assert not edited.refresh()
    edited.close()


def test_corrupt_index_file_is_recreated(small_kb: Path, tmp_path: Path) -> None:
    db = tmp_path / "ix.sqlite3"
    db.write_bytes(b"this is not a database" * 100)
    ix = KnowledgeIndex.open(small_kb, db)
    assert ix.search("cancel")[0].article_id == "faq/cancel-order"
    ix.close()
    sqlite3.connect(db).close()


def test_bad_front_matter_does_not_hide_other_articles(small_kb: Path, tmp_path: Path) -> None:
    (small_kb / "faq" / "broken.md").write_text("---\ntitle: [unclosed\n---\n## A\n\nbody text\n")
    ix = KnowledgeIndex.open(small_kb, tmp_path / "i.sqlite3")
    assert ix.get("faq/broken") is not None
    assert ix.search("body text")[0].article_id == "faq/broken"
    assert len(ix) == 4
    ix.close()


def test_real_kb_answers_the_demo_questions(tmp_path: Path) -> None:
    ix = KnowledgeIndex.open(default_knowledge_dir(), tmp_path / "i.sqlite3")
    assert ix.search("What is the return policy?")[0].article_id == "faq/return-policy"
    assert ix.search("How do I return a product?")[0].article_id == "faq/how-to-return"
    assert ix.search("How can I cancel an order?")[0].article_id == "faq/cancel-order"
    ix.close()


def test_large_corpus_skips_near_universal_words(tmp_path: Path) -> None:
    root = tmp_path / "big"
    for n in range(80):
        extra = "The zeppelin ships on Sundays." if n == 41 else "Nothing special here."
        write(
            root,
            "faq",
            f"a{n:03d}",
            f"Article {n}",
            f"## Orders\n\nEvery order is packed.\n\n## Orders again\n\nOrdering twice.\n\n"
            f"## More\n\nAn ordered list. {extra}\n",
        )
    ix = KnowledgeIndex.open(root, tmp_path / "big.sqlite3")
    # "orders" (stem "order") is in every section: dropped; "zeppelin" decides
    assert ix.query_terms("my orders zeppelin") == [("zeppelin",)]
    assert ix.search("my orders zeppelin")[0].article_id == "faq/a041"
    # only common words left: they are still searched rather than nothing
    assert ix.search("ordering")
    ix.close()
