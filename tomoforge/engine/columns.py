"""Items as columns: how an item's fields are laid out in its table row, and the bulk paths of a set.

A row holds each queried field (``__columns__``) in a typed SQL column, each packed field
(``__packed__``, e.g. a rotation matrix stored as a unit quaternion, 32 bytes) in a BLOB column, and
only the remaining fields in the row's JSON ``data`` (``''`` when none). Rows written before this
layout hold every field in ``data``; reading merges the columns over it, so both read the same.

The bulk paths never build one pydantic object per item: ``column_rows`` checks whole arrays against
the fields' declared rules (type, bounds, finiteness, required) and yields the SQL rows for
``executemany``; ``decode_column`` turns a fetched column straight into a numpy array.
"""

from __future__ import annotations

import itertools
import json
import math
import types
import typing
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Any

import annotated_types
import numpy as np
from pydantic import BaseModel
from pydantic_core import PydanticUndefined

from tomoforge.errors import UserError
from tomoforge.methods.rotations import matrices_to_quaternions, quaternions_to_matrices


class ColumnsError(UserError, ValueError):
    """Arrays given for a set that break its item class's rules (the message names the field and row)."""


# --- packed fields ------------------------------------------------------------------------------
def check_rotations(matrices: np.ndarray, field: str) -> None:
    """Refuse anything but proper rotations (R Rᵀ = I within 1e-4, det R = +1), naming the first bad row."""
    if matrices.ndim != 3 or matrices.shape[1:] != (3, 3):
        raise ColumnsError(f"{field}: expected an (N, 3, 3) array of rotation matrices, got shape {matrices.shape}")
    error = np.abs(matrices @ np.swapaxes(matrices, 1, 2) - np.eye(3)).max(axis=(1, 2), initial=0.0)
    bad = ~(error <= 1e-4) | ~(np.linalg.det(matrices) > 0)
    if bad.any():
        row = int(np.argmax(bad))
        raise ColumnsError(f"{field}: row {row} is not a proper rotation matrix (R Rᵀ = I, det R = +1)")


PACKERS = {"rotation": 32}  # codec -> bytes per value


def pack(codec: str, value: Any) -> bytes:
    """One field value as its BLOB."""
    if codec == "rotation":
        return matrices_to_quaternions(np.asarray(value, dtype=np.float64)).tobytes()
    raise TypeError(f"unknown packing {codec!r}")


def unpack(codec: str, blob: bytes) -> Any:
    if codec == "rotation":
        matrix = quaternions_to_matrices(np.frombuffer(blob, dtype=np.float64))
        return tuple(tuple(float(v) for v in row) for row in matrix)
    raise TypeError(f"unknown packing {codec!r}")


# --- the rules of a field, checked on whole arrays ---------------------------------------------
def _base_type(annotation: Any) -> tuple[Any, bool]:
    """(type without None, whether None is allowed)."""
    if isinstance(annotation, types.UnionType) or typing.get_origin(annotation) is typing.Union:
        args = [a for a in typing.get_args(annotation) if a is not type(None)]
        return (args[0] if len(args) == 1 else annotation), len(args) < len(typing.get_args(annotation))
    return annotation, False


def _bounds(field: Any) -> list[tuple[str, float]]:
    out = []
    for meta in field.metadata:
        for name, op in (("gt", ">"), ("ge", "≥"), ("lt", "<"), ("le", "≤")):
            if isinstance(meta, getattr(annotated_types, name.capitalize())):
                out.append((op, float(getattr(meta, name))))
    return out


_OPS = {">": np.greater, "≥": np.greater_equal, "<": np.less, "≤": np.less_equal}


def check_column(cls: type[BaseModel], name: str, values: np.ndarray) -> np.ndarray:
    """``values`` as the array that ``cls.name`` may hold (ColumnsError naming the first bad row)."""
    field = cls.model_fields[name]
    kind, nullable = _base_type(field.annotation)
    if kind is bool:
        if values.dtype != bool and not np.isin(values, (0, 1)).all():
            raise ColumnsError(f"{name}: booleans expected")
        return values.astype(bool)
    if kind is int:
        whole = np.issubdtype(values.dtype, np.floating) and np.all(np.mod(values, 1) == 0)
        if not np.issubdtype(values.dtype, np.integer) and not whole:
            raise ColumnsError(f"{name}: whole numbers expected, got {values.dtype}")
        values = values.astype(np.int64)
    elif kind is float:
        try:
            values = values.astype(np.float64)
        except (TypeError, ValueError):
            raise ColumnsError(f"{name}: numbers expected, got {values.dtype}") from None
        bad = ~np.isfinite(values) & ~(nullable & np.isnan(values))
        if bad.any():
            row = int(np.argmax(bad))
            raise ColumnsError(f"{name}: row {row} holds {values[row]}, a finite number is required")
    elif kind is str:
        return values.astype(str)
    for op, bound in _bounds(field):
        ok = _OPS[op](values, bound) | (np.isnan(values) if values.dtype.kind == "f" else False)
        if not ok.all():
            row = int(np.argmax(~ok))
            raise ColumnsError(f"{name}: row {row} holds {values[row]}, which must be {op} {bound:g}")
    return values


def _sql_value(values: np.ndarray) -> list[Any]:
    if values.dtype.kind == "f":
        floats: list[float] = values.tolist()
        return [None if math.isnan(v) else v for v in floats] if np.isnan(values).any() else floats
    if values.dtype == bool:
        flags: list[int] = values.astype(np.int64).tolist()
        return flags
    plain: list[Any] = values.tolist()
    return plain


def column_rows(
    spec: Any, set_id: int, first_position: int, columns: Mapping[str, Any], origins: Sequence[Sequence[str]] | None
) -> tuple[list[str], Iterator[tuple[Any, ...]], int]:
    """(SQL column names, rows for ``executemany``, count) for items given as arrays.

    Every field of the item class must be given or have a default; the arrays are checked against the
    fields' rules in one go. Packed fields (rotations) are given as (N, 3, 3) arrays.
    """
    cls: type[BaseModel] = spec.cls
    unknown = set(columns) - set(cls.model_fields)
    if unknown:
        raise ColumnsError(f"{cls.__name__} has no field(s) {', '.join(sorted(unknown))}")
    arrays = {name: np.asarray(value) for name, value in columns.items()}
    lengths = {len(a) for a in arrays.values()}
    if len(lengths) != 1:
        raise ColumnsError(f"the arrays given differ in length: {sorted(lengths)}")
    n = lengths.pop()
    missing = [
        name
        for name, f in cls.model_fields.items()
        if name not in arrays and f.default is PydanticUndefined and f.default_factory is None
    ]
    if missing:
        raise ColumnsError(f"{cls.__name__} needs {', '.join(missing)} (no default)")
    if spec.children_field and spec.children_field in arrays:
        raise ColumnsError(f"{cls.__name__}: items with children are appended one by one")
    packed: dict[str, Iterable[bytes]] = {}
    for name, codec in spec.packed.items():
        if name in arrays:
            matrices = np.asarray(arrays[name], dtype=np.float64)
            check_rotations(matrices, name)
            quaternions = matrices_to_quaternions(matrices)
            packed[name] = [q.tobytes() for q in quaternions]
        else:
            default = pack(codec, cls.model_fields[name].get_default(call_default_factory=True))
            packed[name] = itertools.repeat(default, n)
    checked = {name: check_column(cls, name, a) for name, a in arrays.items() if name not in spec.packed}
    values: dict[str, Any] = {}
    for name in spec.columns:
        if name in spec.packed:
            values[name] = packed[name]
        elif name in checked:
            values[name] = _sql_value(checked[name])
        elif name in cls.model_fields:
            default = cls.model_fields[name].get_default(call_default_factory=True)
            values[name] = itertools.repeat(int(default) if isinstance(default, bool) else default, n)
        else:
            raise ColumnsError(f"{cls.__name__}: column {name} is computed from an item; append items instead")
    rest = [name for name in checked if name not in spec.columns]
    defaults = {
        name: f.get_default(call_default_factory=True)
        for name, f in cls.model_fields.items()
        if name not in arrays and name not in spec.columns and name != spec.children_field
    }
    defaults = json.loads(cls.model_construct(**defaults).model_dump_json(include=set(defaults))) if defaults else {}
    if rest:
        data: Any = (
            json.dumps({**defaults, **dict(zip(rest, row))}) for row in zip(*(checked[r].tolist() for r in rest))
        )
    else:
        data = itertools.repeat(json.dumps(defaults) if defaults else "", n)
    if spec.key_field in checked:
        keys = checked[spec.key_field].astype(str)
        unique, counts = np.unique(keys, return_counts=True)
        if (counts > 1).any():
            raise ColumnsError(
                f"{spec.key_field}: the key {str(unique[np.argmax(counts > 1)])!r} is given more than once"
            )
        key_values: Any = keys.tolist()
    else:
        raise ColumnsError(f"{cls.__name__}: its key field {spec.key_field} must be given")
    origin: Any = itertools.repeat("", n) if origins is None else (json.dumps(list(o)) for o in origins)
    names = ["set_id", "parent_id", "position", "key", "origin", "data", *spec.columns]
    rows = zip(
        itertools.repeat(set_id, n),
        itertools.repeat(0, n),
        range(first_position, first_position + n),
        key_values,
        origin,
        data,
        *(values[c] for c in spec.columns),
    )
    return names, rows, n


def _column_kind(spec: Any, name: str) -> Any:
    """The Python type a column holds: its field's type without None (text for ``key`` and computed columns)."""
    field = spec.cls.model_fields.get(name)
    return _base_type(field.annotation)[0] if field is not None else str


def select_expression(spec: Any, name: str) -> str:
    """How ``arrays`` selects a column: a float NULL comes back as +inf (stored floats are finite), made NaN; an
    integer or bool NULL as 0 (numpy integers have no missing value)."""
    kind = None if name in spec.packed else _column_kind(spec, name)
    if kind is float:
        return f'COALESCE("{name}", 1e999)'
    if kind in (int, bool):
        return f'COALESCE("{name}", 0)'
    return f'"{name}"'


def _dtype(spec: Any, name: str) -> Any:
    if name in spec.packed:
        return f"V{PACKERS[spec.packed[name]]}"
    return {float: "f8", int: "i8", bool: "i8"}.get(_column_kind(spec, name), object)


def fetch_arrays(cursor: Iterator[tuple[Any, ...]], spec: Any, fields: Sequence[str]) -> dict[str, np.ndarray]:
    """The rows of a ``SELECT`` of ``fields`` (made with ``select_expression``) as one numpy array per field,
    read in one pass without a Python object per row (rotations as (N, 3, 3), text as str)."""
    dtype = np.dtype([(f"f{i}", _dtype(spec, name)) for i, name in enumerate(fields)])
    table = np.fromiter(cursor, dtype=dtype)  # NULLs of numbers were replaced in SQL (select_expression)
    out = {}
    for i, name in enumerate(fields):
        column = table[f"f{i}"]
        if name in spec.packed:
            out[name] = quaternions_to_matrices(np.frombuffer(column.tobytes(), dtype=np.float64).reshape(-1, 4))
        elif column.dtype == object:
            out[name] = column.astype(str)
        elif _column_kind(spec, name) is bool:
            out[name] = column.astype(bool)
        elif column.dtype.kind == "f":
            out[name] = np.where(np.isinf(column), np.nan, column)
        else:
            out[name] = np.ascontiguousarray(column)
    return out
