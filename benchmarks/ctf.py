"""Benchmark: CTF estimation of the simulator's `small` tilt series (41 tilts of 1024², 3 Å/px, ±60°),
tomoforge beside teamtomo's torch-ctf-estimation on the same tilt images.

    python benchmarks/ctf.py [--sim /tmp/tf_small] [--no-write]

Two image sets: the recorded movies summed (gain applied, frames aligned with the true shifts, as
tests/methods/ctf/test_estimate_series.py builds them) and the noise-free series of the truth.
Methods: tomoforge ``estimate_tilt_series`` (the series: consensus defocus, shared astigmatism),
tomoforge ``fit_image`` per image (one image alone, its tilt known), and torch-ctf-estimation 0.6
``estimate_ctf`` per image (1D then 2D fit; defocus grid 1×1×1, and its linear tilt-plane model on a
2×2 grid), all with box/patch 512, 50–6 Å, defocus 1–5 µm. The error is the fitted mean defocus
(U + V) / 2 minus the truth where the image centre sees the specimen's mid-plane (no method here is told the
alignment), reported as the median |error| per tilt class.

torch-ctf-estimation is installed into the venv for this script only (``pip install --no-deps
torch-ctf-estimation teamtomo-basemodel einops``); it imports torchvision for one function,
``transforms.functional.gaussian_blur``, and torchvision has no CPU wheel for torch 2.13 here, so this
script puts benchmarks/ctf_shim (that function re-implemented: separable Gaussian, reflect padding)
first on the path. Prints one JSON object and rewrites the ctf section of benchmarks/RESULTS.md.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np
import torch

from tomoforge.io.movies import read_gain, read_movie
from tomoforge.io.mrc import read_mrc
from tomoforge.methods.ctf.estimate import FitSettings, Optics, estimate_tilt_series, fit_image
from tomoforge.methods.fourier import fourier_shift_2d
from tomoforge.methods.rotations import tilt_projection_matrix

HERE = Path(__file__).parent
sys.path.insert(0, str(HERE))
from results_md import machine_info, replace_section  # noqa: E402 - the benchmarks folder, run as a script

START, END = "<!-- ctf:start -->", "<!-- ctf:end -->"
CLASSES = {"|tilt| ≤ 40°": lambda a: a <= 40, "|tilt| ≥ 30°": lambda a: a >= 30, "all": lambda a: a >= 0}


def load(sim: Path) -> tuple[dict, dict[str, torch.Tensor]]:
    if not (sim / "simulation.json").is_file():
        from tomoforge.simulate import simulate

        simulate(sim, preset="small", seed=1, progress=False)
    from tomoforge.simulate import load_simulation

    result = load_simulation(sim)
    ts = result.tilt_series[0]
    truth = ts.truth
    gain = torch.from_numpy(read_gain(result.gain))
    sums = []
    for movie, tilt in zip(ts.movies, truth["tilts"]):
        shifts = torch.tensor(tilt["frame_shifts_A"])[:, [1, 0]] / truth["pixel_size_A"]
        sums.append(fourier_shift_2d(torch.from_numpy(read_movie(movie)) * gain, -shifts).sum(0))
    return truth, {
        "recorded (summed movies)": torch.stack(sums),
        "noise-free": torch.from_numpy(read_mrc(ts.noise_free_stack)),
    }


def optics(truth: dict) -> Optics:
    return Optics(truth["pixel_size_A"], truth["voltage_kV"], truth["cs_mm"], truth["amplitude_contrast"])


def ours_series(images, truth) -> tuple[list[tuple[float, float]], float]:
    tilts = truth["tilts"]
    start = time.perf_counter()
    result = estimate_tilt_series(
        images,
        optics(truth),
        [t["nominal_tilt_deg"] for t in tilts],
        truth["tilt_axis_angle_deg"],
        FitSettings(resolution_high_A=6.0),
        accumulated_dose=[t["accumulated_dose"] for t in tilts],
    )
    return [(f.defocus_A, f.astigmatism_angle_deg) for f in result.fits], time.perf_counter() - start


def ours_single(images, truth) -> tuple[list[tuple[float, float]], float]:
    start, out = time.perf_counter(), []
    for image, t in zip(images, truth["tilts"]):
        f = fit_image(
            image,
            optics(truth),
            FitSettings(resolution_high_A=6.0),
            t["nominal_tilt_deg"],
            truth["tilt_axis_angle_deg"],
        )
        out.append((f.defocus_A, f.astigmatism_angle_deg))
    return out, time.perf_counter() - start


def teamtomo(images, truth, linear: bool) -> tuple[list[tuple[float, float]], float]:
    sys.path.insert(0, str(HERE / "ctf_shim"))
    from torch_ctf_estimation import estimate_ctf
    from torch_ctf_estimation.models import CTFFittingParams, OpticalParams

    opt = OpticalParams(
        pixel_spacing_angstroms=truth["pixel_size_A"],
        voltage_kev=truth["voltage_kV"],
        spherical_aberration_mm=truth["cs_mm"],
        amplitude_contrast_fraction=truth["amplitude_contrast"],
        target_pixel_spacing_angstroms=truth["pixel_size_A"],
    )
    grid = (
        {"defocus_grid_resolution": (1, 2, 2), "defocus_model": "linear"}
        if linear
        else {"defocus_grid_resolution": (1, 1, 1)}
    )
    params = CTFFittingParams(
        frequency_fit_range_angstroms=(50.0, 6.0), defocus_range_microns=(1.0, 5.0), patch_sidelength=512, **grid
    )
    start, out = time.perf_counter(), []
    for image in images:
        fit = estimate_ctf(image[None], opt, params)[2]
        out.append((0.5 * (fit.defocus_u + fit.defocus_v) * 1e4, float(fit.astigmatism_angle or 0.0)))
    return out, time.perf_counter() - start


def defocus_at_image_centre(t: dict) -> float:
    """The truth's mean defocus (Å) where the image centre sees the specimen's mid-plane: the truth is given at
    the specimen centre, which projects (XShift, YShift) away from the image centre, that is up to a few hundred
    Å × tan β higher or lower. Every method here fits an image with no alignment, so this is its target."""
    m = tilt_projection_matrix(t["y_tilt_deg"], t["z_rot_deg"], t["x_tilt_deg"])
    height = (m[0, 2] * t["x_shift_A"] + m[1, 2] * t["y_shift_A"]) / m[2, 2]  # of the plane z = 0 at the centre
    return 0.5 * (t["defocus_u_A"] + t["defocus_v_A"]) + height


def summary(fits: list[tuple[float, float]], truth: dict) -> dict:
    tilts = truth["tilts"]
    angle = np.array([abs(t["nominal_tilt_deg"]) for t in tilts])
    err = np.array([f[0] - defocus_at_image_centre(t) for f, t in zip(fits, tilts)])
    astig = np.array([t["defocus_u_A"] - t["defocus_v_A"] for t in tilts])
    dang = np.array([abs((f[1] - t["defocus_angle_deg"] + 90) % 180 - 90) for f, t in zip(fits, tilts)])
    out = {name: round(float(np.median(np.abs(err[cls(angle)]))), 1) for name, cls in CLASSES.items()}
    out["astigmatism angle error, median over astigmatism > 500 Å (°)"] = round(float(np.median(dang[astig > 500])), 1)
    out["errors_A"] = [round(float(e)) for e in err]
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sim", type=Path, default=Path("/tmp/tf_small"), help="a `small` seed-1 simulation folder")
    ap.add_argument("--no-write", action="store_true", help="do not update benchmarks/RESULTS.md")
    args = ap.parse_args()
    torch.set_num_threads(os.cpu_count() or 1)
    truth, sets = load(args.sim)
    methods = {
        "tomoforge estimate_tilt_series (series)": ours_series,
        "tomoforge fit_image (each image alone)": ours_single,
        "torch-ctf-estimation 0.6 (grid 1×1×1)": lambda i, t: teamtomo(i, t, False),
        "torch-ctf-estimation 0.6 (linear tilt plane, 2×2)": lambda i, t: teamtomo(i, t, True),
    }
    results: dict = {
        "machine": machine_info(),
        "tilts": len(truth["tilts"]),
        "image": [1024, 1024],
        "pixel_size_A": truth["pixel_size_A"],
        "sets": {},
    }
    for set_name, images in sets.items():
        results["sets"][set_name] = {}
        for name, fn in methods.items():
            load_before = round(os.getloadavg()[0], 2)
            fits, seconds = fn(images, truth)
            results["sets"][set_name][name] = {
                **summary(fits, truth),
                "s_per_series": round(seconds, 1),
                "load_before": load_before,
            }
    results["load_after"] = round(os.getloadavg()[0], 2)
    print(json.dumps(results, indent=1, ensure_ascii=False))
    if not args.no_write:
        write(results)


def write(r: dict) -> None:
    m = r["machine"]
    lines = [
        "## CTF estimation (`python benchmarks/ctf.py`)",
        "",
        f"{m['date']}, commit {m['git']}, {m['nproc']} cores ({m['cpu']}), torch {m['torch']}, load average "
        f"{m['load']} before, {r['load_after']} after (the machine is shared). Simulator `small` (seed 1): "
        f"{r['tilts']} tilts ±60°, 1024², {r['pixel_size_A']} Å/px, defocus ≈ 3.7 µm ± 0.1 µm per tilt, "
        "astigmatism ≈ 500 Å. Median |error| (Å) of the mean defocus against the truth at the image centre; "
        "time per tilt series (images in memory).",
        "",
    ]
    key = "astigmatism angle error, median over astigmatism > 500 Å (°)"
    for set_name, rows in r["sets"].items():
        lines += [
            f"**{set_name}**",
            "",
            "| method | tilt within ±40° | tilt beyond ±30° | all | astig. angle (°) | s / series |",
            "|---|---:|---:|---:|---:|---:|",
        ]
        for name, v in rows.items():
            lines.append(
                f"| {name} | {v['|tilt| ≤ 40°']:.0f} | {v['|tilt| ≥ 30°']:.0f} | {v['all']:.0f} | "
                f"{v[key]:.1f} | {v['s_per_series']:.1f} |"
            )
        lines.append("")
    lines += [
        "torch-ctf-estimation runs with benchmarks/ctf_shim in place of torchvision (its one use, "
        "`gaussian_blur`, re-implemented), installed for this script only. The recorded images' Thon rings "
        "come mostly from the vitreous ice's texture (simulate/ice.py), as in real data; the noise-free "
        "series holds the objects only (proteins, membranes, gold), so its rings are weaker at high "
        "frequency but free of shot noise."
    ]
    replace_section(START, END, lines)


if __name__ == "__main__":
    main()
