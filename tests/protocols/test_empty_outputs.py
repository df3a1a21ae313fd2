"""Steps whose output would be empty fail their item with a message that says why and what to try: a tilt
series with every view excluded (as exclude-ctfs can leave one) in alignment, CTF estimation and
reconstruction; an exclusion that would leave nothing; odd/even halves of a single view; patches that do
not fit the images. Never an AssertionError, a reshape error or an empty result."""

from __future__ import annotations

import pytest

from tests.protocols.align.test_align import SERIAL, imported_simulation, run
from tomoforge.engine import execute_run


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """(project, import run, a run whose series has one included view, a run whose series has none)."""
    project, _, imp = imported_simulation(tmp_path_factory.mktemp("empty"), seed=0, overrides={})
    one = run(
        project, "exclude-views", {"acquisition_orders": [2, 3, 4, 5, 6, 7]}, {"tilt_series": f"{imp}.tilt_series"}
    )
    none = run(
        project, "exclude-views", {"acquisition_orders": [2, 3, 4, 5, 6, 7]}, {"tilt_series": f"{imp}.tilt_series"}
    )
    out = project.output_set(none, "tilt_series")
    ts = out.get("TS_01")
    out.replace(
        ts.model_copy(update={"tilt_images": [t.model_copy(update={"excluded": True}) for t in ts.tilt_images]})
    )
    project.conn.commit()
    yield project, imp, one, none
    project.close()


def failure(project, protocol: str, params: dict, inputs: dict) -> str:
    run_id = project.new_run(protocol, params, inputs, executor=SERIAL)
    state = execute_run(project, run_id)
    error = project.run(run_id)["error"] or ""
    assert state == "failed", f"{protocol} {state}"
    return error


@pytest.mark.parametrize(
    "protocol, params, what",
    [
        ("coarse-alignment", {"binning": 2}, "align"),
        ("fiducial-model", {"binning": 2}, "track beads in"),
        ("patch-tracking", {"binning": 2}, "track patches in"),
        ("ctf-estimation", {"box_px": 64}, "estimate the CTF of"),
        ("reconstruct-tomogram", {"allow_unaligned": True}, "reconstruct"),
    ],
)
def test_a_series_with_every_view_excluded_is_refused_with_what_to_do(tiny, protocol, params, what):
    project, _, _, none = tiny
    error = failure(project, protocol, params, {"tilt_series": f"{none}.tilt_series"})
    assert f"TS_01: tilt series TS_01: every view is excluded, nothing to {what};" in error
    assert "exclude-views with restore" in error


def test_an_exclusion_that_would_leave_no_view_fails(tiny):
    project, imp, _, _ = tiny
    error = failure(
        project,
        "exclude-views",
        {"acquisition_orders": [1, 2, 3, 4, 5, 6, 7], "restack": True},
        {"tilt_series": f"{imp}.tilt_series"},
    )
    assert "every one of the 7 views would be excluded (7 listed or excluded before)" in error
    assert "loosen dark_fraction" in error


def test_odd_even_halves_of_a_single_view_are_refused(tiny):
    project, _, one, _ = tiny
    error = failure(
        project,
        "reconstruct-tomogram",
        {"allow_unaligned": True, "odd_even": True},
        {"tilt_series": f"{one}.tilt_series"},
    )
    assert "odd/even halves from alternate views need 2 included views, it has 1" in error
    assert "set odd_even false" in error


def test_patches_larger_than_the_images_say_so(tiny):
    project, imp, _, _ = tiny
    # 500 Å patches at 12 Å/px (42 px) with their search margin do not fit the 64² binned tiny images (patch
    # tracks; the default layer tracks size their landmarks from the pixel size)
    params = {"binning": 2, "layer_tracks": False}
    error = failure(project, "patch-tracking", params, {"tilt_series": f"{imp}.tilt_series"})
    assert "no patch of 42 px fits in the 64 x 64 px images" in error
    assert "patch_size_A" in error
