"""Benchmark: particle extraction and averaging throughput and memory (CPU or GPU, synthetic data).

    python benchmarks/extraction.py [--particles 200] [--box 64] [--views 41] [--device cpu] [--json FILE]
                                    [--no-write]

- pseudo-subtomogram views (``extract_particle_views``): a 41-view stack of 1024² float32 images at 2 Å, the
  particles spread over the field and 300 Å in z, box ``--box`` cropped to 3/4, CTF premultiplied at each
  particle's height and dose-weighted: particles × views per second, and the total for 10,000 particles × 41
  views at that rate;
- 3D subtomograms (``extract_subtomograms``) from a 512 × 512 × 200 tomogram at box ``--box``, and their
  3D weights with the CTF at each particle's height (``subtomogram_weights``, 41 views): particles per second;
- averaging (``average_subtomograms``) of those subtomograms with their weights: particles per second and CPU
  seconds per particle (all threads; the machine's load beside it), on the padded box's Fourier grid (the
  default), on the box's own (``fine_grid=False``) and as premultiplied data (``premultiplied=True``).

Memory: the peak resident size of the process (``ru_maxrss``) after each step, and on a GPU the peak allocated.
Times are wall clock of one run after a warm-up batch. Prints one JSON object (also to ``--json``) and rewrites
the extraction section of benchmarks/RESULTS.md unless ``--no-write``.
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import resource
import sys
import time
from pathlib import Path

import numpy as np
import torch

HERE = Path(__file__).parent
sys.path[:0] = [str(HERE.parent), str(HERE)]  # this checkout's tomoforge, not an installed one; results_md
from results_md import machine_info, replace_section  # noqa: E402

from tomoforge.methods.align.projection_model import rotation_matrices  # noqa: E402
from tomoforge.methods.rotations import random_rotations  # noqa: E402
from tomoforge.methods.sta.averaging import average_subtomograms  # noqa: E402
from tomoforge.methods.sta.extraction import (  # noqa: E402
    extract_particle_views,
    extract_subtomograms,
    subtomogram_weights,
)


def peak_rss_MB() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def gpu_peak_MB(device: torch.device) -> float | None:
    return torch.cuda.max_memory_allocated(device) / 2**20 if device.type == "cuda" else None


def timed(fn, device: torch.device, cpu: list[float] | None = None) -> float:
    """Wall seconds of fn(); its CPU seconds (all threads) appended to ``cpu`` where given."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    t0, c0 = time.perf_counter(), time.process_time()
    fn()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    if cpu is not None:
        cpu.append(time.process_time() - c0)
    return time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--particles", type=int, default=200)
    ap.add_argument("--box", type=int, default=64)
    ap.add_argument("--views", type=int, default=41)
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--json", type=Path)
    ap.add_argument("--no-write", action="store_true")
    args = ap.parse_args()
    device = torch.device(args.device)
    rng = np.random.default_rng(0)
    pixel, n, box, v = 2.0, args.particles, args.box, args.views
    tilts = np.linspace(-60, 60, v)
    r = rotation_matrices(tilts, 85.0)
    shifts = rng.normal(0, 20, (v, 2))
    stack = rng.standard_normal((v, 1024, 1024)).astype(np.float32)
    positions = np.column_stack([rng.uniform(-700, 700, (n, 2)), rng.uniform(-150, 150, n)])
    defocus = np.column_stack([np.full(v, 30000.0), np.full(v, 29000.0), np.full(v, 30.0)])
    doses = np.arange(1, v + 1) * 3.0
    info = machine_info()
    out: dict = {"machine": info, "device": str(device), "particles": n, "box": box, "views": v}

    def pseudo(count: int, images: np.ndarray) -> None:
        extract_particle_views(
            images,
            positions[:count],
            view_matrices=r,
            shifts_A=shifts,
            pixel_size_A=pixel,
            box=box,
            cropped_box=box * 3 // 4,
            defocus_A=defocus,
            dose_e_A2=doses,
            device=device,
        )

    pseudo(16, stack)  # warm-up
    seconds = timed(functools.partial(pseudo, n, stack), device)
    rate = n * v / seconds
    out["pseudo"] = {
        "seconds": seconds,
        "particle_views_per_s": rate,
        "total_10000x41_s": 10000 * 41 / rate,
        "peak_rss_MB": peak_rss_MB(),
        "gpu_peak_MB": gpu_peak_MB(device),
    }
    del stack
    tomogram = rng.standard_normal((200, 512, 512)).astype(np.float32)
    centres = np.column_stack([rng.uniform(-400, 400, (n, 2)), rng.uniform(-150, 150, n)])
    holder: dict = {}

    def sub() -> None:
        holder["boxes"] = extract_subtomograms(tomogram, centres, pixel_size_A=pixel, box=box, device=device).boxes

    def weights() -> None:
        height = np.einsum("vb,nb->nv", r[:, 2], centres)
        df = np.broadcast_to(defocus, (n, v, 3)).copy()
        df[..., :2] += height[..., None]
        holder["weights"] = subtomogram_weights(box, pixel, r, dose_e_A2=doses, defocus_A=df, device=device)

    extract_subtomograms(tomogram, centres[:8], pixel_size_A=pixel, box=box, device=device)  # warm-up
    t_sub, t_w = timed(sub, device), timed(weights, device)
    out["subtomograms"] = {
        "seconds": t_sub,
        "particles_per_s": n / t_sub,
        "weights_seconds": t_w,
        "weights_particles_per_s": n / t_w,
        "peak_rss_MB": peak_rss_MB(),
        "gpu_peak_MB": gpu_peak_MB(device),
    }
    rotations = random_rotations(n, rng)
    halves = np.arange(n) % 2 + 1
    averages = {  # name: keyword arguments of average_subtomograms
        "average": {},
        "average_box_grid": {"fine_grid": False},
        "average_premultiplied": {"premultiplied": True},  # RELION's Σ D / Σ CTF² (weight_3d=ctf2 files)
    }
    for name, kwargs in averages.items():
        cpu: list[float] = []
        seconds = timed(
            functools.partial(
                average_subtomograms,
                holder["boxes"],
                rotations,
                halves,
                weights=holder["weights"],
                device=device,
                **kwargs,
            ),
            device,
            cpu,
        )
        out[name] = {
            "seconds": seconds,
            "particles_per_s": n / seconds,
            "cpu_s_per_particle": cpu[0] / n,
            "load": round(os.getloadavg()[0], 1),
            "peak_rss_MB": peak_rss_MB(),
            "gpu_peak_MB": gpu_peak_MB(device),
        }
    print(json.dumps(out, indent=1))
    if args.json:
        args.json.write_text(json.dumps(out, indent=1))
    if not args.no_write:
        p, s, a = out["pseudo"], out["subtomograms"], out["average"]
        lines = [
            "## Extraction and averaging, `python benchmarks/extraction.py`",
            "",
            f"{info['date']}, commit {info['git']}, {info['nproc']} cores ({info['cpu']}), torch {info['torch']} "
            f"with {info['torch_threads']} threads, load {info['load']} at the start; device {device}; synthetic "
            f"data, {n} particles, box {box}, {v} views.",
            "",
            "| step | rate | time | peak RSS |",
            "|---|---:|---:|---:|",
            f"| pseudo-subtomogram views (1024² views, CTF at height, dose, crop to 3/4) | "
            f"{p['particle_views_per_s']:.0f} particle views/s | {p['seconds']:.1f} s | {p['peak_rss_MB']:.0f} MB |",
            f"| 10,000 particles × 41 views at that rate | | {p['total_10000x41_s'] / 60:.1f} min | |",
            f"| 3D subtomograms from a 512² × 200 tomogram | {s['particles_per_s']:.1f} particles/s | "
            f"{s['seconds']:.1f} s | {s['peak_rss_MB']:.0f} MB |",
            f"| their 3D weights (wedge, CTF at height, dose; 41 views) | {s['weights_particles_per_s']:.1f} "
            f"particles/s | {s['weights_seconds']:.1f} s | |",
            f"| weighted average per half set | {a['particles_per_s']:.1f} particles/s "
            f"({a['cpu_s_per_particle'] * 1000:.0f} CPU ms each, load {a['load']}) | {a['seconds']:.1f} s | "
            f"{a['peak_rss_MB']:.0f} MB |",
            f"| the same on the box's own Fourier grid (`fine_grid=False`) | "
            f"{out['average_box_grid']['particles_per_s']:.1f} particles/s "
            f"({out['average_box_grid']['cpu_s_per_particle'] * 1000:.0f} CPU ms) | "
            f"{out['average_box_grid']['seconds']:.1f} s | |",
            f"| premultiplied data with Σ CTF² weights (`premultiplied=True`) | "
            f"{out['average_premultiplied']['particles_per_s']:.1f} particles/s "
            f"({out['average_premultiplied']['cpu_s_per_particle'] * 1000:.0f} CPU ms) | "
            f"{out['average_premultiplied']['seconds']:.1f} s | |",
        ]
        replace_section("<!-- extraction:start -->", "<!-- extraction:end -->", lines)


if __name__ == "__main__":
    main()
