"""Alignment consensus protocol: compare two alignments of the same tilt series, view by view.

The tilt series are matched by name, their views by acquisition order (views included in both).
Per view (first − second): shift difference in Å, ZRot and tilt differences in degrees, and the
reprojection difference of a grid of 3D points after removing the common translation (see
tomoforge.methods.align.consensus). Output: the first tilt series unchanged, a per-view report
``<name>_consensus.tsv``, and a summary in the log.
"""

from __future__ import annotations

from typing import Any

import pandas as pd

from tomoforge.engine import InputSpec, Protocol, ProtocolParams, Task, param
from tomoforge.engine.sets import origin_of
from tomoforge.methods.align.projection_model import ProjectionModel
from tomoforge.model import TiltSeries
from tomoforge.protocols.align.alignment import included


def consensus_task(
    orders: list[int],
    first: ProjectionModel,
    second: ProjectionModel,
    pixel_size_A: float,
    half_width_A: float,
    half_thickness_A: float,
    out_file: str,
) -> dict[str, Any]:
    """Compare two projection models of the same views (same order); write the TSV report."""
    from tomoforge.methods.align.consensus import (
        compare_alignments,
        point_grid,
        summarise,
    )

    report = compare_alignments(first, second, point_grid(half_width_A, half_thickness_A), pixel_size_A)
    table = pd.DataFrame({"view": orders, "tilt_deg": first.tilt_deg, **report})
    table.to_csv(out_file, sep="\t", index=False, float_format="%.4f")
    summary = summarise(report)
    summary["worst_view"] = int(orders[summary["worst_view"]])
    return {"file": out_file, **summary}


class ConsensusParams(ProtocolParams):
    half_width_A: float = param(2000.0, gt=0, unit="Å", help="5 × 5 grid of points in x, y within ± this")
    half_thickness_A: float = param(1000.0, gt=0, unit="Å", help="grid points at z = −, 0, + this")


class AlignmentConsensus(Protocol):
    """Alignment consensus: per-view differences between two alignments of the same tilt series."""

    name = "alignment-consensus"
    Params = ConsensusParams
    inputs = {
        "tilt_series": InputSpec(TiltSeries, help="first alignment (passed through)"),
        "other": InputSpec(TiltSeries, help="second alignment of the same tilt series"),
    }
    outputs = {"tilt_series": TiltSeries}

    def tasks(self):
        p, series, other = self.params, self.input("tilt_series"), self.input("other")
        names = set(other.keys())
        for ts in series:
            if ts.name not in names:
                self.log(f"{ts.name}: not in the second set, skipped")
                continue
            second = other.get(ts.name)
            by_order = {t.acquisition_order: t for t in included(second)}
            views = [t for t in included(ts) if t.acquisition_order in by_order]
            px = ts.acquisition.pixel_size_A
            # unset ZRots of both read as the first's tilt axis: the same nominal for both
            models = (
                ts.projection_model(views),
                second.projection_model(
                    [by_order[t.acquisition_order] for t in views], tilt_axis_deg=ts.acquisition.tilt_axis_angle_deg
                ),
            )
            yield Task(
                consensus_task,
                (
                    [t.acquisition_order for t in views],
                    *models,
                    px,
                    p.half_width_A,
                    p.half_thickness_A,
                    str(self.out_path(f"{ts.name}_consensus.tsv")),
                ),
                key=ts.name,
                origin=(origin_of(series, ts.name), origin_of(other, ts.name)),
            )

    def collect(self, task, result):
        self.emit("tilt_series", self.input("tilt_series").get(task.key), task)
        self.log(
            f"{task.key}: reprojection difference {result['reprojection_rms_A']:.2f} Å RMS "
            f"({result['reprojection_rms_px']:.3f} px), worst view {result['worst_view']} "
            f"({result['worst_view_rms_A']:.2f} Å), max |ΔZRot| {result['max_z_rot_deg']:.3f}°, "
            f"max |Δtilt| {result['max_tilt_deg']:.3f}°; report {self.relative(result['file'])}"
        )
