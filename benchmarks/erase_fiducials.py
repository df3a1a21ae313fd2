"""Benchmark: erasing gold beads from 41 × 1024² images — detection and erasing times, contrast left.

    python benchmarks/erase_fiducials.py [--repeat 3] [--threads 2] [--json FILE]

Synthetic images as the `small` preset samples them (3 Å/px, 100 Å beads: 33 px wide): a plane (a thickness
gradient) plus white noise (SD 10 on 100), with 16 dark beads (depth 30) per image at known positions. Times
are the median of ``--repeat`` runs of ``find_beads`` (matched filter, every image) and ``erase_beads``
(erase_scale 1.5, as the protocol's default); the contrast at the beads is (disk mean − ring mean) / ring SD
before and after. Prints one JSON object (also written to ``--json``).
"""

from __future__ import annotations

import argparse
import json
import platform
import time

import numpy as np
import torch

from tomoforge.methods.preprocess.fiducials import erase_beads, find_beads

N, SIZE, BEADS, RADIUS = 41, 1024, 16, 100.0 / 3.0 / 2


def images_with_beads(seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:SIZE, :SIZE] - SIZE // 2
    images = np.empty((N, SIZE, SIZE), np.float32)
    beads = rng.uniform(-450, 450, (N, BEADS, 2))
    for i in range(N):
        image = 100 + 0.01 * xx - 0.02 * yy + rng.normal(0, 10, (SIZE, SIZE))
        for x, y in beads[i]:
            window = (
                slice(int(y) + SIZE // 2 - 20, int(y) + SIZE // 2 + 21),
                slice(int(x) + SIZE // 2 - 20, int(x) + SIZE // 2 + 21),
            )
            image[window] -= 30.0 * (np.hypot(xx[window] - x, yy[window] - y) <= RADIUS)
        images[i] = image
    return images, beads


def contrast(images: np.ndarray, beads: np.ndarray) -> float:
    """Median over beads of (disk mean − ring mean) / ring SD."""
    values = []
    for i in range(N):
        for x, y in beads[i]:
            cy, cx = int(round(y)) + SIZE // 2, int(round(x)) + SIZE // 2
            patch = images[i, cy - 60 : cy + 61, cx - 60 : cx + 61]
            yy, xx = np.mgrid[-60:61, -60:61]
            d = np.hypot(xx - (x + SIZE // 2 - cx), yy - (y + SIZE // 2 - cy))
            ring = patch[(d > 1.6 * RADIUS) & (d <= 1.8 * RADIUS)]
            values.append((patch[d <= 0.8 * RADIUS].mean() - ring.mean()) / ring.std())
    return float(np.median(values))


def timed(fn, repeat: int) -> tuple[float, object]:
    times, result = [], None
    for _ in range(repeat):
        start = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - start)
    return float(np.median(times)), result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--json", default="")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    images, beads = images_with_beads()
    tensor = torch.from_numpy(images)
    find_s, found = timed(lambda: find_beads(tensor, 2 * RADIUS), args.repeat)
    erase_s, erased = timed(lambda: erase_beads(tensor, beads, 1.5 * RADIUS), args.repeat)
    detected = np.isfinite(found[..., 0]).sum()  # type: ignore[index]
    result = {
        "images": f"{N} x {SIZE}^2, {BEADS} beads each ({N * BEADS}), bead diameter {2 * RADIUS:.1f} px",
        "threads": args.threads,
        "cpu": platform.processor() or platform.machine(),
        "find_beads_s": round(find_s, 2),
        "erase_beads_s": round(erase_s, 2),
        "beads_detected": int(detected),
        "contrast_before_sd": round(contrast(images, beads), 2),
        "contrast_after_sd": round(contrast(erased.images.numpy(), beads), 3),  # type: ignore[attr-defined]
    }
    text = json.dumps(result, indent=1)
    print(text)
    if args.json:
        with open(args.json, "w") as f:
            f.write(text + "\n")


if __name__ == "__main__":
    main()
