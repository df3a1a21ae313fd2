"""Fourier shell correlation and the rotation + translation that superpose one map on another.

Volumes are cubic, stored (z, y, x), centre at voxel n // 2; rotations act on (x, y, z) vectors about
that centre (x_rotated = R · x, so the rotated volume is V(Rᵀ x)), shifts are (x, y, z) in voxels.
``align_maps`` finds R, t with ``moving(x) ≈ reference(Rᵀ (x − t))``: a global search over a
near-uniform set of rotations (modulo the reference's symmetry) at a coarse sampling, the translation
by cross-correlation for each, then a local refinement of the best few at the full sampling.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from tomoforge.methods.projection import (
    FourierVolume,
    _sample,
    prepare_fourier_volume,
    rotate_volume_fourier,
)
from tomoforge.methods.rotations import quaternions_to_matrices, rotation_about_axis
from tomoforge.methods.symmetry import group_order

SUPER_FIBONACCI_PSI = 1.533751168755204288118041


def fourier_shell_correlation(a: torch.Tensor, b: torch.Tensor, pixel_size_A: float) -> tuple[np.ndarray, np.ndarray]:
    """FSC of two (n, n, n) volumes in shells one Fourier voxel wide: (spatial frequency (1/Å) of each shell
    0 … n // 2, FSC of the shell), float64."""
    if a.shape != b.shape or len(set(a.shape)) != 1:
        raise ValueError(f"FSC needs two cubic volumes of one shape, got {tuple(a.shape)} and {tuple(b.shape)}")
    n = a.shape[0]
    fa = torch.fft.rfftn(torch.as_tensor(a, dtype=torch.float64))
    fb = torch.fft.rfftn(torch.as_tensor(b, dtype=torch.float64))
    k = [torch.fft.fftfreq(n, 1.0 / n, dtype=torch.float64)] * 2 + [torch.fft.rfftfreq(n, 1.0 / n, dtype=torch.float64)]
    kz, ky, kx = torch.meshgrid(*k, indexing="ij")
    shell = torch.round(torch.sqrt(kz**2 + ky**2 + kx**2)).long().reshape(-1)
    keep = shell <= n // 2
    shell = shell[keep]

    def sums(values: torch.Tensor) -> torch.Tensor:
        return torch.zeros(n // 2 + 1, dtype=torch.float64).index_add_(0, shell, values.reshape(-1)[keep])

    cross = sums((fa * fb.conj()).real)
    norm = torch.sqrt(sums(fa.abs() ** 2) * sums(fb.abs() ** 2)).clamp(min=1e-300)
    return np.arange(n // 2 + 1) / (n * pixel_size_A), (cross / norm).numpy()


def fsc_resolution_A(frequency: np.ndarray, fsc: np.ndarray, threshold: float = 0.143) -> float:
    """Resolution (Å) where the FSC first falls below ``threshold`` (linear between shells); the Nyquist
    resolution when it never does."""
    below = np.nonzero(fsc[1:] < threshold)[0]
    if len(below) == 0:
        return float(1.0 / frequency[-1])
    i = below[0] + 1
    f0, f1, c0, c1 = frequency[i - 1], frequency[i], fsc[i - 1], fsc[i]
    f = f0 + (c0 - threshold) / (c0 - c1) * (f1 - f0) if c0 != c1 else f1
    return float(1.0 / f)


def super_fibonacci_rotations(n: int) -> np.ndarray:
    """(n, 3, 3) rotations spread near-uniformly over SO(3) (super-Fibonacci spiral of unit quaternions)."""
    s = np.arange(n) + 0.5
    r, big_r = np.sqrt(s / n), np.sqrt(1.0 - s / n)
    alpha, beta = 2 * np.pi * s / np.sqrt(2.0), 2 * np.pi * s / SUPER_FIBONACCI_PSI
    q = np.stack([r * np.sin(alpha), r * np.cos(alpha), big_r * np.sin(beta), big_r * np.cos(beta)], -1)
    return quaternions_to_matrices(q)


@dataclass
class _Grid:
    """Half-spectrum (rfft layout) frequencies of an n-box cropped to m, with a low-pass weight."""

    n: int
    m: int
    k: torch.Tensor  # (m, m, m // 2 + 1, 3) integer frequencies (x, y, z) of the n-box
    weight: torch.Tensor  # (m, m, m // 2 + 1) Gaussian low-pass, 0 at DC and at |k| ≥ m / 2
    keep: torch.Tensor  # flat indices where weight > 0
    multiplicity: torch.Tensor  # 1 on the kx = 0 plane, 2 elsewhere (each stands for ±k)


def _grid(n: int, m: int, pixel_size_A: float, resolution_A: float) -> _Grid:
    kyz = torch.fft.fftfreq(m, 1.0 / m)
    kx = torch.fft.rfftfreq(m, 1.0 / m)
    kz, ky, kxx = torch.meshgrid(kyz, kyz, kx, indexing="ij")
    k = torch.stack([kxx, ky, kz], -1)
    k2 = (k**2).sum(-1)
    sigma2 = (1.0 / resolution_A) ** 2 / (2 * np.log(2.0))
    w = torch.exp(-k2 / (n * pixel_size_A) ** 2 / (2 * sigma2))
    w[(k2 == 0) | (k2 >= (m / 2) ** 2)] = 0.0
    keep = torch.nonzero(w.reshape(-1) > 0)[:, 0]
    mult = torch.where(k[..., 0] == 0, 1.0, 2.0).reshape(-1)[keep]
    return _Grid(n, m, k, w, keep, mult)


def _half_spectrum(volume: torch.Tensor, grid: _Grid) -> torch.Tensor:
    """rfft of a cubic volume (phase origin at voxel n // 2), cropped to the grid's m, times its weight."""
    spec = torch.fft.rfftn(torch.fft.ifftshift(volume.double()))
    iz = (grid.k[:, 0, 0, 2].long()) % grid.n
    ix = grid.k[0, 0, :, 0].long()
    return (spec[iz][:, iz][:, :, ix] * grid.weight).to(torch.complex64)


def _refine_peak(
    product: torch.Tensor, k: torch.Tensor, multiplicity: torch.Tensor, start: torch.Tensor, steps: int = 2
) -> tuple[torch.Tensor, torch.Tensor]:
    """Newton steps on c(s) = Σ_k mult · Re P(k) exp(i k·s) from ``start`` (b, 3) (so that a rotation cannot
    win by putting the correlation peak on a voxel): (s (b, 3), c(s) (b,)). ``k`` (K, 3) in radians/voxel."""
    kk = (k[:, :, None] * k[:, None, :]).reshape(-1, 9)
    p = product * multiplicity
    s = start
    for i in range(steps + 1):
        angle = s @ k.T
        e = p * torch.polar(torch.ones_like(angle), angle)  # (b, K)
        value = e.real.sum(1)
        if i == steps:
            break
        grad = -(e.imag @ k)  # d/ds Re(P e^{ik·s}) = −Im(P e^{ik·s}) k
        hess = -(e.real @ kk).reshape(-1, 3, 3)
        ok = torch.linalg.eigvalsh(hess).max(dim=1).values < 0
        step = torch.linalg.solve(torch.where(ok[:, None, None], hess, -torch.eye(3)), grad[..., None])[..., 0]
        s = torch.where(ok[:, None], s - step.clamp(-0.5, 0.5), s)
    return s, value


def _scan(
    fv: FourierVolume,
    moving: torch.Tensor,
    grid: _Grid,
    rotations: np.ndarray,
    max_shift: float,
    exact: bool = True,
    batch: int = 32,
) -> tuple[np.ndarray, np.ndarray]:
    """For each rotation R, the normalised cross-correlation peak of the moving half spectrum (``_half_spectrum``)
    with the reference's rotated by R, and its position: (scores (b,), shifts (b, 3) x, y, z in voxels of the
    n-box), the peak found on the m-grid and, when ``exact``, refined by Newton steps on the exact correlation."""
    n, m = grid.n, grid.m
    mult = grid.multiplicity
    flat_mov = moving.reshape(-1)[grid.keep]
    mov_norm = float((flat_mov.abs() ** 2 * mult).sum().sqrt())
    k_keep = grid.k.reshape(-1, 3)[grid.keep] * (2 * np.pi / m)
    idx = torch.fft.fftfreq(m, 1.0 / m).round()
    far = idx.abs() > max_shift * m / n
    scores, shifts = [], []
    for start in range(0, len(rotations), batch):
        r = torch.as_tensor(np.asarray(rotations[start : start + batch]), dtype=torch.float32)
        spec = _sample(fv, torch.einsum("zyxa,bac->bzyxc", grid.k, r) * (fv.n / n)) * grid.weight
        product = moving[None] * spec.conj()
        flat = product.reshape(len(r), -1)[:, grid.keep]
        norms = ((spec.reshape(len(r), -1)[:, grid.keep].abs() ** 2) * mult).sum(1).sqrt() * mov_norm
        cc = torch.fft.irfftn(product, s=(m, m, m), dim=(1, 2, 3))
        cc[:, far] = -torch.inf
        cc[:, :, far] = -torch.inf
        cc[:, :, :, far] = -torch.inf
        pos = torch.stack(torch.unravel_index(cc.flatten(1).argmax(dim=1), (m, m, m)), -1)  # (b, 3) z, y, x
        start_xyz = idx[pos].flip(-1)
        if exact:
            s, peak = _refine_peak(flat, k_keep, mult, start_xyz)
        else:  # the peak of a parabola through the maximum and its neighbours along each axis
            b = torch.arange(len(cc))
            peak = cc.flatten(1).max(dim=1).values
            for axis in range(3):
                near = [pos.clone(), pos.clone()]
                near[0][:, axis] = (pos[:, axis] - 1) % m
                near[1][:, axis] = (pos[:, axis] + 1) % m
                lo, hi = (cc[b, q[:, 0], q[:, 1], q[:, 2]] for q in near)
                curve = torch.where(torch.isfinite(lo + hi), lo + hi - 2 * peak, -torch.inf).clamp(max=-1e-30)
                peak = peak - torch.nan_to_num((lo - hi) ** 2 / (8 * curve), nan=0.0)
            s, peak = start_xyz, peak * m**3
        scores.append(peak / norms.clamp(min=1e-30))
        shifts.append(s * (n / m))
    return torch.cat(scores).numpy(), torch.cat(shifts).numpy()


def _climb(
    fv: FourierVolume,
    moving: torch.Tensor,
    grid: _Grid,
    rotation: np.ndarray,
    delta: float,
    final_deg: float,
    max_shift: float,
) -> tuple[float, np.ndarray, float]:
    """Hill-climb from ``rotation`` by ±``delta``° about x, y, z; at a maximum, a parabola per axis and a
    step three times finer, until the step is below ``final_deg``: (score, rotation, last step)."""
    score = -np.inf
    for _ in range(60):
        trial = np.stack(
            [rotation] + [rotation_about_axis(a, d) @ rotation for a in np.eye(3) for d in (delta, -delta)]
        )
        sc, _ = _scan(fv, moving, grid, trial, max_shift)
        best = int(np.argmax(sc))
        score = float(sc[best])
        if best:
            rotation = trial[best]
            continue
        if delta < final_deg:
            break
        plus, minus = sc[1::2], sc[2::2]
        curve = np.minimum(plus + minus - 2 * sc[0], -1e-12)
        omega = np.clip(0.5 * delta * (minus - plus) / curve, -delta / 2, delta / 2)
        norm = float(np.linalg.norm(omega))
        rotation = rotation_about_axis(omega, norm) @ rotation if norm > 0 else rotation
        delta /= 3
    return score, rotation, delta


@dataclass
class MapAlignment:
    """``moving(x) ≈ reference(Rᵀ (x − t))``; the FSC is of ``moving`` and the reference so placed."""

    rotation: np.ndarray  # (3, 3) R, x, y, z
    shift_xyz_px: np.ndarray  # (3,) t
    frequency: np.ndarray  # (n // 2 + 1,) 1/Å
    fsc: np.ndarray  # (n // 2 + 1,)
    score: float  # normalised cross-correlation at the solution (low-passed maps)


def align_maps(
    moving: torch.Tensor | np.ndarray,
    reference: torch.Tensor | np.ndarray,
    pixel_size_A: float,
    *,
    symmetry: str = "C1",
    search_resolution_A: float | None = None,
    coarse_rotations: int = 2000,
    refine_best: int = 5,
    final_step_deg: float = 0.25,
    max_shift_px: int | None = None,
) -> MapAlignment:
    """The rotation and shift that best superpose ``reference`` on ``moving`` (both (n, n, n), same pixel
    size Å), and the FSC at that superposition. The global search runs on maps low-passed to
    ``search_resolution_A`` (default 4 pixels) and Fourier-cropped to about 2 voxels per resolution
    element, over ``coarse_rotations`` / |G| rotations (G: ``symmetry`` of the reference, whose
    superpositions are equivalent); the best ``refine_best`` are hill-climbed on that coarse grid and
    the best of them at the full sampling down to ``final_step_deg``. Shifts are searched within
    ``max_shift_px`` (default n // 4); the correlation of a rotation is taken at its sub-voxel peak."""
    mov = torch.as_tensor(np.asarray(moving), dtype=torch.float32)
    ref = torch.as_tensor(np.asarray(reference), dtype=torch.float32)
    if mov.shape != ref.shape or len(set(mov.shape)) != 1 or mov.ndim != 3:
        raise ValueError(f"align_maps needs two cubic volumes of one shape, got {tuple(mov.shape)}, {tuple(ref.shape)}")
    n = mov.shape[0]
    res = 4 * pixel_size_A if search_resolution_A is None else search_resolution_A
    max_shift = n / 4 if max_shift_px is None else float(max_shift_px)
    fv = prepare_fourier_volume(ref, pixel_size_A, padding=3.0)
    m = int(min(n, max(12, 2 * np.ceil(n * pixel_size_A / res))))
    coarse = _grid(n, m, pixel_size_A, res)
    fine_res = max(res / 2, 2.5 * pixel_size_A)
    fine = _grid(n, n, pixel_size_A, fine_res)
    mov_coarse, mov_fine = _half_spectrum(mov, coarse), _half_spectrum(mov, fine)
    grid = super_fibonacci_rotations(max(coarse_rotations // group_order(symmetry), 64))
    scores, _ = _scan(fv, mov_coarse, coarse, grid, max_shift, exact=False)
    step = float(np.rad2deg((np.pi**2 / len(grid)) ** (1 / 3)))
    climbed = [
        _climb(fv, mov_coarse, coarse, start, step, step / 8, max_shift)
        for start in grid[np.argsort(scores)[::-1][:refine_best]]
    ]
    _, rotation, delta = max(climbed, key=lambda x: x[0])
    score, rotation, _ = _climb(fv, mov_fine, fine, rotation, delta, final_step_deg, max_shift)
    _, shift = _scan(fv, mov_fine, fine, rotation[None], max_shift)
    t = shift[0]
    placed = rotate_volume_fourier(fv, rotation, (float(t[0]), float(t[1]), float(t[2])))
    lo = fv.n // 2 - n // 2
    placed = placed[lo : lo + n, lo : lo + n, lo : lo + n]
    freq, curve = fourier_shell_correlation(mov, placed, pixel_size_A)
    return MapAlignment(rotation, t, freq, curve, score)
