"""Filter syntax: the tokenizer, the recursive-descent parser and the AST (see the package docstring)."""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from typing import Any

from tomoforge.errors import UserError, quote

MAX_LENGTH = 10_000  # characters of a filter
MAX_NESTING = 40  # brackets, 'not', unary signs and abs( open at once (bounds the parser's recursion)
MAX_DEPTH = 20  # operations stacked on one another (SQLite's parser overflows near 30)
KEYWORDS = frozenset({"and", "or", "not", "is", "null", "in", "between", "like", "true", "false"})
FUNCTIONS = frozenset({"abs"})
COMPARISONS = ("=", "==", "!=", "<>", "<", "<=", ">", ">=")
_OPERATORS = ("<=", ">=", "!=", "<>", "==", "=", "<", ">", "(", ")", ",", "+", "-", "*", "/", "%")
_NUMBER = re.compile(r"(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][-+]?[0-9]+)?")
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_WINDOW = 70  # characters of a long filter shown either side of the caret


class FilterError(UserError, ValueError):
    """A filter that cannot be read or does not fit the item class; says why and where.

    ``position`` is the index of the offending character in ``expression`` (None: the whole
    filter); the message then shows the expression with a caret under that character.
    """

    def __init__(self, expression: str, reason: str, position: int | None = None, where: str = ""):
        self.expression, self.reason, self.position, self.where = expression, reason, position, where
        super().__init__(self._message())

    def _message(self) -> str:
        text = f"{self.where + ': ' if self.where else ''}filter {quote(self.expression)}: {self.reason}"
        if self.position is None:
            return text
        return f"{text} at position {self.position}\n{caret_lines(self.expression, self.position)}"

    def __reduce__(
        self,
    ) -> tuple[
        type[FilterError], tuple[str, str, int | None, str]
    ]:  # pickled whole (a worker's error travels to the orchestrator)
        return (FilterError, (self.expression, self.reason, self.position, self.where))

    def within(self, where: str) -> FilterError:
        """The same error, told as part of ``where`` (e.g. ``input 'tilt_series'``)."""
        return FilterError(self.expression, self.reason, self.position, where)


def caret_lines(expression: str, position: int) -> str:
    """The expression (one line; a window of a long one) and a caret under ``position``."""
    flat = "".join(ch if ch.isprintable() else " " for ch in expression)
    start = max(0, position - _WINDOW)
    end = min(len(flat), position + _WINDOW)
    head = "…" if start else ""
    shown = head + flat[start:end] + ("…" if end < len(flat) else "")
    return f"  {shown}\n  {' ' * (len(head) + position - start)}^"


# --- tokens -----------------------------------------------------------------------------------
@dataclass(frozen=True)
class Token:
    kind: str  # "number", "string", "name", "op" or "end"
    text: str  # as written
    pos: int
    value: Any = None  # a literal's value

    def word(self) -> str:
        """A name token in lower case ('' for other tokens): keywords are case-insensitive."""
        return self.text.lower() if self.kind == "name" else ""

    def shown(self) -> str:
        return "the end of the filter" if self.kind == "end" else quote(self.text, 40)


def tokenize(expression: str) -> list[Token]:
    """The tokens of a filter, ending with an ``end`` token; FilterError on a character it cannot read."""
    if len(expression) > MAX_LENGTH:
        raise FilterError(expression, f"longer than {MAX_LENGTH} characters")
    tokens, i, n = [], 0, len(expression)
    while i < n:
        ch = expression[i]
        if ch.isspace():
            i += 1
        elif ch == "'":
            j = _string_end(expression, i)
            tokens.append(Token("string", expression[i:j], i, expression[i + 1 : j - 1].replace("''", "'")))
            i = j
        elif (number := _NUMBER.match(expression, i)) is not None:
            j = number.end()
            if j < n and (expression[j].isalnum() or expression[j] in "_.'"):
                raise FilterError(expression, f"malformed number {quote(expression[i : j + 1])}", i)
            tokens.append(Token("number", expression[i:j], i, _number_value(expression, i, j)))
            i = j
        elif (name := _NAME.match(expression, i)) is not None:
            tokens.append(Token("name", name.group(), i))
            i = name.end()
        else:
            op = next((o for o in _OPERATORS if expression.startswith(o, i)), None)
            if op is None:
                hint = " (strings take single quotes; field names are not quoted)" if ch == '"' else ""
                raise FilterError(expression, f"unexpected character {quote(ch)}{hint}", i)
            tokens.append(Token("op", op, i))
            i += len(op)
    tokens.append(Token("end", "", n))
    return tokens


def _string_end(expression: str, start: int) -> int:
    """Index just past the string literal opening at ``start`` ('' is a quote inside it)."""
    i = start + 1
    while True:
        j = expression.find("'", i)
        if j < 0:
            raise FilterError(expression, "unterminated string (its opening ' is never closed)", start)
        if expression.startswith("''", j):
            i = j + 2
            continue
        return j + 1


def _number_value(expression: str, start: int, end: int) -> int | float:
    text = expression[start:end]
    if text.isdigit() and len(text) <= 18:
        return int(text)
    value = float(text)  # an integer beyond 64 bits becomes a float, as in SQLite
    if not math.isfinite(value):
        raise FilterError(expression, f"number {quote(text, 40)} out of range", start)
    return value


# --- syntax tree ------------------------------------------------------------------------------
@dataclass(frozen=True)
class Node:
    """An AST node: ``op`` names it, ``args`` are its operands, ``pos`` where it is in the text."""

    op: str  # literal, field, neg, + - * / %, abs, compare, and, or, not, isnull, in, between, like
    args: tuple[Node, ...] = ()
    pos: int = 0
    value: Any = None  # literal: its value; field: its name; compare: the operator; others: negated
    depth: int = field(default=1, compare=False)


def parse_filter(expression: str) -> Node | None:
    """The AST of a filter (syntax only, fields unchecked); None for an empty filter.

    Raises
    ------
    FilterError
        If the text does not follow the grammar (see the module docstring), with the position.
    """
    parser = _Parser(expression)
    if parser.peek().kind == "end":
        return None
    node = parser.condition()
    token = parser.peek()
    if token.kind != "end":
        if token.text == ")":
            raise FilterError(expression, "unbalanced ')'", token.pos)
        raise FilterError(
            expression, f"expected 'and', 'or' or the end of the filter, found {token.shown()}", token.pos
        )
    return node


class _Parser:
    def __init__(self, expression: str):
        self.expression = expression
        self.tokens = tokenize(expression)
        self.i = 0
        self.nesting = 0

    # helpers
    def peek(self, ahead: int = 0) -> Token:
        return self.tokens[min(self.i + ahead, len(self.tokens) - 1)]

    def take(self) -> Token:
        token = self.peek()
        self.i = min(self.i + 1, len(self.tokens) - 1)
        return token

    def fail(self, reason: str, pos: int) -> FilterError:
        return FilterError(self.expression, reason, pos)

    def node(self, op: str, args: tuple[Node, ...], pos: int, value: Any = None) -> Node:
        depth = 1 + max((a.depth for a in args), default=0)
        if depth > MAX_DEPTH:
            raise self.fail(f"nested too deeply (at most {MAX_DEPTH} operations inside one another)", pos)
        return Node(op, args, pos, value, depth)

    def enter(self, token: Token) -> None:
        self.nesting += 1
        if self.nesting > MAX_NESTING:
            raise self.fail(f"nested too deeply (at most {MAX_NESTING} brackets, 'not' or signs)", token.pos)

    def close(self, opening: Token) -> None:
        token = self.take()
        if token.text != ")" or token.kind != "op":
            if token.kind == "end":
                raise self.fail("unbalanced '('", opening.pos)
            raise self.fail(
                f"expected ')' to close the '(' at position {opening.pos}, found {token.shown()}", token.pos
            )
        self.nesting -= 1

    # grammar
    def condition(self) -> Node:
        parts = [self.conjunct()]
        while self.peek().word() == "or":
            self.take()
            parts.append(self.conjunct())
        return self.balanced("or", parts)

    def conjunct(self) -> Node:
        parts = [self.negation()]
        while self.peek().word() == "and":
            self.take()
            parts.append(self.negation())
        return self.balanced("and", parts)

    def balanced(self, op: str, parts: list[Node]) -> Node:
        """``a op b op c ...`` as a balanced tree: and/or are associative, and SQLite nests shallowly."""
        if len(parts) == 1:
            return parts[0]
        middle = len(parts) // 2
        left, right = self.balanced(op, parts[:middle]), self.balanced(op, parts[middle:])
        return self.node(op, (left, right), left.pos)

    def negation(self) -> Node:
        token = self.peek()
        if token.word() != "not":
            return self.predicate()
        self.take()
        self.enter(token)
        operand = self.negation()
        self.nesting -= 1
        return self.node("not", (operand,), token.pos)

    def predicate(self) -> Node:
        left = self.sum()
        token = self.peek()
        if token.kind == "op" and token.text in COMPARISONS:
            self.take()
            return self.node("compare", (left, self.sum()), token.pos, token.text)
        if token.word() == "is":
            self.take()
            negated = self.peek().word() == "not"
            if negated:
                self.take()
            if self.peek().word() != "null":
                raise self.fail(
                    f"expected 'null' after 'is{' not' if negated else ''}', found {self.peek().shown()}",
                    self.peek().pos,
                )
            self.take()
            return self.node("isnull", (left,), token.pos, negated)
        negated = token.word() == "not" and self.peek(1).word() in ("in", "between", "like")
        if negated:
            self.take()
            token = self.peek()
        word = token.word()
        if word == "in":
            self.take()
            opening = self.take()
            if opening.text != "(" or opening.kind != "op":
                raise self.fail(f"expected '(' after 'in', found {opening.shown()}", opening.pos)
            self.enter(opening)
            items = [self.sum()]
            while self.peek().text == "," and self.peek().kind == "op":
                self.take()
                items.append(self.sum())
            self.close(opening)
            return self.node("in", (left, *items), token.pos, negated)
        if word == "between":
            self.take()
            low = self.sum()
            if self.peek().word() != "and":
                raise self.fail(
                    f"expected 'and' in 'between ... and ...', found {self.peek().shown()}", self.peek().pos
                )
            self.take()
            return self.node("between", (left, low, self.sum()), token.pos, negated)
        if word == "like":
            self.take()
            return self.node("like", (left, self.sum()), token.pos, negated)
        return left

    def sum(self) -> Node:
        node = self.product()
        while self.peek().kind == "op" and self.peek().text in ("+", "-"):
            token = self.take()
            node = self.node(token.text, (node, self.product()), token.pos)
        return node

    def product(self) -> Node:
        node = self.unary()
        while self.peek().kind == "op" and self.peek().text in ("*", "/", "%"):
            token = self.take()
            node = self.node(token.text, (node, self.unary()), token.pos)
        return node

    def unary(self) -> Node:
        token = self.peek()
        if token.kind != "op" or token.text not in ("-", "+"):
            return self.primary()
        self.take()
        self.enter(token)
        operand = self.unary()
        self.nesting -= 1
        return self.node("neg", (operand,), token.pos) if token.text == "-" else self.node("pos", (operand,), token.pos)

    def primary(self) -> Node:
        token = self.take()
        if token.kind in ("number", "string"):
            return self.node("literal", (), token.pos, token.value)
        if token.kind == "op" and token.text == "(":
            self.enter(token)
            node = self.condition()
            self.close(token)
            return node
        word = token.word()
        if word in ("true", "false", "null"):
            return self.node("literal", (), token.pos, {"true": True, "false": False, "null": None}[word])
        if token.kind == "name" and word not in KEYWORDS:
            if self.peek().text == "(" and self.peek().kind == "op":
                if word not in FUNCTIONS:
                    raise self.fail(f"unknown function {quote(token.text)} (the only function is abs)", token.pos)
                opening = self.take()
                self.enter(opening)
                argument = self.condition()
                self.close(opening)
                return self.node("abs", (argument,), token.pos)
            return self.node("field", (), token.pos, token.text)
        if token.kind == "end":
            raise self.fail("unexpected end of the filter (a value is missing)", token.pos)
        raise self.fail(f"expected a value, found {token.shown()}", token.pos)


def field_names(node: Node | None) -> dict[str, int]:
    """The fields a filter uses, each with the position of its first use."""
    names: dict[str, int] = {}
    stack = [node] if node is not None else []
    while stack:
        current = stack.pop()
        if current.op == "field":
            names[current.value] = min(names.get(current.value, current.pos), current.pos)
        stack.extend(current.args)
    return names


def conjuncts(node: Node | None) -> list[Node]:
    """The parts of a filter joined by top-level ``and`` (the whole filter if there is none)."""
    if node is None:
        return []
    if node.op != "and":
        return [node]
    return [part for arg in node.args for part in conjuncts(arg)]


def all_of(parts: list[Node]) -> Node | None:
    """``a and b and ...`` as a balanced tree (None for no part)."""
    if not parts:
        return None
    if len(parts) == 1:
        return parts[0]
    left, right = all_of(parts[: len(parts) // 2]), all_of(parts[len(parts) // 2 :])
    assert left is not None and right is not None
    return Node("and", (left, right), left.pos, None, 1 + max(left.depth, right.depth))
