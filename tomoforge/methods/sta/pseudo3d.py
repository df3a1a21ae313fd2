"""3D pseudo-subtomograms (RELION 4/5): a particle's 2D views (already CTF-premultiplied and dose-weighted by
``extraction.extract_particle_views``) inserted into a 3D box in the tomogram frame, with the box's CTF² weight.

Each view i of rotation R_i (tomogram frame -> view frame, the tilt's projection rotation) is placed on the
central slice Rᵢᵀ (kx, ky, 0) by ``insertion.insert_views`` (padded views, trilinear gridding on a grid twice as
fine as the box): the data D(k) = Σ_i f_i X_i(k) and the weight W(k) = Σ_i f_i², f_i = CTF_i · q_i (the view's
CTF at the particle's height times its dose attenuation; f = q without a CTF, 1 without either). For views
X_i = f_i P_i of a particle whose projections are P_i, D = W · S with S the particle's spectrum: the data volume
(D's inverse transform, cropped to the box, divided by the trilinear kernel's sinc²) and W are RELION 5's
pseudo-subtomogram and CTF² volume; ``averaging.average_subtomograms(..., premultiplied=True)`` averages them as
RELION does, Σ_p R_p(D_p) / (Σ_p R_p(W_p) + ε), each view weighted by f² over all particles. W is made as D is:
its inverse transform (the CTF²'s point spread) cropped to the box and gridding-corrected, then transformed on the
box's grid (clamped at 0), so that D and W are smoothed alike (sampled at every other fine voxel instead, the
thin slices of few views give ratios D / W that disagree with the 2D path: on 10 noise-free hexamers × 7 tilts
the two maps' FSC at half Nyquist 0.91, 0.94 with the cropped W; on the small virions at 0.75 Nyquist the FSC
to the reference 0.861, 0.869 with it, 0.868 from the 2D views).

``root_weight`` (weight_3d=sqrt-ctf2) writes the data D / √W' and the weight √W', W' = W + a floor (``ROOT_FLOOR``
× the mean of W), so that the transfer estimator Σ W S / Σ W² (``premultiplied=False``) gives Σ D / Σ W too, but
each particle's data is divided by the root of its own CTF², which is noisy where all its views' CTFs are near a
zero: on the small virions at 3.5-4 µm (tests/protocols/sta/test_pseudo3d.py) the map's FSC to the reference at
0.75 Nyquist is 0.80, against 0.87 with W itself averaged as RELION does, as from the 2D views.

The data is (b, b, b) float32 (z, y, x), the particle at voxel b // 2; the weight (b, b, b // 2 + 1) on the
``rfftn`` grid (DC at index 0), the box's frequency j read from the fine grid at 2 j, tomogram frame.
"""

from __future__ import annotations

import numpy as np
import torch

from tomoforge.methods.sta.insertion import ViewFilters, insert_views, new_accumulator

ROOT_FLOOR = 3e-2  # root_weight: D / sqrt(W + this fraction of the mean W)
PADDING = 2.0  # the insertion grid is twice as fine as the box: the box's frequency j sits at 2 j


def _with_friedel_mates(x: torch.Tensor, conjugate: bool) -> torch.Tensor:
    """x(k) + x(−k) (conjugated for data) on the centred (m + 2)³ grid, centre index m // 2 + 1."""
    mirrored = torch.roll(torch.flip(x, dims=(0, 1, 2)), shifts=(1, 1, 1), dims=(0, 1, 2))
    return x + (mirrored.conj() if conjugate else mirrored)


def pseudo_subtomogram(
    views: torch.Tensor | np.ndarray,
    view_matrices: np.ndarray,
    filters: ViewFilters | None,
    *,
    root_weight: bool = False,
    device: torch.device | str | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """One particle's 3D pseudo-subtomogram and its weight (see the module docstring).

    Parameters
    ----------
    views : (v, b, b) array
        The particle's views (y, x), its projected centre at pixel b // 2 (CTF-premultiplied and dose-weighted
        as ``filters`` says).
    view_matrices : (v, 3, 3) array
        Each view's projection rotation (tomogram frame -> view frame).
    filters : ViewFilters or None
        The views' CTF and dose (``ctf_premultiplied`` / ``dose_weighted`` set as the views were made); None:
        unfiltered views (weight = the number of slices through each frequency).
    root_weight : bool
        False: data D and weight W = Σ f² (RELION 5's pseudo-subtomogram and CTF² volume); True: data
        D / √(W + floor) and weight √W (see the module docstring).
    device : torch.device or str, optional
        Where to compute.

    Returns
    -------
    (torch.Tensor, torch.Tensor)
        The data volume (b, b, b) and the weight (b, b, b // 2 + 1), float32, on ``device``.
    """
    views = torch.as_tensor(np.asarray(views) if not isinstance(views, torch.Tensor) else views)
    b = int(views.shape[-1])
    acc = new_accumulator(b, padding=PADDING, device=device)
    insert_views(acc, views.to(acc.grid.device, torch.float32), np.asarray(view_matrices), filters=filters)
    m, c = acc.padded, acc.padded // 2 + 1
    data = _with_friedel_mates(acc.data, conjugate=True)[1 : m + 1, 1 : m + 1, 1 : m + 1]
    weight = _with_friedel_mates(acc.weight, conjugate=False)
    if root_weight:
        floor = ROOT_FLOOR * float(weight.mean())
        weight = torch.sqrt(weight)
        data = data / torch.sqrt(weight[1 : m + 1, 1 : m + 1, 1 : m + 1] ** 2 + floor)
    volume = torch.fft.fftshift(torch.fft.ifftn(torch.fft.ifftshift(data)).real)  # origin at voxel m // 2
    lo = m // 2 - b // 2
    volume = volume[lo : lo + b, lo : lo + b, lo : lo + b]
    x = torch.arange(b, device=volume.device, dtype=torch.float32) - b // 2
    sinc2 = torch.sinc(x / m) ** 2  # the trilinear kernel's transform on each axis
    gridding = sinc2[:, None, None] * sinc2[None, :, None] * sinc2[None, None, :]
    volume = volume / gridding
    if not root_weight:  # W as D was made: its inverse transform cropped to the box
        psf = torch.fft.fftshift(torch.fft.ifftn(torch.fft.ifftshift(weight[1 : m + 1, 1 : m + 1, 1 : m + 1])).real)
        psf = psf[lo : lo + b, lo : lo + b, lo : lo + b] / gridding
        box_weight = torch.fft.rfftn(torch.fft.ifftshift(psf)).real.clamp(min=0)
        return volume.contiguous(), box_weight.contiguous()
    step = m // b
    jz = torch.fft.fftfreq(b, 1.0 / b, device=weight.device).long() * step + c
    jx = torch.fft.rfftfreq(b, 1.0 / b, device=weight.device).long() * step + c
    box_weight = weight[jz][:, jz][:, :, jx]
    return volume.contiguous(), box_weight.contiguous()


__all__ = ["PADDING", "pseudo_subtomogram"]
