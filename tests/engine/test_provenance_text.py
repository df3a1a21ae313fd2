"""The provenance text: each step once, each file once, long file lists counted."""

from __future__ import annotations

from tomoforge.engine.provenance import FILES_SHOWN, Step, format_provenance


def step(address: str, run_id: int, files: list[str], parents: list[Step]) -> Step:
    return Step(address, "TiltSeries", run_id, "dose-filter", "finished", None, "0.1.0", {}, {}, files, parents)


def test_files_are_listed_once_and_long_lists_are_counted():
    raw = step("1.tilt_series/TS_01", 1, ["raw/TS_01.mdoc", *[f"raw/f{i}.tif" for i in range(10)]], [])
    a = step("2.tilt_series/TS_01", 2, ["runs/2/TS_01.mrc", "raw/TS_01.mdoc"], [raw])
    b = step("3.tilt_series/TS_01", 3, ["runs/3/TS_01.mrc"], [a, raw])
    text = format_provenance(b)
    assert text.count("file: raw/TS_01.mdoc") == 1
    assert text.count("made by run 1 ") == 1 and "1.tilt_series/TS_01  (TiltSeries, as above)" in text
    assert f"… and {10 - FILES_SHOWN} more files" in text  # the mdoc was listed by run 2 already
