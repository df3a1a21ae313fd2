"""The science of tomoforge: pure functions on arrays, what a scientist imports in a notebook.

Arrays are torch tensors (numpy accepted at the edges), images ``(y, x)``, stacks ``(n, y, x)``,
volumes ``(z, y, x)``; units are in the argument names (``pixel_size_A``, ``dose_e_A2``); options are
keyword-only; a ``device`` argument (or the input's device) decides CPU or GPU. Nothing here reads a
project, a database or a metadata file.

The subpackages follow the pipeline (formulas and references: docs/methods.md and each module's docstring):

- ``preprocess`` (``motion``, ``gain``, ``xray``, ``dose``): from movies to clean tilt images;
- ``align`` (projection model, beads, fiducial solution, coarse, patches, consensus): tilt-series alignment;
- ``ctf`` (``transfer``: the CTF itself; ``estimate``; ``correct``): the CTF, its estimation and correction;
- ``reconstruct``: weighted back-projection and SIRT;

and the building blocks they share: ``fourier``, ``binning``, ``projection``, ``rotations``,
``potential``, ``ellipsoids``.

Submodules are imported by name (``from tomoforge.methods.preprocess.dose import filter_by_exposure``), so that
importing one step's science does not import every other's.
"""

__all__ = [
    "align",
    "binning",
    "ctf",
    "ellipsoids",
    "fourier",
    "potential",
    "preprocess",
    "projection",
    "reconstruct",
    "rotations",
]
