"""CTF of each tilt image, grouped per tilt series."""

from __future__ import annotations

from pydantic import Field, model_validator

from tomoforge.model.base import Item, quantity
from tomoforge.model.quantities import AngleDeg, DefocusA, ResolutionA, TiltAngleDeg


class CTFTiltImage(Item):
    """The fitted CTF of one tilt image (CTFFIND/RELION conventions: U >= V, angle of U from X)."""

    __item_kind__ = "ctf_tilt_image"
    __key__ = "acquisition_order"
    __columns__ = ("acquisition_order", "tilt_angle_deg", "defocus_u_A", "defocus_v_A", "fit_resolution_A", "excluded")

    acquisition_order: int = Field(..., ge=1)
    tilt_angle_deg: TiltAngleDeg = quantity(..., unit="deg")
    defocus_u_A: DefocusA = quantity(..., unit="Å", description="defocus along U, positive = underfocus")
    defocus_v_A: DefocusA = quantity(..., unit="Å", description="defocus along V (<= U)")
    astigmatism_angle_deg: AngleDeg = quantity(0.0, unit="deg", description="angle of U from the image X axis")
    phase_shift_deg: AngleDeg = quantity(0.0, unit="deg")
    fit_resolution_A: ResolutionA | None = quantity(None, unit="Å", description="resolution the fit reaches")
    score: float | None = Field(None, description="fit score (cross-correlation)")
    score_gap: float | None = Field(
        None, description="SD by which the fit's score stands above the next candidate's (None: not measured)"
    )
    ambiguous: bool = Field(False, description="the gap is too small to trust the ring order (see the run log)")
    excluded: bool = False

    @model_validator(mode="after")
    def _u_not_below_v(self) -> CTFTiltImage:
        if self.defocus_u_A < self.defocus_v_A:
            raise ValueError(
                f"defocus_u_A ({self.defocus_u_A}) < defocus_v_A ({self.defocus_v_A}): "
                "swap them and rotate the angle by 90 degrees"
            )
        return self

    @property
    def defocus_A(self) -> float:
        return float(0.5 * (self.defocus_u_A + self.defocus_v_A))

    @property
    def astigmatism_A(self) -> float:
        return float(self.defocus_u_A - self.defocus_v_A)


class CTFSeries(Item):
    """The CTF of every tilt image of one tilt series."""

    __item_kind__ = "ctf_series"
    __key__ = "name"
    __columns__ = ("name",)
    __children__ = ("entries", CTFTiltImage)
    __files__ = ("spectra_file", "plot_file", "spectra_plot_file")

    name: str = Field(..., description="name of the tilt series it belongs to")
    entries: list[CTFTiltImage] = Field(default_factory=list)
    spectra_file: str = Field("", description="MRC stack of per-tilt spectra, data left, fitted model right")
    plot_file: str = Field("", description="PNG: defocus and fit resolution against tilt angle")
    spectra_plot_file: str = Field("", description="PNG: the per-tilt spectra with the fitted model")
    hand_check: str = Field(
        "", description="defocus gradient vs the geometry: consistent, opposite, inconclusive ('' = not checked)"
    )
