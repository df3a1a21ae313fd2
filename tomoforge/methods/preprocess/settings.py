"""The options of the preprocessing methods and their defaults, in one place (no heavy import).

The methods (``xray``, ``motion``) take these defaults, and the protocols' params take them by reference,
so that ``tomoforge protocols NAME`` shows the values the methods use. This module imports only the standard
library: a protocol module may import it at module level without pulling torch.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Polarity = Literal["bright", "both"]


@dataclass(frozen=True, kw_only=True)
class XraySettings:
    """Options of the X-ray eraser (``tomoforge.methods.preprocess.xray``).

    Attributes
    ----------
    threshold_sd : float
        A peak's score (its residual over the local noise SD) exceeds this (SD, > 0).
    grow_sd : float
        Neighbours of a peak within ``max_radius_px`` with a score above this join it (SD, > 0).
    max_radius_px : float
        Largest radius of a hit around its peak (pixels, ≥ 0).
    background_px : int
        Half-width of the local background box (pixels; at least ``ceil(max_radius_px) + 2`` is used).
    polarity : {"bright", "both"}
        Bright outliers only, or dark ones (dead pixels) too.
    """

    threshold_sd: float = 4.2
    grow_sd: float = 3.0
    max_radius_px: float = 2.5
    background_px: int = 6
    polarity: Polarity = "bright"


#: the default options of the X-ray eraser
XRAY_DEFAULTS = XraySettings()

#: B-factor (Å²) of the global frame alignment (``motion.estimate_global_shifts``)
GLOBAL_BFACTOR_A2 = 3000.0
#: B-factor (Å²) of the patch alignment (``motion.estimate_local_motion``)
PATCH_BFACTOR_A2 = 1000.0


@dataclass(frozen=True, kw_only=True)
class BeadDetectionSettings:
    """Defaults of bead detection for erasing (``tomoforge.methods.preprocess.fiducials.find_beads``).

    Attributes
    ----------
    threshold_sd : float
        A peak of the matched-filtered image above this many robust SD is a bead.
    bin_to_px : float
        Detect on images binned by the whole factor that leaves a bead about this wide (pixels; 0: never bin).
    """

    threshold_sd: float = 6.0
    bin_to_px: float = 8.0


BEAD_DETECTION_DEFAULTS = BeadDetectionSettings()
