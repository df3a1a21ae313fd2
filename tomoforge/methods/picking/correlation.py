"""FFT correlation of a small box with a (padded) tomogram tile, for template matching: the pruned forward
transform of the box, the product with the tile's spectrum and its inverse transform, and the running best
score and best rotation per voxel.

On the CPU the transforms are scipy.fft's (pocketfft, float32 in and out, ``torch.get_num_threads()`` workers):
at the `cell` preset's tile (160 × 512 × 512) its inverse real transform takes half the CPU time of torch's and
its single-axis passes a third (benchmarks/template_matching.py ``--components``). Elsewhere (CUDA) torch's.
The arrays stay torch tensors (numpy views of the same memory on the CPU).

On the CPU, a rotation's best score is kept in two passes over the tile (``TileCorrelator.update_best``) rather
than one per transform axis: per slab of z planes, the box's transform along y, the product with the tile's
spectrum and the inverse along y; then per slab of y rows, the inverse along z, the real inverse along x and
the best-score update, while the slab is in the cache. Columns where the tile's spectrum is zero (beyond a
spherical band limit: the corners past the Nyquist sphere, a low-pass) are not transformed along y: the
result is the same, the work less.

Arrays: a tile (z, y, x) float32; its spectrum (z, y, x // 2 + 1) complex64; a box (n, n, n) float32.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np
import torch


def wrap_index(n: int, size: int, device: torch.device) -> torch.Tensor:
    """Where voxel i of a box goes on a periodic axis of ``size`` when the box is reflected through its centre
    n // 2 onto the origin: (n // 2 − i) mod size (a correlation becomes a product without a conjugate)."""
    return (n // 2 - torch.arange(n, device=device)) % size


def use_scipy(device: torch.device, fft_library: str | None) -> bool:
    """Whether the transforms go through scipy.fft: ``fft_library`` "scipy" or "torch", or None (scipy on the
    CPU, torch elsewhere)."""
    if fft_library not in (None, "scipy", "torch"):
        raise ValueError(f"fft_library must be 'scipy', 'torch' or None, got {fft_library!r}")
    if fft_library == "scipy" and device.type != "cpu":
        raise ValueError(f"fft_library 'scipy' needs the CPU, the search is on {device}")
    return fft_library == "scipy" or (fft_library is None and device.type == "cpu")


def _pocketfft() -> Any:
    """scipy's pocketfft module, whose transforms write into a given array (scipy.fft's public functions
    allocate their output: at the `cell` size the page faults of a fresh 336 MB array cost as much CPU as the
    transform's arithmetic); None where this scipy has no such module (then the public functions are used)."""
    try:
        from scipy.fft._pocketfft import pypocketfft
    except ImportError:  # pragma: no cover - depends on the scipy version
        return None
    return pypocketfft if hasattr(pypocketfft, "c2c") and hasattr(pypocketfft, "c2r") else None


class TileCorrelator:
    """The tile's spectrum (and that of its square), and correlations Σ_y box(y) T(x + y) with it.

    A box is put on the tile grid reflected (box(−y) at y) so that the correlation is the inverse FFT of the
    product of the two spectra. The box's spectrum is computed axis by axis, padding each axis only before
    transforming it (x, then z, then y): the zeros of the padded box are never transformed, and only the last
    pass (along y, one complex transform per (z, kx) column) runs over the whole grid: about a third of a full
    forward transform's CPU time at the `cell` size. On the CPU the tile-sized transforms write into buffers
    kept from one rotation to the next (no allocation per rotation) and the inverse transform's 1 / N is folded
    into the tile's spectra once.
    """

    def __init__(self, tile: torch.Tensor, radial: torch.Tensor | None, n: int, *, scipy_fft: bool):
        self.shape = tuple(int(s) for s in tile.shape)
        self.device = tile.device
        self.n = n
        self.scipy = scipy_fft
        self.workers = max(1, torch.get_num_threads())
        self.pocket = _pocketfft() if scipy_fft else None
        if self.scipy:
            import scipy.fft

            spec = torch.from_numpy(scipy.fft.rfftn(tile.numpy(), workers=self.workers))
            if radial is not None:
                spec = spec.mul_(radial)
                tile = torch.from_numpy(scipy.fft.irfftn(spec.numpy(), s=self.shape, workers=self.workers))
            squared = torch.from_numpy(scipy.fft.rfftn((tile * tile).numpy(), workers=self.workers))
            scale = 1.0 / float(tile.numel())  # the inverse transforms do not normalise: folded in here
            spec, squared = spec.mul_(scale), squared.mul_(scale)
        else:
            spec = torch.fft.rfftn(tile)
            if radial is not None:
                spec = spec * radial.to(spec.device)
                tile = torch.fft.irfftn(spec, s=self.shape)
            squared = torch.fft.rfftn(tile * tile)
        self.spectrum, self.squared_spectrum = spec, squared
        sz, sy, sx = self.shape
        self.wrap = [wrap_index(n, s, self.device) for s in self.shape]
        self._wrap_np = [w.cpu().numpy() for w in self.wrap]
        # zero everywhere but the rows each box overwrites: padding along x, then z, then y
        self._bx = torch.zeros((n, n, sx), device=self.device)
        self._bz = torch.zeros((sz, n, sx // 2 + 1), dtype=torch.complex64, device=self.device)
        self._bzz: np.ndarray | None = None  # the box along x and z
        self._by_buffer: torch.Tensor | None = None  # made on first use: the two-pass path does without it
        self._spec: torch.Tensor | None = None  # the spectrum's work buffer (shared by both paths)
        self._out: torch.Tensor | None = None
        self._fused: _TwoPass | None = None
        self._spec_dirty = False  # the one-pass path wrote the work buffer everywhere

    @property
    def _by(self) -> torch.Tensor:
        if self._by_buffer is None:
            self._by_buffer = torch.zeros(
                (self.shape[0], self.shape[1], self.shape[2] // 2 + 1), dtype=torch.complex64, device=self.device
            )
        return self._by_buffer

    def _work(self) -> torch.Tensor:
        if self._spec is None:
            self._spec = torch.zeros_like(self.spectrum)
        return self._spec

    def box_spectrum(self, box: torch.Tensor) -> torch.Tensor:
        """rfftn of ``box`` (n, n, n) reflected onto the tile grid (zero elsewhere): (z, y, x // 2 + 1), a
        buffer that the next call may overwrite."""
        wz, wy, wx = self.wrap
        self._bx[..., wx] = box
        if not self.scipy:
            self._bz[wz] = torch.fft.rfft(self._bx, dim=-1)
            self._by[:, wy] = torch.fft.fft(self._bz, dim=0)
            return torch.fft.fft(self._by, dim=1)
        import scipy.fft

        by = self._by.numpy()
        by[:, self._wrap_np[1]] = self._box_along_x_and_z()
        if self.pocket is None:
            return torch.from_numpy(scipy.fft.fft(by, axis=1, workers=self.workers))
        spec = self._work()
        self._spec_dirty = True
        self.pocket.c2c(by, axes=(1,), forward=True, inorm=0, out=spec.numpy(), nthreads=self.workers)
        return spec

    def _box_along_x_and_z(self) -> np.ndarray:
        """The box put in ``_bx`` transformed along x then z (scipy): (z, n, x // 2 + 1), its n rows the ones it
        fills along y; a kept buffer where pocketfft is at hand."""
        import scipy.fft

        bz = self._bz.numpy()
        bz[self._wrap_np[0]] = scipy.fft.rfft(self._bx.numpy(), axis=-1, workers=self.workers)
        if self.pocket is None:
            return scipy.fft.fft(bz, axis=0, workers=self.workers)
        if self._bzz is None:
            self._bzz = np.empty_like(bz)
        self.pocket.c2c(bz, axes=(0,), forward=True, inorm=0, out=self._bzz, nthreads=self.workers)
        return self._bzz

    def correlate(self, spectrum: torch.Tensor, with_squares: bool = False) -> torch.Tensor:
        """Σ_y box(y) T(x + y) (or T²) for a box's spectrum from ``box_spectrum``, which it overwrites:
        (z, y, x) float32, a buffer that the next call may overwrite."""
        product = spectrum.mul_(self.squared_spectrum if with_squares else self.spectrum)
        if not self.scipy:
            return torch.fft.irfftn(product, s=self.shape)
        import scipy.fft

        if self.pocket is None:
            return torch.from_numpy(
                scipy.fft.irfftn(product.numpy(), s=self.shape, workers=self.workers, overwrite_x=True, norm="forward")
            )
        spec = product.numpy()
        if self._out is None:
            self._out = torch.empty(self.shape, device=self.device)
        self.pocket.c2c(spec, axes=(0, 1), forward=False, inorm=0, out=spec, nthreads=self.workers)
        self.pocket.c2r(
            spec,
            axes=(2,),
            lastsize=self.shape[2],
            forward=False,
            inorm=0,
            out=self._out.numpy(),
            nthreads=self.workers,
        )
        return self._out

    def update_best(self, box: torch.Tensor, tracker: BestScore, rotation: int) -> None:
        """``tracker.update(self.correlate(self.box_spectrum(box)), rotation)``, in two passes over the tile
        on the CPU (see the module docstring); the same three calls elsewhere."""
        if self.pocket is None:
            tracker.update(self.correlate(self.box_spectrum(box)), rotation)
            return
        if self._fused is None:
            self._fused = _TwoPass(self)
        work = self._work()
        if self._spec_dirty:  # the two-pass path needs zeros outside the spectrum's non-zero columns
            work.zero_()
            self._spec_dirty = False
        self._fused.run(box, work.numpy(), tracker, rotation)

    def close(self) -> None:
        """Stop the two-pass path's worker threads."""
        if self._fused is not None:
            self._fused.close()
            self._fused = None

    def local_sd(self, mask: torch.Tensor) -> torch.Tensor:
        """√(Σ m T² − (Σ m T)² / Σ m) at every voxel for a mask (n, n, n); inf where the tomogram is flat."""
        spec = self.box_spectrum(mask)
        s1 = self.correlate(spec.clone()).clone()
        s2 = self.correlate(spec, with_squares=True)
        scale = float(s2.abs().amax().clamp(min=1e-30))
        var = s1.square_().div_(-float(mask.sum().clamp(min=1e-12))).add_(s2)
        return torch.where(var > 1e-5 * scale, torch.sqrt(var.clamp(min=0)), torch.full_like(var, torch.inf))


class BestScore:
    """The best score so far at every voxel of a tile and the index of its rotation, updated in place (no
    allocation per rotation): a strictly better score replaces the stored one, so ties keep the first."""

    def __init__(self, shape: tuple[int, ...], device: torch.device) -> None:
        self.best = torch.full(shape, -torch.inf, device=device)
        self.index = torch.zeros(shape, dtype=torch.int32, device=device)
        self._better = torch.zeros(shape, dtype=torch.bool, device=device)
        # on the CPU numpy's ufuncs over slabs of the first axis, one per thread: at the `cell` tile they take
        # about half the CPU time of torch's three kernels (36 against 66 ms per rotation)
        self._slabs: list[slice] = []
        self._pool: ThreadPoolExecutor | None = None
        if device.type == "cpu" and len(shape) > 0 and shape[0] > 0:
            workers = max(1, min(torch.get_num_threads(), shape[0]))
            edges = [round(i * shape[0] / workers) for i in range(workers + 1)]
            self._slabs = [slice(a, b) for a, b in zip(edges[:-1], edges[1:], strict=True)]
            self._pool = ThreadPoolExecutor(workers) if workers > 1 else None

    def update(self, scores: torch.Tensor, rotation: int) -> None:
        """Keep ``scores`` (the tile's shape) where they beat the best, with ``rotation`` as their index."""
        if not self._slabs or scores.device.type != "cpu" or scores.dtype != self.best.dtype:
            torch.gt(scores, self.best, out=self._better)
            torch.maximum(self.best, scores, out=self.best)
            self.index.masked_fill_(self._better, rotation)
            return
        s, m = scores.numpy(), self._better.numpy()

        def slab(z: slice) -> None:
            self.update_block((z,), s[z], rotation, m[z])

        if self._pool is None:
            slab(self._slabs[0])
        else:
            list(self._pool.map(slab, self._slabs))

    def update_block(self, where: tuple[slice, ...], scores: np.ndarray, rotation: int, scratch: np.ndarray) -> None:
        """``update`` on the block ``where`` of a CPU tracker: ``scores`` its shape, ``scratch`` a bool array of
        that shape (numpy ufuncs, which release the GIL: callers run blocks in threads)."""
        b, i = self.best.numpy()[where], self.index.numpy()[where]
        np.greater(scores, b, out=scratch)
        np.maximum(b, scores, out=b)
        np.copyto(i, rotation, where=scratch)

    def close(self) -> None:
        """Stop the update's worker threads (the tracker's arrays stay readable)."""
        if self._pool is not None:
            self._pool.shutdown()
            self._pool = None


class _TwoPass:
    """The CPU path of ``TileCorrelator.update_best``: pocketfft on slabs, one slab per call, in a pool of
    ``workers`` threads (pocketfft and numpy's ufuncs release the GIL). The work buffer holds the product's
    non-zero columns only (the rest stays zero); the tile's spectrum is kept again per z slab, those columns
    contiguous (numpy's complex product of strided arrays costs 2–4× a contiguous one)."""

    Z_SLAB = 2  # z planes per slab of the first pass (~1 MB each at the `cell` size: the cache's order)
    Y_SLAB = 4  # y rows (× all z) per slab of the second

    def __init__(self, owner: TileCorrelator) -> None:
        self.owner = owner
        sz, sy, sx = owner.shape
        kx = sx // 2 + 1
        self.pocket: Any = owner.pocket
        self.workers = owner.workers
        spectrum = owner.spectrum.numpy()
        # the columns (z, kx) where the tile's spectrum is non-zero for some ky: x frequencies below stop[z]
        nonzero = (owner.spectrum != 0).any(dim=1).numpy()
        last = np.where(nonzero.any(axis=1), kx - np.argmax(nonzero[:, ::-1], axis=1), 0)
        self.z_slabs = [slice(a, min(a + self.Z_SLAB, sz)) for a in range(0, sz, self.Z_SLAB)]
        self.stops = [int(last[z].max()) for z in self.z_slabs]
        self.kx_stop = max(self.stops, default=0)
        self.spectra = [np.ascontiguousarray(spectrum[z, :, :stop]) for z, stop in zip(self.z_slabs, self.stops)]
        self.y_slabs = [slice(a, min(a + self.Y_SLAB, sy)) for a in range(0, sy, self.Y_SLAB)]
        per_thread = range(self.workers)
        self.planes = [np.zeros((self.Z_SLAB, sy, kx), np.complex64) for _ in per_thread]
        self.products = [np.empty(self.Z_SLAB * sy * kx, np.complex64) for _ in per_thread]
        self.columns = [np.zeros((sz, self.Y_SLAB, kx), np.complex64) for _ in per_thread]  # zero past kx_stop
        self.rows = [np.empty((sz, self.Y_SLAB, sx), np.float32) for _ in per_thread]
        self.better = [np.empty((sz, self.Y_SLAB, sx), bool) for _ in per_thread]
        self.wrap = owner._wrap_np
        self.pool = ThreadPoolExecutor(self.workers) if self.workers > 1 else None

    def _map(self, fn: Any) -> None:
        if self.pool is None:
            fn(0)
        else:
            list(self.pool.map(fn, range(self.workers)))

    def run(self, box: torch.Tensor, work: np.ndarray, tracker: BestScore, rotation: int) -> None:
        """One rotation: ``work`` (the spectrum's shape) zero outside the non-zero columns on entry and exit."""
        owner, pf, w = self.owner, self.pocket, self.workers
        wy = self.wrap[1]
        sy, sx = owner.shape[1:]
        ks = self.kx_stop
        owner._bx[..., owner.wrap[2]] = box
        along_xz = owner._box_along_x_and_z()

        def first(t: int) -> None:  # along y: the box forward, times the tile's spectrum, inverse
            plane = self.planes[t]
            for j in range(t, len(self.z_slabs), w):
                z, stop = self.z_slabs[j], self.stops[j]
                if stop == 0:
                    continue
                m = z.stop - z.start
                p = plane[:m]
                p[:, wy, :stop] = along_xz[z, :, :stop]
                product = self.products[t][: m * sy * stop].reshape(m, sy, stop)
                pf.c2c(p[:, :, :stop], axes=(1,), forward=True, inorm=0, out=product, nthreads=1)
                np.multiply(product, self.spectra[j], out=product)
                pf.c2c(product, axes=(1,), forward=False, inorm=0, out=work[z, :, :stop], nthreads=1)

        def second(t: int) -> None:  # along z, then x (real), then the best score, a slab of y rows at a time
            columns, rows, better = self.columns[t], self.rows[t], self.better[t]
            for j in range(t, len(self.y_slabs), w):
                y = self.y_slabs[j]
                m = y.stop - y.start
                c, r = columns[:, :m], rows[:, :m]
                pf.c2c(work[:, y, :ks], axes=(0,), forward=False, inorm=0, out=c[:, :, :ks], nthreads=1)
                pf.c2r(c, axes=(2,), lastsize=sx, forward=False, inorm=0, out=r, nthreads=1)
                tracker.update_block((slice(None), y), r, rotation, better[:, :m])

        self._map(first)
        self._map(second)

    def close(self) -> None:
        if self.pool is not None:
            self.pool.shutdown()
            self.pool = None
