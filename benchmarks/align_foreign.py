"""Benchmark: marker-free alignment on a foreign-like tilt series, the tilt axis given well or 90° off (issue 16).

    python benchmarks/align_foreign.py [--threads 1] [--no-write]

The series of tests/methods/align/foreign_tilts.py (teamtomo's torch-ctf on blobs in an 1100 Å slab, a
fresh ice texture per tilt, Poisson noise at 3 e/Å², a 0.8° tilt offset, shifts drifting with |tilt|, axis
85°): 41 tilts ±60° of 256² at 8 Å/px, what the protocols see of the issue's 1024² at 2 Å/px after binning
4. ``coarse_alignment`` given the axis 1.5° off and 90° off (the issue's 62 px failure), then
``patch_alignment`` from it (the settings of tests/methods/align/test_marker_free.py). Errors in px of the
issue's 2 Å images: coarse, where the shifts put the specimen centre (the free 3D translation removed);
patch tracking, RMS and worst view over a 5 × 5 × 3 grid (±400 Å in height), the free translation and
rotation about the tilt axis removed. Prints JSON and rewrites its section of benchmarks/RESULTS.md.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import numpy as np  # noqa: E402
import torch  # noqa: E402

sys.path.insert(0, str(Path(__file__).parent))
sys.path.insert(1, str(Path(__file__).parents[1]))
from results_md import machine_info, replace_section  # noqa: E402

from tests.methods.align.foreign_tilts import TiltData, TiltSetup, make_tilts  # noqa: E402
from tomoforge.methods.align.coarse import coarse_alignment  # noqa: E402
from tomoforge.methods.align.consensus import point_grid  # noqa: E402
from tomoforge.methods.align.patches import (  # noqa: E402
    PatchAlignmentSettings,
    PatchTrackingSettings,
    patch_alignment,
)
from tomoforge.methods.align.projection_model import reprojection_difference  # noqa: E402

START, END = "<!-- align-foreign:start -->", "<!-- align-foreign:end -->"
FULL_PX = 2.0  # the pixel size


def run(d: TiltData, s: TiltSetup, given_deg: float) -> dict:
    """Coarse then patch alignment from ``given_deg``; errors (2 Å px), angles, times."""
    px = s.pixel_size_A
    t0 = time.perf_counter()
    c = coarse_alignment(d.images, d.nominal_deg, given_deg, high_cut_px=40.0 / px)
    t1 = time.perf_counter()
    a = d.truth.matrices()
    e = c.shifts_px * px - d.truth.shift_A
    tr, *_ = np.linalg.lstsq(a.reshape(-1, 3), e.reshape(-1), rcond=None)
    coarse = np.linalg.norm(e - a @ tr, axis=1) / FULL_PX
    settings = PatchAlignmentSettings(
        tracking=PatchTrackingSettings(
            patch_px=max(16, int(round(500 / px / 2)) * 2), spacing_px=250 / px, high_cut_px=40 / px, min_score=0.15
        ),
        rotation="single",
        contour_views=16,
    )
    assert c.tilt_axis_deg is not None
    sol, _ = patch_alignment(d.images, d.nominal_deg, c.tilt_axis_deg, px, c.shifts_px, settings=settings)
    t2 = time.perf_counter()
    grid = point_grid(0.35 * s.size * px, 400.0)
    dd = reprojection_difference(sol.model, d.truth, grid, remove_tilt_offset=True) / FULL_PX
    view = np.sqrt(np.mean(np.sum(dd**2, axis=-1), axis=1))
    return {
        "given_axis_deg": given_deg,
        "coarse": {
            "rms_px": float(np.sqrt(np.mean(coarse**2))),
            "worst_px": float(coarse.max()),
            "axis_error_deg": float(c.tilt_axis_deg - s.axis_deg),
            "offset_error_deg": float(c.tilt_offset_deg - s.offset_deg),
            "slab_A": None if c.thickness_px is None else float(c.thickness_px * px),
            "seconds": t1 - t0,
        },
        "patches": {
            "rms_px": float(np.sqrt(np.mean(view**2))),
            "worst_px": float(view.max()),
            "axis_error_deg": float(sol.tilt_axis_deg - s.axis_deg),
            "offset_error_deg": float(sol.tilt_offset_deg - s.offset_deg),
            "seconds": t2 - t1,
        },
    }


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--no-write", action="store_true")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    s = TiltSetup()
    d = make_tilts(s)
    result = {
        "benchmark": "align_foreign",
        "runs": [run(d, s, s.axis_deg + 1.5), run(d, s, s.axis_deg - 90.0)],
        "machine": machine_info(),
    }
    print(json.dumps(result, indent=1))
    if not args.no_write:
        write_section(result)


def write_section(r: dict) -> None:
    m = r["machine"]
    rows = []
    for run_ in r["runs"]:
        for step in ("coarse", "patches"):
            e = run_[step]
            rows.append(
                f"| {run_['given_axis_deg']:g}° | {'coarse-alignment' if step == 'coarse' else 'patch alignment'} | "
                f"{e['rms_px']:.2f} | {e['worst_px']:.2f} | {e['axis_error_deg']:+.2f}° | {e['offset_error_deg']:+.2f}° | "
                f"{e['seconds']:.0f} |"
            )
    lines = [
        "## Marker-free alignment on a foreign-like series, `python benchmarks/align_foreign.py`",
        "",
        f"{m['date']}, commit {m['git']}, {m['nproc']} cores, torch {m['torch']} ({m['torch_threads']} thread), "
        f"load average {m['load']} (a shared machine: times are not comparable). The series of "
        "tests/methods/align/foreign_tilts.py (torch-ctf, blobs in an 1100 Å slab, ice per tilt, axis 85°, offset "
        "0.8°) at 8 Å/px; errors in px of the issue's 2 Å images. Before the axis scan, the axis given 90° off gave "
        "coarse 94 px RMS (worst 330 px). Floors: coarse ≤ 3 px; patch tracking ≤ 1.0 px RMS, worst ≤ 3 px, "
        "axis and offset within 0.3°.",
        "",
        "| axis given | step | RMS (px) | worst view (px) | tilt axis | tilt offset | s |",
        "|---|---|---:|---:|---:|---:|---:|",
        *rows,
    ]
    replace_section(START, END, lines)


if __name__ == "__main__":
    main()
