"""The input files of an import: finding them, and the error for files that cannot be imported.

A leaf of the import stage (no reader, no heavy library), so that every import protocol, and the other
stages' imports of per-tilt files, may use it at module level.
"""

from __future__ import annotations

import glob
import re
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


#: the fields of a name pattern for one image per tilt, and what each matches
NAME_FIELDS = {"TS": r"(?P<TS>.+?)", "TO": r"(?P<TO>\d+)", "TA": r"(?P<TA>[-+]?\d+(?:\.\d*)?)"}


def is_name_pattern(pattern: str) -> bool:
    """Whether ``pattern`` names one image per tilt with fields (``{TS}``, ``{TO}``, ``{TA}``)."""
    return any("{" + field + "}" in pattern for field in NAME_FIELDS)


def name_regex(pattern: str) -> re.Pattern[str]:
    """The regular expression of a name pattern: ``{TS}`` the tilt-series name, ``{TO}`` the acquisition
    order (digits), ``{TA}`` the tilt angle (a signed decimal), ``*`` anything; the rest literal."""
    parts = re.split(r"(\{TS\}|\{TO\}|\{TA\}|\*)", pattern)
    out: list[str] = []
    for part in parts:
        if part.startswith("{") and part[1:-1] in NAME_FIELDS:
            if f"(?P<{part[1:-1]}>" in "".join(out):
                raise ImportFileError(f"pattern: {pattern!r} names {part} twice")
            out.append(NAME_FIELDS[part[1:-1]])
        elif part == "*":
            out.append(".*?")
        else:
            out.append(re.escape(part))
    return re.compile("".join(out) + r"\Z")


def images_by_series(directory: str, pattern: str) -> dict[str, list[tuple[str, int | None, float]]]:
    """The files of a folder named by a name pattern, grouped into tilt series.

    Parameters
    ----------
    directory : str
        The folder (``~`` expanded).
    pattern : str
        A name pattern with ``{TA}`` and optionally ``{TS}`` and ``{TO}``, e.g. ``{TS}_{TO}_{TA}.mrc``.

    Returns
    -------
    dict
        Tilt-series name (``{TS}``, or the folder's name without it) -> [(file, order or None, angle in
        degrees)], sorted by order, else by angle.

    Raises
    ------
    ImportFileError
        A folder that is not one, a pattern without ``{TA}``, or no file that matches it.
    """
    if "{TA}" not in pattern:
        raise ImportFileError(f"pattern: {pattern!r} needs a {{TA}} (tilt angle) field to name one image per tilt")
    folder = Path(directory).expanduser()
    if not folder.is_dir():
        raise ImportFileError(f"files_path: {folder} is not a folder")
    regex = name_regex(pattern)
    groups: dict[str, list[tuple[str, int | None, float]]] = {}
    for path in sorted(folder.iterdir()):
        match = regex.match(path.name)
        if not match or not path.is_file():
            continue
        fields = match.groupdict()
        name = fields.get("TS") or folder.resolve().name
        order = int(fields["TO"]) if fields.get("TO") else None
        groups.setdefault(name, []).append((str(path.resolve()), order, float(fields["TA"])))
    if not groups:
        raise ImportFileError(f"files_path: no file in {folder} matches the name pattern {pattern!r}")
    for images in groups.values():
        images.sort(key=lambda image: (image[1] if image[1] is not None else 0, image[2]))
    return groups
