"""The tomogram viewer: XY, XZ and YZ slices as web images, and the coordinates of any set near a slice."""

from __future__ import annotations

import time
from typing import Any

import numpy as np

from tomoforge.engine import Project
from tomoforge.model.coordinates import Coordinate3D
from tomoforge.model.tomogram import Tomogram
from tomoforge.web.actions import Launcher, create_run
from tomoforge.web.viewer import FORMATS, MAX_BIN, ViewerError, bin_image, encode, heading, item_of

AXES = {"xy": 0, "xz": 1, "yz": 2}  # the array axis (z, y, x) a slice is taken across


def tomogram(project: Project, run_id: int, output: str, key: str) -> Tomogram:
    return item_of(project, run_id, output, key, Tomogram)


def coordinate_sets(project: Project, name: str) -> list[dict[str, Any]]:
    """The project's coordinate sets (any output of Coordinate3D or a subclass) holding points in tomogram ``name``."""
    out = []
    for item_set in (s for row in project.runs() for s in project.output_sets(row["id"])):
        if issubclass(item_set.item_class, Coordinate3D):
            count = len(item_set.subset(f"tomogram = '{name.replace(chr(39), chr(39) * 2)}'"))
            if count:
                out.append(
                    {"set": f"{item_set.run_id}.{item_set.name}", "kind": item_set.item_class.__name__, "count": count}
                )
    return out


def tomogram_info(project: Project, run_id: int, output: str, key: str) -> dict[str, Any]:
    t = tomogram(project, run_id, output, key)
    return {
        **heading(project, run_id, output, t.name),
        "size_xyz": list(t.size_xyz),
        "pixel_size_A": t.pixel_size_A,
        "coordinate_sets": coordinate_sets(project, t.name),
    }


def slice_image(
    project: Project,
    run_id: int,
    output: str,
    key: str,
    axis: str,
    index: int,
    factor: int = 1,
    fmt: str = "png",
    percentiles: tuple[float, float] = (0.5, 99.5),
) -> bytes:
    """Slice ``index`` across ``axis`` (xy: a z section; xz: a y row; yz: an x column), binned by ``factor``,
    grey levels from the ``percentiles`` of its pixels, as PNG or JPEG (rows: y for xy, z for xz and yz)."""
    from tomoforge.io.mrc import open_mrc_mmap

    if axis not in AXES:
        raise ViewerError(f"axis {axis!r}: expected {', '.join(AXES)}")
    if fmt not in FORMATS:
        raise ViewerError(f"image format {fmt!r}: expected {' or '.join(FORMATS)}")
    if not 1 <= factor <= MAX_BIN:
        raise ViewerError(f"bin {factor}: expected 1 to {MAX_BIN}")
    low, high = percentiles
    if not 0 <= low < high <= 100:
        raise ViewerError(f"contrast {low}..{high}: expected percentiles with 0 ≤ low < high ≤ 100")
    t = tomogram(project, run_id, output, key)
    with open_mrc_mmap(project.absolute(t.file)) as data:
        volume = data if data.ndim == 3 else data[np.newaxis]
        size = volume.shape[AXES[axis]]
        if not 0 <= index < size:
            raise ViewerError(f"{t.name}: {axis} slice {index} out of range (0 to {size - 1})")
        section = np.take(volume, index, axis=AXES[axis]).astype(np.float32)
    return encode(bin_image(section, factor), fmt, percentiles)


def coordinates_near(
    project: Project, run_id: int, output: str, key: str, pointer: str, axis: str, index: int, half_width: float
) -> list[dict[str, Any]]:
    """The points of set ``pointer`` (``RUN.OUTPUT``) in this tomogram within ``half_width`` voxels of slice
    ``index``: their voxel position (x, y, z indices) and the direction of their Z axis."""
    from tomoforge.engine.project import InputPointer

    if axis not in AXES:
        raise ViewerError(f"axis {axis!r}: expected {', '.join(AXES)}")
    t = tomogram(project, run_id, output, key)
    where = InputPointer.parse(pointer)
    item_set = project.output_set(where.run_id, where.output).subset(
        f"tomogram = '{t.name.replace(chr(39), chr(39) * 2)}'"
    )
    if not issubclass(item_set.item_class, Coordinate3D):
        raise ViewerError(f"{pointer} holds {item_set.item_class.__name__}, not coordinates")
    columns = item_set.arrays("number", "x_A", "y_A", "z_A", "rotation")
    xyz_A = np.stack([columns["x_A"], columns["y_A"], columns["z_A"]], axis=1).reshape(-1, 3)
    # Å from the centre -> voxel indices (the centre is voxel N // 2, docs/conventions.md)
    voxel = xyz_A / t.pixel_size_A + np.asarray(t.size_xyz, float) // 2
    across = {"xy": 2, "xz": 1, "yz": 0}[axis]
    near = np.abs(voxel[:, across] - index) <= half_width
    rotations = np.asarray(columns["rotation"], float).reshape(-1, 3, 3)
    z_axis = rotations[:, :, 2]  # where each particle's Z axis points, in the tomogram's frame
    return [
        {"number": int(n), "x": float(v[0]), "y": float(v[1]), "z": float(v[2]), "direction": [float(d) for d in z]}
        for n, v, z in zip(np.asarray(columns["number"])[near], voxel[near], z_axis[near])
    ]


PICKS_FOLDER = "picks"


def save_picks(
    project: Project, run_id: int, output: str, points: dict[str, list[list[float]]], launch: Launcher
) -> int:
    """The points a user clicked, as a new coordinate set: written as x y z voxel text files (one per tomogram)
    in a new folder ``picks/<time>_<run>_<output>/`` of the project, and imported by a new ``import-coordinates``
    run (units: pixel) from the tomograms of ``RUN.OUTPUT``, started as 'run now' starts it."""
    names = set(project.output_set(run_id, output).keys())
    if not points or not all(isinstance(v, list) and v for v in points.values()):
        raise ViewerError("points: expected {tomogram name: [[x, y, z], ...]} with at least one point")
    for name, xyz in points.items():
        if name not in names or name.startswith(".") or "/" in name or "\\" in name:
            raise ViewerError(f"{run_id}.{output} has no tomogram {name!r}")
        t = tomogram(project, run_id, output, name)
        try:
            array = np.asarray(xyz, dtype=float)
        except (TypeError, ValueError):
            array = np.empty((0, 0))
        shaped = array.ndim == 2 and array.shape[1] == 3
        if not shaped or not ((array >= 0) & (array <= np.asarray(t.size_xyz, float))).all():
            raise ViewerError(f"{name}: points must be [x, y, z] voxels inside 0..{list(t.size_xyz)}")
    folder = (
        project.root / PICKS_FOLDER / f"{time.strftime('%Y%m%dT%H%M%S')}_{time.time_ns() % 10**9:09d}_{run_id}_{output}"
    )
    folder.mkdir(parents=True)
    for name, xyz in points.items():
        (folder / f"{name}.txt").write_text("".join(f"{x:.3f} {y:.3f} {z:.3f}\n" for x, y, z in xyz))
    form = {
        "protocol": "import-coordinates",
        "params": {"files_path": str(folder), "pattern": "*.txt", "units": "pixel"},
        "inputs": {"tomograms": f"{run_id}.{output}"},
        "label": "picked: " + ", ".join(points)[:60],
        "start": "run",
    }
    return create_run(project, form, launch)
