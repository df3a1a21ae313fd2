"""Blocks of tomogram rows (along y, the tilt axis): memory, parallel work, and where finished rows go.

A reconstruction works on blocks of rows: a block's lines, right-hand side and voxels are the only
large temporaries, so memory is the projector plus a block per worker (and the output, in memory or in
a file). ``out`` may be any writable (z, y, x) array, e.g. ``np.memmap`` / ``mrcfile`` data, so that a
tomogram larger than memory is written block by block. On the CPU the blocks are shared out to
``torch.get_num_threads()`` worker threads, each running torch single-threaded: the blocks are independent,
and small single-threaded operations keep every core busy where fine-grained threading waits on its
slowest thread (much worse on a shared machine).
"""

from __future__ import annotations

import ctypes
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager

import numpy as np
import torch

from tomoforge.methods.reconstruct.lines import LinePlan

Progress = Callable[[str], None]
Volume = torch.Tensor | np.ndarray  # a (z, y, x) tomogram: a tensor, or a (memory-mapped) array

#: rows per block on the CPU: the right-hand side of a block stays in cache-friendly sizes
CPU_BLOCK_ROWS = 16


def block_bytes(plan: LinePlan, rows: int, sirt: bool = False) -> int:
    """Bytes of the temporaries of one block of ``rows`` tomogram rows (lines, their spectrum,
    right-hand side, voxels; SIRT also keeps data, weights, projection and the column normalisation)."""
    nz, _, nx = plan.volume.shape_zyx
    line_rows = rows + plan.spread
    lines = plan.n_views * line_rows * plan.n_samples * 4
    columns = int((plan.n_offsets * plan.n_samples).sum()) * rows * 4
    voxels = nz * nx * rows * 4
    fft = 6 * lines  # padded spectrum and the upsampled copy
    extra = (3 * lines + voxels) if sirt else 0
    return lines + fft + columns + 2 * voxels + extra


def rows_per_block(
    plan: LinePlan, memory_bytes: float, device: torch.device, sirt: bool = False, rows: int | None = None
) -> int:
    """Rows per block: ``rows`` if given, else the most that fit ``memory_bytes`` (at most
    ``CPU_BLOCK_ROWS`` on the CPU, where larger blocks gain nothing), at least 1."""
    ny = plan.volume.shape_zyx[1]
    if rows:
        return max(1, min(int(rows), ny))
    cap = ny if device.type != "cpu" else min(ny, CPU_BLOCK_ROWS)
    per_row = max(1, block_bytes(plan, 1, sirt) - block_bytes(plan, 0, sirt))
    fit = int((memory_bytes - block_bytes(plan, 0, sirt)) // per_row)
    return max(1, min(cap, fit))


def row_blocks(n_rows: int, rows: int) -> list[tuple[int, int]]:
    """[(y0, y1), …] covering 0 … n_rows in blocks of ``rows``."""
    return [(y0, min(y0 + rows, n_rows)) for y0 in range(0, n_rows, rows)]


@contextmanager
def single_threaded_torch() -> Iterator[int]:
    """torch intra-op threads set to 1 inside (restored after); yields the number there was."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield n
    finally:
        torch.set_num_threads(n)


def _malloc_trim() -> Callable[[], None]:
    """glibc's malloc_trim(0), or a no-op: gives freed heap memory back to the system, so that the
    temporaries of finished blocks do not stay resident (glibc keeps them in per-thread arenas)."""
    try:
        libc = ctypes.CDLL("libc.so.6")
        trim = libc.malloc_trim
    except (OSError, AttributeError):
        return lambda: None
    return lambda: trim(0) and None


release_freed_memory = _malloc_trim()


def run_blocks(
    blocks: list[tuple[int, int]], work: Callable[[int, int], None], device: torch.device, workers: int | None = None
) -> None:
    """``work(y0, y1)`` for every block: on the CPU in ``workers`` threads (default: torch's thread count),
    each single-threaded; elsewhere one after the other. The first error is raised."""
    n = workers or torch.get_num_threads()

    def one(block: tuple[int, int]) -> None:
        work(*block)
        if device.type == "cpu":
            release_freed_memory()

    if device.type != "cpu" or n <= 1 or len(blocks) <= 1:
        for block in blocks:
            one(block)
        return
    with single_threaded_torch(), ThreadPoolExecutor(min(n, len(blocks))) as pool:
        for _ in pool.map(one, blocks):
            pass


class VolumeSink:
    """Where finished rows go: a new tensor on ``device``, or ``out`` (a (z, y, x) array, e.g. a memmap)."""

    def __init__(
        self, shape_zyx: tuple[int, int, int], out: Volume | None = None, device: torch.device | None = None
    ) -> None:
        if out is not None and tuple(out.shape) != tuple(shape_zyx):
            raise ValueError(f"output array has shape {tuple(out.shape)}, the tomogram is {tuple(shape_zyx)}")
        self.out = out
        self.volume = torch.zeros(shape_zyx, dtype=torch.float32, device=device) if out is None else None

    def write(self, y0: int, rows: torch.Tensor) -> None:
        """Store (z, rows, x) values as tomogram rows y0 …"""
        y1 = y0 + rows.shape[1]
        if self.volume is not None:
            self.volume[:, y0:y1, :] = rows
        elif isinstance(self.out, torch.Tensor):
            self.out[:, y0:y1, :] = rows.to(self.out.device)
        elif self.out is not None:
            self.out[:, y0:y1, :] = rows.detach().cpu().numpy().astype(np.float32, copy=False)

    def result(self) -> Volume:
        """The tomogram: the new tensor, or ``out``."""
        result = self.volume if self.volume is not None else self.out
        assert result is not None  # one of the two is set in __init__
        return result


def report(progress: Progress | None, message: str) -> None:
    if progress is not None:
        progress(message)


class RowCounter:
    """Counts finished rows from any thread; ``add`` says when a tenth more of them is done, and tells
    ``progress`` then: "<percent>% of <total> rows <what> (<seconds since start> s)"."""

    def __init__(
        self, total: int, progress: Progress | None = None, what: str = "done", start: float | None = None
    ) -> None:
        self.total, self.done = total, 0
        self.progress, self.what = progress, what
        self.start = time.perf_counter() if start is None else start
        self._lock = threading.Lock()

    def add(self, rows: int) -> int | None:
        """Count ``rows`` more; the percentage done when that crosses a multiple of 10 % (told to
        ``progress``), else None."""
        with self._lock:
            before, self.done = self.done, self.done + rows
            if (self.done * 10) // self.total <= (before * 10) // self.total:
                return None
            percent = 100 * self.done // self.total
        seconds = time.perf_counter() - self.start
        report(self.progress, f"{percent}% of {self.total} rows {self.what} ({seconds:.1f} s)")
        return percent


__all__ = [
    "Progress",
    "block_bytes",
    "rows_per_block",
    "row_blocks",
    "run_blocks",
    "single_threaded_torch",
    "Volume",
    "VolumeSink",
    "report",
    "RowCounter",
    "CPU_BLOCK_ROWS",
]
