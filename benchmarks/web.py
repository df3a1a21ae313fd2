"""The web interface's speed: the project page of a 1,000-run project, and a 1024² tilt image as a web image.

    python benchmarks/web.py [--runs 1000] [--repeat 15]

Requests go through FastAPI's test client (the whole application: middleware, routing, JSON or image
encoding; no network). The project: one import run and a tree of ``exclude-views`` runs fed by it and by
each other (every run with its graph edge and an output set). The tilt image: a 1024² float32 section of a
41-image stack, imported with the real HIV mdoc of ``$TOMOFORGE_TEST_DATA``; without it, that part is skipped.
The tomogram: a 1024 × 1024 × 32 float32 volume (imported). Targets (issue 20): project page
(``/api/project``, all the runs, their states, durations, outputs and the graph) < 300 ms; a 1024² tilt
image and a 1024² tomogram slice as PNG/JPEG < 100 ms.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
from fastapi.testclient import TestClient
from results_md import machine_info, replace_section  # the benchmarks folder, run as a script

from tomoforge.engine import ExecutorConfig, Project, execute_run
from tomoforge.engine.sets import ItemSet
from tomoforge.io.mdoc import read_mdoc
from tomoforge.io.mrc import write_mrc
from tomoforge.model import TiltSeries
from tomoforge.web.app import create_app

HIV_MDOC = "mdoc/serialem_mdocfile/tilt_series.mdoc"


def median_ms(client: TestClient, url: str, repeat: int) -> float:
    client.get(url).raise_for_status()  # warm
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        response = client.get(url)
        times.append(time.perf_counter() - start)
        response.raise_for_status()
    return 1000 * statistics.median(times)


def many_runs(root: Path, n: int) -> Project:
    project = Project.create(root)
    first = project.new_run("import-tilt-series", {"files_path": str(root)})
    ItemSet.create(project.conn, first, "tilt_series", TiltSeries)
    rng = np.random.default_rng(0)
    for i in range(1, n):
        source = int(rng.integers(first, first + i))
        run_id = project.new_run(
            "exclude-views",
            {"acquisition_orders": [i % 41 + 1]},
            {"tilt_series": f"{source}.tilt_series"},
            label=f"r{i}",
        )
        ItemSet.create(project.conn, run_id, "tilt_series", TiltSeries)
    return project


def tilt_image_project(root: Path, data: Path) -> tuple[Project, int] | None:
    mdoc_source = data / HIV_MDOC
    if not mdoc_source.is_file():
        return None
    raw = root / "raw"
    raw.mkdir(parents=True)
    mdoc = raw / "TS_01.mrc.mdoc"
    shutil.copy(mdoc_source, mdoc)
    stack = np.random.default_rng(0).normal(size=(41, 1024, 1024)).astype(np.float32)
    write_mrc(mdoc.with_name(str(read_mdoc(mdoc).header["ImageFile"])), stack, 5.4)
    project = Project.create(root / "project")
    run_id = project.new_run("import-tilt-series", {"files_path": str(raw), "dose_per_tilt_e_A2": 3})
    execute_run(project, run_id, "run", executor=ExecutorConfig(kind="serial"))
    return project, run_id


def tomogram_project(root: Path, nz: int) -> tuple[Project, int]:
    folder = root / "tomos"
    folder.mkdir(parents=True)
    volume = np.random.default_rng(1).normal(size=(nz, 1024, 1024)).astype(np.float32)
    write_mrc(folder / "TS_01.mrc", volume, 10.0)
    project = Project.create(root / "project")
    run_id = project.new_run("import-tomograms", {"files_path": str(folder)})
    execute_run(project, run_id, "run", executor=ExecutorConfig(kind="serial"))
    return project, run_id


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=1000)
    ap.add_argument("--repeat", type=int, default=15)
    args = ap.parse_args()
    result: dict = {"machine": machine_info(), "runs": args.runs}
    with tempfile.TemporaryDirectory() as tmp:
        project = many_runs(Path(tmp) / "many", args.runs)
        client = TestClient(create_app(project.root), base_url="http://127.0.0.1")
        result["project_api_ms"] = median_ms(client, "/api/project", args.repeat)
        result["project_page_html_ms"] = median_ms(client, "/", args.repeat)
        result["run_api_ms"] = median_ms(client, f"/api/runs/{args.runs}", args.repeat)
        data = Path(
            os.environ.get("TOMOFORGE_TEST_DATA", Path(__file__).resolve().parents[1] / ".." / "shared" / "data")
        )
        made = tilt_image_project(Path(tmp) / "tilt", data)
        if made is not None:
            tilt_project, run_id = made
            client = TestClient(create_app(tilt_project.root), base_url="http://127.0.0.1")
            base = f"/api/runs/{run_id}/sets/tilt_series/TS_01"
            for fmt, factor in (("png", 1), ("jpg", 1), ("png", 4)):
                result[f"tilt_1024_{fmt}_bin{factor}_ms"] = median_ms(
                    client, f"{base}/20.{fmt}?bin={factor}", args.repeat
                )
        else:
            result["tilt_image"] = f"skipped: no {HIV_MDOC} under {data}"
        tomo_project, tomo_run = tomogram_project(Path(tmp) / "tomo", 32)
        client = TestClient(create_app(tomo_project.root), base_url="http://127.0.0.1")
        base = f"/api/runs/{tomo_run}/tomograms/tomograms/TS_01"
        result["tomogram_1024_xy_png_ms"] = median_ms(client, f"{base}/xy/16.png", args.repeat)
        result["tomogram_1024_xy_jpg_ms"] = median_ms(client, f"{base}/xy/16.jpg", args.repeat)
        result["tomogram_1024x32_xz_png_ms"] = median_ms(client, f"{base}/xz/512.png", args.repeat)
    print(json.dumps(result, indent=1))
    Path(__file__).with_name("web.json").write_text(json.dumps(result, indent=1) + "\n")
    info = result["machine"]
    lines = [
        "## Web interface, `python benchmarks/web.py`",
        "",
        f"{info.get('date', '')}, commit {info.get('git', '')}, {info.get('nproc', '')} cores ({info.get('cpu', '')}), load {info.get('load', '')}; "
        f"median of {args.repeat} requests through FastAPI's test client (no network).",
        "",
        "| request | ms | target |",
        "|---|---:|---|",
        f"| project runs, states, outputs and graph (`/api/project`, {args.runs} runs) | {result['project_api_ms']:.0f} | < 300 |",
        f"| project page HTML (`/`) | {result['project_page_html_ms']:.1f} | |",
        f"| one run (`/api/runs/N`) | {result['run_api_ms']:.1f} | |",
    ]
    for key, value in result.items():
        if key.startswith("tilt_1024_"):
            lines.append(
                f"| 1024² tilt image, {key.split('_')[2].upper()} bin {key.split('bin')[1].split('_')[0]} | {value:.0f} | < 100 |"
            )
    for key, label in (
        ("tomogram_1024_xy_png_ms", "1024² tomogram XY slice (1024² × 32 volume), PNG"),
        ("tomogram_1024_xy_jpg_ms", "1024² tomogram XY slice, JPG"),
        ("tomogram_1024x32_xz_png_ms", "XZ slice of the same volume (1024 × 32), PNG"),
    ):
        lines.append(f"| {label} | {result[key]:.0f} | {'< 100' if 'xy' in key else ''} |")
    replace_section("<!-- web:start -->", "<!-- web:end -->", lines)


if __name__ == "__main__":
    main()
