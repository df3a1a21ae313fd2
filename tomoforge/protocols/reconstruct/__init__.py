"""Reconstruction protocols: tomograms from aligned tilt series."""
