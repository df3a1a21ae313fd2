"""Tomogram reconstruction from an aligned tilt series: weighted back-projection and SIRT.

The projection model (RELION 5's) is applied on the fly; see ``geometry`` for the decomposition into
lines, ``backproject`` for the sparse back-/forward projector, ``weighting`` for the IMOD-style filters.
"""

from tomoforge.methods.reconstruct.geometry import VolumeGeometry, angular_weights, default_volume_shape
from tomoforge.methods.reconstruct.sirt import reconstruct_sirt
from tomoforge.methods.reconstruct.wbp import reconstruct_wbp, split_views

__all__ = [
    "VolumeGeometry",
    "angular_weights",
    "default_volume_shape",
    "reconstruct_wbp",
    "reconstruct_sirt",
    "split_views",
]
