"""The offline assistant end to end: real index, real shop database, real events.

The labelled sets (tests/data/offline_set_*.jsonl, rubric next to them) hold
customer messages as customers write them, each labelled with the article a
representative would open first and the whole chain of tool calls it calls
for; tests/support/offline_eval.py drives the engine like the host does
(safe tools run against the real shop database, approval tools get the
co-pilot's "awaiting approval" output) until it writes the draft.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import AsyncIterator, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from openai.types.responses import (
    ResponseCompletedEvent,
    ResponseCreatedEvent,
    ResponseFunctionCallArgumentsDoneEvent,
    ResponseOutputItemDoneEvent,
    ResponseTextDeltaEvent,
    ResponseTextDoneEvent,
)
from pydantic import BaseModel

from hitl_desktop.assistant.base import TurnRequest
from hitl_desktop.assistant.offline import OfflineProvider
from hitl_desktop.assistant.stream import Completed, SearchResults, StreamTranslator
from hitl_desktop.core.catalog import ToolCatalog
from hitl_desktop.core.turns import (
    ApprovalOutcome,
    CustomerLine,
    TurnItem,
    history_from_responses,
)
from hitl_desktop.knowledge.articles import default_knowledge_dir
from hitl_desktop.knowledge.index import KnowledgeIndex
from hitl_desktop.store.catalog_file import default_catalog
from hitl_desktop.store.database import ShopDatabase
from tests.support import offline_eval
from tests.support.stores import on_worker

log = logging.getLogger(__name__)
DATA = Path(__file__).resolve().parents[1] / "data"
# Set A was written before the engine was rebuilt, set B after tuning on A; first-run
# figures of both are in the closing note of issue 19.
SETS = [DATA / "offline_set_a.jsonl", DATA / "offline_set_b.jsonl"]
CUSTOMER = "CUST1001"


@pytest.fixture(scope="module")
def catalog() -> ToolCatalog:
    return default_catalog()


@pytest.fixture(scope="module")
def index(tmp_path_factory: pytest.TempPathFactory) -> Iterator[KnowledgeIndex]:
    ix = KnowledgeIndex.open(default_knowledge_dir(), tmp_path_factory.mktemp("kb") / "ix.db")
    yield ix
    ix.close()


@pytest.fixture(scope="module")
def shop(tmp_path_factory: pytest.TempPathFactory, catalog: ToolCatalog) -> Iterator[ShopDatabase]:
    db = ShopDatabase.open(tmp_path_factory.mktemp("shop"), catalog)
    yield db
    db.close()


@pytest.fixture
def provider(index: KnowledgeIndex, catalog: ToolCatalog) -> OfflineProvider:
    return OfflineProvider(index, catalog=catalog)


@dataclass
class Response:
    events: list[Any]
    hits: list[str]  # article ids of the file_search results, in order
    call: tuple[str, dict[str, Any], str] | None  # name, arguments, call_id
    text: str
    citations: list[dict[str, Any]]


def typed(items: Sequence[Any]) -> list[TurnItem]:
    """The history as the host stores it: typed items stay, Responses items are typed."""
    out: list[TurnItem] = []
    for item in items:
        if isinstance(item, dict):
            out.extend(history_from_responses([item]))
        elif isinstance(item, BaseModel):
            out.append(item)  # type: ignore[arg-type]
    return out


async def run(
    provider: OfflineProvider,
    items: Sequence[Any],
    catalog: ToolCatalog,
    customer_id: str | None = CUSTOMER,
) -> Response:
    req = TurnRequest(
        instructions="",
        history=typed(items),
        tools=catalog.openai_tools(),
        session_id="s1",
        customer_id=customer_id,
    )
    events = [ev async for ev in provider.stream(req)]
    hits: list[str] = []
    call = None
    text = ""
    citations: list[dict[str, Any]] = []
    for ev in events:
        if ev.type == "response.output_item.done" and ev.item.type == "file_search_call":
            hits = [str((r.attributes or {})["article_id"]) for r in ev.item.results or []]
        elif ev.type == "response.output_item.done" and ev.item.type == "function_call":
            call = (ev.item.name, json.loads(ev.item.arguments), ev.item.call_id)
        elif ev.type == "response.output_text.delta":
            text += ev.delta
        elif ev.type == "response.output_text.annotation.added":
            assert ev.annotation is not None
            citations.append(dict(ev.annotation.to_dict()))
    return Response(events, hits, call, text, citations)


async def tool_items(
    shop: ShopDatabase, name: str, args: dict[str, Any], customer_id: str, call_id: str
) -> list[dict[str, Any]]:
    """A safe tool run for real (off the loop), as the host appends it to the conversation."""
    result = await asyncio.to_thread(shop.run_tool, name, args, customer_id=customer_id)
    return [
        function_call(name, args, call_id),
        {"type": "function_call_output", "call_id": call_id, "output": json.dumps(result)},
    ]


def function_call(name: str, args: dict[str, Any], call_id: str) -> dict[str, Any]:
    """The model's function call as the host appends it to the conversation."""
    return {"type": "function_call", "call_id": call_id, "name": name,
            "arguments": json.dumps(args)}


def decided(
    question: str, name: str, args: dict[str, Any], call_id: str, outcome: ApprovalOutcome
) -> list[Any]:
    """A conversation past an approval: the customer asked, the action was queued, the
    representative said so, and the typed approval outcome says what became of it."""
    return [
        {"role": "user", "content": question},
        *queued(name, args, call_id),
        {"role": "assistant", "content": "I'm looking into it."},
        outcome,
    ]


def queued(name: str, args: dict[str, Any], call_id: str) -> list[dict[str, Any]]:
    """A call the co-pilot turned into an approval request, with what the model is told."""
    return [function_call(name, args, call_id), awaiting(call_id)]


def awaiting(call_id: str) -> dict[str, Any]:
    """The output the co-pilot gives the model for an action queued for approval."""
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


@pytest.mark.parametrize("path", SETS, ids=lambda p: p.stem)
async def test_labelled_sets(
    provider: OfflineProvider, catalog: ToolCatalog, shop: ShopDatabase, path: Path
) -> None:
    rows = offline_eval.load_rows(path)
    assert len(rows) >= 100
    figs, _ = await offline_eval.evaluate(provider, rows, shop, catalog)
    print(f"\nOFFLINE {path.stem}: {figs.n} messages")
    print(f"  right article first: {figs.article:.1%}  exact tool calls: {figs.tools:.1%}")
    print(f"  proposals on messages needing none: {figs.stray_proposals}")
    for miss in figs.misses:
        print("  MISS", miss)
    assert figs.article >= 0.95  # issue 19 asks for 92 %
    assert figs.tools >= 0.97  # issue 19 asks for 95 %
    assert figs.stray_proposals == 0
    assert figs.stray_citations == 0


#: Session 8's held-out sets, written before the engine's code or misses were read: the
#: engine was tuned on the dev set's misses only; thresholds are the measured figures
#: (right articles first of the rows with one, exact tool chains of all rows); the
#: first-run figures are in session 8's note of eval8.
HELD_OUT = {
    "offline_heldout8_dev": (208 / 208, 233 / 233, 2, 0),
    "offline_heldout8_test": (53 / 57, 59 / 62, 0, 0),
    # session 9 (eval9's note): the test set is never tuned on; its one stray proposal and
    # one stray citation are the measured ceiling, not a goal
    # offer9 (same session): D9167 fixed (218/222, 244/250 on the 250 rows), then four
    # sent-offer rows D9251-D9254 added after the fix (tag offer9: pins, not a measure);
    # offer9b: D9255-D9258 (an offer before a reply that asks nothing, profile-change
    # offers, "which one?" + "yes") added after the fix, pins too (main got 3 of 4 wrong);
    # either9: D9259-D9261 (orders named as alternatives, then the one chosen; "both"
    # stays two) added after the fix, pins too (main got 2 of 3 wrong)
    "offline_heldout9_dev": (227 / 231, 255 / 261, 3, 0),
    "offline_heldout9_test": (51 / 59, 55 / 66, 1, 0),
    # session 9 (blind9's note): labelled from the KB, seed and catalog without reading the
    # engine, committed before its one run; never tuned on. Its 4 stray proposals (email
    # changes without verification, an unasked reset, a complaint where a supervisor was
    # asked for) are the measured ceiling, not a goal
    "offline_heldout9_blind": (60 / 77, 69 / 85, 0, 4),
}


@pytest.mark.parametrize("name", sorted(HELD_OUT))
async def test_held_out_sets_do_not_regress(
    provider: OfflineProvider, catalog: ToolCatalog, shop: ShopDatabase, name: str
) -> None:
    rows = offline_eval.load_rows(DATA / f"{name}.jsonl")
    assert len(rows) >= 60
    figs, _ = await offline_eval.evaluate(provider, rows, shop, catalog)
    for miss in figs.misses:
        print("  MISS", miss)
    article, tools, citations, strays = HELD_OUT[name]
    assert figs.article >= article - 1e-9
    assert figs.tools >= tools - 1e-9
    assert figs.stray_proposals <= strays
    assert figs.stray_citations <= citations  # drafts quoting an article nothing asked for


async def _draft(provider: OfflineProvider, catalog: ToolCatalog, shop: ShopDatabase,
                 customer_id: str, message: str) -> offline_eval.Outcome:
    row = {"id": "x", "customer_id": customer_id, "history": [], "message": message,
           "article": None, "tools": []}
    return await offline_eval.run_row(provider, row, shop, catalog)


async def test_each_request_gets_its_own_refusal_in_the_draft(
    provider: OfflineProvider, catalog: ToolCatalog, shop: ShopDatabase
) -> None:
    """ "cancel ORD1011 and ORD1012": the delivered order's refusal was written about the
    pending one ("ORD1011 ... can still be cancelled. That means it can no longer be
    cancelled."), a contradiction naming the wrong order (session 9's dev drafts)."""
    o = await _draft(provider, catalog, shop, "CUST1003", "cancel ORD1011 and ORD1012")
    assert [c["name"] for c in o.calls] == ["get_order", "cancel_order", "get_order"]
    assert "can still be cancelled. That means" not in o.draft
    assert "ORD1012" in o.draft and "delivered" in o.draft
    # a cancelled or refunded order has nothing to send back: no "returns are possible
    # once it's delivered"
    o = await _draft(provider, catalog, shop, "CUST1004", "return the tote from ORD1014")
    assert "was cancelled" in o.draft and "once it's delivered" not in o.draft
    # no reset link to another address, and the draft says where it can go
    o = await _draft(provider, catalog, shop, CUSTOMER,
                     "send a password reset link to priya.shah@example.com")
    assert o.calls == [] and "email address on file" in o.draft
    # "never mind, I want to keep it" after the proposal: not a policy quote
    row = {"id": "x", "customer_id": CUSTOMER, "message": "actually never mind, i want to keep it",
           "history": [{"role": "user", "content": "cancel ORD1008"},
                       {"tool": "get_order", "arguments": {"order_id": "ORD1008"}},
                       {"tool": "cancel_order", "arguments": {"order_id": "ORD1008"}},
                       {"role": "assistant", "content": "Passed on for confirmation."}],
           "article": None, "tools": []}
    o = await offline_eval.run_row(provider, row, shop, catalog)
    assert o.calls == [] and o.draft.startswith("No problem, I won't go ahead with that.")
    # one product of an order cannot be cancelled: the draft says so, nothing proposed
    o = await _draft(provider, catalog, shop, CUSTOMER,
                     "cancel the water bottle from ORD1001 but keep the headphones")
    assert [c["name"] for c in o.calls] == ["get_order"]
    assert "only cancel a whole order" in o.draft
    # "my tracking hasn't updated in 6 days": when we investigate, not how tracking works
    o = await _draft(provider, catalog, shop, CUSTOMER, "my tracking hasn't updated in 6 days, "
                     "ORD1002")
    assert "investigation" in o.draft
    # a goodbye is a goodbye ("cool thx, that's everything" drafted NOT_UNDERSTOOD)
    o = await _draft(provider, catalog, shop, CUSTOMER, "cool thx, that's everything")
    assert o.draft.startswith("You're welcome! Have a great day.")


def test_graded_drafts_meet_the_bar() -> None:
    """30 random drafts graded 0-2 with tests/data/offline_rubric.md (issue 19: mean >= 1.6,
    none misleading); the grader writes why for every grade below 2."""
    rows = offline_eval.load_rows(DATA / "offline_graded_drafts.jsonl")
    assert len(rows) == 30 and len({r["id"] for r in rows}) == 30
    assert all(r["grade"] in (0, 1, 2) and (r["grade"] == 2 or r["why"]) for r in rows)
    assert not any(r["misleading"] for r in rows)
    assert sum(r["grade"] for r in rows) / len(rows) >= 1.6


# ---------------------------------------------------------------- the original demo


@pytest.mark.parametrize(
    ("question", "article"),
    [
        ("What is the return policy?", "faq/return-policy"),
        ("How do I return a product?", "faq/how-to-return"),
        ("How can I cancel an order?", "faq/cancel-order"),
    ],
)
async def test_demo_questions_answered_from_the_kb(
    provider: OfflineProvider, catalog: ToolCatalog, question: str, article: str
) -> None:
    resp = await run(provider, [{"role": "user", "content": question}], catalog)
    assert resp.call is None
    assert resp.hits[0] == article
    assert resp.text.strip()
    assert resp.citations, "the draft cites the article it used"
    assert resp.citations[0]["file_id"].endswith(article.replace("/", "--"))
    body = await index_text(provider, article)
    # grounded: the cited sentence appears (modulo Markdown) in the article
    cited_at = resp.citations[0]["index"]
    sentence = resp.text[:cited_at].split("\n\n")[-1].strip()
    assert sentence and _plain(sentence.split(". ")[-1]) in _plain(body)


async def index_text(provider: OfflineProvider, article_id: str) -> str:
    assert isinstance(provider.index, KnowledgeIndex)
    art = await on_worker(provider.index.get, article_id)
    assert art is not None
    return art.markdown


def _plain(text: str) -> str:
    return " ".join(text.replace("**", "").replace("`", "").lower().split()).rstrip(".")


@pytest.mark.parametrize(
    ("message", "name", "arguments"),
    [
        ("Help me cancel order ORD1001", "get_order", {"order_id": "ORD1001"}),
        ("Help me reset my password", "reset_password", {"user_id": "CUST1001"}),
        ("Give me a list of my past orders", "get_order_history", {"user_id": "CUST1001"}),
    ],
)
async def test_demo_actions_request_the_tools(
    provider: OfflineProvider,
    catalog: ToolCatalog,
    message: str,
    name: str,
    arguments: dict[str, Any],
) -> None:
    resp = await run(provider, [{"role": "user", "content": message}], catalog)
    assert resp.call is not None
    assert resp.call[:2] == (name, arguments)
    catalog.validate_arguments(name, resp.call[1])  # strict schema holds


# ---------------------------------------------------------------- follow-ups


async def test_order_history_follow_up_lists_the_orders(
    provider: OfflineProvider, catalog: ToolCatalog, shop: ShopDatabase
) -> None:
    items: list[dict[str, Any]] = [{"role": "user", "content": "Give me a list of my past orders"}]
    first = await run(provider, items, catalog)
    assert first.call is not None
    name, args, call_id = first.call
    items += await tool_items(shop, name, args, CUSTOMER, call_id)
    second = await run(provider, items, catalog)
    assert second.call is None
    for oid in ("ORD1001", "ORD1002", "ORD1003", "ORD1008"):
        assert oid in second.text
    assert "ORD1009" not in second.text  # another customer's order


async def test_order_status_follow_up_states_the_tracking_number(
    provider: OfflineProvider, catalog: ToolCatalog, shop: ShopDatabase
) -> None:
    items: list[dict[str, Any]] = [{"role": "user", "content": "where is my order ORD1002??"}]
    first = await run(provider, items, catalog)
    assert first.call is not None and first.call[:2] == ("get_order", {"order_id": "ORD1002"})
    items += await tool_items(shop, "get_order", first.call[1], CUSTOMER, first.call[2])
    second = await run(provider, items, catalog)
    assert second.call is None
    assert "shipped" in second.text and "1Z999AA10123456784" in second.text


async def test_cancel_flow_awaiting_then_approved(
    provider: OfflineProvider, catalog: ToolCatalog, shop: ShopDatabase
) -> None:
    """DESIGN §3 steps 3-5 at the engine level, with the real database executing."""
    items: list[Any] = [{"role": "user", "content": "Help me cancel order ORD1001"}]
    lookup = await run(provider, items, catalog)
    assert lookup.call is not None and lookup.call[:2] == ("get_order", {"order_id": "ORD1001"})
    items += await tool_items(shop, "get_order", lookup.call[1], CUSTOMER, lookup.call[2])
    first = await run(provider, items, catalog)
    assert first.call is not None
    name, args, call_id = first.call
    assert (name, args) == ("cancel_order", {"order_id": "ORD1001"})
    items += queued(name, args, call_id)
    second = await run(provider, items, catalog)
    assert second.call is None, "the same action is not requested twice"
    assert "cancel order ORD1001 on to a colleague for confirmation" in second.text
    for claim in ("has been cancelled", "is cancelled", "i've cancelled", "was cancelled"):
        assert claim not in second.text.lower(), "does not claim it is done"
    print("\nDRAFT while awaiting approval:", second.text)
    assert second.citations
    items.append({"role": "assistant", "content": second.text})

    approval = await on_worker(shop.create_approval, "s1", call_id, name, args,
                               customer_id=CUSTOMER)
    record = await on_worker(shop.approve_and_execute, approval.id, "agent-1")
    result = record.model_output()
    assert result["ok"] is True
    items.append(ApprovalOutcome(
        approval_id=approval.id, call_id=call_id, tool="cancel_order", state="executed",
        by="agent-1", arguments=args, proposed_arguments=args, result=record.result))
    third = await run(provider, items, catalog)
    print("DRAFT after approval:", third.text)
    assert third.call is None
    assert "ORD1001" in third.text
    assert "5\u201310 business days" in third.text and "cancelled" in third.text.lower()
    order = await on_worker(shop.order, "ORD1001")
    assert order is not None and order["status"] == "cancelled"


async def test_rejection_draft_explains(provider: OfflineProvider, catalog: ToolCatalog) -> None:
    items = decided(
        "please reset my password",
        "reset_password", {"user_id": CUSTOMER}, "c1",
        ApprovalOutcome(approval_id="APR-1", call_id="c1", tool="reset_password",
                        state="rejected", by="bob", reason="we could not verify your identity",
                        arguments={"user_id": CUSTOMER}),
    )
    resp = await run(provider, items, catalog)
    assert resp.call is None
    assert "could not verify your identity" in resp.text
    assert "password reset link" in resp.text


async def test_failed_action_relays_the_database_error(
    provider: OfflineProvider, catalog: ToolCatalog
) -> None:
    items = decided(
        "cancel ORD1002 please",
        "cancel_order", {"order_id": "ORD1002"}, "c9",
        ApprovalOutcome(approval_id="APR-2", call_id="c9", tool="cancel_order", state="failed",
                        by="bob", arguments={"order_id": "ORD1002"},
                        result={"ok": False, "error": "order ORD1002 has shipped and can no "
                                "longer be cancelled"}),
    )
    resp = await run(provider, items, catalog)
    assert "has shipped and can no longer be cancelled" in resp.text
    assert resp.citations


async def test_expired_approval_is_not_claimed_done(
    provider: OfflineProvider, catalog: ToolCatalog
) -> None:
    items = decided(
        "can I get a $15 voucher? my order was late",
        "issue_voucher", {"user_id": CUSTOMER, "amount": 15, "reason": "late"}, "c3",
        ApprovalOutcome(approval_id="APR-3", call_id="c3", tool="issue_voucher",
                        state="expired", reason="no decision in time",
                        arguments={"user_id": CUSTOMER, "amount": 15, "reason": "late"}),
    )
    resp = await run(provider, items, catalog)
    assert resp.call is None
    assert "$15.00 voucher" in resp.text and "submit it again" in resp.text


async def test_approval_cancelled_by_closing_is_not_called_late(
    provider: OfflineProvider, catalog: ToolCatalog
) -> None:
    """Closing the session cancels a pending action: say so, not 'not processed in time'."""
    items = decided(
        "Help me cancel order ORD1001",
        "cancel_order", {"order_id": "ORD1001"}, "c4",
        ApprovalOutcome(approval_id="APR-4", call_id="c4", tool="cancel_order",
                        state="cancelled", by="Agent", reason="the session was closed by Agent",
                        arguments={"order_id": "ORD1001"}),
    )
    resp = await run(provider, items, catalog)
    assert resp.call is None
    assert "withdrawn when this conversation was closed" in resp.text
    assert "in time" not in resp.text and "is cancelled" not in resp.text


async def test_without_a_customer_no_account_tool_is_called(
    provider: OfflineProvider, catalog: ToolCatalog
) -> None:
    for message in ("Help me reset my password", "Give me a list of my past orders"):
        resp = await run(provider, [{"role": "user", "content": message}], catalog, None)
        assert resp.call is None and resp.text.strip()


async def test_what_the_articles_do_not_answer_is_said_plainly(
    provider: OfflineProvider, catalog: ToolCatalog
) -> None:
    """A clear question outside the knowledge base gets "I don't have information about
    that", not "I'm not sure I understood"; gibberish still gets the latter; a goodbye
    gets a goodbye (held-out dev set, session 8)."""
    from hitl_desktop.assistant.offline import texts

    drafts = {}
    for message in ("do you price match?", "does the orbit speaker work with alexa?",
                    "asdf qwerty", "ok cool, bye"):
        resp = await run(provider, [{"role": "user", "content": message}], catalog)
        assert resp.call is None, message
        drafts[message] = resp.text
    assert drafts["do you price match?"] == texts.NO_ANSWER
    assert drafts["does the orbit speaker work with alexa?"] == texts.NO_ANSWER
    assert drafts["asdf qwerty"] == texts.NOT_UNDERSTOOD
    assert drafts["ok cool, bye"] == texts.GOODBYE


async def test_what_do_i_do_quotes_the_section_that_says_what_to_do(
    provider: OfflineProvider, catalog: ToolCatalog
) -> None:
    """ "what do i do if something arrives broken" quoted the article's intro ("Here is how
    we fix it.") and nothing after it (held-out dev set, session 8)."""
    resp = await run(provider, [{"role": "user", "content": "what do i do if something "
                                 "arrives broken"}], catalog)
    assert resp.call is None and resp.hits[0] == "faq/damaged-products"
    assert "Take a photo of the product" in resp.text
    assert "Here is how we fix it" not in resp.text


async def test_odd_conversation_items_do_not_break_the_engine(
    provider: OfflineProvider, catalog: ToolCatalog
) -> None:
    items: list[Any] = [
        "not an item",
        {"type": "reasoning", "id": "rs_1", "summary": []},
        {"type": "function_call", "call_id": "x", "name": "get_order", "arguments": "{not json"},
        {"type": "function_call_output", "call_id": "x", "output": "plain text, not JSON"},
        {"type": "function_call_output", "call_id": "orphan", "output": None},
        {"role": "user", "content": [{"type": "input_text", "text": "cancel ORD1001 pls"}]},
    ]
    resp = await run(provider, items, catalog)
    assert resp.call is not None and resp.call[:2] == ("get_order", {"order_id": "ORD1001"})


async def test_two_requests_in_one_message_are_both_requested(
    provider: OfflineProvider, catalog: ToolCatalog, shop: ShopDatabase
) -> None:
    items: list[dict[str, Any]] = [
        {"role": "user", "content": "pls cancel ORD1008 and reset my pasword"}
    ]
    lookup = await run(provider, items, catalog)
    assert lookup.call is not None and lookup.call[:2] == ("get_order", {"order_id": "ORD1008"})
    items += await tool_items(shop, "get_order", lookup.call[1], CUSTOMER, lookup.call[2])
    first = await run(provider, items, catalog)
    assert first.call is not None and first.call[:2] == ("cancel_order", {"order_id": "ORD1008"})
    items += queued("cancel_order", first.call[1], first.call[2])
    second = await run(provider, items, catalog)
    assert second.call is not None and second.call[:2] == ("reset_password", {"user_id": CUSTOMER})
    items += queued("reset_password", second.call[1], second.call[2])
    third = await run(provider, items, catalog)
    print("DRAFT after approval:", third.text)
    assert third.call is None
    assert "ORD1008" in third.text and "password" in third.text
    assert "on to a colleague for confirmation" in third.text


async def test_return_needs_the_order_first_then_uses_its_products(
    provider: OfflineProvider, catalog: ToolCatalog, shop: ShopDatabase
) -> None:
    items: list[dict[str, Any]] = [
        {"role": "user", "content": "i want to retrun the socks from ORD1003, too small"}
    ]
    first = await run(provider, items, catalog)
    assert first.call is not None and first.call[:2] == ("get_order", {"order_id": "ORD1003"})
    items += await tool_items(shop, "get_order", first.call[1], CUSTOMER, first.call[2])
    second = await run(provider, items, catalog)
    assert second.call is not None
    assert second.call[:2] == ("create_return", {"order_id": "ORD1003", "product_ids": ["P1004"]})


async def test_no_tools_when_the_tool_limit_is_reached(
    provider: OfflineProvider, catalog: ToolCatalog
) -> None:
    req = TurnRequest(
        instructions="",
        history=[CustomerLine(text="cancel ORD1001")],
        tools=[],
        session_id="s",
        customer_id=CUSTOMER,
    )
    events = [ev async for ev in provider.stream(req)]
    assert not any(
        e.type == "response.output_item.added" and e.item.type == "function_call" for e in events
    )


# ---------------------------------------------------------------- stream shape


async def test_stream_shape_matches_the_real_api(
    provider: OfflineProvider, catalog: ToolCatalog
) -> None:
    resp = await run(provider, [{"role": "user", "content": "What is the return policy?"}], catalog)
    events = resp.events
    assert isinstance(events[0], ResponseCreatedEvent)
    assert isinstance(events[-1], ResponseCompletedEvent)
    assert [e.sequence_number for e in events] == list(range(len(events)))
    types = [e.type for e in events]
    assert types[:2] == ["response.created", "response.in_progress"]
    fs = types.index("response.output_item.added")
    assert types[fs + 1 : fs + 5] == [
        "response.file_search_call.in_progress",
        "response.file_search_call.searching",
        "response.file_search_call.completed",
        "response.output_item.done",
    ]
    assert "response.content_part.added" in types  # the SDK's stream helper needs it
    deltas = "".join(e.delta for e in events if isinstance(e, ResponseTextDeltaEvent))
    done = [e for e in events if isinstance(e, ResponseTextDoneEvent)]
    assert len(done) == 1 and done[0].text == deltas == resp.text
    assert (
        len(resp.text.split()) > 5
        and sum(isinstance(e, ResponseTextDeltaEvent) for e in events) > 5
    )
    for ann in resp.citations:
        assert 0 < ann["index"] <= len(resp.text)
    # every event survives a JSON round trip through the SDK's own parser
    from hitl_desktop.assistant.stream import event_from_dict

    for e in events:
        again = event_from_dict(e.to_dict(mode="json"))
        assert again.type == e.type
    results = next(
        e.item.results
        for e in events
        if isinstance(e, ResponseOutputItemDoneEvent) and e.item.type == "file_search_call"
    )
    assert results
    for r in results:
        assert set(r.attributes or {}) == {"article_id", "kind", "slug", "title", "path"}
        assert 0 < (r.score or 0) < 1 and r.text
    completed = events[-1]
    assert isinstance(completed, ResponseCompletedEvent)
    assert completed.response.status == "completed"
    assert [o.type for o in completed.response.output] == ["file_search_call", "message"]


async def test_translator_reads_the_offline_stream(
    provider: OfflineProvider, catalog: ToolCatalog
) -> None:
    """The host's translator sees articles, a draft with citations, and tool calls."""
    for message, tool in (("How can I cancel an order?", None), ("cancel ORD1001", "get_order")):
        resp = await run(provider, [{"role": "user", "content": message}], catalog)
        tr = StreamTranslator()
        updates = [u for e in resp.events for u in tr.feed(e)] + list(tr.finish())
        search = [u for u in updates if isinstance(u, SearchResults)]
        assert search and search[0].hits[0].article_id == "faq/cancel-order"
        done = [u for u in updates if isinstance(u, Completed)]
        assert len(done) == 1
        if tool:
            assert [c.name for c in done[0].tool_calls] == [tool]
            assert done[0].tool_calls[0].arguments == {"order_id": "ORD1001"}
        else:
            assert done[0].text == resp.text and not done[0].tool_calls


async def test_function_call_arguments_stream_in_pieces(
    provider: OfflineProvider, catalog: ToolCatalog
) -> None:
    resp = await run(
        provider,
        [{"role": "user", "content": "change my address to 5 Elm Street, Springfield, IL 62701"}],
        catalog,
    )
    deltas = [e.delta for e in resp.events if e.type == "response.function_call_arguments.delta"]
    done = [e for e in resp.events if isinstance(e, ResponseFunctionCallArgumentsDoneEvent)]
    assert len(deltas) > 3 and "".join(deltas) == done[0].arguments
    assert json.loads(done[0].arguments) == {
        "user_id": "CUST1001",
        "info": {"field": "address", "value": "5 Elm Street, Springfield, IL 62701"},
    }


async def test_identity_and_pacing(index: KnowledgeIndex) -> None:
    p = OfflineProvider(index, delay_s=0.001)
    assert (p.name, p.model, p.is_ai) == ("offline", None, False)
    req = TurnRequest(
        instructions="", history=[CustomerLine(text="hello")], tools=[], session_id="s"
    )
    events = [e async for e in p.stream(req)]
    assert events[-1].type == "response.completed"
    await p.aclose()


# ---------------------------------------------------------------- DESIGN §3 offline, real sockets


@contextlib.asynccontextmanager
async def offline_desk(tmp_path: Path, title: str) -> AsyncIterator[tuple[Any, Any, Any, str]]:
    """A host with no API key (the offline engine) and one session's customer and agent
    connected over real WebSockets: (host, customer, agent, session id)."""
    from hitl_desktop.app.services import start_host
    from hitl_desktop.config import Settings, resolve_paths
    from hitl_desktop.host.copilot import HostCopilot, build_copilot
    from hitl_desktop.host.tokens import TokenKind
    from tests.support.copilot_desk import Client

    paths = resolve_paths(tmp_path / "data", tmp_path / "config").ensure()
    settings = Settings(provider="auto")  # no key anywhere: the offline engine

    def factory(outbox: Any) -> HostCopilot:
        return build_copilot(paths, settings, outbox)

    host = await start_host(paths, settings, port=0, copilot_factory=factory)
    clients: list[Client] = []
    try:
        created = host.create_session(customer_id="CUST1001", title=title)
        agent_token = host.relay.tokens.issue(
            TokenKind.AGENT_SESSION, session_id=created.session_id, label="Dana")
        clients.append(await Client.connect(host.local_url, created.customer_token))
        clients.append(await Client.connect(host.local_url, agent_token))
        yield host, clients[0], clients[1], created.session_id
    finally:
        for c in clients:
            await c.close()
        await host.stop()


async def test_design_flow_offline_through_real_sockets(tmp_path: Path) -> None:
    """No API key: the host runs the offline engine; customer and agent speak the
    wire protocol over real WebSockets; the shop database executes the approval."""
    from hitl_desktop.core.protocol import ApprovalApprove, ChatSend
    from hitl_desktop.host.copilot import HostCopilot

    async with offline_desk(tmp_path, "offline flow") as (host, customer, agent, sid):
        copilot = host.relay.copilot
        assert isinstance(copilot, HostCopilot)

        async def say(text: str) -> None:
            await customer.send(ChatSend(text=text), sid)

        async def send(draft: dict[str, Any]) -> None:
            await agent.send(ChatSend(text=draft["text"], draft_id=draft["turn_id"]), sid)
            await customer.wait("chat.message", where=lambda f: f["data"]["text"] == draft["text"])

        # 1-2: a policy question: articles, then a cited draft; the agent sends it
        await say("How can I cancel my order?")
        started = await agent.wait("draft.started")
        assert started["data"]["provider"] == "offline"
        articles = await agent.wait("articles")
        assert articles["data"]["articles"][0]["article_id"] == "faq/cancel-order"
        draft1 = (await agent.wait("draft.completed"))["data"]
        assert "pending or processing" in draft1["text"]
        assert [c["article_id"] for c in draft1["citations"]][:1] == ["faq/cancel-order"]
        await send(draft1)

        # 3-4: get_order runs by itself, then the action waits for approval; the draft
        # says it was passed on for confirmation (not that it is done)
        await say("Help me cancel order ORD1001")
        looked = await agent.wait("tool.call", name="get_order")
        assert looked["data"]["mode"] == "auto"
        call = await agent.wait("tool.call", name="cancel_order")
        assert call["data"]["mode"] == "approval"
        assert call["data"]["arguments"] == {"order_id": "ORD1001"}
        approval = (await agent.wait("approval.created"))["data"]
        draft2 = (await agent.wait("draft.completed", count=2))["data"]
        assert "cancel order ORD1001 on to a colleague for confirmation" in draft2["text"]
        order = await on_worker(copilot.store.order, "ORD1001")
        assert order is not None and order["status"] == "pending"
        await send(draft2)

        # 5-6: approved -> executed once -> a confirmation draft
        await agent.send(ApprovalApprove(approval_id=approval["approval_id"]), sid)
        await agent.wait("approval.updated", state="executed")
        draft3 = (await agent.wait("draft.completed", count=3))["data"]
        assert "cancelled" in draft3["text"] and "ORD1001" in draft3["text"]
        order = await on_worker(copilot.store.order, "ORD1001")
        assert order is not None and order["status"] == "cancelled"
        await send(draft3)

        # the other demo actions: a safe look-up runs by itself, a reset waits
        await say("Give me a list of my past orders")
        auto = await agent.wait("tool.call", name="get_order_history")
        assert auto["data"]["mode"] == "auto"
        draft4 = (await agent.wait("draft.completed", count=4))["data"]
        assert "ORD1008" in draft4["text"] and "ORD1002" in draft4["text"]
        await say("Help me reset my password")
        reset = await agent.wait("tool.call", name="reset_password")
        assert reset["data"]["mode"] == "approval"
        assert reset["data"]["arguments"] == {"user_id": "CUST1001"}
        assert not customer.of("draft.delta") and not customer.of("articles")


async def test_yes_accepts_the_offer_the_agent_sent_not_the_draft_s(tmp_path: Path) -> None:
    """D9167 through the real host: the engine's draft offers a replacement or a refund,
    the agent edits it into a refund offer and sends it, the customer says "yes please":
    the approval card proposes the refund that was sent (it proposed a replacement)."""
    from hitl_desktop.core.protocol import ChatSend

    async with offline_desk(tmp_path, "edited offer") as (_host, customer, agent, sid):

        await customer.send(ChatSend(text="the socks from ORD1003 had holes"), sid)
        draft = (await agent.wait("draft.completed"))["data"]
        assert "replacement or a refund?" in draft["text"]  # two options: the engine's draft
        edited = "I'm sorry about that. Would you like a refund of $48.00 for the socks?"
        await agent.send(ChatSend(text=edited, draft_id=draft["turn_id"]), sid)
        await customer.wait("chat.message", where=lambda f: f["data"]["text"] == edited)

        await customer.send(ChatSend(text="yes please"), sid)
        approval = (await agent.wait("approval.created"))["data"]
        assert approval["tool"] == "create_refund"
        assert approval["arguments"]["order_id"] == "ORD1003"
        assert approval["arguments"]["amount"] == 48.0
        await agent.wait("draft.completed", count=2)
        assert not agent.of("tool.call", name="send_replacement")
        assert len(agent.of("approval.created")) == 1
