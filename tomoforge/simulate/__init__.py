"""Ground-truth simulator: tilt-series movies, mdoc, gain and the truth (see truth.py for its keys).

from tomoforge.simulate import simulate
result = simulate("out", preset="tiny", seed=0, overrides={"detector.pixel_size_A": 5.0})

The names below are imported on first use, so that ``tomoforge.simulate.config`` (the presets, read by
``tomoforge simulate --help``) loads without torch.
"""

from __future__ import annotations

import importlib
from typing import Any

_WHERE = {
    "simulate": "run",
    "load_simulation": "run",
    "SimulationResult": "run",
    "SimulationConfig": "config",
    "build_config": "config",
    "PRESETS": "config",
    "ConfigError": "config",
}

__all__ = list(_WHERE)


def __getattr__(name: str) -> Any:
    if name not in _WHERE:
        raise AttributeError(f"module 'tomoforge.simulate' has no attribute {name!r}")
    return getattr(importlib.import_module(f"tomoforge.simulate.{_WHERE[name]}"), name)
