"""Measuring the offline assistant on a labelled set, over the engine's real interface.

A row is a conversation so far (customer and assistant messages, plus tool runs
that are replayed against the real shop database) and the customer's latest
message, labelled with the article a representative would open first and the
whole chain of tool calls the message calls for (look-ups first, then the
proposals, in order). The engine is driven like the host drives it: safe
tools run against the database and their output goes back in; a tool the
catalog holds for approval gets the co-pilot's "awaiting approval" output and
the engine goes on, until it answers with text.

Free-text arguments ("details", "reason") are labelled "*": any non-empty
string matches; every other argument must match exactly (money to the cent).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from openai.types.responses import ResponseStreamEvent

from hitl_desktop.assistant.base import TurnRequest
from hitl_desktop.core.catalog import ToolCatalog
from hitl_desktop.core.turns import history_from_responses
from hitl_desktop.store.database import ShopDatabase

MAX_CHAIN = 6


class Engine(Protocol):
    def stream(self, request: TurnRequest) -> Any: ...


@dataclass
class Reply:
    """One engine response: the searched articles, then a tool call or a draft."""

    hits: list[str]
    call: tuple[str, dict[str, Any], str] | None
    text: str
    citations: list[str]


@dataclass
class Outcome:
    row: dict[str, Any]
    first_hits: list[str]
    calls: list[dict[str, Any]]
    draft: str
    citations: list[str] = field(default_factory=list)

    @property
    def article_ok(self) -> bool | None:
        want = self.row.get("article")
        if want is None:
            return None
        return bool(self.first_hits) and self.first_hits[0] == want

    @property
    def tools_ok(self) -> bool:
        want = self.row["tools"]
        return len(want) == len(self.calls) and all(
            call_matches(w, c) for w, c in zip(want, self.calls, strict=True)
        )


def load_rows(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text("utf-8").splitlines() if line.strip()]


def call_matches(expected: dict[str, Any], got: dict[str, Any]) -> bool:
    if got["name"] != expected["name"]:
        return False
    return _value_matches(expected["arguments"], got["arguments"])


def _value_matches(want: Any, have: Any) -> bool:
    if want == "*":
        return isinstance(have, str) and bool(have.strip())
    if isinstance(want, dict):
        return (
            isinstance(have, dict)
            and set(want) == set(have)
            and all(_value_matches(want[k], have[k]) for k in want)
        )
    if isinstance(want, float) or isinstance(have, float):
        return (
            isinstance(have, int | float)
            and not isinstance(have, bool)
            and abs(float(have) - float(want)) <= 0.005
        )
    return bool(want == have)


def awaiting_output(call_id: str) -> dict[str, Any]:
    """What the co-pilot gives the model for an action queued for approval."""
    return {
        "type": "function_call_output",
        "call_id": call_id,
        "output": json.dumps(
            {
                "ok": True,
                "status": "awaiting_approval",
                "approval_id": "APR-1",
                "message": "This action was sent to the support representative for approval. "
                "It has NOT been executed yet. Tell the customer you are looking into it; do "
                "not claim it is done.",
            }
        ),
    }


def tool_items(
    shop: ShopDatabase,
    catalog: ToolCatalog,
    name: str,
    args: dict[str, Any],
    customer_id: str | None,
    call_id: str,
) -> list[dict[str, Any]]:
    """A call and its output as the host appends them to the conversation."""
    call = {
        "type": "function_call",
        "call_id": call_id,
        "name": name,
        "arguments": json.dumps(args),
    }
    if catalog.needs_approval(name):
        return [call, awaiting_output(call_id)]
    result = shop.run_tool(name, args, customer_id=customer_id)
    return [
        call,
        {"type": "function_call_output", "call_id": call_id, "output": json.dumps(result)},
    ]


def expand(row: dict[str, Any], shop: ShopDatabase, catalog: ToolCatalog) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = []
    for n, h in enumerate(row["history"]):
        if "tool" in h:
            items += tool_items(
                shop, catalog, h["tool"], h["arguments"], row["customer_id"], f"call_h{n}"
            )
        else:
            items.append({"role": h["role"], "content": h["content"]})
    items.append({"role": "user", "content": row["message"]})
    return items


async def respond(
    engine: Engine,
    items: list[dict[str, Any]],
    catalog: ToolCatalog,
    customer_id: str | None,
    tools: Sequence[dict[str, Any]] | None = None,
) -> Reply:
    given = list(catalog.openai_tools() if tools is None else tools)
    req = TurnRequest(
        instructions="",
        history=history_from_responses(list(items)),
        tools=given,
        session_id="eval",
        customer_id=customer_id,
        final_round=not given,
    )
    events: list[ResponseStreamEvent] = [ev async for ev in engine.stream(req)]
    hits: list[str] = []
    call = None
    text = ""
    cites: list[str] = []
    for ev in events:
        if ev.type == "response.output_item.done" and ev.item.type == "file_search_call":
            hits = [str((r.attributes or {})["article_id"]) for r in ev.item.results or []]
        elif ev.type == "response.output_item.done" and ev.item.type == "function_call":
            call = (ev.item.name, json.loads(ev.item.arguments), ev.item.call_id)
        elif ev.type == "response.output_text.delta":
            text += ev.delta
        elif ev.type == "response.output_text.annotation.added":
            ann = dict(ev.annotation.to_dict()) if ev.annotation is not None else {}
            cites.append(str(ann.get("filename", "")))
    return Reply(hits, call, text, cites)


async def run_row(
    engine: Engine, row: dict[str, Any], shop: ShopDatabase, catalog: ToolCatalog
) -> Outcome:
    """Drive one row to a draft, running safe tools for real."""
    items = await asyncio.to_thread(expand, row, shop, catalog)  # the shop: off the loop
    cust = row["customer_id"]
    calls: list[dict[str, Any]] = []
    first_hits: list[str] | None = None
    for n in range(MAX_CHAIN + 1):
        rep = await respond(engine, items, catalog, cust, tools=[] if n == MAX_CHAIN else None)
        if first_hits is None:
            first_hits = rep.hits
        if rep.call is None:
            return Outcome(row, first_hits, calls, rep.text, rep.citations)
        name, args, call_id = rep.call
        calls.append({"name": name, "arguments": args})
        # the shop is never used on the loop (docs/ARCHITECTURE.md, Threads and loops)
        items += await asyncio.to_thread(tool_items, shop, catalog, name, args, cust, call_id)
    return Outcome(row, first_hits or [], calls, "", [])


@dataclass
class Figures:
    n: int
    article: float
    article_n: int
    tools: float
    actions: float  # proposals (approval tools) right, ignoring look-ups
    stray_proposals: int  # proposals on rows that need none
    misses: list[str]
    #: drafts citing an article on rows labelled with none ("what's the capital of
    #: France?" answered from the shipping article): the article figure cannot see them
    stray_citations: int = 0


async def evaluate(
    engine: Engine, rows: list[dict[str, Any]], shop: ShopDatabase, catalog: ToolCatalog
) -> tuple[Figures, list[Outcome]]:
    outcomes = [await run_row(engine, row, shop, catalog) for row in rows]
    art = [o.article_ok for o in outcomes if o.article_ok is not None]
    cited = [o for o in outcomes if "article" in o.row and o.row["article"] is None and o.citations]
    act_ok = stray = 0
    misses: list[str] = []
    for o in outcomes:
        want = [w for w in o.row["tools"] if catalog.needs_approval(w["name"])]
        got = [c for c in o.calls if catalog.needs_approval(c["name"])]
        act_ok += len(want) == len(got) and all(
            call_matches(w, g) for w, g in zip(want, got, strict=True)
        )
        stray += bool(got) and not want
        if not o.tools_ok or o.article_ok is False:
            top = o.first_hits[0] if o.first_hits else None
            misses.append(
                f"{o.row['id']} {o.row['message']!r}: article {top} (want {o.row['article']}); "
                f"calls {[(c['name'], c['arguments']) for c in o.calls]} "
                f"(want {[(c['name'], c['arguments']) for c in o.row['tools']]})"
            )
    figs = Figures(
        n=len(rows),
        article=sum(art) / len(art) if art else 1.0,
        article_n=len(art),
        tools=sum(o.tools_ok for o in outcomes) / len(rows),
        actions=act_ok / len(rows),
        stray_proposals=stray,
        misses=misses + [f"{o.row['id']} {o.row['message']!r}: cites {o.citations} (want none)"
                         for o in cited],
        stray_citations=len(cited),
    )
    return figs, outcomes
