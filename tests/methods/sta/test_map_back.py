"""Map-back: the average lands at each particle's voxel, turned by its rotation; it round-trips extraction."""

from __future__ import annotations

import numpy as np
import torch

from tests.methods.sta.shapes import N, blobs, corr
from tomoforge.methods.rotations import random_rotations
from tomoforge.methods.sta.averaging import average_subtomograms
from tomoforge.methods.sta.extraction import extract_subtomograms
from tomoforge.methods.sta.map_back import map_back


def test_placed_copies_are_where_and_how_the_particles_are_and_extract_back():
    rng = np.random.default_rng(4)
    rot = random_rotations(3, rng)
    positions = np.array([[-60.3, 10.2, 5.7], [0.4, -20.6, -8.2], [62.8, 18.5, 3.1]])  # Å, voxel 2 Å
    reference = blobs(np.eye(3))
    shape = (40, 64, 128)
    tomo = map_back(reference, positions, rot, shape_zyx=shape, pixel_size_A=2.0, average_pixel_size_A=2.0)
    # each copy, cut out at its particle and turned back, is the map: the geometry of both steps agrees
    boxes = extract_subtomograms(tomo, positions, pixel_size_A=2.0, box=N, normalise=False).boxes
    for box, r in zip(boxes, rot):
        assert corr(box, blobs(r)) > 0.995
    avg = average_subtomograms(boxes, rot, np.array([1, 2, 1]))
    assert corr(avg.full, reference) > 0.995
    # its brightest voxel is at the first blob of the nearest particle, R c + X
    centre = np.array(shape) // 2
    c = rot[1] @ np.array([4.0, 0.0, 0.0]) * 2.0 + positions[1]
    peak = np.unravel_index(int(torch.argmax(tomo[:, :, 40:88])), (40, 64, 48))
    assert np.abs(np.array(peak) + [0, 0, 40] - (c[::-1] / 2.0 + centre)).max() <= 1.0


def test_a_map_at_twice_the_voxel_is_resampled_to_the_tomogram():
    reference = blobs(np.eye(3))
    fine = map_back(
        reference, [[0.0, 0.0, 0.0]], [np.eye(3)], shape_zyx=(48, 48, 48), pixel_size_A=1.0, average_pixel_size_A=2.0
    )
    assert fine.shape == (48, 48, 48)
    # the same map sampled every second voxel about the centre is the reference at 2 Å
    grid = fine[24 - N : 24 + N : 2, 24 - N : 24 + N : 2, 24 - N : 24 + N : 2]
    assert corr(grid, reference) > 0.99
