"""Tasks of protocols whose work is all bookkeeping (assign, export of what is already in the database):
the task only confirms its item, so that it is recorded, continued and reported like any other."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from tomoforge.errors import UserError


@dataclass(frozen=True, kw_only=True)
class Named:
    """The job of ``keep_name``: the item's name."""

    name: str


def keep_name(job: Named) -> str:
    """Task that returns the item's name (the protocol's ``collect`` does the work)."""
    return job.name


@dataclass(frozen=True, kw_only=True)
class ExistingFile:
    """The job of ``existing_file``: a file the item needs, and what it is."""

    path: str
    what: str = "file"


class MissingFileError(UserError, FileNotFoundError):
    """A file an item needs is not there."""


def existing_file(job: ExistingFile) -> str:
    """Task that checks the file is there (in the worker, where the run reads it) and returns its path."""
    if not Path(job.path).is_file():
        raise MissingFileError(f"{job.path}: {job.what} not found")
    return job.path


__all__ = ["ExistingFile", "MissingFileError", "Named", "existing_file", "keep_name"]
