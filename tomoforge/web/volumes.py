"""The tomogram and map viewers: XY, XZ and YZ slices of a tomogram or of a map (or its half maps, its
mask) as web images, the coordinates of any set near a slice, and a map's FSC as plot data."""

from __future__ import annotations

import time
from typing import Any

import numpy as np

from tomoforge.engine import Project
from tomoforge.model.coordinates import Coordinate3D
from tomoforge.model.tomogram import Tomogram
from tomoforge.model.volume import Volume
from tomoforge.web.actions import Launcher, create_run
from tomoforge.web.viewer import FORMATS, MAX_BIN, ViewerError, bin_image, encode, heading, item_of

AXES = {"xy": 0, "xz": 1, "yz": 2}  # the array axis (z, y, x) a slice is taken across


def tomogram(project: Project, run_id: int, output: str, key: str) -> Tomogram:
    return item_of(project, run_id, output, key, Tomogram)


MAP_FILES = {"map": "file", "half1": "half1_file", "half2": "half2_file", "mask": "mask_file"}


def volume_file(project: Project, run_id: int, output: str, key: str, which: str = "map") -> tuple[str, str]:
    """The name and file of a tomogram, or of a map's ``which`` volume (map, half1, half2, mask)."""
    item_class = project.output_set(run_id, output).item_class
    if issubclass(item_class, Volume):
        volume = item_of(project, run_id, output, key, Volume)
        if which not in MAP_FILES or not getattr(volume, MAP_FILES[which]):
            raise ViewerError(f"{volume.name}: no {which!r} volume (it has {', '.join(map_files(volume))})")
        return volume.name, str(getattr(volume, MAP_FILES[which]))
    if which != "map":
        raise ViewerError(f"{run_id}.{output} holds tomograms: no {which!r} volume")
    t = tomogram(project, run_id, output, key)
    return t.name, t.file


def map_files(volume: Volume) -> list[str]:
    return [which for which, field in MAP_FILES.items() if getattr(volume, field)]


def map_info(project: Project, run_id: int, output: str, key: str) -> dict[str, Any]:
    """A map's size, voxel size, symmetry, which volumes it has, and its FSC (plot data) and resolution."""
    from tomoforge.io.mrc import mrc_shape
    from tomoforge.io.plot_data import LinePlot, Marker, Series

    volume = item_of(project, run_id, output, key, Volume)
    shape = mrc_shape(project.absolute(volume.file))
    fsc = None
    resolution = volume.fsc.resolution_A() if volume.fsc else None
    if volume.fsc is not None:
        markers = [Marker(value=0.143, label="0.143", axis="y")]
        if resolution:
            markers.append(Marker(value=1.0 / resolution, label=f"{resolution:.2f} Å"))
        fsc = LinePlot(
            title=f"{volume.name}: {volume.fsc.label}",
            x_label="spatial frequency (1/Å)",
            y_label="FSC",
            series=[Series(name=volume.fsc.label, x=volume.fsc.frequency_per_A, y=volume.fsc.correlation)],
            markers=markers,
        ).model_dump()
    return {
        **heading(project, run_id, output, volume.name),
        "size_xyz": [int(n) for n in shape[::-1]],
        "pixel_size_A": volume.pixel_size_A,
        "symmetry": volume.symmetry,
        "maps": map_files(volume),
        "fsc": fsc,
        "resolution_A": resolution,
    }


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
    which: str = "map",
) -> bytes:
    """Slice ``index`` across ``axis`` (xy: a z section; xz: a y row; yz: an x column) of a tomogram or of a
    map's ``which`` volume, binned by ``factor``, grey levels from the ``percentiles`` of its pixels, as PNG or
    JPEG (rows: y for xy, z for xz and yz)."""
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
    name, file = volume_file(project, run_id, output, key, which)
    with open_mrc_mmap(project.absolute(file)) as data:
        volume = data if data.ndim == 3 else data[np.newaxis]
        size = volume.shape[AXES[axis]]
        if not 0 <= index < size:
            raise ViewerError(f"{name}: {axis} slice {index} out of range (0 to {size - 1})")
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
