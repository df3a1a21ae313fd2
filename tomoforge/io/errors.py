"""Errors raised by the file-format layer."""

from __future__ import annotations

import math
import os
from pathlib import Path

from tomoforge.errors import UserError, quote
from tomoforge.io.atomic import atomic_path
from tomoforge.model.quantities import PhysicalRange


class FormatError(UserError, ValueError):
    """A file does not hold what its format promises; the message names the file and the field."""


def format_error(path: str | os.PathLike[str] | None, detail: str) -> FormatError:
    """Build a FormatError whose message starts with the file name: ``"/x/a.mdoc: detail"``."""
    return FormatError(f"{path}: {detail}" if path is not None else detail)


def check_writable(path: str | os.PathLike[str], overwrite: bool) -> Path:
    """Return ``path`` as a Path; raise FileExistsError naming it if it exists and not overwrite."""
    path = Path(path)
    if path.exists() and not overwrite:
        raise FileExistsError(f"{path}: exists already (pass overwrite=True to replace it)")
    return path


def write_text_atomic(path: str | os.PathLike[str], text: str, overwrite: bool = False) -> Path:
    """Write ``text`` (LF line endings) whole or not at all (``io.atomic``)."""
    path = check_writable(path, overwrite)
    with atomic_path(path) as tmp, open(tmp, "w", newline="\n", encoding="utf-8") as handle:
        handle.write(text)
    return path


def read_text_lines(path: str | os.PathLike[str]) -> list[str]:
    """Lines of a text file (CRLF or LF) without line endings.

    FormatError naming the line and the byte where the file is not UTF-8 text (a latin-1 'é', a binary
    file) or holds a NUL byte (a copy padded with zeros, a binary file given as text).
    """
    data = Path(path).read_bytes()
    try:
        text = data.decode("utf-8", errors="strict")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        bad = data[exc.start : exc.start + 1].hex()
        raise format_error(
            path,
            f"line {line}, byte {exc.start} (0x{bad}): not UTF-8 text ({exc.reason}); "
            "save the file as UTF-8 (or ASCII)",
        ) from None
    nul = data.find(b"\0")
    if nul >= 0:
        line = data.count(b"\n", 0, nul) + 1
        raise format_error(
            path, f"line {line}, byte {nul}: a NUL byte, so not a text file (a truncated or zero-padded copy?)"
        )
    return text.splitlines()


def parse_number_table(
    path: str | os.PathLike[str],
    ncols: int | None = None,
    comment: str = "#",
    what: str = "row",
    ranges: dict[int, PhysicalRange] | None = None,
) -> list[list[float]]:
    """Parse whitespace/comma separated numbers, skipping blank and comment lines.

    Raises FormatError naming the line on a bad value, a non-finite one (nan, inf), a row of the wrong
    width, or a value of column ``i`` outside ``ranges[i]`` (the range stated).
    """
    rows: list[list[float]] = []
    for lineno, raw in enumerate(read_text_lines(path), start=1):
        line = raw.split(comment, 1)[0].strip() if comment else raw.strip()
        if not line:
            continue
        tokens = line.replace(",", " ").split()
        if not tokens:  # only separators: as blank
            continue
        try:
            values = [float(t) for t in tokens]
        except ValueError:
            raise format_error(path, f"line {lineno}: cannot read numbers from {quote(raw.strip())}") from None
        if ncols is not None and len(values) != ncols:
            raise format_error(path, f"line {lineno}: {what} has {len(values)} values, expected {ncols}")
        if not all(math.isfinite(v) for v in values):
            raise format_error(
                path,
                f"line {lineno}: {what} {quote(raw.strip())} holds a non-finite number "
                "(nan or inf); every value must be a finite number",
            )
        for column, allowed in (ranges or {}).items():
            if column < len(values) and allowed.problem(values[column]):
                raise format_error(
                    path, f"line {lineno}: {what} {_number(values[column])} {allowed.problem(values[column])}"
                )
        rows.append(values)
    return rows


def _number(value: float) -> str:
    return f"{value:g}"
