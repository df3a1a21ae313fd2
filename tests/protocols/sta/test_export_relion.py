"""export-relion5 on the simulated hexamers with their TRUE projection model, CTF and particles: read back by
tomoforge's RELION 5 import, the projection matrices, particles and defocus at each particle's height are the
truth's; the exported tomogram is the truth tomogram as it is (RELION's frame with rlnTomoHand +1 is ours)."""

from __future__ import annotations

import numpy as np

from tests.protocols.sta.conftest import run
from tests.protocols.sta.test_pseudo import true_runs
from tomoforge.io.mrc import read_mrc
from tomoforge.io.relion5_particles import particle_depth_defocus, read_relion5_particles
from tomoforge.io.star import read_star_blocks
from tomoforge.methods.rotations import tilt_projection_matrix


def test_export_reads_back_as_the_truth(sta_project, hexamer_sim):
    project, tomos, truth, _ = sta_project
    ts = hexamer_sim.tilt_series[0]
    free = str(ts.truth_json.parent / "noise_free_tilt_series_ctf_free.mrc")
    series_run, ctf_run, coords, positions, rotations = true_runs(project, tomos, truth, free)
    export = run(
        project,
        "export-relion5",
        {},
        {
            "tilt_series": f"{series_run}.tilt_series",
            "ctf": f"{ctf_run}.ctf",
            "tomograms": f"{tomos}.tomograms",
            "particles": f"{coords}.coordinates",
        },
    )
    out = project.run_dir(export) / "out"
    back = read_relion5_particles(out / "particles.star", out / "tomograms.star")
    tilts = back.tilts[ts.name]
    true_p = np.stack(
        [tilt_projection_matrix(t["y_tilt_deg"], t["z_rot_deg"], t["x_tilt_deg"]) for t in truth["tilts"]]
    )
    assert np.abs(tilts.projection - true_p).max() < 1e-6
    assert np.abs(tilts.shift_A - [[t["x_shift_A"], t["y_shift_A"]] for t in truth["tilts"]]).max() < 1e-5
    assert np.abs(back.positions_A - positions).max() < 1e-3
    cos = (np.trace(np.swapaxes(back.rotations, 1, 2) @ rotations, axis1=1, axis2=2) - 1) / 2
    assert np.degrees(np.arccos(np.clip(cos, -1, 1))).max() < 1e-3
    # the simulator's defocus at the particle's height, ΔF + [P X]_z, is what RELION computes from the export
    u, _ = particle_depth_defocus(back, 0)
    true_u = np.array([t["defocus_u_A"] for t in truth["tilts"]]) + (true_p @ positions[0])[:, 2]
    assert np.abs(u - true_u).max() < 1e-2
    tomogram = read_mrc(ts.tomogram)
    exported = read_mrc(out / "tomograms" / f"rec_{ts.name}.mrc")
    assert np.array_equal(exported, tomogram)
    assert (out / "optimisation_set.star").is_file()
    names = read_star_blocks(out / "tilt_series" / f"{ts.name}.star")[ts.name]["rlnMicrographName"].tolist()
    assert names == [f"{i + 1:06d}@{free}:mrcs" for i in range(len(truth["tilts"]))]
