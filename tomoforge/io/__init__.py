"""The files of the field, read and written exactly: every other program's convention is converted here.

Each reader raises ``FormatError`` (a ``UserError``) naming the file, the line or row and the field, and
checks values against the ranges of ``tomoforge.model.quantities``; each writer writes whole or not at all
(``atomic``). Modules, imported by name:

- ``mrc``: MRC images, stacks and volumes (voxel size always written);
- ``movies``: TIFF, EER and MRC movies, gain references;
- ``mdoc``: SerialEM and Tomography 5 ``.mdoc`` files;
- ``star``: RELION 5 STAR files (tomograms, tilt series, particles);
- ``imod``: ``.tlt``, ``.xf``, ``.fid`` and ctfplotter ``.defocus``; ``aretomo``: ``.aln``; ``dynamo``: ``.tbl``;
  ``warp``: Warp/M XML; ``ctf``: CTFFIND text and RELION 5 per-tilt CTF columns;
- ``euler``: Euler-angle conventions (RELION ZYZ, Dynamo) to and from rotation matrices;
- ``text``: plain x y z coordinate lists; ``log``: timestamped lines appended to a run's log;
- ``errors``, ``atomic``: shared errors and atomic writing.
"""

__all__ = [
    "aretomo",
    "atomic",
    "ctf",
    "dynamo",
    "errors",
    "euler",
    "imod",
    "log",
    "mdoc",
    "movies",
    "mrc",
    "star",
    "text",
    "warp",
]
