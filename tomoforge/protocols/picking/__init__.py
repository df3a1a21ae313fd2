"""Picking protocols: template matching and the coordinate tools."""
