"""Benchmark: tilt-series alignment on the simulator's `small` preset (seed 1), against its truth.

    python benchmarks/align.py [--sim DIR] [--outdir /tmp/bench_align] [--repeats 2] [--threads 2] [--no-write]

1. Coarse alignment beside teamtomo's torch-tiltxcorr (the peer, if importable), on the same data: the
   noise-free tilt series of `small` (41 tilts ±60°, gold on both surfaces of an 1100 Å slab, true random
   stage shifts, a 0.35° drift of the tilt axis and a 0.7° tilt offset) Fourier-binned to 512² (6 Å/px).
   Both get the nominal tilts, the nominal axis (85°) and a 40 Å low-pass. Error per view: where the shift
   puts the specimen centre against the truth, after removing the best common 3D translation (the free
   gauge), px at 512². Ours also with the chain alone (no projection matching).
2. Time per tilt series of each step, as its protocol's task runs it (reading the 41 × 1024² stack of
   gain-corrected frame sums included), protocol defaults (binning 4): coarse-alignment, fiducial-model,
   fiducial-alignment, patch-tracking; with the accuracy each reaches on these noisy sums.

Wall and CPU seconds, the median over ``--repeats`` rounds, with the load average of the (shared)
machine before each round. Prints one JSON object and rewrites the align section of benchmarks/RESULTS.md.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from dataclasses import replace
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # see benchmarks/motion.py: idle threads sleep

import numpy as np  # noqa: E402
import torch  # noqa: E402

from tomoforge.io.movies import read_movie  # noqa: E402
from tomoforge.io.mrc import read_mrc, write_mrc  # noqa: E402
from tomoforge.methods.align.coarse import coarse_alignment  # noqa: E402
from tomoforge.methods.align.consensus import point_grid  # noqa: E402
from tomoforge.methods.align.projection_model import ProjectionModel, reprojection_difference, rms  # noqa: E402
from tomoforge.methods.binning import bin_images  # noqa: E402
from tomoforge.protocols.align.coarse import CoarseJob, CoarseParams, coarse_task  # noqa: E402
from tomoforge.protocols.align.fiducial import (  # noqa: E402
    FiducialAlignmentJob,
    FiducialAlignmentParams,
    FiducialModelJob,
    FiducialModelParams,
    fiducial_alignment_task,
    fiducial_model_task,
)
from tomoforge.protocols.align.patches import (  # noqa: E402
    PatchTrackingJob,
    PatchTrackingParams,
    patch_options,
    patch_tracking_task,
)
from tomoforge.protocols.align.views import ViewGeometry  # noqa: E402

sys.path.insert(0, str(Path(__file__).parent))
from results_md import machine_info, replace_section  # noqa: E402

START, END = "<!-- align:start -->", "<!-- align:end -->"
LOW_PASS_A = 40.0


def clock() -> tuple[float, float]:
    return time.perf_counter(), time.process_time()


def since(start: tuple[float, float]) -> dict[str, float]:
    now = clock()
    return {"wall_s": round(now[0] - start[0], 3), "cpu_s": round(now[1] - start[1], 3)}


def truth_model(truth: dict) -> ProjectionModel:
    t = sorted(truth["tilts"], key=lambda r: r["acquisition_order"])
    return ProjectionModel(
        [r["y_tilt_deg"] for r in t], [r["z_rot_deg"] for r in t], [[r["x_shift_A"], r["y_shift_A"]] for r in t]
    )


def shift_errors(shifts_px: np.ndarray, true: ProjectionModel, pixel_A: float) -> np.ndarray:
    """Per-view |error| (px) of where the shifts put the specimen centre, the free 3D translation removed."""
    a = true.matrices()
    e = shifts_px - true.shift_A / pixel_A
    t, *_ = np.linalg.lstsq(a.reshape(-1, 3), e.reshape(-1), rcond=None)
    return np.linalg.norm(e - a @ t, axis=1)


def summary(err: np.ndarray, nominal: np.ndarray) -> dict:
    order = np.argsort(nominal)
    return {
        "median_px": round(float(np.median(err)), 3),
        "max_px": round(float(err.max()), 3),
        "per_tilt_px": {f"{nominal[i]:g}": round(float(err[i]), 2) for i in order},
    }


def peer_comparison(sim: Path, truth: dict) -> dict:
    """Coarse alignment on the noise-free series at 512²: ours (refined, chain) and torch-tiltxcorr."""
    true = truth_model(truth)
    nominal = np.array([r["nominal_tilt_deg"] for r in sorted(truth["tilts"], key=lambda r: r["acquisition_order"])])
    axis = truth["tilt_axis_angle_deg"]
    images = bin_images(torch.from_numpy(read_mrc(sim / truth["noise_free_tilt_series"])), 2)
    px = truth["pixel_size_A"] * truth["image_size_yx"][1] / images.shape[-1]
    out: dict = {"image": list(images.shape[-2:]), "pixel_size_A": px}
    start = clock()
    res = coarse_alignment(images, nominal, axis, high_cut_px=LOW_PASS_A / px)
    out["tomoforge"] = {
        **summary(shift_errors(res.shifts_px, true, px), nominal),
        **since(start),
        "slab_thickness_A": round(res.thickness_px * px),
        "step_rms_px": res.step_rms_px,
    }
    start = clock()
    chain = coarse_alignment(images, nominal, axis, high_cut_px=LOW_PASS_A / px, refine_iterations=0)
    out["tomoforge_chain"] = {**summary(shift_errors(chain.shifts_px, true, px), nominal), **since(start)}
    try:
        import torch_tiltxcorr
        from torch_tiltxcorr import tiltxcorr
    except ImportError:
        return out
    start = clock()
    yx = tiltxcorr(
        images, torch.as_tensor(nominal), axis, pixel_spacing_angstroms=px, lowpass_angstroms=LOW_PASS_A
    ).numpy()
    # tiltxcorr returns the (y, x) shift that centres each view: minus where the specimen centre lands.
    out["tiltxcorr"] = {
        **summary(shift_errors(-yx[:, ::-1], true, px), nominal),
        **since(start),
        "version": torch_tiltxcorr.__version__,
    }
    return out


def frame_sums(sim: Path, truth: dict) -> np.ndarray:
    gain = read_mrc(sim / truth["gain"]).astype(np.float32)
    return np.stack([read_movie(sim / m).sum(axis=0) * gain for m in truth["movies"]]).astype(np.float32)


def step_timings(
    stack: Path, truth: dict, out: Path, *, fiducial: bool = True, patch_binning: float | None = None
) -> tuple[dict, dict]:
    """Each step's task on the 1024² stack (protocol defaults), timed; and the accuracy it reaches (without
    ``fiducial``: coarse-alignment and patch-tracking only, for a series with no gold; ``patch_binning``:
    patch tracking at that binning instead of its default)."""
    records = sorted(truth["tilts"], key=lambda r: r["acquisition_order"])
    sources = [(str(stack), i) for i in range(len(records))]
    tilts = [r["nominal_tilt_deg"] for r in records]
    orders = [r["acquisition_order"] for r in records]
    axis, px = truth["tilt_axis_angle_deg"], truth["pixel_size_A"]
    out.mkdir(parents=True, exist_ok=True)
    c, fm, fa, pt = CoarseParams(), FiducialModelParams(), FiducialAlignmentParams(), PatchTrackingParams()
    if patch_binning is not None:
        pt = pt.model_copy(update={"binning": patch_binning})
    views = ViewGeometry(
        sources=sources,
        tilts_deg=tilts,
        orders=orders,
        axis_deg=axis,
        shifts_A=[[0.0, 0.0]] * len(tilts),
        pixel_size_A=px,
    )
    timing, results = {}, {}
    start = clock()
    results["coarse"] = coarse_task(CoarseJob(views=views, params=c))
    timing["coarse_alignment"] = since(start)
    shifts_A = results["coarse"]["shifts_A"]
    views = replace(views, shifts_A=shifts_A, axis_deg=results["coarse"]["tilt_axis_deg"])  # as the protocols chain
    if fiducial:
        start = clock()
        results["beads"] = fiducial_model_task(
            FiducialModelJob(views=views, params=fm, out_file=str(out / "beads.tsv"))
        )
        timing["fiducial_model"] = since(start)
        start = clock()
        results["fiducial"] = fiducial_alignment_task(
            FiducialAlignmentJob(
                table=results["beads"]["file"],
                tilts_deg=tilts,
                orders=orders,
                axis_deg=axis,
                pixel_size_A=results["beads"]["pixel_size_A"],
                shifts_A=shifts_A,
                params=fa,
                out_file=str(out / "residuals.tsv"),
                gap_free_file=str(out / "gap_free.tsv"),
            )
        )
        timing["fiducial_alignment"] = since(start)
    start = clock()
    results["patches"] = patch_tracking_task(
        PatchTrackingJob(
            views=views, binning=pt.binning, settings=patch_options(pt, px), out_file=str(out / "patches.tsv")
        )
    )
    timing["patch_tracking"] = since(start)
    return timing, results


def accuracy(results: dict, truth: dict) -> dict:
    """Errors (px at binning 4) of the steps' results against the truth, the free gauge removed."""
    true = truth_model(truth)
    nominal = np.array([r["nominal_tilt_deg"] for r in sorted(truth["tilts"], key=lambda r: r["acquisition_order"])])
    bin_px = truth["pixel_size_A"] * CoarseParams().binning
    coarse = shift_errors(np.asarray(results["coarse"]["shifts_A"]) / bin_px, true, bin_px)
    beads = np.array([f["position_A"] for f in truth["fiducials"]])
    grid = point_grid(0.35 * truth["image_size_yx"][1] * truth["pixel_size_A"], 400.0)

    def model(r: dict) -> ProjectionModel:
        return ProjectionModel(r["y_tilt_deg"], r["z_rot_deg"], r["shifts_A"])

    fid, patches = model(results["fiducial"]), model(results["patches"])
    normal = np.array(truth["specimen"]["slab_normal"])
    levelled = truth["tilt_offset_deg"] + np.rad2deg(np.arctan2(normal[0], normal[2]))
    return {
        "coarse": {"median_px": round(float(np.median(coarse)), 3), "max_px": round(float(coarse.max()), 3)},
        "fiducial": {
            "beads_rms_px": round(rms(reprojection_difference(fid, true, beads, remove_tilt_offset=True)) / bin_px, 3),
            "axis_error_deg": round(float(fid.z_rot_deg.mean() - true.z_rot_deg.mean()), 3),
            "offset_error_deg": round(float(np.mean(fid.tilt_deg - nominal) - levelled), 3),
            "beads": results["beads"]["n_landmarks"],
            "residual_px": round(results["fiducial"]["rms_px"], 3),
        },
        "patches": {
            "grid_rms_px": round(
                rms(reprojection_difference(patches, true, grid, remove_tilt_offset=True)) / bin_px, 3
            ),
            "patches": results["patches"]["n_patches"],
            "residual_px": round(results["patches"]["rms_px"], 3),
        },
    }


def simulation(path: str | None) -> Path:
    from tomoforge.simulate import simulate

    folder = Path(path or os.environ.get("TOMOFORGE_SMALL_SIMULATION") or "/tmp/bench_align/sim")
    if not (folder / "simulation.json").exists():
        simulate(folder, preset="small", seed=1, progress=False)
    return folder


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument(
        "--sim",
        default=None,
        help="a finished `small` seed-1 simulation (default: "
        "$TOMOFORGE_SMALL_SIMULATION, else simulated into <outdir>/sim)",
    )
    ap.add_argument("--outdir", default="/tmp/bench_align")
    ap.add_argument("--repeats", type=int, default=2, help="rounds; times are medians")
    ap.add_argument("--threads", type=int, default=2, help="torch threads")
    ap.add_argument("--no-write", action="store_true", help="do not update benchmarks/RESULTS.md")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    out = Path(args.outdir)
    sim = simulation(args.sim)
    truth = json.loads((sim / "truth" / "TS_01" / "truth.json").read_text())
    stack = out / "TS_01_sums.mrc"
    if not stack.exists():
        out.mkdir(parents=True, exist_ok=True)
        write_mrc(stack, frame_sums(sim, truth), truth["pixel_size_A"], overwrite=True)
    rounds, peers, results = [], [], {}
    for _ in range(max(1, args.repeats)):
        load = round(os.getloadavg()[0], 2)
        peers.append(peer_comparison(sim, truth))
        timing, results = step_timings(stack, truth, out / "runs")
        rounds.append(
            {
                "load_before": load,
                **timing,
                **{
                    f"peer_{k}": {"wall_s": v["wall_s"], "cpu_s": v["cpu_s"]}
                    for k, v in peers[-1].items()
                    if isinstance(v, dict)
                },
            }
        )
    keys = [k for k in rounds[0] if k != "load_before"]
    med = {k: {m: round(statistics.median(r[k][m] for r in rounds), 2) for m in ("wall_s", "cpu_s")} for k in keys}
    result = {
        "benchmark": "align",
        "preset": "small",
        "seed": 1,
        "peer": peers[-1],
        "accuracy": accuracy(results, truth),
        "median": med,
        "rounds": rounds,
        "machine": machine(),
    }
    print(json.dumps(result, indent=1, default=str))
    if not args.no_write:
        write_section(result)


def machine() -> dict:
    return {**machine_info(), "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY", "")}


def write_section(r: dict) -> None:
    """The align section of RESULTS.md (between the markers), from one run of this script."""
    m, p, med, acc = r["machine"], r["peer"], r["median"], r["accuracy"]
    loads = [x["load_before"] for x in r["rounds"]]

    def row(label: str, key: str) -> str:
        v = p[key]
        t = med[f"peer_{key}"]
        ends = [v["per_tilt_px"][k] for k in ("-60", "60")]
        return (
            f"| {label} | {v['median_px']:.2f} | {v['max_px']:.2f} | {ends[0]:.2f} / {ends[1]:.2f} | "
            f"{t['wall_s']:.1f} | {t['cpu_s']:.1f} |"
        )

    peer_rows = [
        row("tomoforge `coarse_alignment` (chain + projection matching)", "tomoforge"),
        row("tomoforge, the stretched-correlation chain alone", "tomoforge_chain"),
    ]
    if "tiltxcorr" in p:
        peer_rows.append(row(f"teamtomo torch-tiltxcorr {p['tiltxcorr']['version']} `tiltxcorr`", "tiltxcorr"))
    names = {
        "coarse_alignment": "coarse-alignment",
        "fiducial_model": "fiducial-model",
        "fiducial_alignment": "fiducial-alignment",
        "patch_tracking": "patch-tracking",
    }
    result_of = {
        "coarse_alignment": f"shifts: median {acc['coarse']['median_px']:.2f} px, max {acc['coarse']['max_px']:.2f} px",
        "fiducial_model": f"{acc['fiducial']['beads']} beads tracked",
        "fiducial_alignment": (
            f"beads {acc['fiducial']['beads_rms_px']:.3f} px RMS, axis "
            f"{acc['fiducial']['axis_error_deg']:+.3f}°, levelled offset "
            f"{acc['fiducial']['offset_error_deg']:+.3f}°, residual {acc['fiducial']['residual_px']:.3f} px"
        ),
        "patch_tracking": (
            f"{acc['patches']['patches']} patches, specimen grid {acc['patches']['grid_rms_px']:.3f} px RMS, "
            f"residual {acc['patches']['residual_px']:.3f} px"
        ),
    }
    step_rows = [f"| `{names[k]}` | {med[k]['wall_s']:.1f} | {med[k]['cpu_s']:.1f} | {result_of[k]} |" for k in names]
    per_tilt = ["Per view (nominal tilt: error px):", ""]
    for key in ("tomoforge", "tomoforge_chain", "tiltxcorr"):
        if key in p:
            per_tilt += [f"- {key}: " + " ".join(f"{k}:{v:.1f}" for k, v in p[key]["per_tilt_px"].items())]
    lines = [
        "## Tilt-series alignment, `python benchmarks/align.py`",
        "",
        f"{m['date']}, commit {m['git']}, {m['nproc']} cores ({m['cpu']}), torch {m['torch']} ({m['torch_threads']} "
        f"threads, OMP_WAIT_POLICY={m['omp_wait_policy'] or 'unset'}). Shared machine: load average "
        f"{min(loads):.1f}–{max(loads):.1f} before the {len(loads)} rounds (times: median).",
        "",
        f"**Coarse alignment beside torch-tiltxcorr.** Data: the noise-free tilt series of `small` (seed 1: 41 tilts "
        f"±60°, 16 gold beads on both surfaces of an 1100 Å slab tilted 2°, true random stage shifts, the tilt axis "
        f"drifting 84.9→85.3°, tilt offset 0.7°) Fourier-binned to {p['image'][0]}² ({p['pixel_size_A']:g} Å/px). "
        f"Both get the nominal tilts, axis 85° and a {LOW_PASS_A:g} Å low-pass. Error per view: the shift against the "
        "truth after removing the best common 3D translation (the free gauge), px at 512².",
        "",
        "| method | median (px) | max (px) | −60° / +60° (px) | wall (s) | CPU (s) |",
        "|---|---:|---:|---|---:|---:|",
        *peer_rows,
        "",
        f"Slab found by ours: {p['tomoforge']['slab_thickness_A']} Å; projection-matching corrections per round (px): "
        f"{', '.join(f'{s:.2f}' for s in p['tomoforge']['step_rms_px'])}.",
        "",
        *per_tilt,
        "",
        "Caveats: on these data the two gold layers, 1000 Å apart, move 8.7·cos β px apart between neighbouring "
        "views (3° at 6 Å/px) and dominate the correlation, so each pairwise step locks onto one layer or the other: "
        "tiltxcorr's error moves by about ±4 px per view (so does our chain, less, with its cumulative reference). "
        "Its sign convention was checked on a flat synthetic specimen, where it is accurate (median 0.08 px, max "
        "0.53 px). The issue's figure for it (median 0.93 px, max 6.4 px) came from other data. Neither method "
        "models the axis drift or the tilt offset; both are scored the same way.",
        "",
        "**Time per tilt series of each step** (41 tilts of 1024², the gain-corrected frame sums, 3 Å/px): the "
        "protocol's task with its default params (binning 4), reading the stack included; the accuracy on these "
        "noisy sums at binning 4 (12 Å/px), the free translation and, for the models, the free rotation about the "
        "tilt axis removed (the levelled offset is compared with the truth's plus the slab's tilt about Y).",
        "",
        "| step | wall (s) | CPU (s) | result |",
        "|---|---:|---:|---|",
        *step_rows,
    ]
    replace_section(START, END, lines)


if __name__ == "__main__":
    main()
