"""Benchmark: marker-free alignment on foreign-like tilt series, beside fiducial alignment of the same series
with gold (issue 16).

    python benchmarks/align_foreign.py [--seeds 0 1 2] [--extra] [--threads 1] [--out FILE] [--merge FILE ...]
        [--no-write]

The series of tests/methods/align/foreign_tilts.py (teamtomo's torch-ctf on blobs in an 1100 Å slab, a
fresh ice texture per tilt, Poisson noise at 3 e/Å², a 0.8° tilt offset, shifts drifting with |tilt|, axis
85°): 41 tilts ±60° of 256² at 8 Å/px, what the protocols see of the issue's 1024² at 2 Å/px after binning
4. Per seed: ``coarse_alignment`` given the axis 1.5° off, then the patch-tracking protocol's path
(``patch_alignment`` with the settings of the protocol's defaults for 2 Å images at binning 4, the input's
tilt offset, the slab found from the coarse alignment: layer tracks) and, as before, patch tracks
(``layer_tracks`` off, with ``--extra``). Beside it the same series (same seed, every other draw alike) with 40 gold beads of
10 nm on its surfaces: coarse alignment, then the fiducial-model and fiducial-alignment protocols' path
(``learn_bead_template``, ``track_beads``, a first fit, ``fill_gaps``, ``solve_fiducial_alignment`` with the
protocol's defaults).
With ``--extra``, also patch tracks and, from the axis given 90° off, coarse then layer tracks. Errors in px of the issue's 2 Å
images: coarse, where the shifts put the specimen centre (the free 3D translation removed); the others,
RMS and worst view over a 5 × 5 × 3 grid (±400 Å in height), the free translation and rotation about the
tilt axis removed. Prints JSON and rewrites its section of benchmarks/RESULTS.md.
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
from results_md import replace_section, seed_runs  # noqa: E402

from tests.methods.align.foreign_tilts import TiltData, TiltSetup, make_tilts  # noqa: E402
from tomoforge.methods.align.beads import fill_gaps, learn_bead_template, track_beads  # noqa: E402
from tomoforge.methods.align.coarse import CoarseResult, coarse_alignment  # noqa: E402
from tomoforge.methods.align.consensus import point_grid  # noqa: E402
from tomoforge.methods.align.patches import patch_alignment  # noqa: E402
from tomoforge.methods.align.projection_model import ProjectionModel, reprojection_difference  # noqa: E402
from tomoforge.methods.align.solve import MIN_VIEWS, solve_fiducial_alignment  # noqa: E402
from tomoforge.protocols.align.fiducial import FiducialAlignmentParams, FiducialModelParams  # noqa: E402
from tomoforge.protocols.align.patches import PatchTrackingParams, patch_options  # noqa: E402

START, END = "<!-- align-foreign:start -->", "<!-- align-foreign:end -->"
FULL_PX = 2.0  # the pixel size
GOLD_COUNT = 40  # 10 nm beads on the two surfaces of the gold series
BINNING = 4.0  # the protocols' default: 2 Å images seen at 8 Å


def view_errors(model: ProjectionModel, d: TiltData, s: TiltSetup) -> np.ndarray:
    """(n,) RMS error per view (px of 2 Å) over the grid of specimen points."""
    grid = point_grid(0.35 * s.size * s.pixel_size_A, 400.0)
    dd = reprojection_difference(model, d.truth, grid, remove_tilt_offset=True) / FULL_PX
    return np.sqrt(np.mean(np.sum(dd**2, axis=-1), axis=1))


def scored(model: ProjectionModel, d: TiltData, s: TiltSetup, axis: float, offset: float, secs: float) -> dict:
    view = view_errors(model, d, s)
    return {
        "rms_px": float(np.sqrt(np.mean(view**2))),
        "worst_px": float(view.max()),
        "axis_error_deg": float(axis - s.axis_deg),
        "offset_error_deg": float(offset - s.offset_deg),
        "seconds": secs,
    }


def coarse(d: TiltData, s: TiltSetup, given_deg: float) -> tuple[CoarseResult, dict]:
    """``coarse_alignment`` from ``given_deg`` and its error (2 Å px) where it puts the specimen centre."""
    px = s.pixel_size_A
    t0 = time.process_time()
    c = coarse_alignment(d.images, d.nominal_deg, given_deg, high_cut_px=40.0 / px)
    secs = time.process_time() - t0
    a = d.truth.matrices()
    e = c.shifts_px * px - d.truth.shift_A
    tr, *_ = np.linalg.lstsq(a.reshape(-1, 3), e.reshape(-1), rcond=None)
    err = np.linalg.norm(e - a @ tr, axis=1) / FULL_PX
    assert c.tilt_axis_deg is not None
    return c, {
        "rms_px": float(np.sqrt(np.mean(err**2))),
        "worst_px": float(err.max()),
        "axis_error_deg": float(c.tilt_axis_deg - s.axis_deg),
        "offset_error_deg": float(c.tilt_offset_deg - s.offset_deg),
        "slab_A": None if c.thickness_px is None else float(c.thickness_px * px),
        "seconds": secs,
        "chain": c.chain_source,  # the chain kept: of the views, or without their outliers (gold)
        "chain_scores": c.candidate_scores,  # mean view score of each chain refined (empty: one chain)
    }


def protocol_path(d: TiltData, s: TiltSetup, c: CoarseResult, layers: bool) -> dict:
    """What patch-tracking's task does with its defaults (``layer_tracks`` as given) on this series."""
    px = s.pixel_size_A
    params = PatchTrackingParams(binning=BINNING, layer_tracks=layers)
    settings = patch_options(params, px / BINNING)
    assert c.tilt_axis_deg is not None
    t0 = time.process_time()
    sol, _ = patch_alignment(
        d.images, d.nominal_deg, c.tilt_axis_deg, px, c.shifts_px, settings=settings, tilt_offset_deg=c.tilt_offset_deg
    )
    return scored(sol.model, d, s, sol.tilt_axis_deg, sol.tilt_offset_deg, time.process_time() - t0)


def fiducial_path(d: TiltData, s: TiltSetup, c: CoarseResult) -> dict:
    """What fiducial-model then fiducial-alignment do with their defaults (10 nm beads) on this series."""
    px = s.pixel_size_A
    model_p, align_p = FiducialModelParams(), FiducialAlignmentParams()
    diameter_px = s.gold_diameter_A / px
    assert c.tilt_axis_deg is not None
    t0 = time.process_time()
    template = learn_bead_template(d.images, diameter_px, threshold_sd=model_p.threshold_sd)
    track = track_beads(
        d.images,
        d.nominal_deg,
        c.tilt_axis_deg,
        diameter_px,
        c.shifts_px,
        max_beads=model_p.max_beads,
        threshold_sd=model_p.threshold_sd,
        template=template,
    )
    track = track[:, np.isfinite(track[..., 0]).sum(axis=0) >= max(MIN_VIEWS, len(d.nominal_deg) // 4)]
    first = solve_fiducial_alignment(track, d.nominal_deg, c.tilt_axis_deg, px, rotation="single", tilt="fixed")
    track = fill_gaps(track, first.gap_free_px(px), d.images, diameter_px, template=template)
    sol = solve_fiducial_alignment(
        track,
        d.nominal_deg,
        c.tilt_axis_deg,
        px,
        rotation=align_p.rotation,
        tilt=align_p.tilt,
        magnification=align_p.magnification,
        group_size=align_p.group_size,
        level=align_p.level,
        outlier_px=align_p.outlier_px,
        prior_shifts_px=c.shifts_px,
    )
    out = scored(sol.model, d, s, sol.tilt_axis_deg, sol.tilt_offset_deg, time.process_time() - t0)
    out["beads"] = int(track.shape[1] - len(sol.dropped_beads))
    return out


def measure(seed: int, extra: bool = False) -> dict:
    s = TiltSetup(seed=seed)
    d = make_tilts(s)
    c, c_err = coarse(d, s, s.axis_deg + 1.5)
    out: dict = {"seed": seed, "given_axis_deg": s.axis_deg + 1.5, "coarse": c_err}
    out["layers"] = protocol_path(d, s, c, True)
    if extra:
        out["patches"] = protocol_path(d, s, c, False)
    g = TiltSetup(seed=seed, gold_count=GOLD_COUNT)
    dg = make_tilts(g)
    cg, cg_err = coarse(dg, g, g.axis_deg + 1.5)
    out["gold_coarse"] = cg_err
    print(json.dumps(out), flush=True)  # what is done so far, should the fiducial path fail
    try:
        out["fiducial"] = fiducial_path(dg, g, cg)
    except Exception as exc:  # a benchmark row that says why, not a lost run
        out["fiducial_error"] = f"{type(exc).__name__}: {exc}"
    if extra:
        c90, c90_err = coarse(d, s, s.axis_deg - 90.0)
        out["off90"] = {
            "given_axis_deg": s.axis_deg - 90.0,
            "coarse": c90_err,
            "layers": protocol_path(d, s, c90, True),
        }
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--out", type=Path)
    ap.add_argument("--merge", type=Path, nargs="*", help="JSON files of earlier runs: only write the section")
    ap.add_argument("--no-write", action="store_true")
    ap.add_argument("--extra", action="store_true", help="also patch tracks, and coarse + layers from the axis 90° off")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    result = seed_runs("align_foreign", args.seeds, lambda seed: measure(seed, args.extra), args.merge, args.out)
    if not args.no_write:
        write_section(result)


STEPS = (
    ("coarse", "coarse-alignment"),
    ("layers", "patch-tracking (layer tracks, the default)"),
    ("patches", "patch-tracking, `layer_tracks` off (patch tracks)"),
    ("gold_coarse", "with gold: coarse-alignment"),
    ("fiducial", "with gold: fiducial-model → fiducial-alignment"),
)


def row(seed: int, given: float, label: str, e: dict) -> str:
    return (
        f"| {seed} | {given:g}° | {label} | {e['rms_px']:.2f} | {e['worst_px']:.2f} | {e['axis_error_deg']:+.2f}° | "
        f"{e['offset_error_deg']:+.2f}° | {e['seconds']:.0f} |"
    )


def write_section(r: dict) -> None:
    m = r["machine"]
    rows = []
    for run_ in sorted(r["runs"], key=lambda q: q["seed"]):
        for step, label in STEPS:
            if step in run_:
                rows.append(row(run_["seed"], run_["given_axis_deg"], label, run_[step]))
        if "fiducial_error" in run_:
            rows.append(f"| {run_['seed']} | | with gold: fiducial path failed: {run_['fiducial_error']} | | | | | |")
        if "off90" in run_:
            o = run_["off90"]
            rows.append(row(run_["seed"], o["given_axis_deg"], "coarse-alignment", o["coarse"]))
            rows.append(row(run_["seed"], o["given_axis_deg"], "patch-tracking (layer tracks)", o["layers"]))
    met = all(
        q["layers"]["rms_px"] <= 1.0
        and q["layers"]["worst_px"] <= 3.0
        and abs(q["layers"]["axis_error_deg"]) <= 0.3
        and abs(q["layers"]["offset_error_deg"]) <= 0.3
        for q in r["runs"]
    )
    lines = [
        "## Marker-free alignment on a foreign-like series, `python benchmarks/align_foreign.py`",
        "",
        f"{m['date']}, commit {m['git']}, {m['nproc']} cores, torch {m['torch']} ({m['torch_threads']} thread), "
        f"load average {m['load']} (a shared machine; times are CPU seconds of the one process). The series of "
        "tests/methods/align/foreign_tilts.py (torch-ctf, blobs in an 1100 Å slab, ice per tilt, axis 85°, offset "
        "0.8°) at 8 Å/px (the issue's 2 Å images at the protocols' binning 4); errors in px of the issue's 2 Å "
        "images. patch-tracking: the protocol's path with its defaults (the input's tilt offset, the slab found "
        'from the coarse alignment). "with gold": the same series (same seed) with 40 gold beads of 10 nm on its '
        "surfaces, fiducial-model and fiducial-alignment with their defaults. Floors: coarse ≤ 3 px; patch "
        "tracking ≤ 1.0 px RMS, worst ≤ 3 px, axis and offset within 0.3°: "
        + ("met by patch-tracking on every seed." if met else "NOT met by patch-tracking on every seed."),
        "",
        "| seed | axis given | step | RMS (px) | worst view (px) | tilt axis | tilt offset | CPU s |",
        "|---|---|---|---:|---:|---:|---:|---:|",
        *rows,
    ]
    replace_section(START, END, lines)


if __name__ == "__main__":
    main()
