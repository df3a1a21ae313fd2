"""Helpers shared by the benchmark scripts: the machine they ran on, and their section of RESULTS.md."""

from __future__ import annotations

import datetime
import json
import os
import re
import subprocess
from collections.abc import Callable
from pathlib import Path

import torch

RESULTS = Path(__file__).with_name("RESULTS.md")


def machine_info() -> dict:
    """Cores, CPU model, torch version and threads, date, commit, load average now."""
    cpuinfo = Path("/proc/cpuinfo")
    cpu = (
        next(
            (
                line.split(":", 1)[1].strip()
                for line in cpuinfo.read_text().splitlines()
                if line.startswith("model name")
            ),
            "unknown",
        )
        if cpuinfo.exists()
        else "unknown"
    )
    return {
        "nproc": os.cpu_count(),
        "cpu": cpu,
        "torch": torch.__version__,
        "torch_threads": torch.get_num_threads(),
        "date": datetime.date.today().isoformat(),
        "git": subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, cwd=Path(__file__).parent
        ).stdout.strip(),
        "load": round(os.getloadavg()[0], 2),
    }


def replace_section(start: str, end: str, lines: list[str], results: Path = RESULTS) -> None:
    """Put ``lines`` between the ``start``/``end`` markers of RESULTS.md (appended when absent)."""
    section = "\n".join([start, *lines, end])
    text = results.read_text() if results.exists() else "# Benchmarks\n"
    if start in text:
        text = re.sub(re.escape(start) + ".*?" + re.escape(end), lambda _: section, text, flags=re.S)
    else:
        text = text.rstrip("\n") + "\n\n" + section + "\n"
    results.write_text(text)


def merged_runs(benchmark: str, paths: list[Path]) -> dict:
    """The JSON of a benchmark run one seed at a time: the ``runs`` of every file in ``paths`` together, with the
    first file's ``machine`` (the section is then written from it without measuring again)."""
    loaded = [json.loads(path.read_text()) for path in paths]
    return {"benchmark": benchmark, "runs": [r for one in loaded for r in one["runs"]], "machine": loaded[0]["machine"]}


def seed_runs(benchmark: str, seeds: list[int], measure, merge: list[Path] | None, out: Path | None) -> dict:
    """The benchmark's JSON: ``measure(seed)`` for each seed (each run printed as it ends, the whole written to
    ``out`` when given), or, with ``merge``, the runs of earlier JSON files (``merged_runs``)."""
    if merge:
        return merged_runs(benchmark, merge)
    result: dict = {"benchmark": benchmark, "runs": []}
    for seed in seeds:
        result["runs"].append(measure(seed))
        print(json.dumps(result["runs"][-1]), flush=True)
    result["machine"] = machine_info()
    if out:
        out.write_text(json.dumps(result, indent=1))
    return result


def emit(result: dict, out: Path | None, write: Callable[[dict], None] | None) -> None:
    """Print a benchmark's JSON, also into ``out`` when given, and ``write`` its RESULTS.md section (None: not)."""
    result["load_after"] = round(os.getloadavg()[0], 2)
    text = json.dumps(result, indent=1, ensure_ascii=False)
    print(text)
    if out:
        out.write_text(text)
    if write is not None:
        write(result)
