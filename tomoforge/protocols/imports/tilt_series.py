"""Importing tilt series (mdocs and their image stacks) and tilt-series movies (mdocs and their frame movies).

The science is in ``mdoc`` (an mdoc -> a TiltSeries) and ``watch`` (which tilt series of an acquisition folder
are complete): both are imported where they are used, so that this module loads without the mdoc reader (pandas).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from pydantic import model_validator

from tomoforge.engine import Protocol, ProtocolParams, Task, param
from tomoforge.model import TiltSeries, TiltSeriesMovie
from tomoforge.model.quantities import (
    AmplitudeContrast,
    AngleDeg,
    DosePerTiltEA2,
    PixelSizeA,
    SphericalAberrationMM,
    VoltageKV,
)
from tomoforge.protocols.imports.files import ImportFileError, matching_files

if TYPE_CHECKING:
    from tomoforge.protocols.imports.watch import MdocWatcher


class MdocImportParams(ProtocolParams):
    """The tutorials' import form: where the mdocs are and what to take from them."""

    files_path: str = param(..., help="folder holding the .mdoc files")
    pattern: str = param("*.mdoc", help="file name pattern of the mdocs, e.g. TS_*.mrc.mdoc")
    mdoc_format: Literal["auto", "serialem", "tomo5"] = param("auto", help="who wrote the mdocs")
    voltage_kV: VoltageKV | None = param(None, unit="kV", help="override the mdoc's voltage")
    spherical_aberration_mm: SphericalAberrationMM = param(2.7, unit="mm", help="spherical aberration Cs")
    amplitude_contrast: AmplitudeContrast = param(0.1, unit="fraction", help="amplitude contrast")
    pixel_size_A: PixelSizeA | None = param(None, unit="Å/px", help="override the mdoc's PixelSpacing")
    tilt_axis_angle_deg: AngleDeg | None = param(None, unit="deg", help="override the tilt axis angle (from Y, CCW)")
    dose_per_tilt_e_A2: DosePerTiltEA2 | None = param(None, unit="e/Å²", help="override ExposureDose of every tilt")

    def overrides(self) -> dict[str, Any]:
        return self.model_dump(exclude={"files_path", "pattern", "mdoc_format"})


class ImportTiltSeries(Protocol):
    """Import tilt series: mdoc files and the image stacks beside them."""

    name = "import-tilt-series"
    Params = MdocImportParams
    outputs = {"tilt_series": TiltSeries}
    params: MdocImportParams

    def tasks(self) -> Iterator[Task[MdocJob]]:
        for mdoc in matching_files(self.params.files_path, self.params.pattern):
            yield Task(import_mdoc_task, MdocJob(mdoc=str(mdoc), params=self.params), key=mdoc.name)

    def collect(self, task: Task[Any], result: TiltSeries) -> None:
        self.emit("tilt_series", result, task)


STREAMING_FIELDS = ("streaming", "settle_s", "tilts_per_series", "stream_timeout_s", "stop_file")


class MovieImportParams(MdocImportParams):
    frames_path: str = param("", help="folder of the frame movies ('' = beside the mdoc, or its frames/)")
    gain_file: str = param("", help="gain reference (MRC or TIFF) to multiply the frames by")
    streaming: bool = param(
        False,
        help="watch files_path during an acquisition: import each tilt series as soon as "
        "it is complete, until stream_timeout_s without new data or a stop",
    )
    settle_s: float = param(30.0, gt=0, unit="s", help="streaming: an mdoc or movie unchanged this long is complete")
    tilts_per_series: int = param(0, ge=0, help="streaming: a tilt series needs this many tilts (0: any number)")
    stream_timeout_s: float = param(
        1800.0, gt=0, unit="s", help="streaming: end the run after this long without a new or changed file"
    )
    stop_file: str = param(
        "",
        help="streaming: once this file exists (relative to files_path), end the run when nothing changed for settle_s",
    )

    @model_validator(mode="after")
    def _gain_exists(self) -> MovieImportParams:
        if self.gain_file and not Path(self.gain_file).is_file():
            raise ValueError(f"gain_file: {self.gain_file} does not exist")
        if self.streaming and self.stream_timeout_s <= self.settle_s:
            raise ValueError(
                f"stream_timeout_s ({self.stream_timeout_s:g} s) must exceed settle_s "
                f"({self.settle_s:g} s), or no tilt series could ever settle before the end"
            )
        return self

    def overrides(self) -> dict[str, Any]:
        values = super().overrides()
        for name in ("frames_path", *STREAMING_FIELDS):
            values.pop(name)
        values["gain_file"] = str(Path(self.gain_file).resolve()) if self.gain_file else ""
        return values


@dataclass(frozen=True, kw_only=True)
class MdocJob:
    """The job of ``import_mdoc_task``: one mdoc and the import's params (``MovieImportParams``: its movies)."""

    mdoc: str
    params: MdocImportParams


def import_mdoc_task(job: MdocJob) -> TiltSeries:
    """Task: one mdoc -> its tilt series (the files are checked, nothing is written).

    Parameters
    ----------
    job : MdocJob
        The mdoc and the import's params: ``MdocImportParams`` imports the images of the stack beside the mdoc,
        ``MovieImportParams`` the frame movie of each tilt (its ``frames_path`` and ``gain_file``).

    Returns
    -------
    TiltSeries
        A TiltSeries, or a TiltSeriesMovie with ``MovieImportParams``.

    Raises
    ------
    ImportFileError
        An mdoc, stack, movie or gain reference that cannot be imported (naming the file, line and key).
    """
    from tomoforge.protocols.imports.mdoc import tilt_series_from_mdoc

    p = job.params
    frames = (p.frames_path or None) if isinstance(p, MovieImportParams) else None
    movies = isinstance(p, MovieImportParams)
    return tilt_series_from_mdoc(job.mdoc, p.overrides(), movies=movies, frames_dir=frames, mdoc_format=p.mdoc_format)


class ImportTiltSeriesMovies(Protocol):
    """Import tilt-series movies: mdoc files and the frame movies they name (SubFramePath).

    With ``streaming``, the run watches ``files_path`` (see ``watch``): each tilt series is imported
    and committed to the open output as soon as it is complete, so motion correction and the steps
    after it can follow during the acquisition. The run ends (output closed) after
    ``stream_timeout_s`` without a new or changed file, ``settle_s`` after the last change once
    ``stop_file`` exists, or at once on ``tomoforge stop``; tilt series still incomplete then are
    listed in the log (a WARNING line each), not imported.
    """

    name = "import-tilt-series-movies"
    Params = MovieImportParams
    outputs = {"tilt_series": TiltSeriesMovie}
    params: MovieImportParams
    _watcher: MdocWatcher | None = None

    def task_for(self, mdoc: Path) -> Task[MdocJob]:
        return Task(import_mdoc_task, MdocJob(mdoc=str(mdoc), params=self.params), key=mdoc.name)

    def tasks(self) -> Iterator[Task[MdocJob]]:
        if not self.params.streaming:
            for mdoc in matching_files(self.params.files_path, self.params.pattern):
                yield self.task_for(mdoc)
            return
        for mdoc in self.watcher().scan():
            self.log(f"{mdoc.name}: complete")
            yield self.task_for(mdoc)

    def collect(self, task: Task[Any], result: TiltSeriesMovie) -> None:
        self.emit("tilt_series", result, task)

    # --- streaming --------------------------------------------------------------------------
    def watcher(self) -> MdocWatcher:
        """The watcher of ``files_path`` (made, and its rules logged, on first use)."""
        from tomoforge.protocols.imports.watch import MdocWatcher

        if self._watcher is None:
            p = self.params
            folder = Path(p.files_path).expanduser()
            if not folder.is_dir():
                raise ImportFileError(f"files_path: {folder} is not a folder")
            frames = Path(p.frames_path).expanduser() if p.frames_path else None
            self._watcher = MdocWatcher(folder, p.pattern, frames, p.settle_s, p.tilts_per_series)
            self.log(
                f"watching {folder}/{p.pattern}: complete after {p.settle_s:g} s unchanged"
                + (f" with {p.tilts_per_series} tilts" if p.tilts_per_series else "")
                + f"; ends after {p.stream_timeout_s:g} s without new data"
            )
        return self._watcher

    def source_open(self) -> bool:
        p = self.params
        if not p.streaming:
            return False
        idle = self.watcher().idle_s()
        if p.stop_file and (Path(p.files_path).expanduser() / p.stop_file).exists():
            return idle < p.settle_s  # the acquisition is over: end once what is there has settled
        return idle < p.stream_timeout_s

    def stream_ended(self, reason: str) -> None:
        watcher = self.watcher()
        for mdoc, why in sorted(watcher.pending.items()):
            self.log(f"WARNING: {mdoc.name} not imported: incomplete when the stream ended ({why})")
        self.log(
            f"{len(watcher.accepted)} tilt series complete, {len(watcher.pending)} incomplete"
            f" ({reason}; {watcher.idle_s():.0f} s since the last new data)"
        )
