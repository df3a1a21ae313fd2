"""Where template matching looks, per location: gold beads of a landmark model (no pick near them) and
per-location cones around the normals of a coordinate set (membrane proteins).

The protocol puts what the task needs into the job (``GoldBeads``, ``LocalNormals``); the task turns them into
voxels of its tomogram with the functions below (numpy and scipy imported inside them).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import numpy as np


@dataclass(frozen=True, kw_only=True)
class GoldBeads:
    """A landmark model of the tomogram's tilt series and that series' projection model (its views in the
    order of ``orders``): the landmark table, its pixel size (Å), the bead diameter (Å), and per view the
    acquisition order, YTilt, ZRot, XTilt (°) and shift (Å)."""

    landmarks_file: str
    pixel_size_A: float
    diameter_A: float
    orders: tuple[int, ...]
    tilt_deg: tuple[float, ...]
    z_rot_deg: tuple[float, ...]
    x_tilt_deg: tuple[float, ...]
    shift_A: tuple[tuple[float, float], ...]


@dataclass(frozen=True, kw_only=True)
class LocalNormals:
    """Points (Å from the tomogram's centre, x, y, z) with the normal there (x, y, z): each location searches
    the rotations whose z axis lies within the cone of its nearest point's normal, none farther than
    ``max_distance_A`` (None: everywhere)."""

    points_A: tuple[tuple[float, float, float], ...]
    normals: tuple[tuple[float, float, float], ...]
    max_distance_A: float | None = None


def bead_voxels(
    beads: GoldBeads, origin_A: tuple[float, float, float], voxel_A: float, shape: tuple[int, ...]
) -> np.ndarray:
    """The beads' centres (k, 3) as (z, y, x) voxels of the tomogram: triangulated from their tracks."""
    import numpy as np

    from tomoforge.methods.align.projection_model import ProjectionModel
    from tomoforge.methods.picking.gold import exclusion_points_zyx, triangulate
    from tomoforge.protocols.align.landmarks import read_landmarks

    model = ProjectionModel(beads.tilt_deg, beads.z_rot_deg, np.array(beads.shift_A), beads.x_tilt_deg)
    tracks_A = read_landmarks(beads.landmarks_file, list(beads.orders)) * beads.pixel_size_A
    centres = triangulate(model.matrices(), model.shift_A, tracks_A)
    return exclusion_points_zyx(centres, origin_A, voxel_A, (int(shape[0]), int(shape[1]), int(shape[2])))


def location_cones(
    local: LocalNormals, rotations: np.ndarray, cone_deg: float, voxel_A: float, shape: tuple[int, ...]
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(rotations kept, allowed (r, g), group of each voxel (z, y, x), −1 not searched) for ``match_template``."""
    import numpy as np

    from tomoforge.methods.picking.angles import nearest_point_map, per_location_cones

    kept, allowed, group = per_location_cones(rotations, np.array(local.normals), cone_deg)
    centre = np.array(shape) // 2
    points_zyx = np.array(local.points_A, dtype=np.float64).reshape(-1, 3)[:, ::-1] / voxel_A + centre
    limit = None if local.max_distance_A is None else local.max_distance_A / voxel_A
    nearest = nearest_point_map(points_zyx, (int(shape[0]), int(shape[1]), int(shape[2])), limit)
    labels = np.where(nearest >= 0, group[np.clip(nearest, 0, None)], -1)
    return kept, allowed, labels
