"""The import protocols as runs: outputs, provenance, and failures that leave nothing behind."""

import shutil

import mrcfile
import numpy as np
import pytest

from tests.protocols.conftest import write_frames
from tomoforge.engine import ExecutorConfig, ParamsError, execute_run
from tomoforge.engine.provenance import format_provenance, provenance
from tomoforge.io.mrc import write_mrc

SERIAL = ExecutorConfig(kind="serial")


def run(project, protocol, params, inputs=None):
    run_id = project.new_run(protocol, params, inputs or {}, executor=SERIAL)
    return run_id, execute_run(project, run_id)


def test_import_tilt_series_run_and_the_provenance_of_a_tilt_image(project, hiv_dir):
    run_id, state = run(
        project,
        "import-tilt-series",
        {"files_path": str(hiv_dir), "pixel_size_A": 5.4, "voltage_kV": 300, "amplitude_contrast": 0.07},
    )
    assert state == "finished"
    ts = project.output_set(run_id, "tilt_series").get("TS_01")
    assert ts.n_images == 41 and ts.acquisition.amplitude_contrast == 0.07
    low = project.output_set(run_id, "tilt_series", "abs(tilt_angle_deg) <= 30.5").get("TS_01")
    assert len(low.tilt_images) == 21
    text = format_provenance(provenance(project, f"{run_id}.tilt_series/TS_01/1"))
    assert str(hiv_dir / "TS_01.mrc.mdoc") in text and f"{hiv_dir / 'TS_01.mrc'} [section 0]" in text


def test_one_bad_mdoc_fails_the_run_with_no_output_written(project, hiv_dir, data_file):
    text = (hiv_dir / "TS_01.mrc.mdoc").read_text()
    (hiv_dir / "TS_02.mrc.mdoc").write_text(text.replace("[ZValue = 40]", "[ZValue = 41]"))
    run_id, state = run(project, "import-tilt-series", {"files_path": str(hiv_dir)})
    assert state == "failed"
    assert "1 of 2 items failed" in project.run(run_id)["error"]
    assert "TS_02.mrc.mdoc" in project.run(run_id)["error"] and "ZValue = 40" in project.run(run_id)["error"]
    assert project.output_sets(run_id) == []


def test_no_matching_files_and_bad_params_are_named(project, tmp_path):
    run_id, state = run(project, "import-tilt-series", {"files_path": str(tmp_path), "pattern": "*.mdoc"})
    assert state == "failed" and "no file in" in project.run(run_id)["error"]
    with pytest.raises(
        ParamsError, match=r"pixel_size_A: 0 must be a finite number from 0.1 to 100 Å/px \(pixel size\)"
    ):
        project.new_run("import-tilt-series", {"files_path": str(tmp_path), "pixel_size_A": 0})
    with pytest.raises(ParamsError, match="gain_file: .* does not exist"):
        project.new_run("import-tilt-series-movies", {"files_path": str(tmp_path), "gain_file": "/no/gain.mrc"})


def test_import_movies_with_a_gain_reference(project, hiv_dir):
    write_frames(hiv_dir / "TS_01.mrc.mdoc", hiv_dir / "frames")
    gain = write_mrc(hiv_dir / "gain.mrc", np.ones((4, 4), np.float32), 5.4)
    run_id, state = run(
        project,
        "import-tilt-series-movies",
        {"files_path": str(hiv_dir), "gain_file": str(gain), "dose_per_tilt_e_A2": 3.2},
    )
    assert state == "finished", project.run(run_id)["error"]
    ts = project.output_set(run_id, "tilt_series").get("TS_01")
    assert ts.acquisition.gain_file == str(gain.resolve())
    assert all(t.n_frames == 8 and t.frame_dose_e_A2 == pytest.approx(0.4) for t in ts.tilt_images)


def write_tomogram(path, size_xyz, voxel):
    nx, ny, nz = size_xyz
    write_mrc(path, np.zeros((nz, ny, nx), np.int8), voxel)


def test_import_tomograms_reads_size_and_voxel_size(project, tmp_path):
    folder = tmp_path / "tomos"
    folder.mkdir()
    write_tomogram(folder / "TS_01.mrc", (84, 136, 44), 10.52)
    with mrcfile.new(folder / "unset.mrc") as mrc:  # voxel size left at 0 in the header
        mrc.set_data(np.zeros((4, 5, 6), np.int8))
    run_id, state = run(project, "import-tomograms", {"files_path": str(folder), "pattern": "TS_*.mrc"})
    assert state == "finished"
    tomo = project.output_set(run_id, "tomograms").get("TS_01")
    assert tomo.size_xyz == (84, 136, 44) and tomo.pixel_size_A == pytest.approx(10.52, abs=1e-4)
    run_id, state = run(project, "import-tomograms", {"files_path": str(folder), "pattern": "unset.mrc"})
    assert (
        state == "failed"
        and "unset.mrc: header has no voxel size (cella / mx is 0); give pixel_size_A" in project.run(run_id)["error"]
    )
    run_id, state = run(
        project, "import-tomograms", {"files_path": str(folder), "pattern": "unset.mrc", "pixel_size_A": 7.0}
    )
    assert state == "finished"


@pytest.fixture
def tomograms_run(project, tmp_path):
    folder = tmp_path / "tomos"
    folder.mkdir()
    for name in ("TS_01", "TS_02"):
        write_tomogram(folder / f"{name}.mrc", (84, 136, 44), 10.52)
    run_id, state = run(project, "import-tomograms", {"files_path": str(folder)})
    assert state == "finished"
    return run_id


def test_import_relion5_particles(project, data_file, tomograms_run, tmp_path):
    folder = tmp_path / "picks"
    folder.mkdir()
    shutil.copy(data_file("relion5/cylindra_test_jobs/Picks/job_picks/particles.star"), folder)
    run_id, state = run(
        project, "import-coordinates", {"files_path": str(folder)}, {"tomograms": f"{tomograms_run}.tomograms"}
    )
    assert state == "finished", project.run(run_id)["error"]
    coords = list(project.output_set(run_id, "coordinates"))
    assert [c.tomogram for c in coords] == ["TS_01"] * 3 + ["TS_02"] * 2
    assert (coords[0].x_A, coords[0].y_A, coords[0].z_A) == pytest.approx((-176.94, 765.48005, 11.16))
    assert [c.number for c in coords] == list(range(5))
    only_02 = project.output_set(run_id, "coordinates", "tomogram = 'TS_02'")
    assert len(only_02) == 2


def test_import_pixel_text_coordinates_are_centred(project, tomograms_run, tmp_path):
    folder = tmp_path / "picks"
    folder.mkdir()
    (folder / "TS_02.txt").write_text("# x y z\n42 68 22\n0 0 0\n")
    run_id, state = run(
        project,
        "import-coordinates",
        {"files_path": str(folder), "pattern": "*.txt", "units": "pixel"},
        {"tomograms": f"{tomograms_run}.tomograms"},
    )
    assert state == "finished", project.run(run_id)["error"]
    coords = list(project.output_set(run_id, "coordinates"))
    assert (coords[0].x_A, coords[0].y_A, coords[0].z_A) == pytest.approx((0, 0, 0), abs=1e-3)  # the centre
    assert (coords[1].x_A, coords[1].y_A, coords[1].z_A) == pytest.approx(
        (-42 * 10.52, -68 * 10.52, -22 * 10.52), rel=1e-5
    )
    assert coords[0].tomogram == "TS_02" and not coords[0].has_orientation


def test_import_dynamo_table_with_orientations(project, data_file, tomograms_run, tmp_path):
    from tomoforge.io.dynamo import read_tbl, tbl_positions_A, tbl_rotations

    folder = tmp_path / "picks"
    folder.mkdir()
    shutil.copy(data_file("dynamo/dynamotable/t_double.tbl"), folder / "TS_01.tbl")
    run_id, state = run(
        project,
        "import-coordinates",
        {"files_path": str(folder), "pattern": "*.tbl"},
        {"tomograms": f"{tomograms_run}.tomograms"},
    )
    assert state == "finished", project.run(run_id)["error"]
    coords = list(project.output_set(run_id, "coordinates"))
    table = read_tbl(folder / "TS_01.tbl")
    assert len(coords) == len(table)
    expected = tbl_positions_A(table, 10.52, (84, 136, 44))
    assert np.allclose([[c.x_A, c.y_A, c.z_A] for c in coords], expected, atol=1e-3)
    assert np.allclose(np.array(coords[2].rotation), tbl_rotations(table)[2], atol=1e-6)
    assert coords[2].has_orientation


@pytest.mark.parametrize(
    "field, value, rule",
    [
        ("pixel_size_A", "inf", r"pixel_size_A: 'inf' must be a finite number from 0.1 to 100 Å/px \(pixel size\)"),
        ("pixel_size_A", "nan", r"pixel_size_A: 'nan' must be a finite number from 0.1 to 100 Å/px"),
        ("dose_per_tilt_e_A2", "1e30", r"dose_per_tilt_e_A2: '1e30' must be a finite number from 0 to 1000 e/Å²"),
        ("voltage_kV", 1e308, r"voltage_kV: 1e\+308 must be a finite number from 30 to 1000 kV"),
        ("amplitude_contrast", "-inf", r"amplitude_contrast: '-inf' must be a finite number ≥ 0 and < 1"),
    ],
)
def test_inf_nan_and_absurd_params_are_refused_with_the_range(project, tmp_path, field, value, rule):
    """What ``--set pixel_size_A=inf`` passes (a string) is refused, not stored as null."""
    with pytest.raises(ParamsError, match=rule):
        project.new_run("import-tilt-series", {"files_path": str(tmp_path), field: value})
    with pytest.raises(ParamsError, match=rule):
        project.new_run("import-tilt-series-movies", {"files_path": str(tmp_path), field: value})
    assert project.runs() == []


def test_a_dynamo_table_with_a_nan_position_is_named(project, data_file, tomograms_run, tmp_path):
    folder = tmp_path / "picks"
    folder.mkdir()
    lines = data_file("dynamo/dynamotable/t_double.tbl").read_text().splitlines()
    tokens = lines[1].split()
    tokens[23] = "NaN"  # column 24: x
    lines[1] = " ".join(tokens)
    (folder / "TS_01.tbl").write_text("\n".join(lines) + "\n")
    run_id, state = run(
        project,
        "import-coordinates",
        {"files_path": str(folder), "pattern": "*.tbl"},
        {"tomograms": f"{tomograms_run}.tomograms"},
    )
    assert state == "failed"
    assert f"{folder / 'TS_01.tbl'}: particle 2 (row 2 of its table): position [nan" in project.run(run_id)["error"]


def test_a_tomogram_with_an_absurd_voxel_size_is_named(project, tmp_path):
    folder = tmp_path / "tomos"
    folder.mkdir()
    write_tomogram(folder / "huge.mrc", (8, 8, 4), 5000.0)
    run_id, state = run(project, "import-tomograms", {"files_path": str(folder)})
    assert state == "failed"
    assert "huge.mrc: voxel size 5000 must be a finite number from 0.1 to 1000 Å/voxel" in project.run(run_id)["error"]
