"""Sets: the outputs of runs, stored as rows of items (with nested child items) in the project DB.

A set belongs to one run and has a name (the output name), an item class and a stream state:
``open`` while items may still arrive, ``closed`` when final. Iteration follows insertion order.
A filter (see ``tomoforge.engine.filters``) selects a subset by the typed columns; a filter on
fields the items lack but their children have selects children (``not excluded`` on a tilt-series
set keeps the tilt series and drops their excluded tilt images). A filter is compiled to SQL with
its literals bound as parameters and ANDed after the set's own condition, never pasted into it.
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Any, cast

import numpy as np
from pydantic import BaseModel

from tomoforge.engine import db
from tomoforge.engine.columns import column_rows, fetch_arrays, select_expression
from tomoforge.engine.filters import FilterError, SetFilter, split_filter
from tomoforge.engine.items import (
    ItemSpec,
    add_missing_columns,
    class_from_path,
    class_path,
    column_values,
    ensure_table,
    item_files,
    item_json,
    item_spec,
    missing_columns,
    row_data,
)
from tomoforge.errors import UserError

OPEN, CLOSED = "open", "closed"


class DuplicateKeyError(UserError, ValueError):
    """Two items of one set (or two children of one item) with the same key."""


def upgrade_table(conn: sqlite3.Connection, spec: ItemSpec) -> None:
    """Add the columns declared since the table was made (a project of an older version), so that every
    typed column can be queried and read as arrays. Reads only (one PRAGMA), unless a column is missing."""
    specs = [spec] if spec.child is None else [spec, spec.child]
    if any(missing_columns(conn, s) for s in specs):
        with db.transaction(conn):
            for s in specs:
                add_missing_columns(conn, s)


def item_address(run_id: int, set_name: str, key: str, child_key: str | None = None) -> str:
    """``RUN.OUTPUT/KEY[/CHILD]``: how the CLI and provenance name an item."""
    address = f"{run_id}.{set_name}/{key}"
    return f"{address}/{child_key}" if child_key is not None else address


def origin_of(item_set: ItemSet, key: str) -> str:
    """Address of an input item, for ``Task(origin=...)``."""
    return item_address(item_set.run_id, item_set.name, key)


class ItemSet:
    """A handle on one stored set; reads go straight to the database, nothing is cached."""

    def __init__(self, conn: sqlite3.Connection, row: sqlite3.Row, filter: str = "", parsed: SetFilter | None = None):
        """``filter``: its text (parsed and checked here: FilterError if bad); ``parsed``: already done."""
        self.conn = conn
        self.id: int = row["id"]
        self.run_id: int = row["run_id"]
        self.name: str = row["name"]
        self.kind: str = row["kind"]
        self.filter = filter
        self.spec: ItemSpec = item_spec(class_from_path(self.kind))
        upgrade_table(conn, self.spec)
        self._filter = parsed if parsed is not None else self._parse(filter)
        self._where, self._where_params = self._filter.items_sql()
        self._child_where, self._child_params = self._filter.children_sql()

    def _parse(self, filter: str) -> SetFilter:
        try:
            return split_filter(self.spec, filter)
        except FilterError as exc:
            raise exc.within(f"set {self.run_id}.{self.name}") from None

    # --- creation -------------------------------------------------------------------------
    @classmethod
    def create(cls, conn: sqlite3.Connection, run_id: int, name: str, item_class: type[BaseModel]) -> ItemSet:
        spec = item_spec(item_class)
        ensure_table(conn, spec)
        conn.execute(
            "INSERT INTO sets (run_id, name, kind, stream_state, created) VALUES (?, ?, ?, ?, ?)",
            (run_id, name, class_path(item_class), OPEN, time.time()),
        )
        row = conn.execute("SELECT * FROM sets WHERE run_id = ? AND name = ?", (run_id, name)).fetchone()
        return cls(conn, row)

    @property
    def item_class(self) -> type[BaseModel]:
        return self.spec.cls

    @property
    def stream_state(self) -> str:
        state: str = self.conn.execute("SELECT stream_state FROM sets WHERE id = ?", (self.id,)).fetchone()[0]
        return state

    @property
    def is_closed(self) -> bool:
        return self.stream_state == CLOSED

    def close(self) -> None:
        self.conn.execute("UPDATE sets SET stream_state = ? WHERE id = ?", (CLOSED, self.id))

    def subset(self, filter: str) -> ItemSet:
        """The same set seen through a filter (combined with this view's filter, if any)."""
        row = self.conn.execute("SELECT * FROM sets WHERE id = ?", (self.id,)).fetchone()
        extra = self._parse(filter)
        text = f"({self.filter}) and ({filter})" if self.filter.strip() and filter.strip() else (filter or self.filter)
        return ItemSet(self.conn, row, text, self._filter & extra)

    # --- writing --------------------------------------------------------------------------
    def append(self, item: BaseModel, origin: Iterable[str] = ()) -> int:
        """Add one item (and its children); ``origin`` lists the addresses it was made from."""
        if not isinstance(item, self.spec.cls):
            raise TypeError(f"set {self.name} holds {self.spec.cls.__name__}, not {type(item).__name__}")
        position = self.conn.execute(
            f"SELECT COALESCE(MAX(position) + 1, 0) FROM {self.spec.table} WHERE set_id = ? AND parent_id = 0",
            (self.id,),
        ).fetchone()[0]
        return self._insert(self.spec, item, 0, position, json.dumps(list(origin)))

    def _insert(self, spec: ItemSpec, item: BaseModel, parent_id: int, position: int, origin: str) -> int:
        names = ", ".join(
            ["set_id", "parent_id", "position", "key", "origin", "data", *[f'"{c}"' for c in spec.columns]]
        )
        values = [
            self.id,
            parent_id,
            position,
            str(getattr(item, spec.key_field)),
            origin,
            item_json(spec, item),
            *column_values(spec, item),
        ]
        try:
            cursor = self.conn.execute(
                f"INSERT INTO {spec.table} ({names}) VALUES ({', '.join('?' * len(values))})", values
            )
        except sqlite3.IntegrityError as exc:
            raise DuplicateKeyError(self._duplicate_message(spec, item, parent_id, origin)) from exc
        item_id = cast(int, cursor.lastrowid)  # set by the INSERT just made
        if spec.children_field:
            for i, child in enumerate(getattr(item, spec.children_field)):
                self._insert(spec.child, child, item_id, i, "[]")  # type: ignore[arg-type]
        return item_id

    def _duplicate_message(self, spec: ItemSpec, item: BaseModel, parent_id: int, origin: str) -> str:
        key = str(getattr(item, spec.key_field))
        row = self.conn.execute(
            f"SELECT * FROM {spec.table} WHERE set_id = ? AND parent_id = ? AND key = ?",
            (self.id, parent_id, key),
        ).fetchone()

        def where(origin_json: str, files: list[str]) -> str:
            sources = [*json.loads(origin_json or "[]"), *files]
            return ", ".join(sources[:3]) or "?"

        first = where(row["origin"], item_files(spec.cls.model_validate(row_data(spec, row)))) if row else "?"
        return (
            f"set {self.run_id}.{self.name}: two items share the {spec.key_field} {key!r}: one from {first}, "
            f"the other from {where(origin, item_files(item))}; keys must be unique (rename one of the sources)"
        )

    def replace(self, item: BaseModel) -> None:
        """Rewrite a stored item (same key), e.g. to flag tilt images as excluded."""
        key = str(getattr(item, self.spec.key_field))
        row = self.conn.execute(
            f"SELECT id, position, origin FROM {self.spec.table} WHERE set_id = ? AND parent_id = 0 AND key = ?",
            (self.id, key),
        ).fetchone()
        if row is None:
            raise KeyError(f"set {self.name} has no item {key!r}")
        if self.spec.child is not None:
            self.conn.execute(
                f"DELETE FROM {self.spec.child.table} WHERE set_id = ? AND parent_id = ?", (self.id, row[0])
            )
        self.conn.execute(f"DELETE FROM {self.spec.table} WHERE id = ?", (row[0],))
        self._insert(self.spec, item, 0, row[1], row[2])

    # --- reading --------------------------------------------------------------------------
    def __len__(self) -> int:
        sql = f"SELECT COUNT(*) FROM {self.spec.table} WHERE set_id = ? AND parent_id = ?"
        params: list[Any] = [self.id, 0]
        if self._where:
            sql += f" AND ({self._where})"
            params += self._where_params
        count: int = self.conn.execute(sql, params).fetchone()[0]
        return count

    def __iter__(self) -> Iterator[BaseModel]:
        return (item for item, _ in self.rows())

    def rows(self, after_id: int = 0) -> Iterator[tuple[BaseModel, sqlite3.Row]]:
        """Items in order with their rows (``after_id`` lets a streaming reader resume)."""
        sql = f"SELECT * FROM {self.spec.table} WHERE set_id = ? AND parent_id = ? AND id > ?"
        params: list[Any] = [self.id, 0, after_id]
        if self._where:
            sql += f" AND ({self._where})"
            params += self._where_params
        for row in self.conn.execute(sql + " ORDER BY position", params).fetchall():
            yield self._load(row), row

    def keys(self) -> list[str]:
        return [row["key"] for _, row in self.rows()]

    def get(self, key: str) -> BaseModel:
        row = self.conn.execute(
            f"SELECT * FROM {self.spec.table} WHERE set_id = ? AND parent_id = 0 AND key = ?", (self.id, str(key))
        ).fetchone()
        if row is None:
            raise KeyError(f"set {self.run_id}.{self.name} has no item {key!r} (keys: {', '.join(self.keys()[:10])})")
        return self._load(row)

    def origin(self, key: str) -> list[str]:
        row = self.conn.execute(
            f"SELECT origin FROM {self.spec.table} WHERE set_id = ? AND parent_id = 0 AND key = ?", (self.id, str(key))
        ).fetchone()
        return json.loads(row[0] or "[]") if row else []

    def _load(self, row: sqlite3.Row) -> BaseModel:
        data = row_data(self.spec, row)
        child = self.spec.child
        if child is not None:
            sql = f"SELECT * FROM {child.table} WHERE set_id = ? AND parent_id = ?"
            params: list[Any] = [self.id, row["id"]]
            if self._child_where:
                sql += f" AND ({self._child_where})"
                params += self._child_params
            rows = self.conn.execute(sql + " ORDER BY position", params).fetchall()
            data[self.spec.children_field] = [row_data(child, r) for r in rows]  # type: ignore[index]
        return self.spec.cls.model_validate(data)

    # --- bulk: millions of items as arrays ----------------------------------------------------
    def append_many(self, items: Iterable[BaseModel], origins: Iterable[Iterable[str]] | None = None) -> int:
        """Add many items in one transaction (one statement for items without children); returns the count."""
        items = list(items)
        for item in items:
            if not isinstance(item, self.spec.cls):
                raise TypeError(f"set {self.name} holds {self.spec.cls.__name__}, not {type(item).__name__}")
        origin_list = [json.dumps(list(o)) for o in origins] if origins is not None else [""] * len(items)
        with db.transaction(self.conn):
            position = self._next_position()
            if self.spec.children_field:
                for i, (item, origin) in enumerate(zip(items, origin_list)):
                    self._insert(self.spec, item, 0, position + i, origin)
                return len(items)
            names = ["set_id", "parent_id", "position", "key", "origin", "data", *self.spec.columns]
            rows = (
                (
                    self.id,
                    0,
                    position + i,
                    str(getattr(item, self.spec.key_field)),
                    origin,
                    item_json(self.spec, item),
                    *column_values(self.spec, item),
                )
                for i, (item, origin) in enumerate(zip(items, origin_list))
            )
            self._insert_rows(names, rows)
        return len(items)

    def append_columns(self, columns: Mapping[str, Any], origins: Sequence[Sequence[str]] | None = None) -> int:
        """Add items given as arrays, one per field (e.g. ``x_A``, ``rotation`` as (N, 3, 3)), without building
        one object per item; every array is checked against the item class's rules first. Returns the count."""
        with db.transaction(self.conn):
            names, rows, n = column_rows(self.spec, self.id, self._next_position(), columns, origins)
            self._insert_rows(names, rows)
        return n

    def _insert_rows(self, names: list[str], rows: Iterable[tuple[Any, ...]]) -> None:
        quoted = ", ".join(f'"{n}"' for n in names)
        try:
            self.conn.executemany(
                f"INSERT INTO {self.spec.table} ({quoted}) VALUES ({', '.join('?' * len(names))})", rows
            )
        except sqlite3.IntegrityError as exc:
            raise DuplicateKeyError(
                f"set {self.run_id}.{self.name}: an item's {self.spec.key_field} is there "
                f"already ({exc}); keys must be unique"
            ) from None

    def _next_position(self) -> int:
        position: int = self.conn.execute(
            f"SELECT COALESCE(MAX(position) + 1, 0) FROM {self.spec.table} WHERE set_id = ? AND parent_id = 0",
            (self.id,),
        ).fetchone()[0]
        return position

    def arrays(self, *fields: str) -> dict[str, np.ndarray]:
        """Columns of the (filtered) items as numpy arrays in set order: numbers as float64/int64, rotations as
        (N, 3, 3), ``key`` as text. Only typed columns can be read this way (``__columns__``, ``__packed__``)."""
        unknown = [f for f in fields if f not in self.spec.columns and f not in ("key", "position")]
        if unknown:
            raise KeyError(
                f"set {self.run_id}.{self.name}: {', '.join(unknown)} not stored as columns "
                f"(columns: {', '.join(self.spec.columns)})"
            )
        sql = (
            f"SELECT {', '.join(select_expression(self.spec, f) for f in fields)} FROM {self.spec.table} "
            f"WHERE set_id = ? AND parent_id = ?"
        )
        params: list[Any] = [self.id, 0]
        if self._where:
            sql += f" AND ({self._where})"
            params += self._where_params
        cursor = self.conn.cursor()
        cursor.row_factory = None  # plain tuples, read straight into numpy
        return fetch_arrays(cursor.execute(sql + " ORDER BY position", params), self.spec, fields)

    def page(self, number: int = 0, size: int = 100) -> list[BaseModel]:
        """The ``number``-th page of ``size`` items in set order."""
        sql = f"SELECT * FROM {self.spec.table} WHERE set_id = ? AND parent_id = ?"
        params: list[Any] = [self.id, 0]
        if self._where:
            sql += f" AND ({self._where})"
            params += self._where_params
        sql += " ORDER BY position LIMIT ? OFFSET ?"
        return [self._load(r) for r in self.conn.execute(sql, [*params, int(size), int(number) * int(size)])]


__all__ = ["CLOSED", "OPEN", "ItemSet", "item_address", "origin_of", "split_filter"]
