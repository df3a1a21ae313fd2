"""Picking fixtures (the ``project`` fixture is tests/protocols/conftest.py's): two small tomograms, and coordinate sets imported from RELION 5 stars."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from tomoforge.engine import ExecutorConfig, Project, execute_run
from tomoforge.io.mrc import write_mrc
from tomoforge.io.star import ParticleTable, write_particles_star

SERIAL = ExecutorConfig(kind="serial")
SIZE_XYZ = (200, 160, 60)  # voxels
VOXEL_A = 10.0


def run(project: Project, protocol: str, params: dict, inputs: dict | None = None) -> int:
    run_id = project.new_run(protocol, params, inputs or {}, executor=SERIAL)
    state = execute_run(project, run_id)
    assert state == "finished", project.run(run_id)["error"]
    return run_id


@pytest.fixture
def tomograms(project, tmp_path) -> int:
    """import-tomograms of TS_01 and TS_02 (200 × 160 × 60 voxels of 10 Å)."""
    folder = tmp_path / "tomos"
    folder.mkdir()
    nx, ny, nz = SIZE_XYZ
    for name in ("TS_01", "TS_02"):
        write_mrc(folder / f"{name}.mrc", np.zeros((nz, ny, nx), np.int8), VOXEL_A)
    return run(project, "import-tomograms", {"files_path": str(folder)})


def import_picks(
    project: Project,
    tomograms: int,
    folder: Path,
    names: np.ndarray,
    positions_A: np.ndarray,
    rotations: np.ndarray,
    scores: np.ndarray,
) -> int:
    """Write the picks as a RELION 5 particle star in ``folder`` and import it; returns the import run."""
    folder.mkdir(parents=True, exist_ok=True)
    extra = pd.DataFrame({"rlnAutopickFigureOfMerit": scores})
    write_particles_star(ParticleTable(list(names), positions_A, rotations, extra=extra), folder / "picks.star")
    return run(project, "import-coordinates", {"files_path": str(folder)}, {"tomograms": f"{tomograms}.tomograms"})
