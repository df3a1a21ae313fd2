"""What every command shares: the console, the error exit, opening the project, the top-level guard.

User text (filters, labels, paths, error messages) is never read as rich markup: the console has
markup off, and colour comes only from ``styled`` pieces built here. A user's mistake ends in one
line and exit code 2; a failed run in exit code 1; only ``--debug`` shows a traceback.
"""

from __future__ import annotations

import functools
import time
import traceback
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

import click
import typer
from pydantic import ValidationError
from rich.console import Console
from rich.table import Table
from rich.text import Text

from tomoforge.errors import UserError, describe_validation_error

if TYPE_CHECKING:
    from tomoforge.engine.project import Project

console = Console(soft_wrap=True, markup=False, highlight=False)
error_console = Console(soft_wrap=True, markup=False, highlight=False, stderr=True)
state: dict[str, Any] = {"project": None, "debug": False}

USAGE_ERROR = 2  # the command or its input was wrong: nothing ran
RUN_FAILED = 1  # a run ran and failed (or an internal error)


def styled(*parts: str | tuple[str, str]) -> Text:
    """Plain strings stay plain (never markup); ``(text, style)`` pairs are coloured."""
    return Text.assemble(*parts)


class CommandError(UserError):
    """A usage error found by the CLI itself."""


def fail(message: str, code: int = USAGE_ERROR) -> NoReturn:
    """Print ``error: message`` (as plain text) and exit with ``code``."""
    error_console.print(styled(("error: ", "red"), message))
    raise SystemExit(code)


def open_project() -> Project:
    from tomoforge.engine.project import Project

    return Project.open(state["project"] or Path.cwd())


def duration(row: Any) -> str:
    if not row["started"]:
        return ""
    seconds = (row["finished"] or time.time()) - row["started"]
    return f"{seconds:.1f} s" if seconds < 120 else f"{seconds / 60:.1f} min"


def runs_table(project: Project) -> Table:
    """The run table: state (coloured), duration and outputs of every run."""
    table = Table("run", "protocol", "label", "state", "duration", "outputs")
    for row in project.runs():
        outputs = ", ".join(
            f"{s.name} ({len(s)}{'' if s.is_closed else ', open'})" for s in project.output_sets(row["id"])
        )
        colour = {"finished": "green", "failed": "red", "running": "cyan", "aborted": "yellow"}.get(row["state"], "")
        table.add_row(
            str(row["id"]), row["protocol"], row["label"], Text(row["state"], style=colour), duration(row), outputs
        )
    return table


def parse_run_id(run: str) -> int:
    """A run number as typed; a clear error for anything else (no OverflowError for 10**30)."""
    text = run.strip()
    if not text.isdigit() or len(text) > 18:
        raise CommandError(f"{run!r} is not a run number (a whole number, as 'tomoforge runs' shows)")
    return int(text)


@contextmanager
def user_errors() -> Iterator[None]:
    """A user's mistake is one line and exit 2; a bug says how to see its traceback (exit 1)."""
    try:
        yield
    except (SystemExit, click.exceptions.Exit, click.ClickException, click.exceptions.Abort):
        raise
    except (UserError, ValidationError) as exc:
        if state["debug"]:
            traceback.print_exc()
        fail(describe_validation_error(exc) if isinstance(exc, ValidationError) else str(exc))
    except KeyboardInterrupt:
        error_console.print("interrupted")
        raise SystemExit(130) from None
    except Exception as exc:  # noqa: BLE001 - the last guard: never a bare traceback for the user
        if state["debug"]:
            traceback.print_exc()
        else:
            error_console.print(
                styled(
                    ("internal error: ", "red"),
                    f"{type(exc).__name__}: {exc}",
                    "\n(a bug in tomoforge: run the same command with --debug for the traceback, and report it)",
                )
            )
        raise SystemExit(RUN_FAILED) from None


class GuardedTyper(typer.Typer):
    """A Typer whose every command runs under ``user_errors``."""

    # Forwards typer's arguments unchanged, so it does not repeat Typer.command's signature.
    def command(self, *args: Any, **kwargs: Any) -> Callable[[Callable[..., Any]], Callable[..., Any]]:  # type: ignore[override]
        register = super().command(*args, **kwargs)

        def decorator(fn: Callable[..., Any]) -> Callable[..., Any]:
            @functools.wraps(fn)
            def guarded(*a: Any, **k: Any) -> Any:
                with user_errors():
                    return fn(*a, **k)

            register(guarded)
            return fn

        return decorator
