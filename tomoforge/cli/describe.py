"""``tomoforge protocols NAME`` and ``tomoforge run NAME --help``: a protocol's inputs and parameters,
read from the same JSON schema that validates them (type, default, unit, allowed range, help)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from rich.console import Group
from rich.table import Table
from rich.text import Text

if TYPE_CHECKING:
    from tomoforge.engine.protocol import Protocol


def _type_of(schema: dict[str, Any]) -> str:
    if "enum" in schema:
        return " | ".join(str(v) for v in schema["enum"])
    if "anyOf" in schema:
        kinds = [_type_of(s) for s in schema["anyOf"]]
        optional = "null" in kinds
        kinds = [k for k in kinds if k != "null"]
        return " | ".join(kinds) + (" (or empty)" if optional else "")
    if schema.get("type") == "array":
        return f"list of {_type_of(schema.get('items', {}))}"
    return {"number": "float", "integer": "int", "boolean": "bool", "string": "text"}.get(
        schema.get("type", ""), schema.get("type", "any")
    )


def _bounds(schema: dict[str, Any]) -> dict[str, Any]:
    found: dict[str, Any] = {
        k: schema[k] for k in ("minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum") if k in schema
    }
    for option in schema.get("anyOf", ()):
        found.update(_bounds(option))
    return found


def allowed_range(schema: dict[str, Any]) -> str:
    """``> 0``, ``0 … 1``, ``≥ 64``, ``-90 … 90`` from a field's JSON schema ('' when unbounded)."""
    b = _bounds(schema)
    low = f"> {b['exclusiveMinimum']}" if "exclusiveMinimum" in b else f"≥ {b['minimum']}" if "minimum" in b else ""
    high = f"< {b['exclusiveMaximum']}" if "exclusiveMaximum" in b else f"≤ {b['maximum']}" if "maximum" in b else ""
    if "minimum" in b and "maximum" in b:
        return f"{b['minimum']} … {b['maximum']}"
    return ", ".join(x for x in (low, high) if x)


def parameter_rows(cls: type[Protocol]) -> list[tuple[str, str, str, str, str, str]]:
    """(name, type, default, unit, allowed range, help) for each parameter."""
    schema = cls.Params.model_json_schema()
    required = set(schema.get("required", ()))
    rows = []
    for name, field in schema.get("properties", {}).items():
        field = _resolve(field, schema)
        default = "(required)" if name in required else repr(field.get("default")) if "default" in field else ""
        rows.append(
            (
                name,
                _type_of(field),
                default,
                str(field.get("unit", "")),
                allowed_range(field),
                str(field.get("description", "")),
            )
        )
    return rows


def _resolve(field: dict[str, Any], schema: dict[str, Any]) -> dict[str, Any]:
    """Follow a ``$ref`` to an enum or nested model definition, keeping the field's own keys."""
    ref = field.get("$ref") or next((s.get("$ref") for s in field.get("allOf", ()) if "$ref" in s), None)
    if not ref:
        return field
    target = schema.get("$defs", {}).get(ref.rsplit("/", 1)[-1], {})
    return {**target, **{k: v for k, v in field.items() if k not in ("$ref", "allOf")}}


def protocol_help(cls: type[Protocol]) -> Group:
    """What a newcomer needs to run ``cls``: what it does, its inputs and every parameter."""
    parts: list[Any] = [Text(f"{cls.name}: {(cls.__doc__ or '').strip()}"), Text("")]
    if cls.inputs:
        inputs = Table("input", "needs", "help", title="inputs (--input NAME=RUN.OUTPUT[filter])", title_justify="left")
        for name, spec in cls.inputs.items():
            note = " (optional)" if spec.optional else ""
            note += f" default filter: {spec.default_filter}" if spec.default_filter else ""
            inputs.add_row(name, spec.describe(), spec.help + note)
        parts.append(inputs)
    else:
        parts.append(Text("inputs: none"))
    params = Table(
        "parameter",
        "type",
        "default",
        "unit",
        "allowed",
        "help",
        title="parameters (--set NAME=VALUE)",
        title_justify="left",
    )
    for row in parameter_rows(cls):
        params.add_row(*row)
    parts.append(params)
    outputs = ", ".join(f"{name} ({item.__name__})" for name, item in cls.outputs.items()) or "none"
    parts.append(Text(f"outputs: {outputs}"))
    return Group(*parts)
