"""Refusing an item whose output would be empty or meaningless (a tilt series with no included view, nothing
left after an exclusion, an unaligned series to reconstruct): its task fails with a message that says why and
what to try, instead of a crash further on."""

from __future__ import annotations

from dataclasses import dataclass

from tomoforge.errors import UserError


class NothingToProcessError(UserError, ValueError):
    """An item the step cannot work on (every view excluded, too few views for what was asked, not aligned)."""


@dataclass(frozen=True, kw_only=True)
class Refusal:
    """The job of ``refuse``: why the item cannot be processed and what to try."""

    message: str


def refuse(job: Refusal) -> None:
    """Task for an item that cannot be processed: fails it with the job's message (a ``NothingToProcessError``)."""
    raise NothingToProcessError(job.message)


def no_view_message(name: str, what: str) -> str:
    """The message for tilt series ``name`` whose every view is excluded, ``what`` the step's work."""
    return (
        f"tilt series {name}: every view is excluded, nothing to {what}; include views again (exclude-views "
        "with restore, or a new exclude-views run on the series before the exclusion) or leave this series out"
    )


__all__ = ["NothingToProcessError", "Refusal", "no_view_message", "refuse"]
