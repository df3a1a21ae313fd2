"""Template matching: the locally normalised cross-correlation (LNCC) of a rotated template with a tomogram
under a mask, by FFT, over a set of rotations (scipy.fft on the CPU, torch elsewhere: ``correlation``).

For a template t rotated by R (weighted like the data: ``template_weighting``) and its mask m (weights 0–1),
the score at voxel x is the Pearson correlation, weighted by m, between the template and the tomogram T in the
box centred on x (Roseman 2003):

    a = m (t − μ_t) / √(Σ m (t − μ_t)²),   μ_t = Σ m t / Σ m
    score(x) = Σ_y a(y) T(x + y) / √( Σ_y m(y) T(x + y)² − (Σ_y m(y) T(x + y))² / Σ m )

The three sums over y are correlations, computed by FFT on the (padded) tomogram grid: per rotation for the
numerator, a pruned forward transform of the box (about a third of a full one's work) and one inverse FFT; the
two local sums once for a rotation-invariant (spherical) mask, else per rotation. With a spherical mask the
denominator does not depend on the rotation, so the best numerator is kept and divided once. The score is in [−1, 1]; the best rotation's index is kept per voxel.

Background correction (``background_correction``): the same search with a phase-randomised template (same
amplitude spectrum, random phases) gives the score noise alone reaches; its best score at each voxel is
subtracted (as pytom-match-pick's random-phase correction). A tomogram larger than ``memory_budget_bytes``
allows is searched in tiles that overlap by the template's size; each keeps the scores of its core, which
are those of the whole search wherever the template stays inside the tomogram.

Arrays: volumes (z, y, x) float32; rotations (n, 3, 3) act on (x, y, z) about the box centre (voxel n // 2),
x_tomogram = R · x_reference.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from tomoforge.methods.fourier import as_tensor, fast_fft_size
from tomoforge.methods.picking.correlation import BestScore, TileCorrelator, use_scipy

BYTES_PER_VOXEL_FIXED = 48  # tomogram, its spectrum (twice on the CPU), the local sums, best score and index, a filter
BYTES_PER_VOXEL_ROTATION = 16  # the rotated box's spectrum, the correlation (one rotation at a time)


@dataclass
class MatchResult:
    """Best score per voxel (z, y, x) float32, the index of its rotation (int32, into ``rotations``), the
    rotations searched (n, 3, 3), the phase-randomised template's best score when corrected (else None), the
    tiles used and the seconds spent; the mean and standard deviation of the score of single rotations (every
    voxel of ``statistics_mask`` × a sample of the rotations: the distribution noise draws V × R scores from,
    which the false-positive threshold needs; the best-score map's SD is smaller)."""

    scores: np.ndarray
    best_rotation: np.ndarray
    rotations: np.ndarray
    noise_scores: np.ndarray | None
    n_tiles: int
    seconds: float
    rotation_score_mean: float = 0.0
    rotation_score_sd: float = 0.0


def _centred_xyz(n: int, device: torch.device) -> torch.Tensor:
    """(n³, 3) (x, y, z) of every voxel of an n³ box, from voxel n // 2, in (z, y, x) storage order."""
    axis = torch.arange(n, device=device, dtype=torch.float32) - n // 2
    z, y, x = torch.meshgrid(axis, axis, axis, indexing="ij")
    return torch.stack([x, y, z], -1).reshape(-1, 3)


def rotate_volumes(volume: torch.Tensor, rotations: torch.Tensor, xyz: torch.Tensor | None = None) -> torch.Tensor:
    """``volume`` (n, n, n) rotated by each of ``rotations`` (b, 3, 3) about voxel n // 2, trilinear, zero
    outside: out_b(x) = volume(R_bᵀ x); (b, n, n, n). ``xyz``: ``_centred_xyz(n)`` when the caller keeps it."""
    n = volume.shape[-1]
    dev = volume.device
    r = rotations.to(device=dev, dtype=torch.float32)
    points = _centred_xyz(n, dev) if xyz is None else xyz
    src = torch.matmul(points, r) + n // 2  # row p of (x_p · R) = (Rᵀ x_p)ᵀ, in voxels from the corner
    grid = (src * (2.0 / (n - 1)) - 1.0).reshape(len(r), n, n, n, 3)  # align_corners: −1 → 0, +1 → n − 1
    vol = volume.to(torch.float32).expand(len(r), 1, n, n, n)
    return F.grid_sample(vol, grid, mode="bilinear", padding_mode="zeros", align_corners=True)[:, 0]


def is_rotation_invariant(mask: torch.Tensor, *, tolerance: float = 0.02) -> bool:
    """Whether ``mask`` (n, n, n) is a function of the distance from voxel n // 2 alone (a sphere, hard or soft):
    the voxels of each integer squared radius agree to ``tolerance`` of the maximum."""
    r2 = _centred_xyz(mask.shape[-1], mask.device).square().sum(-1).round().long()
    values = mask.reshape(-1).to(torch.float32)
    bins = int(r2.max()) + 1
    high = torch.full((bins,), -torch.inf, device=mask.device).scatter_reduce(0, r2, values, "amax")
    low = torch.full((bins,), torch.inf, device=mask.device).scatter_reduce(0, r2, values, "amin")
    used = torch.isfinite(high)
    return bool(((high - low)[used]).max() <= tolerance * float(values.abs().max()))


def phase_randomised(template: torch.Tensor, *, seed: int = 0) -> torch.Tensor:
    """A volume with the amplitude spectrum of ``template`` and random phases (those of white noise)."""
    gen = torch.Generator().manual_seed(seed)
    noise = torch.randn(template.shape, generator=gen).to(template.device)
    spec = torch.fft.rfftn(template.to(torch.float32))
    phases = torch.fft.rfftn(noise)
    out = torch.fft.irfftn(spec.abs() * phases / phases.abs().clamp(min=1e-20), s=template.shape)
    return out * (template.std() / out.std().clamp(min=1e-20))


def tile_slices(
    shape: tuple[int, int, int], box: int, max_voxels: int
) -> list[tuple[tuple[slice, ...], tuple[slice, ...], tuple[slice, ...]]]:
    """Tiles of a (z, y, x) volume whose cores cover it and whose extents (core + ``box`` // 2 + 1 each side,
    clipped) hold at most ``max_voxels`` (when possible: a core is at least one voxel).

    Returns
    -------
    list of (extent slices in the volume, core slices in the volume, core slices within the extent)
    """
    margin = box // 2 + 1
    counts = [1, 1, 1]
    while True:
        cores = [math.ceil(s / c) for s, c in zip(shape, counts)]
        ext = [min(s, c + 2 * margin) for s, c in zip(shape, cores)]
        if int(np.prod(ext)) <= max_voxels or all(c == 1 for c in cores):
            break
        axis = int(np.argmax(cores))
        counts[axis] += 1
    per_axis: list[list[tuple[slice, slice, slice]]] = []
    for s, c in zip(shape, cores):
        items = []
        for start in range(0, s, c):
            stop = min(s, start + c)
            lo, hi = max(0, start - margin), min(s, stop + margin)
            items.append((slice(lo, hi), slice(start, stop), slice(start - lo, stop - lo)))
        per_axis.append(items)
    return [
        ((a[0], b[0], c[0]), (a[1], b[1], c[1]), (a[2], b[2], c[2]))
        for a in per_axis[0]
        for b in per_axis[1]
        for c in per_axis[2]
    ]


def _normalise_under_mask(t: torch.Tensor, m: torch.Tensor) -> torch.Tensor:
    """a = m (t − μ_t) / √(Σ m (t − μ_t)²) per batch entry; t, m (b, n, n, n)."""
    dims = (1, 2, 3)
    msum = m.sum(dims, keepdim=True).clamp(min=1e-12)
    mean = (m * t).sum(dims, keepdim=True) / msum
    centred = m * (t - mean)
    norm = torch.sqrt(((t - mean) * centred).sum(dims, keepdim=True)).clamp(min=1e-20)
    return centred / norm


class _Moments:
    """Sums of the single-rotation scores (count, Σ s, Σ s²) over every 7th voxel of a tile's boolean map for
    every ``stride``-th rotation: their mean and SD without keeping them, at a small cost per rotation (the
    voxels' indices and local SDs are gathered once per tile)."""

    VOXEL_STRIDE = 7

    def __init__(self, stride: int) -> None:
        self.stride = max(1, stride)
        self.count, self.total, self.squares = 0, 0.0, 0.0
        self._index: torch.Tensor | None = None
        self._denominator: torch.Tensor | None = None

    def tile(self, where: torch.Tensor, denominator: torch.Tensor | None) -> None:
        """Count the voxels of ``where`` (every 7th of the flattened tile) from now on, their scores divided by
        ``denominator`` (the tile's local SD) when given."""
        k = self.VOXEL_STRIDE
        self._index = torch.nonzero(where.reshape(-1)[::k]).reshape(-1) * k
        self._denominator = None if denominator is None else denominator.reshape(-1)[self._index]

    def counts(self, rotation: int) -> bool:
        """Whether the scores of ``rotation`` are counted."""
        return rotation % self.stride == 0 and self._index is not None

    def add(self, scores: torch.Tensor, rotation: int) -> None:
        """Count the scores (the tile's shape) of ``rotation`` when it is one of the counted rotations."""
        if not self.counts(rotation) or self._index is None:
            return
        values = torch.index_select(scores.reshape(-1), 0, self._index)
        if self._denominator is not None:
            values = values.div_(self._denominator)
        finite = torch.isfinite(values)
        values = (values if bool(finite.all()) else values[finite]).double()
        self.count += int(values.numel())
        self.total += float(values.sum())
        self.squares += float(torch.dot(values, values))

    def mean_sd(self) -> tuple[float, float]:
        if self.count == 0:
            return 0.0, 0.0
        mean = self.total / self.count
        return mean, float(np.sqrt(max(self.squares / self.count - mean * mean, 0.0)))


def _search_tile(
    search: TileCorrelator,
    template: torch.Tensor,
    mask: torch.Tensor,
    rotations: torch.Tensor,
    box_filter: torch.Tensor,
    batch: int,
    progress: Callable[[int], None] | None,
    moments: _Moments | None = None,
    allowed: tuple[torch.Tensor, torch.Tensor] | None = None,
    denominator: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Best score and best rotation index at every voxel of the tile (and the single-rotation score sums
    into ``moments``, set to the tile's voxels). ``allowed``: the (rotations, groups)
    table of rotations allowed per group and the tile's group of each voxel; a rotation scores only where
    allowed. ``denominator``: the local SD under a rotation-invariant mask (None: the mask is rotated). The
    boxes are prepared ``batch`` rotations at a time; the tile-sized work runs one rotation at a time."""
    tracker = BestScore(search.shape, search.device)
    n = template.shape[-1]
    xyz = _centred_xyz(n, search.device)
    spherical = denominator is not None
    try:
        for start in range(0, len(rotations), batch):
            r = rotations[start : start + batch]
            turned = rotate_volumes(template, r, xyz)
            turned = torch.fft.irfftn(torch.fft.rfftn(turned, dim=(1, 2, 3)) * box_filter, s=(n, n, n), dim=(1, 2, 3))
            masks = mask[None].expand(len(r), -1, -1, -1) if spherical else rotate_volumes(mask, r, xyz).clamp(0, 1)
            boxes = _normalise_under_mask(turned, masks)
            for i in range(len(r)):
                k = start + i
                sd = None if spherical else search.local_sd(masks[i])
                if sd is None and allowed is None and (moments is None or not moments.counts(k)):
                    search.update_best(boxes[i], tracker, k)  # the common case, in two cached passes
                    continue
                cc = search.correlate(search.box_spectrum(boxes[i]))
                if sd is not None:
                    cc = cc.div_(sd)
                if moments is not None:
                    moments.add(cc, k)
                if allowed is not None:
                    table, labels = allowed
                    cc = cc.masked_fill_(~table[k][labels], -torch.inf)
                tracker.update(cc, k)
            if progress is not None:
                progress(min(start + batch, len(rotations)))
    finally:
        tracker.close()
    best = tracker.best
    if denominator is not None:
        best = best.div_(denominator)
    return best, tracker.index


def _batches(n_rotations: int, batch: int | None) -> int:
    return max(1, min(batch or 8, n_rotations))


def _iter_tiles(
    tomogram: torch.Tensor, box: int, max_voxels: int
) -> Iterator[tuple[tuple[slice, ...], tuple[slice, ...], torch.Tensor, tuple[slice, ...]]]:
    """(core slices in the volume, core slices in the padded tile, padded tile, extent slices in the volume):
    the tile zero-padded to a fast FFT size after removing its mean."""
    shape = tuple(int(s) for s in tomogram.shape)
    for extent, core, inner in tile_slices(shape, box, max_voxels):  # type: ignore[arg-type]
        tile = tomogram[extent]
        size = tuple(fast_fft_size(int(s), even=(i == 2)) for i, s in enumerate(tile.shape))
        padded = torch.zeros(size, device=tomogram.device)
        padded[: tile.shape[0], : tile.shape[1], : tile.shape[2]] = tile - tile.mean()
        yield core, inner, padded, extent


def match_template(
    tomogram: np.ndarray | torch.Tensor,
    template: np.ndarray | torch.Tensor,
    rotations: np.ndarray,
    *,
    mask: np.ndarray | torch.Tensor | None = None,
    template_weight: torch.Tensor | None = None,
    radial_filter: Callable[[tuple[int, int, int]], torch.Tensor] | None = None,
    protein_dark: bool = True,
    background_correction: bool = False,
    memory_budget_bytes: int = 2 << 30,
    batch: int | None = None,
    seed: int = 0,
    device: torch.device | str | None = None,
    progress: Callable[[int, int], None] | None = None,
    statistics_mask: np.ndarray | None = None,
    statistics_rotations: int = 32,
    location_groups: np.ndarray | None = None,
    allowed_rotations: np.ndarray | None = None,
    fft_library: str | None = None,
) -> MatchResult:
    """Search a tomogram for a template over ``rotations`` (see the module docstring).

    Parameters
    ----------
    tomogram : (z, y, x) float
        The tomogram (any contrast scale; its voxel size is the template's).
    template : (n, n, n) float
        The reference on the same voxel size, protein bright, centred on voxel n // 2 (n ≤ each tomogram side).
    rotations : (r, 3, 3)
        Rotations to try (x_tomogram = R · x_reference), e.g. ``angles.angular_sampling``.
    mask : (n, n, n), optional
        Weights 0–1 under which the correlation is normalised (default: a sphere of radius n // 2 − 1). A mask
        unchanged by rotation is used as is; another is rotated with the template (3 FFT pairs per rotation).
    template_weight : (n, n, n // 2 + 1), optional
        Fourier weight applied to each rotated template (``template_weighting.tilt_weight`` on the box).
    radial_filter : callable, optional
        ``radial_filter(shape)`` gives an rfft-grid filter for a real-space ``shape``; applied to the tomogram
        (each tile) and to the template (whitening, band-pass).
    protein_dark : bool
        The protein is dark in the tomogram (tomograms of raw or phase-flipped images): the template is negated.
    background_correction : bool
        Subtract the best score of a phase-randomised template (twice the work).
    memory_budget_bytes : int
        Tiles when the tomogram's search would need more (default 2 GiB).
    batch : int, optional
        Rotations whose boxes are rotated and weighted together (default 8); the tile-sized transforms run
        one rotation at a time.
    seed : int
        Seed of the random phases.
    device : torch device, optional
        Where to compute (default: CPU).
    progress : callable, optional
        ``progress(done, total)`` rotations, per tile and pass.
    statistics_mask : (z, y, x) bool, optional
        The voxels whose single-rotation scores give ``rotation_score_mean`` and ``_sd`` (default: all).
    statistics_rotations : int
        About this many rotations, evenly spread over the list, are counted in those statistics.
    location_groups : (z, y, x) int, optional
        Per-location rotations (e.g. a cone around each location's membrane normal): the group of each voxel
        (−1: not searched), with ``allowed_rotations``.
    allowed_rotations : (r, g) bool, optional
        Whether rotation i may score in group j. A voxel's score is its best over its allowed rotations (0
        where none is).
    fft_library : {"scipy", "torch"}, optional
        The FFTs' library (default: scipy.fft on the CPU, torch elsewhere; see ``correlation``).

    Returns
    -------
    MatchResult
        Scores (z, y, x) float32 in [−1, 1] (minus the noise score when corrected), best rotation index int32.
    """
    start_time = time.perf_counter()
    dev = torch.device(device) if device is not None else torch.device("cpu")
    tomo = as_tensor(tomogram, torch.float32, dev)
    tmpl = as_tensor(template, torch.float32, dev)
    n = tmpl.shape[-1]
    if tmpl.ndim != 3 or len(set(tmpl.shape)) != 1:
        raise ValueError(f"the template must be a cube (n, n, n), got shape {tuple(tmpl.shape)}")
    if any(s < n for s in tomo.shape):
        raise ValueError(f"the template ({n}³) is larger than the tomogram {tuple(tomo.shape)}")
    if mask is None:
        axis = torch.arange(n, device=dev, dtype=torch.float32) - n // 2
        z, y, x = torch.meshgrid(axis, axis, axis, indexing="ij")
        m = ((x * x + y * y + z * z) <= (n // 2 - 1) ** 2).to(torch.float32)
    else:
        m = as_tensor(mask, torch.float32, dev).clamp(0.0, 1.0)
    spherical = is_rotation_invariant(m)
    box_filter = torch.ones((n, n, n // 2 + 1), device=dev)
    if template_weight is not None:
        box_filter = box_filter * template_weight.to(dev)
    if radial_filter is not None:
        box_filter = box_filter * radial_filter((n, n, n)).to(dev)
    sign = -1.0 if protein_dark else 1.0
    rot = torch.as_tensor(np.asarray(rotations), dtype=torch.float32, device=dev)
    templates = [tmpl * sign]
    if background_correction:
        templates.append(phase_randomised(tmpl, seed=seed) * sign)
    shape = tuple(int(s) for s in tomo.shape)
    max_voxels = max(1, memory_budget_bytes // (BYTES_PER_VOXEL_FIXED + BYTES_PER_VOXEL_ROTATION))
    scipy_fft = use_scipy(dev, fft_library)
    maps = [torch.zeros(shape, device=dev) for _ in templates]
    best_index = torch.zeros(shape, dtype=torch.int32, device=dev)
    n_tiles = 0
    moments = _Moments(math.ceil(len(rot) / max(1, statistics_rotations)))
    where = (
        torch.ones(shape, dtype=torch.bool, device=dev)
        if statistics_mask is None
        else torch.as_tensor(np.asarray(statistics_mask, dtype=bool), device=dev)
    )
    table = None
    if location_groups is not None and allowed_rotations is not None:
        groups = np.asarray(allowed_rotations, dtype=bool)
        if groups.shape[0] != len(rot):
            raise ValueError(f"allowed_rotations has {groups.shape[0]} rows for {len(rot)} rotations")
        table = torch.as_tensor(np.concatenate([groups, np.zeros((len(groups), 1), bool)], 1), device=dev)
        labels = torch.as_tensor(np.asarray(location_groups, dtype=np.int64), device=dev)
        labels = torch.where(labels < 0, torch.full_like(labels, groups.shape[1]), labels)  # the all-False column
    for core, inner, padded, extent in _iter_tiles(tomo, n, max_voxels):
        n_tiles += 1
        size = tuple(int(s) for s in padded.shape)
        radial = radial_filter(size) if radial_filter is not None else None  # type: ignore[arg-type]
        search = TileCorrelator(padded, radial, n, scipy_fft=scipy_fft)
        denominator = search.local_sd(m) if spherical else None
        b = _batches(len(rot), batch)
        for k, t in enumerate(templates):
            report = (lambda done: progress(done, len(rot))) if progress is not None else None
            stats = None
            if k == 0:  # the single-rotation scores of the template (not of its phase-randomised copy)
                counted = torch.zeros(size, dtype=torch.bool, device=dev)
                counted[inner] = where[core]
                moments.tile(counted, denominator)
                stats = moments
            allowed = None
            if table is not None:
                tile_labels = torch.full(size, table.shape[1] - 1, dtype=torch.int64, device=dev)
                part = labels[extent]
                tile_labels[: part.shape[0], : part.shape[1], : part.shape[2]] = part
                allowed = (table, tile_labels)
            best, index = _search_tile(search, t, m, rot, box_filter, b, report, stats, allowed, denominator)
            maps[k][core] = best[inner]
            if k == 0:
                best_index[core] = index[inner]
        search.close()
        del search, denominator
    scores = maps[0] - maps[1] if background_correction else maps[0]
    scores = torch.where(torch.isfinite(scores), scores, torch.zeros_like(scores))
    rotation_mean, rotation_sd = moments.mean_sd()
    return MatchResult(
        scores=scores.cpu().numpy().astype(np.float32),
        best_rotation=best_index.cpu().numpy(),
        rotations=np.asarray(rotations, dtype=np.float64),
        noise_scores=maps[1].cpu().numpy() if background_correction else None,
        n_tiles=n_tiles,
        seconds=time.perf_counter() - start_time,
        rotation_score_mean=rotation_mean,
        rotation_score_sd=rotation_sd,
    )
