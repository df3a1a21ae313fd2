"""Watching an acquisition folder: which tilt-series mdocs are complete, and since when nothing changed.

A tilt series is complete when

- its mdoc has not changed (size and modification time) for ``settle_s`` seconds and reads as an mdoc
  (a stable mdoc that does not read is handed on: the import then fails on it with the reader's error);
- it lists at least ``tilts_per_series`` tilts (when that is given: the safest rule, since an
  acquisition may pause longer than ``settle_s`` between tilts);
- every movie its sections name (``SubFramePath``) exists, is not empty and has not changed for
  ``settle_s`` seconds (it has stopped growing).

Everything is measured with a monotonic clock from what this process observed; a file first seen
counts as just changed, so nothing is accepted before ``settle_s`` of observation. Every file of a
pending tilt series is looked at on every scan, so once nothing has changed for ``settle_s``
(``idle_s() >= settle_s``) the next scan accepts every tilt series whose files are all there.
"""

from __future__ import annotations

import glob
import time
from collections.abc import Callable
from pathlib import Path

from tomoforge.io.errors import FormatError
from tomoforge.io.mdoc import Mdoc, read_mdoc
from tomoforge.protocols.imports.mdoc import ImportFileError, frames_path

Clock = Callable[[], float]


class FileClock:
    """How long each file has stayed unchanged, and when anything last changed (seconds, monotonic)."""

    def __init__(self, clock: Clock = time.monotonic):
        self.clock = clock
        self.last_change = clock()
        self._seen: dict[Path, tuple[tuple[int, int], float]] = {}

    def stable_for(self, path: Path) -> tuple[float, int] | None:
        """(seconds unchanged, size in bytes), or None when the file does not exist."""
        try:
            stat = path.stat()
        except FileNotFoundError:
            self._seen.pop(path, None)
            return None
        key, now = (stat.st_size, stat.st_mtime_ns), self.clock()
        old = self._seen.get(path)
        if old is None or old[0] != key:
            self._seen[path] = (key, now)
            self.last_change = now
            return 0.0, stat.st_size
        return now - old[1], stat.st_size


class MdocWatcher:
    """The mdocs matching ``pattern`` in ``folder`` that became complete (see the module docstring)."""

    def __init__(
        self,
        folder: Path,
        pattern: str,
        frames_dir: Path | None,
        settle_s: float,
        tilts_per_series: int = 0,
        clock: Clock = time.monotonic,
    ):
        self.folder, self.pattern, self.frames_dir = Path(folder), pattern, frames_dir
        self.settle_s, self.tilts_per_series = settle_s, tilts_per_series
        self.files = FileClock(clock)
        self.accepted: set[Path] = set()
        self.pending: dict[Path, str] = {}  # mdoc -> why it is not complete yet
        self._parsed: dict[Path, tuple[float, Mdoc | FormatError]] = {}

    def idle_s(self) -> float:
        """Seconds since a watched file last appeared or changed."""
        return self.files.clock() - self.files.last_change

    def scan(self) -> list[Path]:
        """The mdocs complete now that were not returned before (sorted by name)."""
        complete = []
        for name in sorted(glob.glob(str(self.folder / self.pattern))):
            mdoc = Path(name).resolve()
            if mdoc in self.accepted or not mdoc.is_file():
                continue
            why = self._incomplete(mdoc)
            if why:
                self.pending[mdoc] = why
            else:
                self.pending.pop(mdoc, None)
                self.accepted.add(mdoc)
                complete.append(mdoc)
        return complete

    def _incomplete(self, path: Path) -> str:
        """Why ``path``'s tilt series is not complete yet ('' when it is)."""
        observed = self.files.stable_for(path)
        if observed is None:
            return "the mdoc disappeared"
        age, _ = observed
        parsed = self._read(path, age)
        if isinstance(parsed, FormatError):
            return f"the mdoc does not read yet ({parsed})" if age < self.settle_s else ""
        n = len(parsed.sections) if parsed.section_key == "ZValue" else 0
        problems = self._movie_problems(parsed, n)  # looked at every time, so that their clocks start early
        if self.tilts_per_series and n < self.tilts_per_series:
            return f"{n} of {self.tilts_per_series} tilts in the mdoc"
        if age < self.settle_s:
            return f"{n} tilts; the mdoc changed {age:.1f} s ago"
        if problems:
            return f"{n} tilts; {problems[0]}" + (f" (+{len(problems) - 1} more)" if len(problems) > 1 else "")
        return ""

    def _movie_problems(self, mdoc: Mdoc, n: int) -> list[str]:
        """What is wrong with the movies of the first ``n`` sections: missing ones first, then unsettled ones."""
        missing, growing = [], []
        for i in range(n):
            try:
                movie = frames_path(mdoc, i, self.frames_dir)
            except ImportFileError:
                missing.append(f"the movie of [ZValue = {i}] ({mdoc.sections[i].get('SubFramePath')}) is missing")
                continue
            seen = self.files.stable_for(movie)
            if seen is None or seen[1] == 0 or seen[0] < self.settle_s:
                growing.append(f"movie {movie.name} is empty or still growing")
        return missing + growing

    def _read(self, path: Path, age: float) -> Mdoc | FormatError:
        """The mdoc, read again only when it changed (``age`` 0 means it just did)."""
        cached = self._parsed.get(path)
        if cached is None or age == 0.0 or cached[0] > age:
            try:
                value: Mdoc | FormatError = read_mdoc(path)
            except FormatError as exc:
                value = exc
            cached = self._parsed[path] = (age, value)
        return cached[1]
