"""SchemaForm: JSON schema -> typed widgets -> value dict, with readable validation."""

from __future__ import annotations

import json
from typing import Any

import pytest
from PySide6.QtCore import Qt
from PySide6.QtTest import QTest
from PySide6.QtWidgets import QCheckBox, QComboBox, QDoubleSpinBox, QLineEdit, QSpinBox
from pytestqt.qtbot import QtBot

from hitl_desktop.ui.agent.schema_form import (
    ArrayEditor,
    EnumEditor,
    NumberEditor,
    ObjectEditor,
    SchemaForm,
    StringEditor,
    validation_messages,
)
from tests.ui.agent_feed import TOOLS, tool_schema

RICH: dict[str, Any] = {
    "type": "object",
    "properties": {
        "name": {"type": "string", "description": "Full name"},
        "count": {"type": "integer", "minimum": 1, "maximum": 10},
        "amount": {"type": "number", "exclusiveMinimum": 0, "maximum": 50},
        "kind": {"type": "string", "enum": ["bug_reported", "damaged_product", "other"]},
        "urgent": {"type": "boolean"},
        "tags": {"type": "array", "items": {"type": "string"}},
        "info": {"type": "object", "properties": {
            "field": {"type": "string", "enum": ["email", "phone", "address", "name"]},
            "value": {"type": "string"}},
            "required": ["field", "value"], "additionalProperties": False},
        "note": {"type": ["string", "null"]},
    },
    "required": ["name", "count", "amount", "kind", "urgent", "tags", "info", "note"],
    "additionalProperties": False,
}

VALUE: dict[str, Any] = {"name": "Alex", "count": 3, "amount": 12.5, "kind": "other",
                         "urgent": True, "tags": ["a", "b"],
                         "info": {"field": "phone", "value": "+1 555"}, "note": "n"}


def test_every_type_gets_the_right_widget(qtbot: QtBot) -> None:
    form = SchemaForm(RICH, VALUE)
    qtbot.addWidget(form)
    assert isinstance(form.field("name"), StringEditor)
    assert form.field("name").findChild(QLineEdit) is not None
    assert isinstance(form.field("count").findChild(QSpinBox), QSpinBox)
    spin = form.field("amount").findChild(QDoubleSpinBox)
    assert isinstance(spin, QDoubleSpinBox) and spin.maximum() == 50
    combo = form.field("kind").findChild(QComboBox)
    assert isinstance(form.field("kind"), EnumEditor) and combo is not None
    assert [combo.itemData(i) for i in range(combo.count())] == [
        "bug_reported", "damaged_product", "other"]
    assert form.field("urgent").findChild(QCheckBox) is not None
    assert isinstance(form.field("tags"), ArrayEditor)
    assert isinstance(form.field("info"), ObjectEditor)
    assert isinstance(form.field("note"), StringEditor)  # nullable string


def test_round_trip_value(qtbot: QtBot) -> None:
    form = SchemaForm(RICH, VALUE)
    qtbot.addWidget(form)
    assert form.value() == VALUE
    assert isinstance(form.value()["count"], int)
    assert isinstance(form.value()["amount"], float)
    assert form.validate() == []


def test_edits_change_the_value(qtbot: QtBot) -> None:
    form = SchemaForm(RICH, VALUE)
    qtbot.addWidget(form)
    with qtbot.waitSignal(form.changed):
        form.field("name").findChild(QLineEdit).setText("Alex Morgan")  # type: ignore[union-attr]
    combo = form.field("kind").findChild(QComboBox)
    assert combo is not None
    combo.setCurrentIndex(combo.findData("damaged_product"))
    amount = form.field("amount")
    assert isinstance(amount, NumberEditor)
    amount.set_value(20.25)
    info = form.field("info")
    assert isinstance(info, ObjectEditor)
    info.fields["field"].set_value("email")
    v = form.value()
    assert v["name"] == "Alex Morgan" and v["kind"] == "damaged_product"
    assert v["amount"] == 20.25 and v["info"]["field"] == "email"


def test_array_add_and_remove_rows(qtbot: QtBot) -> None:
    form = SchemaForm(tool_schema("create_return"), {"order_id": "ORD1003",
                                                      "product_ids": ["P1001"]})
    qtbot.addWidget(form)
    arr = form.field("product_ids")
    assert isinstance(arr, ArrayEditor)
    QTest.mouseClick(arr.add_button, Qt.MouseButton.LeftButton)
    arr.rows[-1][1].set_value("P1002")
    assert form.value()["product_ids"] == ["P1001", "P1002"]
    arr.remove_row(arr.rows[0])
    assert form.value() == {"order_id": "ORD1003", "product_ids": ["P1002"]}


def test_validation_messages_name_the_field(qtbot: QtBot) -> None:
    form = SchemaForm(tool_schema("issue_voucher"), {"user_id": "", "amount": 10, "reason": "x"})
    qtbot.addWidget(form)
    problems = form.validate()
    assert any("User id" in m and "required" in m for m in problems), problems
    assert form.errors.isVisible() or not form.isVisible()
    assert "required" in form.errors.text()
    form.field("user_id").set_value("CUST1001")
    assert form.validate() == []


def test_schema_limits_are_reported() -> None:
    schema = {"type": "object", "properties": {"amount": {"type": "number", "maximum": 50}},
              "required": ["amount"]}
    msgs = validation_messages(schema, {"amount": 80})
    assert len(msgs) == 1 and "Amount" in msgs[0] and "50" in msgs[0]
    assert validation_messages(schema, {}) == ["'amount' is a required property"]


def test_enum_keeps_an_unexpected_value_visible(qtbot: QtBot) -> None:
    form = SchemaForm(RICH, {**VALUE, "kind": "surprise"})
    qtbot.addWidget(form)
    assert form.value()["kind"] == "surprise"
    assert any("surprise" in m for m in form.validate())


@pytest.mark.parametrize("tool", [t["name"] for t in json.loads(
    TOOLS.read_text("utf-8"))["tools"]])
def test_every_catalog_tool_builds_a_form(qtbot: QtBot, tool: str) -> None:
    schema = tool_schema(tool)
    form = SchemaForm(schema)
    qtbot.addWidget(form)
    assert set(form.value()) == set(schema["properties"])
