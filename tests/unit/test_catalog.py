"""The tool catalog: the shipped file matches DESIGN.md §4, and validation is strict."""

from __future__ import annotations

import copy
import json
import re
from pathlib import Path
from typing import Any

import pytest

from hitl_desktop.core.catalog import CatalogError, InvalidArguments, Policy, ToolCatalog
from hitl_desktop.core.protocol import ErrorCode
from hitl_desktop.store.catalog_file import default_catalog, default_catalog_text, load_catalog

DESIGN = Path(__file__).resolve().parents[3] / "shared" / "DESIGN.md"

# DESIGN.md §4, transcribed: name -> (parameters, needs approval)
EXPECTED: dict[str, tuple[list[str], bool]] = {
    "get_order": (["order_id"], False),
    "get_order_history": (["user_id"], False),
    "create_ticket": (["user_id", "type", "details", "order_id"], False),
    "cancel_order": (["order_id"], True),
    "reset_password": (["user_id"], True),
    "send_replacement": (["product_id", "order_id"], True),
    "create_refund": (["order_id", "amount", "reason"], True),
    "issue_voucher": (["user_id", "amount", "reason"], True),
    "create_return": (["order_id", "product_ids"], True),
    "create_complaint": (["user_id", "type", "details", "order_id"], True),
    "update_info": (["user_id", "info"], True),
}


@pytest.fixture(scope="module")
def catalog() -> ToolCatalog:
    return default_catalog()


def raw_catalog() -> dict[str, Any]:
    data: dict[str, Any] = json.loads(default_catalog_text())
    return data


# ------------------------------------------------------------------ the shipped file


def test_shipped_catalog_has_exactly_the_design_tools(catalog: ToolCatalog) -> None:
    assert catalog.names == list(EXPECTED)
    for name, (params, approval) in EXPECTED.items():
        tool = catalog.tool(name)
        assert list(tool.parameters["properties"]) == params, name
        assert tool.parameters["required"] == params, name
        assert tool.parameters["additionalProperties"] is False, name
        assert tool.needs_approval is approval, name
        assert len(tool.description) > 40, name


def test_design_table_agrees_with_the_transcription() -> None:
    """If the spec is at hand, parse its §4 table and compare with EXPECTED."""
    if not DESIGN.is_file():
        pytest.skip("shared/DESIGN.md not beside the repository")
    section = DESIGN.read_text("utf-8").split("## 4.")[1].split("## 5.")[0]
    rows = re.findall(r"^\| (\w+) \| (.+?) \| (by itself|after approval) \|$", section, re.M)
    parsed = {}
    for name, params, runs in rows:
        names = [p.split(" ")[0].split("(")[0].strip(" ,") for p in params.split(", ")]
        names = [n for n in names if re.fullmatch(r"[a-z_]+", n) and n not in {"bug_reported",
                 "damaged_product", "other", "product_quality", "order_delay",
                 "delivery_issues", "email/phone/address/name", "value"}]
        parsed[name] = (names, runs == "after approval")
    assert parsed == EXPECTED


def test_shipped_enums_types_and_nested_schema(catalog: ToolCatalog) -> None:
    def props(name: str) -> dict[str, Any]:
        p: dict[str, Any] = catalog.tool(name).parameters["properties"]
        return p

    assert props("create_ticket")["type"]["enum"] == ["bug_reported", "damaged_product", "other"]
    assert props("create_complaint")["type"]["enum"] == [
        "product_quality", "order_delay", "delivery_issues", "other"]
    assert props("create_refund")["amount"]["type"] == "number"
    assert props("issue_voucher")["amount"]["type"] == "number"
    assert props("create_return")["product_ids"] == {
        "type": "array", "items": props("create_return")["product_ids"]["items"],
        "description": props("create_return")["product_ids"]["description"]}
    assert props("create_return")["product_ids"]["items"]["type"] == "string"
    info = props("update_info")["info"]
    assert info["type"] == "object"
    assert info["additionalProperties"] is False
    assert info["required"] == ["field", "value"]
    assert info["properties"]["field"]["enum"] == ["email", "phone", "address", "name"]
    assert info["properties"]["value"]["type"] == "string"
    for name in EXPECTED:  # every other parameter is a plain string
        for pname, schema in props(name).items():
            if pname not in {"amount", "product_ids", "info"}:
                assert schema["type"] == "string", (name, pname)


def test_shipped_policy(catalog: ToolCatalog) -> None:
    assert catalog.policy == Policy(
        max_refund=500.0, max_voucher=50.0, return_window_days=30, approval_ttl_hours=24,
        max_tool_rounds=6)
    assert catalog.policy.approval_ttl_s == 24 * 3600
    assert raw_catalog()["policy"] == {
        "max_refund": 500.0, "max_voucher": 50.0, "return_window_days": 30,
        "approval_ttl_hours": 24, "max_tool_rounds": 6}


def test_openai_tools_are_strict_function_tools(catalog: ToolCatalog) -> None:
    tools = catalog.openai_tools()
    assert [t["name"] for t in tools] == list(EXPECTED)
    for t in tools:
        assert set(t) == {"type", "name", "description", "parameters", "strict"}
        assert t["type"] == "function"
        assert t["strict"] is True
        assert t["parameters"]["type"] == "object"
    # a copy: callers cannot corrupt the catalog
    tools[0]["parameters"]["properties"].clear()
    assert catalog.tool(tools[0]["name"]).parameters["properties"]


def test_needs_approval_denies_unknown_tools(catalog: ToolCatalog) -> None:
    assert catalog.needs_approval("get_order") is False
    assert catalog.needs_approval("cancel_order") is True
    assert catalog.needs_approval("drop_all_tables") is True
    assert "drop_all_tables" not in catalog
    assert catalog.get("drop_all_tables") is None


def test_round_trip_through_to_dict(catalog: ToolCatalog) -> None:
    again = ToolCatalog.from_dict(catalog.to_dict())
    assert again.openai_tools() == catalog.openai_tools()
    assert again.policy == catalog.policy


# ------------------------------------------------------------------ argument validation


def test_valid_arguments_come_back_as_a_copy(catalog: ToolCatalog) -> None:
    args: dict[str, Any] = {"user_id": "CUST1001", "info": {"field": "email", "value": "a@b.co"}}
    out = catalog.validate_arguments("update_info", args)
    assert out == args
    out["info"]["value"] = "changed"
    assert args["info"]["value"] == "a@b.co"


def test_arguments_as_streamed_json_text(catalog: ToolCatalog) -> None:
    assert catalog.validate_arguments("cancel_order", '{"order_id":"ORD1001"}') == {
        "order_id": "ORD1001"}
    with pytest.raises(InvalidArguments, match="not valid JSON"):
        catalog.validate_arguments("cancel_order", '{"order_id":')
    with pytest.raises(InvalidArguments, match="must be a JSON object"):
        catalog.validate_arguments("cancel_order", "[1, 2]")


@pytest.mark.parametrize(
    ("tool", "args", "path", "fragment"),
    [
        ("cancel_order", {}, "order_id", "is required"),
        ("cancel_order", {"order_id": "ORD1001", "force": True}, "force", "unexpected field"),
        ("cancel_order", {"order_id": 1001}, "order_id", "must be of type string"),
        ("create_refund", {"order_id": "ORD1003", "amount": "20", "reason": "x"}, "amount",
         "must be of type number"),
        ("create_refund", {"order_id": "ORD1003", "amount": True, "reason": "x"}, "amount",
         "must be of type number"),
        ("create_ticket", {"user_id": "CUST1001", "type": "angry", "details": "x",
                           "order_id": "N/A"}, "type", "is not one of"),
        ("create_return", {"order_id": "ORD1003", "product_ids": "P1002"}, "product_ids",
         "must be of type array"),
        ("create_return", {"order_id": "ORD1003", "product_ids": ["P1002", 7]},
         "product_ids[1]", "must be of type string"),
        ("update_info", {"user_id": "CUST1001", "info": {"field": "password", "value": "x"}},
         "info.field", "is not one of"),
        ("update_info", {"user_id": "CUST1001", "info": {"field": "email"}}, "info.value",
         "is required"),
        ("update_info", {"user_id": "CUST1001", "info": {"field": "email", "value": "a@b.co",
                                                         "admin": True}}, "info.admin",
         "unexpected field"),
    ],
)
def test_schema_violations_name_the_field(
    catalog: ToolCatalog, tool: str, args: dict[str, Any], path: str, fragment: str
) -> None:
    with pytest.raises(InvalidArguments) as info:
        catalog.validate_arguments(tool, args)
    err = info.value
    assert err.code is ErrorCode.INVALID_ARGUMENTS
    assert err.path == path
    assert err.tool == tool
    assert err.message.startswith(f"{tool}: {path}: ")
    assert fragment in err.message


def test_unknown_tool_is_invalid(catalog: ToolCatalog) -> None:
    with pytest.raises(InvalidArguments, match="unknown tool 'delete_account'"):
        catalog.validate_arguments("delete_account", {})


def test_several_problems_are_counted(catalog: ToolCatalog) -> None:
    with pytest.raises(InvalidArguments, match=r"and 2 more problem"):
        catalog.validate_arguments("create_refund", {})


# ------------------------------------------------------------------ catalog validation


def _broken(mutate: Any) -> dict[str, Any]:
    data = raw_catalog()
    mutate(data)
    return data


def _tool(data: dict[str, Any], name: str) -> dict[str, Any]:
    found: dict[str, Any] = next(t for t in data["tools"] if t["name"] == name)
    return found


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda d: _tool(d, "cancel_order")["parameters"].pop("additionalProperties"),
         r"cancel_order\)\.parameters: strict mode needs \"additionalProperties\": false"),
        (lambda d: _tool(d, "create_refund")["parameters"]["required"].remove("reason"),
         r"create_refund\)\.parameters: strict mode needs every property in 'required' "
         r"\(not required: reason\)"),
        (lambda d: _tool(d, "update_info")["parameters"]["properties"]["info"].pop(
            "additionalProperties"), r"update_info\)\.parameters\.info: strict mode"),
        (lambda d: _tool(d, "create_return")["parameters"]["properties"]["product_ids"].pop(
            "items"), r"product_ids: an array needs 'items'"),
        (lambda d: d["tools"].append(copy.deepcopy(d["tools"][0])),
         "tool 'get_order' is defined twice"),
        (lambda d: _tool(d, "get_order").update(name="get order"), r"name: must match"),
        (lambda d: _tool(d, "get_order").update(approval="no"), "approval: must be true or false"),
        (lambda d: _tool(d, "get_order").update(description=" "), "description: must be a non"),
        (lambda d: _tool(d, "get_order").update(runs="auto"), r"unknown key\(s\) runs"),
        (lambda d: _tool(d, "get_order")["parameters"]["properties"]["order_id"].update(
            type="strnig"), "invalid JSON schema"),
        (lambda d: _tool(d, "get_order").update(parameters={"type": "string"}),
         "must be a schema of type object"),
        (lambda d: d["policy"].update(max_refund=-1), r"policy\.max_refund: must be greater"),
        (lambda d: d["policy"].update(max_tool_rounds=2.5), "must be a whole number"),
        (lambda d: d["policy"].update(max_voucher="50"), "must be a number"),
        (lambda d: d["policy"].update(refund_everything=True), "unknown key"),
        (lambda d: d.update(tools=[]), "'tools' must be a non-empty list"),
        (lambda d: d.update(version=2), "unsupported catalog version"),
        (lambda d: d.update(extra=1), "unknown top-level key"),
    ],
)
def test_malformed_catalogs_are_refused_clearly(mutate: Any, message: str) -> None:
    with pytest.raises(CatalogError, match=message):
        ToolCatalog.from_dict(_broken(mutate), source="tools.json")


def test_error_names_the_source() -> None:
    with pytest.raises(CatalogError, match=r"^my/tools\.json: not valid JSON"):
        ToolCatalog.from_json("{", source="my/tools.json")
    with pytest.raises(CatalogError, match=r"^my/tools\.json: the catalog must be"):
        ToolCatalog.from_json("[]", source="my/tools.json")


def test_policy_defaults_when_absent() -> None:
    data = raw_catalog()
    del data["policy"]
    assert ToolCatalog.from_dict(data).policy == Policy()


# ------------------------------------------------------------------ loading files


def test_user_override_in_config_dir(tmp_path: Path) -> None:
    data = raw_catalog()
    _tool(data, "get_order")["approval"] = True  # a cautious shop
    data["policy"]["max_refund"] = 100.0
    (tmp_path / "tools.json").write_text(json.dumps(data), "utf-8")
    loaded = load_catalog(tmp_path)
    assert loaded.needs_approval("get_order") is True
    assert loaded.policy.max_refund == 100.0
    assert loaded.source == str(tmp_path / "tools.json")
    assert load_catalog(tmp_path / "tools.json").policy.max_refund == 100.0


def test_no_override_means_the_shipped_catalog(tmp_path: Path) -> None:
    assert load_catalog(tmp_path).names == list(EXPECTED)
    assert load_catalog(None).names == list(EXPECTED)


def test_broken_override_is_an_error_not_a_silent_fallback(tmp_path: Path) -> None:
    (tmp_path / "tools.json").write_text('{"tools": [', "utf-8")
    with pytest.raises(CatalogError, match="not valid JSON"):
        load_catalog(tmp_path)


def test_underscore_keys_are_notes_for_humans() -> None:
    data = raw_catalog()
    assert "_about" in data  # the shipped file explains itself
    data["_changed_by"] = "ops"
    data["policy"]["_why"] = "finance asked"
    _tool(data, "get_order")["_note"] = "safe"
    catalog = ToolCatalog.from_dict(data)
    assert catalog.names == list(EXPECTED)
    assert "_note" not in catalog.openai_tools()[0]


def test_non_finite_numbers_are_refused(catalog: ToolCatalog) -> None:
    for text in ('{"order_id": "ORD1003", "amount": NaN, "reason": "x"}',
                 '{"order_id": "ORD1003", "amount": Infinity, "reason": "x"}'):
        with pytest.raises(InvalidArguments, match="amount: must be a finite number") as info:
            catalog.validate_arguments("create_refund", text)
        assert info.value.path == "amount"
