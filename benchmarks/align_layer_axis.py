"""Benchmark: marker-free alignment of the foreign-like series with the tilt axis from layer tracks (issue 16).

    python benchmarks/align_layer_axis.py [--seeds 0 1 2] [--threads 1] [--out FILE] [--merge FILE ...] [--no-write]

The noisy series of tests/methods/align/foreign_tilts.py (torch-ctf, blobs in an 1100 Å slab, a fresh ice
texture per tilt, 3 e/Å², axis 85°, offset 0.8°; 41 tilts ±60° of 256² at 8 Å/px) for each seed:
``coarse_alignment`` given the axis 1.5° off, then ``layer_tracks.refine_axis_by_layers`` from its axis,
shifts, tilt offset and slab, then projection matching with that axis held (``geometry.refine_geometry``,
``axis_range_deg=0``): shifts and tilt offset. Errors in px of the issue's 2 Å images: RMS and worst view
over a 5 × 5 × 3 grid of specimen points (±400 Å in height), the free translation and rotation about the
tilt axis removed (as benchmarks/align_foreign.py scores patch alignment). Prints JSON and, unless
``--no-write``, rewrites its section of benchmarks/RESULTS.md.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import numpy as np  # noqa: E402
import torch  # noqa: E402

sys.path.insert(0, str(Path(__file__).parent))
sys.path.insert(1, str(Path(__file__).parents[1]))
from results_md import replace_section, seed_runs  # noqa: E402

from tests.methods.align.foreign_tilts import TiltSetup, make_tilts  # noqa: E402
from tomoforge.methods.align.coarse import coarse_alignment  # noqa: E402
from tomoforge.methods.align.consensus import point_grid  # noqa: E402
from tomoforge.methods.align.filters import bandpass  # noqa: E402
from tomoforge.methods.align.geometry import refine_geometry  # noqa: E402
from tomoforge.methods.align.layer_tracks import refine_axis_by_layers  # noqa: E402
from tomoforge.methods.align.projection_model import ProjectionModel, reprojection_difference  # noqa: E402

START, END = "<!-- align-layer-axis:start -->", "<!-- align-layer-axis:end -->"
FULL_PX = 2.0


def errors(model: ProjectionModel, truth: ProjectionModel, s: TiltSetup) -> tuple[float, float]:
    grid = point_grid(0.35 * s.size * s.pixel_size_A, 400.0)
    d = reprojection_difference(model, truth, grid, remove_tilt_offset=True) / FULL_PX
    view = np.sqrt(np.mean(np.sum(d**2, axis=-1), axis=1))
    return float(np.sqrt(np.mean(view**2))), float(view.max())


def measure(seed: int, passes: int = 1) -> dict:
    s = TiltSetup(seed=seed)
    d = make_tilts(s)
    px = s.pixel_size_A
    t0 = time.perf_counter()
    c = coarse_alignment(d.images, d.nominal_deg, s.axis_deg + 1.5, high_cut_px=40.0 / px)
    assert c.tilt_axis_deg is not None and c.thickness_px is not None
    t1 = time.perf_counter()
    layer = refine_axis_by_layers(
        d.images, d.nominal_deg + c.tilt_offset_deg, c.tilt_axis_deg, c.shifts_px, c.thickness_px
    )
    rounds = list(layer.rounds)
    for _ in range(passes - 1):  # again from the axis and shifts found
        assert layer.shifts_px is not None
        layer = refine_axis_by_layers(
            d.images, d.nominal_deg + c.tilt_offset_deg, layer.tilt_axis_deg, layer.shifts_px, c.thickness_px
        )
        rounds += layer.rounds
    t2 = time.perf_counter()
    x = torch.as_tensor(d.images)
    f = bandpass(x, s.size / 4, 40.0 / px)
    g = refine_geometry(
        f - f.mean(dim=(-2, -1), keepdim=True),
        d.nominal_deg,
        layer.tilt_axis_deg,
        c.shifts_px,
        axis_range_deg=0.0,
        thickness_px=c.thickness_px,
        view_means=x.mean(dim=(-2, -1)).numpy(),
    )
    t3 = time.perf_counter()
    assert layer.shifts_px is not None
    with_shifts = ProjectionModel(d.nominal_deg + g.tilt_offset_deg, layer.tilt_axis_deg, layer.shifts_px * px)
    coarse_model = ProjectionModel(d.nominal_deg + c.tilt_offset_deg, c.tilt_axis_deg, c.shifts_px * px)
    final = ProjectionModel(d.nominal_deg + g.tilt_offset_deg, g.tilt_axis_deg, g.shifts_px * px)
    out: dict = {"seed": seed}
    for name, model, axis, offset, secs in (
        ("coarse", coarse_model, c.tilt_axis_deg, c.tilt_offset_deg, t1 - t0),
        ("layers", final, g.tilt_axis_deg, g.tilt_offset_deg, t3 - t1),
        ("layer_shifts", with_shifts, layer.tilt_axis_deg, g.tilt_offset_deg, t2 - t1),
    ):
        rms, worst = errors(model, d.truth, s)
        out[name] = {
            "rms_px": round(rms, 3),
            "worst_px": round(worst, 3),
            "axis_error_deg": round(axis - s.axis_deg, 3),
            "offset_error_deg": round(offset - s.offset_deg, 3),
            "seconds": round(secs, 1),
        }
    out["passes"] = passes
    out["layer_rounds"] = [[round(a - s.axis_deg, 3), round(b - s.axis_deg, 3)] for a, b in rounds]
    out["layer_seconds"] = round(t2 - t1, 1)
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--passes", type=int, default=1, help="runs of refine_axis_by_layers, each from the last")
    ap.add_argument("--out", type=Path)
    ap.add_argument("--merge", type=Path, nargs="*", help="JSON files of earlier runs: only write the section")
    ap.add_argument("--no-write", action="store_true")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    result = seed_runs("align_layer_axis", args.seeds, lambda seed: measure(seed, args.passes), args.merge, args.out)
    if not args.no_write:
        write_section(result)


def write_section(r: dict) -> None:
    m = r["machine"]
    rows = []
    for run in sorted(r["runs"], key=lambda q: q["seed"]):
        for step, label in (
            ("coarse", "coarse-alignment"),
            ("layers", "layer axis, shifts by projection matching"),
            ("layer_shifts", "layer axis and shifts"),
        ):
            e = run[step]
            rows.append(
                f"| {run['seed']} | {label} | {e['rms_px']:.2f} | {e['worst_px']:.2f} | {e['axis_error_deg']:+.2f}° | "
                f"{e['offset_error_deg']:+.2f}° | {e['seconds']:.0f} |"
            )
    lines = [
        "## The tilt axis from layer tracks on the foreign-like series, `python benchmarks/align_layer_axis.py`",
        "",
        f"{m['date']}, commit {m['git']}, {m['nproc']} cores, load average {m['load']} (a shared machine: times "
        "are not comparable). The noisy series of tests/methods/align/foreign_tilts.py (1100 Å slab, ice per tilt, "
        "3 e/Å², axis 85°, offset 0.8°, 8 Å/px), coarse-alignment given the axis 1.5° off; errors in px of the "
        "issue's 2 Å images. Floors: patch tracking ≤ 1.0 px RMS, worst ≤ 3 px, axis and offset within 0.3°. "
        f"Layer passes (`refine_axis_by_layers`, each from the last one's axis and shifts): {r['runs'][0].get('passes', 1)}.",
        "",
        "| seed | step | RMS (px) | worst view (px) | tilt axis | tilt offset | s |",
        "|---|---|---:|---:|---:|---:|---:|",
        *rows,
        "",
        "Layer rounds (axis the layers were made with → axis their tracks fit, error in degrees): "
        + "; ".join(
            f"seed {run['seed']}: " + ", ".join(f"{a:+.2f}→{b:+.2f}" for a, b in run["layer_rounds"])
            for run in sorted(r["runs"], key=lambda q: q["seed"])
        ),
    ]
    replace_section(START, END, lines)


if __name__ == "__main__":
    main()
