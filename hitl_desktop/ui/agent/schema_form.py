"""A form generated from a JSON schema: how a representative edits a tool call's arguments.

Typed widgets per schema type (enums as combo boxes, numbers as spin boxes,
booleans as check boxes, arrays with add/remove rows, nested objects as groups)
so an edited call is well-typed before it ever reaches the host. The host
validates again; this form only gives early, readable messages.
"""

from __future__ import annotations

import json
import logging
from typing import Any

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDoubleSpinBox,
    QFormLayout,
    QFrame,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPlainTextEdit,
    QSpinBox,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

log = logging.getLogger(__name__)

_BIG = 1e12


def _schema_type(schema: dict[str, Any]) -> tuple[str, bool]:
    """(main type, nullable) of a schema, looking through type lists and anyOf/oneOf."""
    t = schema.get("type")
    nullable = False
    if isinstance(t, list):
        nullable = "null" in t
        rest = [x for x in t if x != "null"]
        t = rest[0] if rest else "null"
    if t is None:
        for key in ("anyOf", "oneOf"):
            options = schema.get(key)
            if isinstance(options, list):
                real = [o for o in options if isinstance(o, dict) and o.get("type") != "null"]
                nullable = len(real) < len(options)
                if real:
                    return _schema_type(real[0])[0], nullable
        if "enum" in schema:
            return "string", nullable
        if "properties" in schema:
            return "object", nullable
        return "any", nullable
    return str(t), nullable


def _effective(schema: dict[str, Any]) -> dict[str, Any]:
    for key in ("anyOf", "oneOf"):
        options = schema.get(key)
        if isinstance(options, list) and "type" not in schema:
            real = [o for o in options if isinstance(o, dict) and o.get("type") != "null"]
            if real:
                merged = dict(real[0])
                for k in ("title", "description"):
                    if k in schema:
                        merged.setdefault(k, schema[k])
                return merged
    return schema


def humanize(name: str) -> str:
    return name.replace("_", " ").strip().capitalize() or name


class FieldEditor(QWidget):
    """One editor for one schema node; subclasses know one type each."""

    changed = Signal()

    def __init__(self, schema: dict[str, Any], parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.schema = schema

    def value(self) -> Any:
        raise NotImplementedError

    def set_value(self, value: Any) -> None:
        raise NotImplementedError


class StringEditor(FieldEditor):
    def __init__(self, schema: dict[str, Any], parent: QWidget | None = None) -> None:
        super().__init__(schema, parent)
        lay = QHBoxLayout(self)
        lay.setContentsMargins(0, 0, 0, 0)
        long_text = schema.get("maxLength", 0) > 200 or schema.get("format") == "textarea"
        self._multi = long_text
        if long_text:
            self.edit: QLineEdit | QPlainTextEdit = QPlainTextEdit(self)
            self.edit.setFixedHeight(64)
            self.edit.textChanged.connect(self.changed)
        else:
            self.edit = QLineEdit(self)
            if isinstance(schema.get("maxLength"), int):
                self.edit.setMaxLength(schema["maxLength"])
            self.edit.textChanged.connect(self.changed)
        if schema.get("description"):
            self.edit.setPlaceholderText(str(schema["description"]))
        lay.addWidget(self.edit)

    def value(self) -> str:
        if isinstance(self.edit, QPlainTextEdit):
            return self.edit.toPlainText()
        return self.edit.text()

    def set_value(self, value: Any) -> None:
        text = "" if value is None else str(value)
        if isinstance(self.edit, QPlainTextEdit):
            self.edit.setPlainText(text)
        else:
            self.edit.setText(text)


class EnumEditor(FieldEditor):
    def __init__(self, schema: dict[str, Any], parent: QWidget | None = None) -> None:
        super().__init__(schema, parent)
        lay = QHBoxLayout(self)
        lay.setContentsMargins(0, 0, 0, 0)
        self.combo = QComboBox(self)
        for option in schema.get("enum", []):
            self.combo.addItem(humanize(str(option)), option)
        self.combo.currentIndexChanged.connect(self.changed)
        lay.addWidget(self.combo)

    def value(self) -> Any:
        return self.combo.currentData()

    def set_value(self, value: Any) -> None:
        idx = self.combo.findData(value)
        if idx < 0 and value is not None:
            self.combo.addItem(f"{value} (not allowed)", value)
            idx = self.combo.count() - 1
        self.combo.setCurrentIndex(max(idx, 0))


class NumberEditor(FieldEditor):
    def __init__(self, schema: dict[str, Any], parent: QWidget | None = None,
                 *, integer: bool = False) -> None:
        super().__init__(schema, parent)
        lay = QHBoxLayout(self)
        lay.setContentsMargins(0, 0, 0, 0)
        self.integer = integer
        low = schema.get("minimum", schema.get("exclusiveMinimum", -_BIG))
        high = schema.get("maximum", schema.get("exclusiveMaximum", _BIG))
        if integer:
            self.spin: QSpinBox | QDoubleSpinBox = QSpinBox(self)
            self.spin.setRange(int(max(low, -2**31 + 1)), int(min(high, 2**31 - 1)))
        else:
            dspin = QDoubleSpinBox(self)
            dspin.setDecimals(2)
            dspin.setRange(float(low), float(high))
            self.spin = dspin
        self.spin.setAlignment(Qt.AlignmentFlag.AlignRight)
        self.spin.setButtonSymbols(QSpinBox.ButtonSymbols.NoButtons)
        self.spin.setMinimumWidth(120)
        self.spin.valueChanged.connect(self.changed)
        lay.addWidget(self.spin)
        lay.addStretch(1)

    def value(self) -> int | float:
        v = self.spin.value()
        return int(v) if self.integer else round(float(v), 2)

    def set_value(self, value: Any) -> None:
        try:
            number = float(value)
        except (TypeError, ValueError):
            number = 0.0
        if isinstance(self.spin, QSpinBox):
            self.spin.setValue(int(number))
        else:
            self.spin.setValue(number)


class BoolEditor(FieldEditor):
    def __init__(self, schema: dict[str, Any], parent: QWidget | None = None) -> None:
        super().__init__(schema, parent)
        lay = QHBoxLayout(self)
        lay.setContentsMargins(0, 0, 0, 0)
        self.check = QCheckBox(self)
        self.check.toggled.connect(self.changed)
        lay.addWidget(self.check)

    def value(self) -> bool:
        return self.check.isChecked()

    def set_value(self, value: Any) -> None:
        self.check.setChecked(bool(value))


class JsonEditor(FieldEditor):
    """Fallback for schema nodes we cannot type: raw JSON."""

    def __init__(self, schema: dict[str, Any], parent: QWidget | None = None) -> None:
        super().__init__(schema, parent)
        lay = QHBoxLayout(self)
        lay.setContentsMargins(0, 0, 0, 0)
        self.edit = QLineEdit(self)
        self.edit.setPlaceholderText("JSON value")
        self.edit.textChanged.connect(self.changed)
        lay.addWidget(self.edit)

    def value(self) -> Any:
        text = self.edit.text().strip()
        if not text:
            return None
        try:
            return json.loads(text)
        except ValueError:
            return text

    def set_value(self, value: Any) -> None:
        self.edit.setText("" if value is None else json.dumps(value))


class ArrayEditor(FieldEditor):
    """A list of item editors with add and remove buttons."""

    def __init__(self, schema: dict[str, Any], parent: QWidget | None = None) -> None:
        super().__init__(schema, parent)
        items = schema.get("items")
        self.item_schema: dict[str, Any] = items if isinstance(items, dict) else {}
        outer = QVBoxLayout(self)
        outer.setContentsMargins(0, 0, 0, 0)
        outer.setSpacing(4)
        self._rows_box = QVBoxLayout()
        self._rows_box.setSpacing(4)
        outer.addLayout(self._rows_box)
        self.rows: list[tuple[QWidget, FieldEditor]] = []
        self.add_button = QToolButton(self)
        self.add_button.setText("+ Add")
        self.add_button.setObjectName("arrayAdd")
        self.add_button.clicked.connect(self._add_empty)
        outer.addWidget(self.add_button, 0, Qt.AlignmentFlag.AlignLeft)

    def _add_empty(self) -> None:
        self.add_row().setFocus()

    def add_row(self, value: Any = None) -> FieldEditor:
        row = QWidget(self)
        lay = QHBoxLayout(row)
        lay.setContentsMargins(0, 0, 0, 0)
        editor = build_editor(self.item_schema, row)
        if value is not None:
            editor.set_value(value)
        editor.changed.connect(self.changed)
        remove = QToolButton(row)
        remove.setText("✕")
        remove.setToolTip("Remove this item")
        remove.setObjectName("arrayRemove")
        lay.addWidget(editor, 1)
        lay.addWidget(remove)
        pair = (row, editor)
        self.rows.append(pair)
        remove.clicked.connect(lambda: self.remove_row(pair))
        self._rows_box.addWidget(row)
        self.changed.emit()
        return editor

    def remove_row(self, pair: tuple[QWidget, FieldEditor]) -> None:
        if pair in self.rows:
            self.rows.remove(pair)
            pair[0].setParent(None)
            pair[0].deleteLater()
            self.changed.emit()

    def value(self) -> list[Any]:
        return [editor.value() for _, editor in self.rows]

    def set_value(self, value: Any) -> None:
        for pair in list(self.rows):
            self.remove_row(pair)
        for item in value if isinstance(value, list) else []:
            self.add_row(item)


class ObjectEditor(FieldEditor):
    """A group of labelled property editors (the top level of every tool call)."""

    def __init__(self, schema: dict[str, Any], parent: QWidget | None = None,
                 *, framed: bool = True) -> None:
        super().__init__(schema, parent)
        outer = QVBoxLayout(self)
        outer.setContentsMargins(0, 0, 0, 0)
        box: QWidget = self
        if framed:
            frame = QFrame(self)
            frame.setObjectName("schemaGroup")
            frame.setFrameShape(QFrame.Shape.StyledPanel)
            outer.addWidget(frame)
            box = frame
        self.form = QFormLayout(box) if framed else QFormLayout()
        if not framed:
            outer.addLayout(self.form)
        self.form.setFieldGrowthPolicy(QFormLayout.FieldGrowthPolicy.AllNonFixedFieldsGrow)
        self.form.setLabelAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
        self.required: set[str] = set(schema.get("required", []))
        self.fields: dict[str, FieldEditor] = {}
        props = schema.get("properties", {})
        for name, raw in props.items() if isinstance(props, dict) else []:
            sub: dict[str, Any] = raw if isinstance(raw, dict) else {}
            editor = build_editor(sub, box)
            editor.setObjectName(f"field_{name}")
            editor.changed.connect(self.changed)
            label = QLabel(sub.get("title") or humanize(name), box)
            if name in self.required:
                label.setText(label.text() + " *")
            if sub.get("description"):
                label.setToolTip(str(sub["description"]))
                editor.setToolTip(str(sub["description"]))
            self.form.addRow(label, editor)
            self.fields[name] = editor

    def value(self) -> dict[str, Any]:
        return {name: editor.value() for name, editor in self.fields.items()}

    def set_value(self, value: Any) -> None:
        data = value if isinstance(value, dict) else {}
        for name, editor in self.fields.items():
            if name in data:
                editor.set_value(data[name])


def build_editor(schema: dict[str, Any], parent: QWidget | None = None) -> FieldEditor:
    """The right editor for one schema node."""
    schema = _effective(schema)
    kind, _nullable = _schema_type(schema)
    if "enum" in schema:
        return EnumEditor(schema, parent)
    if kind == "string":
        return StringEditor(schema, parent)
    if kind == "number":
        return NumberEditor(schema, parent)
    if kind == "integer":
        return NumberEditor(schema, parent, integer=True)
    if kind == "boolean":
        return BoolEditor(schema, parent)
    if kind == "array":
        return ArrayEditor(schema, parent)
    if kind == "object":
        return ObjectEditor(schema, parent)
    return JsonEditor(schema, parent)


def _path_name(path: list[str | int]) -> str:
    out = ""
    for part in path:
        out += f"[{part + 1}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return humanize(out) if out and "." not in out and "[" not in out else out


def validation_messages(schema: dict[str, Any], value: Any) -> list[str]:
    """Readable problems with ``value`` against ``schema`` (empty list = valid)."""
    import jsonschema  # imported on first validation: it costs ~60 ms at start-up

    problems: list[str] = []
    _empty_required(schema, value, [], problems)
    try:
        validator_cls = jsonschema.validators.validator_for(schema)
        validator = validator_cls(schema)
        errors = sorted(validator.iter_errors(value), key=lambda e: list(e.absolute_path))
    except jsonschema.SchemaError as exc:
        log.warning("tool schema is not valid: %s", exc.message)
        return problems
    for err in errors:
        where = _path_name(list(err.absolute_path))
        text = f"{where}: {err.message}" if where else err.message
        if text not in problems:
            problems.append(text)
    return problems


def _empty_required(schema: dict[str, Any], value: Any, path: list[str | int],
                    out: list[str]) -> None:
    schema = _effective(schema)
    if isinstance(value, dict):
        props = schema.get("properties", {})
        for name in schema.get("required", []):
            v = value.get(name)
            if isinstance(v, str) and not v.strip():
                out.append(f"{_path_name([*path, name])}: is required")
        for name, v in value.items():
            sub = props.get(name) if isinstance(props, dict) else None
            if isinstance(sub, dict):
                _empty_required(sub, v, [*path, name], out)
    elif isinstance(value, list) and isinstance(schema.get("items"), dict):
        for i, v in enumerate(value):
            if isinstance(v, str) and not v.strip():
                out.append(f"{_path_name([*path, i])}: must not be empty")
            _empty_required(schema["items"], v, [*path, i], out)


class SchemaForm(QWidget):
    """Edit a JSON object described by a JSON schema; ``value()`` returns the typed dict."""

    changed = Signal()

    def __init__(self, schema: dict[str, Any], value: dict[str, Any] | None = None,
                 parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.schema = schema
        lay = QVBoxLayout(self)
        lay.setContentsMargins(0, 0, 0, 0)
        lay.setSpacing(6)
        self.root = ObjectEditor(schema, self, framed=False)
        lay.addWidget(self.root)
        self.errors = QLabel(self)
        self.errors.setObjectName("formErrors")
        self.errors.setWordWrap(True)
        self.errors.setVisible(False)
        lay.addWidget(self.errors)
        if value:
            self.root.set_value(value)
        self.root.changed.connect(self.changed)
        self.root.changed.connect(self._revalidate_if_shown)

    def field(self, name: str) -> FieldEditor:
        return self.root.fields[name]

    def value(self) -> dict[str, Any]:
        return self.root.value()

    def set_value(self, value: dict[str, Any]) -> None:
        self.root.set_value(value)

    def validate(self) -> list[str]:
        """Check the value against the schema and show the messages under the form."""
        problems = validation_messages(self.schema, self.value())
        self.errors.setText("\n".join(f"• {m}" for m in problems))
        self.errors.setVisible(bool(problems))
        return problems

    def _revalidate_if_shown(self) -> None:
        if self.errors.isVisible():
            self.validate()
