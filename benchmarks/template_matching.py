"""Benchmark: template matching per rotation and in total, against pyTME and the FFT bound, side by side.

    python benchmarks/template_matching.py [--shape 64 128 128] [--rotations 48] [--threads 2] [--repeat 2]
                                           [--json FILE] [--no-write]
    python benchmarks/template_matching.py --cell [--rotations 4] [--memory-gb 6]

``--cell``: the `cell` preset's size instead: a tomogram of 512 × 512 × 160 voxels (its 1024² images of 5 Å at
bin 2, 1600 Å of ice: 10 Å voxels), the ribosome's box at 10 Å (37³, spherical mask of radius 17), random data
(the time of an FFT search depends on the sizes only); per rotation as below, and the total of the preset (2
tomograms) at a 7° step extrapolated from it: rotations (43,298, the ribosome has no symmetry) × per rotation × 2.
Its own RESULTS.md section (template_matching_cell).

Same tomogram, template, mask and rotations for all: the synthetic tomogram of the tests
(tests/methods/picking/synthetic.py: copies of an asymmetric template, CTF- and dose-weighted, noise) at
``--shape`` (z, y, x), the template padded to 17³ (an odd box: both programs then rotate about the same
voxel), a spherical mask of radius 7, the first ``--rotations`` of a 7° sampling. Ours: ``match_template``
(LNCC under a spherical mask, no weighting, scipy.fft on the CPU with ``--threads`` threads). pyTME: its
``FLCSphericalMask`` score (the same quantity: the two score maps agree, r and max |difference| reported)
through ``match_exhaustive`` with ``MaxScoreOverRotations``, linear interpolation, job_schedule (1, threads).
The FFT bound: one forward and one inverse real FFT of the tomogram's size per rotation, measured with torch,
scipy.fft, scipy's pocketfft into kept arrays, and FFTW through pyFFTW (pyTME's library; GPL, measured only).
Our tile-sized steps per rotation (box transform, product + inverse, best-score update) with scipy and torch.
Ours counts one rotation's scores into the single-rotation score statistics per run (``statistics_rotations=1``),
the same in the runs of N and 2N rotations: a search counts ~32 rotations whatever its length, so that per
rotation their cost vanishes in a full search and would otherwise be counted in every rotation of these short runs.
The run fails (exit status 1, no RESULTS.md change) when our score map disagrees with pyTME's (r < 0.99999).

``--band-limits`` (voxels; default none, and 2 and 3.6 with ``--cell``): ours again with the search band-limited
as the template-matching protocol does by default (a low-pass at its target resolution, ``resolution_A``: 2
voxels unless given, the Nyquist sphere; 3.6 voxels = 36 Å at the cell's 10 Å, the resolution for which 7° is
Crowther's step for the ribosome's 296 Å), given as ``radial_filter`` (the protocol's raised-cosine
``bandpass_radial``); our transforms skip the spectrum's zero columns. pyTME gets the same volume and template
filtered the same way beforehand (its time depends on the sizes only: it is timed once, unfiltered) and its
score map is compared with ours (r ≥ 0.9999: ours filters the template after rotating it, pyTME's input is
filtered before).

Per rotation = (time for 2N rotations − time for N) / N, so that each program's set-up is left out; the
totals for N rotations are also given. Wall and CPU (process) seconds; the minimum of ``--repeat`` runs
(the machine is shared). Prints one JSON object and rewrites the template_matching section of RESULTS.md.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

# OpenMP threads that sleep when idle instead of spinning: on a shared machine spinning threads fight the
# others' processes for the cores and a 2-thread FFT takes ten times longer. Set before torch loads OpenMP.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import numpy as np  # noqa: E402
import torch  # noqa: E402

HERE = Path(__file__).parent
sys.path[:0] = [str(HERE.parent), str(HERE)]  # this checkout's tomoforge and tests, not installed ones; results_md
from results_md import machine_info, replace_section  # noqa: E402

from tests.methods.picking import synthetic  # noqa: E402
from tomoforge.methods.picking.angles import angular_sampling, rotation_count  # noqa: E402
from tomoforge.methods.picking.template_matching import match_template  # noqa: E402
from tomoforge.methods.rotations import xyz_to_zyx_matrix  # noqa: E402

START, END = "<!-- template_matching:start -->", "<!-- template_matching:end -->"
CELL_START, CELL_END = "<!-- template_matching_cell:start -->", "<!-- template_matching_cell:end -->"
CELL_SHAPE, CELL_BOX, CELL_TOMOGRAMS = (160, 512, 512), 37, 2  # the box odd, as 17³ below


def cpu_seconds() -> float:
    """CPU seconds of this process (all threads), of its live child processes (pyTME's joblib workers persist
    between calls) and of its finished ones."""
    import psutil

    me = psutil.Process()
    total = sum(me.cpu_times()[:4])  # user, system, children's user and system (the finished ones)
    for child in me.children(recursive=True):
        try:
            total += sum(child.cpu_times()[:2])
        except psutil.NoSuchProcess:
            pass
    return total


def clock(fn) -> tuple[float, float, object]:
    """(wall s, CPU s, result) of ``fn()``."""
    w, c = time.perf_counter(), cpu_seconds()
    out = fn()
    return time.perf_counter() - w, cpu_seconds() - c, out


def per_call(fn, repeat: int, loops: int) -> tuple[float, float]:
    """Wall and CPU seconds of one ``fn()``: ``loops`` calls timed together, divided, the minimum over
    ``repeat`` such runs (CPU clocks tick in 10 ms), after one call to warm up."""
    fn()
    best = (np.inf, np.inf)
    for _ in range(repeat):
        w, c, _ = clock(lambda: [fn() for _ in range(loops)])
        best = (min(best[0], w / loops), min(best[1], c / loops))
    return best


def fft_bounds(shape: tuple[int, int, int], threads: int, repeat: int, loops: int = 6) -> dict:
    """One forward and one inverse real FFT of ``shape`` (float32) per call, with each library: torch
    (``rfftn`` + ``irfftn``), scipy.fft's public functions (``workers=threads``), scipy's pocketfft writing into
    kept arrays (as ``match_template`` on the CPU), and FFTW through pyFFTW (pyTME's library, planned with
    FFTW_MEASURE) on 1 thread (as each of pyTME's worker processes) and on ``threads``."""
    import scipy.fft
    from scipy.fft._pocketfft import pypocketfft as pocket

    x = torch.randn(shape)
    xn = x.numpy()
    half = (*shape[:2], shape[2] // 2 + 1)
    spec, out = np.empty(half, np.complex64), np.empty(shape, np.float32)

    def kept() -> None:
        pocket.r2c(xn, axes=(0, 1, 2), forward=True, inorm=0, out=spec, nthreads=threads)
        pocket.c2c(spec, axes=(0, 1), forward=False, inorm=0, out=spec, nthreads=threads)
        pocket.c2r(spec, axes=(2,), lastsize=shape[2], forward=False, inorm=0, out=out, nthreads=threads)

    bounds = {
        "torch": per_call(lambda: torch.fft.irfftn(torch.fft.rfftn(x), s=shape), repeat, loops),
        "scipy": per_call(
            lambda: scipy.fft.irfftn(scipy.fft.rfftn(xn, workers=threads), s=shape, workers=threads), repeat, loops
        ),
        "scipy_kept_arrays": per_call(kept, repeat, loops),
    }
    try:
        import pyfftw
    except ImportError:
        return {k: {"per_rotation_s": w, "per_rotation_cpu_s": c} for k, (w, c) in bounds.items()}
    real, cplx = pyfftw.empty_aligned(shape, "float32"), pyfftw.empty_aligned(half, "complex64")
    for t in sorted({1, threads}):
        fwd = pyfftw.FFTW(real, cplx, axes=(0, 1, 2), flags=("FFTW_MEASURE",), threads=t)
        inv = pyfftw.FFTW(cplx, real, axes=(0, 1, 2), direction="FFTW_BACKWARD", flags=("FFTW_MEASURE",), threads=t)
        real[:] = xn
        bounds[f"fftw_{t}_thread"] = per_call(lambda f=fwd, i=inv: (f(), i()), repeat, loops)
    return {k: {"per_rotation_s": w, "per_rotation_cpu_s": c} for k, (w, c) in bounds.items()}


def components(shape: tuple[int, int, int], box: int, repeat: int, loops: int = 6) -> dict:
    """Per rotation, each tile-sized step of ``match_template`` with each FFT library: the box's pruned
    forward transform, the product with the tile's spectrum and the inverse transform, the best-score update,
    and the three together (the box's rotation and weighting are on n³ voxels and left out)."""
    from tomoforge.methods.picking.correlation import BestScore, TileCorrelator

    tile, boxed = torch.randn(shape), torch.randn((box, box, box))
    out = {}
    for library in ("scipy", "torch"):
        search = TileCorrelator(tile, None, box, scipy_fft=library == "scipy")
        tracker = BestScore(shape, tile.device)
        spec = search.box_spectrum(boxed).clone()
        cc = search.correlate(search.box_spectrum(boxed)).clone()
        steps = {
            "box_forward": lambda s=search: s.box_spectrum(boxed),
            "product_inverse": lambda s=search, f=spec: s.correlate(f.clone()),
            "copy_of_a_spectrum": lambda f=spec: f.clone(),  # subtracted from the step above
            "best_update": lambda t=tracker, c=cc: t.update(c, 1),
            "whole": lambda s=search, t=tracker: s.update_best(boxed, t, 1),
        }
        timed = {k: per_call(f, repeat, loops) for k, f in steps.items()}
        copy = timed.pop("copy_of_a_spectrum")
        w, c = timed["product_inverse"]
        timed["product_inverse"] = (w - copy[0], c - copy[1])
        search.close()
        tracker.close()
        out[library] = {k: {"per_rotation_s": w, "per_rotation_cpu_s": c} for k, (w, c) in timed.items()}
    return out


def pytme_search(volume: np.ndarray, template: np.ndarray, mask: np.ndarray, rotations: np.ndarray, threads: int):
    from tme.analyzer import MaxScoreOverRotations
    from tme.matching_data import MatchingData
    from tme.matching_exhaustive import MATCHING_EXHAUSTIVE_REGISTER, match_exhaustive

    data = MatchingData(volume.copy(), template.copy())
    data.template_mask = mask.copy()
    # pyTME's matrices act on array indices (z, y, x) the other way round: the transpose of ours in (z, y, x)
    data.rotations = np.ascontiguousarray(np.transpose(xyz_to_zyx_matrix(rotations), (0, 2, 1)))
    setup, score = MATCHING_EXHAUSTIVE_REGISTER["FLCSphericalMask"]
    result = match_exhaustive(
        data, score, setup, MaxScoreOverRotations, {}, job_schedule=(1, threads), interpolation_order=1
    )
    return np.asarray(result[0])


def timed_pair(search, n: int, repeat: int) -> dict:
    """Total for n and 2n rotations (minimum of ``repeat``, after a warm-up) and the marginal per rotation."""
    search(2)
    runs = {}
    for k in (n, 2 * n):
        best = (np.inf, np.inf)
        for _ in range(repeat):
            w, c, _ = clock(lambda k=k: search(k))
            best = (min(best[0], w), min(best[1], c))
        runs[k] = best
    return {
        "total_s": runs[n][0],
        "total_cpu_s": runs[n][1],
        "total_2n_s": runs[2 * n][0],
        "per_rotation_s": (runs[2 * n][0] - runs[n][0]) / n,
        "per_rotation_cpu_s": (runs[2 * n][1] - runs[n][1]) / n,
    }


BOUND_NAMES = {
    "torch": "torch `rfftn` + `irfftn`",
    "scipy": "scipy.fft `rfftn` + `irfftn` (workers = threads)",
    "scipy_kept_arrays": "scipy's pocketfft into kept arrays (as ours)",
    "fftw_1_thread": "FFTW (pyFFTW, FFTW_MEASURE), 1 thread (as each pyTME worker)",
}
STEP_NAMES = {
    "box_forward": "box's pruned forward transform",
    "product_inverse": "product with the tile's spectrum + inverse transform",
    "best_update": "best score and rotation, in place",
    "whole": "the three (on the CPU: in two cached passes, `update_best`)",
}


def bound_rows(r: dict, scale: float, fmt: str) -> list[str]:
    """Table rows: the FFT pair per library (wall, CPU), ``scale`` × seconds."""
    rows = []
    for key, v in r["fft_bounds"].items():
        name = BOUND_NAMES[key] if key in BOUND_NAMES else f"FFTW (pyFFTW, FFTW_MEASURE), {key.split('_')[1]} threads"
        w, c = format(scale * v["per_rotation_s"], fmt), format(scale * v["per_rotation_cpu_s"], fmt)
        rows.append(f"| FFT bound: {name} | {w} | {c} |")
    return rows


def component_lines(r: dict) -> list[str]:
    """A table of ``match_template``'s tile-sized steps per rotation, per FFT library (ms)."""
    c = r["components"]
    lines = [
        "| step, per rotation | scipy: wall ms | CPU ms | torch: wall ms | CPU ms |",
        "|---|---:|---:|---:|---:|",
    ]
    for key, name in STEP_NAMES.items():
        s, t = c["scipy"][key], c["torch"][key]
        lines.append(
            f"| {name} | {1e3 * s['per_rotation_s']:.1f} | {1e3 * s['per_rotation_cpu_s']:.1f} "
            f"| {1e3 * t['per_rotation_s']:.1f} | {1e3 * t['per_rotation_cpu_s']:.1f} |"
        )
    return lines


def band_rows(r: dict, scale: float, fmt: str, voxel_A: float | None) -> list[str]:
    """Table rows: ours band-limited (wall, CPU per rotation), ``scale`` × seconds."""
    rows = []
    for limit, v in r.get("band_limited", {}).items():
        name = f"{limit} voxels" + (f" ({float(limit) * voxel_A:g} Å)" if voxel_A else "")
        w, c = format(scale * v["per_rotation_s"], fmt), format(scale * v["per_rotation_cpu_s"], fmt)
        rows.append(f"| tomoforge, band-limited to {name} | {w} | {c} |")
    return rows


def band_lines(r: dict) -> list[str]:
    """A paragraph on the band-limited runs: their ratios to pyTME and agreement with it."""
    items = [
        f"{limit} voxels: pyTME ÷ ours {v['speedup_vs_pytme_per_rotation']:.2f} in wall time, "
        f"{v['speedup_vs_pytme_per_rotation_cpu']:.2f} in CPU time, r = {v['agreement']['r']:.6f} (max |difference| "
        f"{v['agreement']['max_abs_difference']:.1e})"
        for limit, v in r.get("band_limited", {}).items()
    ]
    if not items:
        return []
    return [
        "Band-limited (the protocol's default search is band-limited to its target resolution, the Nyquist "
        "sphere unless given; pyTME given the same filtered volume and template, timed once unfiltered: its "
        "transforms do not depend on the content): " + "; ".join(items) + ".",
        "",
    ]


def verdict(r: dict) -> str:
    """The floors, with the numbers: ≥ 2× pyTME per rotation, ≤ 1.5× the FFT bound (each library's)."""
    o, p, b = r["ours"], r["pytme"], r["fft_bounds"]
    ratios = ", ".join(
        f"{k} {o['per_rotation_s'] / v['per_rotation_s']:.2f} wall / {o['per_rotation_cpu_s'] / v['per_rotation_cpu_s']:.2f} CPU"
        for k, v in b.items()
    )
    return (
        f"Per rotation, pyTME's time ÷ ours: {p['per_rotation_s'] / o['per_rotation_s']:.2f} in wall time, "
        f"{p['per_rotation_cpu_s'] / o['per_rotation_cpu_s']:.2f} in CPU time (issue floor: ≥ 2). Ours ÷ the FFT "
        f"bound (floor: ≤ 1.5): {ratios}. The score maps agree: r = {r['agreement']['r']:.5f}, max |difference| "
        f"{r['agreement']['max_abs_difference']:.1e}."
    )


def header(r: dict, what: str) -> str:
    m = r["machine"]
    return (
        f"{m['date']}, commit {m['git']}, {m['nproc']} cores ({m['cpu']}), torch {m['torch']} "
        f"({m['torch_threads']} threads, OMP_WAIT_POLICY={os.environ.get('OMP_WAIT_POLICY', 'unset')}), scipy "
        f"{r['scipy']}, load average {m['load']} before, {r['load_after']} after (shared machine: wall times "
        f"depend on the others' load; CPU times less). {what} Per rotation = (time for {2 * r['rotations']} − "
        f"time for {r['rotations']}) / {r['rotations']} (set-up left out); minimum of the runs. Ours: "
        "`match_template` (scipy.fft on the CPU); pyTME "
        f"{r['pytme']['version']}: `FLCSphericalMask`, linear interpolation, `job_schedule` (1, threads)."
    )


WHY_PYTME = (
    "Why pyTME is below torch's FFT pair: it transforms with FFTW (pyFFTW, plans measured once, one thread in "
    "each of its 2 worker processes), whose pair costs about half torch's CPU time (torch's `irfftn` alone costs "
    "twice its `rfftn`), and it runs rotations side by side in processes rather than threads inside one "
    "transform. Its transforms are float32 like ours, of the tomogram's own shape (no padding; 512 × 512 × 160 "
    "is a fast size), real along x like ours; it rotates the template in real space (no Fourier-space rotation) "
    "and per rotation does one full forward transform of the zero-padded template, one inverse and the running "
    "maximum. Ours does one inverse transform, a pruned forward one (x, then z, then y: "
    "only the last pass runs over the whole grid) and the maximum, with no allocation per rotation (scipy's "
    "pocketfft writing into kept arrays: the public `irfftn`'s fresh output and temporaries cost as much CPU as "
    "its arithmetic at this size), in two passes over the tile while a slab is in the cache (per z slab: along y "
    "forward, the product, along y inverse; per y slab: along z, along x, the maximum); a band-limited search "
    "skips the (z, kx) columns where the tile's spectrum is zero in both y passes (about 20% of them past the "
    "Nyquist sphere, 70% at 3.6 voxels) and the x frequencies past the band in the z pass. FFTW is GPL: not a dependency of "
    "tomoforge (BSD), measured only. The "
    "best-score update costs more the more voxels a rotation improves (a branch per voxel): about 1 in k at the "
    "k-th rotation, so these short runs overstate it against a full search."
)


def write_section(r: dict) -> None:
    o, p = r["ours"], r["pytme"]
    z, y, x = r["shape_zyx"]
    what = (
        f"Tomogram {x} × {y} × {z} voxels (x, y, z), template and spherical mask 17³, the first {r['rotations']} "
        "rotations of a 7° sampling; LNCC under the mask, no weighting, for both."
    )
    lines = [
        "## Template matching (`python benchmarks/template_matching.py`)",
        "",
        header(r, what),
        "",
        "| | per rotation: wall ms | CPU ms |",
        "|---|---:|---:|",
        *bound_rows(r, 1e3, ".1f"),
        f"| tomoforge `match_template` | {1e3 * o['per_rotation_s']:.1f} | {1e3 * o['per_rotation_cpu_s']:.1f} |",
        *band_rows(r, 1e3, ".1f", r.get("voxel_A")),
        f"| pyTME | {1e3 * p['per_rotation_s']:.1f} | {1e3 * p['per_rotation_cpu_s']:.1f} |",
        "",
        *band_lines(r),
        f"Totals for {r['rotations']} rotations: ours {o['total_s']:.2f} s wall ({o['total_cpu_s']:.2f} CPU s), "
        f"pyTME {p['total_s']:.2f} s ({p['total_cpu_s']:.2f} CPU s). " + verdict(r) + " A full 7° search "
        f"({r['seven_degree_rotations']} rotations) of this tomogram: {r['seven_degree_total_s'] / 60:.1f} min. "
        "No GPU was lent, so no pytom-match-pick comparison.",
        "",
        "Our tile-sized steps per rotation (the same run):",
        "",
        *component_lines(r),
    ]
    replace_section(START, END, lines)


def write_cell_section(r: dict) -> None:
    o, p = r["ours"], r["pytme"]
    z, y, x = r["shape_zyx"]
    n7 = r["seven_degree_rotations"]
    what = (
        f"A volume of the `cell` preset's tomogram size ({x} × {y} × {z} voxels of 10 Å; random data: an FFT "
        f"search's time depends on the sizes only), the ribosome's box at 10 Å ({r['template']}³, spherical "
        f"mask), the first {r['rotations']} rotations of a 7° sampling; ours in tiles of at most "
        f"{r['memory_GB']:g} GB ({r['ours_tiles']} tile)."
    )

    def hours(v: dict) -> str:
        return f"{n7 * v['per_rotation_s'] * CELL_TOMOGRAMS / 3600:.1f}"

    rows = [row + f" {hours(v)} |" for row, v in zip(bound_rows(r, 1.0, ".2f"), r["fft_bounds"].values())]
    lines = [
        "### The `cell` preset at a 7° step (`python benchmarks/template_matching.py --cell`)",
        "",
        header(r, what),
        "",
        "| | per rotation: wall s | CPU s | the preset at 7°, extrapolated: wall h |",
        "|---|---:|---:|---:|",
        *rows,
        f"| tomoforge `match_template` | {o['per_rotation_s']:.2f} | {o['per_rotation_cpu_s']:.2f} | {hours(o)} |",
        *[
            row + f" {hours(v)} |"
            for row, v in zip(band_rows(r, 1.0, ".2f", 10.0), r.get("band_limited", {}).values(), strict=True)
        ],
        f"| pyTME {p['version']} | {p['per_rotation_s']:.2f} | {p['per_rotation_cpu_s']:.2f} | {hours(p)} |",
        "",
        *band_lines(r),
        f"The total: {n7} rotations × per rotation × {CELL_TOMOGRAMS} tomograms, measured on "
        f"{2 * r['rotations']} rotations and extrapolated (not run whole). " + verdict(r),
        "",
        "Our tile-sized steps per rotation (the same run):",
        "",
        *component_lines(r),
        "",
        WHY_PYTME,
    ]
    replace_section(CELL_START, CELL_END, lines)


def band_limit(limit_voxels: float, box: int):
    """The protocol's low-pass at ``limit_voxels`` (a raised cosine 2 / box cycles/voxel wide) as a
    ``radial_filter``, and the same filter applied to a volume."""
    from tomoforge.methods.picking.template_weighting import bandpass_radial, radial_on_grid

    def radial(shape: tuple[int, int, int]) -> torch.Tensor:
        k = radial_on_grid(torch.tensor([0.0, 1.0]), torch.tensor([0.0, 1.0]), shape)
        return bandpass_radial(k, lowpass_A=limit_voxels, edge_A_inv=2.0 / box)

    def filtered(volume: np.ndarray) -> np.ndarray:
        spectrum = np.fft.rfftn(volume) * radial(volume.shape).numpy()
        return np.fft.irfftn(spectrum, s=volume.shape, axes=(0, 1, 2)).astype(np.float32)

    return radial, filtered


def agreement(a_map: np.ndarray, b_map: np.ndarray, box: int) -> dict:
    inner = (slice(box // 2 + 1, -(box // 2 + 1)),) * 3
    return {
        "r": float(np.corrcoef(a_map[inner].ravel(), b_map[inner].ravel())[0, 1]),
        "max_abs_difference": float(np.abs(a_map[inner] - b_map[inner]).max()),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--shape", type=int, nargs=3, default=[64, 128, 128])
    ap.add_argument("--rotations", type=int, default=48)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeat", type=int, default=2)
    ap.add_argument("--json", type=Path)
    ap.add_argument("--no-write", action="store_true")
    ap.add_argument("--cell", action="store_true", help="the cell preset's tomogram and ribosome sizes")
    ap.add_argument("--memory-gb", type=float, default=6.0, help="our memory budget with --cell")
    ap.add_argument("--band-limits", type=float, nargs="*", help="voxels (default: none; 2 3.6 with --cell)")
    args = ap.parse_args()
    limits = args.band_limits if args.band_limits is not None else ([2.0, 3.6] if args.cell else [])
    torch.set_num_threads(args.threads)
    shape = CELL_SHAPE if args.cell else tuple(args.shape)
    box = CELL_BOX if args.cell else 17
    if args.cell:
        volume = np.random.default_rng(1).normal(size=shape).astype(np.float32)
        template = synthetic.template(CELL_BOX, sigma_px=3.0)
    else:
        volume = synthetic.tomogram(shape, spacing=24, noise_sd=1.0, seed=1).volume
        template = np.pad(synthetic.template(), ((0, 1),) * 3)  # 17³
    a = np.arange(box) - box // 2
    z, y, x = np.meshgrid(a, a, a, indexing="ij")
    mask = ((x * x + y * y + z * z) <= (box // 2 - 1) ** 2).astype(np.float32)
    all_rotations = angular_sampling(7.0)
    n = args.rotations
    import scipy

    results: dict = {"machine": machine_info(), "shape_zyx": list(shape), "template": box, "rotations": n}
    results["scipy"] = scipy.__version__
    budget = int(args.memory_gb * 2**30) if args.cell else 2 << 30
    results["memory_GB"] = budget / 2**30

    def ours(k: int, radial=None) -> np.ndarray:
        res = match_template(
            volume,
            template,
            all_rotations[:k],
            mask=mask,
            protein_dark=False,
            batch=8,
            memory_budget_bytes=budget,
            statistics_rotations=1,  # one rotation's score moments per run, as ~32 of a 7° search's 43,298
            radial_filter=radial,
        )
        results["ours_tiles"] = res.n_tiles
        return res.scores

    def theirs(k: int) -> np.ndarray:
        return pytme_search(volume, template, mask, all_rotations[:k], args.threads)

    results["fft_bounds"] = fft_bounds(shape, args.threads, args.repeat)
    results["components"] = components(shape, box, args.repeat)
    results["ours"] = timed_pair(ours, n, args.repeat)
    results["pytme"] = timed_pair(theirs, n, args.repeat)
    from importlib.metadata import version

    results["pytme"]["version"] = version("pytme")
    results["agreement"] = agreement(ours(n), theirs(n), box)
    results["band_limited"] = {}
    for limit in limits:
        radial, filtered = band_limit(limit, box)
        timed = timed_pair(lambda k, f=radial: ours(k, f), n, args.repeat)
        same = agreement(
            ours(n, radial),
            pytme_search(filtered(volume), filtered(template), mask, all_rotations[:n], args.threads),
            box,
        )
        timed.update(
            agreement=same, speedup_vs_pytme_per_rotation=results["pytme"]["per_rotation_s"] / timed["per_rotation_s"]
        )
        timed["speedup_vs_pytme_per_rotation_cpu"] = (
            results["pytme"]["per_rotation_cpu_s"] / timed["per_rotation_cpu_s"]
        )
        results["band_limited"][f"{limit:g}"] = timed
    results["load_after"] = round(os.getloadavg()[0], 2)
    o, p = results["ours"], results["pytme"]
    results["speedup_vs_pytme_per_rotation"] = p["per_rotation_s"] / o["per_rotation_s"]
    results["speedup_vs_pytme_per_rotation_cpu"] = p["per_rotation_cpu_s"] / o["per_rotation_cpu_s"]
    results["ratio_to_fft_bounds"] = {
        k: {"wall": o["per_rotation_s"] / v["per_rotation_s"], "cpu": o["per_rotation_cpu_s"] / v["per_rotation_cpu_s"]}
        for k, v in results["fft_bounds"].items()
    }
    results["seven_degree_rotations"] = rotation_count(7.0)
    results["seven_degree_total_s"] = rotation_count(7.0) * o["per_rotation_s"]
    text = json.dumps(results, indent=1)
    print(text)
    if args.json:
        args.json.write_text(text + "\n")
    if results["agreement"]["r"] < 0.99999:
        raise SystemExit(f"our score map disagrees with pyTME's: r = {results['agreement']['r']:.6f}")
    for limit, v in results["band_limited"].items():
        if v["agreement"]["r"] < 0.9999:
            raise SystemExit(
                f"band-limited to {limit} voxels, ours disagrees with pyTME's: r = {v['agreement']['r']:.6f}"
            )
    if not args.no_write:
        (write_cell_section if args.cell else write_section)(results)


if __name__ == "__main__":
    main()
