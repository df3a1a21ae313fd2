"""Volumes: a map stored by an older tomoforge (no size, no source file) still loads, the symmetry is written
the standard way and an unknown one is refused, naming it (a project storing the new fields:
tests/protocols/volumes)."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from tomoforge.model.volume import Volume

OLD = {"name": "ref", "file": "ref.mrc", "pixel_size_A": 7.84, "half1_file": "", "symmetry": "C1", "fsc": None}


def test_an_older_volume_loads_without_the_new_fields():
    volume = Volume.model_validate_json(Volume.model_validate(OLD).model_dump_json(exclude={"size_xyz", "source_file"}))
    assert volume.size_xyz is None and volume.source_file == "" and volume.pixel_size_A == 7.84


def test_symmetry_is_canonical_and_checked():
    assert Volume.model_validate({**OLD, "symmetry": " d7"}).symmetry == "D7"
    with pytest.raises(ValidationError, match="'C0'"):
        Volume.model_validate({**OLD, "symmetry": "C0"})
