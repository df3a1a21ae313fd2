"""Task helpers shared by the preprocessing protocols: read a tilt series' images, write its stacks.

A task receives plain data: for each tilt image the absolute (file, index) of its image and of its
odd/even halves; it writes one MRC stack per kind (sorted as the tilt images are, i.e. by tilt angle)
and returns the paths. ``restack`` turns a task result back into the output TiltSeries.
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

from tomoforge.io.mrc import open_mrc_mmap, write_mrc
from tomoforge.model import TiltSeries

KINDS = ("file", "odd_file", "even_file")
STACK_FIELDS = {"file": "stack_file", "odd_file": "odd_stack_file", "even_file": "even_stack_file"}
SUFFIX = {"file": "", "odd_file": "_ODD", "even_file": "_EVN"}


def image_sources(ts: TiltSeries, absolute: Callable[[str], Path]) -> dict[str, list[tuple[str, int]]]:
    """{kind: [(absolute file, index) per tilt image]} for the kinds every tilt image has."""
    sources: dict[str, list[tuple[str, int]]] = {}
    for kind in KINDS:
        files = [getattr(t, kind) for t in ts.tilt_images]
        if files and all(files):
            sources[kind] = [(str(absolute(f)), t.index) for f, t in zip(files, ts.tilt_images)]
    if "file" not in sources:
        raise ValueError(f"tilt series {ts.name}: some tilt images have no image file")
    return sources


def read_images(sources: list[tuple[str, int]]) -> np.ndarray:
    """The images (n, y, x) float32 named by (file, index) pairs; each file memory-mapped once."""
    by_file: dict[str, list[tuple[int, int]]] = {}
    for position, (path, index) in enumerate(sources):
        by_file.setdefault(path, []).append((position, index))
    out: np.ndarray | None = None
    for path, wanted in by_file.items():
        if not Path(path).is_file():
            raise FileNotFoundError(f"{path}: image file not found")
        with open_mrc_mmap(path) as data:
            stack = data[np.newaxis] if data.ndim == 2 else data
            for position, index in wanted:
                if not 0 <= index < stack.shape[0]:
                    raise IndexError(f"{path}: section {index} out of range (the stack has {stack.shape[0]})")
                if out is None:
                    out = np.empty((len(sources),) + stack.shape[1:], np.float32)
                if stack.shape[1:] != out.shape[1:]:
                    raise ValueError(f"{path}: images of {stack.shape[1:]} do not match {out.shape[1:]}")
                out[position] = stack[index]
    assert out is not None
    return out


def pixel_size_of(path: str, fallback: float) -> float:
    from tomoforge.io.mrc import read_voxel_size

    try:
        return read_voxel_size(path)
    except ValueError:
        return fallback


def write_stack(out_base: str, kind: str, images: np.ndarray, pixel_size_A: float) -> str:
    """Write ``{out_base}{suffix}.mrc`` (suffix _ODD/_EVN for the halves); return its path."""
    path = f"{out_base}{SUFFIX[kind]}.mrc"
    write_mrc(path, np.asarray(images, np.float32), pixel_size_A, overwrite=True)
    return path


def transform_stacks(
    sources: dict[str, list[tuple[str, int]]],
    out_base: str,
    pixel_size_A: float,
    fn: Callable[[np.ndarray], tuple[np.ndarray, list[dict[str, Any]] | None]],
) -> dict[str, Any]:
    """Apply ``fn(images (n, y, x) float32) -> (images (n, y', x'), per-image field updates or None)`` to the
    stack and each of its halves, and write them.

    The I/O overlaps the work: the next stack is read, and the stacks done are written, in background
    threads while ``fn`` runs (at most two input stacks in memory). The output pixel size is
    ``pixel_size_A`` (Å) × x / x' (the same when ``fn`` keeps the size; binned when it resamples).
    Returns {"stacks": {kind: path}, "per_image": the updates of the full stack ("file"),
    "pixel_size_A": the output pixel size}, as ``restack`` takes it.
    """
    kinds = list(sources)
    per_image = None
    out_pixel = pixel_size_A
    writes: dict[str, Future[str]] = {}
    with ThreadPoolExecutor(max_workers=2) as pool:
        reading = pool.submit(read_images, sources[kinds[0]]) if kinds else None
        for i, kind in enumerate(kinds):
            assert reading is not None  # submitted for kind i before
            images = reading.result()
            if i + 1 < len(kinds):
                reading = pool.submit(read_images, sources[kinds[i + 1]])
            out, extra = fn(images)
            out_pixel = pixel_size_A * images.shape[-1] / out.shape[-1]
            del images
            writes[kind] = pool.submit(write_stack, out_base, kind, out, out_pixel)
            if kind == "file":
                per_image = extra
        stacks = {kind: write.result() for kind, write in writes.items()}
    return {"stacks": stacks, "per_image": per_image, "pixel_size_A": out_pixel}


def restack(
    ts: TiltSeries,
    result: dict[str, Any],
    relative: Callable[[str], str],
    keep: list[bool] | None = None,
    **updates: Any,
) -> TiltSeries:
    """The output TiltSeries: tilt images pointing at the new stacks (``result['stacks']``: kind → path).

    ``keep`` drops tilt images (re-stacking without excluded views); ``result['per_image']``, if given,
    is a list of dicts of tilt-image field updates (one per kept image).
    """
    stacks: dict[str, str] = result["stacks"]
    kept = [t for t, k in zip(ts.tilt_images, keep or [True] * ts.n_images) if k]
    per_image = result.get("per_image") or [{} for _ in kept]
    images = []
    for i, (t, extra) in enumerate(zip(kept, per_image)):
        fields = {kind: relative(path) for kind, path in stacks.items()}
        fields.update({k: "" for k in KINDS if k not in stacks})
        images.append(t.model_copy(update={**fields, "index": i, **extra}))
    series = {STACK_FIELDS[kind]: relative(path) for kind, path in stacks.items()}
    series.update({STACK_FIELDS[k]: "" for k in KINDS if k not in stacks})
    return TiltSeries.model_validate(
        {**ts.model_dump(), **series, **updates, "tilt_images": [i.model_dump() for i in images]}
    )
