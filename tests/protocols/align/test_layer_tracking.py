"""patch-tracking's layer tracks as a run on a series that the project's simulator did not make (issue 16's
marker-free floors): ``foreign_tilts`` (torch-ctf, blobs in an 1100 Å slab, a fresh ice texture per tilt, Poisson
noise at 3 e/Å², tilt axis 85°, tilt offset 0.8°, shifts drifting with |tilt|), a smaller field than the
benchmark's (SIZE² at 8 Å/px, 41 tilts ±60°), written as a SerialEM stack with its mdoc (axis given 1.5° off),
imported, coarse-aligned, then patch-tracking with its defaults at binning 1. Errors against the truth in px of
the issue's 2 Å images over a 5 × 5 × 3 grid of specimen points (±400 Å in height), the free translation and
rotation about the tilt axis removed, as benchmarks/align_foreign.py scores them. Measured (seed 1): coarse
3.18 px RMS, patch-tracking 0.81 px (worst view 1.70; 0.85 and 1.66 with 2 views left out of the axis rounds'
layers instead of 8), tilt axis 84.95°, tilt offset 0.87° (with 2); seed 0 of the same
setup gave 0.99 px in the method's own run (a coarse alignment 8 px off at this field size), the benchmark's
256² seeds are in benchmarks/RESULTS.md.
"""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("torch_ctf", reason="the foreign CTF needs teamtomo's torch-ctf (the test extra)")

from tests.methods.align.foreign_tilts import TiltSetup, make_tilts  # noqa: E402
from tests.protocols.align.test_align import model_of, run  # noqa: E402
from tomoforge.engine import Project  # noqa: E402
from tomoforge.io.mdoc import Mdoc, write_mdoc  # noqa: E402
from tomoforge.io.mrc import write_mrc  # noqa: E402
from tomoforge.methods.align.consensus import point_grid  # noqa: E402
from tomoforge.methods.align.projection_model import reprojection_difference  # noqa: E402

pytestmark = pytest.mark.slow  # import, coarse-alignment and patch-tracking of 41 views of 192²

SETUP = TiltSetup(size=192, seed=1)
FULL_PX = 2.0  # the pixel size


def write_series(folder, images: np.ndarray, nominal: np.ndarray, s: TiltSetup) -> None:
    """A SerialEM-like stack in acquisition order and its mdoc (nominal tilts, the axis given 1.5° off)."""
    folder.mkdir()
    write_mrc(folder / "TS_01.mrc", images, s.pixel_size_A)
    axis = s.axis_deg + 1.5
    sections = [
        {
            "TiltAngle": float(t),
            "ExposureDose": s.dose,
            "PixelSpacing": s.pixel_size_A,
            "Defocus": -s.defocus_um,
            "RotationAngle": axis,
            "Magnification": 64000,
        }
        for t in nominal
    ]
    mdoc = Mdoc(
        path=None,
        header={"PixelSpacing": s.pixel_size_A, "Voltage": 300, "ImageFile": "TS_01.mrc"},
        titles=[
            "SerialEM: foreign-like test series",
            f"    Tilt axis angle = {axis:.1f}, binning = 1  spot = 8  camera = 0",
        ],
        sections=sections,
    )
    write_mdoc(mdoc, folder / "TS_01.mrc.mdoc")


@pytest.fixture(scope="module")
def aligned(tmp_path_factory):
    root = tmp_path_factory.mktemp("layers")
    d = make_tilts(SETUP)
    write_series(root / "ts", d.images, d.nominal_deg, SETUP)
    project = Project.create(root / "project")
    imp = run(project, "import-tilt-series", {"files_path": str(root / "ts")})
    coarse = run(project, "coarse-alignment", {"binning": 1}, {"tilt_series": f"{imp}.tilt_series"})
    layers = run(project, "patch-tracking", {"binning": 1}, {"tilt_series": f"{coarse}.tilt_series"})
    yield project, d, {"coarse": coarse, "layers": layers}
    project.close()


def errors_px(ts, d) -> np.ndarray:
    """(n,) RMS error per view, px of 2 Å, over the grid of specimen points."""
    grid = point_grid(0.35 * SETUP.size * SETUP.pixel_size_A, 400.0)
    views = sorted(ts.tilt_images, key=lambda t: t.acquisition_order)
    assert [round(t.tilt_angle_deg) for t in views] == [round(t) for t in d.nominal_deg]
    dd = reprojection_difference(model_of(ts), d.truth, grid, remove_tilt_offset=True) / FULL_PX
    return np.sqrt(np.mean(np.sum(dd**2, axis=-1), axis=1))


def test_patch_tracking_by_layer_tracks_meets_the_marker_free_floors(aligned):
    project, d, runs = aligned
    ts = project.output_set(runs["layers"], "tilt_series").get("TS_01")
    coarse = project.output_set(runs["coarse"], "tilt_series").get("TS_01")
    err, before = errors_px(ts, d), errors_px(coarse, d)
    axis = np.mean([t.z_rot_deg for t in ts.tilt_images])
    offset = np.mean([t.y_tilt_deg - t.tilt_angle_deg for t in ts.tilt_images])
    print(
        f"coarse {np.sqrt(np.mean(before**2)):.2f} px, layers {np.sqrt(np.mean(err**2)):.2f} px (worst {err.max():.2f})"
    )
    # the floors: ≤ 1.0 px RMS, worst view ≤ 3 px, tilt axis and tilt offset within 0.3°
    assert np.sqrt(np.mean(err**2)) <= 1.0 and err.max() <= 3.0, np.round(err, 2)
    assert abs(axis - SETUP.axis_deg) <= 0.3, axis
    assert abs(offset - SETUP.offset_deg) <= 0.3, offset
    assert np.sqrt(np.mean(err**2)) < np.sqrt(np.mean(before**2))


def test_the_log_reports_the_axis_offset_slab_and_residual_per_view(aligned):
    project, d, runs = aligned
    log = next((project.root / "runs").glob(f"{runs['layers']:04d}_*/run.log")).read_text()
    assert "layer tracks:" in log and "tilt offset" in log and "residual per view" in log, log
    # every view's residual is in the log and in the table beside the run's outputs
    assert log.count("°: ") >= len(d.nominal_deg), log
    table = next((project.root / "runs").glob(f"{runs['layers']:04d}_*/out/TS_01_view_residuals.tsv"))
    rows = table.read_text().splitlines()
    assert len(rows) == len(d.nominal_deg) + 1
    residual = np.array([float(r.split("\t")[2]) for r in rows[1:]])
    # the landmarks' misfit per view (Å): positive, below the 3 px of 2 Å the floor allows for a view's error
    assert np.all(residual > 0) and np.all(residual < 40.0), residual
