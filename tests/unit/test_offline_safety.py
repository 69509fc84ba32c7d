"""Trust: a dangerous product is answered safety-first, and no draft promises a call nobody
will make.

Each message runs through the real offline engine against the real knowledge base and a
real shop database (safe tools run for real, proposals stop the chain), as the bench does.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from hitl_desktop.assistant.offline import OfflineProvider
from hitl_desktop.knowledge.articles import default_knowledge_dir
from hitl_desktop.knowledge.index import KnowledgeIndex
from hitl_desktop.store.catalog_file import default_catalog
from hitl_desktop.store.database import ShopDatabase
from tests.support.offline_eval import Outcome, run_row

STOP = "stop using it"


@pytest.fixture(scope="module")
def drive(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    tmp: Path = tmp_path_factory.mktemp("safety")
    catalog = default_catalog()
    index = KnowledgeIndex.open(default_knowledge_dir(), tmp / "ix.db")
    shop = ShopDatabase.open(tmp / "shop", catalog)
    engine = OfflineProvider(index, catalog=catalog)

    def run(message: str, customer: str = "CUST1001") -> Outcome:
        row = {"id": "T", "customer_id": customer, "history": [], "message": message,
               "tools": []}
        return asyncio.run(run_row(engine, row, shop, catalog))

    yield run
    shop.close()
    index.close()


@pytest.mark.parametrize("message", [
    "my backpack from ORD1003 started smoking when I left it near the heater",
    "the charger I bought sparked and melted a bit, order ORD1003",
    "the battery pack has swollen up and the case is bulging",
    "where is my parcel ORD1003? also the socks you sent caught fire in the dryer",
])
def test_a_dangerous_product_is_answered_with_stop_using_it_first(drive: Any, message: str) -> None:
    out = drive(message)
    first = out.draft.split("\n\n")[0].lower()
    assert STOP in first, out.draft
    assert "flammable" in first


def test_the_other_request_of_a_hazard_message_is_still_answered(drive: Any) -> None:
    out = drive("where is my parcel ORD1003? also the socks you sent caught fire in the dryer")
    assert out.draft.lower().startswith("for your safety"), out.draft
    assert "delivered" in out.draft.lower(), out.draft  # ORD1003's status, after the safety part


def test_a_dangerous_product_is_recorded_as_a_product_quality_complaint(drive: Any) -> None:
    out = drive("the socks from ORD1003 overheated and there was a burning smell")
    proposed = [c for c in out.calls if c["name"] == "create_complaint"]
    assert proposed, out.calls
    assert proposed[0]["arguments"]["type"] == "product_quality"
    assert proposed[0]["arguments"]["order_id"] == "ORD1003"


def test_hot_water_in_a_message_is_not_a_hazard(drive: Any) -> None:
    out = drive("how do I return an item? the kettle is fine, I just poured hot water in it once")
    assert STOP not in out.draft.lower()


@pytest.mark.parametrize("message", [
    "get me a supervisor, I have had enough of this",
    "sort out ORD1003 or I'm calling my attorney",
])
def test_no_callback_is_promised_when_nothing_backs_it(drive: Any, message: str) -> None:
    out = drive(message)
    assert not any(c["name"] in ("create_ticket", "create_complaint") for c in out.calls)
    low = out.draft.lower()
    assert "will contact you" not in low and "business day" not in low, out.draft
    assert "review" in low
