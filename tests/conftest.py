"""Shared fixtures: where the real files live, and tiny simulated data."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

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
