"""How far a result is from the simulator's truth: the figures `tomoforge demo` prints and tests assert.

Each function takes the truth dictionary (truth.json, see truth.py) and a result as tomoforge's model
items or arrays, and returns plain numbers. Units: pixels of the frames unless the name says otherwise.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import torch

from tomoforge.methods.align.projection_model import ProjectionModel, reprojection_difference, rms
from tomoforge.methods.map_alignment import align_maps, fsc_resolution_A
from tomoforge.methods.symmetry import symmetric_angle_deg

if TYPE_CHECKING:
    from tomoforge.model import CTFSeries, TiltSeries


def motion_rms_error_px(truth: dict, tilt_series: TiltSeries) -> float:
    """RMS (px) between recovered and true per-frame shifts, each made mean-zero per tilt."""
    true = {t["acquisition_order"]: np.asarray(t["frame_shifts_A"]) for t in truth["tilts"]}
    errors = []
    for image in tilt_series.tilt_images:
        found = np.asarray(image.frame_shifts_A)
        ref = true[image.acquisition_order]
        errors.append((found - found.mean(0)) - (ref - ref.mean(0)))
    return float(np.sqrt(np.mean(np.concatenate(errors) ** 2)) / truth["pixel_size_A"])


def true_projection_model(truth: dict) -> ProjectionModel:
    """The simulator's projection model, views in acquisition order."""
    t = sorted(truth["tilts"], key=lambda r: r["acquisition_order"])
    return ProjectionModel(
        [r["y_tilt_deg"] for r in t],
        [r["z_rot_deg"] for r in t],
        [[r["x_shift_A"], r["y_shift_A"]] for r in t],
        [r["x_tilt_deg"] for r in t],
    )


def recovered_projection_model(tilt_series: TiltSeries, axis_deg: float | None = None) -> ProjectionModel:
    """The projection model stored on a tilt series' images (acquisition order; None fields → nominal)."""
    views = sorted(tilt_series.tilt_images, key=lambda t: t.acquisition_order)
    return tilt_series.projection_model(views, tilt_axis_deg=axis_deg)


def slab_tilt_about_y_deg(truth: dict) -> float:
    """The specimen slab's own tilt about the tilt axis (Y): the angle of its normal from Z in the XZ plane."""
    normal = np.asarray(truth["specimen"]["slab_normal"], dtype=float)
    return float(np.rad2deg(np.arctan2(normal[0], normal[2])))


def alignment_errors(
    truth: dict, tilt_series: TiltSeries, points_A: np.ndarray | None = None, binning: float = 1.0
) -> dict[str, float]:
    """Alignment against the truth, included views only.

    - ``reprojection_rms_px``: RMS (px at ``binning``) between where the recovered and the true models put
      ``points_A`` (default: the gold beads), after removing the free 3D translation and the free common
      rotation about the tilt axis (adding δ to every tilt and turning the specimen by −δ projects the same);
    - ``tilt_axis_error_deg``: mean ZRot found − true;
    - ``tilt_offset_error_deg``: mean (tilt found − nominal) − the truth's tilt offset;
    - ``levelled_tilt_offset_error_deg``: the same against the truth's offset plus the slab's own tilt about
      Y, which is what an alignment that levels the specimen (as ours and IMOD's do) should find.
    """
    views = sorted(tilt_series.tilt_images, key=lambda t: t.acquisition_order)
    mine = np.array([i for i, t in enumerate(views) if not t.excluded])
    keep = [views[i].acquisition_order for i in mine]
    ordered = sorted(truth["tilts"], key=lambda r: r["acquisition_order"])
    index = {t["acquisition_order"]: i for i, t in enumerate(ordered)}
    theirs = np.array([index[k] for k in keep])
    found = recovered_projection_model(tilt_series).subset(mine)
    true = true_projection_model(truth).subset(theirs)
    points = np.array([f["position_A"] for f in truth["fiducials"]]) if points_A is None else points_A
    nominal = np.array([t["nominal_tilt_deg"] for t in ordered])[theirs]
    offset = float(np.mean(found.tilt_deg - nominal))
    diff = reprojection_difference(found, true, points, remove_tilt_offset=True)
    return {
        "reprojection_rms_px": rms(diff) / (truth["pixel_size_A"] * binning),
        "tilt_axis_error_deg": float(np.mean(found.z_rot_deg) - np.mean(true.z_rot_deg)),
        "tilt_offset_error_deg": offset - truth["tilt_offset_deg"],
        "levelled_tilt_offset_error_deg": offset - truth["tilt_offset_deg"] - slab_tilt_about_y_deg(truth),
    }


def defocus_errors(truth: dict, ctf_series: CTFSeries, max_tilt_deg: float = 40.0) -> dict[str, float]:
    """Median |mean defocus error| (Å) over |tilt| ≤ ``max_tilt_deg`` and over all included tilts, and the
    median astigmatism-angle error (°, modulo 180) where the true astigmatism exceeds 500 Å."""
    true = {t["acquisition_order"]: t for t in truth["tilts"]}
    low, every, angles = [], [], []
    for e in ctf_series.entries:
        if e.excluded:
            continue
        t = true[e.acquisition_order]
        err = abs(0.5 * (e.defocus_u_A + e.defocus_v_A) - 0.5 * (t["defocus_u_A"] + t["defocus_v_A"]))
        every.append(err)
        if abs(t["nominal_tilt_deg"]) <= max_tilt_deg:
            low.append(err)
        if t["defocus_u_A"] - t["defocus_v_A"] > 500.0:
            d = (e.astigmatism_angle_deg - t["defocus_angle_deg"] + 90.0) % 180.0 - 90.0
            angles.append(abs(d))
    nan = float("nan")
    return {
        "median_error_low_tilt_A": float(np.median(low)) if low else nan,
        "median_error_all_A": float(np.median(every)) if every else nan,
        "median_astigmatism_angle_error_deg": float(np.median(angles)) if angles else nan,
    }


def lowpass_volume(volume: np.ndarray, pixel_size_A: float, resolution_A: float) -> torch.Tensor:
    """The volume with a Gaussian low-pass whose amplitude is 1/2 at ``resolution_A`` (float64 tensor)."""
    v = torch.as_tensor(np.asarray(volume), dtype=torch.float64)
    freqs = [torch.fft.fftfreq(n, d=pixel_size_A, dtype=torch.float64) for n in v.shape[:-1]]
    freqs.append(torch.fft.rfftfreq(v.shape[-1], d=pixel_size_A, dtype=torch.float64))
    grids = torch.meshgrid(*freqs, indexing="ij")
    k2 = sum(g * g for g in grids)
    sigma2 = (1.0 / resolution_A) ** 2 / (2 * np.log(2.0))
    return torch.fft.irfftn(torch.fft.rfftn(v) * torch.exp(-k2 / (2 * sigma2)), s=v.shape)


def tomogram_correlation(
    truth_volume: np.ndarray,
    volume: np.ndarray,
    pixel_size_A: float,
    resolution_A: float = 40.0,
    max_shift_px: int | None = None,
) -> tuple[float, tuple[float, float, float]]:
    """Pearson r between two (z, y, x) volumes on one grid after the same low-pass, at the translation that
    maximises it (the free translation of an alignment), searched within ``max_shift_px`` (default: a quarter
    of each size) and refined to a fraction of a voxel; r is taken over the part the two volumes share at that
    translation (nothing wrapped round): (r, shift zyx in voxels, ``volume`` = ``truth_volume`` moved by it)."""
    if truth_volume.shape != volume.shape:
        raise ValueError(f"volumes differ in shape: {truth_volume.shape} vs {volume.shape}")
    a = lowpass_volume(truth_volume, pixel_size_A, resolution_A)
    b = lowpass_volume(volume, pixel_size_A, resolution_A)
    fa, fb = torch.fft.rfftn(a - a.mean()), torch.fft.rfftn(b - b.mean())
    cc = torch.fft.irfftn(fa.conj() * fb, s=a.shape)
    idx = [torch.fft.fftfreq(n, 1.0 / n).round().long() for n in a.shape]
    grids = torch.meshgrid(*idx, indexing="ij")
    limits = [n // 4 if max_shift_px is None else max_shift_px for n in a.shape]
    cc[(grids[0].abs() > limits[0]) | (grids[1].abs() > limits[1]) | (grids[2].abs() > limits[2])] = -torch.inf
    pos = np.unravel_index(int(torch.argmax(cc)), cc.shape)
    shift = []
    for axis, n in enumerate(a.shape):  # parabola through the peak and its two neighbours on each axis
        around = [list(pos) for _ in range(3)]
        for k, d in enumerate((-1, 0, 1)):
            around[k][axis] = (pos[axis] + d) % n
        lo, mid, hi = (float(cc[tuple(p)]) for p in around)
        curve = lo - 2 * mid + hi
        frac = 0.5 * (lo - hi) / curve if np.isfinite(lo + hi) and curve < 0 else 0.0
        shift.append(float(idx[axis][pos[axis]]) + float(np.clip(frac, -0.5, 0.5)))
    freqs = [torch.fft.fftfreq(n) for n in a.shape[:-1]] + [torch.fft.rfftfreq(a.shape[-1])]
    kz, ky, kx = torch.meshgrid(*freqs, indexing="ij")
    ramp = torch.exp(2j * torch.pi * (kz * shift[0] + ky * shift[1] + kx * shift[2]).to(torch.float64))
    moved_back = torch.fft.irfftn(torch.fft.rfftn(b) * ramp, s=b.shape)  # b(x + shift)
    valid = tuple(
        slice(0, n - int(np.ceil(s))) if s > 0 else slice(int(np.ceil(-s)), n) for s, n in zip(shift, a.shape)
    )
    x, y = a[valid].reshape(-1), moved_back[valid].reshape(-1)
    x, y = x - x.mean(), y - y.mean()
    r = float((x @ y) / (x.norm() * y.norm()).clamp(min=1e-30))
    return r, (shift[0], shift[1], shift[2])


@dataclass
class PickMatch:
    """Picks matched one-to-one to true particles within a radius (Hungarian: the most pairs, then the
    least total distance). Position errors are |pick − truth| (Å); orientation errors (°) are taken modulo
    the species' symmetry, NaN where no orientations were given."""

    pick_index: np.ndarray  # (k,) indices into the picks
    true_index: np.ndarray  # (k,) indices into the true particles
    position_error_A: np.ndarray  # (k,)
    orientation_error_deg: np.ndarray  # (k,)
    n_picks: int
    n_true: int

    @property
    def precision(self) -> float:
        return len(self.pick_index) / self.n_picks if self.n_picks else float("nan")

    @property
    def recall(self) -> float:
        return len(self.pick_index) / self.n_true if self.n_true else float("nan")

    @property
    def f1(self) -> float:
        total = self.n_picks + self.n_true
        return 2 * len(self.pick_index) / total if total else float("nan")

    @property
    def mean_position_error_A(self) -> float:
        return float(self.position_error_A.mean()) if len(self.position_error_A) else float("nan")

    @property
    def median_orientation_error_deg(self) -> float:
        e = self.orientation_error_deg
        return float(np.median(e)) if len(e) else float("nan")

    def summary(self) -> dict[str, float]:
        return {
            "precision": self.precision,
            "recall": self.recall,
            "f1": self.f1,
            "mean_position_error_A": self.mean_position_error_A,
            "median_orientation_error_deg": self.median_orientation_error_deg,
        }


def match_picks(
    picks_A: np.ndarray,
    true_A: np.ndarray,
    radius_A: float,
    *,
    pick_rotations: np.ndarray | None = None,
    true_rotations: np.ndarray | None = None,
    symmetry: str = "C1",
) -> PickMatch:
    """Match picked coordinates (m, 3) to true ones (n, 3) (Å, x, y, z) one-to-one within ``radius_A``:
    a maximum matching of least total distance over the pairs within the radius (sparse, so thousands of
    particles are cheap). With rotations (m, 3, 3) and (n, 3, 3), the orientation error of each matched
    pick is its angle from the truth modulo the point group ``symmetry``."""
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import min_weight_full_bipartite_matching
    from scipy.spatial import cKDTree

    picks = np.asarray(picks_A, dtype=np.float64).reshape(-1, 3)
    true = np.asarray(true_A, dtype=np.float64).reshape(-1, 3)
    m, n = len(picks), len(true)
    empty = np.zeros(0, dtype=int)
    pi, ti = empty, empty
    if m and n:
        pairs = cKDTree(picks).sparse_distance_matrix(cKDTree(true), radius_A, output_type="ndarray")
        if len(pairs):
            rows, cols, dist = pairs["i"], pairs["j"], pairs["v"]
            # every pick may also go to its own dummy column at a cost above any set of real pairs, so a full
            # matching of the rows always exists and the best one has the most real pairs, then the least
            # distance (real costs are offset by radius so that a zero distance stays a stored entry)
            dummy = 2.0 * radius_A * (min(m, n) + 1) + 1.0
            r = np.concatenate([rows, np.arange(m)])
            c = np.concatenate([cols, n + np.arange(m)])
            w = np.concatenate([dist + radius_A, np.full(m, dummy)])
            graph = coo_matrix((w, (r, c)), shape=(m, n + m)).tocsr()
            row_ind, col_ind = min_weight_full_bipartite_matching(graph)
            real = col_ind < n
            pi, ti = row_ind[real], col_ind[real]
    errors = np.linalg.norm(picks[pi] - true[ti], axis=1)
    if pick_rotations is not None and true_rotations is not None:
        angles = symmetric_angle_deg(np.asarray(pick_rotations)[pi], np.asarray(true_rotations)[ti], symmetry)
    else:
        angles = np.full(len(pi), np.nan)
    return PickMatch(pi, ti, errors, np.asarray(angles, dtype=np.float64), m, n)


def truth_particles(truth: dict, species: str | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(positions (n, 3) Å, rotations (n, 3, 3)) of the truth's particles, of one species when given."""
    items = [p for p in truth["particles"] if species is None or p["species"] == species]
    if not items:
        return np.zeros((0, 3)), np.zeros((0, 3, 3))
    return np.array([p["position_A"] for p in items]), np.array([p["rotation"] for p in items])


def map_fsc(average: np.ndarray, reference: np.ndarray, pixel_size_A: float, *, symmetry: str = "C1") -> dict:
    """FSC of a map (e.g. an average, any frame) against the reference map after superposing them (best
    rotation and shift, ``align_maps``): {frequency_per_A, fsc, resolution_A (FSC 0.143), rotation, shift_A}."""
    result = align_maps(average, reference, pixel_size_A, symmetry=symmetry)
    return {
        "frequency_per_A": result.frequency,
        "fsc": result.fsc,
        "resolution_A": fsc_resolution_A(result.frequency, result.fsc),
        "rotation": result.rotation,
        "shift_A": result.shift_xyz_px * pixel_size_A,
    }
