"""tomoforge: cryo-electron tomography from tilt-series movies to subtomogram averages."""

import os

# Idle OpenMP threads sleep instead of spinning. Set before torch is first imported (every tomoforge module
# that needs torch imports this package first): on a machine shared with other jobs, spinning threads made
# torch 5-10x slower (the `small` simulation took over 15 min instead of 45 s at load 4 on 2 cores).
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

__version__ = "0.1.0"
