"""Import and export per-tilt CTF: IMOD ctfplotter ``.defocus``, CTFFIND output text, RELION 5 star.

A file's rows are matched to the tilt images of the tilt series of the same name: by tilt angle
(nearest nominal angle within a tolerance), by stack order (row ``view`` = position, from 1, among the
tilt images sorted by tilt angle: the stack a file made from tomoforge's stack refers to), or by
acquisition order (row ``view`` = acquisition order). ``auto`` takes the tilt angles where the file
has them for every row, the stack order otherwise. Export numbers views the same way (stack order).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd
from pydantic import ValidationError

from tomoforge.engine import InputSpec, Protocol, ProtocolParams, Task, param
from tomoforge.engine.sets import origin_of
from tomoforge.errors import describe_validation_error
from tomoforge.io.ctf import (
    read_ctffind,
    read_imod_ctf,
    read_relion_ctf,
    write_ctffind,
    write_imod_ctf,
    write_relion_ctf,
)
from tomoforge.model import TiltSeries
from tomoforge.model.ctf import CTFSeries, CTFTiltImage
from tomoforge.protocols.align.tasks import identity
from tomoforge.protocols.ctf.correct import missing_input
from tomoforge.protocols.imports.mdoc import ImportFileError

Format = Literal["imod", "ctffind", "relion"]
EXTENSION = {"imod": ".defocus", "ctffind": ".txt", "relion": ".star"}
READERS = {"imod": read_imod_ctf, "ctffind": read_ctffind, "relion": read_relion_ctf}


def _number(x: Any) -> float | None:
    return None if x is None or (isinstance(x, float) and math.isnan(x)) else float(x)


def match_rows(
    path: str, table: pd.DataFrame, images: list[dict[str, Any]], match: str, tolerance_deg: float
) -> dict[int, int]:
    """{acquisition order: table row} for the tilt images ({'order', 'tilt'}) the file has a row for."""
    by_tilt = sorted(images, key=lambda t: t["tilt"])
    if match == "auto":
        match = "tilt-angle" if table["tilt_angle_deg"].notna().all() else "stack-order"
    found: dict[int, int] = {}
    for row, r in enumerate(table.itertuples()):
        if match == "tilt-angle":
            if math.isnan(r.tilt_angle_deg):
                raise ValueError(f"{path}: row {row + 1} has no tilt angle to match by")
            image = min(by_tilt, key=lambda t: abs(t["tilt"] - r.tilt_angle_deg))
        elif match == "stack-order":
            if not 1 <= r.view <= len(by_tilt):
                raise ValueError(f"{path}: view {r.view} is beyond the {len(by_tilt)} tilt images of the series")
            image = by_tilt[r.view - 1]
        else:
            image = next((t for t in images if t["order"] == r.view), None)
            if image is None:
                raise ValueError(f"{path}: view {r.view}: no tilt image of that acquisition order")
        if not math.isnan(r.tilt_angle_deg) and abs(image["tilt"] - r.tilt_angle_deg) > tolerance_deg:
            raise ValueError(
                f"{path}: view {r.view} at {r.tilt_angle_deg:+.2f}° does not match the tilt image "
                f"at {image['tilt']:+.2f}° (tolerance {tolerance_deg}°; check the match mode)"
            )
        if image["order"] in found:
            raise ValueError(
                f"{path}: views {table.view.iloc[found[image['order']]]} and {r.view} both match the "
                f"tilt image at {image['tilt']:+.2f}°"
            )
        found[image["order"]] = row
    return found


def import_ctf_task(
    path: str, fmt: str, images: list[dict[str, Any]], match: str, tolerance_deg: float
) -> dict[str, Any]:
    """Task: read one CTF file and match its rows to the tilt images; the entries as plain dicts."""
    if not Path(path).is_file():
        raise FileNotFoundError(f"{path}: CTF file not found")
    table = READERS[fmt](path)
    found = match_rows(path, table, images, match, tolerance_deg)
    entries = []
    for image in images:
        if image["order"] not in found:
            continue
        r = table.iloc[found[image["order"]]]
        entry = {
            "acquisition_order": image["order"],
            "tilt_angle_deg": image["tilt"],
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
                f"{path}: row {found[image['order']] + 1} (view {r.view}): {describe_validation_error(exc)}"
            ) from None
        entries.append(entry)
    return {"entries": entries, "missing": [i["order"] for i in images if i["order"] not in found]}


class ImportCTFParams(ProtocolParams):
    files_path: str = param(..., help="folder of files named <tilt series name><extension>, or one file")
    format: Format = param("imod", help="IMOD ctfplotter .defocus, CTFFIND output text or RELION star")
    extension: str = param("", help="file name after the tilt series name (default .defocus / .txt / .star)")
    match: Literal["auto", "tilt-angle", "stack-order", "acquisition-order"] = param(
        "auto", help="how rows are matched to tilt images (auto: tilt angles where the file has them)"
    )
    angle_tolerance_deg: float = param(1.0, gt=0, unit="deg", help="a row's tilt angle may differ this much")


class ImportCTF(Protocol):
    """Import CTF: per-tilt defocus from IMOD .defocus, CTFFIND text or RELION star files."""

    name = "import-ctf"
    label = "import CTF"
    Params = ImportCTFParams
    inputs = {"tilt_series": InputSpec(TiltSeries, help="tilt series the files belong to")}
    outputs = {"ctf": CTFSeries}

    def file_for(self, name: str, many: bool) -> Path:
        p = self.params
        root = Path(p.files_path)
        if root.is_file():
            if many:
                raise ValueError(f"{root}: one file given for several tilt series; give the folder instead")
            return root
        return root / f"{name}{p.extension or EXTENSION[p.format]}"

    def tasks(self):
        p, series = self.params, self.input("tilt_series")
        many = len(series.keys()) > 1
        for ts in series:
            images = [{"order": t.acquisition_order, "tilt": t.tilt_angle_deg} for t in ts.tilt_images]
            yield Task(
                import_ctf_task,
                (str(self.file_for(ts.name, many)), p.format, images, p.match, p.angle_tolerance_deg),
                key=ts.name,
                origin=(origin_of(series, ts.name),),
            )

    def collect(self, task, result):
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
    ordered = sorted(ctf.entries, key=lambda e: e.tilt_angle_deg)
    rows = [
        {
            "view": i + 1,
            "tilt_angle_deg": e.tilt_angle_deg,
            "defocus_u_A": e.defocus_u_A,
            "defocus_v_A": e.defocus_v_A,
            "astigmatism_angle_deg": e.astigmatism_angle_deg,
            "phase_shift_deg": e.phase_shift_deg,
            "fit_resolution_A": np.nan if e.fit_resolution_A is None else e.fit_resolution_A,
            "score": np.nan if e.score is None else e.score,
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
    inputs = {
        "ctf": InputSpec(CTFSeries, help="CTF series to write"),
        "tilt_series": InputSpec(
            TiltSeries, optional=True, help="their tilt series (optics for CTFFIND, doses for RELION)"
        ),
    }
    outputs = {"ctf": CTFSeries}

    def series_for(self, name: str) -> TiltSeries | None:
        if self.has_input("tilt_series") and name in self.input("tilt_series").keys():
            return self.input("tilt_series").get(name)
        return None

    def tasks(self):
        ctfs = self.input("ctf")
        for ctf in ctfs:
            origin = (origin_of(ctfs, ctf.name),)
            if self.params.format == "ctffind" and self.series_for(ctf.name) is None:
                yield Task(
                    missing_input,
                    (
                        f"{ctf.name}: CTFFIND text needs its tilt series (pixel size, voltage, Cs, "
                        "amplitude contrast): set the tilt_series input",
                    ),
                    key=ctf.name,
                    origin=origin,
                )
            else:
                yield Task(identity, (ctf.name,), key=ctf.name, origin=origin)

    def collect(self, task, result):
        p, ctf = self.params, self.input("ctf").get(task.key)
        ts = self.series_for(task.key)
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
