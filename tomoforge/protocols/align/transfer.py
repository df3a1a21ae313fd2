"""Moving an alignment between tilt series and files: assign (copy from another set of tilt series, by name
and acquisition order), import and export (IMOD .xf/.tlt/.xtilt or AreTomo .aln, views sorted by tilt).
The work is bookkeeping, done in ``collect``; the tasks only confirm the item (or that its file is there)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any, Literal

from tomoforge.engine import InputSpec, Protocol, ProtocolParams, Task, param
from tomoforge.engine.sets import origin_of
from tomoforge.model import TiltSeries
from tomoforge.model.quantities import PixelSizeA
from tomoforge.protocols.align.views import each_series, included, series_named, with_alignment
from tomoforge.protocols.bookkeeping import ExistingFile, Named, existing_file, keep_name

ALIGNMENT_FIELDS = ("x_tilt_deg", "y_tilt_deg", "z_rot_deg", "x_shift_A", "y_shift_A")


def copy_alignment(source: TiltSeries, target: TiltSeries) -> TiltSeries:
    """``target`` with ``source``'s alignment, matched by acquisition order, shifts in Å (so a
    pixel-size change needs no scaling: Å are Å)."""
    by_order = {t.acquisition_order: t for t in source.tilt_images}
    values = {}
    for t in target.tilt_images:
        s = by_order.get(t.acquisition_order)
        if s is None:
            raise ValueError(f"{target.name}: acquisition order {t.acquisition_order} has no alignment in the source")
        values[t.acquisition_order] = {k: getattr(s, k) for k in ALIGNMENT_FIELDS}
    return with_alignment(target, values)


class AssignAlignment(Protocol):
    """Assign alignment: copy the alignment of one set of tilt series onto another (same names)."""

    name = "assign-alignment"
    streaming = True  # a tilt series gets its alignment as soon as both are there (pairs by name)
    inputs = {
        "source": InputSpec(TiltSeries, help="aligned tilt series"),
        "tilt_series": InputSpec(TiltSeries, help="tilt series that receive the alignment"),
    }
    outputs = {"tilt_series": TiltSeries}

    def tasks(self) -> Iterator[Task[Any]]:
        source, target = self.input("source"), self.input("tilt_series")
        names = set(source.keys())
        for ts in each_series(target):
            if ts.name in names:
                origin = (origin_of(target, ts.name), origin_of(source, ts.name))
                yield Task(keep_name, Named(name=ts.name), key=ts.name, origin=origin)

    def collect(self, task: Task[Any], result: str) -> None:
        src, ts = series_named(self.input("source"), task.key), series_named(self.input("tilt_series"), task.key)
        self.emit("tilt_series", copy_alignment(src, ts), task)


class ImportAlignmentParams(ProtocolParams):
    files_path: str = param(..., help="folder holding <name>.xf/.tlt[/.xtilt] (IMOD) or <name>.aln (AreTomo)")
    format: Literal["imod", "aretomo"] = param("imod", help="who wrote the files")
    pixel_size_A: PixelSizeA | None = param(
        None, unit="Å/px", help="pixel size the files were made at (default: the tilt series')"
    )


def read_alignment(path: Path, fmt: str, pixel_size_A: float) -> dict[str, Any]:
    """The alignment in ``path`` (IMOD ``.xf`` with its ``.tlt``/``.xtilt`` beside it when there, or AreTomo
    ``.aln``), one row per view sorted by tilt: ``z_rot_deg``, ``x_shift_A``, ``y_shift_A`` (Å at
    ``pixel_size_A``), and ``y_tilt_deg``/``x_tilt_deg`` (degrees; None when the files hold none); ``dropped``:
    an IMOD file's magnification and skew (``xf_distortion``), which the alignment cannot keep (None for AreTomo)."""
    from tomoforge.io.aretomo import aln_to_projection_model, read_aln
    from tomoforge.io.imod import read_tlt, read_xf, read_xtilt, xf_distortion, xf_to_projection_model

    dropped = None
    if fmt == "imod":
        xf = read_xf(path)
        model = xf_to_projection_model(xf, pixel_size_A)
        dropped = xf_distortion(xf)
        tlt, xtilt = path.with_suffix(".tlt"), path.with_suffix(".xtilt")
        tilts = read_tlt(tlt) if tlt.is_file() else None
        x_tilts = read_xtilt(xtilt) if xtilt.is_file() else None
    else:
        model = aln_to_projection_model(read_aln(path), pixel_size_A)
        tilts, x_tilts = model["y_tilt_deg"], model["x_tilt_deg"]
    return {
        "z_rot_deg": model["z_rot_deg"],
        "x_shift_A": model["x_shift_A"],
        "y_shift_A": model["y_shift_A"],
        "y_tilt_deg": tilts,
        "x_tilt_deg": x_tilts,
        "dropped": dropped,
    }


# A transform that moves a point 1000 px from the centre by more than this when reduced to its rotation
# has a magnification or skew worth telling the user about.
DROPPED_PX_PER_1000 = 1.0


def dropped_distortion_warning(path: Path, dropped: dict[str, Any]) -> str | None:
    """The warning for an IMOD ``.xf`` whose magnification/skew (``xf_distortion``) the import drops, or None."""
    edge = dropped["edge_px_per_1000"]
    if edge.max() <= DROPPED_PX_PER_1000:
        return None
    views = int((edge > DROPPED_PX_PER_1000).sum())
    mag, skew = dropped["magnification"], abs(dropped["skew_deg"]).max()
    return (
        f"WARNING: {path}: {views} of {len(edge)} transforms also scale the view ({mag.min():.4f}–{mag.max():.4f}) "
        f"or skew it (up to {skew:.2f}°), as tiltalign writes when it solves for magnification or skew; "
        f"the alignment keeps rotation and shift only, so a point 1000 px from the centre moves by up to "
        f"{edge.max():.1f} px. Realign without those variables for an exact import."
    )


class ImportAlignment(Protocol):
    """Import an IMOD (.xf/.tlt/.xtilt) or AreTomo (.aln) alignment onto tilt series (sorted by tilt)."""

    name = "import-alignment"
    citations = ("kremer1996",)
    Params = ImportAlignmentParams
    inputs = {"tilt_series": InputSpec(TiltSeries, help="tilt series the files belong to")}
    outputs = {"tilt_series": TiltSeries}
    params: ImportAlignmentParams

    def tasks(self) -> Iterator[Task[Any]]:
        series = self.input("tilt_series")
        ext = ".xf" if self.params.format == "imod" else ".aln"
        for ts in each_series(series):
            job = ExistingFile(path=str(Path(self.params.files_path) / f"{ts.name}{ext}"), what="alignment file")
            yield Task(existing_file, job, key=ts.name, origin=(origin_of(series, ts.name),))

    def collect(self, task: Task[Any], result: str) -> None:
        ts = series_named(self.input("tilt_series"), task.key)
        px = self.params.pixel_size_A or ts.acquisition.pixel_size_A
        views = sorted(included(ts), key=lambda t: t.tilt_angle_deg)
        path = Path(result)
        rows = read_alignment(path, self.params.format, px)
        warning = None if rows["dropped"] is None else dropped_distortion_warning(path, rows["dropped"])
        if warning is not None:
            self.log(f"{ts.name}: {warning}")
        if len(rows["z_rot_deg"]) != len(views):
            raise ValueError(f"{path}: {len(rows['z_rot_deg'])} views, tilt series {ts.name} has {len(views)} included")
        fields = [k for k in ALIGNMENT_FIELDS if rows[k] is not None]
        values = {t.acquisition_order: {k: float(rows[k][i]) for k in fields} for i, t in enumerate(views)}
        self.emit("tilt_series", with_alignment(ts, values), task)


class ExportAlignmentParams(ProtocolParams):
    format: Literal["imod", "aretomo"] = param("imod", help="write IMOD .xf/.tlt/.xtilt or AreTomo .aln")


def export_alignment(ts: TiltSeries, fmt: str, out_base: Path) -> list[Path]:
    """Write the alignment of the included views, sorted by tilt, as ``out_base`` with the format's
    suffixes; returns the files written."""
    import numpy as np

    from tomoforge.io.aretomo import GLOBAL_COLUMNS, AlnFile, write_aln
    from tomoforge.io.imod import projection_model_to_xf, write_tlt, write_xf, write_xtilt

    views = sorted(included(ts), key=lambda t: t.tilt_angle_deg)
    px = ts.acquisition.pixel_size_A
    model = ts.projection_model(views)
    z_rot, tilt, (sx, sy) = model.z_rot_deg, model.tilt_deg, model.shift_A.T
    if fmt == "imod":
        return [
            write_xf(out_base.with_suffix(".xf"), projection_model_to_xf(z_rot, sx, sy, px), overwrite=True),
            write_tlt(out_base.with_suffix(".tlt"), tilt, overwrite=True),
            write_xtilt(out_base.with_suffix(".xtilt"), model.x_tilt_deg, overwrite=True),
        ]
    import pandas as pd

    table = pd.DataFrame(
        {
            "SEC": np.arange(len(views)),
            "ROT": z_rot,
            "GMAG": 1.0,
            "TX": sx / px,
            "TY": sy / px,
            "SMEAN": 1.0,
            "SFIT": 1.0,
            "SCALE": 1.0,
            "BASE": 0.0,
            "TILT": tilt,
        }
    )[GLOBAL_COLUMNS]
    aln = AlnFile(path=None, header={"RawSize": (0, 0, len(views)), "NumPatches": 0}, global_alignment=table)
    return [write_aln(aln, out_base.with_suffix(".aln"), overwrite=True)]


class ExportAlignment(Protocol):
    """Export the alignment as IMOD .xf/.tlt/.xtilt or AreTomo .aln (views sorted by tilt)."""

    name = "export-alignment"
    Params = ExportAlignmentParams
    inputs = {"tilt_series": InputSpec(TiltSeries, help="aligned tilt series")}
    outputs = {"tilt_series": TiltSeries}
    params: ExportAlignmentParams

    def tasks(self) -> Iterator[Task[Any]]:
        series = self.input("tilt_series")
        for ts in each_series(series):
            yield Task(keep_name, Named(name=ts.name), key=ts.name, origin=(origin_of(series, ts.name),))

    def collect(self, task: Task[Any], result: str) -> None:
        ts = series_named(self.input("tilt_series"), task.key)
        paths = export_alignment(ts, self.params.format, self.out_path(ts.name))
        self.log(f"{ts.name}: wrote {', '.join(p.name for p in paths)}")
        self.emit("tilt_series", ts, task)


__all__ = [
    "AssignAlignment",
    "ExportAlignment",
    "ExportAlignmentParams",
    "ImportAlignment",
    "ImportAlignmentParams",
    "copy_alignment",
    "export_alignment",
    "read_alignment",
]
