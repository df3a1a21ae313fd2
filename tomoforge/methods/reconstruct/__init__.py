"""Tomogram reconstruction from an aligned tilt series: weighted back-projection and SIRT.

The projection model (RELION 5's) is applied on the fly; see ``geometry`` for the decomposition into
lines, ``backproject`` for the sparse back-/forward projector, ``weighting`` for the IMOD-style filters,
``settings`` for the defaults. The names below are imported on first use, so that importing
``tomoforge.methods.reconstruct.settings`` (e.g. from a protocol module) does not import torch.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from tomoforge.methods.reconstruct.geometry import VolumeGeometry, angular_weights, default_volume_shape
    from tomoforge.methods.reconstruct.sirt import reconstruct_sirt
    from tomoforge.methods.reconstruct.wbp import reconstruct_wbp, split_views

_WHERE = {
    "VolumeGeometry": "geometry",
    "angular_weights": "geometry",
    "default_volume_shape": "geometry",
    "reconstruct_sirt": "sirt",
    "reconstruct_wbp": "wbp",
    "split_views": "wbp",
}


def __getattr__(name: str) -> Any:
    if name not in _WHERE:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(import_module(f"{__name__}.{_WHERE[name]}"), name)


__all__ = [
    "VolumeGeometry",
    "angular_weights",
    "default_volume_shape",
    "reconstruct_wbp",
    "reconstruct_sirt",
    "split_views",
]
