"""Tilt-series alignment protocols: coarse, fiducial model, fiducial alignment, assign, IMOD/AreTomo.

The alignment is attached to each tilt image as RELION 5 stores it (YTilt, ZRot, X/YShift in Å;
see tomoforge.methods.align.projection_model for the model and its hand assumption), never
applied to the pixels (coarse alignment writes an interpolated copy only on request). Only
included (not excluded) views are aligned; excluded ones keep what they had.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import numpy as np

from tomoforge.engine import InputSpec, Protocol, ProtocolParams, Task, param
from tomoforge.engine.sets import origin_of
from tomoforge.io.aretomo import (
    GLOBAL_COLUMNS,
    AlnFile,
    aln_to_projection_model,
    read_aln,
    write_aln,
)
from tomoforge.io.imod import (
    projection_model_to_xf,
    read_tlt,
    read_xf,
    read_xtilt,
    write_tlt,
    write_xf,
    write_xtilt,
    xf_to_projection_model,
)
from tomoforge.model import LandmarkModel, TiltImage, TiltSeries
from tomoforge.model.quantities import AngleDeg, BeadDiameterNM, PixelSizeA
from tomoforge.protocols.align import tasks as tasks_mod
from tomoforge.protocols.refuse import no_view_message, refuse
from tomoforge.protocols.tilt_stacks import image_sources


def included(ts: TiltSeries) -> list[TiltImage]:
    """The included tilt images, in their stored order."""
    return [t for t in ts.tilt_images if not t.excluded]


def with_alignment(ts: TiltSeries, values: dict[int, dict[str, Any]], **changes: Any) -> TiltSeries:
    """A copy of ``ts`` with tilt-image fields replaced per acquisition order, marked aligned."""
    images = [t.model_copy(update=values.get(t.acquisition_order, {})) for t in ts.tilt_images]
    return ts.model_copy(update={"tilt_images": images, "aligned": True, **changes})


def included_views(ts: TiltSeries, absolute) -> tuple[list[TiltImage], list[tuple[str, int]]]:
    """The included tilt images and their (absolute image file, section) pairs."""
    files = image_sources(ts, absolute)["file"]
    pairs = [(t, f) for t, f in zip(ts.tilt_images, files) if not t.excluded]
    return [t for t, _ in pairs], [f for _, f in pairs]


def refusal(ts: TiltSeries, series, what: str) -> Task | None:
    """A failing task for a tilt series with no included view (None when it has one)."""
    if included(ts):
        return None
    return Task(refuse, (no_view_message(ts.name, what),), key=ts.name, origin=(origin_of(series, ts.name),))


def axis_of(ts: TiltSeries, override: float | None) -> float:
    return ts.acquisition.tilt_axis_angle_deg if override is None else float(override)


def view_geometry(ts: TiltSeries, absolute, axis_override: float | None) -> tuple:
    """Task arguments describing the included views: (image sources, tilt angles (deg), acquisition
    orders, tilt axis angle (deg), current [x, y] shifts (Å))."""
    views, sources = included_views(ts, absolute)
    return (
        sources,
        [t.tilt_angle_deg for t in views],
        [t.acquisition_order for t in views],
        axis_of(ts, axis_override),
        [[t.x_shift_A, t.y_shift_A] for t in views],
    )


class CoarseParams(ProtocolParams):
    binning: float = param(4.0, ge=1, help="bin the images by this factor before correlating")
    tilt_axis_angle_deg: AngleDeg | None = param(None, unit="deg", help="override the acquisition's tilt axis angle")
    cumulative: bool = param(True, help="correlate with the sum of the views aligned so far")
    refine_iterations: int = param(3, ge=0, help="rounds of projection matching after the chain (0: the chain alone)")
    thickness_A: float | None = param(
        None, gt=0, unit="Å", help="specimen slab thickness for the reprojections (default: found from the data)"
    )
    low_cut_A: float = param(0.0, ge=0, unit="Å", help="remove features larger than this (0: a quarter of the image)")
    high_cut_A: float = param(40.0, gt=0, unit="Å", help="low-pass: period at which the gain is 1/e")
    interpolated: bool = param(False, help="also write the aligned (interpolated) stack")
    interpolated_binning: float = param(4.0, ge=1, help="binning of the interpolated stack")


class CoarseAlignment(Protocol):
    """Coarse alignment: shifts by cross-correlation of neighbouring views with cosine stretching,
    refined by projection matching (each view against the reprojection of the others)."""

    name = "coarse-alignment"
    citations = ("kremer1996", "mastronarde2017")
    Params = CoarseParams
    inputs = {"tilt_series": InputSpec(TiltSeries, help="tilt series to align")}
    outputs = {"tilt_series": TiltSeries}

    def tasks(self):
        p, series = self.params, self.input("tilt_series")
        for ts in series:
            if (no_view := refusal(ts, series, "align")) is not None:
                yield no_view
                continue
            views, sources = included_views(ts, self.absolute)
            out = str(self.out_path(f"{ts.name}_aligned.mrc")) if p.interpolated else ""
            yield Task(
                tasks_mod.coarse_task,
                (
                    sources,
                    [t.tilt_angle_deg for t in views],
                    axis_of(ts, p.tilt_axis_angle_deg),
                    ts.acquisition.pixel_size_A,
                    p.binning,
                    p.cumulative,
                    p.low_cut_A,
                    p.high_cut_A,
                    out,
                    p.interpolated_binning,
                    p.refine_iterations,
                    p.thickness_A,
                ),
                key=ts.name,
                origin=(origin_of(series, ts.name),),
            )

    def collect(self, task, result):
        ts = self.input("tilt_series").get(task.key)
        axis = axis_of(ts, self.params.tilt_axis_angle_deg)
        values = {
            t.acquisition_order: {"z_rot_deg": axis, "x_shift_A": s[0], "y_shift_A": s[1]}
            for t, s in zip(included(ts), result["shifts_A"])
        }
        self.emit("tilt_series", with_alignment(ts, values), task)
        if result.get("thickness_A") is not None:
            steps = ", ".join(f"{r:.1f}" for r in result["step_rms_A"])
            self.log(
                f"{ts.name}: specimen slab {result['thickness_A']:.0f} Å thick; projection matching "
                f"corrections (RMS, Å) {steps}"
            )
        if result.get("aligned_file"):
            self.log(f"{ts.name}: interpolated stack {result['aligned_file']}")


class FiducialModelParams(ProtocolParams):
    bead_diameter_nm: BeadDiameterNM = param(10.0, unit="nm", help="gold bead diameter")
    binning: float = param(4.0, ge=1, help="bin the images by this factor to find and track beads")
    max_beads: int = param(60, ge=3, help="seed at most this many beads on the lowest tilt")
    threshold_sd: float = param(6.0, gt=0, help="detection threshold (robust SD of the filtered image)")
    tilt_axis_angle_deg: AngleDeg | None = param(None, unit="deg", help="override the tilt axis angle")


class FiducialModel(Protocol):
    """Fiducial model: detect gold beads on the lowest tilt and track them through the series."""

    name = "fiducial-model"
    citations = ("kremer1996", "mastronarde2017")
    Params = FiducialModelParams
    inputs = {"tilt_series": InputSpec(TiltSeries, help="tilt series (coarse-aligned helps)")}
    outputs = {"landmark_models": LandmarkModel}

    def tasks(self):
        p, series = self.params, self.input("tilt_series")
        for ts in series:
            if (no_view := refusal(ts, series, "track beads in")) is not None:
                yield no_view
                continue
            yield Task(
                tasks_mod.fiducial_model_task,
                (
                    *view_geometry(ts, self.absolute, p.tilt_axis_angle_deg),
                    ts.acquisition.pixel_size_A,
                    p.binning,
                    p.bead_diameter_nm,
                    p.max_beads,
                    p.threshold_sd,
                    str(self.out_path(f"{ts.name}_beads.tsv")),
                ),
                key=ts.name,
                origin=(origin_of(series, ts.name),),
            )

    def collect(self, task, result):
        self.emit(
            "landmark_models",
            LandmarkModel(
                name=task.key,
                file=self.relative(result["file"]),
                n_landmarks=result["n_landmarks"],
                diameter_nm=self.params.bead_diameter_nm,
                pixel_size_A=result["pixel_size_A"],
            ),
            task,
        )


class FiducialAlignmentParams(ProtocolParams):
    rotation: Literal["fixed", "single", "grouped", "per_view"] = param(
        "grouped", help="in-plane rotation solved as (grouped follows a drift of the axis)"
    )
    tilt: Literal["fixed", "grouped", "per_view"] = param("grouped", help="tilt-angle refinement")
    magnification: Literal["fixed", "grouped"] = param("fixed", help="relative magnification")
    group_size: int = param(5, ge=1, help="views per group of grouped variables")
    level: bool = param(True, help="choose the tilt offset that makes the beads level")
    outlier_px: float = param(2.0, gt=0, unit="px", help="drop observations off by more than this (at least)")
    tilt_axis_angle_deg: AngleDeg | None = param(None, unit="deg", help="override the starting tilt axis angle")


class FiducialAlignment(Protocol):
    """Fiducial alignment: least-squares projection model from a landmark model (IMOD tiltalign)."""

    name = "fiducial-alignment"
    streaming = True  # a tilt series is aligned as soon as it and its landmark model are both there
    citations = ("kremer1996", "mastronarde2017")
    Params = FiducialAlignmentParams
    inputs = {
        "tilt_series": InputSpec(TiltSeries, help="tilt series the landmarks were tracked on"),
        "landmark_models": InputSpec(LandmarkModel, help="tracked beads, one model per tilt series"),
    }
    outputs = {"tilt_series": TiltSeries, "landmark_models": LandmarkModel}

    def tasks(self):
        p, series, models = self.params, self.input("tilt_series"), self.input("landmark_models")
        names = set(models.keys())
        options = p.model_dump(include={"rotation", "tilt", "magnification", "group_size", "level", "outlier_px"})
        for ts in series:
            if ts.name not in names:
                if not self.input_open("landmark_models"):  # streaming: it may still come
                    self.log(f"{ts.name}: no landmark model, skipped")
                continue
            if (no_view := refusal(ts, series, "align")) is not None:
                yield no_view
                continue
            lm = models.get(ts.name)
            views = included(ts)
            yield Task(
                tasks_mod.fiducial_alignment_task,
                (
                    str(self.absolute(lm.file)),
                    [t.tilt_angle_deg for t in views],
                    [t.acquisition_order for t in views],
                    axis_of(ts, p.tilt_axis_angle_deg),
                    lm.pixel_size_A,
                    options,
                    str(self.out_path(f"{ts.name}_residuals.tsv")),
                    str(self.out_path(f"{ts.name}_gap_free.tsv")),
                    [[t.x_shift_A, t.y_shift_A] for t in views],
                ),
                key=ts.name,
                origin=(origin_of(series, ts.name), origin_of(models, ts.name)),
            )

    def collect(self, task, result):
        ts, lm = self.input("tilt_series").get(task.key), self.input("landmark_models").get(task.key)
        values = {
            t.acquisition_order: {"y_tilt_deg": y, "z_rot_deg": z, "x_shift_A": s[0], "y_shift_A": s[1]}
            for t, y, z, s in zip(included(ts), result["y_tilt_deg"], result["z_rot_deg"], result["shifts_A"])
        }
        self.emit("tilt_series", with_alignment(ts, values), task)
        self.emit(
            "landmark_models",
            lm.model_copy(
                update={
                    "file": self.relative(self.out_path(f"{ts.name}_residuals.tsv")),
                    "has_residuals": True,
                    "n_landmarks": result["n_landmarks"],
                }
            ),
            task,
        )
        self.log(
            f"{ts.name}: residual {result['rms_px']:.3f} px, tilt axis {result['tilt_axis_deg']:.2f}°, "
            f"tilt offset {result['tilt_offset_deg']:.2f}°, dropped beads {result['dropped']}, "
            f"{result['surfaces']} surface(s)"
        )
        if result.get("unobserved"):
            self.log(
                f"{ts.name}: no bead kept in view(s) {result['unobserved']} (acquisition order): their shift "
                "is the input's, moved into this alignment's frame"
            )


def copy_alignment(source: TiltSeries, target: TiltSeries) -> TiltSeries:
    """``target`` with ``source``'s alignment, matched by acquisition order, shifts in Å (so a
    pixel-size change needs no scaling: Å are Å)."""
    by_order = {t.acquisition_order: t for t in source.tilt_images}
    values = {}
    for t in target.tilt_images:
        s = by_order.get(t.acquisition_order)
        if s is None:
            raise ValueError(f"{target.name}: acquisition order {t.acquisition_order} has no alignment in the source")
        values[t.acquisition_order] = {
            k: getattr(s, k) for k in ("x_tilt_deg", "y_tilt_deg", "z_rot_deg", "x_shift_A", "y_shift_A")
        }
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

    def tasks(self):
        source, target = self.input("source"), self.input("tilt_series")
        names = set(source.keys())
        for ts in target:
            if ts.name in names:
                yield Task(
                    tasks_mod.identity,
                    (ts.name,),
                    key=ts.name,
                    origin=(origin_of(target, ts.name), origin_of(source, ts.name)),
                )

    def collect(self, task, result):
        src, ts = self.input("source").get(task.key), self.input("tilt_series").get(task.key)
        self.emit("tilt_series", copy_alignment(src, ts), task)


class ImportAlignmentParams(ProtocolParams):
    files_path: str = param(..., help="folder holding <name>.xf/.tlt[/.xtilt] (IMOD) or <name>.aln (AreTomo)")
    format: Literal["imod", "aretomo"] = param("imod", help="who wrote the files")
    pixel_size_A: PixelSizeA | None = param(
        None, unit="Å/px", help="pixel size the files were made at (default: the tilt series')"
    )


class ImportAlignment(Protocol):
    """Import an IMOD (.xf/.tlt/.xtilt) or AreTomo (.aln) alignment onto tilt series (sorted by tilt)."""

    name = "import-alignment"
    citations = ("kremer1996",)
    Params = ImportAlignmentParams
    inputs = {"tilt_series": InputSpec(TiltSeries, help="tilt series the files belong to")}
    outputs = {"tilt_series": TiltSeries}

    def tasks(self):
        series = self.input("tilt_series")
        ext = ".xf" if self.params.format == "imod" else ".aln"
        for ts in series:
            path = Path(self.params.files_path) / f"{ts.name}{ext}"
            yield Task(tasks_mod.path_exists, (str(path),), key=ts.name, origin=(origin_of(series, ts.name),))

    def collect(self, task, result):
        ts = self.input("tilt_series").get(task.key)
        px = self.params.pixel_size_A or ts.acquisition.pixel_size_A
        views = sorted(included(ts), key=lambda t: t.tilt_angle_deg)
        path = Path(result)
        if self.params.format == "imod":
            model = xf_to_projection_model(read_xf(path), px)
            tilts = read_tlt(path.with_suffix(".tlt")) if path.with_suffix(".tlt").is_file() else None
            xtilt = read_xtilt(path.with_suffix(".xtilt")) if path.with_suffix(".xtilt").is_file() else None
            rows = range(len(model["z_rot_deg"]))
        else:
            model = aln_to_projection_model(read_aln(path), px)
            tilts, xtilt = model["y_tilt_deg"], model["x_tilt_deg"]
            rows = range(len(model["z_rot_deg"]))
        if len(rows) != len(views):
            raise ValueError(f"{path}: {len(rows)} views, tilt series {ts.name} has {len(views)} included")
        values = {}
        for i, t in zip(rows, views):
            values[t.acquisition_order] = {
                "z_rot_deg": float(model["z_rot_deg"][i]),
                "x_shift_A": float(model["x_shift_A"][i]),
                "y_shift_A": float(model["y_shift_A"][i]),
            }
            if tilts is not None:
                values[t.acquisition_order]["y_tilt_deg"] = float(tilts[i])
            if xtilt is not None:
                values[t.acquisition_order]["x_tilt_deg"] = float(xtilt[i])
        self.emit("tilt_series", with_alignment(ts, values), task)


class ExportAlignmentParams(ProtocolParams):
    format: Literal["imod", "aretomo"] = param("imod", help="write IMOD .xf/.tlt/.xtilt or AreTomo .aln")


def export_alignment(ts: TiltSeries, fmt: str, out_base: Path) -> list[Path]:
    """Write the alignment of the included views, sorted by tilt; returns the files written."""
    views = sorted(included(ts), key=lambda t: t.tilt_angle_deg)
    px = ts.acquisition.pixel_size_A
    model = ts.projection_model(views)
    z_rot, tilt, (sx, sy) = model.z_rot_deg, model.tilt_deg, model.shift_A.T
    if fmt == "imod":
        paths = [
            write_xf(out_base.with_suffix(".xf"), projection_model_to_xf(z_rot, sx, sy, px), overwrite=True),
            write_tlt(out_base.with_suffix(".tlt"), tilt, overwrite=True),
            write_xtilt(out_base.with_suffix(".xtilt"), model.x_tilt_deg, overwrite=True),
        ]
        return paths
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

    def tasks(self):
        series = self.input("tilt_series")
        for ts in series:
            yield Task(tasks_mod.identity, (ts.name,), key=ts.name, origin=(origin_of(series, ts.name),))

    def collect(self, task, result):
        ts = self.input("tilt_series").get(task.key)
        paths = export_alignment(ts, self.params.format, self.out_path(ts.name))
        self.log(f"{ts.name}: wrote {', '.join(p.name for p in paths)}")
        self.emit("tilt_series", ts, task)
