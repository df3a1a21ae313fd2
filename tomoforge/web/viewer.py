"""The tilt-series viewer: views in tilt order, each a web image binned on the fly, and "save" as a new
``exclude-views`` run (the viewer never edits the series it shows)."""

from __future__ import annotations

import io
import struct
import zlib
from typing import Any, TypeVar

import numpy as np
from pydantic import BaseModel

from tomoforge.engine import Project
from tomoforge.errors import UserError
from tomoforge.model.tilt_series import TiltSeries
from tomoforge.web.actions import Launcher, create_run

ItemT = TypeVar("ItemT", bound=BaseModel)
FORMATS = {"png": "image/png", "jpg": "image/jpeg"}
MAX_BIN = 32


class ViewerError(UserError):
    """A request the viewer cannot answer (the message says why)."""


def item_of(project: Project, run_id: int, output: str, key: str, cls: type[ItemT]) -> ItemT:
    """Item ``key`` of output ``RUN.OUTPUT``, which must hold ``cls`` items."""
    item_set = project.output_set(run_id, output)
    if not issubclass(item_set.item_class, cls):
        raise ViewerError(f"{run_id}.{output} holds {item_set.item_class.__name__}, not {cls.__name__}")
    try:
        item = item_set.get(key)
    except KeyError as exc:
        raise ViewerError(str(exc.args[0])) from None
    assert isinstance(item, cls)
    return item


def heading(project: Project, run_id: int, output: str, name: str) -> dict[str, Any]:
    """What every viewer's answer starts with: where the item is, and the other items of its set."""
    return {"run": run_id, "output": output, "name": name, "series": project.output_set(run_id, output).keys()}


def tilt_series(project: Project, run_id: int, output: str, key: str) -> TiltSeries:
    return item_of(project, run_id, output, key, TiltSeries)


def series_views(project: Project, run_id: int, output: str, key: str) -> dict[str, Any]:
    """A tilt series' views in tilt order: acquisition order, tilt, dose, defocus, alignment, exclusion."""
    ts = tilt_series(project, run_id, output, key)
    views = sorted(ts.tilt_images, key=lambda t: t.tilt_angle_deg)
    return {
        **heading(project, run_id, output, ts.name),
        "pixel_size_A": ts.acquisition.pixel_size_A,
        "views": [
            {
                "acquisition_order": t.acquisition_order,
                "tilt_angle_deg": t.tilt_angle_deg,
                "accumulated_dose_e_A2": t.accumulated_dose_e_A2,
                "nominal_defocus_A": t.nominal_defocus_A,
                "excluded": t.excluded,
                "x_shift_A": t.x_shift_A,
                "y_shift_A": t.y_shift_A,
                "z_rot_deg": t.z_rot_deg,
                "y_tilt_deg": t.y_tilt_deg,
            }
            for t in views
        ],
    }


def bin_image(image: np.ndarray, factor: int) -> np.ndarray:
    """Mean over ``factor`` × ``factor`` blocks (the edge rows and columns that do not fill a block are dropped)."""
    if factor <= 1:
        return image
    ny, nx = (image.shape[0] // factor) * factor, (image.shape[1] // factor) * factor
    return image[:ny, :nx].reshape(ny // factor, factor, nx // factor, factor).mean(axis=(1, 3))


def to_uint8(image: np.ndarray, percentiles: tuple[float, float] = (0.5, 99.5)) -> np.ndarray:
    """Grey levels from the low to the high percentile (of a sample of the pixels) over 0..255."""
    step = max(1, int(np.sqrt(image.size / 65536)))
    low, high = (float(v) for v in np.percentile(image[::step, ::step], percentiles))
    scale = 255.0 / (high - low) if high > low else 0.0
    out = np.subtract(image, low, dtype=np.float32)  # Python floats keep float32 (no float64 copy)
    np.multiply(out, scale, out=out)
    np.clip(out, 0, 255, out=out)
    return out.astype(np.uint8)


def png_bytes(image: np.ndarray) -> bytes:
    """An 8-bit greyscale PNG of a (ny, nx) uint8 image: rows unfiltered, zlib level 0 (stored). Noise-dominated
    micrographs barely compress, and this takes ~1 ms for 1024² where a compressing encoder takes ~50 ms."""
    ny, nx = image.shape
    rows = np.zeros((ny, nx + 1), np.uint8)  # each row starts with its filter type: 0 (none)
    rows[:, 1:] = image

    def chunk(tag: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + tag + body + struct.pack(">I", zlib.crc32(tag + body))

    header = struct.pack(">IIBBBBB", nx, ny, 8, 0, 0, 0, 0)  # 8 bits, greyscale, deflate, no filter, no interlace
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(rows.tobytes(), 0))
        + chunk(b"IEND", b"")
    )


def encode(image: np.ndarray, fmt: str, percentiles: tuple[float, float] = (0.5, 99.5)) -> bytes:
    grey = to_uint8(image, percentiles)
    if fmt == "png":
        return png_bytes(grey)
    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(grey, mode="L").save(buffer, "JPEG", quality=90)
    return buffer.getvalue()


def view_image(project: Project, run_id: int, output: str, key: str, order: int, fmt: str, factor: int = 4) -> bytes:
    """The view of acquisition order ``order`` as a PNG or JPEG, binned by ``factor``."""
    from tomoforge.io.mrc import read_mrc_section

    if fmt not in FORMATS:
        raise ViewerError(f"image format {fmt!r}: expected {' or '.join(FORMATS)}")
    if not 1 <= factor <= MAX_BIN:
        raise ViewerError(f"bin {factor}: expected 1 to {MAX_BIN}")
    ts = tilt_series(project, run_id, output, key)
    views = {t.acquisition_order: t for t in ts.tilt_images}
    if order not in views:
        raise ViewerError(f"{ts.name} has no view of acquisition order {order} (it has {len(views)} views)")
    view = views[order]
    if not view.file:
        raise ViewerError(f"{ts.name} view {order} has no image file")
    image = read_mrc_section(project.absolute(view.file), view.index)
    return encode(bin_image(image, factor), fmt)


def save_exclusions(
    project: Project,
    run_id: int,
    output: str,
    excluded: dict[str, list[int]],
    launch: Launcher,
    protocol: str = "exclude-views",
    input_name: str = "tilt_series",
    params: dict[str, Any] | None = None,
) -> list[int]:
    """New ``protocol`` runs (``exclude-views``, ``exclude-ctfs``) that give the listed items exactly these
    excluded views (``restore`` first clears the input's exclusions, then ``acquisition_orders`` are excluded).
    Items sharing one list share a run; the others get one each, through a filter on the name. The runs are
    started as 'run now' starts them."""
    names = project.output_set(run_id, output).keys()
    unknown = sorted(set(excluded) - set(names))
    if unknown:
        raise ViewerError(f"{run_id}.{output} has no item {', '.join(map(repr, unknown))}")
    groups: dict[tuple[int, ...], list[str]] = {}
    for name, orders in excluded.items():
        groups.setdefault(tuple(sorted({int(o) for o in orders})), []).append(name)
    runs = []
    for group, members in groups.items():
        every = len(members) == len(names)
        where = "" if every else "[name in (" + ", ".join("'" + n.replace("'", "''") + "'" for n in members) + ")]"
        form = {
            "protocol": protocol,
            "params": {**(params or {}), "acquisition_orders": list(group), "restore": True},
            "inputs": {input_name: f"{run_id}.{output}{where}"},
            "label": "viewer: " + ", ".join(members)[:60],
            "start": "run",
        }
        runs.append(create_run(project, form, launch))
    return runs
