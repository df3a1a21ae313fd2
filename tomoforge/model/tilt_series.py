"""Tilt series and their tilt images (and the movie variants before motion correction)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar, Literal

from pydantic import Field

from tomoforge.methods.align.projection_model import ProjectionModel
from tomoforge.model.acquisition import Acquisition
from tomoforge.model.base import Item, quantity
from tomoforge.model.quantities import (
    AccumulatedDoseEA2,
    AngleDeg,
    DefocusA,
    DosePerTiltEA2,
    LengthA,
    TiltAngleDeg,
)


class TiltImage(Item):
    """One image of a tilt series, with its projection model as RELION 5 stores it."""

    __item_kind__ = "tilt_image"
    __key__ = "acquisition_order"
    __columns__ = ("tilt_angle_deg", "acquisition_order", "accumulated_dose_e_A2", "excluded")
    __files__: ClassVar[tuple[str, ...]] = ("file", "odd_file", "even_file")

    acquisition_order: int = quantity(..., ge=1, description="1 = first exposed")
    tilt_angle_deg: TiltAngleDeg = quantity(..., unit="deg", description="nominal stage tilt angle")
    accumulated_dose_e_A2: AccumulatedDoseEA2 = quantity(
        0.0, unit="e/Å²", description="pre-exposure + this image's own dose"
    )
    dose_e_A2: DosePerTiltEA2 = quantity(0.0, unit="e/Å²", description="this image's own exposure")
    excluded: bool = Field(False, description="excluded from processing (kept, can be restored)")
    file: str = Field("", description="image file (a stack holds many images)")
    index: int = Field(0, ge=0, description="section of `file` holding this image (0-based)")
    odd_file: str = Field("", description="image from the odd frames (for denoising)")
    even_file: str = Field("", description="image from the even frames")
    nominal_defocus_A: DefocusA | None = quantity(None, unit="Å", description="defocus the microscope was set to")
    # Projection model (RELION 5: rlnTomoXTilt, rlnTomoYTilt, rlnTomoZRot, rlnTomoX/YShiftAngst).
    x_tilt_deg: AngleDeg = quantity(0.0, unit="deg", description="tilt about the X axis")
    y_tilt_deg: TiltAngleDeg | None = quantity(None, unit="deg", description="refined tilt angle (None: nominal)")
    z_rot_deg: AngleDeg | None = quantity(None, unit="deg", description="in-plane rotation (None: tilt axis angle)")
    x_shift_A: LengthA = quantity(0.0, unit="Å", description="shift of the image in X")
    y_shift_A: LengthA = quantity(0.0, unit="Å", description="shift of the image in Y")
    frame_shifts_A: list[tuple[float, float]] = quantity(
        default_factory=list, unit="Å", description="motion correction: (x, y) shift of each frame"
    )
    xray_count: int | None = Field(None, ge=0, description="X-ray hits / hot pixels erased (None: not run)")


class TiltImageMovie(TiltImage):
    """A tilt image still as its recorded frames."""

    __item_kind__ = "tilt_image_movie"
    __files__ = ("file",)

    n_frames: int = Field(..., ge=1, description="frames in the movie")
    frame_dose_e_A2: DosePerTiltEA2 = quantity(0.0, unit="e/Å²", description="exposure of one frame")


class TiltSeries(Item):
    """A tilt series: its acquisition, its tilt images (nested set) and what was done to it."""

    __item_kind__ = "tilt_series"
    __key__ = "name"
    __columns__: ClassVar[tuple[str, ...]] = ("name", "n_images", "dose_weighted", "aligned")
    __children__: ClassVar[tuple[str, type[Item]] | None] = ("tilt_images", TiltImage)
    __files__ = ("source_file", "stack_file", "odd_stack_file", "even_stack_file")

    name: str = Field(..., min_length=1, description="tilt series name (unique in its set)")
    acquisition: Acquisition
    tilt_images: list[TiltImage] = Field(default_factory=list)
    source_file: str = Field("", description="the .mdoc (or other file) it was imported from")
    stack_file: str = Field("", description="MRC stack holding the images, sorted by tilt angle")
    odd_stack_file: str = ""
    even_stack_file: str = ""
    dose_weighted: bool = False
    aligned: bool = Field(False, description="the projection model of its images has been estimated")
    interpolated: bool = Field(False, description="the alignment has been applied to the pixels")
    ctf_corrected: bool = False

    @property
    def n_images(self) -> int:
        return len(self.tilt_images)

    def included(self) -> list[TiltImage]:
        return [t for t in self.tilt_images if not t.excluded]

    def projection_model(
        self, views: Literal["included", "all"] | Sequence[TiltImage] = "included", tilt_axis_deg: float | None = None
    ) -> ProjectionModel:
        """The projection model of ``views``, in their order: the one place unset values are resolved.

        Parameters
        ----------
        views
            ``"included"`` (the default: the views not excluded, stored order), ``"all"``, or tilt images of
            this series in the order wanted.
        tilt_axis_deg
            The tilt axis angle (degrees) for views whose ZRot is unset (default: the acquisition's).

        Returns
        -------
        ProjectionModel
            YTilt unset → the nominal tilt angle; ZRot unset → ``tilt_axis_deg``, else the acquisition's tilt
            axis angle. An interpolated series (the alignment applied to its pixels) has ZRot 0 and no shift.
        """
        chosen = self.included() if views == "included" else self.tilt_images if views == "all" else list(views)
        axis = self.acquisition.tilt_axis_angle_deg if tilt_axis_deg is None else float(tilt_axis_deg)
        model = ProjectionModel(
            [t.tilt_angle_deg if t.y_tilt_deg is None else t.y_tilt_deg for t in chosen],
            [axis if t.z_rot_deg is None else t.z_rot_deg for t in chosen],
            [[t.x_shift_A, t.y_shift_A] for t in chosen],
            [t.x_tilt_deg for t in chosen],
        )
        if self.interpolated:
            model.z_rot_deg[:] = 0.0
            model.shift_A[:] = 0.0
        return model


class TiltSeriesMovie(TiltSeries):
    """A tilt series whose images are still movies (before motion correction)."""

    __item_kind__ = "tilt_series_movie"
    __usable_as_base__ = False  # frames, not images: motion correction makes the TiltSeries steps need
    __columns__ = ("name", "n_images")
    __children__ = ("tilt_images", TiltImageMovie)

    tilt_images: list[TiltImageMovie] = Field(default_factory=list)  # type: ignore[assignment]
