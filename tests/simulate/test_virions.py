"""Virions in the specimen: each carries a lattice of its species' assemblies on the ellipsoid the truth names."""

import numpy as np
import pytest

from tomoforge.simulate.config import build_config
from tomoforge.simulate.specimen import build_specimen
from tomoforge.simulate.truth import specimen_records


class _Sized:
    """Only what the placement reads of a Reference: its bounding radius."""

    def __init__(self, radius_A: float) -> None:
        self.radius_A = radius_A


def _config(**virions):
    overrides = {
        "specimen.ice_thickness_A": 1500.0,
        "specimen.vesicles.count": 0,
        "specimen.particles.0.count": 0,
        "specimen.particles.0.count_on_membranes": 0,
        "specimen.particles.0.name": "hexamer",
        "specimen.virions.count": 2,
        "specimen.virions.species": "hexamer",
        "specimen.virions.radius_A": (450.0, 550.0),
        "specimen.virions.gap_fraction": 0.1,
        "specimen.fiducials.count_per_surface": 0,
    }
    overrides.update({f"specimen.virions.{k}": v for k, v in virions.items()})
    return build_config("tiny", overrides)


def test_virions_carry_lattices_recorded_in_the_truth():
    cfg = _config()
    spec = build_specimen(cfg.specimen, (3000.0, 3000.0), [_Sized(60.0)], [], np.random.default_rng(1))
    truth = specimen_records(spec, ["hexamer"])
    assert len(truth["virions"]) == 2
    for v, virion in enumerate(truth["virions"]):
        items = [p for p in truth["particles"] if p["virion"] == v]
        assert len(items) > 150
        centre, rotation = np.array(virion["centre_A"]), np.array(virion["rotation"])
        axes = np.array(virion["lattice_semi_axes_A"])
        np.testing.assert_allclose(np.array(virion["semi_axes_A"]) - axes, 20.0 + 60.0)  # half membrane + radius
        local = (np.array([p["position_A"] for p in items]) - centre) @ rotation  # into the virion frame
        gradient = np.linalg.norm(2 * local / axes**2, axis=1)
        distance = np.abs(((local / axes) ** 2).sum(1) - 1) / gradient
        assert distance.max() < 1.0  # on the lattice ellipsoid (Å)
        normal = local / axes**2
        normal = normal / np.linalg.norm(normal, axis=1, keepdims=True) @ rotation.T
        axis = np.array([p["rotation"] for p in items])[:, :, 2]
        angle = np.degrees(np.arccos(np.clip((axis * normal).sum(1), -1, 1)))
        assert angle.max() < 0.5
        np.testing.assert_allclose(np.array([p["normal"] for p in items]), normal, atol=1e-9)
    assert all(p["species"] == "hexamer" for p in truth["particles"])


def test_virion_mistakes_name_the_field():
    with pytest.raises(ValueError, match="specimen.virions.species"):
        build_specimen(_config(species="gag").specimen, (3000.0, 3000.0), [_Sized(60.0)], [], np.random.default_rng(1))
    with pytest.raises(ValueError, match="specimen.virions.radius_A"):
        cfg = _config(radius_A=(120.0, 130.0))
        build_specimen(cfg.specimen, (3000.0, 3000.0), [_Sized(60.0)], [], np.random.default_rng(1))


def test_virions_preset_small_variant_writes_movies_and_a_truth_with_symmetric_assemblies(tmp_path, test_data):
    from tomoforge.io.mrc import read_mrc
    from tomoforge.simulate.run import simulate

    overrides = {
        "data_root": str(test_data),
        "acquisition.tilt_series_count": 1,
        "acquisition.tilt_min_deg": -30.0,
        "acquisition.tilt_max_deg": 30.0,
        "acquisition.tilt_step_deg": 15.0,
        "acquisition.frames_per_tilt": 2,
        "specimen.ice_thickness_A": 1100.0,
        "specimen.virions.count": 1,
        "specimen.virions.radius_A": (420.0, 450.0),
        "specimen.fiducials.count_per_surface": 2,
        "specimen.background_count": 0,
        "detector.image_size": (192, 192),
        "detector.pixel_size_A": 8.0,
    }
    result = simulate(tmp_path, preset="virions", seed=2, overrides=overrides)
    truth = result.tilt_series[0].truth
    assert len(truth["tilts"]) == 5 and (tmp_path / "TS_01.mrc.mdoc").is_file()
    (species,) = truth["species"]
    assert species["symmetry"] == "C6" and species["name"] == "hexamer"
    reference = read_mrc(tmp_path / species["reference_map"])
    assert reference.shape[0] == reference.shape[1] == reference.shape[2]
    assert len(truth["virions"]) == 1
    assert len(truth["particles"]) > 80 and all(p["virion"] == 0 for p in truth["particles"])
