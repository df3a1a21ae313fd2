"""RELION 5 / WarpTools particle reading on the real WarpTools set: counts, visible tilts, proper rotations,
and the geometry checked against the RELION map shipped with them, a reference of other data (the z-mirrored
frame matches it at its noise bound, the unmirrored one does not)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from tomoforge.io.mrc import read_mrc
from tomoforge.io.relion5_particles import MIRROR_Z, read_relion5_particles
from tomoforge.methods.map_alignment import fourier_shell_correlation
from tomoforge.methods.sta.insertion import ViewFilters, reconstruct_views

STEM = "relion5/tomodrgn_warptools/warptools_test_4-tomos_10-ptcls_box-32_angpix-12"


@pytest.fixture(scope="module")
def warptools(test_data):
    star = test_data / f"{STEM}.star"
    if not star.is_file():
        pytest.skip(f"real WarpTools particles absent at {star}")
    return read_relion5_particles(star, test_data / f"{STEM}_tomograms.star"), test_data


def test_reads_the_particles_and_their_tilts(warptools):
    rp, _ = warptools
    assert len(rp.tomograms) == 40 and rp.stacks_2d and rp.ctf_premultiplied and rp.pixel_size_A == 12.0
    assert sorted(rp.tilts) == ["Unt_050.tomostar", "Unt_076.tomostar", "Unt_083.tomostar", "Unt_088.tomostar"]
    assert rp.visible is not None and int(rp.visible[0].sum()) == 34 and int(rp.visible[10].sum()) == 37
    assert np.allclose(np.linalg.det(rp.rotations), 1.0) and np.allclose(
        np.linalg.det(rp.tilts["Unt_083.tomostar"].projection), 1, atol=1e-5
    )
    # WarpTools coordinates: pixels of the 12 Å images from the corner of a 4400 x 6000 x 1400 (1.667 Å) tomogram
    assert rp.positions_A[0] == pytest.approx(
        [494.521 * 12 - 2200 * 1.667, 564.065 * 12 - 3000 * 1.667, -(28.146 * 12 - 700 * 1.667)]
    )


def _views(rp, mirror: bool, particles=None):
    views, rots, rows = [], [], []
    for i in range(len(rp.tomograms)) if particles is None else particles:
        tilts = rp.tilts[str(rp.tomograms[i])]
        seen = rp.visible[i]
        views.append(read_mrc(rp.images[i]).astype(np.float32)[seen])
        p, r = tilts.projection[seen], rp.rotations[i]
        if not mirror:  # back to RELION's own frame: P · A
            p, r = MIRROR_Z @ p @ MIRROR_Z, MIRROR_Z @ r @ MIRROR_Z
        rots.append(p @ r)
        rows.append(
            (tilts.defocus_u_A[seen], tilts.defocus_v_A[seen], tilts.astigmatism_deg[seen], tilts.dose_e_A2[seen])
        )
    u, v, a, d = (np.concatenate(c) for c in zip(*rows))
    filters = ViewFilters(
        defocus_u_A=u, defocus_v_A=v, astigmatism_deg=a, dose_e_A2=d, pixel_size_A=12.0, ctf_premultiplied=True
    )
    return reconstruct_views(np.concatenate(views), np.concatenate(rots), filters=filters).double()


def test_geometry_against_relions_reconstruction(warptools):
    """RELION's map is a noise-free reference for these 40 particles (a 70S map of a larger set: tomodrgn uses it
    as ground truth; its voxel is 1.667 × 7.2 = 12.0024 Å, not this export's 1.667 × 7.19856): our map of the 40
    cannot correlate with it better than its own noise allows, sqrt(2F / (1 + F)) from the FSC F of two halves
    (20 + 20 particles). The z-mirrored frame reaches that bound (measured 0.98, 0.91, 0.76, 0.71 … 0.39 in
    shells 1–10 against a bound of 0.97, 0.90, 0.83, 0.74 … 0.45), so the geometry is exact as far as the data
    can show; the issue's FSC ≥ 0.9 to 0.8 Nyquist would need a map of the same images (RELION 3.1 on these
    views matches ours at 0.96–0.999 and the shipped map at the bound too: benchmarks/warptools_relion.py)."""
    rp, data = warptools
    relion = torch.as_tensor(
        read_mrc(data / "relion5/tomodrgn_warptools/warptools_test_box-32_angpix-12_reconstruct.mrc"),
        dtype=torch.float64,
    )
    shells = slice(1, int(0.8 * 16) + 1)  # to 0.8 Nyquist at box 32
    half = fourier_shell_correlation(_views(rp, True, range(0, 40, 2)), _views(rp, True, range(1, 40, 2)), 12.0)[1]
    half = half[shells]
    bound = np.sqrt(np.clip(2 * half / (1 + half), 0, 1))
    fsc = {mirror: fourier_shell_correlation(relion, _views(rp, mirror), 12.0)[1][shells] for mirror in (True, False)}
    ratio = {mirror: fsc[mirror] / bound for mirror in fsc}
    assert fsc[True][0] > 0.95 and fsc[True][1] > 0.88, np.round(fsc[True], 2)
    # at the noise bound on average (ratio 0.97), no shell far below it (lowest 0.83)
    assert ratio[True].mean() > 0.9 and ratio[True].min() > 0.7, (np.round(fsc[True], 2), np.round(bound, 2))
    # the unmirrored frame (a mirrored hand) falls far short of it beyond the lowest shells (ratio 0.11)
    assert ratio[False][2:].mean() < 0.4, (np.round(fsc[False], 2), np.round(bound, 2))
