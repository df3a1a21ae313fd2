"""A tiny simulation written once per session."""

import pytest

from tomoforge.simulate import simulate


@pytest.fixture(scope="session")
def tiny_sim(tmp_path_factory, test_data):
    """The `tiny` preset, seed 7, simulated into a temporary folder (needs the shared data)."""
    out = tmp_path_factory.mktemp("tiny")
    return simulate(out, preset="tiny", seed=7, overrides={"data_root": str(test_data)}, progress=False)
