"""X-ray eraser on Poisson images with injected hits (simulator-like 2x2 hits and hot pixels)."""

import time

import numpy as np
import pytest
import torch
from scipy import ndimage

from tomoforge.methods.preprocess.xray import XrayResult, XraySettings, erase_xrays, find_outliers


def injected(rng, n=3, size=256, mean=20.0, hits=40):
    y, x = np.mgrid[0:size, 0:size]
    expected = mean * (1 + 0.3 * np.sin(x / 17.0) * np.cos(y / 23.0))
    images = rng.poisson(np.broadcast_to(expected, (n, size, size))).astype(np.float32)
    truth = np.zeros(images.shape, bool)
    for k in range(n):
        for cy, cx in rng.integers(4, size - 5, (10, 2)):  # dark gold beads must stay
            images[k][(y - cy) ** 2 + (x - cx) ** 2 < 16] *= 0.3
        for j, (cy, cx) in enumerate(rng.integers(4, size - 5, (hits, 2))):
            counts = rng.uniform(60, 120)
            pixels = [(cy, cx), (cy, cx + 1), (cy + 1, cx), (cy + 1, cx + 1)][: 1 + j % 4]
            for py, px in pixels:
                images[k, py, px] += counts
                truth[k, py, px] = True
    return images, truth


def test_finds_every_hit_and_changes_almost_nothing_else(device):
    images, truth = injected(np.random.default_rng(3))
    result = erase_xrays(torch.from_numpy(images).to(device))
    assert result.images.device.type == device.type
    result = XrayResult(result.images.cpu(), result.mask.cpu(), result.pixels_replaced, result.hits)
    mask = result.mask.numpy()
    found = (mask & truth).sum() / truth.sum()
    false = (mask & ~truth).sum() / (~truth).sum()
    assert found >= 0.999, found  # measured 1.0
    assert false < 2e-4, false  # measured ~5e-5 (issue floor: < 1e-3)
    changed = (result.images.numpy() != images) & ~truth
    assert changed.sum() / (~truth).sum() < 2e-4
    # an erased hit is back at the local level: within 5 SD of the Poisson mean
    assert np.abs(result.images.numpy()[truth] - 20).max() < 5 * np.sqrt(26) + 6
    assert all(40 <= h <= 52 for h in result.hits), result.hits  # 40 injected; measured 46-50 at 4.2 SD


def test_dark_pixels_only_with_polarity_both(device):
    rng = np.random.default_rng(0)
    image = torch.from_numpy(rng.poisson(30.0, (1, 64, 64)).astype(np.float32)).to(device)
    image[0, 10, 20] = 0.0 - 20
    assert not erase_xrays(image).mask[0, 10, 20]
    assert erase_xrays(image, settings=XraySettings(polarity="both")).mask[0, 10, 20]


def test_xray_eraser_on_the_small_preset_finds_the_hits_and_leaves_the_rest(small_sim):
    """The issue's floors on `small`: ≥ 99 % of the injected hits found, < 0.1 % of the other pixels changed
    (gain-corrected frame sums of 8 tilts; hits and hot pixels are fixed on the detector, so no alignment)."""
    from tomoforge.io.movies import read_gain, read_movie

    ts = small_sim.tilt_series[0]
    truth, gain = ts.truth, read_gain(small_sim.gain)
    tilts = list(range(0, 41, 5))
    sums = np.stack([(read_movie(ts.movies[i]) * gain).sum(0) for i in tilts]).astype(np.float32)
    result = erase_xrays(torch.from_numpy(sums))
    changed = result.images.numpy() != sums
    near = np.zeros(sums.shape, bool)
    found = total = 0
    hits = [(h["tilt_index"], h["y_px"], h["x_px"]) for h in truth["xrays"] if h["tilt_index"] in tilts]
    hits += [(i, y, x) for i in tilts for y, x in truth["hot_pixels_yx"]]
    for index, hy, hx in hits:
        window = (tilts.index(index), slice(max(hy - 2, 0), hy + 4), slice(max(hx - 2, 0), hx + 4))
        near[window] = True
        found += bool(changed[window].any())
        total += 1
    assert total > 50
    print(
        f"small: {found}/{total} hits found, {(changed & ~near).sum() / (~near).sum():.1e} of the other pixels changed"
    )
    assert found / total >= 0.99, (found, total)
    assert (changed & ~near).sum() / (~near).sum() < 1e-3


def test_large_dark_beads_are_kept_and_hits_beside_them_found():
    """Gold beads are dark discs of tens of pixels (13 % of the background on `small`): none of their pixels
    may change, and the ring around them little more than elsewhere (a box mean there is pulled down by the bead),
    while hits one pixel outside their edge are still found."""
    rng = np.random.default_rng(11)
    size, n = 256, 8
    y, x = np.mgrid[0:size, 0:size]
    images = rng.poisson(20.0, (n, size, size)).astype(np.float32)
    beads = np.zeros(images.shape, bool)
    ring = np.zeros(images.shape, bool)
    truth = np.zeros(images.shape, bool)
    for k in range(n):
        for cy, cx in ((60, 60), (60, 190), (190, 60), (190, 190)):
            d2 = (y - cy) ** 2 + (x - cx) ** 2
            images[k][d2 < 16**2] = rng.poisson(2.6, int((d2 < 16**2).sum()))
            beads[k] |= d2 < 16**2
            ring[k] |= (d2 >= 16**2) & (d2 < 22**2)
            for dy, dx in ((0, 17), (17, 0), (-18, 0)):  # just outside the edge
                images[k, cy + dy, cx + dx] += 70
                truth[k, cy + dy, cx + dx] = True
    result = erase_xrays(images)
    changed = result.images.numpy() != images
    assert not (changed & beads).any(), int((changed & beads).sum())
    assert result.mask.numpy()[truth].all()
    away = ~ndimage.binary_dilation(truth, np.ones((1, 5, 5), bool))  # a hit's grown neighbours aside
    elsewhere = (changed & away & ~ring).sum() / (away & ~ring).sum()
    around = (changed & away & ring).sum() / (away & ring).sum()
    assert elsewhere < 1e-4, elsewhere  # measured 6.6e-5 (iterative: 9.4e-5)
    assert around < 1e-3, around  # measured 5.7e-4 (the iterative eraser of box means: 1.6e-3)


def test_the_bright_fringe_around_dark_beads_is_kept():
    """Gold beads as the simulator images them at 6 Å/px (tiny/demo): a dark disc (13 % of the background),
    a soft edge and a bright Fresnel fringe (+10 %, about 1 SD) just outside it. A box mean there is pulled
    down by the bead by 3-4 SD (winsorising around that mean does not undo it), so fringe pixels used to
    score above 4.2 SD and were replaced by bead-darkened means: 6-11 of them here (0 or 1 elsewhere per
    10⁴), which shifted bead centroids and broke the demo's fiducial alignment (1.55 px instead of 0.09)."""
    rng = np.random.default_rng(0)
    n, size = 8, 256
    y, x = np.mgrid[0:size, 0:size]
    radius = np.arange(13.0)  # the tiny preset's radial bead profile (noise-free), relative to the background
    level = [0.13, 0.13, 0.13, 0.15, 0.18, 0.16, 0.26, 0.52, 0.97, 1.1, 1.05, 1.0, 1.0]
    expected = np.full((n, size, size), 85.0)
    fringe = np.zeros(expected.shape, bool)
    for k in range(n):
        for cy, cx in rng.uniform(20, size - 20, (12, 2)):
            d = np.hypot(y - cy, x - cx)
            near = d < 12
            expected[k][near] *= np.interp(d[near], radius, level)
            fringe[k] |= (d >= 7.5) & (d < 11)
    images = rng.poisson(expected).astype(np.float32)
    mask = erase_xrays(images).mask.numpy()
    assert (mask & fringe).sum() <= 1, int((mask & fringe).sum())  # measured 0 (before: 11)
    assert (mask & ~fringe).sum() / (~fringe).sum() < 5e-5  # Poisson tails: measured 4e-6


def test_erasing_41_images_of_1024_takes_a_fraction_of_a_second_of_cpu_per_image():
    """Issue 15: ≤ 5 s for 41 × 1024² on 2 cores (the iterative box-filter eraser took ~1 s of CPU per image).
    CPU time of the process (all threads), so that other work on the machine does not count."""
    images = np.random.default_rng(0).poisson(20.0, (8, 1024, 1024)).astype(np.float32)
    erase_xrays(images[:1])  # imports, first allocations
    start = time.process_time()
    erase_xrays(images)
    per_image = (time.process_time() - start) / len(images)
    assert per_image < 0.25, per_image  # measured 0.03-0.05 s


def test_edges_odd_sizes_and_a_single_image():
    rng = np.random.default_rng(5)
    image = rng.poisson(50.0, (75, 101)).astype(np.float32)
    spots = [(0, 0), (0, 100), (74, 0), (74, 100), (37, 0), (0, 50), (74, 55), (40, 60)]
    for yy, xx in spots:
        image[yy, xx] += 200
    result = erase_xrays(image)
    assert result.images.shape == (1, 75, 101) and result.mask.shape == (1, 75, 101)
    assert all(result.mask[0, yy, xx] for yy, xx in spots)
    natural = result.mask[0].numpy().copy()
    natural[tuple(np.array(spots).T)] = False  # seed 5 has one 4.24 SD Poisson pixel, at (3, 30)
    assert natural.sum() <= 1 and result.hits == [8 + int(natural.sum())]
    assert result.pixels_replaced == [int(result.mask.sum())]
    assert np.abs(result.images[0].numpy()[tuple(np.array(spots).T)] - 50).max() < 25
    mask, background = find_outliers(image)
    assert mask.shape == (75, 101) and torch.equal(mask, result.mask[0])
    assert abs(float(background.mean()) - 50) < 1


def test_hits_are_the_4_connected_blobs_of_the_mask():
    images, _ = injected(np.random.default_rng(8), n=3, size=128, hits=30)
    images[1, 50:53, 70] += 300  # a streak: one blob
    images[2, 10, 10] += 300  # diagonal neighbours: two blobs under 4-connectivity
    images[2, 11, 11] += 300
    result = erase_xrays(images)
    assert result.hits == [int(ndimage.label(m)[1]) for m in result.mask.numpy()]
    assert result.pixels_replaced == [int(m.sum()) for m in result.mask]


def test_flat_images_and_flat_regions_give_no_outliers(device):
    flat = torch.full((2, 64, 64), 7.0, device=device)
    assert not erase_xrays(flat).mask.any()
    rng = np.random.default_rng(2)
    image = rng.poisson(30.0, (1, 128, 128)).astype(np.float32)
    image[:, :, 64:] = 30.0  # half the image padded with a constant (as after an alignment)
    image[0, 20, 20] += 100
    mask = erase_xrays(image).mask[0].numpy()
    assert mask[20, 20] and mask.sum() <= 8


def test_same_result_on_one_or_two_threads_and_the_thread_count_restored():
    images, _ = injected(np.random.default_rng(9), n=4, size=128)
    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        one = erase_xrays(images)
        torch.set_num_threads(2)
        two = erase_xrays(images)
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(threads)
    assert torch.equal(one.mask, two.mask) and torch.equal(one.images, two.images) and one.hits == two.hits


def test_run_sums_are_window_sums():
    from tomoforge.methods.preprocess.xray import _run_sums

    x = torch.arange(40, dtype=torch.float32).reshape(2, 20) ** 1.5
    for width in range(1, 21):
        expected = torch.stack([x[:, i : i + width].sum(dim=1) for i in range(20 - width + 1)], dim=1)
        assert torch.allclose(_run_sums(x, width, -1), expected, rtol=1e-6), width
        assert torch.allclose(_run_sums(x.T.contiguous(), width, 0), expected.T, rtol=1e-6), width


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
def test_cuda_gives_the_cpu_mask():
    images, truth = injected(np.random.default_rng(3))
    cpu = erase_xrays(images)
    gpu = erase_xrays(torch.from_numpy(images).cuda())
    assert gpu.images.is_cuda
    assert (gpu.mask.cpu() != cpu.mask).float().mean() < 1e-5
    assert gpu.mask.cpu().numpy()[truth].all()
