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
