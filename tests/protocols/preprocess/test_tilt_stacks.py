"""transform_stacks: the stack and its halves transformed and written, the next one read while one is worked on."""

from __future__ import annotations

import threading

import numpy as np
import pytest

from tomoforge.io.mrc import read_mrc, read_voxel_size, write_mrc
from tomoforge.protocols import tilt_stacks


def halves(tmp_path, n=3, shape=(8, 10)):
    rng = np.random.default_rng(0)
    sources, data = {}, {}
    for kind in ("file", "odd_file", "even_file"):
        data[kind] = rng.normal(size=(n, *shape)).astype(np.float32)
        path = write_mrc(tmp_path / f"{kind}.mrc", data[kind], 2.0)
        sources[kind] = [(str(path), i) for i in reversed(range(n))]  # sorted otherwise than in the file
    return sources, data


def test_each_kind_is_transformed_and_written_with_its_pixel_size(tmp_path):
    sources, data = halves(tmp_path)

    def binned(images):
        return images[:, ::2, ::2] * 2, [{"mean": float(m)} for m in images.mean(axis=(1, 2))]

    result = tilt_stacks.transform_stacks(sources, str(tmp_path / "out"), 2.0, binned)
    assert set(result["stacks"]) == set(sources) and result["pixel_size_A"] == 4.0
    for kind, path in result["stacks"].items():
        assert np.array_equal(read_mrc(path), data[kind][::-1, ::2, ::2] * 2)
        assert read_voxel_size(path) == pytest.approx(4.0)
    assert [e["mean"] for e in result["per_image"]] == pytest.approx(data["file"][::-1].mean(axis=(1, 2)))


def test_the_next_stack_is_read_while_one_is_transformed(tmp_path):
    sources, _ = halves(tmp_path)
    read = tilt_stacks.read_images
    second_read = threading.Event()
    calls = []

    def reading(src):
        calls.append(src[0][0])
        if len(calls) == 2:
            second_read.set()
        return read(src)

    def waiting(images):  # the first transform finishes only once the second stack is being read
        if not second_read.is_set():
            assert second_read.wait(10), "the next stack was not read while this one was transformed"
        return images, None

    tilt_stacks.read_images = reading
    try:
        result = tilt_stacks.transform_stacks(sources, str(tmp_path / "out"), 2.0, waiting)
    finally:
        tilt_stacks.read_images = read
    assert len(calls) == 3 and len(result["stacks"]) == 3


def test_a_missing_half_fails_the_task_naming_it(tmp_path):
    sources, _ = halves(tmp_path)
    (tmp_path / "even_file.mrc").unlink()
    with pytest.raises(FileNotFoundError, match="even_file.mrc: image file not found"):
        tilt_stacks.transform_stacks(sources, str(tmp_path / "out"), 2.0, lambda images: (images, None))
