"""The light commands start without torch, scipy or matplotlib (they take < 0.5 s; timed in benchmarks, not here)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from tomoforge.engine import Project

HEAVY = ("torch", "scipy", "matplotlib", "pandas", "dask")
PROBE = f"""
import json, sys
from typer.testing import CliRunner
from tomoforge.cli.main import app
result = CliRunner().invoke(app, sys.argv[1:])
print(json.dumps({{"code": result.exit_code, "heavy": [m for m in {HEAVY!r} if m in sys.modules]}}))
"""


@pytest.mark.parametrize("args", [["--help"], ["runs"], ["show", "1"], ["project", "info"], ["log", "1"]])
def test_light_commands_import_no_heavy_library(tmp_path, args):
    project = Project.create(tmp_path / "p")
    project.new_run("import-tilt-series", {"files_path": str(tmp_path)})
    project.close()
    out = (
        subprocess.run(
            [sys.executable, "-c", PROBE, "-p", str(tmp_path / "p"), *args], capture_output=True, text=True, check=True
        )
        .stdout.strip()
        .splitlines()[-1]
    )
    assert json.loads(out) == {"code": 0, "heavy": []}


def _own_protocols() -> list[str]:
    from importlib.metadata import entry_points

    return sorted(ep.name for ep in entry_points(group="tomoforge.protocols") if ep.value.startswith("tomoforge."))


@pytest.mark.parametrize("name", _own_protocols())
def test_a_protocol_module_imports_no_heavy_library(name):
    """Protocol modules import the science (torch, scipy, matplotlib, pandas) inside their task functions, so
    that listing and describing protocols, and the orchestrator itself, start fast."""
    probe = (
        "import json, sys\n"
        "from tomoforge.engine.registry import get_protocol\n"
        f"get_protocol({name!r})\n"
        f"print(json.dumps([m for m in {HEAVY!r} if m in sys.modules]))\n"
    )
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True).stdout
    assert json.loads(out.strip().splitlines()[-1]) == []


@pytest.mark.parametrize(
    "args", [["protocols"], ["protocols", "ctf-estimation"], ["run", "motion-correction", "--help"]]
)
def test_listing_and_describing_protocols_imports_no_heavy_library(tmp_path, args):
    Project.create(tmp_path / "p").close()
    out = subprocess.run(
        [sys.executable, "-c", PROBE, "-p", str(tmp_path / "p"), *args], capture_output=True, text=True, check=True
    ).stdout
    assert json.loads(out.strip().splitlines()[-1]) == {"code": 0, "heavy": []}
