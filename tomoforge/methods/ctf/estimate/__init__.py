"""CTF estimation of tilt images and tilt series (CTFFIND-like fit, aware of the tilted specimen).

    from tomoforge.methods.ctf.estimate import Optics, FitSettings, estimate_tilt_series, fit_image
    series = estimate_tilt_series(stack, Optics(pixel_size_A=3.0), tilt_angles, tilt_axis_angle_deg=85.0)
    series.fits[0].defocus_u_A, series.hand.verdict

Modules: ``spectra`` (tiles, gold erasure, strips, polar grid), ``background`` (running mean / median
over one ring period), ``model`` (Thon-ring model of tilted strips and its score), ``fit`` (one
image: grid search, refinement, fit resolution), ``series`` (a tilt series), ``hand`` (is the
defocus gradient the geometry's?), ``display`` (spectra with the fitted model, for viewers).
"""

from tomoforge.methods.ctf.estimate.display import diagnostic_images
from tomoforge.methods.ctf.estimate.fit import CTFFit, FitSettings, fit_image, strip_spectra
from tomoforge.methods.ctf.estimate.hand import HandCheck
from tomoforge.methods.ctf.estimate.model import Optics, StripSpectra
from tomoforge.methods.ctf.estimate.series import SeriesFit, estimate_tilt_series

__all__ = [
    "Optics",
    "FitSettings",
    "CTFFit",
    "StripSpectra",
    "SeriesFit",
    "HandCheck",
    "fit_image",
    "strip_spectra",
    "estimate_tilt_series",
    "diagnostic_images",
]
