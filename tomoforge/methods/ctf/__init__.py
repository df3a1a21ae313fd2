"""The contrast transfer function: ``transfer`` (the CTF itself), ``estimate`` (per-tilt fit), ``correct``
(phase flip or Wiener filter). Import the submodule you need; this package imports none of them."""
