"""The reference protocols as runs: import-volumes on the real maps in data/maps, resize-volume, create-mask;
refusals of unset voxel sizes, bad symmetries and mismatched half maps."""

from __future__ import annotations

import mrcfile
import numpy as np
import pytest
import torch
from scipy.ndimage import map_coordinates

from tests.methods.volumes.test_masks import soft_volume
from tests.protocols.conftest import project  # noqa: F401 - the fixture
from tests.protocols.preprocess.test_motion import run
from tomoforge.engine import ParamsError
from tomoforge.io.mrc import read_mrc, read_voxel_size, write_mrc
from tomoforge.methods.volumes.resize import centre_of_mass

CHLAMY = "maps/chlamy_EMPIAR-11830_STA"


def imported(project, folder, **params) -> int:
    run_id, state = run(project, "import-volumes", {"files_path": str(folder), **params})
    assert state == "finished", project.run(run_id)["error"]
    return run_id


def test_import_the_real_maps_with_their_header_voxel_size_and_symmetry(project, data_file):
    folder = data_file(CHLAMY)
    run_id = imported(project, folder)
    volumes = {v.name: v for v in project.output_set(run_id, "volumes")}
    assert sorted(volumes) == ["atpase", "hsp60", "putative_prohibitin"]
    assert all(v.pixel_size_A == pytest.approx(7.84, abs=1e-5) for v in volumes.values())  # SOURCES.md: 7.84 Å/px
    assert volumes["hsp60"].size_xyz == (48, 48, 48) and volumes["atpase"].size_xyz == (64, 64, 64)
    one = imported(project, folder / "hsp60.mrc", symmetry="d7")
    (hsp60,) = project.output_set(one, "volumes")
    assert hsp60.symmetry == "D7" and hsp60.source_file.endswith("hsp60.mrc")
    two = imported(project, f"{folder}/*a*.mrc")  # a glob: not hsp60
    assert sorted(project.output_set(two, "volumes").keys()) == ["atpase", "hsp60", "putative_prohibitin"][::2]
    emdb = imported(project, data_file("maps/mrcfile_EMDB"), pattern="EMD-3197.map")
    (membrane,) = project.output_set(emdb, "volumes")
    assert membrane.pixel_size_A == pytest.approx(11.4, abs=1e-4) and membrane.size_xyz == (20, 20, 20)


def test_import_refuses_unset_voxel_sizes_bad_symmetry_and_mismatched_halves(project, tmp_path):
    blob = np.zeros((8, 8, 8), np.float32)
    write_mrc(tmp_path / "unit.mrc", blob, 1.0)  # a header voxel size of 1 Å is read as unset
    run_id, state = run(project, "import-volumes", {"files_path": str(tmp_path / "unit.mrc")})
    assert (
        state == "failed"
        and "unit.mrc" in project.run(run_id)["error"]
        and "pixel_size_A" in project.run(run_id)["error"]
    )
    fixed = imported(project, tmp_path / "unit.mrc", pixel_size_A=4.0)
    assert project.output_set(fixed, "volumes").get("unit").pixel_size_A == 4.0
    with pytest.raises(ParamsError, match="symmetry"):
        project.new_run("import-volumes", {"files_path": str(tmp_path), "symmetry": "X5"})
    with pytest.raises(ParamsError, match="pixel_size_A"):
        project.new_run("import-volumes", {"files_path": str(tmp_path), "pixel_size_A": 0})
    write_mrc(tmp_path / "half.mrc", np.zeros((8, 8, 6), np.float32), 4.0)
    bad, state = run(
        project,
        "import-volumes",
        {"files_path": str(tmp_path / "unit.mrc"), "pixel_size_A": 4.0, "half1_file": str(tmp_path / "half.mrc")},
    )
    assert state == "failed" and "half1_file" in project.run(bad)["error"] and "(8, 8, 6)" in project.run(bad)["error"]


def test_import_reorders_a_permuted_map_and_refuses_a_crystallographic_one(project, tmp_path, data_file):
    zyx = np.arange(4 * 5 * 6, dtype=np.float32).reshape(4, 5, 6)
    with mrcfile.new(tmp_path / "permuted.mrc") as mrc:
        mrc.set_data(np.ascontiguousarray(zyx.transpose(1, 2, 0)))  # sections y, rows x, columns z
        mrc.header.mapc, mrc.header.mapr, mrc.header.maps = 3, 1, 2
        mrc.voxel_size = 2.0
    run_id = imported(project, tmp_path / "permuted.mrc")
    (volume,) = project.output_set(run_id, "volumes")
    assert volume.size_xyz == (6, 5, 4) and volume.source_file == str(tmp_path / "permuted.mrc")
    assert np.array_equal(read_mrc(project.absolute(volume.file)), zyx)  # the copy is (z, y, x)
    failed, state = run(project, "import-volumes", {"files_path": str(data_file("maps/mrcfile_EMDB/EMD-3001.map"))})
    assert state == "failed" and "EMD-3001.map: cell angles" in project.run(failed)["error"]
    with mrcfile.new(tmp_path / "flat.mrc") as mrc:
        mrc.set_data(zyx)
        mrc.voxel_size = (2.0, 2.0, 3.0)
    failed, state = run(project, "import-volumes", {"files_path": str(tmp_path / "flat.mrc")})
    assert state == "failed" and "voxel sizes along x, y, z differ (2, 2, 3 Å)" in project.run(failed)["error"]


def test_resize_the_atpase_reference_to_10A_box_48_inverted_and_recentred(project, data_file):
    source = imported(project, data_file(CHLAMY), pattern="atpase.mrc")
    params = {"pixel_size_A": 10.0, "box_size": 48, "lowpass_A": 30.0, "invert": True, "recentre": True}
    run_id, state = run(project, "resize-volume", params, {"volumes": f"{source}.volumes"})
    assert state == "finished", project.run(run_id)["error"]
    (out,) = project.output_set(run_id, "volumes")
    path = project.absolute(out.file)
    data = read_mrc(path)
    assert data.shape == (48, 48, 48) and out.size_xyz == (48, 48, 48)
    assert out.pixel_size_A == pytest.approx(10.0, abs=0.002)  # 64 × 7.84 / 10 = 50.2 voxels: padded to hit 10 Å
    assert read_voxel_size(path) == pytest.approx(out.pixel_size_A, abs=1e-4)
    original = read_mrc(data_file(f"{CHLAMY}/atpase.mrc"))
    # inverted: the protein (bright in the map) is dark; recentred: its centre of mass at voxel 24
    assert np.abs(centre_of_mass(torch.as_tensor(-data)).numpy() - 24).max() < 0.2
    assert float(-data.min()) > 0 and np.sign(original.max()) == 1
    # rescaled alone, the map matches an independent resampling of the original (cubic splines at the voxel
    # centres of the new grid, voxel N // 2 on N // 2)
    plain, state = run(project, "resize-volume", {"pixel_size_A": 10.0}, {"volumes": f"{source}.volumes"})
    assert state == "finished", project.run(plain)["error"]
    (resized,) = project.output_set(plain, "volumes")
    ours = read_mrc(project.absolute(resized.file))
    grid = (np.arange(50) - 25) * resized.pixel_size_A / 7.84 + 32
    theirs = map_coordinates(original, np.meshgrid(grid, grid, grid, indexing="ij"), order=3, mode="nearest")
    assert ours.shape == theirs.shape == (50, 50, 50)
    r = np.corrcoef(ours.ravel(), theirs.ravel())[0, 1]
    assert r > 0.995, r  # measured 0.9996 (without the centring fix of the resampling: 0.94)


def test_create_mask_sphere_cylinder_and_threshold(project, data_file):
    run_id, state = run(
        project, "create-mask", {"shape": "sphere", "radius_A": 60, "edge_A": 20, "box_size": 40, "pixel_size_A": 5}
    )
    assert state == "finished", project.run(run_id)["error"]
    (sphere,) = project.output_set(run_id, "masks")
    mask = read_mrc(project.absolute(sphere.file))
    expected = soft_volume(4 / 3 * np.pi * 60**3, 4 * np.pi * 60**2, 4 * np.pi * 60, 20)
    assert mask.sum() * 5**3 == pytest.approx(expected, rel=0.005)
    cyl, state = run(project, "create-mask", {"shape": "cylinder", "radius_A": 30, "box_size": 40, "pixel_size_A": 5})
    assert state == "failed" and "height_A is required" in project.run(cyl)["error"]
    source = imported(project, data_file(CHLAMY), pattern="hsp60.mrc")
    hsp60 = read_mrc(data_file(f"{CHLAMY}/hsp60.mrc"))
    level = float(np.percentile(hsp60, 90))
    params = {"shape": "threshold", "threshold": level, "dilation_A": 8.0, "edge_A": 16.0}
    run_id, state = run(project, "create-mask", params, {"reference": f"{source}.volumes"})
    assert state == "finished", project.run(run_id)["error"]
    (made,) = project.output_set(run_id, "masks")
    mask = read_mrc(project.absolute(made.file))
    assert mask.shape == hsp60.shape and made.pixel_size_A == pytest.approx(7.84, abs=1e-5)
    assert (mask[hsp60 > level] == 1).all()  # the density is inside
    assert 0.1 < (mask > 0).mean() < 0.9  # and the mask is not the whole box
    (with_mask,) = project.output_set(run_id, "volumes")
    assert with_mask.name == "hsp60" and with_mask.mask_file == made.file and with_mask.symmetry == "C1"
    failed, state = run(
        project, "create-mask", {"shape": "threshold", "threshold": 1e9}, {"reference": f"{source}.volumes"}
    )
    assert state == "failed" and "maximum" in project.run(failed)["error"]
