"""Item filters: a small expression language over an item class's typed columns, compiled to SQL.

A filter such as ``not excluded and abs(tilt_angle_deg) <= 40`` selects the items of a set (or the
children of its items). ``syntax`` reads it with a tokenizer and a recursive-descent parser into an
AST; ``sql`` checks the AST against the item class (known fields, compatible types) and compiles it
to SQL in which every literal is a bound parameter (``?``) and every column name is one of the
class's known columns. The set's own condition is ANDed outside the compiled text by the caller
(``WHERE set_id = ? AND parent_id = ? AND (<filter>)``), so no filter can leave its set.

Grammar (keywords in any case; field names as declared)::

    condition  := conjunct ("or" conjunct)*
    conjunct   := negation ("and" negation)*
    negation   := "not" negation | predicate
    predicate  := sum [ compare sum | "is" ["not"] "null" | ["not"] "in" "(" sum ("," sum)* ")"
                      | ["not"] "between" sum "and" sum | ["not"] "like" sum ]
    sum        := product (("+" | "-") product)*
    product    := unary (("*" | "/" | "%") unary)*
    unary      := ("-" | "+") unary | primary
    primary    := NUMBER | STRING | "true" | "false" | "null" | FIELD | "abs" "(" condition ")"
                | "(" condition ")"
    compare    := "=" | "==" | "!=" | "<>" | "<" | "<=" | ">" | ">="

Fields are the item class's typed columns (``__columns__``) plus ``key`` and ``position``. Strings
take single quotes (``'it''s'``). Numbers are compared with numbers and text with text; a boolean
field is a condition by itself (``not excluded``). Arithmetic and comparisons follow SQLite
(``7 / 2`` is 3; ``like`` ignores ASCII case). ``%`` is kept because the earlier syntax allowed it.
A filter on fields its items lack but their children have selects children; top-level ``and``
parts may address either level (``name = 'TS_01' and not excluded``).
"""

from tomoforge.engine.filters.sql import (
    SetFilter,
    check_condition,
    compile_sql,
    field_kinds,
    split_filter,
)
from tomoforge.engine.filters.syntax import (
    FilterError,
    Node,
    Token,
    all_of,
    caret_lines,
    conjuncts,
    field_names,
    parse_filter,
    tokenize,
)

__all__ = [
    "FilterError",
    "Node",
    "SetFilter",
    "Token",
    "all_of",
    "caret_lines",
    "check_condition",
    "compile_sql",
    "conjuncts",
    "field_kinds",
    "field_names",
    "parse_filter",
    "split_filter",
    "tokenize",
]
