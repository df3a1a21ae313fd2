"""Particle references: potential maps (V) from atomic models or maps, at the simulation pixel size.

``potential`` is the vacuum potential of the molecule (its integral gives the model's mass through the
potential per dalton); ``contrast`` is what the simulator projects: the potential minus the ice it
displaces (``ice_potential_V`` inside an envelope holding mass / 0.81 Da/Å³, protein density).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

import gemmi
import numpy as np
import torch
from scipy import ndimage

from tomoforge.io.mrc import read_mrc, read_voxel_size
from tomoforge.methods.fourier import fourier_crop
from tomoforge.methods.potential import atomic_potential_volume, potential_per_dalton
from tomoforge.methods.projection import FourierVolume, paste_add, prepare_fourier_volume
from tomoforge.methods.symmetry import canonical_symmetry, group_order, parse_symmetry, symmetry_operators

PROTEIN_DENSITY_DA_PER_A3 = 0.81
SCATTERING_FILE = "detector/ttsim3d_scattering/elastic_scattering_factors.json"
# average amino-acid residue (Senko et al. 1995 "averagine"), atoms per residue
# where the first copy of an assembly's chain sits (× radius): off every symmetry axis of its group
ASSEMBLY_DIRECTION = {
    "C": np.array([1.0, 0.0, 0.0]),
    "D": np.array([0.8, 0.36, 0.48]),
    "T": np.array([0.8, 0.36, 0.48]),
    "O": np.array([0.8, 0.36, 0.48]),
    "I": np.array([0.8, 0.36, 0.48]),
}
AVERAGINE = {"C": 4.9384, "H": 7.7583, "N": 1.3577, "O": 1.4773, "S": 0.0417}


def default_data_root() -> Path:
    """$TOMOFORGE_TEST_DATA, else ../shared/data beside the repository."""
    env = os.environ.get("TOMOFORGE_TEST_DATA")
    return Path(env) if env else Path(__file__).resolve().parents[3] / "shared" / "data"


def resolve_data_file(path: str, data_root: str | Path | None, field: str) -> Path:
    """An absolute path, or one relative to the data root; FileNotFoundError naming ``field``."""
    p = Path(path)
    if not p.is_absolute():
        p = Path(data_root or default_data_root()) / p
    if not p.is_file():
        raise FileNotFoundError(f"{field}: file {p} does not exist")
    return p


def load_scattering_factors(data_root: str | Path | None) -> tuple[dict, dict]:
    """(parameters_a, parameters_b) of the 5-Gaussian elastic scattering factors (Å, Å²)."""
    path = resolve_data_file(SCATTERING_FILE, data_root, "scattering factors")
    table = json.loads(path.read_text())
    return table["parameters_a"], table["parameters_b"]


def read_atoms(
    path: Path, chain: str | None = None, assembly: str | None = None
) -> tuple[np.ndarray, list[str], float]:
    """(coordinates (n, 3) Å centred on the centre of mass, element symbols, mass in Da) of model 1 (of its
    chain ``chain`` only, when given; or of the file's biological assembly named ``assembly``, built by its
    operators), without waters and alternative conformations (first kept); a model without hydrogens gets
    one implicit hydrogen per heavy atom (at the atom's position: H scattering is broad)."""
    st = gemmi.read_structure(str(path))
    st.remove_waters()
    st.remove_alternative_conformations()
    model = st[0]
    if assembly is not None:
        found = [a for a in st.assemblies if a.name == assembly]
        if not found:
            known = ", ".join(a.name for a in st.assemblies) or "none"
            raise ValueError(f"{path}: no biological assembly {assembly!r} (assemblies: {known})")
        model = gemmi.make_assembly(found[0], model, gemmi.HowToNameCopiedChain.AddNumber)
    atoms_xyz: list[list[float]] = []
    elements: list[str] = []
    atom_masses: list[float] = []
    chains = [c for c in model if chain is None or c.name == chain]
    if chain is not None and not chains:
        names = sorted({c.name for c in model})
        raise ValueError(f"{path}: no chain {chain!r} in the first model (chains: {', '.join(names)})")
    for ch in chains:
        for res in ch:
            for atom in res:
                atoms_xyz.append(atom.pos.tolist())
                elements.append(atom.element.name.upper())
                atom_masses.append(atom.element.weight)
    if not atoms_xyz:
        raise ValueError(f"{path}: no atoms in the first model")
    xyz, masses = np.array(atoms_xyz), np.array(atom_masses)
    xyz -= (xyz * masses[:, None]).sum(0) / masses.sum()
    if "H" not in elements:  # implicit hydrogens: one per heavy atom, at its position (averagine: 0.99)
        xyz = np.concatenate([xyz, xyz])
        elements = elements + ["H"] * len(elements)
        masses = np.concatenate([masses, np.full(len(masses), gemmi.Element("H").weight)])
    return xyz, elements, float(masses.sum())


@dataclass
class Reference:
    """A particle species ready to project."""

    name: str
    source: str
    pixel_size_A: float
    potential: torch.Tensor  # (n, n, n) vacuum potential (V)
    contrast: torch.Tensor  # (n, n, n) potential relative to ice (V): what is projected
    radius_A: float  # bounding-sphere radius used for non-overlap
    mass_Da: float  # from the model (sum of atomic weights) or the map
    fourier: FourierVolume  # prepared spectrum of ``contrast``
    symmetry: str = "C1"  # point group of the map about its centre (axis z), see methods/symmetry.py


def _box_size(radius_A: float, pixel_size_A: float) -> int:
    return int(np.ceil(2 * (radius_A + 15.0) / pixel_size_A / 2) * 2)


def _displaced_ice(
    potential: torch.Tensor, pixel_size_A: float, mass_Da: float, ice_potential_V: float
) -> torch.Tensor:
    """Ice potential inside the smooth envelope that holds ``mass_Da`` at protein density."""
    smooth = ndimage.gaussian_filter(potential.numpy().astype(np.float64), sigma=3.0 / pixel_size_A)
    n_voxels = int(round(mass_Da / PROTEIN_DENSITY_DA_PER_A3 / pixel_size_A**3))
    n_voxels = min(max(n_voxels, 1), smooth.size)
    threshold = np.sort(smooth.ravel())[::-1][n_voxels - 1]
    mask = ndimage.gaussian_filter((smooth >= threshold).astype(np.float64), sigma=1.0 / pixel_size_A)
    return torch.from_numpy(mask * ice_potential_V).to(torch.float32)


def _reference(
    name: str,
    source: str,
    pixel_size_A: float,
    potential: torch.Tensor,
    radius_A: float,
    mass_Da: float,
    ice_potential_V: float,
    symmetry: str = "C1",
) -> Reference:
    """A Reference from its vacuum potential: the contrast (minus the displaced ice) and its spectrum."""
    contrast = potential - _displaced_ice(potential, pixel_size_A, mass_Da, ice_potential_V)
    spectrum = prepare_fourier_volume(contrast, pixel_size_A)
    return Reference(name, source, pixel_size_A, potential, contrast, radius_A, mass_Da, spectrum, symmetry)


def assemble(xyz: np.ndarray, symmetry: str, radius_A: float) -> np.ndarray:
    """Coordinates (|G|·n, 3) of |G| copies of the centred atoms ``xyz`` (n, 3): the copy at the identity
    has its centre of mass moved to ``radius_A`` × ``ASSEMBLY_DIRECTION[kind]`` (x for Cn: the copies ring
    the z axis), and copy g is that one moved by operator G_g about the origin."""
    ops = symmetry_operators(symmetry)
    start = xyz + radius_A * ASSEMBLY_DIRECTION[parse_symmetry(symmetry)[0]]
    return np.einsum("gab,nb->gna", ops, start).reshape(-1, 3)


def reference_from_model(
    name: str,
    path: Path,
    pixel_size_A: float,
    params: tuple[dict, dict],
    b_factor_A2: float,
    ice_potential_V: float,
    *,
    chain: str | None = None,
    symmetry: str = "C1",
    assembly_radius_A: float = 0.0,
    biological_assembly: str | None = None,
) -> Reference:
    """Reference from an atomic model (or one of its chains): erf-integrated 5-Gaussian potential on a cubic
    box; with a symmetry other than C1, or a radius, the assembly of copies placed by ``assemble``, its
    potential sampled at half the pixel size and Fourier-cropped (anti-aliased: symmetric to < 1 %)."""
    xyz, elements, mass = read_atoms(path, chain, biological_assembly)
    assembled = symmetry != "C1" or assembly_radius_A > 0
    if assembled:
        copies = group_order(symmetry)
        xyz, elements, mass = assemble(xyz, symmetry, assembly_radius_A), elements * copies, mass * copies
    radius = float(np.linalg.norm(xyz, axis=1).max()) + 5.0
    n = _box_size(radius, pixel_size_A)
    if assembled:  # computed at half the pixel size and Fourier-cropped: no aliasing, so the symmetry holds
        fine = atomic_potential_volume(xyz, elements, params[0], params[1], pixel_size_A / 2, (2 * n,) * 3, b_factor_A2)
        pot = fourier_crop(fine, (n, n, n))
    else:
        pot = atomic_potential_volume(xyz, elements, params[0], params[1], pixel_size_A, (n, n, n), b_factor_A2)
    return _reference(name, str(path), pixel_size_A, pot, radius, mass, ice_potential_V, canonical_symmetry(symmetry))


def reference_from_map(
    name: str,
    path: Path,
    pixel_size_A: float,
    params: tuple[dict, dict],
    mass_kDa: float | None,
    ice_potential_V: float,
) -> Reference:
    """Reference from a density map: resampled to the pixel size and scaled so that its positive part
    integrates to the potential of ``mass_kDa`` of protein (estimated at mean + 2σ when not given)."""
    data = torch.from_numpy(np.asarray(read_mrc(path), dtype=np.float32))
    voxel = read_voxel_size(path)
    if data.ndim != 3:
        raise ValueError(f"{path}: a particle map must be 3D, got shape {tuple(data.shape)}")
    new = tuple(max(2, int(round(s * voxel / pixel_size_A))) for s in data.shape)
    data = fourier_crop(data, new)
    data = data - torch.median(data)
    if mass_kDa is None:
        thr = float(data.mean() + 2 * data.std())
        mass_Da = float((data > thr).sum()) * pixel_size_A**3 * PROTEIN_DENSITY_DA_PER_A3
    else:
        mass_Da = mass_kDa * 1e3
    atomic_mass = {e: gemmi.Element(e).weight for e in AVERAGINE}
    per_da = potential_per_dalton(AVERAGINE, params[0], atomic_mass)
    pos = torch.clamp(data, min=0)
    pot = pos * (mass_Da * per_da / (float(pos.sum()) * pixel_size_A**3))
    coords = torch.nonzero(pot > 0.05 * pot.max()).to(torch.float64)
    centre = torch.tensor([s // 2 for s in pot.shape], dtype=torch.float64)
    radius = float(torch.linalg.norm(coords - centre, dim=1).max()) * pixel_size_A + pixel_size_A
    n = _box_size(radius, pixel_size_A)
    box = torch.zeros(n, n, n)
    paste_add(box, pot, (n // 2, n // 2, n // 2))
    contrast = box - _displaced_ice(box, pixel_size_A, mass_Da, ice_potential_V)
    return Reference(
        name, str(path), pixel_size_A, box, contrast, radius, mass_Da, prepare_fourier_volume(contrast, pixel_size_A)
    )


def blob_reference(
    rng: np.random.Generator, pixel_size_A: float, params: tuple[dict, dict], ice_potential_V: float
) -> Reference:
    """A crowding molecule: a union of 3–6 spheres (radius 12–20 Å) at protein density, edges
    smoothed by 2 Å, so ~50–400 kDa."""
    k = int(rng.integers(3, 7))
    centres = rng.normal(scale=10.0, size=(k, 3))
    radii = rng.uniform(12.0, 20.0, size=k)
    radius = float((np.linalg.norm(centres, axis=1) + radii).max()) + 4.0
    n = _box_size(radius, pixel_size_A)
    ax = (torch.arange(n, dtype=torch.float64) - n // 2) * pixel_size_A
    z, y, x = torch.meshgrid(ax, ax, ax, indexing="ij")
    inside = torch.zeros(n, n, n, dtype=torch.bool)
    for c, r in zip(centres, radii):
        inside |= (x - c[0]) ** 2 + (y - c[1]) ** 2 + (z - c[2]) ** 2 <= r * r
    vol = torch.from_numpy(ndimage.gaussian_filter(inside.double().numpy(), sigma=2.0 / pixel_size_A))
    mass = float(inside.sum()) * pixel_size_A**3 * PROTEIN_DENSITY_DA_PER_A3
    atomic_mass = {e: gemmi.Element(e).weight for e in AVERAGINE}
    per_da = potential_per_dalton(AVERAGINE, params[0], atomic_mass)
    pot = (vol * (mass * per_da / (float(vol.sum()) * pixel_size_A**3))).to(torch.float32)
    return _reference("background", "procedural", pixel_size_A, pot, radius, mass, ice_potential_V)
