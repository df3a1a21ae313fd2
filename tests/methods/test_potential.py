"""Atomic potential: integral per atom, voxel-size independence, molecular mass of a real model."""

import json

import gemmi
import numpy as np
import pytest
import torch

from tomoforge.methods.potential import (
    POTENTIAL_CONSTANT_V_A2,
    atomic_potential_volume,
    integrated_potential_per_atom,
    interaction_constant,
    mass_from_potential_Da,
    potential_per_dalton,
)

PARAMS_A = {"C": [0.0893, 0.2563, 0.757, 1.0487, 0.3575], "O": [0.0974, 0.2921, 0.691, 0.699, 0.2039]}
PARAMS_B = {"C": [0.2465, 1.71, 6.4094, 18.6113, 50.2523], "O": [0.2067, 1.3815, 4.6943, 12.7105, 32.4726]}


def test_interaction_constant_300kv():
    assert abs(interaction_constant(300) - 6.526e-4) < 2e-6  # Kirkland: 0.00065 rad/(V·Å)


@pytest.mark.parametrize("pixel", [0.5, 1.0, 2.5])
def test_integral_is_c_times_sum_a_at_any_pixel_size(pixel):
    xyz = np.array([[0.3, -0.2, 0.7], [3.1, 1.2, -2.0]])
    vol = atomic_potential_volume(xyz, ["C", "O"], PARAMS_A, PARAMS_B, pixel, (40, 40, 40))
    expected = integrated_potential_per_atom(["C", "O"], PARAMS_A).sum()
    assert abs(float(vol.double().sum()) * pixel**3 - expected) < 1e-4 * expected
    assert abs(expected - POTENTIAL_CONSTANT_V_A2 * (sum(PARAMS_A["C"]) + sum(PARAMS_A["O"]))) < 1e-9


def test_peak_matches_point_formula_at_fine_sampling():
    vol = atomic_potential_volume(np.zeros((1, 3)), ["C"], PARAMS_A, PARAMS_B, 0.05, (41, 41, 41), b_factor_A2=20)
    a, b = np.array(PARAMS_A["C"]), np.array(PARAMS_B["C"]) + 20
    v0 = POTENTIAL_CONSTANT_V_A2 * (a * (4 * np.pi / b) ** 1.5).sum()
    assert abs(float(vol[20, 20, 20]) - v0) < 0.01 * v0


def test_unknown_element_is_named():
    with pytest.raises(KeyError, match="XX"):
        atomic_potential_volume(np.zeros((1, 3)), ["XX"], PARAMS_A, PARAMS_B, 1.0, (8, 8, 8))


def test_apoferritin_potential_has_model_mass(data_file):
    """6z6u (24-mer, no hydrogens): mass from the integrated potential within 5 % of the atomic mass."""
    table = json.loads(data_file("detector/ttsim3d_scattering/elastic_scattering_factors.json").read_text())
    st = gemmi.read_structure(str(data_file("models/6z6u.pdb")))
    st.remove_waters()
    st.remove_alternative_conformations()
    st.remove_ligands_and_waters()
    xyz = np.array([a.pos.tolist() for ch in st[0] for r in ch for a in r])
    el = [a.element.name for ch in st[0] for r in ch for a in r]
    mass = sum(a.element.weight for ch in st[0] for r in ch for a in r)
    vol = atomic_potential_volume(
        xyz - xyz.mean(0), el, table["parameters_a"], table["parameters_b"], 3.0, (52, 52, 52), b_factor_A2=20
    )
    heavy = {"C": 4.9384, "N": 1.3577, "O": 1.4773, "S": 0.0417}  # averagine without H (model has none)
    per_da = potential_per_dalton(heavy, table["parameters_a"], {e: gemmi.Element(e).weight for e in heavy})
    est = mass_from_potential_Da(vol, 3.0, per_da)
    assert abs(est / mass - 1) < 0.05
    assert 420e3 < mass < 520e3  # 24 × ~19–21 kDa chains
    assert float(torch.as_tensor(vol).min()) >= 0
