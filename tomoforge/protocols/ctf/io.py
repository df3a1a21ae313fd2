"""Import and export per-tilt CTF: IMOD ctfplotter ``.defocus``, CTFFIND output text, RELION 5 star.

A file's rows are matched to the tilt images of the tilt series of the same name: by tilt angle
(nearest nominal angle within a tolerance), by stack order (row ``view`` = position, from 1, among the
tilt images sorted by tilt angle: the stack a file made from tomoforge's stack refers to), or by
acquisition order (row ``view`` = acquisition order). ``auto`` takes the tilt angles where the file
has them for every row, the stack order otherwise. Export numbers views the same way (stack order).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Literal, cast

from tomoforge.engine import InputSpec, Protocol, ProtocolParams, Task, param
from tomoforge.engine.sets import origin_of
from tomoforge.model import TiltSeries
from tomoforge.model.ctf import CTFSeries, CTFTiltImage
from tomoforge.protocols.bookkeeping import Named, keep_name
from tomoforge.protocols.ctf.common import ctf_inputs, tilt_series_named
from tomoforge.protocols.refuse import Refusal, refuse

if TYPE_CHECKING:
    import pandas as pd

Format = Literal["imod", "ctffind", "relion"]
Match = Literal["auto", "tilt-angle", "stack-order", "acquisition-order"]
EXTENSION = {"imod": ".defocus", "ctffind": ".txt", "relion": ".star"}


def _reader(fmt: Format) -> Callable[[str], pd.DataFrame]:
    """The reader of CTF files of format ``fmt`` (imported here: it needs pandas)."""
    from tomoforge.io.ctf import read_ctffind, read_imod_ctf, read_relion_ctf

    readers: dict[str, Callable[[str], pd.DataFrame]] = {
        "imod": read_imod_ctf,
        "ctffind": read_ctffind,
        "relion": read_relion_ctf,
    }
    return readers[fmt]


def _number(x: Any) -> float | None:
    return None if x is None or (isinstance(x, float) and math.isnan(x)) else float(x)


@dataclass(frozen=True, kw_only=True)
class View:
    """A tilt image a CTF file's row may belong to: its acquisition order and nominal tilt (degrees)."""

    order: int
    tilt: float


def match_rows(
    path: str, table: pd.DataFrame, images: list[View], match: Match, tolerance_deg: float
) -> dict[int, int]:
    """{acquisition order: table row} for the tilt images the file has a row for."""
    by_tilt = sorted(images, key=lambda t: t.tilt)
    if match == "auto":
        match = "tilt-angle" if table["tilt_angle_deg"].notna().all() else "stack-order"
    found: dict[int, int] = {}
    for row, r in enumerate(table.itertuples()):
        view, tilt = int(r.view), float(r.tilt_angle_deg)
        image: View | None
        if match == "tilt-angle":
            if math.isnan(tilt):
                raise ValueError(f"{path}: row {row + 1} has no tilt angle to match by")
            image = min(by_tilt, key=lambda t: abs(t.tilt - tilt))
        elif match == "stack-order":
            if not 1 <= view <= len(by_tilt):
                raise ValueError(f"{path}: view {view} is beyond the {len(by_tilt)} tilt images of the series")
            image = by_tilt[view - 1]
        else:
            image = next((t for t in images if t.order == view), None)
            if image is None:
                raise ValueError(f"{path}: view {view}: no tilt image of that acquisition order")
        if not math.isnan(tilt) and abs(image.tilt - tilt) > tolerance_deg:
            raise ValueError(
                f"{path}: view {view} at {tilt:+.2f}° does not match the tilt image "
                f"at {image.tilt:+.2f}° (tolerance {tolerance_deg}°; check the match mode)"
            )
        if image.order in found:
            raise ValueError(
                f"{path}: views {table.view.iloc[found[image.order]]} and {view} both match the "
                f"tilt image at {image.tilt:+.2f}°"
            )
        found[image.order] = row
    return found


@dataclass(frozen=True, kw_only=True)
class ImportCTFJob:
    """The job of ``import_ctf_task``: the file, its format, the tilt images and how rows match them."""

    path: str
    format: Format
    images: list[View]
    match: Match
    tolerance_deg: float


def import_ctf_task(job: ImportCTFJob) -> dict[str, Any]:
    """Task: read one CTF file and match its rows to the tilt images; the entries as plain dicts."""
    from pydantic import ValidationError

    from tomoforge.errors import describe_validation_error
    from tomoforge.protocols.imports.mdoc import ImportFileError

    path, images = job.path, job.images
    if not Path(path).is_file():
        raise FileNotFoundError(f"{path}: CTF file not found")
    table = _reader(job.format)(path)
    found = match_rows(path, table, images, job.match, job.tolerance_deg)
    entries = []
    for image in images:
        if image.order not in found:
            continue
        r = table.iloc[found[image.order]]
        entry = {
            "acquisition_order": image.order,
            "tilt_angle_deg": image.tilt,
            "defocus_u_A": float(r.defocus_u_A),
            "defocus_v_A": float(r.defocus_v_A),
            "astigmatism_angle_deg": float(r.astigmatism_angle_deg),
            "phase_shift_deg": float(r.phase_shift_deg),
            "fit_resolution_A": _number(r.fit_resolution_A),
            "score": _number(r.score),
        }
        try:
            CTFTiltImage(**entry)
        except ValidationError as exc:
            raise ImportFileError(
                f"{path}: row {found[image.order] + 1} (view {r.view}): {describe_validation_error(exc)}"
            ) from None
        entries.append(entry)
    return {"entries": entries, "missing": [i.order for i in images if i.order not in found]}


class ImportCTFParams(ProtocolParams):
    files_path: str = param(..., help="folder of files named <tilt series name><extension>, or one file")
    format: Format = param("imod", help="IMOD ctfplotter .defocus, CTFFIND output text or RELION star")
    extension: str = param("", help="file name after the tilt series name (default .defocus / .txt / .star)")
    match: Match = param("auto", help="how rows are matched to tilt images (auto: tilt angles where the file has them)")
    angle_tolerance_deg: float = param(1.0, gt=0, unit="deg", help="a row's tilt angle may differ this much")


class ImportCTF(Protocol):
    """Import CTF: per-tilt defocus from IMOD .defocus, CTFFIND text or RELION star files."""

    name = "import-ctf"
    label = "import CTF"
    Params = ImportCTFParams
    inputs: ClassVar = {"tilt_series": InputSpec(TiltSeries, help="tilt series the files belong to")}
    outputs: ClassVar = {"ctf": CTFSeries}

    def file_for(self, name: str, many: bool) -> Path:
        p = self.params
        root = Path(p.files_path)
        if root.is_file():
            if many:
                raise ValueError(f"{root}: one file given for several tilt series; give the folder instead")
            return root
        return root / f"{name}{p.extension or EXTENSION[p.format]}"

    def tasks(self) -> Iterator[Task[Any]]:
        p: ImportCTFParams = self.params
        series = self.input("tilt_series")
        many = len(series.keys()) > 1
        for ts in cast("Iterator[TiltSeries]", iter(series)):
            job = ImportCTFJob(
                path=str(self.file_for(ts.name, many)),
                format=p.format,
                images=[View(order=t.acquisition_order, tilt=t.tilt_angle_deg) for t in ts.tilt_images],
                match=p.match,
                tolerance_deg=p.angle_tolerance_deg,
            )
            yield Task(import_ctf_task, job, key=ts.name, origin=(origin_of(series, ts.name),))

    def collect(self, task: Task[Any], result: dict[str, Any]) -> None:
        if result["missing"]:
            self.log(f"{task.key}: no CTF in the file for views {result['missing']} (acquisition order)")
        self.log(f"{task.key}: {len(result['entries'])} CTF entries imported")
        entries = [CTFTiltImage(**e) for e in result["entries"]]
        self.emit("ctf", CTFSeries(name=task.key, entries=entries), task)


class ExportCTFParams(ProtocolParams):
    format: Format = param("imod", help="IMOD ctfplotter .defocus, CTFFIND output text or RELION 5 star")
    include_excluded: bool = param(True, help="write excluded entries too (IMOD and CTFFIND files have no flag)")


def ctf_table(ctf: CTFSeries, include_excluded: bool, doses: dict[int, float] | None = None) -> pd.DataFrame:
    """The common CTF table of a series, rows in tilt order, ``view`` = position among all its entries."""
    import pandas as pd

    ordered = sorted(ctf.entries, key=lambda e: e.tilt_angle_deg)
    rows = [
        {
            "view": i + 1,
            "tilt_angle_deg": e.tilt_angle_deg,
            "defocus_u_A": e.defocus_u_A,
            "defocus_v_A": e.defocus_v_A,
            "astigmatism_angle_deg": e.astigmatism_angle_deg,
            "phase_shift_deg": e.phase_shift_deg,
            "fit_resolution_A": math.nan if e.fit_resolution_A is None else e.fit_resolution_A,
            "score": math.nan if e.score is None else e.score,
            "acquisition_order": e.acquisition_order,
        }
        for i, e in enumerate(ordered)
        if include_excluded or not e.excluded
    ]
    table = pd.DataFrame(rows)
    if doses is not None and len(table):
        table["pre_exposure_e_A2"] = [doses.get(o, 0.0) for o in table["acquisition_order"]]
    return table


class ExportCTF(Protocol):
    """Export CTF: write each CTF series as an IMOD .defocus, CTFFIND text or RELION 5 tilt-series star."""

    name = "export-ctf"
    label = "export CTF"
    Params = ExportCTFParams
    inputs: ClassVar = ctf_inputs("CTF series to write", "their tilt series (optics for CTFFIND, doses for RELION)")
    outputs: ClassVar = {"ctf": CTFSeries}

    def tasks(self) -> Iterator[Task[Any]]:
        ctfs = self.input("ctf")
        for ctf in cast("Iterator[CTFSeries]", iter(ctfs)):
            origin = (origin_of(ctfs, ctf.name),)
            if self.params.format == "ctffind" and tilt_series_named(self, ctf.name) is None:
                why = (
                    f"{ctf.name}: CTFFIND text needs its tilt series (pixel size, voltage, Cs, "
                    "amplitude contrast): set the tilt_series input"
                )
                yield Task(refuse, Refusal(message=why), key=ctf.name, origin=origin)
            else:
                yield Task(keep_name, Named(name=ctf.name), key=ctf.name, origin=origin)

    def collect(self, task: Task[Any], result: str) -> None:
        from tomoforge.io.ctf import write_ctffind, write_imod_ctf, write_relion_ctf

        p: ExportCTFParams = self.params
        ctf = cast(CTFSeries, self.input("ctf").get(task.key))
        ts = tilt_series_named(self, task.key)
        doses = {t.acquisition_order: t.accumulated_dose_e_A2 for t in ts.tilt_images} if ts else None
        table = ctf_table(ctf, p.include_excluded, doses)
        path = self.out_path(f"{ctf.name}{EXTENSION[p.format]}")
        if p.format == "imod":
            write_imod_ctf(table, path, overwrite=True)
        elif p.format == "relion":
            write_relion_ctf(table, path, ctf.name, overwrite=True)
        else:
            assert ts is not None
            a = ts.acquisition
            write_ctffind(
                table,
                path,
                a.pixel_size_A,
                a.voltage_kV,
                a.spherical_aberration_mm,
                a.amplitude_contrast,
                overwrite=True,
            )
        self.log(f"{ctf.name}: wrote {path.name} ({len(table)} views)")
        self.emit("ctf", ctf, task)
