"""The data model: what a project stores about tilt series, CTF, tomograms, particles and maps."""

from tomoforge.model.acquisition import Acquisition
from tomoforge.model.base import Item
from tomoforge.model.coordinates import Coordinate3D, Particle
from tomoforge.model.ctf import CTFSeries, CTFTiltImage
from tomoforge.model.landmarks import LandmarkModel
from tomoforge.model.tilt_series import (
    TiltImage,
    TiltImageMovie,
    TiltSeries,
    TiltSeriesMovie,
)
from tomoforge.model.tomogram import Tomogram
from tomoforge.model.volume import FSC, Volume

__all__ = [
    "FSC",
    "Acquisition",
    "CTFSeries",
    "CTFTiltImage",
    "Coordinate3D",
    "Item",
    "LandmarkModel",
    "Particle",
    "TiltImage",
    "TiltImageMovie",
    "TiltSeries",
    "TiltSeriesMovie",
    "Tomogram",
    "Volume",
]
