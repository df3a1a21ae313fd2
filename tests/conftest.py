"""Shared fixtures: where the real files live, and tiny simulated data."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

# OpenMP threads that spin while idle (the default) take the cores from numpy's serial work between torch
# calls; on 2 cores one coarse-alignment test went from 15 to 127 CPU s under load. Read once at torch's
# import, which follows this file.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

REPO = Path(__file__).resolve().parents[1]


def test_data_root() -> Path:
    """The folder of real files ($TOMOFORGE_TEST_DATA, default ../shared/data)."""
    return Path(os.environ.get("TOMOFORGE_TEST_DATA", REPO.parent / "shared" / "data"))


@pytest.fixture(scope="session")
def test_data() -> Path:
    """Root of the real interoperability files; skips the test (saying why) where absent."""
    root = test_data_root()
    if not root.is_dir():
        pytest.skip(f"real test files not found at {root} (set TOMOFORGE_TEST_DATA)")
    return root


@pytest.fixture
def data_file(test_data):
    """data_file('mdoc/x.mdoc') -> Path, skipping where that one file is absent."""

    def get(relative: str) -> Path:
        path = test_data / relative
        if not path.exists():
            pytest.skip(f"real test file {path} is absent")
        return path

    return get


SMALL_SEED = 1


@pytest.fixture(scope="session")
def small_sim(tmp_path_factory, test_data):
    """The simulator's `small` preset (seed 1: 41 tilts of 1024² × 8 frames, ~35 s on 2 cores), made once per
    test session. Set TOMOFORGE_SMALL_SIMULATION to a folder made by
    `tomoforge simulate DIR --preset small --seed 1` to reuse it while developing."""
    from tomoforge.simulate import load_simulation, simulate

    reuse = os.environ.get("TOMOFORGE_SMALL_SIMULATION")
    if reuse:
        result = load_simulation(reuse)
        if result.config.name != "TS" or result.seed != SMALL_SEED or result.tilt_series[0].truth["preset"] != "small":
            raise RuntimeError(f"TOMOFORGE_SMALL_SIMULATION={reuse} is not the small preset with seed {SMALL_SEED}")
        return result
    out = tmp_path_factory.mktemp("small")
    return simulate(out, preset="small", seed=SMALL_SEED, overrides={"data_root": str(test_data)}, progress=False)


DEVICES = [
    "cpu",
    pytest.param(
        "cuda",
        marks=pytest.mark.skipif(
            not __import__("torch").cuda.is_available(), reason="torch sees no CUDA device on this machine"
        ),
    ),
]


@pytest.fixture(params=DEVICES)
def device(request):
    """A torch device: every method test taking it runs on the CPU and, where torch sees one, on CUDA."""
    import torch

    return torch.device(request.param)


TINY_DEMO_OVERRIDES = (  # tiny, a little richer so that every step has something to work on: 21 views ±60°
    "detector.image_size=[256,256]",
    "acquisition.tilt_min_deg=-60",
    "acquisition.tilt_max_deg=60",
    "acquisition.tilt_step_deg=6",
    "specimen.fiducials.count_per_surface=6",
    "specimen.ice_thickness_A=600",
)


@pytest.fixture(scope="session")
def tiny_demo(tmp_path_factory) -> tuple[Path, str, int]:
    """``tomoforge demo`` on the tiny preset (seed 3, the overrides above), run once per test session: its
    folder (``raw/`` simulation, ``project/``), the CLI's output and its exit code."""
    from typer.testing import CliRunner

    from tomoforge.cli.main import app

    folder = tmp_path_factory.mktemp("tiny_demo") / "demo"
    args = ["demo", str(folder), "--preset", "tiny", "--seed", "3"]
    for item in TINY_DEMO_OVERRIDES:
        args += ["--set", item]
    result = CliRunner().invoke(app, args)
    return folder, result.output, result.exit_code
