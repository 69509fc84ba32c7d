"""Figures of the offline assistant on a labelled set (first-run figures go in notes).

Usage: python -m bench.offline_eval tests/data/offline_set_a.jsonl [--misses] [--drafts N]
       [--by-tag]   (tool chains and articles right per row tag: slang, multi, injection, ...)
       python -m bench.offline_eval --grading-sample   (the 30 drafts graded in
       tests/data/offline_graded_drafts.jsonl: random.Random(20261130) over sets A + B)
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import sys
import tempfile
from pathlib import Path

from hitl_desktop.assistant.offline import OfflineProvider
from hitl_desktop.knowledge.articles import default_knowledge_dir
from hitl_desktop.knowledge.index import KnowledgeIndex
from hitl_desktop.store.catalog_file import default_catalog
from hitl_desktop.store.database import ShopDatabase
from tests.support.offline_eval import Outcome, evaluate, load_rows, run_row

DATA = Path(__file__).resolve().parents[1] / "tests" / "data"


async def grading_sample() -> None:
    """The 30 drafts of the graded sample, as JSON lines (to grade them again)."""
    catalog = default_catalog()
    rows = load_rows(DATA / "offline_set_a.jsonl") + load_rows(DATA / "offline_set_b.jsonl")
    picked = random.Random(20261130).sample(rows, 30)
    with tempfile.TemporaryDirectory() as tmp:
        index = KnowledgeIndex.open(default_knowledge_dir(), Path(tmp) / "ix.db")
        shop = ShopDatabase.open(Path(tmp) / "shop", catalog)
        engine = OfflineProvider(index, catalog=catalog)
        for row in picked:
            o = await run_row(engine, row, shop, catalog)
            print(json.dumps({"id": row["id"], "message": row["message"], "calls": o.calls,
                              "cited": o.citations, "draft": o.draft}, ensure_ascii=False))
        shop.close()
        index.close()


def by_tag(outcomes: list[Outcome]) -> None:
    """Which kinds of message the misses are: per tag, tool chains and articles right."""
    tags = sorted({t for o in outcomes for t in o.row.get("tags", [])})
    for tag in ["(none)", *tags]:
        rows = [o for o in outcomes
                if (tag in o.row.get("tags", [])) or (tag == "(none)" and not o.row.get("tags"))]
        if not rows:
            continue
        arts = [o.article_ok for o in rows if o.article_ok is not None]
        print(f"  tag {tag:<16} {len(rows):>4} rows  tool chains {sum(o.tools_ok for o in rows):>4}"
              f"/{len(rows):<4} articles {sum(bool(a) for a in arts):>4}/{len(arts)}")


async def main(argv: list[str]) -> int:
    if argv == ["--grading-sample"]:
        await grading_sample()
        return 0
    ap = argparse.ArgumentParser()
    ap.add_argument("path", type=Path)
    ap.add_argument("--misses", action="store_true")
    ap.add_argument("--drafts", type=int, default=0, help="dump N random drafts as JSON lines")
    ap.add_argument("--seed", type=int, default=19)
    ap.add_argument("--by-tag", action="store_true",
                    help="exact tool chains and right articles per row tag (slang, multi, ...)")
    args = ap.parse_args(argv)
    catalog = default_catalog()
    with tempfile.TemporaryDirectory() as tmp:
        index = KnowledgeIndex.open(default_knowledge_dir(), Path(tmp) / "ix.db")
        shop = ShopDatabase.open(Path(tmp) / "shop", catalog)
        engine = OfflineProvider(index, catalog=catalog)
        rows = load_rows(args.path)
        figs, outcomes = await evaluate(engine, rows, shop, catalog)
        shop.close()
        index.close()
    print(f"{args.path.name}: {figs.n} rows")
    print(f"  right article first: {figs.article:.1%} (of {figs.article_n} with an article)")
    print(f"  exact tool calls:    {figs.tools:.1%}")
    print(f"  proposals right:     {figs.actions:.1%}")
    print(f"  proposals on rows needing none: {figs.stray_proposals}")
    print(f"  citations on rows needing no article: {figs.stray_citations}")
    if args.by_tag:
        by_tag(outcomes)
    if args.misses:
        for m in figs.misses:
            print("  MISS", m)
    if args.drafts:
        picked = random.Random(args.seed).sample(outcomes, min(args.drafts, len(outcomes)))
        for o in picked:
            print(
                json.dumps(
                    {
                        "id": o.row["id"],
                        "message": o.row["message"],
                        "calls": o.calls,
                        "draft": o.draft,
                    },
                    ensure_ascii=False,
                )
            )
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main(sys.argv[1:])))
