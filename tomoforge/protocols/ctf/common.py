"""What the CTF protocols share: the microscope constants of a series (the acquisition's, each
overridable by a parameter), and the inputs of a step on CTF series that may be given their tilt series."""

from __future__ import annotations

from typing import cast

from tomoforge.engine import InputSpec, Protocol
from tomoforge.methods.ctf.settings import Optics
from tomoforge.model import TiltSeries
from tomoforge.model.acquisition import Acquisition
from tomoforge.model.ctf import CTFSeries


def acquisition_optics(
    acquisition: Acquisition, voltage_kV: float | None, cs_mm: float | None, amplitude_contrast: float | None
) -> Optics:
    """Voltage (kV), Cs (mm) and amplitude contrast (fraction): each the given override, else the acquisition's."""
    return Optics(
        voltage_kV=acquisition.voltage_kV if voltage_kV is None else voltage_kV,
        cs_mm=acquisition.spherical_aberration_mm if cs_mm is None else cs_mm,
        amplitude_contrast=acquisition.amplitude_contrast if amplitude_contrast is None else amplitude_contrast,
    )


def ctf_inputs(ctf_help: str, tilt_series_help: str) -> dict[str, InputSpec]:
    """The inputs ``ctf`` (CTF series) and ``tilt_series`` (optional: theirs, matched by name)."""
    return {
        "ctf": InputSpec(CTFSeries, help=ctf_help),
        "tilt_series": InputSpec(TiltSeries, optional=True, help=tilt_series_help),
    }


def tilt_series_named(protocol: Protocol, name: str) -> TiltSeries | None:
    """The tilt series ``name`` of the protocol's optional ``tilt_series`` input; None if not given or not there."""
    if not protocol.has_input("tilt_series"):
        return None
    series = protocol.input("tilt_series")
    return cast(TiltSeries, series.get(name)) if name in series.keys() else None


__all__ = ["acquisition_optics", "ctf_inputs", "tilt_series_named"]
