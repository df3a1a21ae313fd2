"""The CTF² weighting of CTF-premultiplied views (issue 19, "possible CTF² weighting issue"): a view cut by
``extract_particle_views`` with its CTF premultiplied, inserted by ``insert_views`` as premultiplied, brings the data
X = CTF_extraction · P and the weight W = CTF_insertion²; for a projection P of flat spectrum (a point) the two
CTFs agree when X² = W at every frequency of the kx axis. They do at every frequency the view samples (the box's,
without padding) up to Nyquist, and at the padded grid's half-way frequencies up to 0.8 Nyquist; only the last
half-way sample (the padded view's interpolation at the edge) departs."""

from __future__ import annotations

import numpy as np
import torch

from tomoforge.methods.ctf.settings import Optics
from tomoforge.methods.sta.extraction import extract_particle_views
from tomoforge.methods.sta.insertion import ViewFilters, insert_views, new_accumulator

BOX, PIXEL, DEFOCUS = 24, 10.8, 25000.0  # the small virions at bin 2: the CTF's fourth zero lies below Nyquist


def _kx_line(pad_views: bool) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(kx in padded-grid units, X, W) along kx ≥ 0 (ky = kz = 0) of a point's premultiplied view."""
    image = np.zeros((1, 64, 64), np.float32)
    image[0, 32, 32] = 1.0
    out = extract_particle_views(
        torch.as_tensor(image),
        np.zeros((1, 3)),
        view_matrices=np.eye(3)[None],
        shifts_A=np.zeros((1, 2)),
        pixel_size_A=PIXEL,
        box=BOX,
        defocus_A=np.array([[DEFOCUS, DEFOCUS, 0.0]]),
        dose_e_A2=np.zeros(1),
        optics=Optics(300.0, 2.7, 0.07),
        premultiply_ctf=True,
        dose_weight=False,
        normalise=False,
    )
    filters = ViewFilters(
        defocus_u_A=np.array([DEFOCUS]),
        defocus_v_A=np.array([DEFOCUS]),
        astigmatism_deg=np.zeros(1),
        dose_e_A2=np.zeros(1),
        pixel_size_A=PIXEL,
        ctf_premultiplied=True,
        dose_weighted=True,
    )
    acc = new_accumulator(BOX, padding=2.0)
    insert_views(acc, out.views[0], np.eye(3)[None], filters=filters, pad_views=pad_views)
    c = acc.padded // 2 + 1
    k = np.arange(1, acc.padded // 2)
    return k, acc.data[c, c, c + k].real.numpy(), acc.weight[c, c, c + k].numpy()


def test_premultiplied_views_carry_the_ctf_their_weight_squares():
    k, x, w = _kx_line(pad_views=False)
    sampled = k % 2 == 0  # the box's own frequencies (padded grid: twice as fine)
    # measured: |X² − W| ≤ 3.6e-7 (W from 0.0086 to 0.9992 on these samples)
    assert np.abs(x[sampled] ** 2 - w[sampled]).max() < 1e-4
    assert np.all(x[~sampled] == 0) and w[sampled].min() < 0.01 < 0.99 < w[sampled].max()
    k, x, w = _kx_line(pad_views=True)
    within = k / (2 * (BOX // 2)) <= 0.8  # fraction of Nyquist
    # measured: |X² − W| ≤ 0.0048 up to 0.8 Nyquist; 0.006 at the last half-way sample (W 0.0008, X² 0.0069)
    assert np.abs(x[within] ** 2 - w[within]).max() < 0.01
