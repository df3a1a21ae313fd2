"""reconstruct-particle throughput (particle views inserted per second) beside RELION 3.1's relion_reconstruct.

The same views for both: N views (box 64, 4 Å) of a map of Gaussian blobs projected in closed form from
random directions, each multiplied by a CTF of random defocus; inserted with their CTF² weights at padding 2
(RELION's default ``--pad 2``) into one map. tomoforge: ``methods.sta.insertion`` (the task's core: insertion
+ reconstruction), views already in memory; RELION: ``relion_reconstruct --ctf`` on the written stack and
STAR (wall time of the process, reading included). The FSC between the two maps checks that both did the
same. The total for 10,000 particles × 41 views at box 64 is extrapolated from the measured rate.

Run: ``.venv-wt/bin/python benchmarks/sta.py [--views 4000] [--device cuda]``; JSON to benchmarks/sta.json,
a section of RESULTS.md.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import starfile  # noqa: E402
import torch  # noqa: E402
from results_md import machine_info, replace_section  # noqa: E402

from tests.methods.sta.gaussians import GaussianMap  # noqa: E402
from tomoforge.io.euler import matrix_to_relion_euler  # noqa: E402
from tomoforge.io.mrc import read_mrc, write_mrc  # noqa: E402
from tomoforge.methods.ctf.transfer import ctf_2d  # noqa: E402
from tomoforge.methods.map_alignment import fourier_shell_correlation  # noqa: E402
from tomoforge.methods.rotations import random_rotations  # noqa: E402
from tomoforge.methods.sta.insertion import ViewFilters, insert_views, new_accumulator, reconstruct_map  # noqa: E402

BOX, PIXEL = 64, 4.0
START, END = "<!-- sta:start -->", "<!-- sta:end -->"
TOTAL_VIEWS = 10_000 * 41


def make_views(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray, ViewFilters]:
    rng = np.random.default_rng(seed)
    blobs = GaussianMap(BOX, count=60, sigma=1.5, radius=20.0, seed=seed)
    rotations = random_rotations(n, rng)
    views = blobs.views(rotations).astype(np.float32)
    u = rng.uniform(10000.0, 30000.0, n)
    filters = ViewFilters(
        defocus_u_A=u,
        defocus_v_A=u - 200.0,
        astigmatism_deg=rng.uniform(0, 180, n),
        dose_e_A2=np.zeros(n),
        pixel_size_A=PIXEL,
    )
    spectra = np.fft.rfft2(np.fft.ifftshift(views, axes=(1, 2)))
    for start in range(0, n, 512):  # per-view CTF (the data), in chunks to bound memory
        stop = min(start + 512, n)
        ctf = torch.stack(
            [
                ctf_2d((BOX, BOX), PIXEL, float(a), float(b), float(c))
                for a, b, c in zip(
                    filters.defocus_u_A[start:stop],
                    filters.defocus_v_A[start:stop],
                    filters.astigmatism_deg[start:stop],
                )
            ]
        ).numpy()
        spectra[start:stop] *= ctf
    views = np.fft.fftshift(np.fft.irfft2(spectra, s=(BOX, BOX)), axes=(1, 2)).astype(np.float32)
    return views, rotations, filters


def ours(
    views: np.ndarray, rotations: np.ndarray, filters: ViewFilters, device: str, pad_views: bool = True
) -> tuple[dict, np.ndarray]:
    dev = torch.device(device)
    data = torch.as_tensor(views, device=dev)
    small = new_accumulator(BOX, device=dev)
    insert_views(small, data[:64], rotations[:64], filters=filters.take(np.arange(64)))  # warm-up
    if dev.type == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    acc = new_accumulator(BOX, device=dev)
    insert_views(acc, data, rotations, filters=filters, batch=512 if dev.type == "cuda" else 64, pad_views=pad_views)
    volume = reconstruct_map(acc)
    if dev.type == "cuda":
        torch.cuda.synchronize()
    wall = time.perf_counter() - start
    return {
        "wall_s": wall,
        "views_per_s": len(views) / wall,
        "device": device,
        "threads": torch.get_num_threads(),
        "pad_views": pad_views,
    }, volume.cpu().numpy()


def relion(
    views: np.ndarray, rotations: np.ndarray, filters: ViewFilters, folder: Path
) -> tuple[dict, np.ndarray] | None:
    exe = shutil.which("relion_reconstruct")
    if exe is None:
        return None
    write_mrc(folder / "views.mrcs", views, PIXEL, overwrite=True)
    angles = matrix_to_relion_euler(rotations)
    n = len(views)
    optics = pd.DataFrame(
        {
            "rlnOpticsGroup": [1],
            "rlnOpticsGroupName": ["opticsGroup1"],
            "rlnVoltage": [300.0],
            "rlnSphericalAberration": [2.7],
            "rlnAmplitudeContrast": [0.07],
            "rlnImagePixelSize": [PIXEL],
            "rlnImageSize": [BOX],
            "rlnImageDimensionality": [2],
        }
    )
    particles = pd.DataFrame(
        {
            "rlnImageName": [f"{i + 1}@views.mrcs" for i in range(n)],
            "rlnAngleRot": angles[:, 0],
            "rlnAngleTilt": angles[:, 1],
            "rlnAnglePsi": angles[:, 2],
            "rlnOriginXAngst": np.zeros(n),
            "rlnOriginYAngst": np.zeros(n),
            "rlnDefocusU": filters.defocus_u_A,
            "rlnDefocusV": filters.defocus_v_A,
            "rlnDefocusAngle": filters.astigmatism_deg,
            "rlnOpticsGroup": np.ones(n, int),
        }
    )
    starfile.write({"optics": optics, "particles": particles}, folder / "views.star", overwrite=True)
    command = [exe, "--i", "views.star", "--o", "relion.mrc", "--ctf", "--pad", "2"]
    start = time.perf_counter()
    run = subprocess.run(command, cwd=folder, capture_output=True, text=True)
    wall = time.perf_counter() - start
    if run.returncode != 0:
        return {"error": run.stderr[-2000:], "command": " ".join(command)}, np.zeros((BOX,) * 3)
    version = subprocess.run([exe, "--version"], capture_output=True, text=True).stdout.split()
    return (
        {"wall_s": wall, "views_per_s": n / wall, "command": " ".join(command), "version": " ".join(version[:6])},
        read_mrc(folder / "relion.mrc"),
    )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--views", type=int, default=4000)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--out", default=str(Path(__file__).with_name("sta.json")))
    parser.add_argument("--no-results", action="store_true", help="do not touch RESULTS.md")
    args = parser.parse_args()
    views, rotations, filters = make_views(args.views)
    result: dict = {"machine": machine_info(), "views": args.views, "box": BOX, "padding": 2}
    result["tomoforge"], our_map = ours(views, rotations, filters, args.device)
    result["tomoforge_unpadded"], unpadded_map = ours(views, rotations, filters, args.device, pad_views=False)
    with tempfile.TemporaryDirectory() as tmp:
        got = relion(views, rotations, filters, Path(tmp))
    if got is not None:
        result["relion"], relion_map = got
        if "wall_s" in result["relion"]:
            fsc = fourier_shell_correlation(
                # RELION's CTF has the opposite sign to tomoforge's (+A at k = 0 where tomoforge's is -A), so its
                # map of the same CTF-modulated views comes out inverted: compare with -1 x it
                torch.as_tensor(-relion_map, dtype=torch.float64),
                torch.as_tensor(our_map, dtype=torch.float64),
                PIXEL,
            )[1]
            result["fsc_ours_vs_relion"] = np.round(fsc, 3).tolist()
            truth = torch.as_tensor(
                GaussianMap(BOX, count=60, sigma=1.5, radius=20.0, seed=0).volume(), dtype=torch.float64
            )
            for name, volume in (("ours", our_map), ("unpadded", unpadded_map), ("relion", -relion_map)):
                curve = fourier_shell_correlation(truth, torch.as_tensor(volume, dtype=torch.float64), PIXEL)[1]
                result[f"fsc_{name}_vs_truth"] = np.round(curve, 3).tolist()
            result["speedup"] = result["tomoforge"]["views_per_s"] / result["relion"]["views_per_s"]
            result["speedup_unpadded"] = result["tomoforge_unpadded"]["views_per_s"] / result["relion"]["views_per_s"]
    else:
        result["relion"] = {"error": "relion_reconstruct not on PATH"}
    result["total_10000x41_s"] = TOTAL_VIEWS / result["tomoforge"]["views_per_s"]
    Path(args.out).write_text(json.dumps(result, indent=1))
    print(json.dumps({k: v for k, v in result.items() if k != "machine"}, indent=1))
    if not args.no_results:
        write_section(result)


def write_section(r: dict) -> None:
    m, t, rel = r["machine"], r["tomoforge"], r["relion"]
    lines = [
        "## Particle reconstruction (issue 19): views inserted per second, box 64, padding 2, CTF weights",
        "",
        f"{m['date']}, commit {m['git']}, {m['nproc']} cores ({m['cpu']}), torch {m['torch']} with "
        f"{t['threads']} threads, load {m['load']}; {r['views']} views; `benchmarks/sta.py`.",
        "",
        "| program | device | wall (s) | views / s |",
        "|---|---|---:|---:|",
        f"| tomoforge `insert_views` + `reconstruct_map` | {t['device']} | {t['wall_s']:.2f} | {t['views_per_s']:.0f} |",
    ]
    u = r["tomoforge_unpadded"]
    lines.append(
        f"| tomoforge, `pad_views=False` (RELION's sampling) | {u['device']} | {u['wall_s']:.2f} | "
        f"{u['views_per_s']:.0f} |"
    )
    if "wall_s" in rel:
        lines.append(
            f"| RELION `{rel['command']}` ({rel['version']}) | CPU | {rel['wall_s']:.2f} | {rel['views_per_s']:.0f} |"
        )
        lines += [
            "",
            f"tomoforge / RELION throughput: {r['speedup']:.2f}× (views padded), {r['speedup_unpadded']:.2f}× "
            "(unpadded). FSC of the two maps (padded): "
            f"{min(r['fsc_ours_vs_relion'][1 : int(0.8 * BOX / 2) + 1]):.3f} or more to 0.8 Nyquist. "
            "FSC against the true map, lowest to 0.8 Nyquist: tomoforge "
            f"{min(r['fsc_ours_vs_truth'][1 : int(0.8 * BOX / 2) + 1]):.3f}, tomoforge unpadded "
            f"{min(r['fsc_unpadded_vs_truth'][1 : int(0.8 * BOX / 2) + 1]):.3f}, RELION "
            f"{min(r['fsc_relion_vs_truth'][1 : int(0.8 * BOX / 2) + 1]):.3f}.",
        ]
    else:
        lines += ["", f"RELION: {rel.get('error', '')[:200]}"]
    unpadded_min = TOTAL_VIEWS / r["tomoforge_unpadded"]["views_per_s"] / 60
    lines += [
        "",
        f"10,000 particles × 41 views at box 64: {r['total_10000x41_s'] / 60:.1f} min at this rate "
        f"({unpadded_min:.1f} min unpadded).",
    ]
    replace_section(START, END, lines)


if __name__ == "__main__":
    main()
