"""The input files of an import: finding them, and the error for files that cannot be imported.

A leaf of the import stage (no reader, no heavy library), so that every import protocol, and the other
stages' imports of per-tilt files, may use it at module level.
"""

from __future__ import annotations

import glob
from pathlib import Path

from tomoforge.errors import UserError


class ImportFileError(UserError, ValueError):
    """Input files that cannot be imported; the message names the file and the field."""


def matching_files(directory: str, pattern: str) -> list[Path]:
    """The files in a folder that match a pattern.

    Parameters
    ----------
    directory : str
        The folder (``~`` expanded).
    pattern : str
        A glob pattern, e.g. ``*.mdoc``.

    Returns
    -------
    list of Path
        The matching files, resolved and sorted.

    Raises
    ------
    ImportFileError
        If ``directory`` is not a folder, or no file in it matches (the message names both).
    """
    folder = Path(directory).expanduser()
    if not folder.is_dir():
        raise ImportFileError(f"files_path: {folder} is not a folder")
    found = sorted(Path(p).resolve() for p in glob.glob(str(folder / pattern)) if Path(p).is_file())
    if not found:
        raise ImportFileError(f"files_path: no file in {folder} matches {pattern!r}")
    return found
