"""Acquisition: tilt schemes and the true per-tilt geometry, defocus, dose and frame motion.

Per tilt (in acquisition order) the truth holds the RELION 5 projection model: x_image = Rz(ZRot) ·
Ry(YTilt) · Rx(XTilt) · x + (XShift, YShift), Å from the image centre; YTilt = nominal + offset,
ZRot = tilt axis angle + drift. Heights h = (Ry Rx x)_z point towards the electron source; a point at
height h is imaged with defocus (DefocusU/V + h): higher points are more underfocused.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from tomoforge.simulate.config import AcquisitionConfig


def dose_symmetric_angles(
    tilt_min: float, tilt_max: float, step: float, start: float = 0.0, group_size: int = 2
) -> list[float]:
    """Hagen dose-symmetric order: start, then groups of ``group_size`` tilts alternating +, −."""
    pos = [start + step * i for i in range(1, int(round((tilt_max - start) / step)) + 1)]
    neg = [start - step * i for i in range(1, int(round((start - tilt_min) / step)) + 1)]
    order, sides, turn = [start], [pos, neg], 0
    while pos or neg:
        side = sides[turn % 2] if sides[turn % 2] else sides[(turn + 1) % 2]
        order += side[:group_size]
        del side[:group_size]
        turn += 1
    return [round(a, 6) for a in order]


def bidirectional_angles(
    tilt_min: float, tilt_max: float, step: float, start: float = 0.0, first: str = "negative"
) -> list[float]:
    """Bidirectional order: from ``start`` to one end, then from start ∓ step to the other end."""
    pos = [start + step * i for i in range(0, int(round((tilt_max - start) / step)) + 1)]
    neg = [start - step * i for i in range(0, int(round((start - tilt_min) / step)) + 1)]
    order = neg + pos[1:] if first == "negative" else pos + neg[1:]
    return [round(a, 6) for a in order]


@dataclass
class TiltTruth:
    """One tilt image; lists/arrays in acquisition order."""

    acquisition_order: int  # 1 = first exposed
    nominal_tilt_deg: float
    tilt_deg: float  # YTilt (true)
    x_tilt_deg: float  # XTilt
    z_rot_deg: float  # ZRot (true in-plane rotation = tilt axis angle + drift)
    shift_A: np.ndarray  # (XShift, YShift) Å
    target_defocus_A: float
    defocus_u_A: float
    defocus_v_A: float
    astigmatism_angle_deg: float
    pre_exposure: float  # e/Å² before this tilt
    dose: float  # e/Å² of this tilt
    frame_shifts_A: np.ndarray  # (frames, 2) x, y Å: frame content = true image translated by this

    @property
    def accumulated_dose(self) -> float:
        return self.pre_exposure + self.dose


def simulate_acquisition(cfg: AcquisitionConfig, rng: np.random.Generator) -> list[TiltTruth]:
    """True per-tilt parameters of one tilt series, in acquisition order."""
    if cfg.scheme == "dose_symmetric":
        angles = dose_symmetric_angles(
            cfg.tilt_min_deg, cfg.tilt_max_deg, cfg.tilt_step_deg, cfg.tilt_start_deg, cfg.group_size
        )
    else:
        angles = bidirectional_angles(
            cfg.tilt_min_deg, cfg.tilt_max_deg, cfg.tilt_step_deg, cfg.tilt_start_deg, cfg.bidirectional_first
        )
    n = len(angles)
    target = rng.uniform(*cfg.defocus_um) * 1e4
    astig_angle = rng.uniform(-90, 90)
    # stage shifts: a random walk in acquisition order that grows with each tilt change
    steps = rng.normal(scale=cfg.stage_shift_sigma_A, size=(n, 2))
    steps[0] = 0.0
    shifts = np.cumsum(steps, axis=0)
    shifts -= shifts[0]
    drift = cfg.rotation_drift_deg * np.arange(n) / max(n - 1, 1)
    out = []
    for i, nominal in enumerate(angles):
        mean = target + rng.normal(scale=cfg.defocus_error_um * 1e4)
        astig = abs(rng.normal(cfg.astigmatism_um * 1e4, 0.2 * cfg.astigmatism_um * 1e4))
        out.append(
            TiltTruth(
                acquisition_order=i + 1,
                nominal_tilt_deg=float(nominal),
                tilt_deg=float(nominal + cfg.tilt_offset_deg),
                x_tilt_deg=0.0,
                z_rot_deg=float(cfg.tilt_axis_angle_deg + drift[i] + rng.normal(scale=cfg.rotation_jitter_deg)),
                shift_A=shifts[i].astype(float),
                target_defocus_A=float(target),
                defocus_u_A=float(mean + astig / 2),
                defocus_v_A=float(mean - astig / 2),
                astigmatism_angle_deg=float(((astig_angle + rng.normal(scale=2.0)) + 90) % 180 - 90),
                pre_exposure=float(cfg.pre_exposure + i * cfg.dose_per_tilt),
                dose=float(cfg.dose_per_tilt),
                frame_shifts_A=beam_induced_motion(cfg.frames_per_tilt, cfg.beam_motion_A, rng),
            )
        )
    return out


def beam_induced_motion(frames: int, amplitude_A: float, rng: np.random.Generator) -> np.ndarray:
    """(frames, 2) smooth trajectory (x, y Å): fast early motion decaying exponentially plus a slow
    curved drift, centred so the mean over frames is zero."""
    t = (np.arange(frames) + 0.5) / frames
    direction = rng.normal(size=2)
    direction /= np.linalg.norm(direction)
    fast = amplitude_A * rng.uniform(0.6, 1.4) * (1 - np.exp(-t / 0.2))[:, None] * direction
    curve = rng.normal(scale=0.3 * amplitude_A, size=2)
    slow = (t**2)[:, None] * curve
    path = fast + slow
    return path - path.mean(axis=0)
