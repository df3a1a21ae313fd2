"""import-tilt-series-stack as runs: a stack with its .rawtlt, its FEI header or start/step; one image per
tilt named by a pattern; channels; placeholder pixel sizes; older headers; and montage mdocs refused."""

import shutil

import numpy as np
import pytest

from tests.io.test_mrc_headers import fei_records, with_extended_header
from tomoforge.engine import ExecutorConfig, ParamsError, execute_run
from tomoforge.io.imod import write_tlt
from tomoforge.io.mrc import write_mrc

SERIAL = ExecutorConfig(kind="serial")
ANGLES = np.arange(-60.0, 60.1, 3.0)
BASE = {"order": "dose-symmetric", "dose_per_tilt_e_A2": 3.0, "tilt_axis_angle_deg": 85.0}


def run(project, params):
    run_id = project.new_run("import-tilt-series-stack", params, {}, executor=SERIAL)
    return run_id, execute_run(project, run_id)


def imported(project, params):
    run_id, state = run(project, params)
    assert state == "finished", project.run(run_id)["error"]
    return run_id, project.output_set(run_id, "tilt_series")


def error_of(project, params):
    run_id, state = run(project, params)
    assert state == "failed"
    return project.run(run_id)["error"]


def stack(folder, name="TS_01.st", n=41, voxel=2.0):
    folder.mkdir(exist_ok=True)
    return write_mrc(folder / name, np.random.default_rng(0).random((n, 8, 8), dtype=np.float32), voxel)


def test_stack_with_rawtlt_in_tilt_order_gets_hagen_doses(project, tmp_path):
    folder = tmp_path / "in"
    st = stack(folder)
    write_tlt(folder / "TS_01.rawtlt", ANGLES)
    run_id, out = imported(project, {**BASE, "files_path": str(folder), "pattern": "*.st"})
    ts = out.get("TS_01")
    assert ts.acquisition.pixel_size_A == 2.0 and ts.acquisition.tilt_axis_angle_deg == 85.0
    by_angle = {t.tilt_angle_deg: t for t in ts.tilt_images}
    # 0, +3, −3, −6, +6, +9, …: −6° is the 4th exposed, +60° the 41st
    assert [by_angle[a].acquisition_order for a in (0.0, 3.0, -3.0, -6.0, 6.0, 60.0)] == [1, 2, 3, 4, 5, 41]
    assert by_angle[-6.0].accumulated_dose_e_A2 == pytest.approx(12.0) and by_angle[-6.0].index == 18
    assert ts.stack_file == str(st.resolve()) and ts.source_file.endswith("TS_01.rawtlt")


def test_file_order_and_bidirectional(project, tmp_path):
    folder = tmp_path / "in"
    stack(folder, "TS_02.mrc", n=5)
    write_tlt(folder / "TS_02.rawtlt", [0.0, 3.0, -3.0, -6.0, 6.0])  # sections in acquisition order
    _, out = imported(project, {**BASE, "files_path": str(folder), "order": "file"})
    assert [t.acquisition_order for t in out.get("TS_02").tilt_images] == [4, 3, 1, 2, 5]
    _, out = imported(
        project,
        {
            **BASE,
            "files_path": str(folder),
            "order": "bidirectional",
            "order_start_deg": 3,
            "first_direction": "negative",
        },
    )
    assert [t.acquisition_order for t in out.get("TS_02").tilt_images] == [4, 3, 2, 1, 5]


def test_angles_from_the_fei_header_and_from_start_step(project, tmp_path):
    folder = tmp_path / "in"
    folder.mkdir()
    tilts = np.array([-6.0, -3.0, 0.0, 3.0, 6.0])
    data = np.zeros((5, 8, 8), np.float32)
    with_extended_header(folder / "TS_03.mrc", data, 1.0, fei_records(768, tilts, 1.35e-10, "<"), b"FEI1")
    run_id, out = imported(project, {**BASE, "files_path": str(folder)})
    ts = out.get("TS_03")
    log = (project.run_dir(run_id) / "run.log").read_text()
    assert "pixel size 1.35 Å/px from the extended header" in log
    assert "TS_03: 5 tilts from -6° to 6° (TS_03.mrc), 1.35 Å/px, dose-symmetric order" in log
    assert [t.tilt_angle_deg for t in ts.tilt_images] == tilts.tolist()
    assert ts.acquisition.pixel_size_A == pytest.approx(1.35)  # the MRC header's 1 Å is a placeholder
    params = {
        **BASE,
        "files_path": str(folder),
        "tilt_angles": "start-step",
        "tilt_start_deg": 60,
        "tilt_step_deg": -30,
    }
    _, out = imported(project, params)
    assert [t.tilt_angle_deg for t in out.get("TS_03").tilt_images] == [-60.0, -30.0, 0.0, 30.0, 60.0]


def test_placeholder_pixel_size_and_missing_angles_are_named(project, tmp_path):
    folder = tmp_path / "in"
    stack(folder, "TS_04.mrc", n=3, voxel=1.0)
    write_tlt(folder / "TS_04.tlt", [-3.0, 0.0, 3.0])
    text = error_of(project, {**BASE, "files_path": str(folder)})
    assert "TS_04.mrc: the header's pixel size is 1 Å/px, a placeholder" in text and "pixel_size_A" in text
    _, out = imported(project, {**BASE, "files_path": str(folder), "pixel_size_A": 3.1})
    assert out.get("TS_04").acquisition.pixel_size_A == 3.1
    (folder / "TS_04.tlt").unlink()
    text = error_of(project, {**BASE, "files_path": str(folder), "pixel_size_A": 3.1})
    assert "TS_04.mrc: no tilt angles: no TS_04.rawtlt or .tlt beside it" in text
    write_tlt(folder / "TS_04.tlt", [-3.0, 0.0])
    assert "TS_04.tlt gives 2 tilt angles for the stack's 3 images" in error_of(
        project, {**BASE, "files_path": str(folder), "pixel_size_A": 3.1, "tilt_angles": "tlt"}
    )
    with pytest.raises(ParamsError, match="start-step needs tilt_start_deg"):
        project.new_run("import-tilt-series-stack", {**BASE, "files_path": str(folder), "tilt_angles": "start-step"})


def test_channels_sharing_tilt_angles_are_refused_or_one_is_imported(project, tmp_path):
    folder = tmp_path / "in"
    stack(folder, "STEM.mrc", n=6)
    write_tlt(folder / "STEM.rawtlt", [-3.0, -3.0, 0.0, 0.0, 3.0, 3.0])  # two detectors, interleaved
    text = error_of(project, {**BASE, "files_path": str(folder)})
    assert "STEM.mrc" in text and "-3° (2×), 0° (2×), 3° (2×)" in text and "not a tilt series" in text
    assert "channel = 1 to 2" in text
    _, out = imported(project, {**BASE, "files_path": str(folder), "channel": 2})
    assert [t.index for t in out.get("STEM").tilt_images] == [1, 3, 5]
    assert "channels (1 to 2)" in error_of(project, {**BASE, "files_path": str(folder), "channel": 3})


def test_one_image_per_tilt_named_by_a_pattern(project, tmp_path):
    folder = tmp_path / "tilts"
    folder.mkdir()
    for name, order, angle in [("A", 1, 0.0), ("A", 2, 3.0), ("A", 3, -3.0), ("B_x", 2, 10.0), ("B_x", 1, -10.0)]:
        write_mrc(folder / f"{name}_{order:03d}_{angle:.1f}.mrc", np.full((6, 6), order, np.float32), 2.7)
    (folder / "notes.txt").write_text("not an image")
    _, out = imported(project, {**BASE, "files_path": str(folder), "pattern": "{TS}_{TO}_{TA}.mrc", "order": "file"})
    a, b = out.get("A"), out.get("B_x")
    assert [(t.tilt_angle_deg, t.acquisition_order) for t in a.tilt_images] == [(-3.0, 3), (0.0, 1), (3.0, 2)]
    assert [(t.tilt_angle_deg, t.acquisition_order) for t in b.tilt_images] == [(-10.0, 1), (10.0, 2)]
    assert a.tilt_images[0].file.endswith("A_003_-3.0.mrc") and a.stack_file == ""
    assert a.acquisition.pixel_size_A == pytest.approx(2.7)
    only = tmp_path / "angles"
    only.mkdir()
    for angle in (-3.0, 0.0, 3.0):
        shutil.copy(folder / "A_001_0.0.mrc", only / f"tilt_{angle}.mrc")
    _, out = imported(project, {**BASE, "files_path": str(only), "pattern": "tilt_{TA}.mrc"})
    assert [t.acquisition_order for t in out.get("angles").tilt_images] == [3, 1, 2]
    with pytest.raises(ParamsError, match=r"order = file needs a \{TO\}"):
        project.new_run(
            "import-tilt-series-stack", {**BASE, "files_path": str(only), "pattern": "{TA}.mrc", "order": "file"}
        )


def test_older_header_is_imported_with_a_warning_in_the_run_log(project, tmp_path):
    folder = tmp_path / "in"
    st = stack(folder, "OLD.mrc", n=3, voxel=4.0)
    raw = bytearray(st.read_bytes())
    raw[208:216] = bytes(8)
    st.write_bytes(bytes(raw))
    write_tlt(folder / "OLD.rawtlt", [-3.0, 0.0, 3.0])
    run_id, out = imported(project, {**BASE, "files_path": str(folder)})
    assert out.get("OLD").acquisition.pixel_size_A == 4.0
    log = (project.run_dir(run_id) / "run.log").read_text()
    assert "WARNING:" in log and "OLD.mrc: no map ID 'MAP '" in log and "unknown machine stamp" in log


def test_a_montage_mdoc_is_refused_as_a_montage(project, hiv_dir):
    mdoc = hiv_dir / "TS_01.mrc.mdoc"
    mdoc.write_text("Montage = 1\n" + mdoc.read_text())
    run_id = project.new_run("import-tilt-series", {"files_path": str(hiv_dir)}, {}, executor=SERIAL)
    assert execute_run(project, run_id) == "failed"
    error = project.run(run_id)["error"]
    assert "TS_01.mrc.mdoc: a montage (line 1: Montage = 1)" in error and "not tilt images" in error
    mdoc.write_text(mdoc.read_text().replace("Montage = 1\n", "") + "\n[MontSection = 0]\nTiltAngle = 0\n")
    run_id = project.new_run("import-tilt-series", {"files_path": str(hiv_dir)}, {}, executor=SERIAL)
    assert execute_run(project, run_id) == "failed" and "[MontSection = i] sections" in project.run(run_id)["error"]
