"""3D pseudo-subtomograms (RELION 4/5): a particle's 2D views (already CTF-premultiplied and dose-weighted by
``extraction.extract_particle_views``) inserted into a 3D box in the tomogram frame, with the box's CTF² weight.

Each view i of rotation R_i (tomogram frame -> view frame, the tilt's projection rotation) is placed on the
central slice Rᵢᵀ (kx, ky, 0) by ``insertion.insert_views`` (padded views, trilinear gridding on a grid twice as
fine as the box): the data D(k) = Σ_i f_i X_i(k) and the weight W(k) = Σ_i f_i², f_i = CTF_i · q_i (the view's
CTF at the particle's height times its dose attenuation; f = q without a CTF, 1 without either). For views
X_i = f_i P_i of a particle whose projections are P_i, D = W · S with S the particle's spectrum: the data volume
(D's inverse transform, cropped to the box, divided by the trilinear kernel's sinc²) is what the averaging of
``averaging.average_subtomograms`` expects of a subtomogram of weight W, ``S_p(R k) ≈ W_p(R k) M(k)``.

``root_weight`` writes the same information so that ``averaging``'s estimator Σ W S / Σ W² becomes RELION's
Σ D / Σ f² (the estimator of ``insertion.reconstruct_map``): the weight √W' and the data D / √W', W' = W + a floor
(``ROOT_FLOOR`` × the mean of W, where few views measured a frequency). With W itself as the weight the average
is Σ W D / Σ W², which weights each view by f⁴ instead of f²: measured on the small virions (tests/protocols/sta/
test_pseudo3d.py), the half maps' FSC at 0.75 Nyquist falls from 0.69 to 0.57 (0.71 from the 2D views).

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
    volume = volume / (sinc2[:, None, None] * sinc2[None, :, None] * sinc2[None, None, :])
    step = m // b
    jz = torch.fft.fftfreq(b, 1.0 / b, device=weight.device).long() * step + c
    jx = torch.fft.rfftfreq(b, 1.0 / b, device=weight.device).long() * step + c
    box_weight = weight[jz][:, jz][:, :, jx]
    return volume.contiguous(), box_weight.contiguous()


__all__ = ["PADDING", "pseudo_subtomogram"]
