"""Peer check: is the RELION map shipped with the WarpTools test set a reconstruction of those 40 particles?

    python benchmarks/warptools_relion.py [--data ../shared/data] [--out /tmp/warptools_relion]

Writes the 40 particles' visible views (1360 images, 32² at 12 Å, CTF-premultiplied) as a RELION 3.1
single-particle STAR (one row per view: its rot/tilt/psi from the view rotation P · A, its tilt's defocus,
``rlnCtfDataAreCtfPremultiplied 1``) and runs the installed ``relion_reconstruct --ctf`` on it, in RELION's own
frame and in tomoforge's z-mirrored one. Then FSCs (shells 1 to 0.8 Nyquist) of: RELION 3.1's map vs ours
(``reconstruct_views``, same views), each vs the shipped map, and the noise bound sqrt(2F / (1 + F)) from the
FSC F of our two half maps (20 + 20 particles): the most a map of these 40 particles can correlate with a
map that shares none of their noise. A map of the same images correlates far above it (the noise is shared).
Prints one JSON object and writes it to ``--out``/fsc.json and benchmarks/warptools_relion.json. Needs RELION
3.1 (Debian's relion); not a test.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import time
from pathlib import Path

import numpy as np
import torch

from tomoforge.io.euler import matrix_to_relion_euler
from tomoforge.io.mrc import read_mrc, write_mrc
from tomoforge.io.relion5_particles import MIRROR_Z, RelionParticles, read_relion5_particles
from tomoforge.methods.map_alignment import fourier_shell_correlation
from tomoforge.methods.sta.insertion import ViewFilters, reconstruct_views

STEM = "relion5/tomodrgn_warptools/warptools_test_4-tomos_10-ptcls_box-32_angpix-12"
SHIPPED = "relion5/tomodrgn_warptools/warptools_test_box-32_angpix-12_reconstruct.mrc"
SHELLS = slice(1, int(0.8 * 16) + 1)  # shells 1 … 0.8 Nyquist at box 32


def gather(rp: RelionParticles, particles: range, mirror: bool) -> dict[str, np.ndarray]:
    """The visible views of ``particles``, their view rotations (tomoforge's mirrored frame or RELION's own)
    and their tilts' CTF and dose, as flat arrays."""
    assert rp.visible is not None
    cols: dict[str, list[np.ndarray]] = {k: [] for k in ("views", "rot", "du", "dv", "ang", "dose")}
    for i in particles:
        tilts, seen = rp.tilts[str(rp.tomograms[i])], rp.visible[i]
        p, r = tilts.projection[seen], rp.rotations[i]
        if not mirror:
            p, r = MIRROR_Z @ p @ MIRROR_Z, MIRROR_Z @ r @ MIRROR_Z
        cols["views"].append(read_mrc(rp.images[i]).astype(np.float32)[seen])
        cols["rot"].append(p @ r)
        cols["du"].append(tilts.defocus_u_A[seen])
        cols["dv"].append(tilts.defocus_v_A[seen])
        cols["ang"].append(tilts.astigmatism_deg[seen])
        cols["dose"].append(tilts.dose_e_A2[seen])
    return {k: np.concatenate(v) for k, v in cols.items()}


def ours(rp: RelionParticles, particles: range, mirror: bool) -> torch.Tensor:
    g = gather(rp, particles, mirror)
    filters = ViewFilters(
        defocus_u_A=g["du"],
        defocus_v_A=g["dv"],
        astigmatism_deg=g["ang"],
        dose_e_A2=g["dose"],
        pixel_size_A=rp.pixel_size_A,
        ctf_premultiplied=True,
    )
    return reconstruct_views(g["views"], g["rot"], filters=filters).double()


def relion31(rp: RelionParticles, mirror: bool, out: Path) -> tuple[torch.Tensor, float]:
    """relion_reconstruct --ctf of all views written as a RELION 3.1 single-particle STAR; (map, CPU s)."""
    g = gather(rp, range(len(rp.tomograms)), mirror)
    tag = "mirrored" if mirror else "relion_frame"
    stack = write_mrc(out / f"views_{tag}.mrcs", g["views"], rp.pixel_size_A, overwrite=True)
    eulers = matrix_to_relion_euler(g["rot"])
    head = [
        "data_optics",
        "loop_",
        "_rlnOpticsGroup",
        "_rlnOpticsGroupName",
        "_rlnVoltage",
        "_rlnSphericalAberration",
        "_rlnAmplitudeContrast",
        "_rlnImagePixelSize",
        "_rlnImageSize",
        "_rlnImageDimensionality",
        "_rlnCtfDataAreCtfPremultiplied",
        f"1 opticsGroup1 {rp.voltage_kV} {rp.cs_mm} {rp.amplitude_contrast} {rp.pixel_size_A} 32 2 1",
        "",
        "data_particles",
        "loop_",
        "_rlnImageName",
        "_rlnAngleRot",
        "_rlnAngleTilt",
        "_rlnAnglePsi",
        "_rlnDefocusU",
        "_rlnDefocusV",
        "_rlnDefocusAngle",
        "_rlnOpticsGroup",
    ]
    rows = [
        f"{k + 1:06d}@{stack.name} {e[0]:.4f} {e[1]:.4f} {e[2]:.4f} {u:.1f} {v:.1f} {a:.2f} 1"
        for k, (e, u, v, a) in enumerate(zip(eulers, g["du"], g["dv"], g["ang"], strict=True))
    ]
    star = out / f"views_{tag}.star"
    star.write_text("\n".join(head + rows) + "\n")
    t0 = os.times()
    subprocess.run(
        ["relion_reconstruct", "--i", star.name, "--o", f"relion31_{tag}.mrc", "--ctf"],
        cwd=out,
        check=True,
        capture_output=True,
    )
    t1 = os.times()
    cpu = (t1.children_user + t1.children_system) - (t0.children_user + t0.children_system)
    return torch.as_tensor(read_mrc(out / f"relion31_{tag}.mrc"), dtype=torch.float64), cpu


def fsc(a: torch.Tensor, b: torch.Tensor) -> list[float]:
    return [round(float(x), 3) for x in fourier_shell_correlation(a, b, 12.0)[1][SHELLS]]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=Path(os.environ.get("TOMOFORGE_TEST_DATA", "../shared/data")))
    ap.add_argument("--out", type=Path, default=Path("/tmp/warptools_relion"))
    args = ap.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    torch.set_num_threads(1)
    rp = read_relion5_particles(args.data / f"{STEM}.star", args.data / f"{STEM}_tomograms.star")
    shipped = torch.as_tensor(read_mrc(args.data / SHIPPED), dtype=torch.float64)
    half = np.array(fsc(ours(rp, range(0, 40, 2), True), ours(rp, range(1, 40, 2), True)))
    bound = np.sqrt(np.clip(2 * half / (1 + half), 0, 1))
    result: dict[str, object] = {
        "shells": list(range(1, SHELLS.stop)),
        "load_average": os.getloadavg()[0],
        "half_map_fsc": half.round(3).tolist(),
        "noise_bound": bound.round(3).tolist(),
        "relion_version": subprocess.run(
            ["relion_reconstruct", "--version"], capture_output=True, text=True
        ).stdout.strip()[:80],
    }
    for mirror in (True, False):
        tag = "mirrored" if mirror else "relion_frame"
        mine = ours(rp, range(40), mirror)
        t = time.perf_counter()
        peer, cpu = relion31(rp, mirror, args.out)
        entry: dict[str, object] = {
            "relion31_cpu_s": round(cpu, 2),
            "relion31_wall_s": round(time.perf_counter() - t, 2),
            "ours_vs_relion31": fsc(mine, peer),
            "ours_vs_shipped": fsc(mine, shipped),
            "relion31_vs_shipped": fsc(peer, shipped),
        }
        for who, fscs in (("ours", fsc(mine, shipped)), ("relion31", fsc(peer, shipped))):
            ratio = np.array(fscs) / bound
            entry[f"{who}_vs_shipped_over_bound"] = ratio.round(3).tolist()
            entry[f"{who}_vs_shipped_over_bound_mean"] = round(float(ratio.mean()), 3)
        result[tag] = entry
    text = json.dumps(result, indent=1)
    (args.out / "fsc.json").write_text(text + "\n")
    Path(__file__).with_suffix(".json").write_text(text + "\n")
    print(text)


if __name__ == "__main__":
    main()
