"""Subtomogram averaging: Fourier insertion of particle views, half-map FSC, post-processing and local
resolution (``insertion``, ``fsc``, ``postprocess``, ``local_resolution``)."""
