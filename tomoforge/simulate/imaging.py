"""Image formation for one tilt: projected potential in height slabs → CTF → exposure → intensity.

Weak-phase, projection approximation, linear in the potential:
    I(r) = T_ice · [ G(r) + 2 · F⁻¹[ Σ_slab σ·F[φ_slab] · CTF(ΔfU + h, ΔfV + h, θ_ast) · q(k, N) + ICE ] ]
with φ_slab the projected potential (V·Å) of the objects whose height h lies in that slab, σ the
interaction constant, q the Grant & Grigorieff attenuation at accumulated exposure N, G = exp(−μ·chord)
the amplitude loss through gold, T_ice = exp(−t / (λ_in cos α)) the ice attenuation along the beam and
ICE the texture of the vitreous ice through its CTF (``ice.py``; in the frames, not the noise-free stacks).
The detector MTF multiplies the whole spectrum; frames add their beam-induced shift in Fourier space.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from tomoforge.methods.ellipsoids import add_ellipsoid_projection, ellipsoid_half_extents
from tomoforge.methods.fourier import phase_ramp_2d
from tomoforge.methods.potential import interaction_constant
from tomoforge.methods.preprocess.dose import exposure_filter_2d
from tomoforge.methods.rotations import tilt_projection_matrix
from tomoforge.simulate.acquisition import TiltTruth
from tomoforge.simulate.config import SimulationConfig
from tomoforge.simulate.ice import ice_texture_spectrum
from tomoforge.simulate.placement import SlabCTF, batch_size, box_size, paste_into_slabs, project_batch
from tomoforge.simulate.specimen import Specimen
from tomoforge.simulate.structures import Reference


@dataclass
class TiltSignal:
    """Noise-free ingredients of one tilt image (rfft spectra on the image grid)."""

    phase_spectrum: torch.Tensor  # σ · Σ_slab F[φ_slab] · CTF_slab (dimensionless)
    amplitude_spectrum: torch.Tensor  # F[G], G = gold transmission
    ice_transmission: float
    ctf_free_spectrum: torch.Tensor | None = None  # as phase_spectrum with CTF = −1 (when asked for)
    ice_spectrum: torch.Tensor | None = None  # the ice texture after its CTF (not attenuated by exposure)


def projection_matrix(tilt: TiltTruth) -> np.ndarray:
    """Rz(ZRot) · Ry(YTilt) · Rx(XTilt) of a tilt (acts on tomogram x, y, z)."""
    return tilt_projection_matrix(tilt.tilt_deg, tilt.z_rot_deg, tilt.x_tilt_deg)


def projected_potential_slabs(
    spec: Specimen,
    references: list[Reference],
    backgrounds: list[Reference],
    tilt: TiltTruth | None,
    shape: tuple[int, int],
    pixel_size_A: float,
    slab_A: float = math.inf,
) -> tuple[dict[int, torch.Tensor], torch.Tensor]:
    """({slab index k: projected potential (V·Å) of objects at height ≈ k·slab_A}, gold chord (Å)).

    ``tilt`` None is the untilted, unshifted view (identity projection)."""
    m = np.eye(3) if tilt is None else projection_matrix(tilt)
    shift = np.zeros(2) if tilt is None else np.asarray(tilt.shift_A)
    ny, nx = shape
    centre = np.array([nx // 2, ny // 2])
    slabs: dict[int, torch.Tensor] = {}
    gold = torch.zeros(shape, dtype=torch.float32)

    def slab(k: int) -> torch.Tensor:
        if k not in slabs:
            slabs[k] = torch.zeros(shape, dtype=torch.float32)
        return slabs[k]

    def index(h: float) -> int:
        return 0 if math.isinf(slab_A) else int(math.floor(h / slab_A + 0.5))

    groups = []  # (reference, rotations, sub-pixel shifts, slab keys, centre pixels (y, x)) per species
    for refs, items in ((references, spec.particles), (backgrounds, spec.background)):
        if not items:
            continue
        q = np.array([item.position_A for item in items]) @ m.T
        rotations = np.einsum("ab,kbc->kac", m, np.array([item.rotation for item in items]))
        species = np.array([item.species for item in items])
        xy = (q[:, :2] + shift) / pixel_size_A + centre
        whole = np.round(xy)
        keys = np.zeros(len(q), dtype=np.int64) if math.isinf(slab_A) else np.floor(q[:, 2] / slab_A + 0.5)
        for s in np.unique(species):
            ref = refs[int(s)]
            if ref.pixel_size_A != pixel_size_A:
                raise ValueError(f"reference {ref.name} is at {ref.pixel_size_A} Å/px, image at {pixel_size_A}")
            half = box_size(ref.fourier) // 2
            sel = (
                (species == s)
                & (whole[:, 0] + half >= 0)
                & (whole[:, 1] + half >= 0)
                & (whole[:, 0] - half < nx)
                & (whole[:, 1] - half < ny)
            )
            groups.append((ref, rotations[sel], (xy - whole)[sel], keys[sel].astype(np.int64), whole[sel][:, ::-1]))
    used = sorted({int(k) for g in groups for k in g[3]})
    if used:
        pad = max(box_size(g[0].fourier) for g in groups)
        canvas = torch.zeros((len(used), ny + 2 * pad, nx + 2 * pad), dtype=torch.float32)
        for ref, rotations, frac, keys, centres in groups:
            slab_of = np.searchsorted(used, keys)
            step = batch_size(ref.fourier)
            for a in range(0, len(rotations), step):  # batches of projections, not single particles
                proj = project_batch(ref.fourier, rotations[a : a + step], frac[a : a + step])
                paste_into_slabs(canvas, proj, slab_of[a : a + step], centres[a : a + step].astype(np.int64), pad)
        for i, k in enumerate(used):
            slabs[k] = canvas[i, pad : pad + ny, pad : pad + nx].clone()
        del canvas
    for solid in spec.solids:
        c = m @ solid.centre_A
        c[:2] += shift
        a = m @ solid.matrix @ m.T
        if solid.kind == "fiducial":
            add_ellipsoid_projection(gold, pixel_size_A, c, a, 1.0)
        half_z = ellipsoid_half_extents(a)[2]
        if math.isinf(slab_A):
            add_ellipsoid_projection(slab(0), pixel_size_A, c, a, solid.weight_V)
            continue
        for k in range(index(c[2] - half_z), index(c[2] + half_z) + 1):
            add_ellipsoid_projection(
                slab(k), pixel_size_A, c, a, solid.weight_V, ((k - 0.5) * slab_A, (k + 0.5) * slab_A)
            )
    return slabs, gold


def tilt_signal(
    spec: Specimen,
    references: list[Reference],
    backgrounds: list[Reference],
    tilt: TiltTruth,
    cfg: SimulationConfig,
    shape: tuple[int, int],
    pixel_size_A: float,
    gold_absorption_per_A: float,
    ctf_free: bool = False,
    ice_power: tuple[np.ndarray, np.ndarray] | None = None,
    generator: torch.Generator | None = None,
) -> TiltSignal:
    """CTF-modulated phase spectrum, gold amplitude spectrum and ice transmission of one tilt; with
    ``ctf_free`` also the phase spectrum with a perfect transfer (CTF = −1 at every height); with
    ``ice_power`` (k 1/Å, P(k) V²·Å³ from ``ice_power_spectrum``) the ice texture, drawn with ``generator``."""
    acq = cfg.acquisition
    slab_A = acq.depth_slab_A
    slabs, gold = projected_potential_slabs(spec, references, backgrounds, tilt, shape, pixel_size_A, slab_A)
    sigma = interaction_constant(acq.voltage_kV)
    spectrum = torch.zeros((shape[0], shape[1] // 2 + 1), dtype=torch.complex64)
    free = torch.zeros_like(spectrum) if ctf_free else None
    slab_ctf = SlabCTF(
        shape,
        pixel_size_A,
        tilt.defocus_u_A,
        tilt.defocus_v_A,
        tilt.astigmatism_angle_deg,
        voltage_kV=acq.voltage_kV,
        cs_mm=acq.cs_mm,
        amplitude_contrast=acq.amplitude_contrast,
    )
    for k, phi in slabs.items():
        ctf = slab_ctf.at(k * slab_A)
        phi_k = torch.fft.rfft2(phi)
        spectrum += phi_k * ctf
        if free is not None:
            free -= phi_k
    spectrum *= sigma
    beam = projection_matrix(tilt)[2]  # beam direction in tomogram coordinates
    cos_alpha = abs(float(beam @ spec.slab_normal))
    t_ice = math.exp(-spec.ice_thickness_A / (cfg.specimen.inelastic_mean_free_path_A * cos_alpha))
    amplitude = torch.fft.rfft2(torch.exp(-gold_absorption_per_A * gold))
    ice = None
    if ice_power is not None:
        ice = ice_texture_spectrum(
            shape,
            pixel_size_A,
            ice_power,
            spec.ice_thickness_A,
            projection_matrix(tilt) @ spec.slab_normal,
            tilt.shift_A,
            tilt.defocus_u_A,
            tilt.defocus_v_A,
            tilt.astigmatism_angle_deg,
            acq.voltage_kV,
            acq.cs_mm,
            acq.amplitude_contrast,
            sigma,
            generator or torch.Generator().manual_seed(0),
        )
    return TiltSignal(spectrum, amplitude, t_ice, None if free is None else free * sigma, ice)


def exposure_weights(
    shape: tuple[int, int], pixel_size_A: float, tilt: TiltTruth, frames: int, voltage_kV: float
) -> list[torch.Tensor]:
    """Grant & Grigorieff attenuation of each frame at its mid-frame accumulated exposure."""
    per_frame = tilt.dose / frames
    return [
        exposure_filter_2d(shape, pixel_size_A, tilt.pre_exposure + (f + 0.5) * per_frame, voltage_kV=voltage_kV)
        for f in range(frames)
    ]


def expected_frame(
    signal: TiltSignal,
    attenuation: torch.Tensor,
    mtf: torch.Tensor | None,
    shift_xy_px: tuple[float, float],
    counts_per_pixel: float,
) -> torch.Tensor:
    """Expected counts (y, x) of one frame: intensity × counts_per_pixel, shifted by ``shift_xy_px``."""
    shape = (signal.phase_spectrum.shape[0], (signal.phase_spectrum.shape[1] - 1) * 2)
    spec = signal.amplitude_spectrum + 2 * signal.phase_spectrum * attenuation
    if signal.ice_spectrum is not None:
        spec = spec + 2 * signal.ice_spectrum
    if mtf is not None:
        spec = spec * mtf
    if shift_xy_px[0] or shift_xy_px[1]:
        spec = spec * phase_ramp_2d(shape, (float(shift_xy_px[1]), float(shift_xy_px[0])))
    image = torch.fft.irfft2(spec, s=shape)
    return torch.clamp(image * (signal.ice_transmission * counts_per_pixel), min=0.0)
