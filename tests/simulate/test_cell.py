"""The cell-like scene: helical filaments (rise, twist, radius), flat membrane sheets with bound particles,
and a small variant of the `cell` preset written with its truth."""

import numpy as np
import pytest

from tomoforge.simulate.cellular import helical_filament
from tomoforge.simulate.config import build_config
from tomoforge.simulate.specimen import build_specimen
from tomoforge.simulate.truth import specimen_records


class _Sized:
    """Only what the placement reads of a Reference: its bounding radius."""

    def __init__(self, radius_A: float) -> None:
        self.radius_A = radius_A


def test_straight_filament_has_the_requested_rise_twist_and_radius():
    axis = np.array([0.6, 0.8, 0.0])
    fil = helical_filament(
        np.zeros(3), axis, np.array([0, 0, 1.0]), 0.0, 500.0, rise_A=27.5, twist_deg=-166.7, radius_A=25.0
    )
    assert len(fil.positions_A) == 19  # floor(500 / 27.5) + 1
    np.testing.assert_allclose(np.diff(fil.positions_A @ axis), 27.5, atol=1e-9)
    radial = fil.positions_A - np.outer(fil.positions_A @ axis, axis)
    np.testing.assert_allclose(np.linalg.norm(radial, axis=1), 25.0, atol=1e-9)
    turn = np.degrees(np.arctan2(np.cross(radial[:-1], radial[1:]) @ axis, (radial[:-1] * radial[1:]).sum(1)))
    np.testing.assert_allclose(turn, -166.7, atol=1e-6)
    np.testing.assert_allclose(fil.rotations[:, :, 2], np.tile(axis, (19, 1)), atol=1e-12)  # z along the axis
    np.testing.assert_allclose(fil.rotations[:, :, 0], radial / 25.0, atol=1e-9)  # x away from the axis
    np.testing.assert_allclose(np.linalg.det(fil.rotations), 1.0)


def test_curved_filament_follows_its_arc():
    kappa = 1 / 2000.0
    fil = helical_filament(
        np.zeros(3),
        np.array([1.0, 0, 0]),
        np.array([0, 1.0, 0]),
        kappa,
        1000.0,
        rise_A=27.5,
        twist_deg=30.0,
        radius_A=25.0,
    )
    # backbone on the circle of radius 1/κ about (0, 1/κ, 0), consecutive points 27.5 Å apart along the arc
    np.testing.assert_allclose(np.linalg.norm(fil.backbone_A - [0, 1 / kappa, 0], axis=1), 1 / kappa, atol=1e-6)
    chord = np.linalg.norm(np.diff(fil.backbone_A, axis=0), axis=1)
    np.testing.assert_allclose(chord, 2 / kappa * np.sin(kappa * 27.5 / 2), atol=1e-9)
    offset = fil.positions_A - fil.backbone_A
    np.testing.assert_allclose(np.linalg.norm(offset, axis=1), 25.0, atol=1e-9)
    np.testing.assert_allclose((offset * fil.tangents).sum(1), 0.0, atol=1e-9)


def _cell_config(**over):
    overrides = {
        "specimen.ice_thickness_A": 1200.0,
        "specimen.particles": [
            {"name": "big", "count": 6},
            {"name": "bound", "count": 0, "count_on_membranes": 12},
            {"name": "subunit", "count": 0},
        ],
        "specimen.vesicles.count": 0,
        "specimen.sheets.count": 2,
        "specimen.sheets.radius_A": (500.0, 700.0),
        "specimen.sheets.membrane_thickness_A": 50.0,
        "specimen.filaments.count": 3,
        "specimen.filaments.species": "subunit",
        "specimen.filaments.length_A": (600.0, 900.0),
        "specimen.fiducials.count_per_surface": 2,
    }
    overrides.update(over)
    return build_config("tiny", overrides)


def test_cell_scene_sheets_bound_particles_and_filaments_in_the_truth():
    cfg = _cell_config()
    refs = [_Sized(100.0), _Sized(60.0), _Sized(30.0)]
    spec = build_specimen(cfg.specimen, (3500.0, 3500.0), refs, [], np.random.default_rng(4))
    truth = specimen_records(spec, ["big", "bound", "subunit"])
    assert len(truth["sheets"]) == 2 and len(truth["filaments"]) == 3
    bound = [p for p in truth["particles"] if p["species"] == "bound"]
    assert len(bound) == 12 and all(p["sheet"] >= 0 for p in bound)
    for p in bound:
        sheet = truth["sheets"][p["sheet"]]
        normal, centre = np.array(sheet["normal"]), np.array(sheet["centre_A"])
        height = (np.array(p["position_A"]) - centre) @ normal
        assert abs(abs(height) - (25.0 + 60.0)) < 1e-6  # half the sheet + the particle radius
        np.testing.assert_allclose(np.array(p["normal"]), np.sign(height) * normal, atol=1e-12)
        np.testing.assert_allclose(np.array(p["rotation"])[:, 2], p["normal"], atol=1e-12)
        assert p["filament"] == -1 and p["vesicle"] == -1
    for f, filament in enumerate(truth["filaments"]):
        subunits = [p for p in truth["particles"] if p["filament"] == f]
        assert filament["species"] == "subunit" and len(subunits) == filament["subunits"] > 20
        backbone = np.array(filament["backbone_A"])
        offset = np.array([p["position_A"] for p in subunits]) - backbone
        np.testing.assert_allclose(np.linalg.norm(offset, axis=1), filament["radius_A"], atol=1e-6)
        assert abs(backbone @ spec.slab_normal).max() < cfg.specimen.ice_thickness_A / 2
    # nothing that is not part of one filament overlaps anything else
    single = [p for p in truth["particles"] if p["filament"] == -1]
    radius = {"big": 100.0, "bound": 60.0}
    pos = np.array([p["position_A"] for p in single])
    r = np.array([radius[p["species"]] for p in single])
    gap = np.linalg.norm(pos[:, None] - pos[None], axis=-1) - r[:, None] - r[None] + np.eye(len(r)) * 1e9
    assert gap.min() > 0


def test_cell_mistakes_name_the_field():
    with pytest.raises(ValueError, match="specimen.filaments.species"):
        cfg = _cell_config(**{"specimen.filaments.species": "actin"})
        build_specimen(cfg.specimen, (3500.0, 3500.0), [_Sized(1.0)] * 3, [], np.random.default_rng(1))


def test_cell_preset_small_variant_writes_every_species_and_binned_references(tmp_path, test_data):
    from tomoforge.io.mrc import read_mrc, read_voxel_size
    from tomoforge.simulate.run import simulate
    from tomoforge.simulate.structures import read_atoms

    overrides = {
        "data_root": str(test_data),
        "acquisition.tilt_series_count": 1,
        "acquisition.tilt_min_deg": -30.0,
        "acquisition.tilt_max_deg": 30.0,
        "acquisition.tilt_step_deg": 30.0,
        "acquisition.frames_per_tilt": 2,
        "specimen.ice_thickness_A": 1000.0,
        "specimen.particles.0.count": 4,
        "specimen.particles.1.count": 3,
        "specimen.particles.2.count_on_membranes": 4,
        "specimen.vesicles.count": 1,
        "specimen.vesicles.radius_A": (200.0, 250.0),
        "specimen.sheets.count": 1,
        "specimen.sheets.radius_A": (400.0, 500.0),
        "specimen.filaments.count": 1,
        "specimen.filaments.length_A": (400.0, 500.0),
        "specimen.fiducials.count_per_surface": 2,
        "specimen.background_count": 10,
        "detector.image_size": (224, 224),
        "detector.pixel_size_A": 10.0,
    }
    result = simulate(tmp_path, preset="cell", seed=3, overrides=overrides, progress=False)
    truth = result.tilt_series[0].truth
    assert len(truth["tilts"]) == 3 and (tmp_path / "TS_01.mrc.mdoc").is_file()
    counts = {s["name"]: sum(p["species"] == s["name"] for p in truth["particles"]) for s in truth["species"]}
    assert counts["ribosome"] == 4 and counts["rubisco"] == 3 and counts["membrane_complex"] == 4
    assert counts["filament_subunit"] == truth["filaments"][0]["subunits"] >= 14
    assert len(truth["sheets"]) == 1 and len(truth["vesicles"]) == 1 and len(truth["background"]) == 10
    species = {s["name"]: s for s in truth["species"]}
    rubisco = test_data / "maps/polnet_templates/1bxn.pdb"
    assert species["rubisco"]["mass_Da"] == pytest.approx(2 * read_atoms(rubisco)[2])  # L8S8 from the L4S4 file
    for name in ("ribosome", "rubisco"):  # the reference at the tomogram's pixel size keeps its integral
        full = read_mrc(tmp_path / species[name]["reference_map"]).astype(np.float64)
        binned = read_mrc(tmp_path / species[name]["reference_map_binned"]).astype(np.float64)
        assert read_voxel_size(tmp_path / species[name]["reference_map_binned"]) == pytest.approx(20.0)
        assert binned.sum() * 8 == pytest.approx(full.sum(), rel=0.01)
