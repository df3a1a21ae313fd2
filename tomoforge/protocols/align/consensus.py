"""Alignment consensus protocol: compare two alignments of the same tilt series, view by view.

The tilt series are matched by name, their views by acquisition order (views included in both).
Per view (first − second): shift difference in Å, ZRot and tilt differences in degrees, and the
reprojection difference of a grid of 3D points after removing the common translation (see
tomoforge.methods.align.consensus). Output: the first tilt series unchanged, a per-view report
``<name>_consensus.tsv``, and a summary in the log.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from tomoforge.engine import InputSpec, Protocol, ProtocolParams, Task, param
from tomoforge.engine.sets import origin_of
from tomoforge.model import TiltSeries
from tomoforge.protocols.align.views import each_series, included, series_named

if TYPE_CHECKING:
    from tomoforge.methods.align.projection_model import ProjectionModel


class ConsensusParams(ProtocolParams):
    half_width_A: float = param(2000.0, gt=0, unit="Å", help="5 × 5 grid of points in x, y within ± this")
    half_thickness_A: float = param(1000.0, gt=0, unit="Å", help="grid points at z = −, 0, + this")


@dataclass(frozen=True, kw_only=True)
class ConsensusJob:
    """The job of ``consensus_task``: two projection models of the same views (same order), their
    acquisition orders, the pixel size (Å/px) the report also states differences in, the params and the
    report to write."""

    orders: list[int]
    first: ProjectionModel
    second: ProjectionModel
    pixel_size_A: float
    params: ConsensusParams
    out_file: str


def consensus_task(job: ConsensusJob) -> dict[str, Any]:
    """Compare the two projection models view by view; write the TSV report. Returns its ``file`` and the
    summary figures (``summarise``; ``worst_view`` as an acquisition order)."""
    import pandas as pd

    from tomoforge.methods.align.consensus import compare_alignments, point_grid, summarise

    p = job.params
    points = point_grid(p.half_width_A, p.half_thickness_A)
    report = compare_alignments(job.first, job.second, points, pixel_size_A=job.pixel_size_A)
    table = pd.DataFrame({"view": job.orders, "tilt_deg": job.first.tilt_deg, **report})
    table.to_csv(job.out_file, sep="\t", index=False, float_format="%.4f")
    summary: dict[str, Any] = dict(summarise(report))
    summary["worst_view"] = int(job.orders[int(summary["worst_view"])])
    return {"file": job.out_file, **summary}


class AlignmentConsensus(Protocol):
    """Alignment consensus: per-view differences between two alignments of the same tilt series."""

    name = "alignment-consensus"
    Params = ConsensusParams
    inputs = {
        "tilt_series": InputSpec(TiltSeries, help="first alignment (passed through)"),
        "other": InputSpec(TiltSeries, help="second alignment of the same tilt series"),
    }
    outputs = {"tilt_series": TiltSeries}

    params: ConsensusParams

    def tasks(self) -> Iterator[Task[Any]]:
        p, series, other = self.params, self.input("tilt_series"), self.input("other")
        names = set(other.keys())
        for ts in each_series(series):
            if ts.name not in names:
                self.log(f"{ts.name}: not in the second set, skipped")
                continue
            second = series_named(other, ts.name)
            by_order = {t.acquisition_order: t for t in included(second)}
            views = [t for t in included(ts) if t.acquisition_order in by_order]
            # unset ZRots of both read as the first's tilt axis: the same nominal for both
            job = ConsensusJob(
                orders=[t.acquisition_order for t in views],
                first=ts.projection_model(views),
                second=second.projection_model(
                    [by_order[t.acquisition_order] for t in views], tilt_axis_deg=ts.acquisition.tilt_axis_angle_deg
                ),
                pixel_size_A=ts.acquisition.pixel_size_A,
                params=p,
                out_file=str(self.out_path(f"{ts.name}_consensus.tsv")),
            )
            yield Task(consensus_task, job, key=ts.name, origin=(origin_of(series, ts.name), origin_of(other, ts.name)))

    def collect(self, task: Task[Any], result: dict[str, Any]) -> None:
        self.emit("tilt_series", self.input("tilt_series").get(task.key), task)
        self.log(
            f"{task.key}: reprojection difference {result['reprojection_rms_A']:.2f} Å RMS "
            f"({result['reprojection_rms_px']:.3f} px), worst view {result['worst_view']} "
            f"({result['worst_view_rms_A']:.2f} Å), max |ΔZRot| {result['max_z_rot_deg']:.3f}°, "
            f"max |Δtilt| {result['max_tilt_deg']:.3f}°; report {self.relative(result['file'])}"
        )


__all__ = ["AlignmentConsensus", "ConsensusJob", "ConsensusParams", "consensus_task"]
