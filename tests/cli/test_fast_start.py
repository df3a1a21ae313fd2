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
