"""Ground-truth simulator: tilt-series movies, mdoc, gain and the truth (see truth.py for its keys).

from tomoforge.simulate import simulate
result = simulate("out", preset="tiny", seed=0, overrides={"detector.pixel_size_A": 5.0})
"""

from tomoforge.simulate.config import PRESETS, ConfigError, SimulationConfig, build_config
from tomoforge.simulate.run import SimulationResult, load_simulation, simulate

__all__ = [
    "simulate",
    "load_simulation",
    "SimulationResult",
    "SimulationConfig",
    "build_config",
    "PRESETS",
    "ConfigError",
]
