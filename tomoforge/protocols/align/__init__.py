"""Tilt-series alignment protocols: coarse, fiducial, patch tracking, consensus, import/export."""
