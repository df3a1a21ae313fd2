"""The ground truth written beside the simulated data.

Files per tilt series ``<outdir>/truth/<TS>/``:
- ``truth.json``: everything below (JSON, UTF-8).
- ``tilts.star``: one row per tilt (acquisition order), RELION 5 names: rlnMicrographMovieName,
  rlnTomoNominalStageTiltAngle (nominal, °), rlnTomoXTilt, rlnTomoYTilt (true tilt), rlnTomoZRot (°),
  rlnTomoXShiftAngst, rlnTomoYShiftAngst (Å), rlnDefocusU, rlnDefocusV (Å, positive = underfocus),
  rlnDefocusAngle (°, U from image X), rlnMicrographPreExposure (e/Å², accumulated = pre + own dose),
  rlnMicrographDoseRate (e/Å² this tilt), rlnTomoAcquisitionOrder (1 = first exposed).
- ``noise_free_tilt_series.mrc``: (n, y, x) float32, acquisition order, expected counts per pixel of
  each tilt summed over its frames, as ideally motion-corrected frames give: CTF, exposure attenuation
  (per frame), ice/gold attenuation and MTF applied; no noise, no gain, no X-rays, no hot pixels.
- ``noise_free_tilt_series_ctf_free.mrc`` (only with ``output.write_ctf_free_stack``): the same with a
  perfect transfer, CTF = −1 at every height (the contrast of an underfocused first lobe).
- ``tomogram_bin<b>.mrc``: noise-free potential (V, relative to vitreous ice) on (z, y, x) at pixel
  size × b, voxel n // 2 at the tomogram centre, the frame in which positions below are given.

truth.json keys (lengths in Å, angles in degrees, doses in e/Å²):
- ``format``: "tomoforge-simulation-truth/1"; ``seed``, ``preset``, ``config`` (all parameters).
- ``tilt_series``: name; ``mdoc``, ``movies`` (paths relative to the output folder).
- ``pixel_size_A`` (of the frames), ``image_size_yx``, ``super_resolution``, ``voltage_kV``, ``cs_mm``,
  ``amplitude_contrast``, ``tilt_axis_angle_deg`` (nominal, SerialEM convention), ``tilt_offset_deg``
  (true − nominal), ``defocus_handedness``: +1 (defocus at height h = DefocusU/V + h, h towards the
  source), ``projection_model``: text of the convention below.
- ``tilts``: list in acquisition order; each: acquisition_order, nominal_tilt_deg, x_tilt_deg, y_tilt_deg,
  z_rot_deg, x_shift_A, y_shift_A, defocus_u_A, defocus_v_A, defocus_angle_deg, target_defocus_A,
  pre_exposure, dose, accumulated_dose, movie, frame_shifts_A ([[x, y], …] per frame: the frame shows
  the true image translated by this; mean over frames 0).
  Projection: [u, v] = (Rz(z_rot) Ry(y_tilt) Rx(x_tilt) x)[:2] + [x_shift, y_shift], Å from the image
  centre (pixel n // 2), x the position in the tomogram (Å from its centre).
- ``xrays``: list of {tilt_index (0-based acquisition order), frame, y_px, x_px, pixels, counts}: a hit
  covers (y, x), (y, x+1), (y+1, x), (y+1, x+1), the first ``pixels`` of them.
- ``hot_pixels_yx``: [[y, x], …] pixels with ``hot_pixel_counts`` extra counts per frame.
- ``gain``: path of the gain reference (multiply raw frames by it).
- ``specimen``: field_A [x, y], tomogram_thickness_A, ice_thickness_A, slab_normal [x, y, z]
  (unit), geometry.
- ``particles``: list of {species, position_A [x, y, z], rotation (3×3 rows; x_tomo = R x_ref + t),
  vesicle (index or −1), virion (index of the virion whose lattice holds it, or −1), sheet (index of the
  sheet it is bound to, or −1), filament (index of the filament it is a subunit of, or −1), normal (unit,
  membrane-bound and lattice particles only; = R·ẑ, pointing from the membrane to the particle)}.
- ``background``: the same for crowding molecules (species = index of ``background_species``).
- ``fiducials``: list of {position_A, diameter_A}.
- ``vesicles``: list of {centre_A, semi_axes_A (membrane mid-surface, along the columns of rotation),
  rotation, membrane_thickness_A}; outward normal at x: A (x − c) normalised, A = R diag(a⁻²) Rᵀ.
- ``virions``: the same, plus lattice_semi_axes_A: the ellipsoid (same centre and rotation) on which
  the lattice's assembly centres lie.
- ``sheets``: list of {centre_A, semi_axes_A [a, b] (in the plane, along the first two columns of
  rotation), rotation, normal (its third column), membrane_thickness_A}: flat discs of bilayer.
- ``filaments``: list of {species, backbone_A [[x, y, z], …] (axis points, rise_A apart along the arc,
  subunit k's axis point is point k), tangents (unit, per point), rise_A, twist_deg, radius_A (subunit
  centres from the axis), curvature_per_A (0: straight), subunits (count)}; subunit k: turned by k · twist
  about the axis, its reference z along the tangent, x pointing away from the axis.
- ``species``: list of {name, source, reference_map (contrast, V), potential_map (vacuum, V),
  reference_map_binned (the reference map at the tomogram's pixel size, Fourier-cropped),
  pixel_size_A, radius_A, mass_Da, symmetry (point group of the reference map, axis z: Cn, Dn, T, O, I)}.
- ``tomogram``: {path, binning, pixel_size_A, shape_zyx}; ``noise_free_tilt_series``: path;
  ``noise_free_tilt_series_ctf_free``: path or null.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import starfile

from tomoforge.simulate.acquisition import TiltTruth
from tomoforge.simulate.specimen import PlacedParticle, Specimen

FORMAT = "tomoforge-simulation-truth/1"
PROJECTION_MODEL = (
    "[u, v] = (Rz(z_rot) Ry(y_tilt) Rx(x_tilt) x)[:2] + [x_shift, y_shift]; Å from the image "
    "centre; height h = (Ry Rx x)_z towards the source, defocus = DefocusU/V + h"
)


def tilt_records(tilts: list[TiltTruth], movies: list[str]) -> list[dict]:
    """Per-tilt truth dictionaries in acquisition order."""
    return [
        {
            "acquisition_order": t.acquisition_order,
            "nominal_tilt_deg": t.nominal_tilt_deg,
            "x_tilt_deg": t.x_tilt_deg,
            "y_tilt_deg": t.tilt_deg,
            "z_rot_deg": t.z_rot_deg,
            "x_shift_A": float(t.shift_A[0]),
            "y_shift_A": float(t.shift_A[1]),
            "defocus_u_A": t.defocus_u_A,
            "defocus_v_A": t.defocus_v_A,
            "defocus_angle_deg": t.astigmatism_angle_deg,
            "target_defocus_A": t.target_defocus_A,
            "pre_exposure": t.pre_exposure,
            "dose": t.dose,
            "accumulated_dose": t.accumulated_dose,
            "movie": m,
            "frame_shifts_A": t.frame_shifts_A.tolist(),
        }
        for t, m in zip(tilts, movies)
    ]


def specimen_records(spec: Specimen, species_names: list[str]) -> dict:
    """Particles, background, fiducials, vesicles and slab geometry as JSON-ready dictionaries."""

    def particle(p: PlacedParticle, names: list[str]) -> dict[str, Any]:
        return {
            "species": names[p.species],
            "position_A": p.position_A.tolist(),
            "rotation": p.rotation.tolist(),
            "vesicle": p.vesicle,
            "virion": p.virion,
            "sheet": p.sheet,
            "filament": p.filament,
            "normal": None if p.normal is None else p.normal.tolist(),
        }

    return {
        "specimen": {
            "field_A": list(spec.field_A),
            "tomogram_thickness_A": spec.thickness_A,
            "ice_thickness_A": spec.ice_thickness_A,
            "slab_normal": spec.slab_normal.tolist(),
        },
        "particles": [particle(p, species_names) for p in spec.particles],
        "background": [particle(p, [str(i) for i in range(64)]) for p in spec.background],
        "fiducials": [{"position_A": p.tolist(), "diameter_A": 2 * spec.fiducial_radius_A} for p in spec.fiducials],
        "vesicles": [
            {
                "centre_A": v.centre_A.tolist(),
                "semi_axes_A": v.semi_axes_A.tolist(),
                "rotation": v.rotation.tolist(),
                "membrane_thickness_A": v.membrane_thickness_A,
            }
            for v in spec.vesicles
        ],
        "virions": [
            {
                "centre_A": v.centre_A.tolist(),
                "semi_axes_A": v.semi_axes_A.tolist(),
                "rotation": v.rotation.tolist(),
                "membrane_thickness_A": v.membrane_thickness_A,
                "lattice_semi_axes_A": axes.tolist(),
            }
            for v, axes in zip(spec.virions, spec.virion_lattice_axes_A)
        ],
        "sheets": [
            {
                "centre_A": sh.centre_A.tolist(),
                "semi_axes_A": sh.semi_axes_A.tolist(),
                "rotation": sh.rotation.tolist(),
                "normal": sh.normal.tolist(),
                "membrane_thickness_A": sh.membrane_thickness_A,
            }
            for sh in spec.sheets
        ],
        "filaments": [
            {
                "species": species_names[spec.filament_species],
                "backbone_A": f.backbone_A.tolist(),
                "tangents": f.tangents.tolist(),
                "rise_A": f.rise_A,
                "twist_deg": f.twist_deg,
                "radius_A": f.radius_A,
                "curvature_per_A": f.curvature_per_A,
                "subunits": len(f.positions_A),
            }
            for f in spec.filaments
        ],
    }


def tilts_table(records: list[dict]) -> pd.DataFrame:
    """The per-tilt truth as a RELION-5-named table (see the module docstring)."""
    return pd.DataFrame(
        {
            "rlnMicrographMovieName": [r["movie"] for r in records],
            "rlnTomoNominalStageTiltAngle": [r["nominal_tilt_deg"] for r in records],
            "rlnTomoXTilt": [r["x_tilt_deg"] for r in records],
            "rlnTomoYTilt": [r["y_tilt_deg"] for r in records],
            "rlnTomoZRot": [r["z_rot_deg"] for r in records],
            "rlnTomoXShiftAngst": [r["x_shift_A"] for r in records],
            "rlnTomoYShiftAngst": [r["y_shift_A"] for r in records],
            "rlnDefocusU": [r["defocus_u_A"] for r in records],
            "rlnDefocusV": [r["defocus_v_A"] for r in records],
            "rlnDefocusAngle": [r["defocus_angle_deg"] for r in records],
            "rlnMicrographPreExposure": [r["accumulated_dose"] for r in records],
            "rlnMicrographDoseRate": [r["dose"] for r in records],
            "rlnTomoAcquisitionOrder": [r["acquisition_order"] for r in records],
        }
    )


def _jsonable(x: Any) -> Any:
    if isinstance(x, dict):
        return {k: _jsonable(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_jsonable(v) for v in x]
    if isinstance(x, np.generic):
        return x.item()
    if isinstance(x, np.ndarray):
        return x.tolist()
    return x


def write_truth(folder: Path, truth: dict, series: str) -> tuple[Path, Path]:
    """Write truth.json and tilts.star into ``folder``; returns their paths."""
    folder.mkdir(parents=True, exist_ok=True)
    json_path = folder / "truth.json"
    json_path.write_text(json.dumps(_jsonable(truth), indent=1))
    star_path = folder / "tilts.star"
    starfile.write({series: tilts_table(truth["tilts"])}, star_path, overwrite=True)
    return json_path, star_path


def read_truth(path: str | Path) -> dict:
    """Load a truth.json (raises naming the file when it is not a tomoforge truth)."""
    data = json.loads(Path(path).read_text())
    if data.get("format") != FORMAT:
        raise ValueError(f"{path}: not a tomoforge simulation truth (format {data.get('format')!r})")
    return data
