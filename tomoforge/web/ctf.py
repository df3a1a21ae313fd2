"""The CTF viewer: per tilt, defocus, astigmatism and fit resolution; each tilt's spectrum beside its fitted
model; "save" as a new ``exclude-ctfs`` run."""

from __future__ import annotations

from typing import Any

from tomoforge.engine import Project
from tomoforge.model.ctf import CTFSeries
from tomoforge.web.viewer import FORMATS, ViewerError, encode, heading, item_of


def ctf_series(project: Project, run_id: int, output: str, key: str) -> CTFSeries:
    return item_of(project, run_id, output, key, CTFSeries)


def ctf_entries(project: Project, run_id: int, output: str, key: str) -> dict[str, Any]:
    """The entries in tilt order: defocus (mean of U and V), astigmatism (U − V), angle, fit resolution, score."""
    series = ctf_series(project, run_id, output, key)
    spectra = bool(series.spectra_file) and project.absolute(series.spectra_file).is_file()
    entries = sorted(series.entries, key=lambda e: e.tilt_angle_deg)
    return {
        **heading(project, run_id, output, series.name),
        "spectra": spectra,
        "plots": [project.relative(project.absolute(f)) for f in (series.plot_file, series.spectra_plot_file) if f],
        "entries": [
            {
                "acquisition_order": e.acquisition_order,
                "tilt_angle_deg": e.tilt_angle_deg,
                "defocus_A": (e.defocus_u_A + e.defocus_v_A) / 2,
                "astigmatism_A": e.defocus_u_A - e.defocus_v_A,
                "astigmatism_angle_deg": e.astigmatism_angle_deg,
                "fit_resolution_A": e.fit_resolution_A,
                "score": e.score,
                "excluded": e.excluded,
            }
            for e in entries
        ],
    }


def spectrum_image(
    project: Project, run_id: int, output: str, key: str, order: int, fmt: str, factor: int = 1
) -> bytes:
    """The spectrum of the entry of acquisition order ``order`` (data left, fitted model right), as written by
    the CTF estimation: one section per entry, in the entries' stored order (``factor``: ignored, unbinned)."""
    from tomoforge.io.mrc import read_mrc_section

    if fmt not in FORMATS:
        raise ViewerError(f"image format {fmt!r}: expected {' or '.join(FORMATS)}")
    series = ctf_series(project, run_id, output, key)
    positions = {e.acquisition_order: i for i, e in enumerate(series.entries)}
    if order not in positions:
        raise ViewerError(f"{series.name} has no CTF entry of acquisition order {order}")
    if not series.spectra_file:
        raise ViewerError(f"{series.name}: no spectra were saved with this CTF (imported CTFs have none)")
    return encode(read_mrc_section(project.absolute(series.spectra_file), positions[order]), fmt)
