"""The per-view CTF and dose of insertion (``view_filters``, float32, cos 2(θ − a) by the angle-sum identity)
against ``ctf_2d`` and ``exposure_attenuation`` (float64, atan2) on the views' own frequencies."""

from __future__ import annotations

import numpy as np
import torch

from tomoforge.methods.ctf.transfer import ctf_2d
from tomoforge.methods.preprocess.dose import exposure_attenuation
from tomoforge.methods.sta.view_filters import ViewFilters, view_filters

BOX, PIXEL = 48, 2.0


def _frequencies() -> torch.Tensor:
    """(kx, ky) of every rfft frequency of a BOX² view (units of 1/(BOX px)), rows then columns: (BOX · (BOX/2+1), 2)."""
    ky = torch.fft.fftfreq(BOX, 1.0 / BOX)
    kx = torch.fft.rfftfreq(BOX, 1.0 / BOX)
    return torch.stack(torch.meshgrid(kx, ky, indexing="xy"), dim=-1).reshape(-1, 2)


def test_view_filters_equal_the_shared_ctf_and_dose_formulas():
    u = np.array([8000.0, 25000.0, 41000.0])
    filters = ViewFilters(
        defocus_u_A=u,
        defocus_v_A=u - np.array([0.0, 700.0, 2500.0]),
        astigmatism_deg=np.array([0.0, 37.0, 151.0]),
        dose_e_A2=np.array([3.0, 40.0, 120.0]),
        pixel_size_A=PIXEL,
    )
    mult, weight = view_filters(filters, _frequencies(), BOX, torch.device("cpu"))
    assert mult is not None and weight is not None and mult.dtype == torch.float32
    k = torch.linalg.norm(_frequencies().double(), dim=1) / (BOX * PIXEL)
    for i in range(3):
        ctf = ctf_2d((BOX, BOX), PIXEL, u[i], filters.defocus_v_A[i], filters.astigmatism_deg[i]).double().reshape(-1)
        q = exposure_attenuation(k, float(filters.dose_e_A2[i]))
        # float32 phases of up to ~300 rad (41000 Å at 1/4 Å⁻¹): 4.6e-5 at most (the angle mirrored: 2.0)
        assert torch.allclose(mult[i].double(), ctf * q, atol=2e-4)
        assert torch.allclose(weight[i].double(), (ctf * q) ** 2, atol=2e-4)
    # premultiplied and dose-weighted views: the data gets nothing more, the weight stays (CTF q)²
    done = ViewFilters(**{**filters.__dict__, "ctf_premultiplied": True, "dose_weighted": True})
    mult2, weight2 = view_filters(done, _frequencies(), BOX, torch.device("cpu"))
    assert mult2 is not None and torch.equal(mult2, torch.ones_like(mult2))
    assert weight2 is not None and torch.equal(weight2, weight)
