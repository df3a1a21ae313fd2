"""Electrostatic potential of atoms from 5-Gaussian electron scattering factors (Peng et al. 1996).

f_e(s) = Σ a_i exp(−b_i s²) with s = sin θ / λ = q / 2 (a in Å, b in Å²). Its inverse Fourier transform
gives the potential of an atom (Himes & Grigorieff 2021, eq. 8; Kirkland 2010):

    V(r) = C Σ_i a_i (4π / B_i)^{3/2} exp(−4π² r² / B_i),   B_i = b_i + B_factor,   C = h² / (2π m0 e)

with C = 47.878 V·Å², so ∫V d³r = C Σ_i a_i per atom. Each voxel gets the exact average of V over
its volume (separable erf integrals), so sampling never changes the integrated potential.
The scattering parameters come from a table (e.g. the ``elastic_scattering_factors.json`` of ttsim3d);
file reading belongs to the caller.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from tomoforge.methods.ctf.transfer import electron_wavelength_A

POTENTIAL_CONSTANT_V_A2 = 47.87801  # h² / (2π m0 e) in V·Å²
ELECTRON_REST_ENERGY_KEV = 510.99895


def interaction_constant(voltage_kV: float) -> float:
    """Electron interaction constant σ in rad / (V·Å): phase shift = σ · ∫V dz (Kirkland eq. 5.6)."""
    lam = electron_wavelength_A(voltage_kV)
    e0, v = ELECTRON_REST_ENERGY_KEV, voltage_kV
    return 2 * math.pi / (lam * v * 1e3) * (e0 + v) / (2 * e0 + v)


def integrated_potential_per_atom(elements: list[str], params_a: dict[str, list[float]]) -> np.ndarray:
    """∫V d³r (V·Å³) of each atom: C · Σ a_i."""
    missing = sorted({e for e in elements if e.upper() not in params_a})
    if missing:
        raise KeyError(f"no scattering factors for element(s) {missing}")
    return np.array([POTENTIAL_CONSTANT_V_A2 * sum(params_a[e.upper()]) for e in elements])


def atomic_potential_volume(
    coords_xyz_A: np.ndarray,
    elements: list[str],
    params_a: dict[str, list[float]],
    params_b: dict[str, list[float]],
    pixel_size_A: float,
    shape_zyx: tuple[int, int, int],
    b_factor_A2: float = 0.0,
    chunk: int = 16384,
    device: torch.device | str | None = None,
) -> torch.Tensor:
    """Potential volume (z, y, x) in volts of atoms at ``coords_xyz_A`` (Å, relative to the volume
    centre, voxel n // 2 along each axis), each voxel averaged over its volume; float32."""
    coords = np.asarray(coords_xyz_A, dtype=np.float64)
    elements = [e.upper() for e in elements]
    integrated_potential_per_atom(elements, params_a)  # raises on unknown elements
    uniq = sorted(set(elements))
    index = np.array([uniq.index(e) for e in elements])
    a_tab = torch.tensor([params_a[e] for e in uniq], dtype=torch.float64, device=device)
    b_tab = torch.tensor([params_b[e] for e in uniq], dtype=torch.float64, device=device) + b_factor_A2
    sigma_max = math.sqrt(float(b_tab.max()) / (8 * math.pi**2))
    w = int(math.ceil(4.5 * sigma_max / pixel_size_A + 0.5))
    offsets = torch.arange(-w, w + 1, device=device, dtype=torch.float64)
    shape = torch.tensor(shape_zyx[::-1], device=device)  # (x, y, z) sizes
    pad = w + 1
    padded = [n + 2 * pad for n in shape_zyx]
    out = torch.zeros(int(np.prod(padded)), dtype=torch.float64, device=device)
    strides = torch.tensor([1, padded[2], padded[2] * padded[1]], device=device)  # x, y, z
    centre = (shape // 2).to(torch.float64)
    for start in range(0, len(coords), chunk):
        pos = torch.as_tensor(coords[start : start + chunk], device=device) / pixel_size_A + centre  # voxels
        idx = torch.as_tensor(index[start : start + chunk], device=device)
        a, b = a_tab[idx], b_tab[idx]  # (n, 5)
        alpha = 2 * math.pi / torch.sqrt(b)  # (n, 5) in 1/Å
        base = torch.round(pos)  # (n, 3)
        vox = base[:, :, None] + offsets  # (n, 3, K) voxel indices
        lo = (vox - 0.5 - pos[:, :, None]) * pixel_size_A
        hi = (vox + 0.5 - pos[:, :, None]) * pixel_size_A
        e = torch.erf(alpha[:, :, None, None] * hi[:, None]) - torch.erf(alpha[:, :, None, None] * lo[:, None])
        # e: (n, 5, 3, K); value = C a_i / 8 · ex · ey · ez, averaged over the voxel volume
        weight = a * (POTENTIAL_CONSTANT_V_A2 / 8 / pixel_size_A**3)
        vals = torch.einsum("ng,ngx,ngy,ngz->nzyx", weight, e[:, :, 0], e[:, :, 1], e[:, :, 2])
        vi = (vox + pad).to(torch.int64)  # (n, 3, K)
        inside = ((vox >= -pad) & (vox < shape[None, :, None] + pad)).all(dim=(1, 2))
        flat = vi[:, 2, :, None, None] * strides[2] + vi[:, 1, None, :, None] * strides[1] + vi[:, 0, None, None, :]
        out.index_add_(0, flat[inside].reshape(-1), vals[inside].reshape(-1))
    vol = out.reshape(padded)[pad:-pad, pad:-pad, pad:-pad]
    return vol.to(torch.float32)


def potential_per_dalton(
    composition: dict[str, float], params_a: dict[str, list[float]], atomic_mass_Da: dict[str, float]
) -> float:
    """Integrated potential (V·Å³) per dalton of matter with the atom counts ``composition``."""
    pot = sum(n * POTENTIAL_CONSTANT_V_A2 * sum(params_a[e.upper()]) for e, n in composition.items())
    mass = sum(n * atomic_mass_Da[e] for e, n in composition.items())
    return pot / mass


def mass_from_potential_Da(volume: torch.Tensor, pixel_size_A: float, potential_per_Da: float) -> float:
    """Molecular mass (Da) implied by a potential volume (V) given the potential per dalton (V·Å³/Da)."""
    return float(torch.as_tensor(volume, dtype=torch.float64).sum()) * pixel_size_A**3 / potential_per_Da
