"""Errors raised by the file-format layer."""
from __future__ import annotations

import os
import tempfile
from pathlib import Path

from tomoforge.errors import UserError


class FormatError(UserError, ValueError):
    """A file does not hold what its format promises; the message names the file and the field."""


def format_error(path: str | os.PathLike | None, detail: str) -> FormatError:
    """Build a FormatError whose message starts with the file name: ``"/x/a.mdoc: detail"``."""
    return FormatError(f"{path}: {detail}" if path is not None else detail)


def check_writable(path: str | os.PathLike, overwrite: bool) -> Path:
    """Return ``path`` as a Path; raise FileExistsError naming it if it exists and not overwrite."""
    path = Path(path)
    if path.exists() and not overwrite:
        raise FileExistsError(f"{path}: exists already (pass overwrite=True to replace it)")
    return path


def write_text_atomic(path: str | os.PathLike, text: str, overwrite: bool = False) -> Path:
    """Write ``text`` (LF line endings) to a temporary file beside ``path`` and rename it into place."""
    path = check_writable(path, overwrite)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", newline="\n", encoding="utf-8") as handle:
            handle.write(text)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def read_text_lines(path: str | os.PathLike) -> list[str]:
    """Lines of a text file (CRLF or LF) without line endings; FormatError if it is not text."""
    try:
        return Path(path).read_text(encoding="utf-8", errors="strict").splitlines()
    except UnicodeDecodeError as exc:
        raise format_error(path, f"not a text file ({exc.reason} at byte {exc.start})") from exc


def parse_number_table(path: str | os.PathLike, ncols: int | None = None,
                       comment: str = "#", what: str = "row") -> list[list[float]]:
    """Parse whitespace/comma separated numbers, skipping blank and comment lines.

    Raises FormatError naming the line on a bad value or a row of the wrong width.
    """
    rows: list[list[float]] = []
    for lineno, raw in enumerate(read_text_lines(path), start=1):
        line = raw.split(comment, 1)[0].strip() if comment else raw.strip()
        if not line:
            continue
        tokens = line.replace(",", " ").split()
        try:
            values = [float(t) for t in tokens]
        except ValueError:
            raise format_error(path, f"line {lineno}: cannot read numbers from {raw.strip()!r}") from None
        if ncols is not None and len(values) != ncols:
            raise format_error(path, f"line {lineno}: {what} has {len(values)} values, expected {ncols}")
        rows.append(values)
    return rows
