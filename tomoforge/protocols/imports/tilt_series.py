"""Import protocols: tilt-series movies and tilt series from mdoc files, tomograms, coordinates."""

from __future__ import annotations

import glob
from pathlib import Path
from typing import Any, Literal

from pydantic import model_validator

from tomoforge.engine import InputSpec, Protocol, ProtocolParams, Task, param
from tomoforge.model import Coordinate3D, TiltSeries, TiltSeriesMovie, Tomogram
from tomoforge.model.quantities import (
    AmplitudeContrast,
    AngleDeg,
    DosePerTiltEA2,
    PixelSizeA,
    SphericalAberrationMM,
    VoltageKV,
    VoxelSizeA,
)
from tomoforge.protocols.imports.coordinates import coordinates_from_file
from tomoforge.protocols.imports.mdoc import ImportFileError, tilt_series_from_mdoc
from tomoforge.protocols.imports.tomograms import tomogram_from_file
from tomoforge.protocols.imports.watch import MdocWatcher


def matching_files(directory: str, pattern: str) -> list[Path]:
    """Files in ``directory`` matching ``pattern`` (sorted); an error naming both if there are none."""
    folder = Path(directory).expanduser()
    if not folder.is_dir():
        raise ImportFileError(f"files_path: {folder} is not a folder")
    found = sorted(Path(p).resolve() for p in glob.glob(str(folder / pattern)) if Path(p).is_file())
    if not found:
        raise ImportFileError(f"files_path: no file in {folder} matches {pattern!r}")
    return found


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


def import_mdoc_task(
    mdoc: str,
    overrides: dict[str, Any],
    movies: bool,
    frames_dir: str,
    mdoc_format: str,
) -> TiltSeries:
    """Task: one mdoc -> its TiltSeries (files checked, nothing written)."""
    return tilt_series_from_mdoc(mdoc, overrides, movies=movies, frames_dir=frames_dir or None, mdoc_format=mdoc_format)


class ImportTiltSeries(Protocol):
    """Import tilt series: mdoc files and the image stacks beside them."""

    name = "import-tilt-series"
    Params = MdocImportParams
    outputs = {"tilt_series": TiltSeries}

    def tasks(self):
        p = self.params
        for mdoc in matching_files(p.files_path, p.pattern):
            yield Task(import_mdoc_task, (str(mdoc), p.overrides(), False, "", p.mdoc_format), key=mdoc.name)

    def collect(self, task, result):
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


class ImportTiltSeriesMovies(Protocol):
    """Import tilt-series movies: mdoc files and the frame movies they name (SubFramePath).

    With ``streaming``, the run watches ``files_path`` (see ``mdoc_watch``): each tilt series is imported
    and committed to the open output as soon as it is complete, so motion correction and the steps
    after it can follow during the acquisition. The run ends (output closed) after
    ``stream_timeout_s`` without a new or changed file, ``settle_s`` after the last change once
    ``stop_file`` exists, or at once on ``tomoforge stop``; tilt series still incomplete then are
    listed in the log (a WARNING line each), not imported.
    """

    name = "import-tilt-series-movies"
    Params = MovieImportParams
    outputs = {"tilt_series": TiltSeriesMovie}
    _watcher: MdocWatcher | None = None

    def task_for(self, mdoc: Path) -> Task:
        p = self.params
        return Task(import_mdoc_task, (str(mdoc), p.overrides(), True, p.frames_path, p.mdoc_format), key=mdoc.name)

    def tasks(self):
        if not self.params.streaming:
            for mdoc in matching_files(self.params.files_path, self.params.pattern):
                yield self.task_for(mdoc)
            return
        for mdoc in self.watcher().scan():
            self.log(f"{mdoc.name}: complete")
            yield self.task_for(mdoc)

    def collect(self, task, result):
        self.emit("tilt_series", result, task)

    # --- streaming --------------------------------------------------------------------------
    def watcher(self) -> MdocWatcher:
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


class TomogramImportParams(ProtocolParams):
    files_path: str = param(..., help="folder holding the tomograms")
    pattern: str = param("*.mrc", help="file name pattern")
    pixel_size_A: VoxelSizeA | None = param(None, unit="Å/voxel", help="override the MRC header's voxel size")


class ImportTomograms(Protocol):
    """Import tomograms: MRC volumes with their voxel size."""

    name = "import-tomograms"
    Params = TomogramImportParams
    outputs = {"tomograms": Tomogram}

    def tasks(self):
        for path in matching_files(self.params.files_path, self.params.pattern):
            yield Task(tomogram_from_file, (str(path), self.params.pixel_size_A), key=path.name)

    def collect(self, task, result):
        self.emit("tomograms", result, task)


class CoordinateImportParams(ProtocolParams):
    files_path: str = param(..., help="folder holding the coordinate files")
    pattern: str = param("*.star", help="file name pattern (.star RELION 5, .tbl Dynamo, other: x y z text)")
    units: Literal["angstrom", "pixel"] = param(
        "angstrom", help="text files: Å from the tomogram centre, or pixels from its corner"
    )
    pixel_size_A: VoxelSizeA | None = param(None, unit="Å/px", help="pixel size of pixel coordinates")
    tomogram: str = param("", help="text/.tbl files: name of the tomogram they belong to ('' = file name)")


class ImportCoordinates(Protocol):
    """Import 3D coordinates: RELION 5 particle star, Dynamo table or plain x y z text."""

    name = "import-coordinates"
    Params = CoordinateImportParams
    inputs = {"tomograms": InputSpec(Tomogram, help="the tomograms the coordinates lie in")}
    outputs = {"coordinates": Coordinate3D}

    def tasks(self):
        tomograms = {t.name: (t.size_xyz, t.pixel_size_A) for t in self.input("tomograms")}
        for path in matching_files(self.params.files_path, self.params.pattern):
            yield Task(coordinates_from_file, (str(path), self.params.model_dump(), tomograms), key=path.name)

    def collect(self, task, result):
        output = self.output("coordinates")
        start = len(output)
        for i, values in enumerate(result):
            output.append(Coordinate3D(number=start + i, **values), origin=task.origin)
