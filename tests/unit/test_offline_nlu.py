"""Rules of the offline engine's message understanding (pure functions)."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from hitl_desktop.assistant import offline_nlu as nlu
from hitl_desktop.assistant.offline_provider import markdown_sentences, outcome_of
from hitl_desktop.core.turns import ApprovalOutcome


@pytest.mark.parametrize(
    ("text", "ids"),
    [
        ("cancel ORD1001 please", ["ORD1001"]),
        ("can u cancle ord1001", ["ORD1001"]),
        ("order #1008 and ORD-1002", ["ORD1008", "ORD1002"]),
        ("my order number 1003 is late", ["ORD1003"]),
        ("call me on 555 1234", []),
        ("I paid $1001 for it", []),
    ],
)
def test_order_ids(text: str, ids: list[str]) -> None:
    assert nlu.order_ids_in(text) == ids


@pytest.mark.parametrize(
    ("text", "amounts"),
    [
        ("refund $20 please", [20.0]),
        ("a 15 dollar voucher", [15.0]),
        ("USD 12.50 back", [12.5]),
        ("20,50$ was charged", [20.5]),
        ("order ORD1003 has 2 items", []),
    ],
)
def test_amounts(text: str, amounts: list[float]) -> None:
    assert nlu.amounts_in(text) == amounts


@pytest.mark.parametrize(
    ("text", "field", "value"),
    [
        ("change my phone number to +1 555 0199 321", "phone", "+1 555 0199 321"),
        ("please update my email to a.b@example.org thanks", "email", "a.b@example.org"),
        ("my new address is 5 Elm St, Springfield. thanks!", "address", "5 Elm St, Springfield"),
        ("my name is misspelled, it should be Alexander Morgan", "name", "Alexander Morgan"),
        ("I need to update my address", "address", None),
    ],
)
def test_profile_changes(text: str, field: str, value: str | None) -> None:
    change = nlu.profile_change(text)
    assert change is not None
    assert (change.field, change.value) == (field, value)


def test_typos_are_fixed_but_real_words_are_kept() -> None:
    assert nlu.normalize("cancle my oder pls").startswith("cancel my")
    assert "password" in nlu.normalize("I forgot my pasword")
    nlu.learn_vocabulary(["customer", "personal", "stopped"])
    norm = nlu.normalize("customer service, personal data, it stopped working")
    assert "customer" in norm and "personal" in norm and "stopped" in norm


@pytest.mark.parametrize(
    ("text", "intents", "question"),
    [
        ("How can I cancel an order?", ["cancel"], True),
        ("Help me cancel order ORD1001", ["cancel"], False),
        ("What is the return policy?", ["return"], True),
        ("hey can u cancel ORD1008 and also reset my password pls", ["cancel", "password"], False),
        ("Give me a list of my past orders", ["order_history"], False),
        ("I returned the speaker weeks ago, where is my refund?", ["refund"], False),
        ("i want to return the socks and get my money back", ["return"], False),
        ("my voucher code is not working", ["voucher"], False),
        ("my fitness tracker stopped working, is that covered?", ["warranty"], False),
        ("do you ship to germany?", ["international"], True),
        ("I want to speak to a manager", ["human"], False),
    ],
)
def test_intents(text: str, intents: list[str], question: bool) -> None:
    und = nlu.understand(text)
    assert und.intents == intents
    if question:
        assert und.question


def test_two_requests_get_their_own_clauses() -> None:
    und = nlu.understand(
        "Cancel ORD1001 please. And can you tell me the tracking number for ORD1002?"
    )
    assert und.intents == ["cancel", "tracking"]
    assert "ORD1001" in und.segments["cancel"] and "ORD1002" in und.segments["tracking"]


def test_earlier_order_id_is_used_when_the_message_names_none() -> None:
    und = nlu.understand("can you cancel it", earlier_order_ids=["ORD1003", "ORD1008"])
    assert und.order_ids == ["ORD1008"]


@pytest.mark.parametrize(
    ("text", "kind"),
    [
        ("my order took forever, I want to complain", "order_delay"),
        ("the driver threw my parcel over the fence", "delivery_issues"),
        ("terrible quality, it fell apart", "product_quality"),
        ("your staff was rude", "other"),
    ],
)
def test_complaint_types(text: str, kind: str) -> None:
    assert nlu.complaint_type(nlu.normalize(text)) == kind


def test_products_by_name() -> None:
    names = {"P1002": "Trailblazer Backpack 30L", "P1004": "Merino Wool Crew Socks (3-pack)"}
    assert nlu.match_products("the socks are too small", names) == ["P1004"]
    assert nlu.match_products("the bakpack strap ripped", names) == ["P1002"]
    assert nlu.match_products("it is broken", names) == []


def test_known_products_from_get_order_outputs() -> None:
    output = {
        "ok": True,
        "order": {
            "order_id": "ORD1003",
            "items": [{"product_id": "P1002", "name": "Trailblazer Backpack 30L"}],
        },
    }
    items = [{"type": "function_call_output", "call_id": "c", "output": json.dumps(output)}]
    assert nlu.known_products(items) == {"ORD1003": {"P1002": "Trailblazer Backpack 30L"}}


def test_message_text_of_content_parts() -> None:
    item = {"role": "user", "content": [{"type": "input_text", "text": "hi"}, {"text": "there"}]}
    assert nlu.message_text(item) == "hi\nthere"


def test_typed_outcomes_become_engine_outcomes() -> None:
    ok = outcome_of(ApprovalOutcome(
        approval_id="A1", call_id="c1", tool="create_refund", state="executed", by="ann",
        arguments={"order_id": "ORD1003", "amount": 20},
        result={"ok": True, "message": "Refund R1 issued."}))
    assert (ok.tool, ok.decision) == ("create_refund", "approved")
    assert ok.arguments == {"order_id": "ORD1003", "amount": 20}
    assert ok.result == {"ok": True, "message": "Refund R1 issued."}
    no = outcome_of(ApprovalOutcome(approval_id="A2", call_id="c2", tool="cancel_order",
                                    state="rejected", by="bob", reason="it already shipped"))
    assert (no.decision, no.reason) == ("rejected", "it already shipped")
    failed = outcome_of(ApprovalOutcome(approval_id="A4", call_id="c4", tool="cancel_order",
                                        state="failed", by="bob", error="it shipped"))
    assert failed.decision == "failed" and failed.result == {"ok": False, "error": "it shipped"}
    for state in ("expired", "cancelled"):
        gone = outcome_of(ApprovalOutcome(approval_id="A3", call_id="c3", tool="issue_voucher",
                                          state=state))  # type: ignore[arg-type]
        assert gone.decision == "expired"


def test_markdown_sentences_flatten_lists_and_tables() -> None:
    md = "| option | time |\n| --- | --- |\n| Express | 1-2 days |\n\n- **Bold** item\n1. Step one"
    assert markdown_sentences(md) == ["Express: time 1-2 days.", "Bold item.", "Step one."]


@given(st.text(max_size=200))
def test_understand_never_raises(text: str) -> None:
    und = nlu.understand(text)
    assert isinstance(und.intents, list)
