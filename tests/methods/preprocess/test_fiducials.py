"""Bead erasing on a synthetic image with a known background (a plane plus white noise): the painted disks
have the plane's level and the noise's SD; beads are found by the matched filter; other pixels untouched."""

from __future__ import annotations

import numpy as np
import torch

from tomoforge.methods.preprocess.fiducials import erase_beads, find_beads


def synthetic(n: int = 2, size: int = 96, noise: float = 1.0):
    """Images of a plane 100 + 0.2 x − 0.1 y plus white noise, with dark disks (radius 5 px, depth 8) at
    known (x, y) pixels from the centre; one disk half outside the image."""
    rng = np.random.default_rng(5)
    yy, xx = np.mgrid[:size, :size] - size // 2
    plane = 100 + 0.2 * xx - 0.1 * yy
    beads = np.array([[[-20.3, 11.6], [25.5, -30.2], [6.0, 8.0], [-47.0, -10.0]]] * n)
    images = np.empty((n, size, size))
    for i in range(n):
        images[i] = plane + rng.normal(0, noise, (size, size))
        for x, y in beads[i]:
            images[i] -= 8.0 * (np.hypot(xx - x, yy - y) <= 5.0)
    return images.astype(np.float32), beads, plane


def test_painted_disks_have_the_background_level_and_noise(device):
    images, beads, plane = synthetic()
    out = erase_beads(torch.as_tensor(images, device=device), beads, 7.0)
    assert out.images.device.type == device.type and out.counts == [4, 4]
    erased = out.images.cpu().numpy()
    yy, xx = np.mgrid[:96, :96] - 48
    disks = np.zeros(images.shape, bool)
    for i in range(2):
        for x, y in beads[i]:
            disks[i] |= np.hypot(xx - x, yy - y) <= 7.0
    residual = (erased - plane)[disks]
    assert abs(residual.mean()) < 0.1  # the plane's level (the beads were 8 deep)
    assert 0.9 < residual.std() < 1.1  # the noise's SD, 1 (measured 1.03)
    assert (erased[~disks] == images[~disks]).all()


def test_found_beads_are_the_disks(device):
    images, beads, _ = synthetic()
    found = find_beads(torch.as_tensor(images, device=device), 10.0)
    assert found.shape[:2] == (2, 4)  # the one cut by the border too
    for i in range(2):
        errors = [np.hypot(*(found[i] - [x, y]).T).min() for x, y in beads[i]]
        assert max(errors[:3]) < 0.5 and errors[3] < 2.0, errors
    binned = find_beads(torch.as_tensor(images, device=device), 10.0, bin_to_px=5.0)  # detected at bin 2
    for i in range(2):
        errors = [np.hypot(*(binned[i] - [x, y]).T).min() for x, y in beads[i][:3]]
        assert max(errors) < 0.5, errors  # measured ≤ 0.16 px
    nothing = erase_beads(images, np.full((2, 0, 2), np.nan), 7.0)
    assert nothing.counts == [0, 0] and np.array_equal(nothing.images.numpy(), images)
