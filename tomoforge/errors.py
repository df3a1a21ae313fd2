"""The errors a user can cause, and how a pydantic validation failure is told to a person.

Every error that a user's input can provoke (a bad file, a bad parameter, a refused operation)
derives from ``UserError``: the CLI prints its message on one line and exits with code 1 or 2,
never a traceback (``--debug`` shows it). Anything else escaping to the top is a bug in tomoforge.

This module is a leaf: it imports nothing from the package, so every layer may use it.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from pydantic import ValidationError

MAX_QUOTE = 200  # characters of a user's value quoted in a message


class UserError(Exception):
    """An error caused by the input (files, parameters, commands); its message says what to do."""


class ProjectFileError(UserError):
    """The project database or a run folder holds something tomoforge refuses to read (crafted or damaged)."""


def quote(value: Any, limit: int = MAX_QUOTE) -> str:
    """``repr`` of a value, cut to ``limit`` characters (a file of NUL bytes is not echoed whole)."""
    text = repr(value)
    if len(text) <= limit:
        return text
    return f"{text[:limit]}… ({len(text)} characters)"


_RULES = {
    "greater_than": "must be > {gt}",
    "greater_than_equal": "must be ≥ {ge}",
    "less_than": "must be < {lt}",
    "less_than_equal": "must be ≤ {le}",
    "finite_number": "must be a finite number",
    "extra_forbidden": "unknown field (not one this takes)",
    "missing": "required, not given",
}


def describe_error(error: Mapping[str, Any]) -> str:
    """One pydantic error as ``field: value 'x' RULE`` in plain words (no pydantic URL)."""
    where = ".".join(str(p) for p in error.get("loc", ())) or "value"
    kind = error.get("type", "")
    context = error.get("ctx") or {}
    rule = _RULES.get(kind)
    if rule is not None:
        try:
            rule = rule.format(**context)
        except (KeyError, IndexError):
            rule = error.get("msg", kind)
    else:
        rule = str(error.get("msg", kind))
        rule = rule.removeprefix("Value error, ")
        rule = rule[0].lower() + rule[1:] if rule else kind
    if kind in ("missing", "extra_forbidden"):
        return f"{where}: {rule}"
    value = error.get("input")
    if isinstance(value, float) and not math.isfinite(value):
        shown = str(value)
    else:
        shown = quote(value, 80)
    return f"{where}: {shown} {rule}"


def describe_validation_error(exc: ValidationError, *, limit: int = 5) -> str:
    """All errors of a pydantic ValidationError in plain words, ``; ``-joined (at most ``limit``)."""
    errors = exc.errors()
    lines = [describe_error(e) for e in errors[:limit]]
    if len(errors) > limit:
        lines.append(f"and {len(errors) - limit} more")
    return "; ".join(lines)


def describe_failure(exc: BaseException) -> str:
    """How a failure is told: a user's mistake by its message, a validation error in plain words,
    anything else with its exception type (a bug, whose traceback is kept beside)."""
    if isinstance(exc, ValidationError):
        return f"invalid data: {describe_validation_error(exc)}"
    if isinstance(exc, UserError):
        return str(exc)
    return f"{type(exc).__name__}: {exc}"
