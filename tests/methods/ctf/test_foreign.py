"""CTF estimation on tilt series that are not the project's (tests/methods/ctf/foreign.py: teamtomo's
torch-ctf on a blob specimen, amorphous-ice texture, gold, Poisson noise), over representative cells of
the issue's matrix; the full matrix runs in benchmarks/ctf.py."""

from __future__ import annotations

import pytest
import torch

from tomoforge.methods.ctf.transfer import ctf_2d

torch_ctf = pytest.importorskip("torch_ctf", reason="torch-ctf (the `test` extra) is not installed")


@pytest.mark.parametrize("angle", [0.0, 30.0, 70.0, -45.0])
def test_torch_ctf_shares_our_astigmatism_convention(angle):
    """torch-ctf's CTF equals −1 × tomoforge's ctf_2d for U, V, angle of U from X: the generator's truth
    is in the project's conventions (a power spectrum does not see the sign)."""
    ours = ctf_2d((96, 96), 2.0, 31000.0, 29000.0, angle, voltage_kV=200.0, cs_mm=2.7, amplitude_contrast=0.1)
    theirs = torch_ctf.calculate_ctf_2d(3.0, 0.1, angle, 200.0, 2.7, 0.1, 0.0, 2.0, (96, 96), True, False)
    assert torch.allclose(theirs.reshape(ours.shape), -ours, atol=2e-3)
