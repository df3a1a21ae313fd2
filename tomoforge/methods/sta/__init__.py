"""Subtomogram averaging: extraction (3D boxes, pseudo-subtomogram views), averaging, map-back, Fourier
insertion of particle views, half-map FSC, post-processing and local resolution."""
