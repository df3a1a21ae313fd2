"""Filter semantics: fields and types checked against an item class, the split between an item and
its children, and the compilation to SQL with every literal a bound parameter."""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cache
from typing import Any

from pydantic import BaseModel

from tomoforge.engine.filters.syntax import (
    FilterError,
    Node,
    all_of,
    conjuncts,
    field_names,
    parse_filter,
)
from tomoforge.engine.items import ItemSpec, column_type, item_spec
from tomoforge.errors import quote

_KIND_OF_SQL = {"INTEGER": "int", "REAL": "real", "TEXT": "text"}
_WORDS = {"bool": "a boolean", "int": "a number", "real": "a number", "text": "text", "null": "null"}
_FAMILY = {"bool": "number", "int": "number", "real": "number", "text": "text"}  # what compares with what
_NUMBERS = ("int", "real", "null")
_EQUALITY = ("=", "==", "!=", "<>")
_COLUMN = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


@cache
def field_kinds(cls: type[BaseModel]) -> dict[str, str]:
    """The fields a filter may use on ``cls`` and their kinds (``bool``, ``int``, ``real``, ``text``).

    Parameters
    ----------
    cls : type[BaseModel]
        An item class (see ``tomoforge.engine.items``).

    Returns
    -------
    dict[str, str]
        Its typed columns plus ``key`` (text) and ``position`` (int).
    """
    kinds = {"key": "text", "position": "int"}
    for name, sql_type in item_spec(cls).columns.items():
        if sql_type == "BLOB":  # packed values (rotations) are not compared
            continue
        kinds[name] = "bool" if column_type(cls, name) is bool else _KIND_OF_SQL.get(sql_type, "text")
    return kinds


@dataclass(frozen=True)
class _Scope:
    expression: str
    kinds: dict[str, str]
    hint: str  # the queryable fields, for an unknown one

    def fail(self, reason: str, pos: int) -> FilterError:
        return FilterError(self.expression, reason, pos)


def check_condition(node: Node, kinds: dict[str, str], expression: str, hint: str = "") -> Node:
    """Check that ``node`` is a condition over the fields ``kinds`` with compatible types; return it.

    Parameters
    ----------
    node : Node
        A parsed filter (``parse_filter``).
    kinds : dict[str, str]
        Known fields and their kinds (``field_kinds``).
    expression : str
        The filter's text, for the error message.
    hint : str
        What to list after an unknown field (default: the known fields).

    Raises
    ------
    FilterError
        An unknown field, a comparison of a number with text, arithmetic on text, a value where a
        condition is needed; with the position.
    """
    scope = _Scope(expression, kinds, hint or f"queryable: {', '.join(sorted(kinds))}")
    _condition(node, scope)
    return node


def _condition(node: Node, scope: _Scope) -> None:
    kind = _kind(node, scope)
    if kind == "bool":
        return
    if node.op == "field":
        example = f"{node.value} > 0" if kind != "text" else f"{node.value} = '...'"
        raise scope.fail(
            f"{quote(node.value)} is {_WORDS[kind]}, not a condition (compare it, e.g. {example})", node.pos
        )
    what = "null" if kind == "null" else f"{_describe(node, kind)}"
    raise scope.fail(f"{what} is not a condition", node.pos)


def _describe(node: Node, kind: str) -> str:
    if node.op == "field":
        text = node.value
    elif node.op == "literal":
        value = node.value
        if value is None or isinstance(value, bool):
            text = {True: "true", False: "false", None: "null"}[value]
        else:
            text = quote(value, 40)
    else:
        text = f"the expression at position {node.pos}"
    return text if kind == "null" else f"{text} ({_WORDS[kind]})"


def _compatible(a: str, b: str) -> bool:
    return "null" in (a, b) or _FAMILY[a] == _FAMILY[b]


def _kind(node: Node, scope: _Scope) -> str:
    """The kind of value ``node`` gives (bool for conditions), checking its operands on the way."""
    op, args = node.op, node.args
    if op == "literal":
        value = node.value
        if value is None:
            return "null"
        return {bool: "bool", int: "int", float: "real", str: "text"}[type(value)]
    if op == "field":
        if node.value not in scope.kinds:
            raise scope.fail(f"unknown field {quote(node.value, 40)} ({scope.hint})", node.pos)
        return scope.kinds[node.value]
    if op in ("and", "or", "not"):
        for arg in args:
            _condition(arg, scope)
        return "bool"
    kinds = [_kind(arg, scope) for arg in args]
    if op in ("neg", "pos", "abs", "+", "-", "*", "/", "%"):
        for arg, kind in zip(args, kinds):
            if kind not in _NUMBERS:
                what = "abs()" if op == "abs" else f"'{'-' if op == 'neg' else '+' if op == 'pos' else op}'"
                needs = "needs a number" if len(args) == 1 else "needs numbers"
                raise scope.fail(f"{what} {needs}, not {_describe(arg, kind)}", arg.pos if op == "abs" else node.pos)
        return "real" if "real" in kinds else "int"
    if op == "compare":
        if "null" in kinds and node.value in _EQUALITY:
            raise scope.fail("nothing equals null: test it with 'is null' or 'is not null'", node.pos)
        if not _compatible(*kinds):
            raise scope.fail(
                f"cannot compare {_describe(args[0], kinds[0])} with {_describe(args[1], kinds[1])}", node.pos
            )
        return "bool"
    if op in ("in", "between"):
        for arg, kind in zip(args[1:], kinds[1:]):
            if not _compatible(kinds[0], kind):
                raise scope.fail(f"cannot compare {_describe(args[0], kinds[0])} with {_describe(arg, kind)}", arg.pos)
        return "bool"
    if op == "like":
        for arg, kind in zip(args, kinds):
            if kind not in ("text", "null"):
                raise scope.fail(f"like needs text, not {_describe(arg, kind)}", arg.pos)
        return "bool"
    if op == "isnull":
        return "bool"
    raise AssertionError(f"unknown filter node {op!r}")  # pragma: no cover - the parser makes no other


# --- SQL --------------------------------------------------------------------------------------
_SQL_COMPARE = {"==": "=", "<>": "!="}


def compile_sql(node: Node) -> tuple[str, list[Any]]:
    """SQL for a checked filter and its parameters: every literal a ``?``, every column quoted.

    Parameters
    ----------
    node : Node
        A filter checked with ``check_condition`` (its fields are the item class's columns).

    Returns
    -------
    tuple[str, list]
        A parenthesised SQL expression and the values of its ``?`` in order; AND it after a
        set's own condition, e.g. ``WHERE set_id = ? AND parent_id = ? AND (<sql>)``.
    """
    params: list[Any] = []
    return _sql(node, params), params


def _sql(node: Node, params: list[Any]) -> str:
    op = node.op
    if op == "literal":
        params.append(node.value)
        return "?"
    if op == "field":
        if not _COLUMN.fullmatch(node.value):  # the tokenizer makes no other; never paste anything else
            raise ValueError(f"not a column name: {node.value!r}")
        return f'"{node.value}"'
    args = [_sql(arg, params) for arg in node.args]  # in the order of the text: params follow
    negated = "NOT " if node.value is True else ""
    if op == "pos":
        return args[0]
    if op == "neg":
        return f"(-{args[0]})"
    if op == "abs":
        return f"abs({args[0]})"
    if op in ("+", "-", "*", "/", "%"):
        return f"({args[0]} {op} {args[1]})"
    if op == "compare":
        return f"({args[0]} {_SQL_COMPARE.get(node.value, node.value)} {args[1]})"
    if op in ("and", "or"):
        return f"({args[0]} {op.upper()} {args[1]})"
    if op == "not":
        return f"(NOT {args[0]})"
    if op == "isnull":
        return f"({args[0]} IS {negated}NULL)"
    if op == "in":
        return f"({args[0]} {negated}IN ({', '.join(args[1:])}))"
    if op == "between":
        return f"({args[0]} {negated}BETWEEN {args[1]} AND {args[2]})"
    if op == "like":
        return f"({args[0]} {negated}LIKE {args[1]})"
    raise AssertionError(f"unknown filter node {op!r}")  # pragma: no cover


# --- a set's filter: its items' part and its children's part ----------------------------------
@dataclass(frozen=True)
class SetFilter:
    """A checked filter of a set: the condition on its items and the one on their children."""

    items: Node | None = None
    children: Node | None = None

    def __and__(self, other: SetFilter) -> SetFilter:
        """Both filters at once (their ASTs joined by 'and', never their texts)."""
        return SetFilter(
            all_of(conjuncts(self.items) + conjuncts(other.items)),
            all_of(conjuncts(self.children) + conjuncts(other.children)),
        )

    def items_sql(self) -> tuple[str, list[Any]]:
        """(SQL, params) for the items ('' and [] without a condition)."""
        return compile_sql(self.items) if self.items is not None else ("", [])

    def children_sql(self) -> tuple[str, list[Any]]:
        """(SQL, params) for the items' children ('' and [] without a condition)."""
        return compile_sql(self.children) if self.children is not None else ("", [])


def split_filter(spec: ItemSpec, expression: str) -> SetFilter:
    """Parse and check a filter for a set of ``spec`` items: which part addresses the items, which their children.

    A filter whose fields are all the items' own (or with no children to address) filters the
    items; one whose fields are all the children's filters the children (``not excluded`` on tilt
    series drops excluded tilt images); otherwise each top-level ``and`` part goes to its level.

    Parameters
    ----------
    spec : ItemSpec
        The set's item class (``item_spec``).
    expression : str
        The filter text ('' for none).

    Raises
    ------
    FilterError
        The text does not parse, names an unknown field, mixes types, or one part mixes the
        fields of the items and of their children.
    """
    node = parse_filter(expression)
    if node is None:
        return SetFilter()
    own = field_kinds(spec.cls)
    names = field_names(node)
    child = spec.child
    if child is None or set(names) <= set(own):
        return SetFilter(items=check_condition(node, own, expression))
    theirs = field_kinds(child.cls)
    hint = f"queryable: {', '.join(sorted(own))}; of its {child.cls.__name__} children: {', '.join(sorted(theirs))}"
    if set(names) <= set(theirs):
        return SetFilter(children=check_condition(node, theirs, expression, hint))
    items, children = [], []
    for part in conjuncts(node):
        used = field_names(part)
        if set(used) <= set(own):
            items.append(check_condition(part, own, expression, hint))
        elif set(used) <= set(theirs):
            children.append(check_condition(part, theirs, expression, hint))
        else:
            unknown = [(pos, name) for name, pos in used.items() if name not in own and name not in theirs]
            if unknown:
                pos, name = min(unknown)
                raise FilterError(expression, f"unknown field {quote(name, 40)} ({hint})", pos)
            mine = sorted(name for name in used if name not in theirs)
            other = {name: pos for name, pos in used.items() if name not in own}
            raise FilterError(
                expression,
                f"one condition mixes fields of the {spec.cls.__name__} items ({', '.join(mine)}) and of their "
                f"{child.cls.__name__} children ({', '.join(sorted(other))}), which only a top-level 'and' may join",
                min(other.values()),
            )
    return SetFilter(all_of(items), all_of(children))
