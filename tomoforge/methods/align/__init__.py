"""Tilt-series alignment: projection model, fiducial least squares, beads, coarse, patches, consensus."""
