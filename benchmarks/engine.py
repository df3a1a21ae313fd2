"""Million-item sets: write, count, page, arrays and database growth for N coordinates with orientations.

    python benchmarks/engine.py [--n 1000000] [--no-write]

tomoforge's bulk path (``ItemSet.append_columns``: arrays in, no object per particle; ``ItemSet.arrays``:
columns straight from SQL) beside the one-item-at-a-time path (measured on a sample and scaled), and
beside the peer format for particle sets, a RELION STAR file written and read with ``starfile``.
The page of 100 is timed as a user sees it: ``tomoforge show RUN.OUTPUT`` in a fresh process.
Floors (issue): written < 30 s, counted and one page shown < 1 s, positions + rotations as arrays < 2 s,
project.db growth < 150 MB.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import starfile
from results_md import machine_info, replace_section  # the benchmarks folder, run as a script
from scipy.spatial.transform import Rotation

from tomoforge.engine import Project
from tomoforge.engine.sets import ItemSet
from tomoforge.model.coordinates import Coordinate3D

SAMPLE = 20_000  # items appended one by one, to scale that path to N


def particle_columns(n: int, seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {
        "number": np.arange(n),
        "tomogram": np.array([f"TS_{i:02d}" for i in rng.integers(0, 40, n)]),
        "x_A": rng.uniform(-4000, 4000, n),
        "y_A": rng.uniform(-4000, 4000, n),
        "z_A": rng.uniform(-800, 800, n),
        "rotation": Rotation.random(n, random_state=seed).as_matrix(),
        "has_orientation": np.ones(n, bool),
        "score": rng.random(n),
    }


def db_bytes(root: Path) -> int:
    return sum(p.stat().st_size for p in root.glob("project.db*"))


def timed(fn):
    start = time.perf_counter()
    value = fn()
    return value, time.perf_counter() - start


def measure(n: int, workdir: Path) -> dict:
    given = particle_columns(n)
    project = Project.create(workdir / "project")
    run_id = _saved_run(project)
    before = db_bytes(project.root)
    coordinates = ItemSet.create(project.conn, run_id, "coordinates", Coordinate3D)
    _, write_s = timed(lambda: coordinates.append_columns(given))
    project.conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    growth = db_bytes(project.root) - before
    count, count_s = timed(lambda: len(coordinates))
    arrays, arrays_s = timed(lambda: coordinates.arrays("x_A", "y_A", "z_A", "rotation"))
    assert count == n and np.array_equal(arrays["x_A"], given["x_A"])
    assert np.abs(arrays["rotation"] - given["rotation"]).max() < 1e-12
    _, page_s = timed(lambda: coordinates.page(n // 200, 100))
    cli = [sys.executable, "-m", "tomoforge.cli.main", "-p", str(project.root), "show", f"{run_id}.coordinates"]
    shown, show_s = timed(
        lambda: subprocess.run(cli, capture_output=True, text=True, env={**os.environ, "COLUMNS": "200"})
    )
    assert f"{n} Coordinate3D" in shown.stdout, shown.stdout + shown.stderr

    one = ItemSet.create(project.conn, run_id, "one_by_one", Coordinate3D)
    sample = [
        Coordinate3D(
            number=i,
            tomogram=str(given["tomogram"][i]),
            x_A=float(given["x_A"][i]),
            y_A=float(given["y_A"][i]),
            z_A=float(given["z_A"][i]),
            rotation=given["rotation"][i].tolist(),
            has_orientation=True,
        )
        for i in range(SAMPLE)
    ]
    _, single_s = timed(lambda: [one.append(c) for c in sample])
    _, list_s = timed(lambda: list(one))
    project.close()

    eulers = Rotation.from_matrix(given["rotation"]).as_euler("ZYZ", degrees=True)
    table = pd.DataFrame(
        {
            "rlnTomoName": given["tomogram"],
            "rlnCenteredCoordinateXAngst": given["x_A"],
            "rlnCenteredCoordinateYAngst": given["y_A"],
            "rlnCenteredCoordinateZAngst": given["z_A"],
            "rlnAngleRot": eulers[:, 0],
            "rlnAngleTilt": eulers[:, 1],
            "rlnAnglePsi": eulers[:, 2],
        }
    )
    star = workdir / "particles.star"
    _, star_write_s = timed(lambda: starfile.write({"particles": table}, star))
    _, star_read_s = timed(lambda: starfile.read(star))
    return {
        "n": n,
        "write_s": write_s,
        "db_growth_MB": growth / 1e6,
        "count_s": count_s,
        "page_s": page_s,
        "show_cli_s": show_s,
        "arrays_s": arrays_s,
        "one_by_one_append_s_scaled": single_s / SAMPLE * n,
        "one_by_one_list_s_scaled": list_s / SAMPLE * n,
        "star_write_s": star_write_s,
        "star_read_s": star_read_s,
        "star_MB": star.stat().st_size / 1e6,
    }


def _saved_run(project: Project) -> int:
    """A saved run to own the set (its protocol does not matter here)."""
    return project.new_run("import-tomograms", {"files_path": str(project.root), "pixel_size_A": 10.0})


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=1_000_000)
    ap.add_argument("--no-write", action="store_true", help="print only; leave RESULTS.md as it is")
    args = ap.parse_args()
    info = machine_info()
    with tempfile.TemporaryDirectory() as tmp:
        result = measure(args.n, Path(tmp))
    result["machine"] = info
    print(json.dumps(result, indent=1))
    Path(__file__).with_name("engine.json").write_text(json.dumps(result, indent=1) + "\n")
    if args.no_write:
        return
    r = result
    lines = [
        f"## Million-item sets, `python benchmarks/engine.py --n {r['n']}`",
        "",
        f"{info['date']}, commit {info['git']}, {info['nproc']} cores ({info['cpu']}), load {info['load']} at the start.",
        f"{r['n']:,} coordinates with orientations (`Coordinate3D`: number, tomogram, x/y/z, rotation, score).",
        "",
        "| step | tomoforge | floor | peer / other path |",
        "|---|---:|---:|---|",
        f"| write (`append_columns`, one transaction) | {r['write_s']:.1f} s | 30 s | one item at a time: "
        f"{r['one_by_one_append_s_scaled']:.0f} s (scaled from {SAMPLE:,}); RELION STAR via starfile: {r['star_write_s']:.1f} s |",
        f"| count | {r['count_s'] * 1000:.0f} ms | 1 s | |",
        f"| one page of 100 (`page`) | {r['page_s'] * 1000:.0f} ms | 1 s | |",
        f"| `tomoforge show RUN.OUTPUT` (fresh process: count + page of 100) | {r['show_cli_s']:.2f} s | 1 s | |",
        f"| positions + rotations as arrays (`arrays`) | {r['arrays_s']:.2f} s | 2 s | listing as objects: "
        f"{r['one_by_one_list_s_scaled']:.0f} s (scaled); STAR read via starfile: {r['star_read_s']:.1f} s |",
        f"| project.db growth | {r['db_growth_MB']:.0f} MB | 150 MB | STAR file: {r['star_MB']:.0f} MB |",
    ]
    replace_section("<!-- engine:start -->", "<!-- engine:end -->", lines)


if __name__ == "__main__":
    main()
