"""The tool catalog: names, model-facing descriptions, JSON schemas, approval policy.

The catalog is data (``hitl_desktop/data/tools.json``, overridable by a
``tools.json`` in the config dir), so a user can edit descriptions, limits and
which tools need a human's approval without touching code. This module only
parses and validates it; reading the file lives in ``store.catalog_file`` so
``core`` stays free of I/O.

Everything the host decides about tools is decided here, from the file and
never from the model or a client: a tool the catalog does not know needs
approval (deny by default), and arguments are validated against the schema
before anything runs, including arguments a representative edited.
"""

from __future__ import annotations

import copy
import json
import math
import re
from collections.abc import Iterator, Mapping
from dataclasses import asdict, dataclass
from typing import Any, Final

import jsonschema
from jsonschema.exceptions import SchemaError, ValidationError

from hitl_desktop.core.ports import OperationError
from hitl_desktop.core.protocol import ErrorCode

TOOL_NAME_RE: Final = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
_VALIDATOR: Final = jsonschema.Draft202012Validator


class CatalogError(ValueError):
    """The catalog file itself is malformed; the message names the offending place."""


class InvalidArguments(OperationError):
    """Tool arguments the catalog refuses (unknown tool, schema violation)."""

    def __init__(self, message: str, *, tool: str | None = None, path: str | None = None) -> None:
        super().__init__(ErrorCode.INVALID_ARGUMENTS, message)
        self.tool = tool
        self.path = path  # dotted field path of the first violation, e.g. "info.field"


@dataclass(frozen=True, slots=True)
class Tool:
    """One function tool as the model sees it, plus whether a human must approve it."""

    name: str
    description: str
    parameters: dict[str, Any]
    needs_approval: bool

    def openai_tool(self) -> dict[str, Any]:
        """The Responses API function tool (strict mode)."""
        return {
            "type": "function",
            "name": self.name,
            "description": self.description,
            "parameters": copy.deepcopy(self.parameters),
            "strict": True,
        }


@dataclass(frozen=True, slots=True)
class Policy:
    """Limits the database enforces; the knowledge base states the same numbers."""

    max_refund: float = 500.0
    max_voucher: float = 50.0
    return_window_days: int = 30
    approval_ttl_hours: float = 24.0
    max_tool_rounds: int = 6

    @property
    def approval_ttl_s(self) -> float:
        return self.approval_ttl_hours * 3600.0

    @classmethod
    def from_dict(cls, raw: Any) -> Policy:
        if raw is None:
            return cls()
        if not isinstance(raw, Mapping):
            raise CatalogError("policy: must be an object")
        known = {
            "max_refund": float,
            "max_voucher": float,
            "return_window_days": int,
            "approval_ttl_hours": float,
            "max_tool_rounds": int,
        }
        unknown = sorted(k for k in set(raw) - set(known) if not _is_comment(k))
        if unknown:
            raise CatalogError(f"policy: unknown key(s) {', '.join(unknown)}")
        values: dict[str, Any] = {}
        for key, kind in known.items():
            if key not in raw:
                continue
            value = raw[key]
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise CatalogError(f"policy.{key}: must be a number, got {value!r}")
            if kind is int and not float(value).is_integer():
                raise CatalogError(f"policy.{key}: must be a whole number, got {value!r}")
            if not math.isfinite(value) or value <= 0:
                raise CatalogError(f"policy.{key}: must be greater than 0, got {value!r}")
            values[key] = kind(value)
        return cls(**values)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)  # field order is the file's key order


def _is_comment(key: Any) -> bool:
    """Keys starting with "_" are notes for humans editing the file (JSON has no comments)."""
    return isinstance(key, str) and key.startswith("_")


def _check_strict(schema: Any, where: str) -> None:
    """OpenAI strict mode: every object closes its properties and requires all of them."""
    if not isinstance(schema, Mapping):
        raise CatalogError(f"{where}: a schema must be an object")
    kind = schema.get("type")
    if kind is None and not any(k in schema for k in ("anyOf", "enum", "const", "$ref")):
        raise CatalogError(f"{where}: needs a 'type'")
    types = kind if isinstance(kind, list) else [kind]
    if "object" in types:
        props = schema.get("properties")
        if not isinstance(props, Mapping):
            raise CatalogError(f"{where}: an object needs 'properties'")
        if schema.get("additionalProperties") is not False:
            raise CatalogError(f"{where}: strict mode needs \"additionalProperties\": false")
        required = schema.get("required")
        if not isinstance(required, list) or set(required) != set(props) or len(required) != len(
            set(required)
        ):
            missing = sorted(set(props) - set(required or []))
            extra = sorted(set(required or []) - set(props))
            detail = (
                f" (not required: {', '.join(missing)})" if missing else
                f" (required but not a property: {', '.join(extra)})" if extra else ""
            )
            raise CatalogError(
                f"{where}: strict mode needs every property in 'required'{detail}"
            )
        for prop, sub in props.items():
            _check_strict(sub, f"{where}.{prop}")
    if "array" in types:
        if "items" not in schema:
            raise CatalogError(f"{where}: an array needs 'items'")
        _check_strict(schema["items"], f"{where}[]")
    for combo in ("anyOf",):
        for i, sub in enumerate(schema.get(combo, [])):
            _check_strict(sub, f"{where}.{combo}[{i}]")


def _field_path(err: ValidationError) -> str:
    parts = [str(p) if not isinstance(p, int) else f"[{p}]" for p in err.absolute_path]
    out = ""
    for p in parts:
        out += p if p.startswith("[") or not out else f".{p}"
    return out


def _describe(err: ValidationError) -> tuple[str, str]:
    """(field path, human message) for one schema violation."""
    path = _field_path(err)
    instance: Any = err.instance
    expected: Any = err.validator_value
    schema: Any = err.schema
    if err.validator == "required":
        missing = [r for r in expected if r not in (instance or {})]
        name = missing[0] if missing else "?"
        full = f"{path}.{name}" if path else name
        return full, f"{full}: is required"
    if err.validator == "additionalProperties":
        known = set(schema.get("properties", {}))
        extra = sorted(k for k in (instance or {}) if k not in known)
        name = extra[0] if extra else "?"
        full = f"{path}.{name}" if path else name
        return full, f"{full}: unexpected field"
    if err.validator == "enum":
        allowed = ", ".join(str(v) for v in expected)
        return path, f"{path}: {instance!r} is not one of: {allowed}"
    if err.validator == "type":
        return path or "arguments", f"{path or 'arguments'}: must be of type {expected}"
    return path or "arguments", f"{path or 'arguments'}: {err.message}"


def _non_finite(value: Any, path: str) -> str | None:
    """Path of the first NaN/Infinity (Python's json accepts them, JSON does not)."""
    if isinstance(value, float) and not math.isfinite(value):
        return path or "arguments"
    if isinstance(value, Mapping):
        for k, v in value.items():
            found = _non_finite(v, f"{path}.{k}" if path else str(k))
            if found is not None:
                return found
    elif isinstance(value, list):
        for i, v in enumerate(value):
            found = _non_finite(v, f"{path}[{i}]")
            if found is not None:
                return found
    return None


class ToolCatalog:
    """The validated catalog; immutable after construction."""

    def __init__(self, tools: list[Tool], policy: Policy, *, source: str = "<memory>") -> None:
        self._tools: dict[str, Tool] = {}
        for tool in tools:
            if tool.name in self._tools:
                raise CatalogError(f"tool {tool.name!r} is defined twice")
            self._tools[tool.name] = tool
        self._validators = {t.name: _VALIDATOR(t.parameters) for t in tools}
        self.policy = policy
        self.source = source

    # ----------------------------------------------------------- construction

    @classmethod
    def from_json(cls, text: str, *, source: str = "<memory>") -> ToolCatalog:
        try:
            raw = json.loads(text)
        except ValueError as exc:
            raise CatalogError(f"{source}: not valid JSON: {exc}") from None
        return cls.from_dict(raw, source=source)

    @classmethod
    def from_dict(cls, raw: Any, *, source: str = "<memory>") -> ToolCatalog:
        try:
            return cls._from_dict(raw, source)
        except CatalogError as exc:
            if str(exc).startswith(source):
                raise
            raise CatalogError(f"{source}: {exc}") from None

    @classmethod
    def _from_dict(cls, raw: Any, source: str) -> ToolCatalog:
        if not isinstance(raw, Mapping):
            raise CatalogError("the catalog must be a JSON object")
        unknown = sorted(k for k in set(raw) - {"version", "policy", "tools"} if not _is_comment(k))
        if unknown:
            raise CatalogError(f"unknown top-level key(s): {', '.join(unknown)}")
        if raw.get("version", 1) != 1:
            raise CatalogError(f"unsupported catalog version {raw.get('version')!r}")
        entries = raw.get("tools")
        if not isinstance(entries, list) or not entries:
            raise CatalogError("'tools' must be a non-empty list")
        tools = [cls._tool(i, entry) for i, entry in enumerate(entries)]
        return cls(tools, Policy.from_dict(raw.get("policy")), source=source)

    @staticmethod
    def _tool(index: int, entry: Any) -> Tool:
        where = f"tools[{index}]"
        if not isinstance(entry, Mapping):
            raise CatalogError(f"{where}: must be an object")
        name = entry.get("name")
        if not isinstance(name, str) or not TOOL_NAME_RE.match(name):
            raise CatalogError(f"{where}.name: must match {TOOL_NAME_RE.pattern}, got {name!r}")
        where = f"tools[{index}] ({name})"
        unknown = sorted(
            k for k in set(entry) - {"name", "description", "parameters", "approval"}
            if not _is_comment(k)
        )
        if unknown:
            raise CatalogError(f"{where}: unknown key(s) {', '.join(unknown)}")
        description = entry.get("description")
        if not isinstance(description, str) or not description.strip():
            raise CatalogError(f"{where}.description: must be a non-empty string")
        approval = entry.get("approval")
        if not isinstance(approval, bool):
            raise CatalogError(f"{where}.approval: must be true or false")
        params = entry.get("parameters")
        if not isinstance(params, Mapping) or params.get("type") != "object":
            raise CatalogError(f"{where}.parameters: must be a schema of type object")
        try:
            _VALIDATOR.check_schema(params)
        except SchemaError as exc:
            raise CatalogError(f"{where}.parameters: invalid JSON schema: {exc.message}") from None
        _check_strict(params, f"{where}.parameters")
        return Tool(name, description.strip(), copy.deepcopy(dict(params)), approval)

    # ---------------------------------------------------------------- queries

    def __contains__(self, name: object) -> bool:
        return name in self._tools

    def __iter__(self) -> Iterator[Tool]:
        return iter(self._tools.values())

    def __len__(self) -> int:
        return len(self._tools)

    @property
    def names(self) -> list[str]:
        return list(self._tools)

    def get(self, name: str) -> Tool | None:
        return self._tools.get(name)

    def tool(self, name: str) -> Tool:
        found = self._tools.get(name)
        if found is None:
            raise InvalidArguments(f"unknown tool {name!r}", tool=name)
        return found

    def needs_approval(self, name: str) -> bool:
        """Unknown tools need approval: nothing runs on the model's say-so alone."""
        tool = self._tools.get(name)
        return True if tool is None else tool.needs_approval

    def openai_tools(self) -> list[dict[str, Any]]:
        return [t.openai_tool() for t in self._tools.values()]

    def validate_arguments(self, name: str, arguments: Mapping[str, Any] | str) -> dict[str, Any]:
        """Return a copy of ``arguments`` if they fit ``name``'s schema; else raise
        :class:`InvalidArguments` naming the first offending field. A JSON string
        (as the model streams it) is parsed first."""
        tool = self.tool(name)
        if isinstance(arguments, str):
            try:
                arguments = json.loads(arguments) if arguments.strip() else {}
            except ValueError as exc:
                raise InvalidArguments(
                    f"{name}: arguments are not valid JSON: {exc}", tool=name
                ) from None
        if not isinstance(arguments, Mapping):
            raise InvalidArguments(f"{name}: arguments must be a JSON object", tool=name)
        args = copy.deepcopy(dict(arguments))
        errors = sorted(
            self._validators[tool.name].iter_errors(args),
            key=lambda e: (len(e.absolute_path), _field_path(e)),
        )
        if errors:
            path, message = _describe(errors[0])
            more = f" (and {len(errors) - 1} more problem(s))" if len(errors) > 1 else ""
            raise InvalidArguments(f"{name}: {message}{more}", tool=name, path=path)
        bad = _non_finite(args, "")
        if bad is not None:
            raise InvalidArguments(f"{name}: {bad}: must be a finite number", tool=name, path=bad)
        return args

    def to_dict(self) -> dict[str, Any]:
        """The catalog as it would be written to tools.json."""
        return {
            "version": 1,
            "policy": self.policy.to_dict(),
            "tools": [
                {
                    "name": t.name,
                    "approval": t.needs_approval,
                    "description": t.description,
                    "parameters": copy.deepcopy(t.parameters),
                }
                for t in self._tools.values()
            ],
        }
