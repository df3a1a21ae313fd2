"""``tomoforge demo`` runs the first steps on simulated data and traces an image back to its mdoc."""
import re

from typer.testing import CliRunner

from tomoforge.cli.main import app


def test_demo_runs_and_recovers_the_simulated_motion(tmp_path):
    result = CliRunner().invoke(app, ["demo", str(tmp_path / "demo")])
    assert result.exit_code == 0, result.output
    for protocol in ("import-tilt-series-movies", "motion-correction", "xray-eraser", "dose-filter"):
        assert re.search(rf"run \d {protocol}: finished", result.output)
    rms = float(re.search(r"against the truth: ([\d.]+) px RMS", result.output).group(1))
    assert rms < 0.2  # the simulated beam-induced motion is recovered
    # provenance of the dose-filtered image walks back through every run to the mdoc and the movie
    assert all(f"made by run {i}" in result.output for i in (1, 2, 3, 4))
    assert str(tmp_path / "demo" / "raw" / "TS_01.mrc.mdoc") in result.output
    assert re.search(r"frames/TS_01_000_0\.0\.mrc \[section 0\]", result.output)
