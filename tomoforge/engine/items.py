"""How item classes map to SQL tables: one table per item kind, typed columns for queried fields.

An item class is any pydantic model declaring ``__item_kind__``, ``__key__``, ``__columns__`` and
optionally ``__children__`` (see ``tomoforge.model.base``). Tables are created on first use and gain
a column when a class declares a new one, so item classes from plugins need no migration.
"""

from __future__ import annotations

import importlib
import json
import re
import sqlite3
import types
import typing
from dataclasses import dataclass, field
from functools import cache
from importlib.metadata import entry_points
from typing import Any

from pydantic import BaseModel

from tomoforge.engine.columns import PACKERS, pack, unpack
from tomoforge.engine.registry import GROUP
from tomoforge.errors import ProjectFileError, quote

_SQL_TYPES = {bool: "INTEGER", int: "INTEGER", float: "REAL", str: "TEXT"}
BASE_COLUMNS = ("id", "set_id", "parent_id", "position", "key", "origin", "data")


@dataclass(frozen=True)
class ItemSpec:
    cls: type[BaseModel]
    kind: str
    key_field: str
    columns: dict[str, str]  # field -> SQL type
    children_field: str | None
    child_cls: type[BaseModel] | None
    packed: dict[str, str] = field(default_factory=dict)  # field -> codec (engine.columns), stored as BLOB

    @property
    def table(self) -> str:
        return f"item_{self.kind}"

    @property
    def child(self) -> ItemSpec | None:
        return item_spec(self.child_cls) if self.child_cls else None


def class_path(cls: type) -> str:
    return f"{cls.__module__}:{cls.__qualname__}"


def trusted_module(module: str) -> bool:
    """Whether a module may be imported because the database names it: tomoforge's own or an
    installed protocol plugin's package (what the user installed is trusted; a project file is not)."""
    top = module.split(".")[0]
    if top == "tomoforge":
        return True
    return top in {ep.value.split(":")[0].split(".")[0] for ep in entry_points(group=GROUP)}


def class_from_path(path: str) -> type[BaseModel]:
    """The item class stored as ``module:QualName``; refused unless it is a trusted item class."""
    if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_.]*:[A-Za-z_][A-Za-z0-9_.]*", path) or not trusted_module(
        path.split(":")[0]
    ):
        raise ProjectFileError(
            f"the project names an item class {quote(path)} that is not tomoforge's or an installed plugin's"
        )
    module, _, name = path.partition(":")
    try:
        obj: Any = importlib.import_module(module)
        for part in name.split("."):
            obj = getattr(obj, part)
    except (ImportError, AttributeError) as exc:
        raise ProjectFileError(f"the project names an item class {quote(path)} that is not installed ({exc})") from None
    if not (isinstance(obj, type) and issubclass(obj, BaseModel)) or not getattr(obj, "__item_kind__", ""):
        raise ProjectFileError(f"the project names {quote(path)} as an item class, which it is not")
    return obj


@cache
def item_spec(cls: type[BaseModel]) -> ItemSpec:
    kind = getattr(cls, "__item_kind__", "")
    if not kind or not re.fullmatch(r"[a-z][a-z0-9_]*", kind):
        raise TypeError(f"{class_path(cls)} is not a storable item: set __item_kind__ (lower_snake_case)")
    children = getattr(cls, "__children__", None)
    columns = {name: _sql_type(cls, name) for name in getattr(cls, "__columns__", ())}
    packed = dict(getattr(cls, "__packed__", {}))
    for name, codec in packed.items():
        if name not in cls.model_fields or codec not in PACKERS:
            raise TypeError(f"{class_path(cls)}: packed field {name!r} ({codec!r}) is not a field with a known packing")
        columns[name] = "BLOB"
    return ItemSpec(
        cls=cls,
        kind=kind,
        key_field=getattr(cls, "__key__", "name"),
        columns=columns,
        children_field=children[0] if children else None,
        child_cls=children[1] if children else None,
        packed=packed,
    )


def _sql_type(cls: type[BaseModel], name: str) -> str:
    if name in BASE_COLUMNS:
        raise TypeError(f"{class_path(cls)}: column '{name}' clashes with a built-in column")
    return _SQL_TYPES.get(column_type(cls, name), "TEXT")


def column_type(cls: type[BaseModel], name: str) -> Any:
    """The Python type of a column (a field or a property), ``X | None`` read as ``X``.

    Parameters
    ----------
    cls : type[BaseModel]
        The item class.
    name : str
        One of its ``__columns__``.

    Returns
    -------
    Any
        The annotation, e.g. ``bool`` for ``excluded`` (filters treat a bool column as a condition).
    """
    field = cls.model_fields.get(name)
    if field is not None:
        annotation = field.annotation
    else:
        prop = getattr(cls, name, None)
        if not isinstance(prop, property):
            raise TypeError(f"{class_path(cls)}: column '{name}' is neither a field nor a property")
        annotation = typing.get_type_hints(prop.fget).get("return", str)
    return _strip_optional(annotation)


def _strip_optional(annotation: Any) -> Any:
    if isinstance(annotation, types.UnionType) or typing.get_origin(annotation) is typing.Union:
        args = [a for a in typing.get_args(annotation) if a is not type(None)]
        return args[0] if len(args) == 1 else annotation
    return annotation


def ensure_table(conn: sqlite3.Connection, spec: ItemSpec) -> None:
    """Create the kind's table (and its children's), adding any newly declared column."""
    cols = ", ".join(f'"{name}" {sql}' for name, sql in spec.columns.items())
    conn.execute(
        f"""CREATE TABLE IF NOT EXISTS {spec.table} (
            id INTEGER PRIMARY KEY,
            set_id INTEGER NOT NULL REFERENCES sets(id) ON DELETE CASCADE,
            parent_id INTEGER NOT NULL DEFAULT 0,
            position INTEGER NOT NULL,
            key TEXT NOT NULL,
            origin TEXT NOT NULL DEFAULT '[]',
            data TEXT NOT NULL{", " + cols if cols else ""},
            UNIQUE (set_id, parent_id, key))"""
    )
    conn.execute(f"CREATE INDEX IF NOT EXISTS {spec.table}_order ON {spec.table} (set_id, parent_id, position)")
    add_missing_columns(conn, spec)
    if spec.child is not None:
        ensure_table(conn, spec.child)


def missing_columns(conn: sqlite3.Connection, spec: ItemSpec) -> list[str]:
    """The columns ``spec`` declares that its table (if it exists) lacks."""
    present = {row[1] for row in conn.execute(f"PRAGMA table_info({spec.table})")}
    return [name for name in spec.columns if present and name not in present]


def add_missing_columns(conn: sqlite3.Connection, spec: ItemSpec) -> None:
    """Give an existing table the columns its item class declares now (a project written by an older
    version), filled from each row's JSON ``data``, where the field was kept until it had a column of its
    own, else with the field's default. A packed field stays in ``data`` (``row_data`` reads it there while
    its column is empty)."""
    for name in missing_columns(conn, spec):
        conn.execute(f'ALTER TABLE {spec.table} ADD COLUMN "{name}" {spec.columns[name]}')
        if name in spec.packed:
            continue
        default = spec.cls.model_fields[name].default
        default = default if isinstance(default, (bool, int, float, str)) else None  # not a required field's marker
        conn.execute(
            f"UPDATE {spec.table} SET \"{name}\" = COALESCE(json_extract(NULLIF(data, ''), ?), ?)",
            (f"$.{name}", int(default) if isinstance(default, bool) else default),
        )


def item_files(item: BaseModel) -> list[str]:
    """The non-empty file fields (``__files__``) of an item, not its children's."""
    return [str(getattr(item, name)) for name in getattr(item, "__files__", ()) if getattr(item, name)]


def column_values(spec: ItemSpec, item: BaseModel) -> list[Any]:
    """The values of an item's typed columns (packed fields as their BLOB)."""
    values = []
    for name in spec.columns:
        value = getattr(item, name)
        if name in spec.packed:
            value = pack(spec.packed[name], value)
        values.append(int(value) if isinstance(value, bool) else value)
    return values


def item_json(spec: ItemSpec, item: BaseModel) -> str:
    """The item's fields that have no column of their own, as JSON ('' when none); children have rows."""
    exclude = {name for name in spec.columns if name in type(item).model_fields}
    if spec.children_field:
        exclude.add(spec.children_field)
    rest = set(type(item).model_fields) - exclude
    return item.model_dump_json(include=rest) if rest else ""


def row_data(spec: ItemSpec, row: sqlite3.Row) -> dict[str, Any]:
    """An item's fields from its row: the JSON ``data`` with the columns over it (old rows hold all in data; a
    column added since is empty where the row's data has no value for it: the field's default is kept)."""
    data: dict[str, Any] = json.loads(row["data"]) if row["data"] else {}
    fields = spec.cls.model_fields
    for name in spec.columns:
        if name in fields:
            value = row[name]
            if value is None and (name in data or fields[name].default is not None):
                continue  # an old row's value, or the default of a column added since
            data[name] = unpack(spec.packed[name], value) if name in spec.packed and value is not None else value
    return data
