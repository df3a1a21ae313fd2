"""The simulated particle's potential has the molecular mass its atomic model implies."""

import gemmi
import numpy as np
import pytest

from tomoforge.io.mrc import read_mrc, read_voxel_size
from tomoforge.methods.potential import mass_from_potential_Da, potential_per_dalton
from tomoforge.simulate.structures import AVERAGINE, PROTEIN_DENSITY_DA_PER_A3, load_scattering_factors, read_atoms


def test_written_reference_potential_has_the_model_mass(tiny_sim, test_data):
    """6z6u at 6 Å/px as written by the simulator: mass from ∫V (averagine potential per Da) within 5 %."""
    species = tiny_sim.tilt_series[0].truth["species"][0]
    path = tiny_sim.outdir / species["potential_map"]
    params = load_scattering_factors(test_data)
    per_da = potential_per_dalton(AVERAGINE, params[0], {e: gemmi.Element(e).weight for e in AVERAGINE})
    est = mass_from_potential_Da(read_mrc(path), read_voxel_size(path), per_da)
    _, _, model_mass = read_atoms(test_data / "models/6z6u.pdb")
    assert species["mass_Da"] == pytest.approx(model_mass)
    assert 440e3 < model_mass < 530e3  # 24 ferritin chains (~19–21 kDa modelled each) with hydrogens
    assert abs(est / model_mass - 1) < 0.05


def test_contrast_map_displaces_ice(tiny_sim):
    """The projected reference = potential − ice (4.5 V) over mass / 0.81 Da/Å³ of volume."""
    species = tiny_sim.tilt_series[0].truth["species"][0]
    pot = read_mrc(tiny_sim.outdir / species["potential_map"]).astype(np.float64)
    con = read_mrc(tiny_sim.outdir / species["reference_map"]).astype(np.float64)
    pix = species["pixel_size_A"]
    displaced = (pot - con).sum() * pix**3
    expected = 4.5 * species["mass_Da"] / PROTEIN_DENSITY_DA_PER_A3
    assert abs(displaced / expected - 1) < 0.05


def _rotated(volume: np.ndarray, rotation_xyz: np.ndarray) -> np.ndarray:
    """volume(Rᵀ x) about voxel n // 2 (cubic spline), for a (z, y, x) array."""
    from scipy import ndimage

    n = volume.shape[0]
    r = np.asarray(rotation_xyz)[::-1, ::-1]
    c = np.full(3, n // 2)
    return ndimage.affine_transform(volume, r.T, offset=c - r.T @ c, order=3, mode="constant")


@pytest.fixture(scope="module")
def hexamer(test_data):
    from tomoforge.simulate.structures import reference_from_model

    params = load_scattering_factors(test_data)
    path = test_data / "models/6z6u.pdb"
    ref = reference_from_model(
        "hexamer", path, 4.0, params, 20.0, 4.5, chain="A", symmetry="c6", assembly_radius_A=28.0
    )
    return ref, params, path


def test_assembly_of_one_chain_has_its_symmetry_and_the_mass_of_n_chains(hexamer):
    from tomoforge.methods.rotations import rotation_about_z
    from tomoforge.methods.symmetry import symmetry_operators
    from tomoforge.simulate.accuracy import lowpass_volume

    ref, params, path = hexamer
    assert ref.symmetry == "C6"
    _, _, chain_mass = read_atoms(path, "A")
    assert 15e3 < chain_mass < 25e3
    assert ref.mass_Da == pytest.approx(6 * chain_mass)
    per_da = potential_per_dalton(AVERAGINE, params[0], {e: gemmi.Element(e).weight for e in AVERAGINE})
    assert abs(mass_from_potential_Da(ref.potential, 4.0, per_da) / (6 * chain_mass) - 1) < 0.05
    # compared at 20 Å (5 px), where a cubic-spline rotation itself is exact to ~0.5 %
    smooth = lowpass_volume(ref.potential.numpy(), 4.0, 20.0).numpy()
    norm = np.linalg.norm(smooth)
    for op in symmetry_operators("C6")[1:]:
        assert np.linalg.norm(_rotated(smooth, op) - smooth) / norm < 0.01
    assert np.linalg.norm(_rotated(smooth, rotation_about_z(30.0)) - smooth) / norm > 0.2  # not C12
    # the symmetry axis is z through the box centre: the centre of mass is at voxel n // 2
    n = smooth.shape[0]
    weights = ref.potential.numpy().astype(np.float64)
    idx = np.indices(weights.shape).reshape(3, -1)
    com = (idx * weights.reshape(-1)).sum(1) / weights.sum()
    np.testing.assert_allclose(com, n // 2, atol=0.05)


def test_unknown_chain_and_symmetry_are_named(test_data):
    from tomoforge.simulate.config import ConfigError, build_config

    with pytest.raises(ValueError, match="no chain 'Z9'"):
        read_atoms(test_data / "models/6z6u.pdb", "Z9")
    with pytest.raises(ConfigError, match="C0"):
        build_config("tiny", {"specimen.particles.0.symmetry": "C0"})
